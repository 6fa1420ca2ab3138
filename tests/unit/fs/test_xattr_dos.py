"""xattr access through O_PATH fds, chunked blobs (ext4 and tmpfs), and the DOS attribute xattr."""

import os
import random
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from smbsrv.fs import dos_attrs, xattr
from smbsrv.fs.dos_attrs import DosInfo
from smbsrv.fscc import attributes as fattr
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A directory on tmpfs, whose xattr values are not limited to one 4 KiB block."""
    if not os.path.isdir("/dev/shm"):
        pytest.fail("/dev/shm is needed for the tmpfs xattr tests")
    path = Path(f"/dev/shm/smbsrv-fs-test-{os.getpid()}")
    path.mkdir()
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


def path_fd(path: Path) -> int:
    return os.open(path, os.O_PATH | os.O_NOFOLLOW)


def test_get_set_remove_on_o_path_fd(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    fd = path_fd(f)
    try:
        assert xattr.get(fd, "user.t") is None
        xattr.set(fd, "user.t", b"value")
        assert xattr.get(fd, "user.t") == b"value"
        assert os.getxattr(f, "user.t") == b"value"
        assert xattr.list_names(fd) == ["user.t"]
        assert xattr.get_at(os.open(tmp_path, os.O_PATH), "f", "user.t") == b"value"
        assert xattr.remove(fd, "user.t") is True
        assert xattr.remove(fd, "user.t") is False
    finally:
        os.close(fd)


def test_symlink_fd_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("x")
    os.setxattr(target, "user.t", b"on-target")
    os.symlink(target, tmp_path / "ln")
    fd = path_fd(tmp_path / "ln")
    dir_fd = os.open(tmp_path, os.O_PATH)
    try:
        assert stat.S_ISLNK(os.fstat(fd).st_mode)
        assert xattr.get(fd, "user.t") is None  # the link itself, not its target
        assert xattr.get_at(dir_fd, "ln", "user.t") is None
        with pytest.raises(SmbError) as info:
            xattr.set(fd, "user.t", b"x")
        assert info.value.status == NtStatus.STATUS_ACCESS_DENIED  # EPERM: no user.* on symlinks
        assert os.getxattr(target, "user.t") == b"on-target"
        with pytest.raises(ValueError):
            xattr.get_at(dir_fd, "../etc", "user.t")
    finally:
        os.close(fd)
        os.close(dir_fd)


@pytest.mark.parametrize("size", [0, 10, 300, 3000, 4100, 16384, 65536 + 8])
def test_blob_roundtrip_tmpfs(shm_dir: Path, size: int) -> None:
    f = shm_dir / "f"
    f.write_text("x")
    data = random.Random(size).randbytes(size)  # incompressible
    fd = path_fd(f)
    try:
        xattr.set_blob(fd, "user.smbsrv.reparse", data)
        assert xattr.get_blob(fd, "user.smbsrv.reparse") == data
        assert xattr.remove_blob(fd, "user.smbsrv.reparse") is True
        assert xattr.get_blob(fd, "user.smbsrv.reparse") is None
        assert xattr.list_names(fd) == []
    finally:
        os.close(fd)


def test_blob_chunks_when_single_value_refused(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a per-value limit (btrfs-like): the chunked layout must be used and read back, and a rewrite
    with fewer chunks must drop the old ones."""
    real_setxattr = os.setxattr

    def limited(path: str, name: str, value: bytes, flags: int = 0, **kw: bool) -> None:
        if len(value) > 4000:
            raise OSError(28, "No space left on device")
        real_setxattr(path, name, value, flags, **kw)

    monkeypatch.setattr(os, "setxattr", limited)
    f = shm_dir / "f"
    f.write_text("x")
    fd = path_fd(f)
    try:
        big = random.Random(1).randbytes(16384)
        xattr.set_blob(fd, "user.b", big)
        names = sorted(xattr.list_names(fd))
        assert names == ["user.b", "user.b.0.1", "user.b.0.2", "user.b.0.3", "user.b.0.4"]
        assert xattr.get_blob(fd, "user.b") == big
        smaller = random.Random(2).randbytes(5000)
        xattr.set_blob(fd, "user.b", smaller)
        assert sorted(xattr.list_names(fd)) == ["user.b", "user.b.1.1"]
        assert xattr.get_blob(fd, "user.b") == smaller
        # A torn chunk (a writer between chunk and header) is detected, never returned.
        os.setxattr(f, "user.b.1.1", b"garbage")
        with pytest.raises(xattr.BlobCorrupt):
            xattr.get_blob(fd, "user.b")
    finally:
        os.close(fd)


