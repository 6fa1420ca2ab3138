"""fs/backend.py set_allocation when the file system has no room: STATUS_DISK_FULL, and the free space is as it
was. ext4 keeps what a failed fallocate(2) reserved before it ran out, so a FileAllocationInformation of a
terabyte (found by tests/fuzz: the request-path harness then failed with ENOSPC writing its own set-up) took
every free block of the file system and kept it while answering DISK_FULL.

On a small ext4 of its own (a loop mount): the failure needs a full file system, which must not be the one
everyone else on the machine uses. Needs root and mkfs.ext4; skipped otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from smbsrv.errors import SmbError
from smbsrv.fs import backend
from smbsrv.wire.status import NtStatus
from tests.loop_mount import loop_mounted

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mkfs.ext4") is None,
                                reason="needs root and mkfs.ext4 for a loop-mounted ext4")
MIB = 1024 * 1024
DATA = bytes(range(256)) * 256  # 64 KiB


@pytest.fixture
def small_ext4(tmp_path: Path) -> Iterator[Path]:
    with contextlib.ExitStack() as stack:
        try:
            mount_point = stack.enter_context(loop_mounted(tmp_path / "fs.img", tmp_path / "mnt", 32 * MIB,
                                                           ("mkfs.ext4", "-q", "-F")))
        except subprocess.CalledProcessError as exc:
            if exc.cmd[0] != "mount":
                raise
            pytest.skip("no loop mount here")
        yield mount_point


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.mark.parametrize("size", [len(DATA), 64 * MIB], ids=["dense", "sparse-past-the-fs-size"])
def test_allocation_past_the_free_space_gives_it_all_back(small_ext4: Path, size: int) -> None:
    """A dense file, and a sparse one whose holes the allocation would fill before running out: DISK_FULL,
    the file's bytes, size and data allocation as before, and the file system's free space too."""
    fd = os.open(small_ext4 / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, DATA, 0)
        os.ftruncate(fd, size)
        os.fsync(fd)
        free = _free_bytes(small_ext4)
        allocated = backend.data_allocation(fd, os.fstat(fd))
        with pytest.raises(SmbError) as caught:
            backend.set_allocation(fd, 1 << 40)
        assert caught.value.status == NtStatus.STATUS_DISK_FULL
        os.fsync(fd)
        st = os.fstat(fd)
        assert st.st_size == size
        assert os.pread(fd, len(DATA), 0) == DATA
        # Within a few blocks: ext4 may write zeros to a block or two instead of splitting an extent.
        assert backend.data_allocation(fd, st) <= allocated + 64 * 1024
        assert _free_bytes(small_ext4) >= free - 64 * 1024, \
            f"{(free - _free_bytes(small_ext4)) // 1024} KiB stayed reserved after DISK_FULL"
    finally:
        os.close(fd)


def test_allocation_within_the_free_space_still_reserves(small_ext4: Path) -> None:
    fd = os.open(small_ext4 / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, DATA, 0)
        backend.set_allocation(fd, 4 * MIB)
        st = os.fstat(fd)
        assert st.st_size == len(DATA)
        assert backend.data_allocation(fd, st) == 4 * MIB
    finally:
        os.close(fd)


def test_a_failed_allocation_keeps_data_written_into_reserved_blocks(small_ext4: Path) -> None:
    """Bytes written into blocks an earlier FileAllocationInformation reserved sit in an unwritten extent until
    writeback converts it: a rollback that punched every unwritten extent below EOF threw them away."""
    fd = os.open(small_ext4 / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        backend.set_allocation(fd, 4 * MIB)
        os.pwrite(fd, DATA, 0)  # no fsync: the extent is still unwritten
        with pytest.raises(SmbError) as caught:
            backend.set_allocation(fd, 1 << 40)
        assert caught.value.status == NtStatus.STATUS_DISK_FULL
        assert os.fstat(fd).st_size == len(DATA)
        assert os.pread(fd, len(DATA), 0) == DATA
    finally:
        os.close(fd)
