"""Escape matrix for ShareRoot.resolve: nothing may ever reach outside the share root.

Every test runs twice, with the openat2 fast path and with the component-by-component walk forced.
"""

import ctypes
import errno
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from smbsrv.fs import backend, resolver
from smbsrv.fs.path import SmbPath
from smbsrv.fs.resolver import ShareRoot, SymlinkMet
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus

from .conftest import fd_path


@pytest.fixture(params=["openat2", "walk"], autouse=True)
def walk_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "walk":
        monkeypatch.setattr(resolver, "_openat2_usable", False)
    else:
        assert resolver._openat2_usable, "openat2 not usable on this kernel: the fast path is untested"
    yield request.param


def parse(name: str, posix: bool = False) -> SmbPath:
    return SmbPath.parse(name, posix=posix)


def inside(share_dir: Path, fd: int) -> bool:
    real = fd_path(fd)
    return real == str(share_dir) or real.startswith(str(share_dir) + "/")


def test_plain_lookup(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "a" / "b").mkdir(parents=True)
    (share_dir / "a" / "b" / "f.txt").write_text("x")
    with share.resolve(parse("a\\b\\f.txt"), case_insensitive=False) as res:
        assert res.name == "f.txt"
        assert res.components == ("a", "b", "f.txt")
        assert res.stat is not None and stat.S_ISREG(res.stat.st_mode)
        assert fd_path(res.parent_fd) == str(share_dir / "a" / "b")
    with share.resolve(parse("a\\b\\missing"), case_insensitive=False) as res:
        assert res.stat is None and res.name == "missing"


def test_root(share: ShareRoot, share_dir: Path) -> None:
    res = share.resolve(parse(""), case_insensitive=True)
    assert res.name == "." and res.components == ()
    assert res.stat is not None and stat.S_ISDIR(res.stat.st_mode)
    assert fd_path(res.parent_fd) == str(share_dir)
    assert res.parent_fd != share.root_fd
    res.close()
    res.close()  # idempotent
    os.fstat(share.root_fd)  # the root fd survives


@pytest.mark.parametrize("name", ["..", "..\\secret", "a\\..\\..\\secret", "\\etc\\passwd", "/etc/passwd"])
def test_dotdot_and_absolute_never_parse(name: str) -> None:
    with pytest.raises(SmbError):
        parse(name)
    with pytest.raises(SmbError):
        parse(name.replace("\\", "/"), posix=True)


def test_missing_intermediate_is_path_not_found(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "file.txt").write_text("x")
    for name in ("nodir\\x", "file.txt\\x", "file.txt\\x\\y"):
        with pytest.raises(SmbError) as info:
            share.resolve(parse(name), case_insensitive=False)
        assert info.value.status == NtStatus.STATUS_OBJECT_PATH_NOT_FOUND


def test_symlink_to_etc_in_the_middle(share: ShareRoot, share_dir: Path, outside: Path) -> None:
    (share_dir / "d").mkdir()
    os.symlink("/etc", share_dir / "d" / "etc")
    with pytest.raises(SymlinkMet) as info:
        share.resolve(parse("d\\etc\\passwd"), case_insensitive=False)
    met = info.value
    assert met.component_index == 1
    assert met.link_name_components == ("d", "etc")
    assert met.target == "/etc"
    assert met.unparsed == ("passwd",)
    assert met.unparsed_path_length("d\\etc\\passwd") == len("\\passwd") * 2
    assert met.unparsed_path_length("d\\etc\\passwd:s:$DATA") == len("\\passwd:s:$DATA") * 2


def test_relative_symlink_out_in_the_middle(share: ShareRoot, share_dir: Path, outside: Path) -> None:
    os.symlink("../outside", share_dir / "up")
    with pytest.raises(SymlinkMet) as info:
        share.resolve(parse("up/inner/secret", posix=True), case_insensitive=False)
    assert info.value.target == "../outside"
    assert info.value.unparsed == ("inner", "secret")


def test_symlink_at_the_end_is_reported_not_followed(share: ShareRoot, share_dir: Path) -> None:
    os.symlink("/etc/passwd", share_dir / "pw")
    os.symlink("/etc", share_dir / "etc")
    for name in ("pw", "etc"):
        with share.resolve(parse(name), case_insensitive=False) as res:
            assert res.is_symlink
            assert res.stat is not None and stat.S_ISLNK(res.stat.st_mode)
            assert backend.readlink_at(res.parent_fd, res.name) in ("/etc/passwd", "/etc")
            # A data open refuses the link instead of opening /etc/passwd.
            with pytest.raises(SmbError) as info:
                backend.open_at(res.parent_fd, res.name, os.O_RDONLY)
            assert info.value.status == NtStatus.STATUS_OBJECT_PATH_NOT_FOUND
            with pytest.raises(SmbError):
                backend.open_dir_at(res.parent_fd, res.name)