def test_blob_on_ext4_compressible_fits(tmp_path: Path) -> None:
    """ext4 (no ea_inode) gives one inode ~4 KiB of xattrs in total; a 16 KiB symlink-style buffer (UTF-16
    text) still fits once compressed."""
    f = tmp_path / "f"
    f.write_text("x")
    target = "\\".join(f"directory{i:04d}" for i in range(600))[:8000]
    data = b"\x0c\x00\x00\xa0" + target.encode("utf-16-le")
    fd = path_fd(f)
    try:
        xattr.set_blob(fd, "user.smbsrv.reparse", data)
        assert xattr.get_blob(fd, "user.smbsrv.reparse") == data
    finally:
        os.close(fd)


def test_blob_on_ext4_incompressible_is_disk_full_and_keeps_old(tmp_path: Path) -> None:
    if os.statvfs(tmp_path).f_bsize != 4096:
        pytest.fail("expected a 4 KiB-block file system for tmp_path")
    f = tmp_path / "f"
    f.write_text("x")
    fd = path_fd(f)
    try:
        old = b"small old value"
        xattr.set_blob(fd, "user.b", old)
        try:
            xattr.set_blob(fd, "user.b", random.Random(3).randbytes(16384))
        except SmbError as exc:
            assert exc.status == NtStatus.STATUS_DISK_FULL
            assert xattr.get_blob(fd, "user.b") == old
            assert xattr.list_names(fd) == ["user.b"]
        else:
            # A file system with room per inode (ext4 with ea_inode, xfs, btrfs): then it must read back.
            assert len(xattr.get_blob(fd, "user.b") or b"") == 16384
    finally:
        os.close(fd)


def test_blob_refuses_oversize(shm_dir: Path) -> None:
    f = shm_dir / "f"
    f.write_text("x")
    fd = path_fd(f)
    try:
        with pytest.raises(ValueError):
            xattr.set_blob(fd, "user.b", bytes(xattr.MAX_BLOB_BYTES + 1))
        os.setxattr(f, "user.b", b"not a blob header at all")
        with pytest.raises(xattr.BlobCorrupt):
            xattr.get_blob(fd, "user.b")
    finally:
        os.close(fd)


def test_dos_info_roundtrip_and_tolerance(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    st = os.lstat(f)
    fd = path_fd(f)
    dir_fd = os.open(tmp_path, os.O_PATH)
    try:
        assert dos_attrs.read(fd, st) is None
        info = DosInfo(
            fattr.FILE_ATTRIBUTE_HIDDEN | fattr.FILE_ATTRIBUTE_ARCHIVE, 133_000_000_000_000_000
        )
        dos_attrs.write(fd, info)
        assert dos_attrs.read(fd, st) == info
        assert dos_attrs.read_at(dir_fd, "f", st) == info
        assert len(os.getxattr(f, dos_attrs.DOS_XATTR_NAME)) == 16
        dos_attrs.set_attributes(fd, fattr.FILE_ATTRIBUTE_READONLY, st)
        assert dos_attrs.read(fd, st) == DosInfo(fattr.FILE_ATTRIBUTE_READONLY, 133_000_000_000_000_000)
        assert dos_attrs.is_read_only(dir_fd, "f", st)
        dos_attrs.set_creation_time(fd, 134_000_000_000_000_000, st)
        assert dos_attrs.read(fd, st) == DosInfo(fattr.FILE_ATTRIBUTE_READONLY, 134_000_000_000_000_000)
        # Unknown version or length: treated as absent, never misread. (These are changes made behind the
        # server's back, which its cache cannot see within one ctime tick: start from an empty cache.)
        os.setxattr(f, dos_attrs.DOS_XATTR_NAME, b"\x02\x00" + bytes(14))
        dos_attrs._cache.clear()
        assert dos_attrs.read(fd, os.lstat(f)) is None
        os.setxattr(f, dos_attrs.DOS_XATTR_NAME, b"\x01\x00")
        dos_attrs._cache.clear()
        assert dos_attrs.read(fd, os.lstat(f)) is None
    finally:
        os.close(fd)
        os.close(dir_fd)


def test_dos_initialise_and_special_files(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    st = os.lstat(d)
    fd = path_fd(d)
    try:
        dos_attrs.initialise(fd, fattr.FILE_ATTRIBUTE_DIRECTORY | fattr.FILE_ATTRIBUTE_HIDDEN, st)
        info = dos_attrs.read(fd, st)
        assert info is not None and info.attributes == fattr.FILE_ATTRIBUTE_HIDDEN
        assert info.creation_time == dos_attrs.derived_creation_time(st)
    finally:
        os.close(fd)
    os.mkfifo(tmp_path / "fifo")
    fst = os.lstat(tmp_path / "fifo")
    dir_fd = os.open(tmp_path, os.O_PATH)
    try:
        assert dos_attrs.read_at(dir_fd, "fifo", fst) is None  # no system call for special files
        assert not dos_attrs.is_read_only(dir_fd, "fifo", fst)
    finally:
        os.close(dir_fd)
