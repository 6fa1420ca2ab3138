"""The PDU state machine ([C706] 12.6, [MS-RPCE] 3.3.1.5): binds, contexts, calls, fragments and faults."""

from __future__ import annotations

import struct
import uuid

import pytest
from impacket.dcerpc.v5 import rpcrt, srvs
from impacket.dcerpc.v5.dtypes import NULL
from impacket.dcerpc.v5.rpcrt import DCERPCException

from smbsrv.rpc import association
from smbsrv.rpc.pdu import (
    ABSTRACT_SYNTAX_NOT_SUPPORTED,
    ACCEPTANCE,
    BIND_NAK_AUTHENTICATION_TYPE_NOT_RECOGNIZED,
    BIND_NAK_PROTOCOL_VERSION_NOT_SUPPORTED,
    BIND_NAK_REASON_NOT_SPECIFIED,
    BIND_NAK_USER_DATA_NOT_READABLE,
    NCA_S_FAULT_REMOTE_NO_MEMORY,
    NCA_S_PROTO_ERROR,
    NCA_S_UNK_IF,
    PFC_DID_NOT_EXECUTE,
    PFC_FIRST_FRAG,
    PFC_LAST_FRAG,
    PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED,
    PROVIDER_REJECTION,
    SyntaxId,
)
from smbsrv.rpc.pipes import NamedPipe, PipeServerInfo, ShareEntry

from .rpc_client import (
    BIND_TIME_FEATURES_SYNTAX,
    NDR64_SYNTAX,
    NDR_SYNTAX,
    SERVER,
    UNKNOWN_INTERFACE,
    PipeTransport,
    bind_pdu,
    context_item,
    fault_status,
    open_srvsvc,
    parse_bind_ack,
    read_messages,
    request_pdu,
)

SRVSVC = srvs.MSRPC_UUID_SRVS
NIL_SYNTAX = bytes(20)


def _exchange(pipe: NamedPipe, data: bytes) -> list[bytes]:
    pipe.write(data)
    return read_messages(pipe)


def _results(ack: rpcrt.MSRPCBindAck) -> list[tuple[int, int, bytes]]:
    return [(item["Result"], item["Reason"], item["TransferSyntax"]) for item in ack.getCtxItems()]


def _bound_pipe() -> NamedPipe:
    pipe = open_srvsvc()
    (ack,) = _exchange(pipe, bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)]))
    assert ack[2] == rpcrt.MSRPC_BINDACK
    return pipe


def _share_enum_stub() -> bytes:
    request = srvs.NetrShareEnum()
    request["ServerName"] = "\x00"
    request["PreferedMaximumLength"] = 0xFFFFFFFF
    request["ResumeHandle"] = 0
    request["InfoStruct"]["Level"] = 1
    request["InfoStruct"]["ShareInfo"]["tag"] = 1
    request["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"] = NULL
    return bytes(request.getData())


def test_bind_accepts_ndr_and_rejects_ndr64_and_bind_time_features() -> None:
    pipe = open_srvsvc()
    items = [
        context_item(0, SRVSVC, NDR64_SYNTAX),
        context_item(1, SRVSVC, NDR_SYNTAX),
        context_item(2, SRVSVC, BIND_TIME_FEATURES_SYNTAX),
    ]
    (pdu,) = _exchange(pipe, bind_pdu(items, call_id=7))
    ack = parse_bind_ack(pdu)
    assert ack["type"] == rpcrt.MSRPC_BINDACK
    assert ack["call_id"] == 7
    assert ack["flags"] & (PFC_FIRST_FRAG | PFC_LAST_FRAG) == PFC_FIRST_FRAG | PFC_LAST_FRAG
    assert ack["frag_len"] == len(pdu)
    assert _results(ack) == [
        (PROVIDER_REJECTION, PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED, NIL_SYNTAX),
        (ACCEPTANCE, 0, NDR_SYNTAX),
        (PROVIDER_REJECTION, PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED, NIL_SYNTAX),
    ]
    assert ack["SecondaryAddr"] == "\\PIPE\\srvsvc"
    assert ack["max_tfrag"] == ack["max_rfrag"] == 4280
    assert ack["assoc_group"] != 0
    # The accepted context (id 1) carries calls; the rejected NDR64 one (id 0) does not.
    (response,) = _exchange(pipe, request_pdu(15, _share_enum_stub(), ctx_id=1))
    assert response[2] == rpcrt.MSRPC_RESPONSE
    (fault,) = _exchange(pipe, request_pdu(15, _share_enum_stub(), ctx_id=0, call_id=3))
    assert fault_status(fault) == NCA_S_UNK_IF


