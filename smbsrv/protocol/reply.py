"""What a command handler hands back: a response body, and optionally bulk data that follows it unjoined."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from smbsrv.wire.status import NtStatus


@dataclass(slots=True)
class FileRange:
    """READ data still in the page cache: the transport sends it with sendfile(2), with no copy through user
    space. The range lies within the file size known when the READ was answered; `fd` is a duplicate that the
    transport closes once sent."""

    fd: int
    offset: int
    count: int

    def __len__(self) -> int:
        return self.count

    def read(self) -> bytearray:
        """The data as bytes, for responses that must be signed or encrypted (and so pass through memory)."""
        import os

        buffer = bytearray(self.count)
        try:
            got = os.preadv(self.fd, [buffer], self.offset)
        finally:
            os.close(self.fd)
        # A file truncated since the READ was answered reads short; the announced length is kept.
        del got
        return buffer


@dataclass(slots=True)
class Reply:
    body: bytes
    payload: memoryview | bytes | bytearray | FileRange | None = None  # READ data, sent after body unjoined
    status: NtStatus = NtStatus.STATUS_SUCCESS  # success-class warnings such as STATUS_BUFFER_OVERFLOW


class GoAsync(Exception):
    """Raised by a handler whose answer will come later ([MS-SMB2] 3.3.4.2): the dispatcher sends an interim
    STATUS_PENDING response and awaits `completion`, which returns the final body or raises SmbError.
    `ended`, when given, runs once the work is over however it ended: also when a CANCEL stopped it before its
    first step, where the coroutine's own finally clauses never run.

    Not every request may go async where it stands: in the middle of a compound only a wait whose end is in
    sight does (`holds_chain`: an oplock or lease break, a placeholder's hydration; the related requests after
    it run once it is answered). Any other (a CHANGE_NOTIFY, a blocking LOCK, which may wait for ever) is
    answered STATUS_INTERNAL_ERROR at once instead (protocol/connection.py, [MS-SMB2] 3.3.5.2.7), and so is a
    request over the connection's async limit (STATUS_INSUFFICIENT_RESOURCES). Then the completion is never
    made, `withdraw` (by default `ended`) undoes what the handler set up for the wait, and `refused` (set by
    the observer, events.py) learns the status the request was answered with."""

    def __init__(self, completion: Callable[[], Awaitable[bytes | Reply]],
                 ended: Callable[[], None] | None = None, *, holds_chain: bool = False,
                 withdraw: Callable[[], None] | None = None) -> None:
        super().__init__("async")
        self.completion = completion
        self.ended = ended
        self.holds_chain = holds_chain
        self.withdraw = withdraw if withdraw is not None else ended
        self.refused: Callable[[int], None] | None = None

    def wrapped(self, completion: Callable[[], Awaitable[bytes | Reply]]) -> GoAsync:
        """The same wait answered by another completion (a caller that finishes the answer itself)."""
        wait = GoAsync(completion, self.ended, holds_chain=self.holds_chain, withdraw=self.withdraw)
        wait.refused = self.refused
        return wait
