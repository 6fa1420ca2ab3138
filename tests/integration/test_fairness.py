"""One connection's stream of requests must not hold up every other connection: the daemon serves all of them
from one event loop, and a client whose next request is always there already (one that pipelines, or just
answers quickly) never makes its connection wait. Without a turn of the loop between its requests, another
connection's CHANGE_NOTIFY was registered only after five round trips of the client making the changes it was
meant to see (smbtorture smb2.notify.basedir, intermittently)."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
from collections.abc import Iterator

import pytest

from tests import builders as b
from tests.conftest import SmbServer, checked_while

BURST = 1000
_NBSS = struct.Struct(">I")


@pytest.fixture
def server(module_server: SmbServer) -> Iterator[SmbServer]:
    with checked_while(module_server) as checked:
        yield checked


def _pending_bytes(sock: socket.socket) -> int:
    """Bytes received on `sock` and not read yet."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def test_a_pipelining_connection_does_not_hold_up_another(server: SmbServer) -> None:
    with b.connect(server.host, server.port, server.user, server.password) as busy, \
            b.connect(server.host, server.port, server.user, server.password) as other:
        while busy.credits < BURST + 1:  # each request asks for 64 credits
            assert busy.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS
        burst = bytearray()
        for _ in range(BURST):
            message, _ = busy.build(b.Req(b.SMB2_ECHO, b.echo_body()))
            burst += _NBSS.pack(len(message)) + message
        assert busy.sock is not None
        busy.sock.sendall(burst)  # all of it is in the server's socket buffer at once
        response = other.request(b.SMB2_ECHO, b.echo_body())
        answered_before = _pending_bytes(busy.sock)

        assert response.status == b.STATUS_SUCCESS
        one_response = 4 + 64 + 4
        # With a turn of the loop between requests the other connection is answered after a few of the
        # burst's; without, after all of them.
        assert answered_before < BURST // 4 * one_response, (
            f"{answered_before // one_response} of {BURST} pipelined ECHOs were answered before another "
            "connection's one")
        for _ in range(BURST):
            assert busy.receive_message()[0].status == b.STATUS_SUCCESS
