"""The mark codec, the hydration core and release against the directory provider, without a server.

Real files in a temporary directory (trusted.* xattrs: root), a real directory provider; no mocks.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from smbsrv.fs.handle import FileHandle
from smbsrv.hsm import mark as marks
from smbsrv.hsm.hydrate import Hydration, hydrate_fd
from smbsrv.hsm.providers import ProviderError, ProviderUnavailable
from smbsrv.hsm.providers.directory import DirectoryProvider
from smbsrv.hsm.release import ReleaseRefused, policy_candidates, release_file
from smbsrv.protocol.objects import Session

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="trusted.* xattrs need CAP_SYS_ADMIN")

GOOD = marks.Mark(provider="p", key="a" * 64, version="v", size=3, mtime_ns=5, sha256="a" * 64)


def test_mark_round_trip() -> None:
    assert marks.Mark.decode(GOOD.encode()) == GOOD


@pytest.mark.parametrize("value", [
    b"", b"not json", b"[]", b'{"v": 2}', json.dumps({"v": 1}).encode(),
    json.dumps({"v": 1, "provider": "p", "key": "k", "version": "v", "size": -1, "mtime_ns": 0,
                "sha256": "a" * 64}).encode(),
    json.dumps({"v": 1, "provider": "p", "key": "k", "version": "v", "size": True, "mtime_ns": 0,
                "sha256": "a" * 64}).encode(),
    json.dumps({"v": 1, "provider": 1, "key": "k", "version": "v", "size": 1, "mtime_ns": 0,
                "sha256": "a" * 64}).encode(),
    json.dumps({"v": 1, "provider": "p", "key": "k", "version": "v", "size": 1, "mtime_ns": 0,
                "sha256": "short"}).encode(),
])
def test_malformed_marks_are_corrupt_not_absent(value: bytes) -> None:
    with pytest.raises(marks.MarkCorrupt):
        marks.Mark.decode(value)


def _setup(tmp_path: Path, size: int = 200_000) -> tuple[Path, bytes, DirectoryProvider]:
    cold = tmp_path / "cold"
    cold.mkdir()
    path = tmp_path / "f.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    return path, data, DirectoryProvider("p", str(cold))


def _hydrate(path: Path, provider: DirectoryProvider) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        mark = marks.read(fd)
        assert mark is not None
        st = os.fstat(fd)
        hydrate_fd(fd, Hydration((st.st_dev, st.st_ino), mark, provider, str(path)))
    finally:
        os.close(fd)


def test_release_then_hydrate_keeps_inode_mode_and_mtime(tmp_path: Path) -> None:
    path, data, provider = _setup(tmp_path)
    os.chmod(path, 0o640)
    os.link(path, tmp_path / "link.bin")
    before = os.stat(path)
    released = release_file(str(path), provider)
    assert released is not None and released.key == hashlib.sha256(data).hexdigest()
    assert release_file(str(path), provider) is None  # already a placeholder
    middle = os.stat(path)
    assert (middle.st_ino, middle.st_size, middle.st_mode, middle.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mode, before.st_mtime_ns)
    assert path.read_bytes() == bytes(len(data))  # no data here, only holes
    _hydrate(path, provider)
    after = os.stat(path)
    assert (tmp_path / "link.bin").read_bytes() == data
    assert (after.st_ino, after.st_nlink, after.st_mtime_ns) == (before.st_ino, 2, before.st_mtime_ns)
    assert os.getxattr(path, "user.smbsrv.dos")  # the hint was written and cleared, the xattr stays
    fd = os.open(path, os.O_RDONLY)
    try:
        assert marks.read(fd) is None
    finally:
        os.close(fd)


def test_wrong_content_is_refused_and_punched_out(tmp_path: Path) -> None:
    path, data, provider = _setup(tmp_path)
    released = release_file(str(path), provider)
    assert released is not None
    stored = Path(provider.root) / released.key[:2] / released.key
    stored.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ProviderError, match="does not match the mark"):
        _hydrate(path, provider)
    assert path.read_bytes() == bytes(len(data))
    stored.write_bytes(data[:1000])
    with pytest.raises(ProviderError, match="does not match"):
        _hydrate(path, provider)
    stored.unlink()
    with pytest.raises(ProviderError, match="not found"):
        _hydrate(path, provider)
    os.rename(provider.root, provider.root + ".gone")
    with pytest.raises(ProviderUnavailable):
        _hydrate(path, provider)


def test_release_refuses_open_files_and_non_files(tmp_path: Path) -> None:
    path, _data, provider = _setup(tmp_path)
    with open(path, "rb"), pytest.raises(ReleaseRefused, match="open elsewhere"):
        release_file(str(path), provider)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ReleaseRefused, match="not a regular file"):
        release_file(str(tmp_path / "fifo"), provider)
    os.symlink(path, tmp_path / "sym")
    with pytest.raises(OSError):
        release_file(str(tmp_path / "sym"), provider)  # O_NOFOLLOW: never a link's target


def test_policy_selects_by_age_and_size(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for name, size, age_days in (("old", 5000, 40), ("young", 5000, 1), ("tiny", 10, 40)):
        (tmp_path / "d" / name).write_bytes(b"x" * size)
        when = 1_000_000_000 - age_days * 86400
        os.utime(tmp_path / "d" / name, (when, when))
    found = policy_candidates(str(tmp_path / "d"), after_days=30, min_bytes=100, now=1_000_000_000)
    assert found == [str(tmp_path / "d" / "old")]


def test_share_xattr_helpers_never_reach_the_mark(tmp_path: Path) -> None:
    """fs/xattr.py (what the EA, DOS-attribute and reparse code use, retried as the server when the client's
    identity is refused) takes user.* names only; an EA named like the mark stays inside the EA blob."""
    from smbsrv.fs import eas, xattr
    from smbsrv.fscc.ea import EaEntry

    path = tmp_path / "f"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDWR)
    try:
        for call in (lambda: xattr.set(fd, marks.MARK_XATTR, GOOD.encode()), lambda: xattr.get(fd, marks.MARK_XATTR),
                     lambda: xattr.remove(fd, marks.MARK_XATTR), lambda: xattr.list_names(fd, "trusted.")):
            with pytest.raises(ValueError, match="outside user"):
                call()
        eas.apply(fd, os.fstat(fd), [EaEntry(marks.MARK_XATTR.encode(), GOOD.encode())])
        assert marks.read(fd) is None
        assert marks.MARK_XATTR not in os.listxattr(fd)
    finally:
        os.close(fd)


def test_hydration_is_registered_on_the_file_state(tmp_path: Path) -> None:
    """While a hydration runs, the file's FileState (files/table.py) names it; once it is done, no longer. The
    open is a plain object with the fields FileTable and access._start read."""
    import asyncio

    from smbsrv.files import FileTable
    from smbsrv.hsm import access

    share = tmp_path
    path, _data, provider = _setup(tmp_path)
    os.rename(path, share / "reg.bin")
    assert release_file(str(share / "reg.bin"), provider) is not None

    class _Tree:
        share_root = object()

    class _Open:
        def __init__(self, fd: int, key: tuple[int, int]) -> None:
            self.handle, self.path_components = FileHandle(fd, key=key), ("reg.bin",)
            self.tree, self.file, self.session = _Tree(), None, Session(session_id=1)

    async def drive() -> None:
        fd = os.open(share / "reg.bin", os.O_RDONLY)
        try:
            st = os.fstat(fd)
            open_ = _Open(fd, (st.st_dev, st.st_ino))
            table = FileTable()
            state = table.add(open_)  # type: ignore[arg-type]
            mark = marks.read(fd)
            assert mark is not None
            hydration = access._start(open_, mark, provider)  # type: ignore[arg-type]
            assert state.hydration is hydration
            await asyncio.wrap_future(hydration.future)
            await asyncio.sleep(0)
            assert state.hydration is None
        finally:
            os.close(fd)

    asyncio.run(drive())
    fd = os.open(share / "reg.bin", os.O_RDONLY)
    try:
        assert marks.read(fd) is None
    finally:
        os.close(fd)
