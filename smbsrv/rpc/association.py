"""The server side of one connection-oriented DCE/RPC association ([C706] 12 and 9.3, [MS-RPCE] 3.3.3).

Bytes from the client go in, whole PDUs to send come out; there is no I/O. The association negotiates
presentation contexts (bind / alter_context), reassembles fragmented requests, dispatches each call to the
interface bound to its context and cuts the response into fragments of the negotiated max_xmit_frag.

What this server supports, and how it answers the rest:
- transfer syntax NDR 2.0 only. NDR64 and the [MS-RPCE] 3.3.1.5.3 bind time feature negotiation contexts get
  provider_rejection with proposed_transfer_syntaxes_not_supported, which is what a server without those
  extensions answers; the client then uses its NDR 2.0 context.
- an abstract syntax no interface implements: provider_rejection, abstract_syntax_not_supported.
- no RPC-level authentication (the SMB session already identifies the caller): a bind with an auth verifier is
  refused with bind_nak authentication_type_not_recognized.
- only little-endian, ASCII data representations; others are refused (bind_nak user_data_not_readable,
  fault nca_s_unsupported_type). No current client sends anything else.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from smbsrv.rpc.pdu import (
    ABSTRACT_SYNTAX_NOT_SUPPORTED,
    ACCEPTANCE,
    BIND_NAK_AUTHENTICATION_TYPE_NOT_RECOGNIZED,
    BIND_NAK_PROTOCOL_VERSION_NOT_SUPPORTED,
    BIND_NAK_REASON_NOT_SPECIFIED,
    BIND_NAK_USER_DATA_NOT_READABLE,
    COMMON_HEADER_SIZE,
    NCA_S_FAULT_REMOTE_NO_MEMORY,
    NCA_S_PROTO_ERROR,
    NCA_S_UNK_IF,
    NCA_S_UNSUPPORTED_TYPE,
    NIL_SYNTAX,
    PFC_FIRST_FRAG,
    PFC_LAST_FRAG,
    PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED,
    PROVIDER_REJECTION,
    REASON_NOT_SPECIFIED,
    RESPONSE_HEADER_SIZE,
    RPC_VERS,
    BindPdu,
    CommonHeader,
    ContextResult,
    PduError,
    PresentationContext,
    PType,
    RequestPdu,
    SyntaxId,
    encode_bind_ack,
    encode_bind_nak,
    encode_fault,
    encode_response,
)

# NDR 2.0, [C706] appendix I / [MS-RPCE] 2.2.4.12.
NDR_TRANSFER_SYNTAX = SyntaxId(uuid.UUID("8a885d04-1ceb-11c9-9fe8-08002b104860"), 2, 0)
# NDR64, [MS-RPCE] 2.2.4.12: recognised only to be refused.
NDR64_TRANSFER_SYNTAX = SyntaxId(uuid.UUID("71710533-beba-4937-8319-b5dbef9ccc36"), 1, 0)
# [MS-RPCE] 3.3.1.5.3: a transfer syntax whose UUID starts 6CB71C2C-9812-4540 carries the bind time feature
# negotiation bitmask in its last eight bytes.
_BIND_TIME_FEATURE_FIELDS = (0x6CB71C2C, 0x9812, 0x4540)

# The largest fragment this server sends or accepts on a named pipe: Windows and Samba both use 4280 for
# ncacn_np, which fits one SMB2 READ of a client that asks for small reads.
MAX_FRAG = 4280
# [C706] "MustRecvFragSize": every implementation receives fragments of 1432 bytes, so a client
# offering less is not believed; the negotiated value never drops below this.
MIN_FRAG = 1432
# A request larger than this is refused: srvsvc requests are a few hundred bytes.
MAX_REQUEST_STUB = 1 << 20

# assoc_group_id values handed out when the client asks for a new group ([C706] 12.6.4.3: 0 means "new").
_assoc_group_ids = itertools.count(0x1000)


class RpcFault(Exception):
    """Raised by an interface to answer the call with a fault PDU carrying `status`."""

    def __init__(self, status: int) -> None:
        super().__init__(f"fault 0x{status:08x}")
        self.status = status


class RpcInterface(Protocol):
    """One RPC interface: its abstract syntax, and a call that turns [in] stub data into [out] stub data."""

    @property
    def syntax(self) -> SyntaxId: ...

    def call(self, opnum: int, stub: bytes) -> bytes:
        """Run operation `opnum`; raise RpcFault (for example nca_s_op_rng_error) instead of answering."""
        ...


@dataclass(slots=True)
class _PartialCall:
    """A request whose fragments are still arriving ([C706] 12.6.2: FIRST_FRAG ... LAST_FRAG)."""

    call_id: int
    p_cont_id: int
    opnum: int
    stub: bytearray = field(default_factory=bytearray)


def _negotiate_frag(client_value: int) -> int:
    """A fragment size both sides can handle, rounded down to 8 as Windows does."""
    return max(MIN_FRAG, min(client_value, MAX_FRAG)) & ~7


def _is_bind_time_feature(syntax: SyntaxId) -> bool:
    return syntax.if_uuid.fields[:3] == _BIND_TIME_FEATURE_FIELDS


def _rejected(reason: int) -> ContextResult:
    return ContextResult(PROVIDER_REJECTION, reason, NIL_SYNTAX)


def _fault(call_id: int, p_cont_id: int, status: int) -> bytes:
    """A fault for a call that was not run: every fault this server sends is raised before or instead of it."""
    return encode_fault(call_id, p_cont_id, status, did_not_execute=True)


class Association:
    """One association on one named pipe open: bytes in, PDUs out."""

    def __init__(self, interfaces: Sequence[RpcInterface], sec_addr: str) -> None:
        self._interfaces = tuple(interfaces)
        # The secondary address of bind_ack ([C706] 12.6.4.4): Windows names the pipe, "\PIPE\srvsvc".
        self._sec_addr = sec_addr.encode("ascii")
        self._inbuf = bytearray()
        self._bound = False
        self._contexts: dict[int, RpcInterface] = {}
        self._max_xmit_frag = MAX_FRAG
        self._max_recv_frag = MAX_FRAG
        self._assoc_group_id = 0
        self._partial: _PartialCall | None = None

    @property
    def max_xmit_frag(self) -> int:
        """The largest fragment the server sends, as negotiated by the bind."""
        return self._max_xmit_frag

    def receive(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Take bytes written by the client (any split) and return the PDUs to send, in order."""
        self._inbuf += data
        out: list[bytes] = []
        while len(self._inbuf) >= COMMON_HEADER_SIZE:
            header = CommonHeader.decode(self._inbuf)
            framable = header.rpc_vers == RPC_VERS and header.rpc_vers_minor <= 1
            if not framable or header.frag_length < COMMON_HEADER_SIZE:
                # Without a usable frag_length the stream cannot be framed any further: answer once and
                # drop everything buffered, as a server closing the connection would.
                out.append(self._refuse(header, NCA_S_PROTO_ERROR, BIND_NAK_PROTOCOL_VERSION_NOT_SUPPORTED))
                self._inbuf.clear()
                self._partial = None
                break
            if len(self._inbuf) < header.frag_length:
                break
            pdu = memoryview(bytes(self._inbuf[: header.frag_length]))
            del self._inbuf[: header.frag_length]
            out.extend(self._handle_pdu(header, pdu))
        return out

    def _refuse(self, header: CommonHeader, fault_status: int, nak_reason: int) -> bytes:
        """bind_nak for a bind that cannot be honoured, a fault for anything else."""
        if header.ptype == PType.BIND and not self._bound:
            return encode_bind_nak(header.call_id, nak_reason)
        return _fault(header.call_id, 0, fault_status)

    def _handle_pdu(self, header: CommonHeader, pdu: memoryview) -> list[bytes]:
        if not header.is_little_endian_ascii:
            return [self._refuse(header, NCA_S_UNSUPPORTED_TYPE, BIND_NAK_USER_DATA_NOT_READABLE)]
        if header.ptype == PType.BIND:
            return [self._on_bind(header, pdu)]
        if header.ptype == PType.ALTER_CONTEXT:
            return [self._on_alter_context(header, pdu)]
        if header.ptype == PType.REQUEST:
            return self._on_request(header, pdu)
        if header.ptype in (PType.CO_CANCEL, PType.ORPHANED):
            # [C706] 12.6.4.6 / 12.6.4.8: the client gives up on a call. Calls run to completion
            # as soon as their last fragment arrives, so only a half-received one can be dropped; no answer.
            if self._partial is not None and self._partial.call_id == header.call_id:
                self._partial = None
            return []
        # auth3 without a security context, or a PDU type only a server sends: a protocol error.
        return [_fault(header.call_id, 0, NCA_S_PROTO_ERROR)]

    def _on_bind(self, header: CommonHeader, pdu: memoryview) -> bytes:
        if self._bound:
            # One bind per connection, as in Windows and Samba; further contexts come with alter_context.
            return encode_bind_nak(header.call_id, BIND_NAK_REASON_NOT_SPECIFIED)
        try:
            bind = BindPdu.decode(header, pdu)
        except PduError:
            return encode_bind_nak(header.call_id, BIND_NAK_PROTOCOL_VERSION_NOT_SUPPORTED)
        if header.auth_length:
            return encode_bind_nak(header.call_id, BIND_NAK_AUTHENTICATION_TYPE_NOT_RECOGNIZED)
        if not bind.p_context_elem:
            return encode_bind_nak(header.call_id, BIND_NAK_PROTOCOL_VERSION_NOT_SUPPORTED)
        try:
            results = self._negotiate_contexts(bind.p_context_elem)
        except PduError:
            return encode_bind_nak(header.call_id, BIND_NAK_PROTOCOL_VERSION_NOT_SUPPORTED)
        # The client's receive size bounds what the server transmits, and the other way round.
        self._max_xmit_frag = _negotiate_frag(bind.max_recv_frag)
        self._max_recv_frag = _negotiate_frag(bind.max_xmit_frag)
        # A client joining an existing group names it; there is one association per pipe here, so the id
        # is only echoed ([C706] 12.6.4.3).
        self._assoc_group_id = bind.assoc_group_id or next(_assoc_group_ids)
        self._bound = True
        return encode_bind_ack(
            PType.BIND_ACK,
            header.call_id,
            self._max_xmit_frag,
            self._max_recv_frag,
            self._assoc_group_id,
            self._sec_addr,
            results,
        )

    def _on_alter_context(self, header: CommonHeader, pdu: memoryview) -> bytes:
        if not self._bound or header.auth_length:
            return _fault(header.call_id, 0, NCA_S_PROTO_ERROR)
        try:
            alter = BindPdu.decode(header, pdu)
            results = self._negotiate_contexts(alter.p_context_elem)
        except PduError:
            return _fault(header.call_id, 0, NCA_S_PROTO_ERROR)
        # [C706] 12.6.4.1: the fragment sizes of an alter_context are ignored; the bind's values stand.
        # alter_context_resp carries an empty secondary address, as Samba sends it.
        return encode_bind_ack(
            PType.ALTER_CONTEXT_RESP,
            header.call_id,
            self._max_xmit_frag,
            self._max_recv_frag,
            self._assoc_group_id,
            b"",
            results,
        )

    def _find_interface(self, abstract_syntax: SyntaxId) -> RpcInterface | None:
        """[C706] 12.6.3.1: same UUID and major version, and a client minor version the server covers."""
        for interface in self._interfaces:
            syntax = interface.syntax
            if (
                syntax.if_uuid == abstract_syntax.if_uuid
                and syntax.if_version_major == abstract_syntax.if_version_major
                and syntax.if_version_minor >= abstract_syntax.if_version_minor
            ):
                return interface
        return None

    def _negotiate_contexts(self, contexts: tuple[PresentationContext, ...]) -> tuple[ContextResult, ...]:
        """Answer each presentation context ([MS-RPCE] 3.3.1.5.6) and record the accepted ones.

        Raises PduError, with nothing recorded, when a context id already names another interface.
        """
        accepted: dict[int, RpcInterface] = {}
        results = []
        for context in contexts:
            if _is_bind_time_feature(context.transfer_syntaxes[0]):
                results.append(_rejected(PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED))
                continue
            interface = self._find_interface(context.abstract_syntax)
            if interface is None:
                results.append(_rejected(ABSTRACT_SYNTAX_NOT_SUPPORTED))
                continue
            if NDR_TRANSFER_SYNTAX not in context.transfer_syntaxes:
                results.append(_rejected(PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED))
                continue
            known = accepted.get(context.p_cont_id, self._contexts.get(context.p_cont_id))
            if known is not None and known is not interface:
                raise PduError(f"presentation context {context.p_cont_id} already names another interface")
            accepted[context.p_cont_id] = interface
            results.append(ContextResult(ACCEPTANCE, REASON_NOT_SPECIFIED, NDR_TRANSFER_SYNTAX))
        self._contexts.update(accepted)
        return tuple(results)

    def _on_request(self, header: CommonHeader, pdu: memoryview) -> list[bytes]:
        if not self._bound or header.auth_length:
            self._partial = None
            return [_fault(header.call_id, 0, NCA_S_PROTO_ERROR)]
        try:
            request = RequestPdu.decode(header, pdu)
        except PduError:
            self._partial = None
            return [_fault(header.call_id, 0, NCA_S_PROTO_ERROR)]
        if header.pfc_flags & PFC_FIRST_FRAG:
            if self._partial is not None:
                # [C706] 12.6.2: calls on one connection are serial; a new call before the last fragment of
                # the previous one is a protocol error, and both are abandoned.
                self._partial = None
                return [_fault(header.call_id, request.p_cont_id, NCA_S_PROTO_ERROR)]
            self._partial = _PartialCall(header.call_id, request.p_cont_id, request.opnum)
        elif self._partial is None or self._partial.call_id != header.call_id:
            self._partial = None
            return [_fault(header.call_id, request.p_cont_id, NCA_S_PROTO_ERROR)]
        call = self._partial
        call.stub += request.stub_data
        if len(call.stub) > MAX_REQUEST_STUB:
            self._partial = None
            return [_fault(call.call_id, call.p_cont_id, NCA_S_FAULT_REMOTE_NO_MEMORY)]
        if not header.pfc_flags & PFC_LAST_FRAG:
            return []
        self._partial = None
        return self._dispatch(call)

    def _dispatch(self, call: _PartialCall) -> list[bytes]:
        interface = self._contexts.get(call.p_cont_id)
        if interface is None:
            return [_fault(call.call_id, call.p_cont_id, NCA_S_UNK_IF)]
        try:
            stub = interface.call(call.opnum, bytes(call.stub))
        except RpcFault as fault:
            return [_fault(call.call_id, call.p_cont_id, fault.status)]
        return self._fragment_response(call, stub)

    def _fragment_response(self, call: _PartialCall, stub: bytes) -> list[bytes]:
        """Cut the [out] stub into response fragments of at most max_xmit_frag bytes ([C706] 12.6.2).

        Every fragment but the last carries a multiple of 8 stub bytes, so NDR alignment is the same in each
        fragment as in the reassembled stub; alloc_hint tells the client how much is still to come.
        """
        max_stub = (self._max_xmit_frag - RESPONSE_HEADER_SIZE) & ~7
        fragments = []
        offset = 0
        view = memoryview(stub)
        while True:
            chunk = view[offset : offset + max_stub]
            flags = PFC_FIRST_FRAG if offset == 0 else 0
            if offset + len(chunk) >= len(stub):
                flags |= PFC_LAST_FRAG
            fragments.append(encode_response(call.call_id, flags, len(stub) - offset, call.p_cont_id, chunk))
            offset += len(chunk)
            if flags & PFC_LAST_FRAG:
                return fragments
