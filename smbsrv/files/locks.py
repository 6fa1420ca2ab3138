"""Byte-range locks of one file ([MS-FSA] 2.1.5.7, 2.1.5.2, 2.1.5.3): Windows semantics, kept by the server.

Locks live in the server (not in the kernel) because their semantics are Windows': mandatory for READ and
WRITE through other handles, exact-range unlock, and blocking requests that complete asynchronously. One
`ByteRangeLocks` belongs to one `FileState` (Samba's brlock record of a file).

Each granted lock is also mirrored to the kernel as an open-file-description lock (F_OFD_SETLK) on the open's
fd, as Samba mirrors its locks to POSIX fcntl locks ("posix locking = yes", its default): a local process's
fcntl lock refuses an SMB lock on its range (LOCK_NOT_GRANTED, or a blocking LOCK that waits and retries),
and local processes see the SMB locks through F_GETLK/F_SETLK. An exclusive lock is a write lock, a shared
one a read lock; an fd the kernel cannot lock that way (a read-only fd and an exclusive lock: a read lock,
as Samba's posix_lock_type does; a write-only fd and a shared lock: none) and ranges POSIX cannot express
(zero length, offsets past 2^63-1, cut to 2^63-1 at the end) are kept in the server only.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import struct
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


# fcntl(2) commands and struct flock (x86_64 and aarch64 layout: two shorts, two off_t, a pid_t, padding).
_F_OFD_SETLK = 37
_FLOCK = struct.Struct("@hhqqi4x")
_MAX_POSIX_OFFSET = 0x7FFFFFFFFFFFFFFF
_POSIX_END = _MAX_POSIX_OFFSET + 1  # one past the largest off_t: "to the end", l_len 0
# A blocking LOCK held up by a lock of another process is retried this often: nothing wakes it when that
# process unlocks.
POSIX_RETRY_S = 0.5


def _posix_type(fd: int, exclusive: bool) -> int | None:
    """The fcntl lock type mirroring an SMB lock on `fd`, None when the fd cannot carry one."""
    if fd < 0:
        return None
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        return None
    if flags & getattr(os, "O_PATH", 0o10000000):
        return None
    mode = flags & os.O_ACCMODE
    if exclusive:
        return fcntl.F_WRLCK if mode in (os.O_WRONLY, os.O_RDWR) else fcntl.F_RDLCK
    return fcntl.F_RDLCK if mode in (os.O_RDONLY, os.O_RDWR) else None


def _posix_range(offset: int, length: int) -> tuple[int, int] | None:
    """The kernel's [start, end) for an SMB range; end is _POSIX_END for a range reaching the largest off_t
    (offset 0 and length 2^64-1 is how clients lock a whole file), which fcntl spells as l_len 0."""
    if length == 0 or offset > _MAX_POSIX_OFFSET:
        return None
    return offset, min(offset + length, _POSIX_END)


def _set_posix(fd: int, kind: int, start: int, end: int) -> bool:
    """One F_OFD_SETLK over [start, end); False when another process's lock is in the way."""
    length = 0 if end == _POSIX_END else end - start
    try:
        fcntl.fcntl(fd, _F_OFD_SETLK, _FLOCK.pack(kind, os.SEEK_SET, start, length, 0))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        # EBADF, EINVAL, ENOLCK: this fd or file system cannot carry the mirror; the server's lock stands.
    return True


def _fd_of(open_: Open) -> int:
    """The fd a lock of the open is mirrored on; none for a named stream's open, whose locks are the stream's
    alone (its fd is its file's)."""
    try:
        return open_.handle.fd if open_.stream is None else -1
    except (AttributeError, TypeError):
        return -1


class ByteRangeLocks:
    """The locks held on one file and the event its blocked LOCK requests wait on."""

    __slots__ = ("_changed", "_posix_blocked", "held")

    def __init__(self) -> None:
        self.held: list[ByteRangeLock] = []
        self._changed: asyncio.Event | None = None
        self._posix_blocked = False  # the last refusal came from another process's fcntl lock

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
            self._posix_blocked = False
            return False
        fd = _fd_of(open_)
        kind = _posix_type(fd, exclusive)
        span = _posix_range(offset, length)
        if kind is not None and span is not None:
            if not _set_posix(fd, kind, *span):
                self._posix_blocked = True
                return False
            if kind == fcntl.F_RDLCK:
                # A shared lock stacked on the handle's own exclusive one: the fd's lock over that part
                # stays a write lock (one fd holds one lock type per byte).
                self._restore_posix(open_, fd, *span)
        self.held.append(ByteRangeLock(open_, offset, length, exclusive))
        return True

    def unlock(self, open_: Open, offset: int, length: int) -> None:
        for index, lock in enumerate(self.held):
            if lock.owner is open_ and lock.offset == offset and lock.length == length:
                del self.held[index]
                fd = _fd_of(open_)
                span = _posix_range(offset, length)
                if span is not None and _posix_type(fd, lock.exclusive) is not None:
                    _set_posix(fd, fcntl.F_UNLCK, *span)
                    self._restore_posix(open_, fd, *span)  # what the handle's other locks still cover
                self.wake()
                return
        raise SmbError(NtStatus.STATUS_RANGE_NOT_LOCKED)

    def _restore_posix(self, open_: Open, fd: int, start: int, end: int) -> None:
        """Lock again, within [start, end), what the handle's remaining locks cover: shared ones first, then
        exclusive ones over them."""
        for exclusive in (False, True):
            for held in self.held:
                if held.owner is not open_ or held.exclusive is not exclusive:
                    continue
                span = _posix_range(held.offset, held.length)
                kind = _posix_type(fd, exclusive)
                if span is None or kind is None:
                    continue
                low, high = max(start, span[0]), min(end, span[1])
                if low < high:
                    _set_posix(fd, kind, low, high)

    def release_open(self, open_: Open) -> None:
        """Drop the handle's locks (and their kernel mirror) and wake every waiter: others may now get their
        range, and a blocking request of this very handle ends with STATUS_RANGE_NOT_LOCKED."""
        if self.held:
            if any(lock.owner is open_ for lock in self.held):
                fd = _fd_of(open_)
                if fd >= 0:
                    _set_posix(fd, fcntl.F_UNLCK, 0, _POSIX_END)  # the whole file
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
        """Returns after the next unlock or release on this file, or after POSIX_RETRY_S when the last
        refusal came from another process's lock (its unlock wakes nobody here)."""
        if self._changed is None:
            self._changed = asyncio.Event()
        if not self._posix_blocked:
            await self._changed.wait()
            return
        try:
            async with asyncio.timeout(POSIX_RETRY_S):  # not wait_for: see OplockWaiters.wait (files/oplocks.py)
                await self._changed.wait()
        except TimeoutError:
            pass

    def wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None
