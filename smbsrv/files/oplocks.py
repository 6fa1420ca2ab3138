"""Oplocks and leases of one server ([MS-SMB2] 3.3.5.9.8, 3.3.5.9.11, 3.3.4.6, 3.3.4.7, 3.3.5.22; [MS-FSA]
2.1.5.17), decided against the opens a FileState holds. Nothing here does I/O: every operation takes `now` and
returns the breaks the caller must send; waiters are woken through the file's `OplockWaiters`.

An oplock is a lease without its own key: BATCH is RWH, EXCLUSIVE RW, LEVEL_II R. The grant rules follow
Samba 4.17 (source3/smbd/open.c delay_for_oplock, oplock.c), which passes the smbtorture oplock and lease
suites as Windows does:

* a new open breaks what it conflicts with: W (another writer may appear), H too when the sharing check
  failed (the holder may close its cached handle and let the open through), everything when it overwrites;
  it waits for the acknowledgment when the holder must give up W (or H on a sharing violation);
* only one open may cache writes (no W while another open, of another lease, exists); no H for a lease next
  to an oplock and no oplock next to an H lease; no R on a file with byte-range locks;
* breaks to R-less states of R-only holders (LEVEL_II, R leases) need no acknowledgment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smbsrv.errors import SmbError
from smbsrv.wire.constants import (
    SMB2_LEASE_FLAG_BREAK_IN_PROGRESS,
    SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET,
    SMB2_LEASE_HANDLE_CACHING,
    SMB2_LEASE_READ_CACHING,
    SMB2_LEASE_WRITE_CACHING,
    SMB2_OPLOCK_LEVEL_BATCH,
    SMB2_OPLOCK_LEVEL_EXCLUSIVE,
    SMB2_OPLOCK_LEVEL_II,
    SMB2_OPLOCK_LEVEL_NONE,
)
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.files.table import FileKey, FileState, FileTable
    from smbsrv.protocol.objects import Open

R, H, W = SMB2_LEASE_READ_CACHING, SMB2_LEASE_HANDLE_CACHING, SMB2_LEASE_WRITE_CACHING

# Opens that take part in neither breaks nor sharing (Samba's is_oplock_stat_open / is_lease_stat_open).
_SYNCHRONIZE, _READ_ATTRIBUTES, _WRITE_ATTRIBUTES, _READ_CONTROL = 0x00100000, 0x80, 0x100, 0x00020000
_OPLOCK_STAT_BITS = _SYNCHRONIZE | _READ_ATTRIBUTES | _WRITE_ATTRIBUTES
_LEASE_STAT_BITS = _OPLOCK_STAT_BITS | _READ_CONTROL


def _is_stat_open(access: int, bits: int) -> bool:
    return bool(access & bits) and not access & ~bits


def is_oplock_stat_open(access: int) -> bool:
    return _is_stat_open(access, _OPLOCK_STAT_BITS)


def oplock_caching(level: int) -> int:
    return {SMB2_OPLOCK_LEVEL_BATCH: R | W | H, SMB2_OPLOCK_LEVEL_EXCLUSIVE: R | W,
            SMB2_OPLOCK_LEVEL_II: R}.get(level, 0)


def oplock_level_for(caching: int) -> int:
    if caching == R | W | H:
        return SMB2_OPLOCK_LEVEL_BATCH
    if caching == R | W:
        return SMB2_OPLOCK_LEVEL_EXCLUSIVE
    if caching & R and not caching & W:
        return SMB2_OPLOCK_LEVEL_II
    return SMB2_OPLOCK_LEVEL_NONE


@dataclass(eq=False)
class Lease:
    """[MS-SMB2] 3.3.1.12: one per (ClientGuid, LeaseKey), shared by every open of the client that names it."""

    client_guid: bytes
    key: bytes
    file_key: FileKey  # a named stream's lease is on the stream (files/table.py)
    version: int
    parent_key: bytes | None
    state: int
    epoch: int
    opens: list[Open] = field(default_factory=list)
    breaking: bool = False
    breaking_to_requested: int = 0
    breaking_to_required: int = 0
    deadline: float = 0.0

    @property
    def flags(self) -> int:
        flags = SMB2_LEASE_FLAG_BREAK_IN_PROGRESS if self.breaking else 0
        if self.parent_key is not None:
            flags |= SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET
        return flags


@dataclass(slots=True)
class Break:
    """One break notification to send: an oplock break to `open_`'s client, or a lease break to the lease's."""

    open_: Open
    lease: Lease | None
    oplock_level: int = SMB2_OPLOCK_LEVEL_NONE
    current: int = 0
    new: int = 0
    epoch: int = 0
    ack_required: bool = False


class OplockWaiters:
    """The event CREATEs wait on while a break they caused is outstanding."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    async def wait(self, timeout_s: float) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation that comes in the same
            # turn as the wake-up (cpython gh-86296). A CREATE waiting for a break whose connection was lost just
            # as the break ended then ran on, into an open of a session already gone, which nothing ever closed:
            # its oplock made the next opener wait for the break timeout (smbtorture smb2.replay.dhv2-pending3o).
            async with asyncio.timeout(max(timeout_s, 0.0)):
                await self._event.wait()
        except TimeoutError:
            pass

    def wake(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None


def waiters(state: FileState) -> OplockWaiters:
    if state.oplocks is None:
        state.oplocks = OplockWaiters()
    return state.oplocks  # type: ignore[no-any-return]


def caching_of(open_: Open) -> int:
    return open_.lease.state if open_.lease is not None else oplock_caching(open_.oplock_level)


def _holders(state: FileState) -> list[Open]:
    """One open per lease (a lease is broken once however many opens share it), and every oplock holder."""
    seen: set[int] = set()
    holders = []
    for other in state.opens:
        if other.lease is not None:
            if id(other.lease) in seen:
                continue
            seen.add(id(other.lease))
        holders.append(other)
    return holders


# -- a new open ---------------------------------------------------------------------------------------------

def breaks_for_open(state: FileState, *, access: int, sharing_violation: bool, overwrite: bool,
                    lease: Lease | None, first_attempt: bool, now: float,
                    timeout_s: float) -> tuple[list[Break], bool]:
    """What an open of `state`'s file breaks, and whether it must wait (Samba's delay_for_oplock)."""
    breaks: list[Break] = []
    delay = False
    if _is_stat_open(access, _OPLOCK_STAT_BITS):
        return breaks, False
    delay_mask = H if sharing_violation else W
    for holder in _holders(state):
        if lease is not None and holder.lease is lease:
            continue  # our own lease
        if holder.lease is not None and _is_stat_open(access, _LEASE_STAT_BITS):
            continue
        caching = caching_of(holder)
        breaking = holder.lease.breaking if holder.lease is not None else holder.oplock_breaking_to >= 0
        break_to = caching & ~delay_mask
        if overwrite:
            break_to &= ~(H | R)
        if not caching & ~break_to:
            if breaking:
                delay = True
            continue
        if overwrite:
            break_to &= ~(R | W)
        if holder.lease is None:
            break_to &= ~(H | W)  # oplocks break to LEVEL_II or none
        sent = _break(holder, break_to, now, timeout_s)
        if sent is not None:
            breaks.append(sent)
        if caching & delay_mask or breaking and not first_attempt:
            delay = True
    return breaks, delay


def _break(holder: Open, break_to: int, now: float, timeout_s: float) -> Break | None:
    """Start breaking `holder`'s oplock or lease to `break_to` (Samba's process_oplock_break_message)."""
    lease = holder.lease
    if lease is None:
        if holder.oplock_breaking_to >= 0:
            return None  # a break is already on its way
        current = oplock_caching(holder.oplock_level)
        if not current or current == break_to:
            return None
        level = SMB2_OPLOCK_LEVEL_II if break_to & R else SMB2_OPLOCK_LEVEL_NONE
        if current == R:
            holder.oplock_level = SMB2_OPLOCK_LEVEL_NONE  # LEVEL_II to none: no acknowledgment
        else:
            holder.oplock_breaking_to = level
            holder.oplock_deadline = now + timeout_s
        return Break(holder, None, oplock_level=level)
    break_to &= lease.state
    current = lease.state
    if lease.breaking:
        lease.breaking_to_required &= break_to
        return None
    if current == break_to:
        return None
    lease.epoch += 1
    if current == R:
        lease.state = 0
        return Break(holder, lease, current=current, new=break_to, epoch=lease.epoch)
    lease.breaking = True
    lease.breaking_to_required = lease.breaking_to_requested = break_to
    lease.deadline = now + timeout_s
    return Break(holder, lease, current=current, new=break_to, epoch=lease.epoch, ack_required=True)


def grant(table: FileTable, state: FileState, open_: Open, *, requested_level: int,
          lease_key: bytes | None, lease_state: int, version: int, parent_key: bytes | None, epoch: int,
          client_guid: bytes, allowed: int = R | W | H, directory: bool = False) -> None:
    """Give the new (registered) open what it may cache (Samba's delay_for_oplock "grant" part and
    grant_fsp_lease). `lease_key` None: an oplock request of `requested_level`. `allowed`: what the share can
    keep coherent (R only when changes made outside SMB cannot be seen). `directory`: a directory lease
    ([MS-SMB2] 3.3.5.9.11: R or RH, never W); the other opens of a directory, which never hold oplocks, take
    nothing from it (cifs.ko and Windows open directories without a lease all the time)."""
    others = [other for other in state.opens if other is not open_]
    own = table.leases.get((client_guid, lease_key)) if lease_key is not None else None
    got_handle_lease = any(caching_of(other) & H for other in others)
    # any open without a lease, as Samba counts (a directory's opens hold no oplock)
    got_oplock = not directory and any(other.lease is None for other in others)
    have_other_lease = any(own is None or other.lease is not own for other in others)
    if lease_key is not None:
        if directory:
            lease_state &= R | H  # what is asked of a directory, also for the upgrade check below
        granted = lease_state
        if not granted & (R | W) or granted in (W, W | H):
            granted = 0
    else:
        granted = oplock_caching(requested_level)
    granted &= allowed
    if state.locks.held:
        granted &= ~R
    if have_other_lease:
        granted &= ~W
    if lease_key is None:
        if got_handle_lease:
            granted = 0
        open_.oplock_level = oplock_level_for(granted)
        return
    if got_oplock:
        granted &= ~H
    if own is None:
        own = Lease(client_guid, lease_key, state.key, version, parent_key, granted, epoch + 1 if version > 1
                    else 0)
        table.leases[(client_guid, lease_key)] = own
    elif (own.state & lease_state) == own.state and granted != own.state and granted == lease_state \
            and not own.breaking:
        own.state = granted  # a strict upgrade that nothing else prevents
        own.epoch += 1
    own.opens.append(open_)
    open_.lease = own


def check_lease_key(table: FileTable, client_guid: bytes, lease_key: bytes, file_key: FileKey | None) -> None:
    """[MS-SMB2] 3.3.5.9.8: a lease key the client uses for another file is STATUS_INVALID_PARAMETER."""
    lease = table.leases.get((client_guid, lease_key))
    if lease is not None and lease.file_key != file_key:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)


