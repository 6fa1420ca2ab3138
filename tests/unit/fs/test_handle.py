"""fs/handle.py: a FileHandle's I/O and name operations on real files, and their failures as NTSTATUS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smbsrv.errors import SmbError
from smbsrv.fs.handle import FileHandle
from smbsrv.wire.status import NtStatus


def _handle(tmp_path: Path, name: str, content: bytes = b"") -> FileHandle:
    (tmp_path / name).write_bytes(content)
    parent_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    fd = os.open(name, os.O_RDWR, dir_fd=parent_fd)
    st = os.fstat(fd)
    return FileHandle(fd, parent_fd, name, (st.st_dev, st.st_ino))


def test_read_eio_is_the_mapped_status() -> None:
    # A real EIO: /proc/self/mem at address 0, which is never mapped. It must reach the client as
    # STATUS_IO_DEVICE_ERROR (fs/errno_map.py), not as the internal error an escaped OSError becomes.
    handle = FileHandle(os.open("/proc/self/mem", os.O_RDONLY))
    try:
        with pytest.raises(SmbError) as raised:
            handle.read(16, 0)
        assert raised.value.status == NtStatus.STATUS_IO_DEVICE_ERROR
    finally:
        handle.close()


def test_read_of_a_directory_fd_is_file_is_a_directory(tmp_path: Path) -> None:
    handle = FileHandle(os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY))
    try:
        with pytest.raises(SmbError) as raised:
            handle.read(16, 0)
        assert raised.value.status == NtStatus.STATUS_FILE_IS_A_DIRECTORY
    finally:
        handle.close()


def test_write_read_truncate_size(tmp_path: Path) -> None:
    handle = _handle(tmp_path, "f")
    try:
        assert handle.write(memoryview(b"hello world"), 3) == 11
        assert handle.read(100, 0) == b"\0\0\0hello world"
        handle.truncate(5)
        assert handle.size() == 5
        handle.sync(data_only=True)
        handle.sync()
    finally:
        handle.close()
    assert handle.fd == -1 and handle.parent_fd == -1


def test_closed_handle_is_invalid_handle() -> None:
    with pytest.raises(SmbError) as raised:
        FileHandle().read(1, 0)
    assert raised.value.status == NtStatus.STATUS_INVALID_HANDLE


def test_rename_moved_and_unlink_if_same(tmp_path: Path) -> None:
    handle = _handle(tmp_path, "a", b"x")
    (tmp_path / "sub").mkdir()
    sub_fd = os.open(tmp_path / "sub", os.O_RDONLY | os.O_DIRECTORY)
    try:
        handle.rename_to(sub_fd, "b", replace=False)
        handle.moved(sub_fd, "b")
        assert (tmp_path / "sub" / "b").read_bytes() == b"x"
        # Another file now under the name: delete on close leaves it alone.
        os.rename(tmp_path / "sub" / "b", tmp_path / "sub" / "c")
        (tmp_path / "sub" / "b").write_bytes(b"other")
        assert handle.unlink_if_same() is None
        assert (tmp_path / "sub" / "b").exists()
        os.rename(tmp_path / "sub" / "c", tmp_path / "sub" / "b")
        assert handle.unlink_if_same() is False
        assert not (tmp_path / "sub" / "b").exists()
    finally:
        os.close(sub_fd)
        handle.close()


def test_data_ranges_skip_holes(tmp_path: Path) -> None:
    handle = _handle(tmp_path, "sparse")
    try:
        handle.write(b"d" * 4096, 0)
        handle.write(b"d" * 4096, 1 << 20)
        ranges = handle.data_ranges(0, handle.size())
        assert ranges[0][0] == 0 and ranges[-1][0] + ranges[-1][1] == (1 << 20) + 4096
        assert sum(length for _, length in ranges) < 1 << 20  # the hole is not data (tmpfs and ext4 alike)
    finally:
        handle.close()


def test_list_directory_starts_with_dot_entries(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"")
    parent_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    handle = FileHandle(os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent_fd), parent_fd, "d")
    try:
        assert [name for name, _ in handle.list_directory()] == [".", "..", "x"]
        assert handle.has_entries(can_read=True)
    finally:
        handle.close()
