"""Network isolation for the qemu guest: a private network namespace and a loopback relay into it.

qemu's user-mode network stack (slirp) turns the guest's connections to 10.0.2.2 into connect() calls to
127.0.0.1 on the host side, made from wherever qemu runs. qemu therefore runs inside a network namespace that
this module creates with only `lo` up: the guest can reach nothing but that namespace's loopback.

The server under test listens on 127.0.0.1 in the host namespace. TcpRelay bridges the two: its listening socket
is created inside the private namespace (by a short-lived thread that joins the namespace with setns(2); a socket
stays in the namespace it was created in), and each accepted connection is forwarded to 127.0.0.1:<server port>
from the host namespace. No other address is used anywhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Self

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
LOOPBACK = "127.0.0.1"
_RELAY_CHUNK = 256 * 1024


def _setns(fd: int, nstype: int) -> None:
    """setns(2) for the calling thread only; os.setns exists from Python 3.12."""
    native = getattr(os, "setns", None)
    if native is not None:
        native(fd, nstype)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


class NetNamespace:
    """A named namespace (/run/netns/NAME) made with `ip netns add`, with only lo up; delete() removes it."""

    def __init__(self, prefix: str = "smbsrv-vm") -> None:
        self.name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = f"/run/netns/{self.name}"
        self._created = False

    def create(self) -> None:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self._created = True
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, capture_output=True)

    def delete(self) -> None:
        if self._created:
            subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)
            self._created = False

    def enter_command(self) -> list[str]:
        """Prefix that runs a command inside the namespace (ip netns exec execs it, so the PID stays the same)."""
        return ["ip", "netns", "exec", self.name]

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        """Creates a socket that belongs to this namespace."""
        result: list[socket.socket | OSError] = []

        def make() -> None:
            # This thread joins the namespace and then ends, so no thread of the test process is left there.
            try:
                with open(self.path, "rb") as ns_file:
                    _setns(ns_file.fileno(), CLONE_NEWNET)
                result.append(socket.socket(family, type))
            except OSError as error:  # handed to the caller's thread below
                result.append(error)

        worker = threading.Thread(target=make, name=f"netns-{self.name}")
        worker.start()
        worker.join()
        if not result:
            raise RuntimeError(f"could not create a socket in {self.name}")
        outcome = result[0]
        if isinstance(outcome, OSError):
            raise outcome
        return outcome

    def __enter__(self) -> Self:
        self.create()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.delete()


class TcpRelay:
    """Listens on 127.0.0.1:listen_port inside a namespace and forwards to 127.0.0.1:target_port on the host."""

    def __init__(self, namespace: NetNamespace, listen_port: int, target_port: int) -> None:
        self.namespace = namespace
        self.listen_port = listen_port
        self.target_port = target_port
        self.connections = 0
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._open_sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = self.namespace.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.listen_port))
        listener.listen(16)
        self._listener = listener
        self._spawn(self._accept_loop, "relay-accept")

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_sockets.add(sock)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                inside, _ = self._listener.accept()
            except OSError:
                return
            self._track(inside)
            try:
                # Created by this thread, which never left the host namespace.
                outside = socket.create_connection((LOOPBACK, self.target_port), timeout=10)
                outside.settimeout(None)
            except OSError as error:
                log.warning("relay: cannot reach %s:%d: %s", LOOPBACK, self.target_port, error)
                inside.close()
                continue
            self._track(outside)
            self.connections += 1
            for sock in (inside, outside):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(self._pump, "relay-in", inside, outside)
            self._spawn(self._pump, "relay-out", outside, inside)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(_RELAY_CHUNK)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        # Pass the half-close on; the other direction may still be sending.
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> int:
        """Drops every relayed connection (both sides, at once, as a network failure would end them) and keeps
        listening, so the client can reconnect. Returns how many sockets were closed."""
        with self._lock:
            sockets = list(self._open_sockets)
            self._open_sockets.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return len(sockets)

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with self._lock:
            sockets = list(self._open_sockets)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def isolated_relay(listen_port: int, target_port: int) -> Iterator[tuple[NetNamespace, TcpRelay]]:
    """A fresh namespace plus a relay into it; both are removed on exit, also after an error."""
    with NetNamespace() as namespace, TcpRelay(namespace, listen_port, target_port) as relay:
        yield namespace, relay
