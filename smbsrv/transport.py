"""Direct TCP transport ([MS-SMB2] 2.1): 4-byte length-prefixed messages over a non-blocking socket.

Receiving reads each message into its own buffer (WRITE payloads are then written to disk from that buffer
without another copy); sending hands lists of buffers to sendmsg, so READ data goes out without being joined
to its header. A writer task drains a small queue, which lets the next request's disk read overlap with the
previous response's send while bounding the memory a slow reader can pin.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import TYPE_CHECKING

from smbsrv.protocol.connection import Buffers, Connection
from smbsrv.protocol.errors import ProtocolViolation
from smbsrv.protocol.reply import FileRange

if TYPE_CHECKING:
    from smbsrv.state import ServerState

log = logging.getLogger(__name__)

_NBSS_SESSION_MESSAGE = 0x00
_NBSS_KEEPALIVE = 0x85
_SEND_QUEUE_DEPTH = 4
_MIN_BUFFER = 64 * 1024
_SMB2_WRITE = 0x09
_BULK_WRITE_BYTES = 256 * 1024
_MAX_BULK_IN_FLIGHT = 3
# The largest message a client may send: MaxWriteSize of payload plus room for headers and a compound.
_PDU_OVERHEAD = 64 * 1024


class ConnectionClosed(Exception):
    pass


class SocketChannel:
    """One client socket: exact reads into caller buffers, and gathered writes."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.loop = loop
        self.fd = sock.fileno()

    async def read_exact(self, view: memoryview) -> None:
        while view:
            count = await self.loop.sock_recv_into(self.sock, view)
            if count == 0:
                raise ConnectionClosed()
            view = view[count:]

    async def send_buffers(self, buffers: Buffers) -> None:
        pending: list[bytes | bytearray | memoryview] = []
        for buffer in buffers:
            if isinstance(buffer, FileRange):
                await self._send_views(pending)
                pending = []
                await self._send_file(buffer)
            elif len(buffer):
                pending.append(buffer)
        await self._send_views(pending)

    async def _send_file(self, file_range: FileRange) -> None:
        offset, remaining = file_range.offset, file_range.count
        try:
            while remaining:
                try:
                    sent = os.sendfile(self.fd, file_range.fd, offset, remaining)
                except BlockingIOError:
                    await self._writable()
                    continue
                if sent == 0:
                    # The file shrank after the READ was answered: keep the framing with zeros.
                    await self._send_views([bytes(remaining)])
                    return
                offset += sent
                remaining -= sent
        finally:
            os.close(file_range.fd)

    async def _send_views(self, buffers: list[bytes | bytearray | memoryview]) -> None:
        views = [memoryview(b).cast("B") for b in buffers]
        while views:
            try:
                sent = self.sock.sendmsg(views)
            except BlockingIOError:
                await self._writable()
                continue
            except InterruptedError:
                continue
            while sent and views:
                head = views[0]
                if sent >= len(head):
                    sent -= len(head)
                    views.pop(0)
                else:
                    views[0] = head[sent:]
                    sent = 0

    async def _writable(self) -> None:
        future = self.loop.create_future()
        self.loop.add_writer(self.fd, future.set_result, None)
        try:
            await future
        finally:
            self.loop.remove_writer(self.fd)


