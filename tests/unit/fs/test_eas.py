"""fs/eas.py: a file's EA list in one xattr ([MS-FSA] 2.1.5.15.5), its 64 KiB bound and linear updates."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from smbsrv.fs import eas, xattr
from smbsrv.fscc.ea import EaEntry
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    path = tmp_path / "f"
    path.write_bytes(b"")
    descriptor = os.open(path, os.O_RDONLY)
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def _names(fd: int) -> list[bytes]:
    return [entry.name for entry in eas.read(fd, os.fstat(fd))]


def test_set_replace_remove_keep_order_and_first_case(fd: int) -> None:
    eas.apply(fd, os.fstat(fd), [EaEntry(b"One", b"1"), EaEntry(b"Two", b"2"), EaEntry(b"Three", b"3")])
    # Setting an EA again removes it and adds it at the end ([MS-FSA] 2.1.5.15.5); its first spelling stays.
    eas.apply(fd, os.fstat(fd), [EaEntry(b"ONE", b"uno"), EaEntry(b"two", b"")])
    stored = eas.read(fd, os.fstat(fd))
    assert stored == [EaEntry(b"Three", b"3"), EaEntry(b"One", b"uno")]
    eas.apply(fd, os.fstat(fd), [EaEntry(b"three", b""), EaEntry(b"one", b"")])
    assert xattr.get(fd, eas.XATTR_NAME) is None


def test_a_list_past_64_kib_is_ea_too_large_and_nothing_changes(fd: int) -> None:
    eas.apply(fd, os.fstat(fd), [EaEntry(b"KEEP", b"k")])
    before = xattr.get(fd, eas.XATTR_NAME)
    # 255-byte values: 8 + 7 + 1 + 255 -> 272 bytes each; 241 of them pass 65531.
    big = [EaEntry(b"BIG%04d" % index, b"x" * 255) for index in range(241)]
    assert sum(eas.entry_size(entry) for entry in big) > eas.MAX_LIST_SIZE
    with pytest.raises(SmbError) as excinfo:
        eas.apply(fd, os.fstat(fd), big)
    assert excinfo.value.status == NtStatus.STATUS_EA_TOO_LARGE
    assert xattr.get(fd, eas.XATTR_NAME) == before


def test_removing_absent_names_changes_nothing(fd: int) -> None:
    """An empty value removes an EA; removing one that is not there is no error ([MS-FSA] 2.1.5.15.5)."""
    eas.apply(fd, os.fstat(fd), [EaEntry(b"A", b"a" * 100)])
    updates = [EaEntry(b"A", b"")] + [EaEntry(b"N%04d" % index, b"") for index in range(3000)]
    eas.apply(fd, os.fstat(fd), updates)  # only removals: nothing left
    assert _names(fd) == []


def test_many_updates_cost_linear_time(fd: int) -> None:
    """5,000 updates of 5,000 names that are set and removed again: the old list-rebuild per update took
    seconds (25 million name comparisons); one dict keeps it to milliseconds."""
    updates = [EaEntry(b"E%05d" % index, b"v") for index in range(2500)]
    updates += [EaEntry(b"e%05d" % index, b"") for index in range(2500)]
    started = time.perf_counter()
    eas.apply(fd, os.fstat(fd), updates)
    assert time.perf_counter() - started < 0.5
    assert _names(fd) == []


def test_cached_size_follows_the_servers_own_changes_within_one_ctime_tick(fd: int) -> None:
    before = os.fstat(fd)
    assert eas.cached_size(fd, before) == 0
    eas.apply(fd, before, [EaEntry(b"One", b"1")])
    # The stat of before the change stands for a change within one coarse ctime tick: apply() dropped the
    # entry, so the size is read again rather than answered from the cache.
    assert eas.cached_size(fd, before) == eas.size(eas.read(fd, os.fstat(fd))) == 16
    changed = os.fstat(fd)
    assert eas.cached_size(fd, changed) == 16
    eas.apply(fd, changed, [EaEntry(b"one", b"")])
    assert eas.cached_size(fd, changed) == 0
