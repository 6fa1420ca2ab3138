"""SMB2 message signing ([MS-SMB2] 3.1.4.1, 3.1.5.1, 2.2.1; signing algorithms 2.2.3.1.7).

A signature covers one compound element: its 64-byte header (Signature field taken as zeros) and its body up
to the NextCommand boundary; the caller hands us exactly that slice. The signature is the first 16 bytes of
- HMAC-SHA256(SigningKey, message) for 2.0.2 and 2.1 (and 3.1.1 when SIGNING_CAPABILITIES picked 0);
- AES-128-CMAC(SigningKey, message) for 3.x by default;
- AES-128-GMAC, i.e. the AES-128-GCM tag of an empty plaintext with the message as additional data, when 3.1.1
  negotiated it. Its 12-byte nonce is MessageId (8) followed by 4 bytes whose bit 0 is set for a response
  (SMB2_FLAGS_SERVER_TO_REDIR) and bit 1 for a CANCEL request.

The message is never copied: the MAC is fed three pieces (header before the signature, 16 zero bytes, the rest),
so an 8 MiB WRITE costs one pass over its bytes, and verify() leaves the received buffer untouched. begin()
exposes that running MAC, so the transport can fold a large message in while it arrives (see transport). The key
schedule is done once per session: HMAC and CMAC contexts are cloned from a keyed template for each message.

Small messages (every request but bulk READ/WRITE) take a one-shot path instead: the three pieces are joined
(a copy of a few hundred bytes, 0.3 us) and handed to the primitive in one call. The primitive itself costs
about 0.5 us; the running-MAC plumbing around it cost 4-7 us per message, twice per request.
"""

import abc
import hmac as py_hmac
import struct
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import cmac, hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from smbsrv.crypto.algorithms import (
    SMB2_DIALECT_REVISION_300,
    SMB2_DIALECT_REVISION_311,
    SMB2_SIGNING_AES_CMAC,
    SMB2_SIGNING_AES_GMAC,
    SMB2_SIGNING_HMAC_SHA256,
)

SMB2_HEADER_SIZE = 64
SMB2_FLAGS_SERVER_TO_REDIR = 0x00000001
SMB2_FLAGS_SIGNED = 0x00000008
SMB2_CANCEL = 0x000C

SIGNATURE_OFFSET = 48
SIGNATURE_SIZE = 16
_ZERO_SIGNATURE = bytes(SIGNATURE_SIZE)

_COMMAND = struct.Struct("<H")  # Command @12
_FLAGS = struct.Struct("<I")  # Flags @16
_MESSAGE_ID = struct.Struct("<Q")  # MessageId @24
_GMAC_NONCE = struct.Struct("<QI")

# Messages up to this size are signed and verified in one call of the primitive (module docstring).
_ONE_SHOT_LIMIT = 64 * 1024

_COMMAND_OFFSET = 12
_FLAGS_OFFSET = 16
_MESSAGE_ID_OFFSET = 24

# GMAC nonce bits in the 4 bytes after MessageId ([MS-SMB2] 3.1.4.1).
_GMAC_ROLE_RESPONSE = 0x1
_GMAC_ROLE_CANCEL = 0x2


def _as_bytes_view(message: bytearray | memoryview | bytes) -> memoryview:
    view = memoryview(message)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class RunningSignature:
    """The signature of one message in progress: update() with each piece after the header, in order, then
    finish() for the 16-byte signature."""

    __slots__ = ("_finish", "update")

    def __init__(self, update: Callable[[Any], None], finish: Callable[[], bytes]) -> None:
        self.update = update
        self._finish = finish

    def finish(self) -> bytes:
        return self._finish()