def test_symlink_loop_and_dangling(share: ShareRoot, share_dir: Path) -> None:
    os.symlink("loop", share_dir / "loop")
    os.symlink("nowhere", share_dir / "dangling")
    with pytest.raises(SymlinkMet):
        share.resolve(parse("loop\\x"), case_insensitive=False)
    with pytest.raises(SymlinkMet):
        share.resolve(parse("dangling\\x"), case_insensitive=True)
    with share.resolve(parse("loop"), case_insensitive=False) as res:
        assert res.is_symlink


def test_case_insensitive_lookup_never_follows_links(
    share: ShareRoot, share_dir: Path, outside: Path
) -> None:
    os.symlink(str(outside), share_dir / "Link")
    with pytest.raises(SymlinkMet) as info:
        share.resolve(parse("LINK\\secret"), case_insensitive=True)
    assert info.value.link_name_components == ("Link",)


def test_names_with_colon_and_nul(share: ShareRoot, share_dir: Path) -> None:
    with pytest.raises(SmbError):
        parse("a\x00b")
    with pytest.raises(SmbError):
        parse("a\x00b", posix=True)
    # On POSIX opens ':' and '\\' are plain characters and reach the disk as such.
    path = parse("we:ird\\name", posix=True)
    backend.create_at(share.root_fd, path.components[0], 0o644)
    assert (share_dir / "we:ird\\name").exists()
    with share.resolve(path, case_insensitive=False) as res:
        assert res.exists and res.name == "we:ird\\name"
    # Windows syntax: ':' is the stream marker, never part of the on-disk name.
    windows = parse("we:ird")
    assert windows.components == ("we",) and windows.stream == "ird"


def test_very_long_names(share: ShareRoot, share_dir: Path) -> None:
    long_ok = "a" * 255
    (share_dir / long_ok).mkdir()
    with share.resolve(parse(long_ok + "\\x"), case_insensitive=True) as res:
        assert res.stat is None
    # 255 UTF-16 units but 510 UTF-8 bytes: Linux says ENAMETOOLONG, the client OBJECT_NAME_INVALID.
    wide = "é" * 255
    with pytest.raises(SmbError) as info:
        share.resolve(parse(wide), case_insensitive=False)
    assert info.value.status == NtStatus.STATUS_OBJECT_NAME_INVALID
    with pytest.raises(SmbError) as info:
        share.resolve(parse(wide + "\\x"), case_insensitive=False)
    assert info.value.status == NtStatus.STATUS_OBJECT_NAME_INVALID
    deep = "\\".join(["d"] * 2000)
    with pytest.raises(SmbError) as info:
        share.resolve(parse(deep), case_insensitive=False)
    assert info.value.status == NtStatus.STATUS_OBJECT_PATH_NOT_FOUND


def test_backend_refuses_multi_component_names(share: ShareRoot, share_dir: Path, outside: Path) -> None:
    """Rename (or anything else) across the boundary is impossible through the API: names are components."""
    (share_dir / "f").write_text("x")
    root = share.root_fd
    for bad in ("../outside/x", "..", "a/b", "/tmp/x", "", "x\x00"):
        with pytest.raises(SmbError) as info:
            backend.rename_at(root, "f", root, bad, replace=False)
        assert info.value.status == NtStatus.STATUS_OBJECT_NAME_INVALID
        with pytest.raises(SmbError):
            backend.rename_at(root, bad, root, "g", replace=True)
        with pytest.raises(SmbError):
            backend.link_at(root, "f", root, bad)
        with pytest.raises(SmbError):
            backend.open_at(root, bad, os.O_RDONLY)
        with pytest.raises(SmbError):
            backend.unlink_at(root, bad)
        with pytest.raises(SmbError):
            backend.mkdir_at(root, bad)
    assert sorted(os.listdir(outside)) == ["inner", "secret"]
    assert (share_dir / "f").exists()


# --- races ---------------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_RENAME_EXCHANGE = 2


