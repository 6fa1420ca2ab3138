"""What a command handler hands back: a response body, and optionally bulk data that follows it unjoined."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from smbsrv.wire.status import NtStatus


@dataclass(slots=True)
class Reply:
    body: bytes
    payload: memoryview | bytes | bytearray | None = None  # READ data: sent after body without a copy
    status: NtStatus = NtStatus.STATUS_SUCCESS  # success-class warnings such as STATUS_BUFFER_OVERFLOW


class GoAsync(Exception):
    """Raised by a handler whose answer will come later ([MS-SMB2] 3.3.4.2): the dispatcher sends an interim
    STATUS_PENDING response and awaits `completion`, which returns the final body or raises SmbError."""

    def __init__(self, completion: Callable[[], Awaitable[bytes | Reply]]) -> None:
        super().__init__("async")
        self.completion = completion
