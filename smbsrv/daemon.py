"""The server process: listening sockets, one task per connection, orderly shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import resource
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from smbsrv import (
    dispatch,  # noqa: F401  (imported now, not on the first request of the first client)
    events,
    sdnotify,
)
from smbsrv.auth.users import UserDB, UserDBError
from smbsrv.config import ConfigError, ServerConfig
from smbsrv.control import ControlServer
from smbsrv.fs import identity
from smbsrv.state import NOFILE_WHEN_UNLIMITED, ServerState
from smbsrv.transport import serve_connection

log = logging.getLogger(__name__)

_SHUTDOWN_GRACE_S = 10.0
_ACCEPT_RETRY_S = 0.1




def _raise_descriptor_limit() -> None:
    """Every open, watch, durable handle and connection holds a descriptor, so the soft RLIMIT_NOFILE (1024 for
    most daemons started without systemd's LimitNOFILE) would let one client's opens use up the table and
    refuse every other client. Raise it to the hard limit, as smbd does at start (source3/smbd/files.c,
    file_init_global: set_maxfiles); a hard limit that cannot be reached is left as it is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = NOFILE_WHEN_UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)


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


ReloadSource = Callable[[], tuple[ServerConfig, UserDB]]


async def run(config: ServerConfig, state: ServerState, reload_source: ReloadSource | None = None) -> None:
    """Serve until SIGTERM/SIGINT. `reload_source` re-reads the configuration and users file for SIGHUP and
    `smbsrv reload`; without it a reload keeps everything as it is."""
    loop = asyncio.get_running_loop()
    # Worker threads are spawned by whichever thread submits the first jobs, possibly one acting as a client,
    # and a new thread inherits its creator's credentials: each starts by becoming the server again.
    loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="smbsrv-io", initializer=identity.become_root))
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    _raise_descriptor_limit()
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
    operations = await _start_operations(config, state, reload_source or (lambda: (state.config, state.users)))
    # The handler runs on the event loop (not in signal context), between two requests.
    loop.add_signal_handler(signal.SIGHUP, operations.reload)
    # systemd (Type=notify): started once clients can connect.
    sdnotify.notify("READY=1", f"STATUS=serving {len(state.shares)} share(s) on port "
                    f"{listeners[0].getsockname()[1]}", f"MAINPID={os.getpid()}")
    await stopping.wait()
    sdnotify.notify("STOPPING=1")
    log.info("shutting down: no new connections, finishing requests in flight")
    await operations.stop()
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



class _Operations:
    """The control socket, the metrics endpoint and reloads: what an administrator drives a running server by."""

    def __init__(self, state: ServerState, reload_source: ReloadSource) -> None:
        self.state = state
        self.reload_source = reload_source
        self.control: ControlServer | None = None
        self.metrics_server: Any = None

    async def handle(self, command: str, request: dict[str, Any]) -> dict[str, Any]:
        if command == "status":
            return {"ok": True, "status": self.state.status_snapshot()}
        if command == "reload":
            return self.reload()
        if command == "close-session":
            return self.close_sessions(request)
        if command == "close-file":
            return self.close_files(request)
        return {"ok": False, "error": f"unknown command {command!r} (status, reload, close-session, close-file)"}

    def close_sessions(self, request: dict[str, Any]) -> dict[str, Any]:
        """Close the sessions that match every criterion given: "session" (its id, 0x... as status shows it),
        "user", "client" (an address, with or without the port). At least one is needed."""
        session_id, user, client = request.get("session"), request.get("user"), request.get("client")
        if session_id is None and user is None and client is None:
            return {"ok": False, "error": "name the sessions to close: session, user or client"}
        if not all(value is None or isinstance(value, str) and value for value in (session_id, user, client)):
            return {"ok": False, "error": "session, user and client must be non-empty strings"}
        try:
            number = int(session_id, 0) if session_id is not None else None
        except ValueError:
            return {"ok": False, "error": f"not a session id: {session_id!r}"}
        closed = self.state.close_sessions(number, user, client)
        for entry in closed:
            log.warning("administrator closed session %s of %s from %s (%d open(s) closed)", entry["session_id"],
                        entry["user"], entry["client"], entry["opens_closed"])
        return {"ok": True, "closed": closed}

    def close_files(self, request: dict[str, Any]) -> dict[str, Any]:
        """Close the opens named by "file_ids" (the FileIds status shows)."""
        file_ids = request.get("file_ids")
        if not isinstance(file_ids, list) or not file_ids or \
                not all(isinstance(value, int) and not isinstance(value, bool) for value in file_ids):
            return {"ok": False, "error": "file_ids must be a non-empty list of FileIds"}
        closed = self.state.close_files(file_ids)
        for entry in closed:
            log.warning("administrator closed FileId %d (%s/%s, session %s)", entry["file_id"], entry["share"],
                        entry["path"], entry["session_id"])
        return {"ok": True, "closed": closed}

    def reload(self) -> dict[str, Any]:
        """Re-read the configuration and users file; a bad one is refused and the running one stays."""
        sdnotify.notify("RELOADING=1", sdnotify.monotonic_usec())
        try:
            config, users = self.reload_source()
        except (ConfigError, UserDBError, OSError) as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            sdnotify.notify("READY=1", "STATUS=reload refused: see the log")
            return {"ok": False, "error": str(exc)}
        changes = self.state.reload(config, users)
        logging.getLogger().setLevel(_log_level(self.state.config.log_level))
        log.info("reloaded: %d share(s), %d user(s); added %s, removed %s, changed %s",
                 len(self.state.shares), len(users), _names(changes["added_shares"]),
                 _names(changes["removed_shares"]), _names(changes["changed_shares"]))
        if changes["restart_needed"]:
            log.warning("reload: %s changed but apply only after a restart", ", ".join(changes["restart_needed"]))
        sdnotify.notify("READY=1", f"STATUS=serving {len(self.state.shares)} share(s)")
        return {"ok": True, **changes}

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()


