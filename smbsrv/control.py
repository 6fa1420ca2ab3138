"""The control socket: `smbsrv status` and `smbsrv reload` talk to the running daemon through it.

An AF_UNIX stream socket (by default control.sock in state_dir), mode 0600 owned by the server, or 0660 with
group `control_group`. The file mode is the first gate; the second is the peer's credentials (SO_PEERCRED,
which the kernel fills in at connect time and a client cannot forge): root, the server's own uid, or a member of
control_group. Samba's smbcontrol/smbstatus and ksmbd.control are the analogues.

Protocol: JSON lines. The client sends one object, `{"command": "status" | "reload" | "close-session" |
"close-file", ...arguments}`, and reads one object back: `{"ok": true, ...}` or `{"ok": false, "error": "..."}`.
Everything here runs on the event loop, as the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_MAX_REQUEST = 4096
_REQUEST_TIMEOUT_S = 10.0

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]  # (command, the whole request)


class ControlError(Exception):
    """The daemon could not be reached or refused the request; the message says why."""


def _group_members(group: str) -> tuple[int | None, set[str]]:
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return None, set()
    return entry.gr_gid, set(entry.gr_mem)


def peer_allowed(uid: int, gid: int, group: str) -> bool:
    """Root, the server's own user, or (when `group` is set) a member of it by primary or supplementary group."""
    if uid in (0, os.geteuid()):
        return True
    if not group:
        return False
    group_gid, members = _group_members(group)
    if group_gid is None:
        return False
    if gid == group_gid:
        return True
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return False
    return name in members or group_gid in os.getgrouplist(name, gid)


class ControlServer:
    def __init__(self, path: str, group: str, handler: Handler) -> None:
        self.path = path
        self.group = group
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._inode: tuple[int, int] | None = None

    async def start(self) -> bool:
        """Bind the socket; False (and a warning) when another live server already answers on it."""
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        if os.path.exists(self.path):
            if _answers(self.path):
                log.warning("control socket %s is in use by another server: status and reload unavailable",
                            self.path)
                return False
            os.unlink(self.path)  # left behind by a server that was killed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # never, not even between bind and chmod, wider than 0600
        try:
            sock.bind(self.path)
        finally:
            os.umask(old_umask)
        if self.group:
            gid, _ = _group_members(self.group)
            if gid is not None:
                os.chown(self.path, -1, gid)
                os.chmod(self.path, 0o660)
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock)
        log.info("control socket %s", self.path)
        return True

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Remove the socket only if it is still ours (a second server may have taken a stale name).
        with contextlib.suppress(OSError):
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            pid, uid, gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                            _PEERCRED.size))
            # The request is read either way (and only parsed for an allowed peer), so that a refused client
            # gets the answer instead of a broken pipe.
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                line = await reader.readline()
            if not peer_allowed(uid, gid, self.group):
                log.warning("control socket: refused pid %d uid %d gid %d", pid, uid, gid)
                reply: dict[str, Any] = {"ok": False, "error": "permission denied"}
            else:
                reply = await self._answer(line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a line over the reader's limit
            log.info("control socket: request not answered: %s", exc)
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        if len(line) > _MAX_REQUEST or not line.endswith(b"\n"):
            return {"ok": False, "error": "request too long or not a line"}
        try:
            request = json.loads(line)
            command = request["command"]
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "expected a JSON object with a command"}
        if not isinstance(command, str):
            return {"ok": False, "error": "command must be a string"}
        return await self.handler(command, request)


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def request(path: str, command: str, timeout_s: float = 30.0, **arguments: Any) -> dict[str, Any]:
    """Send one command (with its arguments) to the daemon and return its answer; ControlError when it cannot be
    had."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(path)
            sock.sendall(json.dumps({"command": command, **arguments}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise ControlError(f"{path}: {exc.strerror or exc}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"{path}: no answer from the server") from None
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "refused")))
    return reply  # type: ignore[no-any-return]


def format_status(status: dict[str, Any]) -> str:
    """The text `smbsrv status` prints: one table per kind, like smbstatus."""
    server = status["server"]
    per_user = server["opens_per_user"]
    held = ", ".join(f"{name} {count}" for name, count in per_user["held"].items()) or "-"
    lines = [(f"smbsrv pid {server['pid']}: {server['connections']} connection(s), "
              f"shares: {', '.join(server['shares']) or '-'}"),
             f"opens per user (limit {per_user['limit']}): {held}", ""]
    lines.append(f"{'Session':<18} {'User':<16} {'Client':<24} {'Dialect':<8} {'Signing':<9} "
                 f"{'Encryption':<10} Trees")
    for session in status["sessions"]:
        trees = ", ".join(f"{tree['tree_id']}:{tree['share']}" for tree in session["tree_connects"]) or "-"
        lines.append(f"{session['session_id']:<18} {session['user']:<16} {session['client']:<24} "
                     f"{session['dialect']:<8} {session['signing']:<9} {session['encryption']:<10} {trees}")
    header = f"{'Session':<18} {'FileId':>7} {'Access':<10} {'Share':<5} {'Oplock':<14} {'Share name':<12} Path"
    lines += ["", header]
    for entry in status["open_files"]:
        lines.append(f"{entry['session_id']:<18} {entry['file_id']:>7} {entry['access_mask']:<10} "
                     f"{_share_access(entry['share_access']):<5} {_caching(entry):<14} {entry['share']:<12} "
                     f"{entry['path'] or '.'}")
    lines += ["", f"{'Session':<18} {'FileId':>7} {'Type':<4} {'Offset':>20} {'Length':>20} Path"]
    for lock in status["locks"]:
        lines.append(f"{lock['session_id']:<18} {lock['file_id']:>7} {'EX' if lock['exclusive'] else 'SH':<4} "
                     f"{lock['offset']:>20} {lock['length']:>20} {lock['share']}/{lock['path']}")
    lines += ["", f"{'Break':<6} {'Lease key / FileId':<32} {'From':<9} {'To':<9} {'Timeout':>8} Path"]
    for brk in status.get("breaks", []):
        what = brk["key"] if brk["kind"] == "lease" else str(brk["file_id"])
        lines.append(f"{brk['kind']:<6} {what:<32} {brk['from'] or 'none':<9} {brk['to'] or 'none':<9} "
                     f"{brk['deadline_s']:>7}s {brk['share']}/{brk['path']}")
    return "\n".join(lines) + "\n"


def _caching(entry: dict[str, Any]) -> str:
    """An open's oplock ("batch", "level2", ...) or lease ("lease RH", "dirlease R"), "-" for none; a break in
    progress as "->" and its target."""
    lease = entry.get("lease")
    if lease is None:
        oplock = entry.get("oplock", "none")
        text = "-" if oplock == "none" else oplock
        return text + (f"->{entry['breaking_to']}" if entry.get("breaking_to") else "")
    text = f"{'dirlease' if lease['directory'] else 'lease'} {lease['state'] or 'none'}"
    return text + (f"->{lease['breaking_to'] or 'none'}" if lease["breaking_to"] is not None else "")


def _share_access(mask: int) -> str:
    """FILE_SHARE_READ/WRITE/DELETE ([MS-SMB2] 2.2.13) as smbstatus prints them."""
    return "".join(letter if mask & bit else "-" for bit, letter in ((1, "R"), (2, "W"), (4, "D")))
