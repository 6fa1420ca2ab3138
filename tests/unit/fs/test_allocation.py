"""fs/backend.py data_allocation and set_allocation on the file system the tests run on: AllocationSize counts
data blocks only (not the block ext4 keeps extended attributes in), and an allocation reserves blocks beyond
the end of file exactly."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from smbsrv.fs import backend


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def test_a_block_of_extended_attributes_is_no_allocation(tmp_path: Path) -> None:
    fd = _open(tmp_path / "eas")
    try:
        try:
            os.setxattr(fd, "user.big", b"x" * 2000)
        except OSError as exc:
            pytest.skip(f"no user xattrs here: {exc}")
        st = os.fstat(fd)
        assert backend.data_allocation(fd, st) == 0
        # Without an fd (a listing entry) st_blocks stands, whatever it counts.
        assert backend.data_allocation(-1, st) == st.st_blocks * 512
        backend.set_allocation(fd, 4096)
        st = os.fstat(fd)
        assert st.st_size == 0 and backend.data_allocation(fd, st) == 4096
        backend.set_allocation(fd, 0)
        assert backend.data_allocation(fd, os.fstat(fd)) == 0
    finally:
        os.close(fd)


def test_reserved_blocks_follow_the_last_allocation(tmp_path: Path) -> None:
    fd = _open(tmp_path / "data")
    try:
        os.write(fd, b"a" * 5000)
        block = os.fstat(fd).st_blksize
        rounded = -(-5000 // block) * block
        backend.set_allocation(fd, 1 << 20)
        st = os.fstat(fd)
        assert (st.st_size, backend.data_allocation(fd, st)) == (5000, 1 << 20)
        backend.set_allocation(fd, 5000)  # at the end of file: the reservation goes again
        st = os.fstat(fd)
        assert (st.st_size, backend.data_allocation(fd, st)) == (5000, rounded)
        assert os.pread(fd, 8192, 0) == b"a" * 5000
    finally:
        os.close(fd)


def test_directories_and_special_files_use_st_blocks(tmp_path: Path) -> None:
    st = os.stat(tmp_path)
    assert stat.S_ISDIR(st.st_mode)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert backend.data_allocation(fd, st) == st.st_blocks * 512
    finally:
        os.close(fd)
