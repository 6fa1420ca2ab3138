"""SMB 3.x key derivation ([MS-SMB2] 3.1.4.2, 3.3.5.5.3; NIST SP800-108 counter mode).

KDF(Ki, Label, Context, L) = first L bits of HMAC-SHA256(Ki, i ‖ Label ‖ 0x00 ‖ Context ‖ L), with the counter i
and L as 32-bit big-endian numbers and r = 32. One HMAC block (256 bits) covers every key SMB needs, so i is
always 1. The labels and contexts below carry their own trailing NUL, as the spec writes them; the separator
byte of SP800-108 comes on top, which is why we build the fixed input ourselves instead of letting
`cryptography` join label and context.
"""

import dataclasses
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

from smbsrv.crypto.algorithms import (
    AES256_CIPHERS,
    SMB2_DIALECT_REVISION_300,
    SMB2_DIALECT_REVISION_311,
)

_L_FIELD = struct.Struct(">I")

# [MS-SMB2] 3.3.5.5.3 (3.1.1): every key takes the session's preauth integrity hash as its context.
SMB311_SIGNING_LABEL = b"SMBSigningKey\x00"
SMB311_C2S_CIPHER_LABEL = b"SMBC2SCipherKey\x00"
SMB311_S2C_CIPHER_LABEL = b"SMBS2CCipherKey\x00"
SMB311_APP_LABEL = b"SMBAppKey\x00"

# [MS-SMB2] 3.3.5.5.3 (3.0, 3.0.2): fixed label/context pairs. "ServerIn " really has a space before the NUL.
SMB30_SIGNING = (b"SMB2AESCMAC\x00", b"SmbSign\x00")
SMB30_C2S_CIPHER = (b"SMB2AESCCM\x00", b"ServerIn \x00")
SMB30_S2C_CIPHER = (b"SMB2AESCCM\x00", b"ServerOut\x00")
SMB30_APP = (b"SMB2APP\x00", b"SmbRpc\x00")

PREAUTH_HASH_SIZE = 64  # SHA-512, the only preauth hash algorithm ([MS-SMB2] 2.2.3.1.1)


def derive_key(key_in: bytes, label: bytes, context: bytes, length_bits: int = 128) -> bytes:
    """SP800-108 counter-mode KDF with HMAC-SHA256, as SMB 3.x uses it ([MS-SMB2] 3.1.4.2)."""
    if length_bits <= 0 or length_bits % 8:
        raise ValueError(f"length_bits must be a positive multiple of 8, got {length_bits}")
    fixed_input = label + b"\x00" + context + _L_FIELD.pack(length_bits)
    kdf = KBKDFHMAC(
        algorithm=hashes.SHA256(),
        mode=Mode.CounterMode,
        length=length_bits // 8,
        rlen=4,
        llen=None,  # L is already inside fixed_input
        location=CounterLocation.BeforeFixed,
        label=None,
        context=None,
        fixed=fixed_input,
    )
    return kdf.derive(key_in)


@dataclasses.dataclass(frozen=True, repr=False)
class SessionKeys:
    """The keys of one session, named from the server's side.

    encryption_key protects server-to-client messages (the spec's ServerOut / S2C key) and decryption_key
    opens client-to-server messages (ServerIn / C2S). Both are None for 2.0.2 and 2.1, which cannot encrypt.
    """

    signing_key: bytes
    encryption_key: bytes | None
    decryption_key: bytes | None
    application_key: bytes

    def __repr__(self) -> str:
        # Keys must never reach a log line by accident.
        return "SessionKeys(<redacted>)"


def _truncated_session_key(session_key: bytes) -> bytes:
    # [MS-SMB2] 3.3.5.5.3: Session.SessionKey is the first 16 bytes of the GSS key, right-padded with zeros.
    return session_key[:16].ljust(16, b"\x00")


def derive_session_keys(
    dialect: int, session_key: bytes, preauth_hash: bytes | None, cipher_id: int
) -> SessionKeys:
    """Derive the session keys for `dialect` from the GSS session key ([MS-SMB2] 3.3.5.5.3).

    `preauth_hash` is the session's preauth integrity hash after the last SESSION_SETUP request (3.1.1 only).
    `cipher_id` is the connection's negotiated cipher (0 when none); the AES-256 ciphers take 256-bit keys
    derived from the full, untruncated session key, as Windows and Samba do.
    """
    key16 = _truncated_session_key(session_key)
    if dialect < SMB2_DIALECT_REVISION_300:
        # 2.0.2 and 2.1 sign with the session key itself and have no encryption.
        return SessionKeys(signing_key=key16, encryption_key=None, decryption_key=None, application_key=key16)

    if cipher_id in AES256_CIPHERS:
        if dialect < SMB2_DIALECT_REVISION_311:
            raise ValueError("AES-256 ciphers exist only in dialect 3.1.1")
        cipher_key_in, cipher_bits = session_key, 256
    else:
        cipher_key_in, cipher_bits = key16, 128

    if dialect >= SMB2_DIALECT_REVISION_311:
        if preauth_hash is None or len(preauth_hash) != PREAUTH_HASH_SIZE:
            raise ValueError("dialect 3.1.1 needs the 64-byte preauth integrity hash")
        return SessionKeys(
            signing_key=derive_key(key16, SMB311_SIGNING_LABEL, preauth_hash),
            encryption_key=derive_key(cipher_key_in, SMB311_S2C_CIPHER_LABEL, preauth_hash, cipher_bits),
            decryption_key=derive_key(cipher_key_in, SMB311_C2S_CIPHER_LABEL, preauth_hash, cipher_bits),
            application_key=derive_key(key16, SMB311_APP_LABEL, preauth_hash),
        )

    return SessionKeys(
        signing_key=derive_key(key16, *SMB30_SIGNING),
        encryption_key=derive_key(cipher_key_in, *SMB30_S2C_CIPHER, cipher_bits),
        decryption_key=derive_key(cipher_key_in, *SMB30_C2S_CIPHER, cipher_bits),
        application_key=derive_key(key16, *SMB30_APP),
    )
