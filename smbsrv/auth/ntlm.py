"""NTLMv2 acceptor: NTLMSSP messages and the server side of the exchange ([MS-NLMP] 2.2, 3.2.5, 3.3.2, 3.4).

Three messages: the client's NEGOTIATE (type 1), our CHALLENGE (type 2) and the client's AUTHENTICATE (type 3).
We accept NTLMv2 only: an NTLMv2 response is NTProofStr (16) followed by the client's blob (NTLMv2_CLIENT_CHALLENGE,
28 fixed bytes then AV_PAIRs), where

    ResponseKeyNT = HMAC-MD5(NT hash, UTF-16LE(UPPER(user) + domain))            [MS-NLMP] 3.3.2 NTOWFv2
    NTProofStr    = HMAC-MD5(ResponseKeyNT, ServerChallenge + blob)
    SessionBaseKey = KeyExchangeKey = HMAC-MD5(ResponseKeyNT, NTProofStr)
    ExportedSessionKey = RC4(KeyExchangeKey, EncryptedRandomSessionKey) with KEY_EXCH, else KeyExchangeKey

24-byte (NTLMv1 / NTLM2 session) and LM-only responses are refused. The AUTHENTICATE MIC, HMAC-MD5 of all three
messages under the ExportedSessionKey, is checked whenever the client's MsvAvFlags say it is there.
The message signature of 3.4.4.2 (with extended session security) is provided for the SPNEGO mechListMIC.

Crypto comes from `cryptography` (HMAC-MD5, ARC4 from its decrepit algorithms) and hashlib (MD5); the NT hash
itself (MD4) is computed when a password is set, in smbsrv.auth.users.
"""

import dataclasses
import enum
import hashlib
import hmac as py_hmac
import os
import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher

from smbsrv.auth.errors import AuthError
from smbsrv.auth.users import User, UserDB
from smbsrv.fscc import times
from smbsrv.wire.status import NtStatus

NTLMSSP_SIGNATURE = b"NTLMSSP\x00"
NTLMSSP_NEGOTIATE_MESSAGE = 1
NTLMSSP_CHALLENGE_MESSAGE = 2
NTLMSSP_AUTHENTICATE_MESSAGE = 3

# NegotiateFlags ([MS-NLMP] 2.2.2.5)
NTLMSSP_NEGOTIATE_UNICODE = 0x00000001
NTLM_NEGOTIATE_OEM = 0x00000002
NTLMSSP_REQUEST_TARGET = 0x00000004
NTLMSSP_NEGOTIATE_SIGN = 0x00000010
NTLMSSP_NEGOTIATE_SEAL = 0x00000020
NTLMSSP_NEGOTIATE_LM_KEY = 0x00000080
NTLMSSP_NEGOTIATE_NTLM = 0x00000200
NTLMSSP_NEGOTIATE_ANONYMOUS = 0x00000800
NTLMSSP_NEGOTIATE_ALWAYS_SIGN = 0x00008000
NTLMSSP_TARGET_TYPE_SERVER = 0x00020000
NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
NTLMSSP_NEGOTIATE_TARGET_INFO = 0x00800000
NTLMSSP_NEGOTIATE_VERSION = 0x02000000
NTLMSSP_NEGOTIATE_128 = 0x20000000
NTLMSSP_NEGOTIATE_KEY_EXCH = 0x40000000
NTLMSSP_NEGOTIATE_56 = 0x80000000

# Flags we grant when the client asks for them ([MS-NLMP] 3.2.5.1.1). LM_KEY is never granted: NTLMv2 only.
_GRANTABLE_FLAGS = (
    NTLMSSP_NEGOTIATE_SIGN
    | NTLMSSP_NEGOTIATE_SEAL
    | NTLMSSP_NEGOTIATE_ALWAYS_SIGN
    | NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NTLMSSP_NEGOTIATE_VERSION
    | NTLMSSP_NEGOTIATE_128
    | NTLMSSP_NEGOTIATE_KEY_EXCH
    | NTLMSSP_NEGOTIATE_56
)