def _exchange(dir_fd: int, a: bytes, b: bytes) -> None:
    if _libc.renameat2(dir_fd, a, dir_fd, b, _RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


class _Swapper(threading.Thread):
    """Atomically exchanges `a` and `b` in dir_fd until stopped."""

    def __init__(self, dir_fd: int, a: str, b: str) -> None:
        super().__init__(daemon=True)
        self.dir_fd, self.a, self.b = dir_fd, a.encode(), b.encode()
        self.stop = threading.Event()
        self.swaps = 0

    def run(self) -> None:
        while not self.stop.is_set():
            _exchange(self.dir_fd, self.a, self.b)
            self.swaps += 1


def test_directory_swapped_for_symlink_mid_walk(share: ShareRoot, share_dir: Path, outside: Path) -> None:
    """A thread exchanges share/top/swap (a real directory) with a symlink to the outside tree, which has the
    same shape. Every resolution must end inside the share or report the link; never outside."""
    top = share_dir / "top"
    (top / "swap" / "inner").mkdir(parents=True)
    (top / "swap" / "inner" / "secret").write_text("inside")
    os.symlink(str(outside), top / "link")
    top_fd = os.open(top, os.O_PATH | os.O_DIRECTORY)
    swapper = _Swapper(top_fd, "swap", "link")
    outcomes = {"inside": 0, "symlink": 0, "not_found": 0}
    attempts = 0
    # As in the final-component race below: on a loaded machine the swapper thread may run too seldom for
    # 3,000 tries to meet both states, so keep trying (up to 20 s) until each outcome and 100 swaps were seen.
    deadline = time.monotonic() + 20
    swapper.start()
    try:
        while (attempts < 3000 or not (outcomes["inside"] and outcomes["symlink"] and swapper.swaps > 100)) \
                and time.monotonic() < deadline:
            attempts += 1
            try:
                res = share.resolve(parse("top\\swap\\inner\\secret"), case_insensitive=True)
            except SymlinkMet as met:
                assert met.link_name_components == ("top", "swap")
                outcomes["symlink"] += 1
                continue
            except SmbError as exc:
                assert exc.status == NtStatus.STATUS_OBJECT_PATH_NOT_FOUND
                outcomes["not_found"] += 1
                continue
            with res:
                assert inside(share_dir, res.parent_fd), fd_path(res.parent_fd)
                if res.exists:
                    fd = backend.open_at(res.parent_fd, res.name, os.O_RDONLY)
                    try:
                        assert os.read(fd, 100) == b"inside"
                    finally:
                        os.close(fd)
                outcomes["inside"] += 1
    finally:
        swapper.stop.set()
        swapper.join()
        os.close(top_fd)
    assert swapper.swaps > 100
    assert outcomes["inside"] > 0 and outcomes["symlink"] > 0, outcomes


def test_final_component_swapped_for_symlink_after_resolve(share: ShareRoot, share_dir: Path) -> None:
    """Between resolve() and the open, the file becomes a symlink to /etc/passwd: the open must refuse it."""
    (share_dir / "file").write_text("inside")
    os.symlink("/etc/passwd", share_dir / "evil")
    swapper = _Swapper(share.root_fd, "file", "evil")
    opened = refused = attempts = 0
    swapper.start()
    # Both outcomes depend on when the swapper thread runs: on a loaded machine 3,000 tries can all fall
    # between two of its swaps, so keep trying (up to 20 s) until each outcome was seen once.
    deadline = time.monotonic() + 20
    try:
        while attempts < 3000 or not (opened and refused) and time.monotonic() < deadline:
            attempts += 1
            with share.resolve(parse("file"), case_insensitive=False) as res:
                try:
                    fd = backend.open_at(res.parent_fd, res.name, os.O_RDONLY | os.O_NONBLOCK)
                except SmbError:
                    refused += 1
                    continue
                try:
                    assert os.read(fd, 100) == b"inside"
                finally:
                    os.close(fd)
                opened += 1
    finally:
        swapper.stop.set()
        swapper.join()
    assert opened > 0 and refused > 0


def test_root_fd_is_o_path_and_cloexec(share: ShareRoot) -> None:
    import fcntl

    assert fcntl.fcntl(share.root_fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    assert fcntl.fcntl(share.root_fd, fcntl.F_GETFL) & os.O_PATH
    with pytest.raises(OSError) as info:
        os.read(share.root_fd, 1)
    assert info.value.errno == errno.EBADF
