"""fs/presented.py: an open file's FileInfo, and its reuse while the file is unchanged (open_info)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from smbsrv.config import ShareConfig
from smbsrv.fs import dos_attrs, presented
from smbsrv.fs.dos_attrs import DosInfo
from smbsrv.fs.fileinfo import FileInfo
from smbsrv.fscc.attributes import FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_HIDDEN, FILE_ATTRIBUTE_READONLY


@contextmanager
def _opened(tmp_path: Path, name: str) -> Iterator[tuple[int, int]]:
    """An O_PATH fd of `name` and of its directory, closed afterwards."""
    parent_fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = os.open(name, os.O_PATH, dir_fd=parent_fd)
        try:
            yield fd, parent_fd
        finally:
            os.close(fd)
    finally:
        os.close(parent_fd)


def _info(fd: int, parent_fd: int, name: str, st: os.stat_result, share: ShareConfig) -> FileInfo:
    return presented.open_info(fd, parent_fd, name, st, share, None, (name,))


def test_attributes_written_within_one_ctime_tick_are_shown(tmp_path: Path) -> None:
    # The stat taken before the write stands for one taken within the same coarse ctime tick after it: every
    # stat field is as it was, and only the DOS xattr changed (SET_INFO FileBasicInformation).
    (tmp_path / "f").write_bytes(b"data")
    share = ShareConfig(name="share", path=str(tmp_path))
    with _opened(tmp_path, "f") as (fd, parent_fd):
        st = os.fstat(fd)
        assert not _info(fd, parent_fd, "f", st, share).attributes & FILE_ATTRIBUTE_READONLY
        dos_attrs.write(fd, DosInfo(FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_READONLY, 0))
        assert _info(fd, parent_fd, "f", st, share).attributes & FILE_ATTRIBUTE_READONLY


def test_the_name_decides_hidden_for_every_link_of_one_inode(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    os.link(tmp_path / "f", tmp_path / ".f")
    share = ShareConfig(name="share", path=str(tmp_path), hide_dot_files=True)
    with _opened(tmp_path, "f") as (fd, parent_fd):
        st = os.fstat(fd)
        assert not _info(fd, parent_fd, "f", st, share).attributes & FILE_ATTRIBUTE_HIDDEN
        assert _info(fd, parent_fd, ".f", st, share).attributes & FILE_ATTRIBUTE_HIDDEN
        assert not _info(fd, parent_fd, "f", st, share).attributes & FILE_ATTRIBUTE_HIDDEN


def test_each_caller_gets_its_own_copy(tmp_path: Path) -> None:
    # Callers change their FileInfo (the LastWriteTime every open shows, EaSize): that must not reach the next.
    (tmp_path / "f").write_bytes(b"")
    share = ShareConfig(name="share", path=str(tmp_path))
    with _opened(tmp_path, "f") as (fd, parent_fd):
        st = os.fstat(fd)
        first = _info(fd, parent_fd, "f", st, share)
        expected = first.last_write_time
        first.last_write_time = 1
        first.ea_size = 99
        again = _info(fd, parent_fd, "f", st, share)
        assert (again.last_write_time, again.ea_size) == (expected, 0)
        again.last_write_time = 2
        assert _info(fd, parent_fd, "f", st, share).last_write_time == expected


def test_a_change_of_size_is_shown(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    share = ShareConfig(name="share", path=str(tmp_path))
    with _opened(tmp_path, "f") as (fd, parent_fd):
        assert _info(fd, parent_fd, "f", os.fstat(fd), share).end_of_file == 0
        (tmp_path / "f").write_bytes(b"12345")
        assert _info(fd, parent_fd, "f", os.fstat(fd), share).end_of_file == 5