# AV_PAIR ids ([MS-NLMP] 2.2.2.1) and MsvAvFlags bits.
MsvAvEOL = 0
MsvAvNbComputerName = 1
MsvAvNbDomainName = 2
MsvAvDnsComputerName = 3
MsvAvDnsDomainName = 4
MsvAvFlags = 6
MsvAvTimestamp = 7
MSV_AV_FLAG_MIC_PRESENT = 0x00000002

# Our VERSION field ([MS-NLMP] 2.2.2.10): 10.0 build 20348, NTLMSSP_REVISION_W2K3 (15), as a Windows server says.
_SERVER_VERSION = struct.pack("<BBH3sB", 10, 0, 20348, b"\x00\x00\x00", 15)

_HEAD = struct.Struct("<8sI")  # Signature, MessageType
_FIELD = struct.Struct("<HHI")  # Len, MaxLen, BufferOffset
_FLAGS = struct.Struct("<I")
_CHALLENGE_FIXED = struct.Struct("<8sIHHII8s8sHHI8s")  # through Version: 56 bytes
_AV_PAIR = struct.Struct("<HH")
_FILETIME = struct.Struct("<Q")
_SIGNATURE = struct.Struct("<I8sI")  # NTLMSSP_MESSAGE_SIGNATURE with extended session security
_SEQ_NUM = struct.Struct("<I")

# AUTHENTICATE_MESSAGE field offsets ([MS-NLMP] 2.2.1.3).
_AUTH_LM_RESPONSE = 12
_AUTH_NT_RESPONSE = 20
_AUTH_DOMAIN = 28
_AUTH_USER = 36
_AUTH_WORKSTATION = 44
_AUTH_SESSION_KEY = 52
_AUTH_FLAGS = 60
_AUTH_MIC = 72
_AUTH_MIC_END = 88

_NTLMV1_RESPONSE_SIZE = 24
_NTPROOFSTR_SIZE = 16
_CLIENT_CHALLENGE_FIXED_SIZE = 28  # RespType .. Reserved3 of NTLMv2_CLIENT_CHALLENGE ([MS-NLMP] 2.2.2.7)

_C2S_SIGNING = b"session key to client-to-server signing key magic constant\x00"
_S2C_SIGNING = b"session key to server-to-client signing key magic constant\x00"
_C2S_SEALING = b"session key to client-to-server sealing key magic constant\x00"
_S2C_SEALING = b"session key to server-to-client sealing key magic constant\x00"


def hmac_md5(key: bytes, *parts: bytes | memoryview) -> bytes:
    mac = hmac.HMAC(key, hashes.MD5())
    for part in parts:
        mac.update(part)
    return mac.finalize()


def rc4(key: bytes, data: bytes) -> bytes:
    """One-shot RC4K ([MS-NLMP] 6), used for KEY_EXCH."""
    return Cipher(ARC4(key), mode=None).encryptor().update(data)


@dataclasses.dataclass(frozen=True)
class TargetNames:
    """How the server names itself in the CHALLENGE ([MS-NLMP] 2.2.1.2 TargetName, 2.2.2.1 AV_PAIRs).

    A standalone server is its own domain, so the NetBIOS domain is the NetBIOS computer name, as Samba does.
    """

    netbios_computer: str
    netbios_domain: str
    dns_computer: str
    dns_domain: str

    @classmethod
    def for_server(cls, server_name: str) -> "TargetNames":
        netbios = server_name.split(".", 1)[0].upper()[:15] or "SMBSRV"
        dns = server_name.lower() or "smbsrv"
        return cls(netbios, netbios, dns, dns)


def _av_pair(av_id: int, value: bytes) -> bytes:
    return _AV_PAIR.pack(av_id, len(value)) + value


def parse_av_pairs(data: bytes | bytearray | memoryview) -> dict[int, bytes]:
    """Decode an AV_PAIR list ([MS-NLMP] 2.2.2.1); stops at MsvAvEOL or at the end of the data."""
    pairs: dict[int, bytes] = {}
    pos = 0
    while pos + _AV_PAIR.size <= len(data):
        av_id, av_len = _AV_PAIR.unpack_from(data, pos)
        pos += _AV_PAIR.size
        if av_id == MsvAvEOL:
            break
        if pos + av_len > len(data):
            raise AuthError("AV_PAIR runs past the end of its buffer")
        pairs.setdefault(av_id, bytes(data[pos : pos + av_len]))
        pos += av_len
    return pairs


