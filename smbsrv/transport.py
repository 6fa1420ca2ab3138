"""Direct TCP transport ([MS-SMB2] 2.1): 4-byte length-prefixed messages over a non-blocking socket.

Receiving reads each message into its own buffer (WRITE payloads are then written to disk from that buffer
without another copy); sending hands lists of buffers to sendmsg, so READ data goes out without being joined
to its header, and a response is sent from the request's own turn of the event loop whenever the socket can take
it. What cannot be sent at once waits in a bounded outbox.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from smbsrv.dispatch import HANDLERS
from smbsrv.protocol.bulk import BULK_IO_BYTES, READ_BUFFERS, ReadBuffer
from smbsrv.protocol.connection import Buffers, Connection
from smbsrv.protocol.errors import ProtocolViolation
from smbsrv.protocol.reply import FileRange
from smbsrv.wire.header import HEADER_SIZE

if TYPE_CHECKING:
    from smbsrv.crypto.signing import Signer
    from smbsrv.state import ServerState

log = logging.getLogger(__name__)

_NBSS_SESSION_MESSAGE = 0x00
_NBSS_KEEPALIVE = 0x85
# Response bytes a connection may have queued before it stops reading requests (two full 8 MiB READs).
_OUTBOX_LIMIT = 16 * 1024 * 1024
_IOV_MAX = 1024
# SO_SNDBUF asked for once a connection queues bulk data (Linux doubles it for its bookkeeping): see
# Outbox._grow_send_buffer.
_BULK_SEND_BUFFER = 4 * 1024 * 1024
_MIN_BUFFER = 64 * 1024
# NEGOTIATE and SESSION_SETUP messages (SPNEGO tokens included) are far smaller than this.
_HANDSHAKE_MESSAGE_LIMIT = 64 * 1024
_SMB2_WRITE = 0x09
_MAX_BULK_IN_FLIGHT = 3
_LOWAT_MIN_BYTES = 512 * 1024
_LOWAT_MAX_BYTES = 2 * 1024 * 1024
# Reads shorter than this go through SocketChannel's read-ahead buffer (every request but bulk WRITEs).
_READ_AHEAD_BYTES = 16 * 1024
# The largest message a client may send: MaxWriteSize of payload plus room for headers and a compound.
_PDU_OVERHEAD = 64 * 1024


class ConnectionClosed(Exception):
    pass


class SocketChannel:
    """One client socket: exact reads into caller buffers.

    Small reads go through a read-ahead buffer: one recv(2) takes a request's length prefix, its body, and
    whatever the client sent after it (the next requests of a pipelining client), instead of one recv for the
    prefix and another for the body. Large reads (WRITE payloads) land straight in the caller's buffer."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.loop = loop
        self.fd = sock.fileno()
        self._ahead = bytearray(_READ_AHEAD_BYTES)
        self._ahead_view = memoryview(self._ahead)
        self.waited = False  # a read had to wait for the event loop since the owner last cleared this
        self._start = 0  # the unread part of the read-ahead buffer is [_start, _end)
        self._end = 0

    def _take_ahead(self, view: memoryview, on_data: Callable[[memoryview], None] | None) -> memoryview:
        """Copy what the read-ahead buffer holds into `view`; return the part of `view` still missing."""
        count = min(len(view), self._end - self._start)
        if count:
            view[:count] = self._ahead_view[self._start:self._start + count]
            self._start += count
            if on_data is not None:
                on_data(view[:count])
            view = view[count:]
        return view

    def _fill_ahead(self, count: int) -> None:
        if count == 0:
            raise ConnectionClosed()
        self._start, self._end = 0, count

    def read_ready(self, view: memoryview, on_data: Callable[[memoryview], None] | None = None) -> memoryview:
        """Take what has already arrived into `view`; return the part still missing. Most messages are in
        the socket buffer when their turn comes, and this costs no trip through the event loop. `on_data` sees
        each piece as it lands."""
        view = self._take_ahead(view, on_data)
        try:
            while view:
                if len(view) < _READ_AHEAD_BYTES:
                    self._fill_ahead(self.sock.recv_into(self._ahead))
                    view = self._take_ahead(view, on_data)
                    continue
                count = self.sock.recv_into(view)
                if count == 0:
                    raise ConnectionClosed()
                if on_data is not None:
                    on_data(view[:count])
                view = view[count:]
        except (BlockingIOError, InterruptedError):
            pass
        return view

    async def read_exact(self, view: memoryview, timeout_s: float | None = None,
                         on_data: Callable[[memoryview], None] | None = None) -> None:
        view = self.read_ready(view, on_data)
        if not view:
            return
        self.waited = True
        if timeout_s is None:
            await self._read_rest(view, on_data)
        else:
            async with asyncio.timeout(timeout_s):
                await self._read_rest(view, on_data)

    async def _read_rest(self, view: memoryview, on_data: Callable[[memoryview], None] | None) -> None:
        # read_ready() left the read-ahead buffer empty.
        if len(view) < _LOWAT_MIN_BYTES:
            while view:
                if len(view) < _READ_AHEAD_BYTES:
                    self._fill_ahead(await self.loop.sock_recv_into(self.sock, self._ahead))
                    view = self._take_ahead(view, on_data)
                    continue
                count = await self.loop.sock_recv_into(self.sock, view)
                if count == 0:
                    raise ConnectionClosed()
                if on_data is not None:
                    on_data(view[:count])
                view = view[count:]
            return
        # A large payload arrives in many segments: asking the kernel to report the socket readable only
        # once a big piece is buffered turns ~16 wake-ups (each an epoll round trip) per 8 MiB into ~4.
        sock = self.sock
        try:
            while view:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, min(len(view), _LOWAT_MAX_BYTES))
                count = await self.loop.sock_recv_into(sock, view)
                if count == 0:
                    raise ConnectionClosed()
                if on_data is not None:
                    on_data(view[:count])
                view = view[count:]
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)