def release(table: FileTable, open_: Open) -> None:
    """A closing open leaves its lease; the lease goes with its last open."""
    if open_.lease is None:
        return
    lease: Lease = open_.lease
    open_.lease = None
    if open_ in lease.opens:
        lease.opens.remove(open_)
    if not lease.opens and table.leases.get((lease.client_guid, lease.key)) is lease:
        del table.leases[(lease.client_guid, lease.key)]


# -- data changes: level II holders lose their read cache ---------------------------------------------------------

def breaks_for_write(state: FileState, writer: Open, now: float, timeout_s: float) -> list[Break]:
    """WRITE, byte-range LOCK and a size change break every R holder to none without waiting, the writer's own
    LEVEL_II oplock included; only the writer's own lease keeps its state (Samba's
    contend_level2_oplocks_begin; smbtorture smb2.oplock.batch1, levelii500)."""
    if caching_of(writer) & W:
        return []
    breaks = []
    for holder in _holders(state):
        if writer.lease is not None and holder.lease is writer.lease:
            continue
        if not caching_of(holder) & R:
            continue
        sent = _break(holder, 0, now, timeout_s)
        if sent is not None:
            breaks.append(sent)
    return breaks


def breaks_for_rename(state: FileState, renamer: Open, now: float, timeout_s: float) -> tuple[list[Break], bool]:
    """A rename through a leased open breaks the other leases' H and waits for them (Samba's
    delay_rename_for_lease_break; smbtorture smb2.lease.rename_wait). Opens without a lease do not wait."""
    if renamer.lease is None:
        return [], False
    breaks: list[Break] = []
    delay = False
    for holder in _holders(state):
        lease = holder.lease
        if lease is None or lease is renamer.lease or not lease.state & H:
            continue
        delay = True
        sent = _break(holder, lease.state & ~H, now, timeout_s)
        if sent is not None:
            breaks.append(sent)
    return breaks, delay