def test_one_context_offering_ndr64_and_ndr_gets_ndr() -> None:
    pipe = open_srvsvc()
    (pdu,) = _exchange(pipe, bind_pdu([context_item(0, SRVSVC, NDR64_SYNTAX, NDR_SYNTAX)]))
    assert _results(parse_bind_ack(pdu)) == [(ACCEPTANCE, 0, NDR_SYNTAX)]


def test_unknown_interface_is_rejected_context() -> None:
    pipe = open_srvsvc()
    (pdu,) = _exchange(pipe, bind_pdu([context_item(0, UNKNOWN_INTERFACE, NDR_SYNTAX)]))
    assert _results(parse_bind_ack(pdu)) == [(PROVIDER_REJECTION, ABSTRACT_SYNTAX_NOT_SUPPORTED, NIL_SYNTAX)]


def test_impacket_bind_to_unknown_interface_fails() -> None:
    dce = PipeTransport(open_srvsvc()).get_dce_rpc()
    dce.connect()
    with pytest.raises(DCERPCException, match="abstract_syntax_not_supported"):
        dce.bind(UNKNOWN_INTERFACE)


def test_newer_minor_interface_version_is_rejected() -> None:
    pipe = open_srvsvc()
    newer = rpcrt.uuidtup_to_bin(("4B324FC8-1670-01D3-1278-5A47BF6EE188", "3.1"))
    (pdu,) = _exchange(pipe, bind_pdu([context_item(0, newer, NDR_SYNTAX)]))
    assert _results(parse_bind_ack(pdu))[0][:2] == (PROVIDER_REJECTION, ABSTRACT_SYNTAX_NOT_SUPPORTED)


def test_bind_echoes_an_existing_assoc_group() -> None:
    pipe = open_srvsvc()
    (pdu,) = _exchange(pipe, bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)], assoc_group=0x4242))
    assert parse_bind_ack(pdu)["assoc_group"] == 0x4242


def _nak_reason(pdu: bytes) -> int:
    assert pdu[2] == rpcrt.MSRPC_BINDNAK
    assert struct.unpack_from("<H", pdu, 8)[0] == len(pdu)
    return int(struct.unpack_from("<H", pdu, 16)[0])


def test_second_bind_is_nakked() -> None:
    pipe = _bound_pipe()
    (pdu,) = _exchange(pipe, bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)], call_id=2))
    assert _nak_reason(pdu) == BIND_NAK_REASON_NOT_SPECIFIED


def test_bind_with_auth_verifier_is_nakked() -> None:
    pipe = open_srvsvc()
    header = rpcrt.MSRPCHeader()
    header["type"] = rpcrt.MSRPC_BIND
    header["pduData"] = bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)])[16:]
    trailer = rpcrt.SEC_TRAILER()
    trailer["auth_type"] = rpcrt.RPC_C_AUTHN_WINNT
    trailer["auth_level"] = rpcrt.RPC_C_AUTHN_LEVEL_PKT_INTEGRITY
    header["sec_trailer"] = trailer
    header["auth_data"] = b"NTLMSSP\x00" + bytes(32)
    (pdu,) = _exchange(pipe, header.get_packet())
    assert _nak_reason(pdu) == BIND_NAK_AUTHENTICATION_TYPE_NOT_RECOGNIZED
    # A refused bind leaves the pipe unbound: a plain bind is still welcome.
    (ack,) = _exchange(pipe, bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)]))
    assert ack[2] == rpcrt.MSRPC_BINDACK


def test_bind_without_contexts_is_nakked() -> None:
    (pdu,) = _exchange(open_srvsvc(), bind_pdu([]))
    assert _nak_reason(pdu) == BIND_NAK_PROTOCOL_VERSION_NOT_SUPPORTED


def test_truncated_bind_is_nakked() -> None:
    data = bytearray(bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)]))
    del data[-10:]
    data[8:10] = struct.pack("<H", len(data))
    (pdu,) = _exchange(open_srvsvc(), bytes(data))
    assert _nak_reason(pdu) == BIND_NAK_PROTOCOL_VERSION_NOT_SUPPORTED


