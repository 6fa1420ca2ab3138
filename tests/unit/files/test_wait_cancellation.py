"""A wait for a break or an unlock that is woken and cancelled in the same event-loop turn ends cancelled.

Python 3.11's asyncio.wait_for drops such a cancellation (cpython gh-86296): the CREATE or LOCK whose connection
was lost, or that a CANCEL ended, then ran on as if nothing happened. A CREATE made an open in a session already
gone, which nothing ever closed (smbtorture smb2.replay.dhv2-pending3o-vs-oplock hung in 1 run of 6-12)."""

from __future__ import annotations

import asyncio

import pytest

from smbsrv.files.locks import ByteRangeLocks
from smbsrv.files.oplocks import OplockWaiters


def _woken_and_cancelled_together(start_wait, wake) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(start_wait())
        await asyncio.sleep(0)  # the task now waits
        wake()  # e.g. the holder's CLOSE ends the break ...
        task.cancel()  # ... in the turn the requester's connection is lost
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_a_break_wait_woken_and_cancelled_together_is_cancelled() -> None:
    waiters = OplockWaiters()
    _woken_and_cancelled_together(lambda: waiters.wait(30.0), waiters.wake)


def test_a_lock_wait_woken_and_cancelled_together_is_cancelled() -> None:
    locks = ByteRangeLocks()
    locks._posix_blocked = True  # the wait with a retry timeout (another process's lock refused the last try)
    _woken_and_cancelled_together(locks.changed, locks.wake)
