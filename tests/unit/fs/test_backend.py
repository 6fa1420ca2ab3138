"""backend: fd operations, errno mapping, list_dir and the stat -> FileInfo conversion."""

import errno
import os
import stat
from pathlib import Path

import pytest

from smbsrv.fs import backend
from smbsrv.fs.dos_attrs import DosInfo
from smbsrv.fs.errno_map import status_for_errno
from smbsrv.fs.resolver import ShareRoot
from smbsrv.fscc import attributes as fattr
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus

NT_1970 = 116444736000000000


def status(exc_info: pytest.ExceptionInfo[SmbError]) -> NtStatus:
    return exc_info.value.status


def test_errno_table() -> None:
    assert status_for_errno(errno.ENOENT) == NtStatus.STATUS_OBJECT_NAME_NOT_FOUND
    assert status_for_errno(errno.EEXIST) == NtStatus.STATUS_OBJECT_NAME_COLLISION
    assert status_for_errno(errno.ENOTEMPTY) == NtStatus.STATUS_DIRECTORY_NOT_EMPTY
    assert status_for_errno(errno.ENAMETOOLONG) == NtStatus.STATUS_OBJECT_NAME_INVALID
    assert status_for_errno(errno.EDQUOT) == NtStatus.STATUS_DISK_FULL
    assert status_for_errno(12345) == NtStatus.STATUS_ACCESS_DENIED


def test_create_open_collision(share: ShareRoot, share_dir: Path) -> None:
    root = share.root_fd
    fd = backend.create_at(root, "f", 0o600)
    assert backend.pwrite_all(fd, memoryview(b"hello world"), 0) == 11
    os.close(fd)
    with pytest.raises(SmbError) as info:
        backend.create_at(root, "f")
    assert status(info) == NtStatus.STATUS_OBJECT_NAME_COLLISION
    os.symlink("/nonexistent-target", share_dir / "dangling")
    with pytest.raises(SmbError) as info:  # O_EXCL never creates through a dangling link
        backend.create_at(root, "dangling")
    assert status(info) == NtStatus.STATUS_OBJECT_NAME_COLLISION
    assert not os.path.exists("/nonexistent-target")
    with pytest.raises(SmbError) as info:
        backend.open_at(root, "missing", os.O_RDONLY)
    assert status(info) == NtStatus.STATUS_OBJECT_NAME_NOT_FOUND


def test_create_directory_and_posix_mode(share: ShareRoot, share_dir: Path) -> None:
    old = os.umask(0o077)
    try:
        fd = backend.create_at(share.root_fd, "d", 0o755, directory=True, posix_mode=True)
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o755
        os.close(fd)
        fd = backend.create_at(share.root_fd, "plain", 0o666)
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600  # umask applies without posix_mode
        os.close(fd)
    finally:
        os.umask(old)
    with pytest.raises(SmbError) as info:
        backend.create_at(share.root_fd, "d", directory=True)
    assert status(info) == NtStatus.STATUS_OBJECT_NAME_COLLISION


def test_open_for_access(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "f").write_text("data")
    (share_dir / "d").mkdir()
    os.mkfifo(share_dir / "fifo")
    root = share.root_fd
    fd = backend.open_for_access(root, "f", 0x1, is_directory=False, is_special=False)
    assert os.read(fd, 10) == b"data"
    os.close(fd)
    fd = backend.open_for_access(root, "f", 0x80, is_directory=False, is_special=False)  # attributes only
    with pytest.raises(OSError):
        os.read(fd, 1)
    os.close(fd)
    fd = backend.open_for_access(root, "f", 0x2, is_directory=False, is_special=False, truncate=True)
    assert os.fstat(fd).st_size == 0
    os.close(fd)
    fd = backend.open_for_access(root, "d", 0x1, is_directory=True, is_special=False)
    assert backend.list_dir(fd) == []
    os.close(fd)
    # A FIFO is never opened for data (it would block); O_PATH only.
    fd = backend.open_for_access(root, "fifo", 0x1, is_directory=False, is_special=True)
    assert stat.S_ISFIFO(os.fstat(fd).st_mode)
    os.close(fd)
    # Even if the caller thought it was a file, the non-blocking open returns at once.
    fd = backend.open_for_access(root, "fifo", 0x1, is_directory=False, is_special=False)
    os.close(fd)