async def _start_operations(config: ServerConfig, state: ServerState, reload_source: ReloadSource) -> _Operations:
    operations = _Operations(state, reload_source)
    metrics = None
    if config.metrics:
        from smbsrv.metrics import LimitCounter, Metrics, MetricsServer

        metrics = Metrics()
        try:
            operations.metrics_server = MetricsServer(metrics, state)
        except ImportError:
            log.error("metrics = true needs prometheus_client (pip install 'smbsrv[metrics]'): metrics are off")
            metrics = None
        else:
            logging.getLogger("smbsrv.transport").addFilter(LimitCounter(metrics))
            await operations.metrics_server.start(config.metrics_listen, config.metrics_port)
    if config.audit_log:
        _open_audit_log(config.audit_log)
    events.OBSERVER.configure(metrics, config.audit_log)
    control = ControlServer(config.control_socket_path, config.control_group, operations.handle)
    try:
        if await control.start():
            operations.control = control
    except OSError as exc:
        log.warning("control socket %s: %s; status and reload unavailable", control.path, exc.strerror)
    return operations


class _AuditFile(logging.handlers.WatchedFileHandler):
    """The audit log at its path: when logrotate (or an administrator) moves the file away, the next line goes
    to a new file at that path, not on into the moved one. Created 0640, as it names users and files."""

    _failing = False  # the file could not be (re)opened: said once, until it can be again

    def _open(self) -> Any:
        # O_NOFOLLOW: the file is opened again after every rotation, by root; a symlink someone put at the path
        # meanwhile must not make the server append to the file it points at.
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o640)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        # The base class reopens outside its error handling: an OSError (the directory gone after a rotation,
        # a full file system) would reach the logging call, and fail the request whose work it records.
        try:
            self.reopenIfNeeded()
            if self.stream is None:
                self.stream = self._open()
                self._statstream()
        except OSError as exc:
            if not self._failing:
                self._failing = True
                log.error("cannot write the audit log %s: %s; its lines are lost until it can be created",
                          self.baseFilename, exc.strerror or exc)
            return
        self._failing = False
        logging.StreamHandler.emit(self, record)


def _open_audit_log(path: str) -> None:
    # Appended to and written as the server, whatever thread logs.
    handler = _AuditFile(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    audit = logging.getLogger("smbsrv.audit")
    audit.addHandler(identity.ServerIdentityHandler(handler))
    audit.setLevel(logging.INFO)
    audit.propagate = False
    log.info("audit log %s", path)


def _log_level(name: str) -> int:
    return logging.DEBUG if name.upper() == "TRACE" else getattr(logging, name.upper())


def _names(names: list[str]) -> str:
    return ", ".join(names) or "-"