class Signer(abc.ABC):
    """Signs outgoing and verifies incoming SMB2 messages with one session's (or channel's) signing key."""

    algorithm_id: int

    @abc.abstractmethod
    def _start(self, header: memoryview) -> RunningSignature:
        """A fresh MAC for the message whose 64-byte header is `header` (AES-GMAC takes its nonce from it)."""

    def begin(self, header: memoryview) -> RunningSignature:
        """Start the signature of a message from its header, Signature field taken as zeros."""
        running = self._start(header)
        running.update(header[:SIGNATURE_OFFSET])
        running.update(_ZERO_SIGNATURE)
        return running

    def _compute(self, view: memoryview, tail: memoryview | None = None) -> bytes:
        """Return the 16-byte signature of `view` followed by `tail`, treating the Signature field as zeros."""
        running = self.begin(view[:SMB2_HEADER_SIZE])
        running.update(view[SMB2_HEADER_SIZE:])
        if tail is not None:
            running.update(tail)
        return running.finish()

    @abc.abstractmethod
    def _one_shot(self, header: bytearray | memoryview, data: bytes) -> bytes:
        """The signature of `data`, a whole small message with its Signature field already zeroed; `header` is
        where its header lies (AES-GMAC takes its nonce from it)."""

    def sign(self, message: bytearray | memoryview, tail: bytes | bytearray | memoryview | None = None) -> None:
        """Set SMB2_FLAGS_SIGNED and write the signature into the header at the start of `message`.

        `tail` is bulk data that follows `message` on the wire (READ data): it is signed where it lies, never
        joined to the header."""
        if (isinstance(message, bytearray) and len(message) >= SMB2_HEADER_SIZE
                and len(message) + (0 if tail is None else len(tail)) <= _ONE_SHOT_LIMIT):
            # The common case: a response the connection just built (with a small READ's data as `tail`).
            (flags,) = _FLAGS.unpack_from(message, _FLAGS_OFFSET)
            _FLAGS.pack_into(message, _FLAGS_OFFSET, flags | SMB2_FLAGS_SIGNED)
            pieces: list[bytes | bytearray | memoryview] = [message[:SIGNATURE_OFFSET], _ZERO_SIGNATURE,
                                                            message[SMB2_HEADER_SIZE:]]
            if tail is not None:
                pieces.append(tail)
            message[SIGNATURE_OFFSET:SMB2_HEADER_SIZE] = self._one_shot(message, b"".join(pieces))
            return
        view = _as_bytes_view(message)
        tail_view = _as_bytes_view(tail) if tail is not None else None
        if len(view) < SMB2_HEADER_SIZE:
            raise ValueError("a signed message needs at least the 64-byte SMB2 header")
        # The flag is part of the signed bytes, so it goes in before the MAC is computed.
        (flags,) = _FLAGS.unpack_from(view, _FLAGS_OFFSET)
        _FLAGS.pack_into(view, _FLAGS_OFFSET, flags | SMB2_FLAGS_SIGNED)
        view[SIGNATURE_OFFSET : SIGNATURE_OFFSET + SIGNATURE_SIZE] = self._compute(view, tail_view)

    def verify(self, message: bytearray | memoryview | bytes, computed: bytes | None = None) -> bool:
        """Check the signature of a received element; the buffer is not modified. `computed` is its signature
        when it was already worked out from begin() while the message arrived."""
        view = _as_bytes_view(message)
        if len(view) < SMB2_HEADER_SIZE:
            return False
        received = view[SIGNATURE_OFFSET : SIGNATURE_OFFSET + SIGNATURE_SIZE]
        if computed is None:
            if len(view) <= _ONE_SHOT_LIMIT:
                computed = self._one_shot(view, b"".join((view[:SIGNATURE_OFFSET], _ZERO_SIGNATURE,
                                                          view[SMB2_HEADER_SIZE:])))
            else:
                computed = self._compute(view)
        return py_hmac.compare_digest(computed, received)


class HmacSha256Signer(Signer):
    """HMAC-SHA256 truncated to 16 bytes ([MS-SMB2] 3.1.4.1, dialects 2.0.2 and 2.1)."""

    algorithm_id = SMB2_SIGNING_HMAC_SHA256

    def __init__(self, signing_key: bytes) -> None:
        self._template = hmac.HMAC(signing_key, hashes.SHA256())

    def _start(self, header: memoryview) -> RunningSignature:
        mac = self._template.copy()
        return RunningSignature(mac.update, lambda: mac.finalize()[:SIGNATURE_SIZE])

    def _one_shot(self, header: bytearray | memoryview, data: bytes) -> bytes:
        mac = self._template.copy()
        mac.update(data)
        return mac.finalize()[:SIGNATURE_SIZE]