def _check_ntlmv2_structure(nt_response: bytes) -> None:
    """A response longer than NTLMv1's must parse as NTLMv2_RESPONSE ([MS-NLMP] 2.2.2.8): NTProofStr, the fixed
    part of NTLMv2_CLIENT_CHALLENGE and AV_PAIRs none of which runs past the end. A blob that does not parse is
    malformed input, STATUS_INVALID_PARAMETER, before any account is looked at (Samba's ntlmssp_server_preauth
    does the same; smbtorture smb2.session.ntlmssp_bug14932 sends a NetApp blob whose first AvLen is 0x8108).
    As in Samba's parser, fewer than 4 bytes after the last pair are ignored, but an AV_PAIR list of 1-3 bytes is
    too short for its first header."""
    if len(nt_response) < _NTPROOFSTR_SIZE + _CLIENT_CHALLENGE_FIXED_SIZE:
        raise AuthError("NTLMv2 response too short", NtStatus.STATUS_INVALID_PARAMETER)
    pairs = memoryview(nt_response)[_NTPROOFSTR_SIZE + _CLIENT_CHALLENGE_FIXED_SIZE :]
    if 0 < len(pairs) < _AV_PAIR.size:
        raise AuthError("NTLMv2 AV_PAIR list too short", NtStatus.STATUS_INVALID_PARAMETER)
    pos = 0
    while pos + _AV_PAIR.size <= len(pairs):
        av_id, av_len = _AV_PAIR.unpack_from(pairs, pos)
        if av_id == MsvAvEOL:
            return
        pos += _AV_PAIR.size + av_len
        if pos > len(pairs):
            raise AuthError("NTLMv2 AV_PAIR runs past the end of the response", NtStatus.STATUS_INVALID_PARAMETER)


def message_type(token: bytes) -> int:
    if len(token) < _HEAD.size:
        raise AuthError("NTLMSSP message too short")
    signature, msg_type = _HEAD.unpack_from(token, 0)
    if signature != NTLMSSP_SIGNATURE:
        raise AuthError("not an NTLMSSP message")
    return int(msg_type)


def _payload(message: bytes, field_offset: int) -> bytes:
    """The bytes a Len/MaxLen/BufferOffset triple at `field_offset` points to, bounds-checked."""
    if field_offset + _FIELD.size > len(message):
        raise AuthError("NTLMSSP message too short for its fields")
    length, _max_length, offset = _FIELD.unpack_from(message, field_offset)
    if length == 0:
        return b""
    if offset + length > len(message):
        raise AuthError("NTLMSSP field points past the end of the message")
    return message[offset : offset + length]


@dataclasses.dataclass(frozen=True)
class AuthenticateMessage:
    """The parts of an AUTHENTICATE_MESSAGE the acceptor uses ([MS-NLMP] 2.2.1.3)."""

    lm_challenge_response: bytes
    nt_challenge_response: bytes
    domain_name: str
    user_name: str
    workstation: str
    encrypted_random_session_key: bytes
    negotiate_flags: int
    has_mic_field: bool

    @classmethod
    def decode(cls, message: bytes) -> "AuthenticateMessage":
        if message_type(message) != NTLMSSP_AUTHENTICATE_MESSAGE:
            raise AuthError("expected an NTLMSSP AUTHENTICATE message")
        if len(message) < _AUTH_FLAGS + _FLAGS.size:
            raise AuthError("AUTHENTICATE message too short")
        (flags,) = _FLAGS.unpack_from(message, _AUTH_FLAGS)
        encoding = "utf-16-le" if flags & NTLMSSP_NEGOTIATE_UNICODE else "latin-1"

        def text(field_offset: int) -> str:
            return _payload(message, field_offset).decode(encoding, errors="replace")

        # The MIC sits at @72 only if no payload starts before @88 (the optional Version and MIC come first).
        payload_starts = [
            _FIELD.unpack_from(message, offset)[2]
            for offset in (_AUTH_LM_RESPONSE, _AUTH_NT_RESPONSE, _AUTH_DOMAIN, _AUTH_USER, _AUTH_WORKSTATION)
            if _FIELD.unpack_from(message, offset)[0]
        ]
        has_mic_field = len(message) >= _AUTH_MIC_END and all(
            start >= _AUTH_MIC_END for start in payload_starts
        )
        return cls(
            lm_challenge_response=_payload(message, _AUTH_LM_RESPONSE),
            nt_challenge_response=_payload(message, _AUTH_NT_RESPONSE),
            domain_name=text(_AUTH_DOMAIN),
            user_name=text(_AUTH_USER),
            workstation=text(_AUTH_WORKSTATION),
            encrypted_random_session_key=_payload(message, _AUTH_SESSION_KEY),
            negotiate_flags=flags,
            has_mic_field=has_mic_field,
        )


