"""transport.Outbox on a real loopback TCP connection: responses leave in the order they were posted, a client
that does not read holds the sender back at the outbox limit, and a connection that queues bulk data gets a
send buffer large enough for a whole READ response."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from smbsrv import transport
from smbsrv.protocol.bulk import BULK_IO_BYTES

MIB = 1024 * 1024


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    server.setblocking(False)
    return server, client


async def _drain(client: socket.socket, count: int) -> bytes:
    """Read `count` bytes from the client side without blocking the event loop."""
    loop = asyncio.get_running_loop()
    client.setblocking(False)
    received = bytearray()
    while len(received) < count:
        chunk = await loop.sock_recv(client, count - len(received))
        assert chunk, "connection closed early"
        received += chunk
    return bytes(received)


def _run(body: Callable[[transport.Outbox, socket.socket], Awaitable[None]]) -> None:
    async def main() -> None:
        server, client = _tcp_pair()
        outbox = transport.Outbox(server, asyncio.get_running_loop())
        try:
            await body(outbox, client)
        finally:
            await outbox.close(timeout_s=1)
            server.close()
            client.close()

    asyncio.run(main())


def test_small_responses_leave_the_send_buffer_to_autotuning() -> None:
    async def body(outbox: transport.Outbox, client: socket.socket) -> None:
        before = outbox.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        for index in range(100):
            outbox.post([bytes([index]) * 1000])
        assert await _drain(client, 100_000) == b"".join(bytes([i]) * 1000 for i in range(100))
        assert outbox.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == before

    _run(body)


def test_bulk_data_grows_the_send_buffer_and_keeps_order() -> None:
    async def body(outbox: transport.Outbox, client: socket.socket) -> None:
        before = outbox.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        data = bytes(range(256)) * (12 * MIB // 256)
        outbox.post([b"header-1", memoryview(data)])  # more than the socket takes at once: queued
        outbox.post([b"header-2"])  # must not overtake the data queued before it
        size = transport._bulk_send_buffer_size()
        after = outbox.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        # Linux doubles what is asked for; without room to beat autotuning nothing is asked.
        assert after == (2 * size if size else before)
        total = len(b"header-1") + len(data) + len(b"header-2")
        assert await _drain(client, total) == b"header-1" + data + b"header-2"

    _run(body)


def test_send_waits_while_a_client_that_does_not_read_has_the_outbox_full() -> None:
    async def body(outbox: transport.Outbox, client: socket.socket) -> None:
        response = bytes(8 * MIB)
        sent = 0
        # Kernel buffers on both sides take some of it; after that every response stays in the outbox, and
        # once more than the limit is queued, send() does not return until the client reads.
        for _ in range(12):
            try:
                await asyncio.wait_for(outbox.send([response]), timeout=0.5)
            except TimeoutError:
                break
            sent += 1
        else:
            raise AssertionError("send() never waited for a client that does not read")
        assert outbox.queued_bytes > transport._OUTBOX_LIMIT
        assert outbox.queued_bytes <= transport._OUTBOX_LIMIT + len(response)
        # The client reads: the queue drains and posting works again, in order.
        total = (sent + 1) * len(response) + 4
        reader = asyncio.ensure_future(_drain(client, total))
        await outbox.send([b"last"])
        received = await reader
        assert received[-4:] == b"last" and not any(received[:-4])
        assert len(response) >= BULK_IO_BYTES

    _run(body)