def breaks_for_local_change(state: FileState, now: float, timeout_s: float) -> list[Break]:
    """The file's data changed outside this server: every holder loses all caching (W holders acknowledge)."""
    breaks = []
    for holder in _holders(state):
        if caching_of(holder):
            sent = _break(holder, 0, now, timeout_s)
            if sent is not None:
                breaks.append(sent)
    return breaks


def breaks_for_child_change(state: FileState, origin: tuple[bytes, bytes] | None, now: float,
                            timeout_s: float) -> list[Break]:
    """A name inside the directory of `state` was added, removed, renamed or had its attributes changed: every
    directory lease on it is broken to none without waiting ([MS-FSA] 2.1.4.12 with PARENT_OBJECT, the
    breaking operation goes on), except the lease whose (ClientGuid, LeaseKey) is `origin`, the
    ParentLeaseKey of the open the change was made through (2.1.4.12.2). The same client's other lease keys
    are broken like anyone's."""
    breaks = []
    for holder in _holders(state):
        lease = holder.lease
        if lease is None or not lease.state or origin == (lease.client_guid, lease.key):
            continue
        sent = _break(holder, 0, now, timeout_s)
        if sent is not None:
            breaks.append(sent)
    return breaks


# -- acknowledgments and timeouts ---------------------------------------------------------------------------------

