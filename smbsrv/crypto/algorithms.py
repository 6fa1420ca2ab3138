"""Numeric identifiers the crypto package switches on ([MS-SMB2] 2.2.3, 2.2.3.1.2, 2.2.3.1.7).

The values come from smbsrv.wire.constants (the crypto package knows nothing else of framing).
"""

from smbsrv.wire.constants import (
    SMB2_ENCRYPTION_AES128_CCM,
    SMB2_ENCRYPTION_AES128_GCM,
    SMB2_ENCRYPTION_AES256_CCM,
    SMB2_ENCRYPTION_AES256_GCM,
    SMB2_SIGNING_AES_CMAC,
    SMB2_SIGNING_AES_GMAC,
    SMB2_SIGNING_HMAC_SHA256,
    Dialect,
)

# Dialect revisions ([MS-SMB2] 2.2.3). Only the boundaries that change key handling matter here.
SMB2_DIALECT_REVISION_202 = Dialect.SMB2_0_2
SMB2_DIALECT_REVISION_210 = Dialect.SMB2_1
SMB2_DIALECT_REVISION_300 = Dialect.SMB3_0
SMB2_DIALECT_REVISION_302 = Dialect.SMB3_0_2
SMB2_DIALECT_REVISION_311 = Dialect.SMB3_1_1

# ENCRYPTION_CAPABILITIES cipher ids ([MS-SMB2] 2.2.3.1.2). 0 means "no cipher in common".
SMB2_ENCRYPTION_NONE = 0x0000

AES256_CIPHERS = frozenset({SMB2_ENCRYPTION_AES256_CCM, SMB2_ENCRYPTION_AES256_GCM})
KNOWN_CIPHERS = frozenset(
    {
        SMB2_ENCRYPTION_AES128_CCM,
        SMB2_ENCRYPTION_AES128_GCM,
        SMB2_ENCRYPTION_AES256_CCM,
        SMB2_ENCRYPTION_AES256_GCM,
    }
)

# Re-exported for the modules that import these names from here.
__all__ = [
    "AES256_CIPHERS",
    "KNOWN_CIPHERS",
    "SMB2_DIALECT_REVISION_202",
    "SMB2_DIALECT_REVISION_210",
    "SMB2_DIALECT_REVISION_300",
    "SMB2_DIALECT_REVISION_302",
    "SMB2_DIALECT_REVISION_311",
    "SMB2_ENCRYPTION_AES128_CCM",
    "SMB2_ENCRYPTION_AES128_GCM",
    "SMB2_ENCRYPTION_AES256_CCM",
    "SMB2_ENCRYPTION_AES256_GCM",
    "SMB2_ENCRYPTION_NONE",
    "SMB2_SIGNING_AES_CMAC",
    "SMB2_SIGNING_AES_GMAC",
    "SMB2_SIGNING_HMAC_SHA256",
]
