"""fs/streams.py: named streams as Samba's vfs_streams_xattr stores them, on a real file's xattrs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smbsrv.errors import SmbError
from smbsrv.fs import streams
from smbsrv.wire.status import NtStatus


@pytest.fixture
def fd(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "f"
    path.write_bytes(b"file data")
    descriptor = os.open(path, os.O_PATH)  # the resolver's kind of fd: xattrs through /proc
    yield descriptor
    os.close(descriptor)


def test_the_layout_is_samba_streams_xattr(fd: int, tmp_path: Path) -> None:
    """user.DosStream.<name>:$DATA, the data and one trailing 0 byte; what Samba wrote reads back."""
    streams.write(fd, "Zone.Identifier", b"[ZoneTransfer]")
    assert os.getxattr(tmp_path / "f", "user.DosStream.Zone.Identifier:$DATA") == b"[ZoneTransfer]\0"
    os.setxattr(tmp_path / "f", "user.DosStream.from samba:$DATA", b"abc\0")
    assert streams.read(fd, "from samba") == b"abc"
    assert sorted(streams.listing(fd)) == [("Zone.Identifier", 14), ("from samba", 3)]


def test_an_empty_stream_still_exists(fd: int) -> None:
    streams.write(fd, "empty", b"")
    assert streams.listing(fd) == [("empty", 0)]
    assert streams.find(fd, "EMPTY") == "empty"


def test_names_match_in_any_case_and_keep_their_own(fd: int) -> None:
    streams.write(fd, "MixedCase", b"1")
    assert streams.find(fd, "mixedcase") == "MixedCase"
    assert streams.find(fd, "other") is None


def test_other_xattrs_are_no_streams(fd: int, tmp_path: Path) -> None:
    os.setxattr(tmp_path / "f", "user.smbsrv.dos", b"x")
    os.setxattr(tmp_path / "f", "user.DosStream.typeless", b"x\0")  # no ":$DATA": not one of ours
    assert streams.names(fd) == []


def test_writes_at_offsets_fill_gaps_with_zeros(fd: int) -> None:
    streams.write(fd, "s", b"")
    assert streams.write_at(fd, "s", b"XY", 5) == 2
    assert streams.read(fd, "s") == b"\0\0\0\0\0XY"
    streams.write_at(fd, "s", b"ab", 1)
    assert streams.read(fd, "s") == b"\0ab\0\0XY"


def test_truncate_cuts_and_extends(fd: int) -> None:
    streams.write(fd, "s", b"abcdef")
    streams.truncate(fd, "s", 2)
    assert streams.read(fd, "s") == b"ab"
    streams.truncate(fd, "s", 4)
    assert streams.read(fd, "s") == b"ab\0\0"


def test_nothing_past_the_largest_value_is_written(fd: int) -> None:
    """offset + length past 65,535 bytes: STATUS_FILE_SYSTEM_LIMITATION before anything changes (Samba 4.17)."""
    streams.write(fd, "s", b"keep")
    for call in (lambda: streams.write_at(fd, "s", b"x", 65535), lambda: streams.truncate(fd, "s", 65536),
                 lambda: streams.write(fd, "s", bytes(65536))):
        with pytest.raises(SmbError) as raised:
            call()
        assert raised.value.status == NtStatus.STATUS_FILE_SYSTEM_LIMITATION
    assert streams.read(fd, "s") == b"keep"


def test_rename_moves_the_data_and_replaces_a_target(fd: int) -> None:
    streams.write(fd, "a", b"1")
    streams.write(fd, "b", b"22")
    streams.rename(fd, "a", "b")
    assert streams.listing(fd) == [("b", 1)]
    streams.rename(fd, "b", "B")  # a change of case only
    assert streams.listing(fd) == [("B", 1)]


def test_remove_and_remove_all(fd: int) -> None:
    streams.write(fd, "a", b"1")
    streams.write(fd, "b", b"2")
    assert streams.remove(fd, "a")
    assert not streams.remove(fd, "a")
    streams.remove_all(fd)
    assert streams.names(fd) == []


def test_names_longer_than_an_xattr_name_cannot_be_stored() -> None:
    assert streams.storable("x" * 234)
    assert not streams.storable("x" * 235)
    assert not streams.storable("\u00e9" * 118)  # 236 UTF-8 bytes
