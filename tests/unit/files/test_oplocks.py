"""files/oplocks.py: grant rules, breaks, acknowledgments and timeouts, driven with a fake clock."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from smbsrv.files import FileTable, oplocks
from smbsrv.files.oplocks import H, R, W
from smbsrv.fs.handle import FileHandle
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open, Session
from smbsrv.wire.constants import (
    SMB2_OPLOCK_LEVEL_BATCH,
    SMB2_OPLOCK_LEVEL_EXCLUSIVE,
    SMB2_OPLOCK_LEVEL_II,
    SMB2_OPLOCK_LEVEL_NONE,
)
from smbsrv.wire.status import NtStatus

TREE = SimpleNamespace(share_root=object())
KEY = (1, 42)
READ_WRITE = 0x12019F
STAT = 0x00100080  # SYNCHRONIZE | FILE_READ_ATTRIBUTES
TIMEOUT = 35.0
GUID_A, GUID_B = b"A" * 16, b"B" * 16


def add_open(table: FileTable, access: int = READ_WRITE) -> Open:
    open_ = Open(file_id=(1, 1), tree=TREE, session=Session(session_id=1), granted_access=access,  # type: ignore[arg-type]
                 share_access=7, create_options=0, path_components=("f",), handle=FileHandle(key=KEY))
    table.add(open_)
    return open_


def with_oplock(table: FileTable, level: int, access: int = READ_WRITE) -> Open:
    open_ = add_open(table, access)
    oplocks.grant(table, open_.file, open_, requested_level=level, lease_key=None, lease_state=0, version=0,
                  parent_key=None, epoch=0, client_guid=b"")
    return open_


def with_lease(table: FileTable, key: bytes, state: int, guid: bytes = GUID_A, version: int = 2) -> Open:
    open_ = add_open(table)
    oplocks.grant(table, open_.file, open_, requested_level=0xFF, lease_key=key, lease_state=state,
                  version=version, parent_key=None, epoch=0, client_guid=guid)
    return open_


def conflicting_open(table: FileTable, *, access: int = READ_WRITE, violation: bool = False, overwrite: bool = False,
                     now: float = 0.0, first: bool = True) -> tuple[list[oplocks.Break], bool]:
    state = table.get(KEY)
    assert state is not None
    return oplocks.breaks_for_open(state, access=access, sharing_violation=violation, overwrite=overwrite,
                                   lease=None, first_attempt=first, now=now, timeout_s=TIMEOUT)


def test_batch_is_broken_to_level_ii_and_the_open_waits_for_the_ack() -> None:
    table = FileTable()
    holder = with_oplock(table, SMB2_OPLOCK_LEVEL_BATCH)
    assert holder.oplock_level == SMB2_OPLOCK_LEVEL_BATCH
    breaks, delay = conflicting_open(table)
    assert delay and [(b.open_, b.oplock_level) for b in breaks] == [(holder, SMB2_OPLOCK_LEVEL_II)]
    # Asked again while the break is out: no second notification, still waiting.
    breaks, delay = conflicting_open(table, first=False)
    assert breaks == [] and delay
    assert oplocks.ack_oplock(holder.file, holder, SMB2_OPLOCK_LEVEL_II) == SMB2_OPLOCK_LEVEL_II
    breaks, delay = conflicting_open(table, first=False)
    assert breaks == [] and not delay
    second = with_oplock(table, SMB2_OPLOCK_LEVEL_BATCH)
    assert second.oplock_level == SMB2_OPLOCK_LEVEL_II  # no W next to another open


def test_ack_errors() -> None:
    table = FileTable()
    holder = with_oplock(table, SMB2_OPLOCK_LEVEL_EXCLUSIVE)
    with pytest.raises(SmbError) as caught:
        oplocks.ack_oplock(holder.file, holder, SMB2_OPLOCK_LEVEL_II)
    assert caught.value.status == NtStatus.STATUS_INVALID_OPLOCK_PROTOCOL  # no break in progress
    conflicting_open(table)
    with pytest.raises(SmbError) as caught:
        oplocks.ack_oplock(holder.file, holder, SMB2_OPLOCK_LEVEL_BATCH)
    assert caught.value.status == NtStatus.STATUS_INVALID_PARAMETER
    assert oplocks.ack_oplock(holder.file, holder, SMB2_OPLOCK_LEVEL_NONE) == SMB2_OPLOCK_LEVEL_NONE


def test_level_ii_is_broken_to_none_by_a_write_without_an_ack() -> None:
    table = FileTable()
    first = with_oplock(table, SMB2_OPLOCK_LEVEL_II)
    second = with_oplock(table, SMB2_OPLOCK_LEVEL_II)
    assert first.oplock_level == second.oplock_level == SMB2_OPLOCK_LEVEL_II
    breaks = oplocks.breaks_for_write(first.file, first, 0.0, TIMEOUT)
    # The writer's own level II goes too (smbtorture smb2.oplock.batch1).
    assert {b.open_ for b in breaks} == {first, second}
    assert all(b.oplock_level == SMB2_OPLOCK_LEVEL_NONE for b in breaks)
    assert first.oplock_level == second.oplock_level == SMB2_OPLOCK_LEVEL_NONE
    with pytest.raises(SmbError):
        oplocks.ack_oplock(first.file, first, SMB2_OPLOCK_LEVEL_NONE)  # nothing to acknowledge


def test_stat_open_breaks_nothing() -> None:
    table = FileTable()
    with_oplock(table, SMB2_OPLOCK_LEVEL_BATCH)
    assert conflicting_open(table, access=STAT) == ([], False)


def test_break_times_out_to_none() -> None:
    table = FileTable()
    holder = with_oplock(table, SMB2_OPLOCK_LEVEL_BATCH)
    conflicting_open(table, now=100.0)
    _, pending = oplocks.expire(table, holder.file, 100.0 + TIMEOUT - 1, TIMEOUT)
    assert pending == 100.0 + TIMEOUT and holder.oplock_breaking_to >= 0
    _, pending = oplocks.expire(table, holder.file, 100.0 + TIMEOUT, TIMEOUT)
    assert pending is None and holder.oplock_level == SMB2_OPLOCK_LEVEL_NONE and holder.oplock_breaking_to < 0


def test_lease_rwh_breaks_to_rh_and_the_ack_completes_it() -> None:
    table = FileTable()
    holder = with_lease(table, b"1" * 16, R | W | H)
    lease = holder.lease
    assert lease.state == R | W | H and lease.epoch == 1
    breaks, delay = conflicting_open(table)
    assert delay and len(breaks) == 1
    brk = breaks[0]
    assert (brk.current, brk.new, brk.ack_required, brk.epoch) == (R | W | H, R | H, True, 2)
    with pytest.raises(SmbError) as caught:
        oplocks.ack_lease(table, GUID_A, b"1" * 16, R | W | H, 0.0, TIMEOUT)
    assert caught.value.status == NtStatus.STATUS_REQUEST_NOT_ACCEPTED
    with pytest.raises(SmbError) as caught:
        oplocks.ack_lease(table, GUID_B, b"1" * 16, R | H, 0.0, TIMEOUT)
    assert caught.value.status == NtStatus.STATUS_OBJECT_NAME_NOT_FOUND  # leases are per client
    assert oplocks.ack_lease(table, GUID_A, b"1" * 16, R | H, 0.0, TIMEOUT) == []
    assert lease.state == R | H and not lease.breaking
    with pytest.raises(SmbError) as caught:
        oplocks.ack_lease(table, GUID_A, b"1" * 16, R, 0.0, TIMEOUT)
    assert caught.value.status == NtStatus.STATUS_UNSUCCESSFUL  # not breaking


def test_overwrite_breaks_a_read_handle_lease_to_none() -> None:
    table = FileTable()
    holder = with_lease(table, b"1" * 16, R | H)
    breaks, delay = conflicting_open(table, overwrite=True)
    assert [(b.current, b.new, b.ack_required) for b in breaks] == [(R | H, 0, True)]
    assert not delay  # H is given up without holding the overwrite back, as Samba
    assert holder.lease.breaking


def test_one_lease_key_is_shared_and_upgraded() -> None:
    table = FileTable()
    first = with_lease(table, b"1" * 16, R)
    second = with_lease(table, b"1" * 16, R | W | H)
    assert first.lease is second.lease and first.lease.state == R | W | H and first.lease.epoch == 2
    with pytest.raises(SmbError) as caught:
        oplocks.check_lease_key(table, GUID_A, b"1" * 16, (1, 43))
    assert caught.value.status == NtStatus.STATUS_INVALID_PARAMETER  # the key belongs to another file
    table.close(first)
    assert (GUID_A, b"1" * 16) in table.leases
    table.close(second)
    assert table.leases == {}


def test_second_lease_gets_no_write_caching() -> None:
    table = FileTable()
    with_lease(table, b"1" * 16, R | H)
    other = with_lease(table, b"2" * 16, R | W | H, guid=GUID_B)
    assert other.lease.state == R | H


def test_lease_break_timeout_downgrades_to_none() -> None:
    table = FileTable()
    holder = with_lease(table, b"1" * 16, R | W | H)
    conflicting_open(table, violation=True, now=5.0)
    assert holder.lease.breaking and holder.lease.breaking_to_required == R | W  # only H blocks the open
    oplocks.expire(table, holder.file, 5.0 + TIMEOUT, TIMEOUT)
    assert holder.lease.state == 0 and not holder.lease.breaking