def filetime_now() -> bytes:
    return _FILETIME.pack(times.filetime_now())


@dataclasses.dataclass(frozen=True)
class NtlmOutcome:
    """What an AUTHENTICATE proved. session_key is the ExportedSessionKey; None for guest and anonymous."""

    user: User | None
    is_guest: bool
    is_anonymous: bool
    session_key: bytes | None
    account_name: str
    domain_name: str


class MessageSealing:
    """The per-direction signing state of [MS-NLMP] 3.4.4.2 (extended session security), for mechListMIC."""

    def __init__(
        self, exported_session_key: bytes, flags: int, signing_magic: bytes, sealing_magic: bytes
    ) -> None:
        self._signing_key = hashlib.md5(exported_session_key + signing_magic).digest()
        if flags & NTLMSSP_NEGOTIATE_128:
            seal_base = exported_session_key
        elif flags & NTLMSSP_NEGOTIATE_56:
            seal_base = exported_session_key[:7]
        else:
            seal_base = exported_session_key[:5]
        sealing_key = hashlib.md5(seal_base + sealing_magic).digest()
        # The RC4 stream runs on across messages of one direction ([MS-NLMP] 3.4.4.2).
        self._handle = Cipher(ARC4(sealing_key), mode=None).encryptor()
        self._key_exch = bool(flags & NTLMSSP_NEGOTIATE_KEY_EXCH)
        self._seq_num = 0

    def signature(self, message: bytes) -> bytes:
        seq = _SEQ_NUM.pack(self._seq_num)
        checksum = hmac_md5(self._signing_key, seq, message)[:8]
        if self._key_exch:
            checksum = self._handle.update(checksum)
        self._seq_num += 1
        return _SIGNATURE.pack(1, checksum, self._seq_num - 1)


class NtlmState(enum.Enum):
    EXPECT_NEGOTIATE = 1
    EXPECT_AUTHENTICATE = 2
    DONE = 3


