"""LOCK ([MS-SMB2] 3.3.5.14; [MS-FSA] 2.1.5.7): Windows byte-range locks, kept per file by files/locks.py."""

from __future__ import annotations

from smbsrv.commands import oplock_break
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
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


def handle(ctx: RequestContext, request: wire.LockRequest) -> bytes:
    open_ = ctx.open
    assert open_ is not None
    if open_.pipe is not None or open_.is_directory:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    manager = open_.file.locks
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
    # A byte-range lock breaks other opens' read caches to none, as a WRITE does (Samba's brlock).
    oplock_break.break_for_write(ctx.connection.server, open_)
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
                await manager.changed()

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
