"""The named-pipe surface the SMB2 layer uses: open_pipe, write, read, pending_output, transceive."""

from __future__ import annotations

import pytest
from impacket.dcerpc.v5 import rpcrt, srvs

from smbsrv.protocol.errors import SmbError
from smbsrv.rpc import pipes
from smbsrv.rpc.pipes import open_pipe
from smbsrv.wire.status import NtStatus

from .rpc_client import NDR_SYNTAX as NDR
from .rpc_client import SERVER, bind_pdu, context_item, open_srvsvc, read_messages, request_pdu

SRVSVC = srvs.MSRPC_UUID_SRVS
BIND = bind_pdu([context_item(0, SRVSVC, NDR)])


@pytest.mark.parametrize(
    "name", ["srvsvc", "SRVSVC", "\\srvsvc", "PIPE\\srvsvc", "\\PIPE\\SrvSvc", "\\\\pipe\\srvsvc"]
)
def test_open_pipe_accepts_the_usual_spellings(name: str) -> None:
    pipe = open_pipe(name, SERVER)
    assert pipe is not None
    assert pipe.name == "srvsvc"


@pytest.mark.parametrize(
    "name", ["", "\\PIPE\\", "lsarpc", "samr", "srvsvc2", "PIPE\\PIPE\\srvsvc", "srvsvc\\x"]
)
def test_open_pipe_refuses_unknown_pipes(name: str) -> None:
    assert open_pipe(name, SERVER) is None


def test_read_with_nothing_pending_is_empty() -> None:
    pipe = open_srvsvc()
    assert pipe.pending_output() == 0
    assert pipe.read(4096) == b""
    assert pipe.current_message_remaining() == 0


def test_partial_write_produces_nothing_yet() -> None:
    pipe = open_srvsvc()
    assert pipe.write(BIND[:20]) == 20
    assert pipe.pending_output() == 0
    assert pipe.write(BIND[20:]) == len(BIND) - 20
    assert pipe.pending_output() > 0


def test_read_stops_at_the_message_boundary() -> None:
    pipe = open_srvsvc()
    pipe.write(BIND)
    ack_len = pipe.pending_output()
    pipe.write(request_pdu(21, b"\x00\x00\x00\x00" + (100).to_bytes(4, "little")))
    total = pipe.pending_output()
    first = pipe.read(65536)
    assert len(first) == ack_len
    assert first[2] == rpcrt.MSRPC_BINDACK
    second = pipe.read(65536)
    assert second[2] == rpcrt.MSRPC_RESPONSE
    assert len(first) + len(second) == total
    assert pipe.pending_output() == 0


def test_short_read_leaves_the_rest_of_the_message() -> None:
    pipe = open_srvsvc()
    pipe.write(BIND)
    size = pipe.pending_output()
    head = pipe.read(10)
    assert len(head) == 10
    assert pipe.current_message_remaining() == size - 10
    assert pipe.pending_output() == size - 10
    tail = pipe.read(65536)
    assert len(head + tail) == size
    assert pipe.current_message_remaining() == 0


def test_read_of_zero_bytes() -> None:
    pipe = open_srvsvc()
    pipe.write(BIND)
    assert pipe.read(0) == b""
    assert pipe.pending_output() > 0


def test_transceive_returns_the_answer() -> None:
    pipe = open_srvsvc()
    ack = pipe.transceive(BIND, 4280)
    assert ack[2] == rpcrt.MSRPC_BINDACK
    assert pipe.pending_output() == 0
    response = pipe.transceive(request_pdu(21, b"\x00\x00\x00\x00" + (101).to_bytes(4, "little")), 4280)
    assert response[2] == rpcrt.MSRPC_RESPONSE


def test_transceive_with_a_small_output_buffer_leaves_the_rest_pending() -> None:
    pipe = open_srvsvc()
    head = pipe.transceive(BIND, 16)
    assert len(head) == 16
    assert pipe.pending_output() > 0  # the SMB2 layer answers STATUS_BUFFER_OVERFLOW
    assert pipe.current_message_remaining() == pipe.pending_output()
    rest = pipe.read(65536)
    assert int.from_bytes(head[8:10], "little") == len(head + rest)


def test_transceive_with_unread_output_is_pipe_busy() -> None:
    pipe = open_srvsvc()
    pipe.write(BIND)
    with pytest.raises(SmbError) as caught:
        pipe.transceive(request_pdu(21, bytes(8)), 4280)
    assert caught.value.status == NtStatus.STATUS_PIPE_BUSY


def test_transceive_of_a_partial_pdu_returns_nothing() -> None:
    pipe = open_srvsvc()
    assert pipe.transceive(BIND[:30], 4280) == b""
    assert pipe.transceive(BIND[30:], 4280)[2] == rpcrt.MSRPC_BINDACK


def test_unread_output_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipes, "MAX_PENDING_OUTPUT", 500)
    pipe = open_srvsvc()
    pipe.write(BIND)
    request = request_pdu(21, b"\x00\x00\x00\x00" + (102).to_bytes(4, "little"))
    with pytest.raises(SmbError) as caught:
        for _ in range(100):
            pipe.write(request)
    assert caught.value.status == NtStatus.STATUS_INSUFFICIENT_RESOURCES
    read_messages(pipe)
    assert pipe.write(request) == len(request)  # reading makes room again
