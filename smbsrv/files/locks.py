"""Byte-range locks of one file ([MS-FSA] 2.1.5.7, 2.1.5.2, 2.1.5.3): Windows semantics, kept by the server.

Locks live in the server (not in the kernel) because their semantics are Windows': mandatory for READ and
WRITE through other handles, exact-range unlock, and blocking requests that complete asynchronously. One
`ByteRangeLocks` belongs to one `FileState` (Samba's brlock record of a file).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smbsrv.errors import SmbError
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.protocol.objects import Open


@dataclass(slots=True)
class ByteRangeLock:
    owner: Open
    offset: int
    length: int
    exclusive: bool

    def overlaps(self, offset: int, length: int) -> bool:
        """Windows' rule, which smbtorture checks: ranges overlap as usual; a zero-length range at X
        meets a range [S, S+L) only when X lies strictly inside it; two zero-length ranges never meet."""
        if self.length == 0:
            return length != 0 and offset < self.offset < offset + length
        if length == 0:
            return self.offset < offset < self.offset + self.length
        return offset < self.offset + self.length and self.offset < offset + length


class ByteRangeLocks:
    """The locks held on one file and the event its blocked LOCK requests wait on."""

    __slots__ = ("_changed", "held")

    def __init__(self) -> None:
        self.held: list[ByteRangeLock] = []
        self._changed: asyncio.Event | None = None

    def _conflict(self, open_: Open, offset: int, length: int, exclusive: bool) -> bool:
        for held in self.held:
            if not held.overlaps(offset, length):
                continue
            if held.owner is open_:
                # The same handle may stack a shared lock on its own exclusive one, but not an exclusive
                # lock on any lock of its own ([MS-FSA] 2.1.5.7).
                if exclusive:
                    return True
            elif held.exclusive or exclusive:
                return True
        return False

    def try_lock(self, open_: Open, offset: int, length: int, exclusive: bool) -> bool:
        if self._conflict(open_, offset, length, exclusive):
            return False
        self.held.append(ByteRangeLock(open_, offset, length, exclusive))
        return True

    def unlock(self, open_: Open, offset: int, length: int) -> None:
        for index, lock in enumerate(self.held):
            if lock.owner is open_ and lock.offset == offset and lock.length == length:
                del self.held[index]
                self.wake()
                return
        raise SmbError(NtStatus.STATUS_RANGE_NOT_LOCKED)

    def release_open(self, open_: Open) -> None:
        """Drop the handle's locks and wake every waiter: others may now get their range, and a blocking
        request of this very handle ends with STATUS_RANGE_NOT_LOCKED."""
        if self.held:
            self.held = [lock for lock in self.held if lock.owner is not open_]
        self.wake()

    def check_io(self, open_: Open, offset: int, length: int, *, write: bool) -> None:
        """READ is blocked by another handle's exclusive lock; WRITE by any lock of another handle and by
        the handle's own shared lock ([MS-FSA] 2.1.5.2, 2.1.5.3)."""
        for held in self.held:
            if not held.overlaps(offset, length):
                continue
            if held.owner is open_:
                if write and not held.exclusive:
                    raise SmbError(NtStatus.STATUS_FILE_LOCK_CONFLICT)
            elif held.exclusive or write:
                raise SmbError(NtStatus.STATUS_FILE_LOCK_CONFLICT)

    def owned_by(self, open_: Open) -> list[ByteRangeLock]:
        return [lock for lock in self.held if lock.owner is open_]

    async def changed(self) -> None:
        """Returns after the next unlock or release on this file."""
        if self._changed is None:
            self._changed = asyncio.Event()
        await self._changed.wait()

    def wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None
