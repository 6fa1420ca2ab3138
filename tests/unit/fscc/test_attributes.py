"""FILETIME conversion ([MS-DTYP] 2.3.3) and the constants other modules key off."""

from smbsrv.fscc import attributes as a


def test_filetime_epoch_and_known_dates() -> None:
    assert a.unix_ns_to_filetime(0) == 116444736000000000
    # 2000-01-01T00:00:00Z = 946684800 s since 1970.
    assert a.unix_ns_to_filetime(946684800 * 10**9) == 125911584000000000
    assert a.filetime_to_unix_ns(125911584000000000) == 946684800 * 10**9
    # Sub-100 ns precision is dropped, not rounded up.
    assert a.unix_ns_to_filetime(199) == 116444736000000001


def test_filetime_round_trip_and_clamping() -> None:
    for ns in (1, 123456789, 1_700_000_000_123_456_700, -1_000_000_000_000_000_000):
        ft = a.unix_ns_to_filetime(ns)
        assert a.filetime_to_unix_ns(ft) == ns - ns % 100
    # Before 1601 there is no FILETIME; 0 is what "unset" looks like on the wire.
    assert a.unix_ns_to_filetime(-(117 * 10**17) * 100) == 0
    assert a.unix_ns_to_filetime(10**30) == 0x7FFFFFFFFFFFFFFF
    assert a.filetime_to_unix_ns(0) == -11644473600 * 10**9


def test_constants() -> None:
    assert a.FILE_ATTRIBUTE_REPARSE_POINT == 0x400 and a.FILE_ATTRIBUTE_DIRECTORY == 0x10
    assert a.IO_REPARSE_TAG_SYMLINK == 0xA000000C and a.IO_REPARSE_TAG_NFS == 0x80000014
    assert a.IO_REPARSE_TAG_LX_BLK == 0x80000026 and a.IO_REPARSE_TAG_AF_UNIX == 0x80000023
    assert a.FILE_SUPPORTS_REPARSE_POINTS == 0x80 and a.FILE_SUPPORTS_POSIX_UNLINK_RENAME == 0x400
    assert a.is_reparse_tag_microsoft(a.IO_REPARSE_TAG_SYMLINK)
    assert not a.is_reparse_tag_microsoft(0x1234)