def test_wrong_rpc_version_is_nakked_and_input_dropped() -> None:
    pipe = open_srvsvc()
    data = bytearray(bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)]))
    data[0] = 4
    (pdu,) = _exchange(pipe, bytes(data) + b"trailing junk")
    assert _nak_reason(pdu) == BIND_NAK_PROTOCOL_VERSION_NOT_SUPPORTED
    (ack,) = _exchange(pipe, bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)]))
    assert ack[2] == rpcrt.MSRPC_BINDACK


def test_big_endian_bind_is_nakked() -> None:
    data = bytearray(bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)]))
    data[4] = 0x00  # integer representation: big-endian
    data[8:10] = data[8:10][::-1]
    data[12:16] = data[12:16][::-1]
    (pdu,) = _exchange(open_srvsvc(), bytes(data))
    assert _nak_reason(pdu) == BIND_NAK_USER_DATA_NOT_READABLE


def test_alter_context_adds_a_context() -> None:
    dce = PipeTransport(open_srvsvc()).get_dce_rpc()
    dce.connect()
    dce.bind(SRVSVC)
    second = dce.alter_ctx(SRVSVC)  # impacket: alter_context for context id 1
    assert srvs.hNetrShareEnum(second, 1)["ErrorCode"] == 0
    assert srvs.hNetrShareEnum(dce, 1)["ErrorCode"] == 0


def test_alter_context_response_layout() -> None:
    pipe = _bound_pipe()
    items = [context_item(1, SRVSVC, NDR_SYNTAX), context_item(2, UNKNOWN_INTERFACE, NDR_SYNTAX)]
    (pdu,) = _exchange(pipe, bind_pdu(items, call_id=5, ptype=rpcrt.MSRPC_ALTERCTX))
    assert pdu[2] == rpcrt.MSRPC_ALTERCTX_R
    assert struct.unpack_from("<HHIH", pdu, 16) == (4280, 4280, struct.unpack_from("<I", pdu, 20)[0], 0)
    # sec_addr.length 0, two bytes of padding, then the result list at offset 28.
    assert pdu[28] == 2
    assert struct.unpack_from("<HH", pdu, 32) == (ACCEPTANCE, 0)
    assert struct.unpack_from("<HH", pdu, 56) == (PROVIDER_REJECTION, ABSTRACT_SYNTAX_NOT_SUPPORTED)


class _EchoInterface:
    """A second interface for association-level tests: opnum 0 echoes, opnum 1 faults with 0x1234."""

    def __init__(self, uuid_text: str) -> None:
        self.syntax = SyntaxId(uuid.UUID(uuid_text), 1, 0)

    def call(self, opnum: int, stub: bytes) -> bytes:
        if opnum == 1:
            raise association.RpcFault(0x1234)
        return stub


_ECHO_A = "11111111-2222-3333-4444-555555555555"
_ECHO_B = "66666666-7777-8888-9999-000000000000"


def _echo_association() -> association.Association:
    return association.Association(
        [_EchoInterface(_ECHO_A), _EchoInterface(_ECHO_B)], sec_addr="\\PIPE\\echo"
    )


def _syntax(uuid_text: str) -> bytes:
    return rpcrt.uuidtup_to_bin((uuid_text, "1.0"))


def test_context_id_cannot_change_interface() -> None:
    assoc = _echo_association()
    (ack,) = assoc.receive(bind_pdu([context_item(0, _syntax(_ECHO_A), NDR_SYNTAX)]))
    assert _results(parse_bind_ack(ack))[0][0] == ACCEPTANCE
    (fault,) = assoc.receive(
        bind_pdu([context_item(0, _syntax(_ECHO_B), NDR_SYNTAX)], ptype=rpcrt.MSRPC_ALTERCTX)
    )
    assert fault_status(fault) == NCA_S_PROTO_ERROR
    # Re-offering the same interface under the same id is fine ([C706] 12.6.4.1).
    (resp,) = assoc.receive(
        bind_pdu([context_item(0, _syntax(_ECHO_A), NDR_SYNTAX)], ptype=rpcrt.MSRPC_ALTERCTX)
    )
    assert _results(parse_bind_ack(resp))[0][0] == ACCEPTANCE


def test_two_interfaces_on_one_association() -> None:
    assoc = _echo_association()
    items = [context_item(0, _syntax(_ECHO_A), NDR_SYNTAX), context_item(1, _syntax(_ECHO_B), NDR_SYNTAX)]
    (ack,) = assoc.receive(bind_pdu(items))
    assert [result[0] for result in _results(parse_bind_ack(ack))] == [ACCEPTANCE, ACCEPTANCE]
    (echo,) = assoc.receive(request_pdu(0, b"12345678", ctx_id=1))
    assert echo[24:] == b"12345678"
    (fault,) = assoc.receive(request_pdu(1, b"", ctx_id=0))
    assert fault_status(fault) == 0x1234
    (empty,) = assoc.receive(request_pdu(0, b"", ctx_id=0))
    assert empty[2] == rpcrt.MSRPC_RESPONSE and empty[3] & 3 == 3 and len(empty) == 24


