"""SMB 3.x transform (encryption) messages ([MS-SMB2] 2.2.41, 3.1.4.3, 3.3.4.1.4, 3.3.5.2.1.1).

SMB2 TRANSFORM_HEADER, 52 bytes:

| @  | size | field               |
|----|------|---------------------|
| 0  | 4    | ProtocolId 0xFD 'S' 'M' 'B' |
| 4  | 16   | Signature (the AEAD tag) |
| 20 | 16   | Nonce (AES-CCM uses 11 bytes, AES-GCM 12, the rest is zero) |
| 36 | 4    | OriginalMessageSize |
| 40 | 2    | Reserved            |
| 42 | 2    | Flags (3.1.1: 0x0001 Encrypted; 3.0.x calls it EncryptionAlgorithm, 0x0001 = AES-128-CCM) |
| 44 | 8    | SessionId           |

The additional authenticated data is the header from Nonce on (@20..@51). The server encrypts with the
session's server-to-client key and decrypts with the client-to-server key. A nonce must never repeat under one
key, so each TransformCipher draws them from a counter behind a random prefix; one TransformCipher should
serve a session on all its channels.
"""

import dataclasses
import itertools
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM

from smbsrv.crypto.algorithms import (
    AES256_CIPHERS,
    KNOWN_CIPHERS,
    SMB2_ENCRYPTION_AES128_CCM,
    SMB2_ENCRYPTION_AES256_CCM,
)
from smbsrv.errors import ProtocolViolation

SMB2_TRANSFORM_PROTOCOL_ID = b"\xfdSMB"
SMB2_TRANSFORM_HEADER_SIZE = 52
SMB2_TRANSFORM_HEADER_FLAG_ENCRYPTED = 0x0001

_TRANSFORM_HEADER = struct.Struct("<4s16s16sIHHQ")
assert _TRANSFORM_HEADER.size == SMB2_TRANSFORM_HEADER_SIZE

_SIGNATURE = slice(4, 20)
_AAD = slice(20, SMB2_TRANSFORM_HEADER_SIZE)
_TAG_SIZE = 16
_CCM_NONCE_SIZE = 11
_GCM_NONCE_SIZE = 12
_COUNTER = struct.Struct("<Q")
_COUNTER_LIMIT = 1 << 64


@dataclasses.dataclass(frozen=True)
class TransformHeader:
    """The decoded SMB2 TRANSFORM_HEADER ([MS-SMB2] 2.2.41)."""

    signature: bytes
    nonce: bytes
    original_message_size: int
    flags: int
    session_id: int


def parse_transform_header(transform: bytes | bytearray | memoryview) -> TransformHeader:
    """Decode the transform header, e.g. to find the session before decrypting ([MS-SMB2] 3.3.5.2.1.1)."""
    if len(transform) < SMB2_TRANSFORM_HEADER_SIZE:
        raise ProtocolViolation("transform message shorter than its 52-byte header")
    protocol_id, signature, nonce, original_message_size, _reserved, flags, session_id = (
        _TRANSFORM_HEADER.unpack_from(transform, 0)
    )
    if protocol_id != SMB2_TRANSFORM_PROTOCOL_ID:
        raise ProtocolViolation("not an SMB2 transform header")
    return TransformHeader(signature, nonce, original_message_size, flags, session_id)


