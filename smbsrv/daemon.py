"""The server process: listening sockets, one task per connection, orderly shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

from smbsrv import dispatch  # noqa: F401  (imported now, not on the first request of the first client)
from smbsrv.config import ServerConfig
from smbsrv.fs import identity
from smbsrv.state import ServerState
from smbsrv.transport import serve_connection

log = logging.getLogger(__name__)

_SHUTDOWN_GRACE_S = 10.0
_ACCEPT_RETRY_S = 0.1


def _listening_socket(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((address, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


async def run(config: ServerConfig, state: ServerState) -> None:
    loop = asyncio.get_running_loop()
    # Worker threads are spawned by whichever thread submits the first jobs, possibly one acting as a client,
    # and a new thread inherits its creator's credentials: each starts by becoming the server again.
    loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="smbsrv-io", initializer=identity.become_root))
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    listeners = [_listening_socket(address, config.port) for address in config.listen]
    connections: set[asyncio.Task[None]] = set()

    async def accept_loop(listener: socket.socket) -> None:
        while True:
            try:
                client, address = await loop.sock_accept(listener)
            except OSError as exc:
                # Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS): keep serving the connections there
                # are, and try again shortly rather than stop accepting for good.
                log.warning("accept failed: %s", exc.strerror)
                await asyncio.sleep(_ACCEPT_RETRY_S)
                continue
            peer = f"{address[0]}:{address[1]}"
            task = loop.create_task(serve_connection(state, client, peer, stopping))
            connections.add(task)
            task.add_done_callback(connections.discard)

    acceptors = [loop.create_task(accept_loop(listener)) for listener in listeners]
    for listener in listeners:
        host, port = listener.getsockname()[:2]
        log.info("listening on %s port %d", host, port)
    await stopping.wait()
    log.info("shutting down: no new connections, finishing requests in flight")
    for acceptor in acceptors:
        acceptor.cancel()
    for listener in listeners:
        listener.close()
    # Connections finish the request they are working on and then stop reading; idle ones are waiting in
    # recv and are cancelled at once by the wait below running out only if they do not stop by themselves.
    for connection in list(state.connections):
        connection.closed = True
    if connections:
        _, pending = await asyncio.wait(connections, timeout=0.2)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_SHUTDOWN_GRACE_S)
    log.info("stopped")