def ack_oplock(state: FileState, open_: Open, level: int) -> int:
    """[MS-SMB2] 3.3.5.22.1: the level the open now holds (STATUS_INVALID_OPLOCK_PROTOCOL without a break
    in progress)."""
    if open_.lease is not None or open_.oplock_breaking_to < 0:
        raise SmbError(NtStatus.STATUS_INVALID_OPLOCK_PROTOCOL)
    if level not in (SMB2_OPLOCK_LEVEL_NONE, SMB2_OPLOCK_LEVEL_II):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if open_.oplock_breaking_to == SMB2_OPLOCK_LEVEL_NONE or level == SMB2_OPLOCK_LEVEL_NONE:
        open_.oplock_level = SMB2_OPLOCK_LEVEL_NONE
    else:
        open_.oplock_level = SMB2_OPLOCK_LEVEL_II
    open_.oplock_breaking_to = -1
    waiters(state).wake()
    return open_.oplock_level


def ack_lease(table: FileTable, client_guid: bytes, lease_key: bytes, lease_state: int,
              now: float, timeout_s: float) -> list[Break]:
    """[MS-SMB2] 3.3.5.22.2: the lease takes the acknowledged state; a state still above what the break
    requires is broken further in steps through R, as Windows does (smbtorture smb2.lease.breaking3)."""
    lease = table.leases.get((client_guid, lease_key))
    if lease is None:
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND)
    if not lease.breaking:
        raise SmbError(NtStatus.STATUS_UNSUCCESSFUL)
    if lease_state & lease.breaking_to_requested != lease_state:
        raise SmbError(NtStatus.STATUS_REQUEST_NOT_ACCEPTED)
    return _downgrade(table, lease, lease_state, now, timeout_s)


def _downgrade(table: FileTable, lease: Lease, lease_state: int, now: float, timeout_s: float) -> list[Break]:
    lease.state = lease_state
    breaks = []
    if lease_state & ~lease.breaking_to_required:
        requested = lease.breaking_to_required
        if lease_state & (W | H):
            requested |= R
            lease.breaking_to_requested = requested
            lease.deadline = now + timeout_s
            ack = True
        else:
            lease.state = 0
            lease.breaking = False
            lease.breaking_to_requested = lease.breaking_to_required = 0
            ack = False
        breaks.append(Break(lease.opens[0], lease, current=lease_state, new=requested, epoch=lease.epoch,
                            ack_required=ack))
    else:
        lease.breaking = False
        lease.breaking_to_requested = lease.breaking_to_required = 0
    state = table.get(lease.file_key)
    if state is not None:
        waiters(state).wake()
    return breaks