def test_unlink_rmdir(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "d").mkdir()
    (share_dir / "d" / "x").write_text("x")
    root = share.root_fd
    with pytest.raises(SmbError) as info:
        backend.rmdir_at(root, "d")
    assert status(info) == NtStatus.STATUS_DIRECTORY_NOT_EMPTY
    with pytest.raises(SmbError) as info:
        backend.unlink_at(root, "d")
    assert status(info) == NtStatus.STATUS_FILE_IS_A_DIRECTORY
    (share_dir / "f").write_text("x")
    with pytest.raises(SmbError) as info:
        backend.rmdir_at(root, "f")
    assert status(info) == NtStatus.STATUS_NOT_A_DIRECTORY
    backend.unlink_at(root, "f")
    assert backend.stat_at(root, "f") is None


def test_rename_noreplace_and_replace(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "a").write_text("A")
    (share_dir / "b").write_text("B")
    (share_dir / "sub").mkdir()
    root = share.root_fd
    with pytest.raises(SmbError) as info:
        backend.rename_at(root, "a", root, "b", replace=False)
    assert status(info) == NtStatus.STATUS_OBJECT_NAME_COLLISION
    assert (share_dir / "a").read_text() == "A"
    backend.rename_at(root, "a", root, "b", replace=True)
    assert (share_dir / "b").read_text() == "A" and not (share_dir / "a").exists()
    sub = os.open(share_dir / "sub", os.O_PATH | os.O_DIRECTORY)
    try:
        backend.rename_at(root, "b", sub, "moved", replace=False)
    finally:
        os.close(sub)
    assert (share_dir / "sub" / "moved").read_text() == "A"
    with pytest.raises(SmbError) as info:
        backend.rename_at(root, "nothing", root, "x", replace=False)
    assert status(info) == NtStatus.STATUS_OBJECT_NAME_NOT_FOUND


def test_link_and_readlink(share: ShareRoot, share_dir: Path) -> None:
    root = share.root_fd
    backend.symlink_at("target/there", root, "ln")
    assert backend.readlink_at(root, "ln") == "target/there"
    backend.link_at(root, "ln", root, "ln2")  # links the symlink itself
    st = backend.stat_at(root, "ln2")
    assert st is not None and stat.S_ISLNK(st.st_mode) and st.st_nlink == 2


def test_pread_pwrite_views(share: ShareRoot) -> None:
    fd = backend.create_at(share.root_fd, "data", 0o600)
    try:
        payload = bytearray(range(256)) * 64
        assert backend.pwrite_all(fd, memoryview(payload)[100:], 10) == len(payload) - 100
        buf = bytearray(5000)
        view = memoryview(buf)
        assert backend.pread_into(fd, view[1000:], 10) == 4000
        assert buf[1000:5000] == payload[100:4100]
        assert backend.pread_into(fd, bytearray(100), 10**6) == 0
        backend.ftruncate(fd, 3)
        assert backend.pread_into(fd, view, 0) == 3
        backend.fsync(fd)
        backend.fdatasync(fd)
        backend.fallocate(fd, 0, 1 << 20, keep_size=True)
        st = backend.fstat(fd)
        assert st.st_size == 3 and st.st_blocks * 512 >= 1 << 20
    finally:
        os.close(fd)


def test_metadata_on_o_path_fds(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "f").write_text("x")
    fd = backend.open_at(share.root_fd, "f", os.O_PATH)
    try:
        backend.fchmod(fd, 0o640)
        backend.set_times(fd, mtime_ns=1_000_000_000_123_456_700)
        st = os.fstat(fd)
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert st.st_mtime_ns == 1_000_000_000_123_456_700
        before_atime = st.st_atime_ns
        backend.set_times(fd, atime_ns=2_000_000_000_000_000_000)
        st = os.fstat(fd)
        assert st.st_atime_ns == 2_000_000_000_000_000_000 != before_atime
        assert st.st_mtime_ns == 1_000_000_000_123_456_700  # UTIME_OMIT kept it
    finally:
        os.close(fd)
    assert backend.statvfs(share.root_fd).f_bsize > 0


