"""transport.Outbox on a real loopback TCP connection: responses leave in the order they were posted, a client
that does not read holds the sender back at the outbox limit, and a connection that queues bulk data gets a
send buffer large enough for a whole READ response; a READ's data buffer is reused once all of it left."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from smbsrv import transport
from smbsrv.protocol import bulk
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


def test_a_read_buffer_goes_back_for_reuse_only_once_all_of_it_left() -> None:
    async def body(outbox: transport.Outbox, client: socket.socket) -> None:
        bulk.READ_BUFFERS.free.clear()
        small = bulk.READ_BUFFERS.take(BULK_IO_BYTES)
        small[:] = b"s" * BULK_IO_BYTES
        outbox.post([b"h1", small])  # the socket takes all of it at once
        assert bulk.READ_BUFFERS.free == [small]
        assert bulk.READ_BUFFERS.take(BULK_IO_BYTES) is small  # the next READ of that length reuses it
        large = bulk.READ_BUFFERS.take(16 * MIB)
        large[:] = b"L" * (16 * MIB)
        outbox.post([b"h2", large])  # more than the socket takes: the rest waits in the outbox
        assert outbox.items and large not in bulk.READ_BUFFERS.free
        received = await _drain(client, 2 + BULK_IO_BYTES + 2 + 16 * MIB)
        assert received == b"h1" + b"s" * BULK_IO_BYTES + b"h2" + b"L" * (16 * MIB)
        for _ in range(100):  # the flusher pops the last piece once the client has read it
            if not outbox.items:
                break
            await asyncio.sleep(0.01)
        assert bulk.READ_BUFFERS.free == [large]

    _run(body)


def test_read_buffers_keep_a_few_and_drop_them_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "_IDLE_S", 0.2)
    pool = bulk._ReadBuffers(2)
    first, second, third = (pool.take(BULK_IO_BYTES) for _ in range(3))
    assert len({id(first), id(second), id(third)}) == 3

    async def main() -> None:
        for buffer in (first, second, third):
            pool.give(buffer)
        assert pool.free == [second, third]  # the oldest went
        assert pool.take(2 * BULK_IO_BYTES) not in (second, third)  # another length: a new buffer
        await asyncio.sleep(0.3)  # used within the period (checked at 0.2 s): kept
        assert pool.free == [second, third]
        await asyncio.sleep(0.3)  # a whole period without a take (checked at 0.4 s): dropped
        assert pool.free == []

    asyncio.run(main())
