"""LOCK ([MS-SMB2] 3.3.5.14; [MS-FSA] 2.1.5.7): Windows byte-range locks, kept by the server.

Locks live in the server (not in the kernel) because their semantics are Windows': mandatory for READ and
WRITE through other handles, exact-range unlock, and blocking requests that complete asynchronously.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.protocol.reply import GoAsync
from smbsrv.wire import lock as wire
from smbsrv.wire.constants import (
    SMB2_LOCKFLAG_EXCLUSIVE_LOCK,
    SMB2_LOCKFLAG_FAIL_IMMEDIATELY,
    SMB2_LOCKFLAG_SHARED_LOCK,
    SMB2_LOCKFLAG_UNLOCK,
)
from smbsrv.wire.status import NtStatus

_MAX_OFFSET = 0xFFFFFFFFFFFFFFFF


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


class LockManager:
    def __init__(self) -> None:
        self.by_file: dict[tuple[int, int], list[ByteRangeLock]] = defaultdict(list)
        self.changed = asyncio.Event()

    def _conflict(self, open_: Open, offset: int, length: int, exclusive: bool) -> bool:
        for held in self.by_file.get(open_.file_key, ()):
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
        self.by_file[open_.file_key].append(ByteRangeLock(open_, offset, length, exclusive))
        return True

    def unlock(self, open_: Open, offset: int, length: int) -> None:
        held = self.by_file.get(open_.file_key, [])
        for index, lock in enumerate(held):
            if lock.owner is open_ and lock.offset == offset and lock.length == length:
                del held[index]
                self._notify()
                return
        raise SmbError(NtStatus.STATUS_RANGE_NOT_LOCKED)

    def release_open(self, open_: Open) -> None:
        """Drop the handle's locks and wake every waiter: others may now get their range, and a blocking
        request of this very handle ends with STATUS_RANGE_NOT_LOCKED."""
        held = self.by_file.get(open_.file_key)
        if held:
            remaining = [lock for lock in held if lock.owner is not open_]
            if remaining:
                self.by_file[open_.file_key] = remaining
            else:
                del self.by_file[open_.file_key]
        self._notify()

    def check_io(self, open_: Open, offset: int, length: int, *, write: bool) -> None:
        """READ is blocked by another handle's exclusive lock; WRITE by any lock of another handle and by
        the handle's own shared lock ([MS-FSA] 2.1.5.2, 2.1.5.3)."""
        for held in self.by_file.get(open_.file_key, ()):
            if not held.overlaps(offset, length):
                continue
            if held.owner is open_:
                if write and not held.exclusive:
                    raise SmbError(NtStatus.STATUS_FILE_LOCK_CONFLICT)
            elif held.exclusive or write:
                raise SmbError(NtStatus.STATUS_FILE_LOCK_CONFLICT)

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


def _manager(ctx: RequestContext) -> LockManager:
    server = ctx.connection.server
    if server.locks is None:
        server.locks = LockManager()
    return server.locks  # type: ignore[no-any-return]


def handle(ctx: RequestContext, request: wire.LockRequest) -> bytes:
    open_ = ctx.open
    assert open_ is not None
    if open_.pipe is not None or open_.is_directory:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    manager = _manager(ctx)
    if request.locks[0].flags & SMB2_LOCKFLAG_UNLOCK:
        # In order, stopping at the first element that is not a plain unlock (STATUS_INVALID_PARAMETER) or
        # whose range is not locked; earlier unlocks stay done (Windows and Samba, smbtorture
        # smb2.lock.multiple-unlock).
        for element in request.locks:
            _check_element(element, True)
            _check_range(element)
            manager.unlock(open_, element.offset, element.length)
        return wire.LOCK_RESPONSE
    for element in request.locks:
        _check_element(element, False)
        _check_range(element)
    # [MS-SMB2] 3.3.5.14.2: more than one lock may only be asked with SMB2_LOCKFLAG_FAIL_IMMEDIATELY on
    # every element (Windows; Samba; smbtorture smb2.lock.valid-request).
    if len(request.locks) > 1 and any(not element.flags & SMB2_LOCKFLAG_FAIL_IMMEDIATELY
                                      for element in request.locks):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    blocking = not request.locks[0].flags & SMB2_LOCKFLAG_FAIL_IMMEDIATELY
    taken: list[wire.LockElement] = []
    for element in request.locks:
        exclusive = bool(element.flags & SMB2_LOCKFLAG_EXCLUSIVE_LOCK)
        if manager.try_lock(open_, element.offset, element.length, exclusive):
            taken.append(element)
            continue
        for done in taken:  # all or nothing
            manager.unlock(open_, done.offset, done.length)
        if not blocking:
            raise SmbError(NtStatus.STATUS_LOCK_NOT_GRANTED)

        async def wait_for_lock(element: wire.LockElement = element, exclusive: bool = exclusive) -> bytes:
            # Try before each wait: the conflicting lock may have gone between the interim response and
            # this task's first turn, and its wake-up would then be lost.
            while True:
                if open_.closed:
                    raise SmbError(NtStatus.STATUS_RANGE_NOT_LOCKED)
                if manager.try_lock(open_, element.offset, element.length, exclusive):
                    return wire.LOCK_RESPONSE
                await manager.changed.wait()

        raise GoAsync(wait_for_lock)
    return wire.LOCK_RESPONSE


def _check_range(element: wire.LockElement) -> None:
    if element.length and element.offset + element.length - 1 > _MAX_OFFSET:
        raise SmbError(NtStatus.STATUS_INVALID_LOCK_RANGE)


def _check_element(element: wire.LockElement, unlocking: bool) -> None:
    """[MS-SMB2] 3.3.5.14: every element of one request either unlocks or locks; flag combinations are
    limited to the valid ones."""
    flags = element.flags
    if unlocking:
        if flags != SMB2_LOCKFLAG_UNLOCK:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        return
    kind = flags & ~SMB2_LOCKFLAG_FAIL_IMMEDIATELY
    if kind not in (SMB2_LOCKFLAG_SHARED_LOCK, SMB2_LOCKFLAG_EXCLUSIVE_LOCK):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