def test_list_dir(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "d").mkdir()
    (share_dir / "f").write_text("abc")
    os.symlink("/etc", share_dir / "ln")
    open(os.fsencode(str(share_dir)) + b"/bad\xfe", "w").close()
    fd = backend.open_dir_at(share.root_fd, ".")
    try:
        entries = dict(backend.list_dir(fd))
    finally:
        os.close(fd)
    assert sorted(entries) == ["d", "f", "ln"]
    assert stat.S_ISLNK(entries["ln"].st_mode)  # lstat, not /etc
    assert entries["f"].st_size == 3


def test_file_info_regular_and_directory(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "f").write_bytes(b"x" * 5000)
    (share_dir / "d").mkdir()
    st_f = os.lstat(share_dir / "f")
    info = backend.file_info(st_f, None)
    assert info.attributes == fattr.FILE_ATTRIBUTE_ARCHIVE
    assert info.end_of_file == 5000 and info.allocation_size == st_f.st_blocks * 512
    assert info.last_write_time == st_f.st_mtime_ns // 100 + NT_1970
    assert info.change_time == st_f.st_ctime_ns // 100 + NT_1970
    assert info.creation_time == min(st_f.st_mtime_ns, st_f.st_ctime_ns) // 100 + NT_1970
    assert info.index_number == st_f.st_ino and info.number_of_links == 1
    st_d = os.lstat(share_dir / "d")
    dinfo = backend.file_info(st_d, None)
    assert dinfo.attributes == fattr.FILE_ATTRIBUTE_DIRECTORY and dinfo.is_directory
    assert dinfo.end_of_file == 0 and dinfo.allocation_size == 0


def test_file_attributes_rules(share_dir: Path) -> None:
    (share_dir / ".hidden").write_text("x")
    os.chmod(share_dir / ".hidden", 0o444)
    st = os.lstat(share_dir / ".hidden")
    a = fattr
    assert backend.file_attributes(st, None, name=".hidden") == a.FILE_ATTRIBUTE_ARCHIVE
    assert backend.file_attributes(st, None, name=".hidden", hide_dot_files=True, map_readonly=True) == (
        a.FILE_ATTRIBUTE_ARCHIVE | a.FILE_ATTRIBUTE_HIDDEN | a.FILE_ATTRIBUTE_READONLY
    )
    # The xattr wins; DIRECTORY/NORMAL in it are ignored; NORMAL only when nothing else.
    stored = DosInfo(a.FILE_ATTRIBUTE_SYSTEM | a.FILE_ATTRIBUTE_DIRECTORY | a.FILE_ATTRIBUTE_NORMAL, 0)
    assert backend.file_attributes(st, stored) == a.FILE_ATTRIBUTE_SYSTEM
    assert backend.file_attributes(st, DosInfo(0, 0)) == a.FILE_ATTRIBUTE_NORMAL
    assert (
        backend.file_attributes(st, DosInfo(0, 0), reparse_tag=0x80000014) == a.FILE_ATTRIBUTE_REPARSE_POINT
    )
    os.symlink("x", share_dir / "ln")
    os.mkfifo(share_dir / "fifo")
    for name in ("ln", "fifo"):
        special = os.lstat(share_dir / name)
        assert backend.file_attributes(special, None) == a.FILE_ATTRIBUTE_REPARSE_POINT
    info = backend.file_info(os.lstat(share_dir / "ln"), None, reparse_tag=0xA000000C)
    assert info.reparse_tag == 0xA000000C
    with_time = backend.file_info(st, DosInfo(a.FILE_ATTRIBUTE_ARCHIVE, 132_000_000_000_000_000))
    assert with_time.creation_time == 132_000_000_000_000_000