class _BufferPool:
    """Receive buffers reused across messages: a fresh 8 MiB bytearray per WRITE costs page faults and
    zeroing that show up as a tenth of the CPU of a large upload."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.free: list[bytearray] = []

    def take(self, length: int) -> bytearray:
        for index, buffer in enumerate(self.free):
            if len(buffer) >= length:
                return self.free.pop(index)
        return bytearray(max(length, _MIN_BUFFER))

    def give(self, buffer: bytearray) -> None:
        if len(self.free) < self.keep:
            self.free.append(buffer)


def _is_bulk_write(message: memoryview) -> bool:
    """A lone large WRITE: it may run while the next message is received (module docstring)."""
    return (len(message) >= _BULK_WRITE_BYTES and message[:4] == b"\xfeSMB" and message[12] == _SMB2_WRITE
            and message[13] == 0 and message[20:24] == b"\0\0\0\0")


async def serve_connection(server: ServerState, sock: socket.socket, peer: str,
                           stopping: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    channel = SocketChannel(sock, loop)
    queue: asyncio.Queue[Buffers | None] = asyncio.Queue(_SEND_QUEUE_DEPTH)
    # Async completions (blocking locks) must not wait on a full queue inside a callback.
    connection = Connection(server, peer, lambda buffers: loop.create_task(queue.put(buffers)))
    server.connections.add(connection)
    writer = loop.create_task(_drain(channel, queue, connection))
    max_message = server.config.max_io_size + _PDU_OVERHEAD
    prefix = bytearray(4)
    prefix_view = memoryview(prefix)
    pool = _BufferPool(_MAX_BULK_IN_FLIGHT + 1)
    bulk: set[asyncio.Task[None]] = set()

    async def process(buffer: bytearray, message: memoryview) -> None:
        try:
            responses = await connection.handle_message(message)
            if responses:
                await queue.put(responses)
        finally:
            message.release()
            pool.give(buffer)

    log.info("connection %d from %s", connection.connection_id, peer)
    try:
        while not stopping.is_set():
            await channel.read_exact(prefix_view)
            kind = prefix[0]
            length = int.from_bytes(prefix[1:4], "big")
            if kind == _NBSS_KEEPALIVE:
                continue
            if kind != _NBSS_SESSION_MESSAGE or length > max_message or length < 4:
                log.info("connection %d: bad frame (type %#x, length %d)", connection.connection_id, kind, length)
                break
            buffer = pool.take(length)
            message = memoryview(buffer)[:length]
            await channel.read_exact(message)
            if _is_bulk_write(message):
                # Large WRITEs overlap: the disk write of one runs in a thread while the next is received.
                task = loop.create_task(process(buffer, message))
                bulk.add(task)
                task.add_done_callback(bulk.discard)
                if len(bulk) >= _MAX_BULK_IN_FLIGHT:
                    await asyncio.wait(bulk, return_when=asyncio.FIRST_COMPLETED)
            else:
                # Everything else runs in arrival order, after the WRITEs before it have finished (a CLOSE
                # must not overtake the WRITE of the same handle).
                if bulk:
                    await asyncio.wait(bulk)
                await process(buffer, message)
            for task in [t for t in bulk if t.done()]:
                task.result()
            if writer.done():
                break
    except ConnectionClosed:
        pass
    except (ConnectionResetError, BrokenPipeError, TimeoutError):
        pass
    except ProtocolViolation as exc:
        log.info("connection %d: dropped: %s", connection.connection_id, exc)
    except asyncio.CancelledError:
        pass
    finally:
        # WRITEs in flight are not cancelled: their worker threads hold the file descriptors, which must stay
        # open (and not be reused by another open) until the threads are done. A dead writer task would leave
        # their responses waiting on a full queue, so the queue is emptied meanwhile.
        while bulk:
            if writer.done():
                while not queue.empty():
                    queue.get_nowait()
            await asyncio.wait(bulk, timeout=0.1)
        connection.connection_lost()
        server.connections.discard(connection)
        if not writer.done():
            try:
                queue.put_nowait(None)
            except asyncio.QueueFull:
                writer.cancel()
            try:
                await asyncio.wait_for(writer, timeout=5)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                writer.cancel()
        sock.close()
        log.info("connection %d closed", connection.connection_id)


async def _drain(channel: SocketChannel, queue: asyncio.Queue[Buffers | None], connection: Connection) -> None:
    try:
        while True:
            buffers = await queue.get()
            if buffers is None:
                return
            await channel.send_buffers(buffers)
    except (ConnectionResetError, BrokenPipeError, OSError):
        connection.closed = True


__all__ = ["serve_connection", "SocketChannel"]
