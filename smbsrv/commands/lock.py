"""LOCK ([MS-SMB2] 3.3.5.14; [MS-FSA] 2.1.5.7): Windows byte-range locks, kept per file by files/locks.py.

Lock sequence verification ([MS-SMB2] 3.3.5.14, Open.LockSequenceArray 3.3.1.10): a client that lost its
connection before the answer to a LOCK or unlock came resends the request, on another channel or after a durable
reconnect, with the same LockSequence. Its low 4 bits are a sequence number, the rest an index 1-64 into the
open's array; when the entry holds that number the request was done already and succeeds without being applied
again (a re-applied unlock would fail with RANGE_NOT_LOCKED, a re-applied lock would conflict with itself).
"""

from __future__ import annotations

from collections.abc import Callable

from smbsrv.commands import oplock_break
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.reply import GoAsync
from smbsrv.wire import lock as wire
from smbsrv.wire.constants import (
    SMB2_GLOBAL_CAP_MULTI_CHANNEL,
    SMB2_LOCKFLAG_EXCLUSIVE_LOCK,
    SMB2_LOCKFLAG_FAIL_IMMEDIATELY,
    SMB2_LOCKFLAG_SHARED_LOCK,
    SMB2_LOCKFLAG_UNLOCK,
)
from smbsrv.wire.status import NtStatus

_MAX_OFFSET = 0xFFFFFFFFFFFFFFFF
_SEQUENCE_ENTRIES = 64  # Open.LockSequenceArray ([MS-SMB2] 3.3.1.10)
_NO_SEQUENCE = 0xFF  # an empty entry: no 4-bit LockSequenceNumber equals it


def handle(ctx: RequestContext, request: wire.LockRequest) -> bytes:
    open_ = ctx.open
    assert open_ is not None
    if open_.pipe is not None or open_.is_directory:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    entry = _sequence_entry(ctx, request.lock_sequence)
    number = request.lock_sequence & 0xF
    if entry is not None:
        if open_.lock_sequences is None:
            open_.lock_sequences = bytearray([_NO_SEQUENCE]) * _SEQUENCE_ENTRIES
        if open_.lock_sequences[entry] == number:
            return wire.LOCK_RESPONSE  # a replay of a request that was done
        # Not a replay: until this request succeeds, the entry must not let its number pass as one.
        open_.lock_sequences[entry] = _NO_SEQUENCE

    def succeeded() -> bytes:
        if entry is not None and open_.lock_sequences is not None:
            open_.lock_sequences[entry] = number
        return wire.LOCK_RESPONSE

    return _apply(ctx, request, succeeded)


def _sequence_entry(ctx: RequestContext, lock_sequence: int) -> int | None:
    """The Open.LockSequenceArray entry the request names, None when it is not verified.

    [MS-SMB2] 3.3.5.14 verifies lock sequences on resilient, durable and persistent opens, and on every open of a
    3.x connection that negotiated multichannel (where a request can be resent on another channel). Windows
    verifies them only on resilient and persistent handles (<314>); Samba 4.17 follows the specification, and so
    does this server. Only LockSequenceIndex 1 to 64 names an entry."""
    open_ = ctx.open
    record = ctx.connection.server.files.durable.of(open_)
    if not (ctx.connection.server_capabilities & SMB2_GLOBAL_CAP_MULTI_CHANNEL
            or record is not None and record.durable):
        return None
    index = lock_sequence >> 4
    return index - 1 if 1 <= index <= _SEQUENCE_ENTRIES else None


def _apply(ctx: RequestContext, request: wire.LockRequest, succeeded: Callable[[], bytes]) -> bytes:
    """Unlocks or locks what the request asks; `succeeded` gives the answer once all of it is done."""
    open_ = ctx.open
    assert open_ is not None
    manager = open_.file.locks
    if request.locks[0].flags & SMB2_LOCKFLAG_UNLOCK:
        # In order, stopping at the first element that is not a plain unlock (STATUS_INVALID_PARAMETER) or
        # whose range is not locked; earlier unlocks stay done (Windows and Samba, smbtorture
        # smb2.lock.multiple-unlock).
        for element in request.locks:
            _check_element(element, True)
            _check_range(element)
            manager.unlock(open_, element.offset, element.length)
        return succeeded()
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
                    return succeeded()
                await manager.changed()

        raise GoAsync(wait_for_lock)
    return succeeded()


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
