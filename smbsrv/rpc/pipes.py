"""Named pipes on IPC$: what the SMB2 layer opens, writes, reads and transceives ([MS-SMB2] 2.2.13, 2.2.31).

Each open of a pipe gets its own NamedPipe with its own DCE/RPC association ([MS-RPCE] 2.1.1.2, ncacn_np).
The pipe is a message-mode pipe like the Windows RPC pipes: every PDU the server produces is one message,
and a read never returns bytes of two messages. impacket's DCE/RPC client depends on this: it takes each
read as at most one fragment.

Everything is in memory; the SMB2 layer owns the opens and the statuses.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.rpc.association import Association, RpcInterface
from smbsrv.rpc.srvsvc import STYPE_DISKTREE, STYPE_IPC, STYPE_SPECIAL, SrvsvcInterface
from smbsrv.wire.status import NtStatus

__all__ = [
    "STYPE_DISKTREE",
    "STYPE_IPC",
    "STYPE_SPECIAL",
    "NamedPipe",
    "PipeServerInfo",
    "ShareEntry",
    "open_pipe",
]

# Unread responses a client may leave behind before its writes are refused: far above what srvsvc produces
# for any real share list, low enough that a client that never reads cannot grow the server without bound.
MAX_PENDING_OUTPUT = 1 << 20


@dataclass(frozen=True)
class ShareEntry:
    """One share as srvsvc reports it ([MS-SRVS] 2.2.4.24 SHARE_INFO_2)."""

    name: str
    share_type: int  # STYPE_DISKTREE, or STYPE_IPC | STYPE_SPECIAL (0x80000003) for IPC$
    comment: str
    path: str  # the local path; reported as "C:\\..." in the levels that carry one


@dataclass(frozen=True)
class PipeServerInfo:
    """What the pipes know about the server: its name and its shares, in the order they are listed."""

    server_name: str
    shares: tuple[ShareEntry, ...]


class NamedPipe:
    """One open of a message-mode RPC pipe."""

    def __init__(self, name: str, interfaces: tuple[RpcInterface, ...]) -> None:
        self.name = name
        self._association = Association(interfaces, sec_addr="\\PIPE\\" + name)
        self._messages: deque[bytes] = deque()
        self._read_offset = 0  # how much of self._messages[0] was already read
        self._pending = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Accept client bytes (a PDU, part of one, or several) and queue the answers; returns len(data).

        Raises SmbError(STATUS_INSUFFICIENT_RESOURCES) when the client left too much output unread.
        """
        if self._pending > MAX_PENDING_OUTPUT:
            raise SmbError(NtStatus.STATUS_INSUFFICIENT_RESOURCES)
        for message in self._association.receive(data):
            self._messages.append(message)
            self._pending += len(message)
        return len(data)

    def read(self, max_len: int) -> bytes:
        """Up to `max_len` bytes of the oldest unread message; b"" when nothing is pending.

        When the message is longer than `max_len` the rest stays for the next read
        (current_message_remaining() > 0), which the SMB2 layer reports as STATUS_BUFFER_OVERFLOW.
        """
        if not self._messages or max_len <= 0:
            return b""
        message = self._messages[0]
        chunk = message[self._read_offset : self._read_offset + max_len]
        self._read_offset += len(chunk)
        self._pending -= len(chunk)
        if self._read_offset == len(message):
            self._messages.popleft()
            self._read_offset = 0
        return chunk

    def pending_output(self) -> int:
        """Bytes queued for the client, over all messages."""
        return self._pending

    def current_message_remaining(self) -> int:
        """Bytes left of the message the last read started: non-zero exactly when that read was cut short."""
        if not self._messages or self._read_offset == 0:
            return 0
        return len(self._messages[0]) - self._read_offset

    def transceive(self, data: bytes | bytearray | memoryview, max_out: int) -> bytes:
        """FSCTL_PIPE_TRANSCEIVE ([MS-FSCC] 2.3.47 / 2.3.48): write one request, read one message.

        Raises SmbError(STATUS_PIPE_BUSY) while earlier output is still unread, as [MS-FSCC] 2.3.48 lists.
        """
        if self._pending:
            raise SmbError(NtStatus.STATUS_PIPE_BUSY)
        self.write(data)
        return self.read(max_out)


def _interfaces_for(pipe_name: str, server: PipeServerInfo) -> tuple[RpcInterface, ...] | None:
    if pipe_name == "srvsvc":
        return (SrvsvcInterface(server),)
    return None


def open_pipe(name: str, server: PipeServerInfo) -> NamedPipe | None:
    """Open the pipe `name` as a client sent it in SMB2 CREATE; None for a pipe this server does not have.

    Accepted spellings: "srvsvc", "\\srvsvc", "PIPE\\srvsvc", "\\PIPE\\srvsvc", in any case.
    """
    normalized = name.lstrip("\\").lower().removeprefix("pipe\\")
    interfaces = _interfaces_for(normalized, server)
    if interfaces is None:
        return None
    return NamedPipe(normalized, interfaces)
