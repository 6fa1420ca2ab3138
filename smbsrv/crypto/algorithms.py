"""Numeric identifiers the crypto package switches on ([MS-SMB2] 2.2.3, 2.2.3.1.2, 2.2.3.1.7).

The same values appear in smbsrv.wire.constants; they are repeated here, spelled the same way, so that the
crypto package stays importable and testable on its own (it knows nothing about framing).
"""

# Dialect revisions ([MS-SMB2] 2.2.3). Only the boundaries that change key handling matter here.
SMB2_DIALECT_REVISION_202 = 0x0202
SMB2_DIALECT_REVISION_210 = 0x0210
SMB2_DIALECT_REVISION_300 = 0x0300
SMB2_DIALECT_REVISION_302 = 0x0302
SMB2_DIALECT_REVISION_311 = 0x0311

# ENCRYPTION_CAPABILITIES cipher ids ([MS-SMB2] 2.2.3.1.2). 0 means "no cipher in common".
SMB2_ENCRYPTION_NONE = 0x0000
SMB2_ENCRYPTION_AES128_CCM = 0x0001
SMB2_ENCRYPTION_AES128_GCM = 0x0002
SMB2_ENCRYPTION_AES256_CCM = 0x0003
SMB2_ENCRYPTION_AES256_GCM = 0x0004

# SIGNING_CAPABILITIES algorithm ids ([MS-SMB2] 2.2.3.1.7).
SMB2_SIGNING_HMAC_SHA256 = 0x0000
SMB2_SIGNING_AES_CMAC = 0x0001
SMB2_SIGNING_AES_GMAC = 0x0002

AES256_CIPHERS = frozenset({SMB2_ENCRYPTION_AES256_CCM, SMB2_ENCRYPTION_AES256_GCM})
KNOWN_CIPHERS = frozenset(
    {
        SMB2_ENCRYPTION_AES128_CCM,
        SMB2_ENCRYPTION_AES128_GCM,
        SMB2_ENCRYPTION_AES256_CCM,
        SMB2_ENCRYPTION_AES256_GCM,
    }
)