def _as_bytes_view(data: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class TransformCipher:
    """Encrypts responses and decrypts requests of one session with its negotiated cipher."""

    def __init__(self, cipher_id: int, encryption_key: bytes, decryption_key: bytes) -> None:
        if cipher_id not in KNOWN_CIPHERS:
            raise ValueError(f"unknown cipher id {cipher_id:#06x}")
        key_size = 32 if cipher_id in AES256_CIPHERS else 16
        if len(encryption_key) != key_size or len(decryption_key) != key_size:
            raise ValueError(f"cipher {cipher_id:#06x} takes {key_size}-byte keys")
        self.cipher_id = cipher_id
        self._is_ccm = cipher_id in (SMB2_ENCRYPTION_AES128_CCM, SMB2_ENCRYPTION_AES256_CCM)
        self._nonce_size = _CCM_NONCE_SIZE if self._is_ccm else _GCM_NONCE_SIZE
        self._sealer: AESCCM | AESGCM = AESCCM(encryption_key) if self._is_ccm else AESGCM(encryption_key)
        self._opener_ccm = AESCCM(decryption_key) if self._is_ccm else None
        self._opener_key = algorithms.AES(decryption_key)
        # Nonce = random prefix ‖ 64-bit counter. The counter starts at a random point too, so two ciphers that
        # somehow share a key (and drew the same short CCM prefix) still do not walk over the same values.
        self._nonce_prefix = os.urandom(self._nonce_size - _COUNTER.size)
        self._counter = itertools.count(int.from_bytes(os.urandom(7), "little"))

    def _next_nonce(self) -> bytes:
        value = next(self._counter)  # itertools.count is atomic under the GIL
        if value >= _COUNTER_LIMIT:
            raise RuntimeError("transform nonce space exhausted; the session must be re-established")
        return self._nonce_prefix + _COUNTER.pack(value)

    def encrypt(self, session_id: int, message: bytes | bytearray | memoryview) -> bytearray:
        """Return the whole transform message (header and ciphertext) carrying `message` ([MS-SMB2] 3.1.4.3)."""
        return self._seal(session_id, message, self._next_nonce().ljust(16, b"\x00"))

    def _seal(
        self, session_id: int, message: bytes | bytearray | memoryview, nonce_field: bytes
    ) -> bytearray:
        # nonce_field is the header's whole 16-byte Nonce; the cipher uses its first 11 (CCM) or 12 (GCM) bytes.
        nonce = nonce_field[: self._nonce_size]
        size = len(message)
        if size >= 1 << 32:
            raise ValueError("message too large for OriginalMessageSize")
        # Header, ciphertext and a tail for the tag in one buffer: the AEAD writes ciphertext ‖ tag in place,
        # the tag moves to the Signature field and the tail is cut off. No copy of the payload is made.
        out = bytearray(SMB2_TRANSFORM_HEADER_SIZE + size + _TAG_SIZE)
        _TRANSFORM_HEADER.pack_into(
            out,
            0,
            SMB2_TRANSFORM_PROTOCOL_ID,
            bytes(_TAG_SIZE),
            nonce_field,
            size,
            0,
            SMB2_TRANSFORM_HEADER_FLAG_ENCRYPTED,
            session_id,
        )
        with memoryview(out) as view:
            self._sealer.encrypt_into(nonce, message, view[_AAD], view[SMB2_TRANSFORM_HEADER_SIZE:])
            view[_SIGNATURE] = view[len(out) - _TAG_SIZE :]
        del out[-_TAG_SIZE:]
        return out

    def decrypt(self, transform: bytes | bytearray | memoryview) -> tuple[int, bytes]:
        """Authenticate and decrypt a transform message; return (SessionId, the SMB2 message inside).

        A malformed header or a failed tag check raises ProtocolViolation: [MS-SMB2] 3.3.5.2.1.1 has the
        server disconnect in both cases.
        """
        view = _as_bytes_view(transform)
        header = parse_transform_header(view)
        ciphertext = view[SMB2_TRANSFORM_HEADER_SIZE:]
        if header.flags != SMB2_TRANSFORM_HEADER_FLAG_ENCRYPTED:
            raise ProtocolViolation(f"transform Flags/EncryptionAlgorithm {header.flags:#06x} is not 1")
        if header.original_message_size != len(ciphertext):
            raise ProtocolViolation("transform OriginalMessageSize does not match the message")
        nonce = header.nonce[: self._nonce_size]
        aad = view[_AAD]
        try:
            if self._opener_ccm is not None:
                # AESCCM has no streaming form and wants ciphertext ‖ tag in one buffer: CCM (3.0.x) pays one copy.
                sealed = bytearray(len(ciphertext) + _TAG_SIZE)
                sealed[: len(ciphertext)] = ciphertext
                sealed[len(ciphertext) :] = header.signature
                plaintext = self._opener_ccm.decrypt(nonce, sealed, aad)
            else:
                decryptor = Cipher(self._opener_key, modes.GCM(nonce, header.signature)).decryptor()
                decryptor.authenticate_additional_data(aad)
                plaintext = decryptor.update(ciphertext)
                decryptor.finalize()
        except InvalidTag:
            raise ProtocolViolation("transform message failed authentication") from None
        return header.session_id, plaintext


def make_cipher(cipher_id: int, encryption_key: bytes, decryption_key: bytes) -> TransformCipher:
    """Build the transform cipher of a session: encrypt with the S2C key, decrypt with the C2S key."""
    return TransformCipher(cipher_id, encryption_key, decryption_key)
