"""Hostile input: whatever a client writes, the pipe answers with well-formed PDUs or SmbError, nothing else."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from impacket.dcerpc.v5 import srvs

from smbsrv.protocol.errors import SmbError
from smbsrv.rpc.pdu import PType
from smbsrv.rpc.pipes import NamedPipe

from .rpc_client import NDR_SYNTAX, bind_pdu, context_item, open_srvsvc, read_messages, request_pdu

BIND = bind_pdu([context_item(0, srvs.MSRPC_UUID_SRVS, NDR_SYNTAX)])
SERVER_PTYPES = {PType.BIND_ACK, PType.BIND_NAK, PType.ALTER_CONTEXT_RESP, PType.RESPONSE, PType.FAULT}
# A DCE/RPC common header with a plausible frag_length, so that fuzzing reaches the PDU decoders instead of
# stopping at the version check.
HEADER_FIELDS = st.tuples(
    st.sampled_from([5, 5, 5, 4]),
    st.sampled_from([0, 0, 1, 2]),
    st.integers(0, 25),
    st.integers(0, 255),
    st.sampled_from([b"\x10\x00\x00\x00", b"\x00\x00\x00\x00", b"\x11\x00\x00\x00"]),
    st.integers(0, 40),
    st.integers(0, 3),
)

settings.register_profile(
    "rpc", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _check_output(pipe: NamedPipe) -> None:
    for message in read_messages(pipe):
        assert len(message) >= 16
        assert message[0] == 5 and message[1] == 0
        assert message[2] in SERVER_PTYPES
        assert struct.unpack_from("<H", message, 8)[0] == len(message)


def _feed(pipe: NamedPipe, chunks: list[bytes]) -> None:
    for chunk in chunks:
        try:
            assert pipe.write(chunk) == len(chunk)
        except SmbError:
            pass
        _check_output(pipe)


@settings(settings.get_profile("rpc"))
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes_on_a_fresh_pipe(chunks: list[bytes]) -> None:
    _feed(open_srvsvc(), chunks)


@settings(settings.get_profile("rpc"))
@given(HEADER_FIELDS, st.binary(max_size=200), st.booleans())
def test_random_pdus_with_plausible_headers(fields: tuple[int, ...], body: bytes, bound: bool) -> None:
    rpc_vers, minor, ptype, flags, drep, extra, auth_pad = fields
    frag_length = 16 + len(body) - extra if extra < len(body) else 16 + len(body)
    auth_length = min(len(body), auth_pad * 8)
    header = struct.pack("<BBBB4sHHI", rpc_vers, minor, ptype, flags, drep, frag_length, auth_length, 1)
    pipe = open_srvsvc()
    if bound:
        _feed(pipe, [BIND])
    _feed(pipe, [header + body])


@settings(settings.get_profile("rpc"))
@given(st.sampled_from([15, 16, 21, 0, 99]), st.binary(max_size=400))
def test_random_stub_data_for_srvsvc_calls(opnum: int, stub: bytes) -> None:
    pipe = open_srvsvc()
    _feed(pipe, [BIND, request_pdu(opnum, stub)])


@settings(settings.get_profile("rpc"))
@given(st.data())
def test_mutated_valid_conversation(data: st.DataObject) -> None:
    request = srvs.NetrShareEnum()
    request["ServerName"] = "\\\\server\x00"
    request["PreferedMaximumLength"] = 0xFFFFFFFF
    request["ResumeHandle"] = 0
    request["InfoStruct"]["Level"] = 1
    request["InfoStruct"]["ShareInfo"]["tag"] = 1
    request["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"] = b""
    conversation = bytearray(BIND + request_pdu(15, bytes(request.getData())))
    for _ in range(data.draw(st.integers(1, 6))):
        index = data.draw(st.integers(0, len(conversation) - 1))
        conversation[index] = data.draw(st.integers(0, 255))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(conversation)), max_size=4)))
    chunks = [bytes(conversation[a:b]) for a, b in zip([0, *cuts], [*cuts, len(conversation)], strict=True)]
    _feed(open_srvsvc(), chunks)