class NtlmAcceptor:
    """The server side of one NTLM exchange."""

    def __init__(
        self, users: UserDB, names: TargetNames, *, allow_guest: bool, allow_anonymous: bool
    ) -> None:
        self._users = users
        self._names = names
        self._allow_guest = allow_guest
        self._allow_anonymous = allow_anonymous
        self.state = NtlmState.EXPECT_NEGOTIATE
        self._negotiate_message = b""
        self._challenge_message = b""
        self._server_challenge = b""
        self.negotiated_flags = 0
        self._outgoing: MessageSealing | None = None
        self._incoming: MessageSealing | None = None

    # -- NEGOTIATE -> CHALLENGE ([MS-NLMP] 3.2.5.1.1) --

    def accept_negotiate(self, token: bytes) -> bytes:
        if self.state is not NtlmState.EXPECT_NEGOTIATE:
            raise AuthError("NTLMSSP NEGOTIATE out of order")
        if message_type(token) != NTLMSSP_NEGOTIATE_MESSAGE or len(token) < _HEAD.size + _FLAGS.size:
            raise AuthError("expected an NTLMSSP NEGOTIATE message")
        (client_flags,) = _FLAGS.unpack_from(token, _HEAD.size)
        flags = NTLMSSP_NEGOTIATE_NTLM | NTLMSSP_NEGOTIATE_TARGET_INFO | NTLMSSP_TARGET_TYPE_SERVER
        flags |= NTLMSSP_REQUEST_TARGET  # we always send a TargetName
        flags |= NTLMSSP_NEGOTIATE_UNICODE if client_flags & NTLMSSP_NEGOTIATE_UNICODE else NTLM_NEGOTIATE_OEM
        flags |= client_flags & _GRANTABLE_FLAGS
        self._server_challenge = os.urandom(8)
        self._negotiate_message = bytes(token)
        self._challenge_message = self._build_challenge(flags)
        self.negotiated_flags = flags
        self.state = NtlmState.EXPECT_AUTHENTICATE
        return self._challenge_message

    def _build_challenge(self, flags: int) -> bytes:
        names = self._names
        unicode = bool(flags & NTLMSSP_NEGOTIATE_UNICODE)
        target_name = names.netbios_domain.encode("utf-16-le" if unicode else "ascii", errors="replace")
        target_info = b"".join(
            [
                _av_pair(MsvAvNbDomainName, names.netbios_domain.encode("utf-16-le")),
                _av_pair(MsvAvNbComputerName, names.netbios_computer.encode("utf-16-le")),
                _av_pair(MsvAvDnsDomainName, names.dns_domain.encode("utf-16-le")),
                _av_pair(MsvAvDnsComputerName, names.dns_computer.encode("utf-16-le")),
                # With a timestamp here, NTLMv2 clients add a MIC to their AUTHENTICATE ([MS-NLMP] 3.1.5.1.2).
                _av_pair(MsvAvTimestamp, filetime_now()),
                _av_pair(MsvAvEOL, b""),
            ]
        )
        target_name_offset = _CHALLENGE_FIXED.size
        target_info_offset = target_name_offset + len(target_name)
        fixed = _CHALLENGE_FIXED.pack(
            NTLMSSP_SIGNATURE,
            NTLMSSP_CHALLENGE_MESSAGE,
            len(target_name),
            len(target_name),
            target_name_offset,
            flags,
            self._server_challenge,
            bytes(8),  # Reserved
            len(target_info),
            len(target_info),
            target_info_offset,
            _SERVER_VERSION if flags & NTLMSSP_NEGOTIATE_VERSION else bytes(8),
        )
        return fixed + target_name + target_info

    # -- AUTHENTICATE ([MS-NLMP] 3.2.5.1.2, 3.3.2) --

    def accept_authenticate(self, token: bytes) -> NtlmOutcome:
        if self.state is not NtlmState.EXPECT_AUTHENTICATE:
            raise AuthError("NTLMSSP AUTHENTICATE out of order")
        self.state = NtlmState.DONE
        message = AuthenticateMessage.decode(bytes(token))
        # The client may only drop flags we offered, not add new ones.
        flags = self.negotiated_flags & message.negotiate_flags
        self.negotiated_flags = flags
        nt_response = message.nt_challenge_response

        if self._is_anonymous(message):
            if self._allow_anonymous:
                return self._outcome(message, user=None, is_anonymous=True)
            if self._allow_guest:
                return self._outcome(message, user=None, is_guest=True)
            raise AuthError("anonymous logon refused")
        if len(nt_response) == _NTLMV1_RESPONSE_SIZE:
            raise AuthError(f"NTLMv1 response refused for {message.user_name!r}")
        if not nt_response:
            raise AuthError(f"LM-only response refused for {message.user_name!r}")
        _check_ntlmv2_structure(nt_response)

        user = self._users.lookup(message.user_name)
        if user is None:
            # Only unknown accounts become guest ("map to guest = Bad User"); a known user with a wrong password
            # fails, so a mistyped password never silently turns into a guest session.
            if self._allow_guest:
                return self._outcome(message, user=None, is_guest=True)
            raise AuthError(f"unknown user {message.user_name!r}")

        session_base_key = self._check_ntlmv2(user, message)
        if session_base_key is None:
            raise AuthError(f"wrong password for {message.user_name!r}")
        exported_session_key = self._exported_session_key(session_base_key, message, flags)
        self._check_mic(message, bytes(token), exported_session_key)
        self._outgoing = MessageSealing(exported_session_key, flags, _S2C_SIGNING, _S2C_SEALING)
        self._incoming = MessageSealing(exported_session_key, flags, _C2S_SIGNING, _C2S_SEALING)
        return self._outcome(message, user=user, session_key=exported_session_key)

    @staticmethod
    def _is_anonymous(message: AuthenticateMessage) -> bool:
        # [MS-NLMP] 3.2.5.1.2 / 3.3.1: empty user name, empty NT response, LM response empty or one zero byte.
        return (
            message.user_name == ""
            and message.nt_challenge_response == b""
            and message.lm_challenge_response in (b"", b"\x00")
        )

    def _check_ntlmv2(self, user: User, message: AuthenticateMessage) -> bytes | None:
        """Return the SessionBaseKey if the NTLMv2 response proves the password, else None."""
        nt_proof_str = message.nt_challenge_response[:_NTPROOFSTR_SIZE]
        client_blob = message.nt_challenge_response[_NTPROOFSTR_SIZE:]
        # Clients differ in the domain they fold into NTOWFv2; like Samba, try what was sent, its upper-case
        # form and no domain at all.
        domains = dict.fromkeys([message.domain_name, message.domain_name.upper(), ""])
        for domain in domains:
            identity = (message.user_name.upper() + domain).encode("utf-16-le")
            response_key_nt = hmac_md5(user.nt_hash, identity)
            expected = hmac_md5(response_key_nt, self._server_challenge, client_blob)
            if py_hmac.compare_digest(expected, nt_proof_str):
                return hmac_md5(response_key_nt, nt_proof_str)
        return None

    @staticmethod
    def _exported_session_key(session_base_key: bytes, message: AuthenticateMessage, flags: int) -> bytes:
        # NTLMv2: KeyExchangeKey = SessionBaseKey ([MS-NLMP] 3.4.5.1).
        if not flags & NTLMSSP_NEGOTIATE_KEY_EXCH:
            return session_base_key
        if len(message.encrypted_random_session_key) != 16:
            raise AuthError("KEY_EXCH negotiated without a 16-byte EncryptedRandomSessionKey")
        return rc4(session_base_key, message.encrypted_random_session_key)

    def _check_mic(self, message: AuthenticateMessage, token: bytes, exported_session_key: bytes) -> None:
        av_pairs = parse_av_pairs(
            memoryview(message.nt_challenge_response)[_NTPROOFSTR_SIZE + _CLIENT_CHALLENGE_FIXED_SIZE :]
        )
        av_flags_value = av_pairs.get(MsvAvFlags, b"")
        av_flags = int.from_bytes(av_flags_value[:4], "little") if len(av_flags_value) >= 4 else 0
        if not av_flags & MSV_AV_FLAG_MIC_PRESENT:
            return
        if not message.has_mic_field:
            raise AuthError("MsvAvFlags announce a MIC but the AUTHENTICATE message has none")
        received_mic = token[_AUTH_MIC:_AUTH_MIC_END]
        zeroed = token[:_AUTH_MIC] + bytes(16) + token[_AUTH_MIC_END:]
        expected = hmac_md5(exported_session_key, self._negotiate_message, self._challenge_message, zeroed)
        if not py_hmac.compare_digest(expected, received_mic):
            raise AuthError(f"AUTHENTICATE MIC mismatch for {message.user_name!r}")

    @staticmethod
    def _outcome(
        message: AuthenticateMessage,
        *,
        user: User | None,
        session_key: bytes | None = None,
        is_guest: bool = False,
        is_anonymous: bool = False,
    ) -> NtlmOutcome:
        return NtlmOutcome(
            user=user,
            is_guest=is_guest,
            is_anonymous=is_anonymous,
            session_key=session_key,
            account_name=message.user_name,
            domain_name=message.domain_name,
        )

    # -- message signatures for the SPNEGO mechListMIC ([MS-NLMP] 3.4.4.2) --

    def sign(self, data: bytes) -> bytes:
        if self._outgoing is None:
            raise AuthError("no NTLM session key to sign with")
        return self._outgoing.signature(data)

    def verify(self, data: bytes, signature: bytes) -> bool:
        if self._incoming is None:
            raise AuthError("no NTLM session key to verify with")
        if not self.negotiated_flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY:
            # Pre-ESS (CRC32) signatures belong to NTLMv1-era clients; nothing we accept sends them.
            return False
        return py_hmac.compare_digest(self._incoming.signature(data), signature)