def test_alter_context_before_bind_faults() -> None:
    pipe = open_srvsvc()
    (pdu,) = _exchange(pipe, bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)], ptype=rpcrt.MSRPC_ALTERCTX))
    assert fault_status(pdu) == NCA_S_PROTO_ERROR


def test_request_before_bind_faults() -> None:
    (pdu,) = _exchange(open_srvsvc(), request_pdu(15, _share_enum_stub()))
    assert fault_status(pdu) == NCA_S_PROTO_ERROR
    assert pdu[3] & PFC_DID_NOT_EXECUTE


def test_auth3_without_security_context_faults() -> None:
    pipe = _bound_pipe()
    header = rpcrt.MSRPCHeader()
    header["type"] = rpcrt.MSRPC_AUTH3
    header["pduData"] = bytes(4)
    (pdu,) = _exchange(pipe, header.get_packet())
    assert fault_status(pdu) == NCA_S_PROTO_ERROR


def test_pdu_written_one_byte_at_a_time() -> None:
    pipe = open_srvsvc()
    data = bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)]) + request_pdu(15, _share_enum_stub())
    for index in range(len(data)):
        assert pipe.write(data[index : index + 1]) == 1
    ack, response = read_messages(pipe)
    assert ack[2] == rpcrt.MSRPC_BINDACK
    assert response[2] == rpcrt.MSRPC_RESPONSE


def test_several_pdus_in_one_write_answer_in_order() -> None:
    pipe = open_srvsvc()
    data = (
        bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)])
        + request_pdu(99, b"")
        + request_pdu(15, _share_enum_stub())
    )
    bind_ack, fault, response = _exchange(pipe, data)
    assert bind_ack[2] == rpcrt.MSRPC_BINDACK
    assert fault[2] == rpcrt.MSRPC_FAULT
    assert response[2] == rpcrt.MSRPC_RESPONSE


def _stub_of(responses: list[bytes]) -> bytes:
    return b"".join(pdu[24:] for pdu in responses)


def test_request_fragments_are_reassembled_and_checked() -> None:
    pipe = _bound_pipe()
    stub = _share_enum_stub()
    first = request_pdu(15, stub[:8], call_id=9, flags=PFC_FIRST_FRAG)
    middle = request_pdu(15, stub[8:16], call_id=9, flags=0)
    last = request_pdu(15, stub[16:], call_id=9, flags=PFC_LAST_FRAG)
    assert _exchange(pipe, first + middle) == []
    (response,) = _exchange(pipe, last)
    assert struct.unpack_from("<I", response, 12)[0] == 9
    whole = _exchange(pipe, request_pdu(15, stub, call_id=10))
    assert _stub_of([response]) == _stub_of(whole)


def test_middle_fragment_without_a_call_faults() -> None:
    pipe = _bound_pipe()
    (pdu,) = _exchange(pipe, request_pdu(15, b"abcd", call_id=4, flags=PFC_LAST_FRAG))
    assert fault_status(pdu) == NCA_S_PROTO_ERROR


def test_new_call_before_the_last_fragment_faults() -> None:
    pipe = _bound_pipe()
    assert _exchange(pipe, request_pdu(15, b"abcdefgh", call_id=4, flags=PFC_FIRST_FRAG)) == []
    (pdu,) = _exchange(pipe, request_pdu(15, _share_enum_stub(), call_id=5))
    assert fault_status(pdu) == NCA_S_PROTO_ERROR
    (response,) = _exchange(pipe, request_pdu(15, _share_enum_stub(), call_id=6))
    assert response[2] == rpcrt.MSRPC_RESPONSE


@pytest.mark.parametrize("ptype", [rpcrt.MSRPC_ORPHANED, rpcrt.MSRPC_CO_CANCEL])
def test_orphaned_or_cancelled_partial_call_is_dropped(ptype: int) -> None:
    pipe = _bound_pipe()
    assert _exchange(pipe, request_pdu(15, b"abcdefgh", call_id=4, flags=PFC_FIRST_FRAG)) == []
    header = rpcrt.MSRPCHeader()
    header["type"] = ptype
    header["call_id"] = 4
    assert _exchange(pipe, header.get_packet()) == []
    (response,) = _exchange(pipe, request_pdu(15, _share_enum_stub(), call_id=5))
    assert response[2] == rpcrt.MSRPC_RESPONSE


