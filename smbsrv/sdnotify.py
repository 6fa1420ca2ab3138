"""systemd's readiness protocol (sd_notify(3)): datagrams of `KEY=VALUE` lines to the socket in $NOTIFY_SOCKET.

A unit with Type=notify is "started" only once the service sends READY=1, so `systemctl start` returns when
clients can connect, and units ordered after it start then. Written here rather than taken from libsystemd: the
protocol is one datagram, and the server must not depend on systemd being present (in a container it is not).
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def notify(*lines: str) -> bool:
    """Send the lines as one datagram; False when no manager listens (not started by systemd) or it failed.

    A path starting with '@' names a socket in the abstract namespace (sd_notify(3))."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.warning("NOTIFY_SOCKET %r is neither a path nor an abstract name; not notifying", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode(), address)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc.strerror)
        return False
    return True


def monotonic_usec() -> str:
    """MONOTONIC_USEC=, which systemd wants with RELOADING=1 (CLOCK_MONOTONIC in microseconds)."""
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