class Outbox:
    """Responses on their way out. A response is written at once when the socket takes it (the common case:
    no task switch between answering a request and sending the answer); what does not fit waits for the
    socket to become writable in a flusher task. READ data from the page cache leaves with sendfile(2)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.loop = loop
        self.fd = sock.fileno()
        self.items: deque[memoryview | FileRange] = deque()
        self.file_offset = 0  # progress within a FileRange at the head of `items`
        self.queued_bytes = 0
        self.flusher: asyncio.Task[None] | None = None
        self.broken = False
        self._room = asyncio.Event()
        self._room.set()
        self._send_buffer_grown = False

    def post(self, buffers: Buffers) -> None:
        """Queue `buffers` and send what the socket takes now; never waits."""
        if self.broken:
            _release(buffers)
            return
        if not self.items and self.flusher is None:
            buffers = self._send_now(buffers)
            if not buffers:
                return
        for buffer in buffers:
            if isinstance(buffer, FileRange):
                self.items.append(buffer)
                self.queued_bytes += buffer.count
            elif len(buffer):
                self.items.append(memoryview(buffer).cast("B"))
                self.queued_bytes += len(buffer)
        if self.queued_bytes >= BULK_IO_BYTES and not self._send_buffer_grown:
            self._grow_send_buffer()
        if self.flusher is None and not self._push():
            self.flusher = self.loop.create_task(self._flush())

    async def send(self, buffers: Buffers) -> None:
        """post(), then wait while more than _OUTBOX_LIMIT bytes are queued (a client that does not read
        cannot make the server hold unbounded response data)."""
        self.post(buffers)
        if self.queued_bytes > _OUTBOX_LIMIT and self.flusher is not None:
            self._room.clear()
            await self._room.wait()

    def _grow_send_buffer(self) -> None:
        """Give the socket a send buffer that takes a whole large READ response, the first time bulk data does
        not fit. Autotuning stops at tcp_wmem[2] (4 MiB on Debian), so an 8 MiB response left in two or more
        partial sends with a trip through the event loop (add_writer, epoll, wake-up) between each, per READ.
        Asked for only where the fixed size beats autotuning's ceiling (net.core.wmem_max caps what may be
        asked), so a host with the common 208 KiB wmem_max keeps autotuning. 8 parallel 128 MiB readers:
        0.515-0.53 -> 0.46-0.48 s of server CPU per GiB, both signing modes (docs/performance.md)."""
        self._send_buffer_grown = True
        size = _bulk_send_buffer_size()
        if size:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            except OSError:
                pass

    def _send_now(self, buffers: Buffers) -> Buffers:
        """The common case, nothing queued before: one sendmsg of the response as it is (no queue, no views);
        return what the socket did not take."""
        for buffer in buffers:
            if isinstance(buffer, FileRange):
                return buffers
        try:
            sent = self.sock.sendmsg(buffers)  # type: ignore[arg-type]
        except (BlockingIOError, InterruptedError):
            return buffers
        except OSError:
            self._break()
            return []
        for index, buffer in enumerate(buffers):
            size = len(buffer)  # type: ignore[arg-type]
            if sent < size:
                return [memoryview(buffer).cast("B")[sent:], *buffers[index + 1:]]  # type: ignore[arg-type]
            sent -= size
            if type(buffer) is ReadBuffer:
                READ_BUFFERS.give(buffer)
        return []

    def _push(self) -> bool:
        """Send until the socket would block; True when nothing is left."""
        try:
            while self.items:
                head = self.items[0]
                if isinstance(head, FileRange):
                    if not self._push_file(head):
                        return False
                    continue
                views: list[memoryview] = []
                for item in self.items:
                    if isinstance(item, FileRange) or len(views) == _IOV_MAX:
                        break
                    views.append(item)
                sent = self.sock.sendmsg(views)
                self.queued_bytes -= sent
                while sent:
                    view = self.items[0]
                    assert isinstance(view, memoryview)
                    if sent >= len(view):
                        sent -= len(view)
                        self.items.popleft()
                        if type(view.obj) is ReadBuffer:
                            READ_BUFFERS.give(view.obj)
                    else:
                        self.items[0] = view[sent:]
                        sent = 0
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self._break()
        return True

    def _push_file(self, file_range: FileRange) -> bool:
        while self.file_offset < file_range.count:
            sent = os.sendfile(self.fd, file_range.fd, file_range.offset + self.file_offset,
                               file_range.count - self.file_offset)
            if sent == 0:
                # The file shrank after the READ was answered: keep the framing with zeros.
                self.items[0] = memoryview(bytes(file_range.count - self.file_offset))
                self.file_offset = 0
                os.close(file_range.fd)
                return True
            self.file_offset += sent
            self.queued_bytes -= sent
        os.close(file_range.fd)
        self.items.popleft()
        self.file_offset = 0
        return True

    async def _flush(self) -> None:
        try:
            while not self._push():
                if self.queued_bytes <= _OUTBOX_LIMIT:
                    self._room.set()
                future = self.loop.create_future()
                self.loop.add_writer(self.fd, future.set_result, None)
                try:
                    await future
                finally:
                    self.loop.remove_writer(self.fd)
        finally:
            self.flusher = None
            self._room.set()

    def _break(self) -> None:
        self.broken = True
        _release(list(self.items))
        self.items.clear()
        self.queued_bytes = 0
        self._room.set()

    async def close(self, timeout_s: float) -> None:
        """Let queued responses leave (up to `timeout_s`), then drop the rest."""
        if self.flusher is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    await asyncio.shield(self.flusher)
            except (TimeoutError, asyncio.CancelledError):
                self.flusher.cancel()
        self._break()


_send_buffer_size: int | None = None


def _bulk_send_buffer_size() -> int:
    """The SO_SNDBUF to ask for on a connection that moves bulk data; 0: leave autotuning alone."""
    global _send_buffer_size
    if _send_buffer_size is None:
        try:
            wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
            autotune_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
        except (OSError, ValueError, IndexError):
            wmem_max = autotune_max = 0
        size = min(wmem_max, _BULK_SEND_BUFFER)
        _send_buffer_size = size if 2 * size > autotune_max else 0
    return _send_buffer_size


def _release(buffers: Buffers) -> None:
    for buffer in buffers:
        if isinstance(buffer, FileRange):
            os.close(buffer.fd)


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


async def _read_signed(channel: SocketChannel, connection: Connection,
                       message: memoryview) -> tuple[Signer, bytes] | None:
    """Receive a large message, folding it into its signature piece by piece as it lands: each piece is still
    in the CPU cache, and the signature is ready the moment the last byte is, instead of costing one more pass
    over 8 MiB between the end of the receive and the disk write."""
    header = message[:HEADER_SIZE]
    await channel.read_exact(header)
    started = connection.begin_streamed_signature(header)
    if started is None:
        await channel.read_exact(message[HEADER_SIZE:])
        return None
    signer, running = started
    await channel.read_exact(message[HEADER_SIZE:], on_data=running.update)
    return signer, running.finish()


def _is_bulk_write(message: memoryview) -> bool:
    """A lone large WRITE: it may run while the next message is received (module docstring)."""
    return (len(message) >= BULK_IO_BYTES and message[:4] == b"\xfeSMB" and message[12] == _SMB2_WRITE
            and message[13] == 0 and message[20:24] == b"\0\0\0\0")


async def serve_connection(server: ServerState, sock: socket.socket, peer: str,
                           stopping: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    channel = SocketChannel(sock, loop)
    outbox = Outbox(sock, loop)
    # Async completions (blocking locks) are posted without waiting: they are few and small.
    connection = Connection(server, peer, outbox.post, HANDLERS)
    connection.local_address = sock.getsockname()[:2]
    server.connections.add(connection)
    config = server.config
    max_message = config.max_io_size + _PDU_OVERHEAD
    handshake_deadline = loop.time() + config.handshake_timeout_s
    prefix = bytearray(4)
    prefix_view = memoryview(prefix)
    pool = _BufferPool(_MAX_BULK_IN_FLIGHT + 1)
    bulk: set[asyncio.Task[None]] = set()

    async def process(buffer: bytearray, message: memoryview, streamed: tuple[Signer, bytes] | None) -> None:
        try:
            responses = await connection.handle_message(message, streamed)
            if responses:
                await outbox.send(responses)
        finally:
            message.release()
            pool.give(buffer)

    log.info("connection %d from %s", connection.connection_id, peer)
    try:
        if len(server.connections) > config.max_connections:
            log.warning("connection %d refused: %d connections", connection.connection_id, config.max_connections)
            return
        was_logged_on = False
        while not stopping.is_set():
            logged_on = connection.has_valid_session()
            if was_logged_on and not logged_on:
                # The last session logged off: logging on again gets a fresh handshake deadline.
                handshake_deadline = loop.time() + config.handshake_timeout_s
            was_logged_on = logged_on
            # Until a client has logged on it gets a deadline, and small messages only: a flood of silent or
            # half-open connections costs a few kilobytes each, not a MaxWriteSize buffer.
            await channel.read_exact(prefix_view, None if logged_on else max(0.0, handshake_deadline - loop.time()))
            kind = prefix[0]
            length = int.from_bytes(prefix[1:4], "big")
            if kind == _NBSS_KEEPALIVE:
                continue
            limit = max_message if logged_on else _HANDSHAKE_MESSAGE_LIMIT
            if kind != _NBSS_SESSION_MESSAGE or length > limit or length < 4:
                log.info("connection %d: bad frame (type %#x, length %d)", connection.connection_id, kind, length)
                break
            buffer = pool.take(length)
            message = memoryview(buffer)[:length]
            streamed = None
            if length >= BULK_IO_BYTES and logged_on:
                async with asyncio.timeout(config.message_timeout_s):
                    streamed = await _read_signed(channel, connection, message)
            else:
                await channel.read_exact(message, config.message_timeout_s)
            if _is_bulk_write(message):
                # Large WRITEs overlap: the disk write of one runs in a thread while the next is received.
                task = loop.create_task(process(buffer, message, streamed))
                bulk.add(task)
                task.add_done_callback(bulk.discard)
                if len(bulk) >= _MAX_BULK_IN_FLIGHT:
                    await asyncio.wait(bulk, return_when=asyncio.FIRST_COMPLETED)
            else:
                # Everything else runs in arrival order, after the WRITEs before it have finished (a CLOSE
                # must not overtake the WRITE of the same handle).
                if bulk:
                    await asyncio.wait(bulk)
                await process(buffer, message, streamed)
            for task in [t for t in bulk if t.done()]:
                task.result()
            if outbox.broken:
                break
            if not channel.waited:
                # Fairness: a client whose next request is always there already (one that pipelines, or just
                # answers quickly) would never make this task wait, and without a turn of the event loop no
                # other connection's request, and no timer, runs until it pauses (a CHANGE_NOTIFY of one
                # connection waited behind five round trips of another, smbtorture smb2.notify.basedir).
                await asyncio.sleep(0)
            channel.waited = False
    except ConnectionClosed:
        pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:
        log.info("connection %d: dropped: too slow", connection.connection_id)
    except ProtocolViolation as exc:
        log.info("connection %d: dropped: %s", connection.connection_id, exc)
    except asyncio.CancelledError:
        pass
    finally:
        # WRITEs in flight are not cancelled: their worker threads hold the file descriptors, which must stay
        # open (and not be reused by another open) until the threads are done. A dead writer task would leave
        # their responses waiting on a full queue, so the queue is emptied meanwhile.
        while bulk:
            await asyncio.wait(bulk, timeout=0.1)
        connection.connection_lost()
        server.connections.discard(connection)
        await outbox.close(timeout_s=5)
        sock.close()
        log.info("connection %d closed", connection.connection_id)


__all__ = ["Outbox", "SocketChannel", "serve_connection"]