def expire(table: FileTable, state: FileState, now: float, timeout_s: float) -> tuple[list[Break], float | None]:
    """Breaks whose acknowledgment is overdue are taken as acknowledged to none (Samba's oplock and lease
    timeout handlers). Returns follow-up breaks and the next deadline still pending."""
    breaks: list[Break] = []
    pending: float | None = None
    for holder in _holders(state):
        lease = holder.lease
        if lease is None and holder.oplock_breaking_to >= 0:
            if holder.oplock_deadline <= now:
                holder.oplock_level = SMB2_OPLOCK_LEVEL_NONE
                holder.oplock_breaking_to = -1
                waiters(state).wake()
            else:
                pending = holder.oplock_deadline if pending is None else min(pending, holder.oplock_deadline)
        elif lease is not None and lease.breaking:
            if lease.deadline <= now:
                lease.breaking_to_required = 0
                breaks.extend(_downgrade(table, lease, 0, now, timeout_s))
            else:
                pending = lease.deadline if pending is None else min(pending, lease.deadline)
    return breaks, pending


# -- what `smbsrv status` shows -----------------------------------------------------------------------------------

def state_letters(caching: int) -> str:
    """A caching state as Samba's smbstatus writes it: "RWH", "RH", "R", "" for none."""
    return "".join(letter for bit, letter in ((R, "R"), (W, "W"), (H, "H")) if caching & bit)


_OPLOCK_NAMES = {SMB2_OPLOCK_LEVEL_BATCH: "batch", SMB2_OPLOCK_LEVEL_EXCLUSIVE: "exclusive",
                 SMB2_OPLOCK_LEVEL_II: "level2", SMB2_OPLOCK_LEVEL_NONE: "none"}


def caching_status(open_: Open, now: float) -> dict[str, object]:
    """What the open may cache: its oplock, or its lease (key, state, epoch, and the break in progress)."""
    lease = open_.lease
    if lease is None:
        breaking = open_.oplock_breaking_to >= 0
        return {"oplock": _OPLOCK_NAMES.get(open_.oplock_level, str(open_.oplock_level)), "lease": None,
                "breaking_to": _OPLOCK_NAMES.get(open_.oplock_breaking_to) if breaking else None,
                "break_deadline_s": round(max(open_.oplock_deadline - now, 0.0), 1) if breaking else None}
    return {"oplock": "lease", "lease": {
        "key": lease.key.hex(), "state": state_letters(lease.state), "epoch": lease.epoch,
        "version": lease.version, "directory": bool(open_.is_directory),
        "parent_key": lease.parent_key.hex() if lease.parent_key is not None else None,
        "breaking_to": state_letters(lease.breaking_to_requested) if lease.breaking else None,
        "break_deadline_s": round(max(lease.deadline - now, 0.0), 1) if lease.breaking else None}}


def breaks_in_flight(table: FileTable, opens: list[Open], now: float) -> list[dict[str, object]]:
    """Every break waiting for its acknowledgment: leases (once per lease however many opens share it) and
    oplocks of `opens`, with what they break from and to and the seconds left before the break times out."""
    found: list[dict[str, object]] = []
    for lease in table.leases.values():
        if lease.breaking:
            path = "/".join(lease.opens[0].path_components) if lease.opens else ""
            share = lease.opens[0].tree.share.name if lease.opens else ""
            found.append({"kind": "lease", "key": lease.key.hex(), "share": share, "path": path,
                          "from": state_letters(lease.state), "to": state_letters(lease.breaking_to_requested),
                          "deadline_s": round(max(lease.deadline - now, 0.0), 1)})
    for open_ in opens:
        if open_.lease is None and open_.oplock_breaking_to >= 0:
            found.append({"kind": "oplock", "file_id": open_.file_id[1], "share": open_.tree.share.name,
                          "path": "/".join(open_.path_components),
                          "from": _OPLOCK_NAMES.get(open_.oplock_level, ""),
                          "to": _OPLOCK_NAMES.get(open_.oplock_breaking_to, ""),
                          "deadline_s": round(max(open_.oplock_deadline - now, 0.0), 1)})
    return found