class AesCmacSigner(Signer):
    """AES-128-CMAC ([MS-SMB2] 3.1.4.1, the 3.x default; RFC 4493)."""

    algorithm_id = SMB2_SIGNING_AES_CMAC

    def __init__(self, signing_key: bytes) -> None:
        self._template = cmac.CMAC(algorithms.AES(signing_key))

    def _start(self, header: memoryview) -> RunningSignature:
        mac = self._template.copy()
        return RunningSignature(mac.update, mac.finalize)

    def _one_shot(self, header: bytearray | memoryview, data: bytes) -> bytes:
        mac = self._template.copy()
        mac.update(data)
        return mac.finalize()


def gmac_nonce(view: bytearray | memoryview) -> bytes:
    """The 12-byte AES-GMAC nonce of the message whose header starts `view` ([MS-SMB2] 3.1.4.1)."""
    (message_id,) = _MESSAGE_ID.unpack_from(view, _MESSAGE_ID_OFFSET)
    (flags,) = _FLAGS.unpack_from(view, _FLAGS_OFFSET)
    (command,) = _COMMAND.unpack_from(view, _COMMAND_OFFSET)
    role = 0
    if flags & SMB2_FLAGS_SERVER_TO_REDIR:
        role |= _GMAC_ROLE_RESPONSE
    if command == SMB2_CANCEL:
        role |= _GMAC_ROLE_CANCEL
    return _GMAC_NONCE.pack(message_id, role)


class AesGmacSigner(Signer):
    """AES-128-GMAC ([MS-SMB2] 3.1.4.1, 3.1.1 with SIGNING_CAPABILITIES = 2)."""

    algorithm_id = SMB2_SIGNING_AES_GMAC

    def __init__(self, signing_key: bytes) -> None:
        self._key = algorithms.AES(signing_key)
        self._aead = AESGCM(signing_key)

    def _one_shot(self, header: bytearray | memoryview, data: bytes) -> bytes:
        # The one-shot AESGCM with no plaintext: its tag is the GMAC of the additional data.
        return self._aead.encrypt(gmac_nonce(header), b"", data)

    def _start(self, header: memoryview) -> RunningSignature:
        # The streaming GCM context accepts the additional data in pieces, which the one-shot AESGCM does not.
        encryptor = Cipher(self._key, modes.GCM(gmac_nonce(header))).encryptor()

        def finish() -> bytes:
            encryptor.finalize()
            return encryptor.tag

        return RunningSignature(encryptor.authenticate_additional_data, finish)


def make_signer(dialect: int, signing_algorithm_id: int | None, signing_key: bytes) -> Signer:
    """Pick the signing algorithm for a session ([MS-SMB2] 3.1.4.1).

    `signing_algorithm_id` is what the 3.1.1 SIGNING_CAPABILITIES context negotiated, or None when it was absent
    (or the dialect is older), in which case 3.x uses AES-CMAC and 2.x HMAC-SHA256.
    """
    if dialect < SMB2_DIALECT_REVISION_300:
        return HmacSha256Signer(signing_key)
    if dialect >= SMB2_DIALECT_REVISION_311 and signing_algorithm_id is not None:
        if signing_algorithm_id == SMB2_SIGNING_HMAC_SHA256:
            return HmacSha256Signer(signing_key)
        if signing_algorithm_id == SMB2_SIGNING_AES_CMAC:
            return AesCmacSigner(signing_key)
        if signing_algorithm_id == SMB2_SIGNING_AES_GMAC:
            return AesGmacSigner(signing_key)
        raise ValueError(f"unknown signing algorithm id {signing_algorithm_id:#06x}")
    return AesCmacSigner(signing_key)