def test_oversized_request_faults() -> None:
    pipe = _bound_pipe()
    chunk = bytes(60000)
    pipe.write(request_pdu(15, chunk, call_id=4, flags=PFC_FIRST_FRAG))
    for _ in range(association.MAX_REQUEST_STUB // len(chunk)):
        pipe.write(request_pdu(15, chunk, call_id=4, flags=0))
    (pdu,) = read_messages(pipe)
    assert fault_status(pdu) == NCA_S_FAULT_REMOTE_NO_MEMORY


def _many_shares(count: int) -> PipeServerInfo:
    shares = tuple(ShareEntry(f"share{i:03d}", 0, f"comment number {i}", f"/srv/s{i}") for i in range(count))
    return PipeServerInfo("BIG", shares)


@pytest.mark.parametrize(
    ("max_recv_frag", "expected_frag"), [(1432, 1432), (2000, 2000), (100, 1432), (9999, 4280)]
)
def test_response_fragments_follow_the_negotiated_size(max_recv_frag: int, expected_frag: int) -> None:
    pipe = open_srvsvc(_many_shares(120))
    (pdu,) = _exchange(pipe, bind_pdu([context_item(0, SRVSVC, NDR_SYNTAX)], max_recv_frag=max_recv_frag))
    assert parse_bind_ack(pdu)["max_tfrag"] == expected_frag
    fragments = _exchange(pipe, request_pdu(15, _share_enum_stub()))
    assert len(fragments) > 2
    stub = _stub_of(fragments)
    remaining = len(stub)
    for index, fragment in enumerate(fragments):
        flags = fragment[3]
        assert fragment[2] == rpcrt.MSRPC_RESPONSE
        assert struct.unpack_from("<H", fragment, 8)[0] == len(fragment) <= expected_frag
        assert bool(flags & PFC_FIRST_FRAG) == (index == 0)
        assert bool(flags & PFC_LAST_FRAG) == (index == len(fragments) - 1)
        assert struct.unpack_from("<I", fragment, 16)[0] == remaining  # alloc_hint
        if index < len(fragments) - 1:
            assert (len(fragment) - 24) % 8 == 0
        remaining -= len(fragment) - 24
    response = srvs.NetrShareEnumResponse(stub)
    assert response["InfoStruct"]["ShareInfo"]["Level1"]["EntriesRead"] == 120


def test_impacket_reassembles_fragmented_response(monkeypatch: pytest.MonkeyPatch) -> None:
    original = rpcrt.MSRPCBind

    class SmallReceiveBind(original):  # type: ignore[misc, valid-type]
        def __init__(self, data: bytes | None = None, alignment: int = 0) -> None:
            super().__init__(data, alignment)
            self["max_rfrag"] = 1432

    monkeypatch.setattr(rpcrt, "MSRPCBind", SmallReceiveBind)
    pipe = open_srvsvc(_many_shares(60))
    dce = PipeTransport(pipe).get_dce_rpc()
    dce.connect()
    dce.bind(SRVSVC)
    response = srvs.hNetrShareEnum(dce, 2)
    entries = response["InfoStruct"]["ShareInfo"]["Level2"]["Buffer"]
    assert [entry["shi2_netname"] for entry in entries] == [f"share{i:03d}\x00" for i in range(60)]
    assert entries[59]["shi2_remark"] == "comment number 59\x00"


def test_unknown_ptype_faults() -> None:
    pipe = _bound_pipe()
    header = rpcrt.MSRPCHeader()
    header["type"] = rpcrt.MSRPC_RESPONSE  # only a server sends responses
    header["pduData"] = bytes(8)
    (pdu,) = _exchange(pipe, header.get_packet())
    assert fault_status(pdu) == NCA_S_PROTO_ERROR


def test_pipes_do_not_share_state() -> None:
    bound = _bound_pipe()
    fresh = open_srvsvc(SERVER)
    (pdu,) = _exchange(fresh, request_pdu(15, _share_enum_stub()))
    assert fault_status(pdu) == NCA_S_PROTO_ERROR
    (response,) = _exchange(bound, request_pdu(15, _share_enum_stub()))
    assert response[2] == rpcrt.MSRPC_RESPONSE
