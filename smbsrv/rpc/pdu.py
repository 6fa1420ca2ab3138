"""Connection-oriented DCE/RPC PDUs ([C706] 12.6, with the [MS-RPCE] 2.2.2 extensions).

Decoders for what a client sends (the common header, bind / alter_context, request) and encoders for what the
server answers (bind_ack / alter_context_resp, bind_nak, response, fault). Everything is little-endian with
ASCII characters: the server always sends NDR data representation 0x10 ("packed_drep" [C706] 14.1), and a
client PDU in another representation is refused by the association before any decoder runs.

A malformed PDU raises PduError; the association turns it into a bind_nak or a fault.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass


class PduError(Exception):
    """A PDU that cannot be decoded (truncated, inconsistent lengths, wrong version)."""


class PType(enum.IntEnum):
    """PDU types, [C706] 12.6.3.1 (connection-oriented ones) plus auth3 from [MS-RPCE] 2.2.2.11."""

    REQUEST = 0
    PING = 1
    RESPONSE = 2
    FAULT = 3
    WORKING = 4
    NOCALL = 5
    REJECT = 6
    ACK = 7
    CL_CANCEL = 8
    FACK = 9
    CANCEL_ACK = 10
    BIND = 11
    BIND_ACK = 12
    BIND_NAK = 13
    ALTER_CONTEXT = 14
    ALTER_CONTEXT_RESP = 15
    AUTH3 = 16
    SHUTDOWN = 17
    CO_CANCEL = 18
    ORPHANED = 19


# pfc_flags, [C706] 12.6.3.1. [MS-RPCE] 2.2.2.3 reuses 0x04 as PFC_SUPPORT_HEADER_SIGN on bind-type PDUs.
PFC_FIRST_FRAG = 0x01
PFC_LAST_FRAG = 0x02
PFC_PENDING_CANCEL = 0x04
PFC_SUPPORT_HEADER_SIGN = 0x04
PFC_CONC_MPX = 0x10
PFC_DID_NOT_EXECUTE = 0x20
PFC_MAYBE = 0x40
PFC_OBJECT_UUID = 0x80

# p_cont_def_result_t, [C706] 12.6.3.1; negotiate_ack is [MS-RPCE] 2.2.2.4.
ACCEPTANCE = 0
USER_REJECTION = 1
PROVIDER_REJECTION = 2
NEGOTIATE_ACK = 3

# p_provider_reason_t: why one presentation context was rejected, [C706] 12.6.3.1.
REASON_NOT_SPECIFIED = 0
ABSTRACT_SYNTAX_NOT_SUPPORTED = 1
PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED = 2
LOCAL_LIMIT_EXCEEDED = 3

# p_reject_reason_t: why a whole bind was refused with bind_nak, [C706] 12.6.3.1 and [MS-RPCE] 2.2.2.5.
BIND_NAK_REASON_NOT_SPECIFIED = 0
BIND_NAK_TEMPORARY_CONGESTION = 1
BIND_NAK_LOCAL_LIMIT_EXCEEDED = 2
BIND_NAK_PROTOCOL_VERSION_NOT_SUPPORTED = 4
BIND_NAK_USER_DATA_NOT_READABLE = 6
BIND_NAK_AUTHENTICATION_TYPE_NOT_RECOGNIZED = 8

# Fault status codes, [C706] appendix E and [MS-RPCE] 2.2.2.7.
NCA_S_OP_RNG_ERROR = 0x1C010002
NCA_S_UNK_IF = 0x1C010003
NCA_S_PROTO_ERROR = 0x1C01000B
NCA_S_FAULT_REMOTE_NO_MEMORY = 0x1C00001B
NCA_S_UNSUPPORTED_TYPE = 0x1C010017
RPC_X_BAD_STUB_DATA = 0x000006F7  # [MS-RPCE] 2.2.2.7 / [MS-ERREF]: stub data failed to unmarshal

RPC_VERS = 5
RPC_VERS_MINOR = 0  # [C706] 12.6.3.1: minor 0 and 1 are both read; the server sends 0 like Windows and Samba.

# packed_drep for little-endian integers, ASCII characters and IEEE floats, [C706] 14.1.
NDR_LITTLE_ENDIAN_DREP = b"\x10\x00\x00\x00"

COMMON_HEADER = struct.Struct("<BBBB4sHHI")  # rpc_vers .. call_id, 16 bytes
COMMON_HEADER_SIZE = COMMON_HEADER.size
_BIND_FIXED = struct.Struct("<HHIBBH")  # max_xmit_frag, max_recv_frag, assoc_group_id, n_context_elem, 2 rsvd
_CONTEXT_ELEM = struct.Struct("<HBB")  # p_cont_id, n_transfer_syn, reserved
_SYNTAX_ID = struct.Struct("<16sI")  # if_uuid, if_version
_REQUEST_FIXED = struct.Struct("<IHH")  # alloc_hint, p_cont_id, opnum
_RESPONSE_FIXED = struct.Struct("<IHBB")  # alloc_hint, p_cont_id, cancel_count, reserved
_FAULT_FIXED = struct.Struct("<IHBBII")  # alloc_hint, p_cont_id, cancel_count, reserved, status, reserved2
_BIND_ACK_FIXED = struct.Struct("<HHIH")  # max_xmit_frag, max_recv_frag, assoc_group_id, sec_addr.length
_RESULT_LIST_HEAD = struct.Struct("<BBH")  # n_results, reserved, reserved2
_RESULT = struct.Struct("<HH")  # result, reason (then a p_syntax_id_t)
_BIND_NAK_FIXED = struct.Struct("<HB")  # provider_reject_reason, n_protocols
_VERSION = struct.Struct("<BB")  # rpc_vers, rpc_vers_minor
_SEC_TRAILER_SIZE = 8  # auth_type, auth_level, auth_pad_length, auth_reserved, auth_context_id

REQUEST_HEADER_SIZE = COMMON_HEADER_SIZE + _REQUEST_FIXED.size  # 24
RESPONSE_HEADER_SIZE = COMMON_HEADER_SIZE + _RESPONSE_FIXED.size  # 24


@dataclass(frozen=True, slots=True)
class SyntaxId:
    """p_syntax_id_t ([C706] 12.6.3.1): an interface or transfer syntax UUID and its major.minor version."""

    if_uuid: uuid.UUID
    if_version_major: int
    if_version_minor: int

    @classmethod
    def decode(cls, data: memoryview, offset: int) -> SyntaxId:
        raw_uuid, if_version = _SYNTAX_ID.unpack_from(data, offset)
        # The low 16 bits carry the major version, the high 16 bits the minor one ([C706] 12.6.3.1).
        return cls(uuid.UUID(bytes_le=bytes(raw_uuid)), if_version & 0xFFFF, if_version >> 16)

    def encode(self) -> bytes:
        return _SYNTAX_ID.pack(self.if_uuid.bytes_le, self.if_version_major | (self.if_version_minor << 16))


# The all-zero syntax answered for rejected contexts ([C706] 12.6.4.4: "transfer_syntax ... nil").
NIL_SYNTAX = SyntaxId(uuid.UUID(int=0), 0, 0)


@dataclass(frozen=True, slots=True)
class CommonHeader:
    """The 16 bytes that start every connection-oriented PDU, [C706] 12.6.3.1."""

    rpc_vers: int
    rpc_vers_minor: int
    ptype: int
    pfc_flags: int
    packed_drep: bytes
    frag_length: int
    auth_length: int
    call_id: int

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> CommonHeader:
        """Decode the header at the start of `data` (at least 16 bytes).

        frag_length, auth_length and call_id are read in the byte order the client's packed_drep announces,
        so that even a big-endian PDU can be framed (and refused) without losing the stream position.
        """
        if len(data) < COMMON_HEADER_SIZE:
            raise PduError("truncated common header")
        rpc_vers, rpc_vers_minor, ptype, pfc_flags, drep, frag_length, auth_length, call_id = (
            COMMON_HEADER.unpack_from(data, 0)
        )
        if not drep[0] & 0x10:
            # Big-endian integer representation: the three multi-byte fields were unpacked the wrong way round.
            frag_length = int.from_bytes(frag_length.to_bytes(2, "little"), "big")
            auth_length = int.from_bytes(auth_length.to_bytes(2, "little"), "big")
            call_id = int.from_bytes(call_id.to_bytes(4, "little"), "big")
        return cls(rpc_vers, rpc_vers_minor, ptype, pfc_flags, bytes(drep), frag_length, auth_length, call_id)

    @property
    def is_little_endian_ascii(self) -> bool:
        """True for the only data representation this server reads: little-endian integers, ASCII characters."""
        return (self.packed_drep[0] & 0xF0) == 0x10 and (self.packed_drep[0] & 0x0F) == 0


def _encode_header(ptype: PType, pfc_flags: int, frag_length: int, call_id: int) -> bytes:
    return COMMON_HEADER.pack(
        RPC_VERS, RPC_VERS_MINOR, ptype, pfc_flags, NDR_LITTLE_ENDIAN_DREP, frag_length, 0, call_id
    )


def _body_end(header: CommonHeader, body_start: int) -> int:
    """End of the PDU body, before the optional auth verifier ([C706] 12.6.3.1, [MS-RPCE] 2.2.2.11).

    The sec_trailer and auth_value sit at the end of the fragment; the auth padding before the trailer is
    left inside the body since this server accepts no authenticated PDUs anyway.
    """
    end = header.frag_length
    if header.auth_length:
        end -= header.auth_length + _SEC_TRAILER_SIZE
    if end < body_start:
        raise PduError("auth_length larger than the fragment")
    return end


@dataclass(frozen=True, slots=True)
class PresentationContext:
    """p_cont_elem_t, [C706] 12.6.3.1: one abstract syntax offered with one or more transfer syntaxes."""

    p_cont_id: int
    abstract_syntax: SyntaxId
    transfer_syntaxes: tuple[SyntaxId, ...]


@dataclass(frozen=True, slots=True)
class BindPdu:
    """bind ([C706] 12.6.4.3) or alter_context ([C706] 12.6.4.1): both carry the same body."""

    header: CommonHeader
    max_xmit_frag: int
    max_recv_frag: int
    assoc_group_id: int
    p_context_elem: tuple[PresentationContext, ...]

    @classmethod
    def decode(cls, header: CommonHeader, pdu: memoryview) -> BindPdu:
        """Decode a whole bind / alter_context fragment (`pdu` is exactly frag_length bytes)."""
        end = _body_end(header, COMMON_HEADER_SIZE)
        offset = COMMON_HEADER_SIZE
        if offset + _BIND_FIXED.size > end:
            raise PduError("truncated bind")
        max_xmit_frag, max_recv_frag, assoc_group_id, n_context_elem, _, _ = _BIND_FIXED.unpack_from(
            pdu, offset
        )
        offset += _BIND_FIXED.size
        contexts = []
        for _ in range(n_context_elem):
            if offset + _CONTEXT_ELEM.size + _SYNTAX_ID.size > end:
                raise PduError("truncated presentation context")
            p_cont_id, n_transfer_syn, _ = _CONTEXT_ELEM.unpack_from(pdu, offset)
            offset += _CONTEXT_ELEM.size
            abstract_syntax = SyntaxId.decode(pdu, offset)
            offset += _SYNTAX_ID.size
            if n_transfer_syn == 0:
                raise PduError("presentation context without transfer syntaxes")
            if offset + n_transfer_syn * _SYNTAX_ID.size > end:
                raise PduError("truncated transfer syntaxes")
            transfer = tuple(
                SyntaxId.decode(pdu, offset + i * _SYNTAX_ID.size) for i in range(n_transfer_syn)
            )
            offset += n_transfer_syn * _SYNTAX_ID.size
            contexts.append(PresentationContext(p_cont_id, abstract_syntax, transfer))
        return cls(header, max_xmit_frag, max_recv_frag, assoc_group_id, tuple(contexts))


@dataclass(frozen=True, slots=True)
class RequestPdu:
    """One request fragment, [C706] 12.6.4.9."""

    header: CommonHeader
    alloc_hint: int
    p_cont_id: int
    opnum: int
    object: uuid.UUID | None
    stub_data: bytes

    @classmethod
    def decode(cls, header: CommonHeader, pdu: memoryview) -> RequestPdu:
        body_start = REQUEST_HEADER_SIZE
        if header.pfc_flags & PFC_OBJECT_UUID:
            body_start += 16
        if header.frag_length < body_start:
            raise PduError("truncated request header")
        alloc_hint, p_cont_id, opnum = _REQUEST_FIXED.unpack_from(pdu, COMMON_HEADER_SIZE)
        obj = None
        if header.pfc_flags & PFC_OBJECT_UUID:
            obj = uuid.UUID(bytes_le=bytes(pdu[REQUEST_HEADER_SIZE:body_start]))
        end = _body_end(header, body_start)
        return cls(header, alloc_hint, p_cont_id, opnum, obj, bytes(pdu[body_start:end]))


@dataclass(frozen=True, slots=True)
class ContextResult:
    """p_result_t, [C706] 12.6.3.1: the answer to one presentation context."""

    result: int
    reason: int
    transfer_syntax: SyntaxId


def encode_bind_ack(
    ptype: PType,
    call_id: int,
    max_xmit_frag: int,
    max_recv_frag: int,
    assoc_group_id: int,
    sec_addr: bytes,
    results: tuple[ContextResult, ...],
) -> bytes:
    """bind_ack ([C706] 12.6.4.4) or alter_context_resp ([C706] 12.6.4.2); both have the same body.

    `sec_addr` is the port_spec without its terminating NUL (empty for no secondary address).
    """
    port_spec = sec_addr + b"\x00" if sec_addr else b""
    body = bytearray(_BIND_ACK_FIXED.pack(max_xmit_frag, max_recv_frag, assoc_group_id, len(port_spec)))
    body += port_spec
    # [C706] 12.6.4.4: the result list starts 4-byte aligned, counted from the start of the PDU.
    body += bytes(-(COMMON_HEADER_SIZE + len(body)) % 4)
    body += _RESULT_LIST_HEAD.pack(len(results), 0, 0)
    for item in results:
        body += _RESULT.pack(item.result, item.reason)
        body += item.transfer_syntax.encode()
    return (
        _encode_header(ptype, PFC_FIRST_FRAG | PFC_LAST_FRAG, COMMON_HEADER_SIZE + len(body), call_id) + body
    )


def encode_bind_nak(call_id: int, reject_reason: int) -> bytes:
    """bind_nak, [C706] 12.6.4.5, listing 5.0 as the one protocol version supported."""
    body = _BIND_NAK_FIXED.pack(reject_reason, 1) + _VERSION.pack(RPC_VERS, RPC_VERS_MINOR)
    # Pad to a multiple of 4 as Windows and Samba do; the client reads only what n_protocols announces.
    body += bytes(-len(body) % 4)
    frag_length = COMMON_HEADER_SIZE + len(body)
    return _encode_header(PType.BIND_NAK, PFC_FIRST_FRAG | PFC_LAST_FRAG, frag_length, call_id) + body


def encode_response(
    call_id: int, pfc_flags: int, alloc_hint: int, p_cont_id: int, stub: bytes | memoryview
) -> bytes:
    """One response fragment, [C706] 12.6.4.10."""
    frag_length = RESPONSE_HEADER_SIZE + len(stub)
    return (
        _encode_header(PType.RESPONSE, pfc_flags, frag_length, call_id)
        + _RESPONSE_FIXED.pack(alloc_hint, p_cont_id, 0, 0)
        + bytes(stub)
    )


def encode_fault(call_id: int, p_cont_id: int, status: int, *, did_not_execute: bool) -> bytes:
    """A fault PDU, [C706] 12.6.4.7.

    PFC_DID_NOT_EXECUTE tells the client the call had no effect, which is true for every fault this server
    sends before dispatching (unknown opnum, undecodable stub, protocol errors).
    """
    flags = PFC_FIRST_FRAG | PFC_LAST_FRAG | (PFC_DID_NOT_EXECUTE if did_not_execute else 0)
    frag_length = COMMON_HEADER_SIZE + _FAULT_FIXED.size
    return _encode_header(PType.FAULT, flags, frag_length, call_id) + _FAULT_FIXED.pack(
        0, p_cont_id, 0, 0, status, 0
    )
