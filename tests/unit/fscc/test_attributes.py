"""FILETIME conversion ([MS-DTYP] 2.3.3, fscc/times.py) and the constants other modules key off."""

import pytest

from smbsrv.fscc import attributes as a
from smbsrv.fscc import times as t


def test_filetime_epoch_and_known_dates() -> None:
    assert t.unix_ns_to_filetime(0) == 116444736000000000
    # 2000-01-01T00:00:00Z = 946684800 s since 1970.
    assert t.unix_ns_to_filetime(946684800 * 10**9) == 125911584000000000
    assert t.filetime_to_unix_ns(125911584000000000) == 946684800 * 10**9
    # Sub-100 ns precision is dropped, not rounded up.
    assert t.unix_ns_to_filetime(199) == 116444736000000001


def test_filetime_round_trip_and_clamping() -> None:
    for ns in (1, 123456789, 1_700_000_000_123_456_700, -1_000_000_000_000_000_000):
        ft = t.unix_ns_to_filetime(ns)
        assert t.filetime_to_unix_ns(ft) == ns - ns % 100
    # Before 1601 there is no FILETIME; 0 is what "unset" looks like on the wire.
    assert t.unix_ns_to_filetime(-(117 * 10**17) * 100) == 0
    assert t.unix_ns_to_filetime(10**30) == 0x7FFFFFFFFFFFFFFF
    assert t.filetime_to_unix_ns(0) == -11644473600 * 10**9


@pytest.mark.parametrize("unix_s", [10000000000, 15032385535, 0xFFFFFFFF, 1, 0, -1, -2, -(2**31)])
def test_filetime_of_far_future_and_boundary_unix_times(unix_s: int) -> None:
    """smbtorture smb2.timestamps.time_t_*: year 2286 and ext4's last second (2446-05-10, 0x37FFFFFFF) are
    past what nanoseconds in an int64 hold; the conversion stays exact both ways."""
    ft = unix_s * 10**7 + 116444736000000000
    assert t.filetime_to_unix_ns(ft) == unix_s * 10**9
    assert t.unix_ns_to_filetime(unix_s * 10**9) == ft


def test_filetime_now_is_current() -> None:
    import time

    before = time.time_ns() // 100 + 116444736000000000
    assert before <= t.filetime_now() <= before + 10**8


@pytest.mark.parametrize(("value", "expected"), [(0, None), (-1, None), (-2, None), (1, 1),
                                                 (0x7FFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF)])
def test_time_to_set(value: int, expected: int | None) -> None:
    """[MS-FSCC] 2.4.7: 0 (unchanged), -1 (stop automatic updates), -2 (resume them) set nothing."""
    assert t.time_to_set(value) == expected


def test_constants() -> None:
    assert a.FILE_ATTRIBUTE_REPARSE_POINT == 0x400 and a.FILE_ATTRIBUTE_DIRECTORY == 0x10
    assert a.IO_REPARSE_TAG_SYMLINK == 0xA000000C and a.IO_REPARSE_TAG_NFS == 0x80000014
    assert a.IO_REPARSE_TAG_LX_BLK == 0x80000026 and a.IO_REPARSE_TAG_AF_UNIX == 0x80000023
    assert a.FILE_SUPPORTS_REPARSE_POINTS == 0x80 and a.FILE_SUPPORTS_POSIX_UNLINK_RENAME == 0x400
    assert a.is_reparse_tag_microsoft(a.IO_REPARSE_TAG_SYMLINK)
    assert not a.is_reparse_tag_microsoft(0x1234)
