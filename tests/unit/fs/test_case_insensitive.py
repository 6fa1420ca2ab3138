"""Case-insensitive lookup: correctness, cache invalidation by outside changes, in-place updates."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smbsrv.fs import backend, name_index
from smbsrv.fs.name_index import NameIndexCache, fold
from smbsrv.fs.path import SmbPath
from smbsrv.fs.resolver import ShareRoot
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus


def parse(name: str) -> SmbPath:
    return SmbPath.parse(name, posix=False)


def test_fold_is_windows_like() -> None:
    assert fold("readme.TXT") == "README.TXT"
    assert fold("ÉcOle") == fold("école")
    assert fold("straße") == "STRAßE"  # no full case folding: 'ß' does not become "SS"
    assert len(fold("ǆ")) == 1
    assert fold("ΣΊΣΥΦΟΣ") == fold("σίσυφος")


def test_lookup_every_component(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "Docs" / "Sub").mkdir(parents=True)
    (share_dir / "Docs" / "Sub" / "Report.TXT").write_text("x")
    with share.resolve(parse("docs\\SUB\\report.txt"), case_insensitive=True) as res:
        assert res.components == ("Docs", "Sub", "Report.TXT")
        assert res.name == "Report.TXT" and res.exists
    # The caller asked for case-sensitive (a POSIX open): no folding.
    with pytest.raises(SmbError) as info:
        share.resolve(parse("docs\\SUB\\report.txt"), case_insensitive=False)
    assert info.value.status == NtStatus.STATUS_OBJECT_PATH_NOT_FOUND
    with share.resolve(parse("Docs\\Sub\\report.txt"), case_insensitive=False) as res:
        assert not res.exists and res.name == "report.txt"


def test_case_sensitive_share_ignores_the_wish(share_dir: Path) -> None:
    (share_dir / "File").write_text("x")
    with ShareRoot.open(str(share_dir), case_sensitive=True) as root:
        with root.resolve(parse("FILE"), case_insensitive=True) as res:
            assert not res.exists and res.name == "FILE"
        assert root.name_index.scans == 0


def test_exact_name_wins_and_no_scan_for_exact_hits(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "abc").write_text("lower")
    (share_dir / "ABC").write_text("upper")
    with share.resolve(parse("ABC"), case_insensitive=True) as res:
        assert res.name == "ABC"
    with share.resolve(parse("abc"), case_insensitive=True) as res:
        assert res.name == "abc"
    assert share.name_index.scans == 0
    with share.resolve(parse("Abc"), case_insensitive=True) as res:
        assert res.name == "ABC"  # deterministic among case twins: the smallest on-disk name


def test_outside_rename_invalidates(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "Alpha").write_text("x")
    with share.resolve(parse("ALPHA"), case_insensitive=True) as res:
        assert res.name == "Alpha"
    # Another process renames the file; the directory's mtime/ctime move, the index is rebuilt.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; os.rename(sys.argv[1], sys.argv[2])",
            str(share_dir / "Alpha"),
            str(share_dir / "Beta"),
        ],
        check=True,
    )
    with share.resolve(parse("ALPHA"), case_insensitive=True) as res:
        assert not res.exists
    with share.resolve(parse("bEtA"), case_insensitive=True) as res:
        assert res.exists and res.name == "Beta"


def test_outside_create_right_after_a_scan(share: ShareRoot, share_dir: Path) -> None:
    """Changes made within the same clock tick as the scan must still be seen (multigrain timestamps, or the
    tentative-trust bound)."""
    for i in range(50):
        with share.resolve(parse(f"NEW{i}"), case_insensitive=True) as res:
            assert not res.exists
        (share_dir / f"new{i}").write_text("x")
        with share.resolve(parse(f"NEW{i}"), case_insensitive=True) as res:
            assert res.exists and res.name == f"new{i}", i


def test_outside_rename_in_subdirectory(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "Dir").mkdir()
    (share_dir / "Dir" / "One").write_text("x")
    with share.resolve(parse("dir\\one"), case_insensitive=True) as res:
        assert res.name == "One"
    os.rename(share_dir / "Dir", share_dir / "Folder")
    with pytest.raises(SmbError):
        share.resolve(parse("dir\\one"), case_insensitive=True)
    with share.resolve(parse("FOLDER\\ONE"), case_insensitive=True) as res:
        assert res.components == ("Folder", "One")


def test_burst_of_creates_does_not_rescan(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "big").mkdir()
    count = 2000
    start = time.monotonic()
    for i in range(count):
        name = f"File{i:05d}.dat"
        with share.resolve(parse(f"BIG\\{name.upper()}"), case_insensitive=True) as res:
            assert not res.exists
            fd = backend.create_at(res.parent_fd, name, 0o644)
            os.close(fd)
            share.note_created(res.parent_fd, name)
    elapsed = time.monotonic() - start
    # Not one scan per create: at most one per TENTATIVE_TRUST_S (plus the first one) for each of the two
    # directories on the path. The root's index can be tentative too ('big' was made in it a moment before its
    # scan), which shows when the machine is slow enough for the loop to take more than a second.
    periods = 1 + int(elapsed / name_index.TENTATIVE_TRUST_S)
    assert share.name_index.scans <= 2 * periods, (share.name_index.scans, elapsed)
    with share.resolve(parse("big\\file00007.DAT"), case_insensitive=True) as res:
        assert res.name == "File00007.dat"


def test_note_removed(share: ShareRoot, share_dir: Path) -> None:
    (share_dir / "Gone").write_text("x")
    with share.resolve(parse("GONE"), case_insensitive=True) as res:
        assert res.exists
        backend.unlink_at(res.parent_fd, res.name)
        share.note_removed(res.parent_fd, res.name)
    with share.resolve(parse("gone"), case_insensitive=True) as res:
        assert not res.exists


def test_tentative_index_expires(share: ShareRoot, share_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-stamped index can hide a change made by someone else at the same instant; it is trusted only for
    TENTATIVE_TRUST_S."""
    monkeypatch.setattr(name_index, "TENTATIVE_TRUST_S", 0.2)
    with share.resolve(parse("X"), case_insensitive=True) as res:
        # Someone else creates "Hidden" just before our create; our note_created re-stamps the index.
        (share_dir / "Hidden").write_text("x")
        os.close(backend.create_at(res.parent_fd, "x", 0o644))
        share.note_created(res.parent_fd, "x")
    time.sleep(0.25)
    with share.resolve(parse("HIDDEN"), case_insensitive=True) as res:
        assert res.exists and res.name == "Hidden"


def test_index_skips_undecodable_names(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "ok").write_text("x")
    open(os.fsencode(str(d)) + b"/bad\xff", "w").close()
    cache = NameIndexCache()
    fd = os.open(d, os.O_PATH | os.O_DIRECTORY)
    try:
        assert cache.lookup(fd, "OK") == "ok"
        assert cache.lookup(fd, "BAD\udcff") is None
    finally:
        os.close(fd)


def test_cache_is_bounded(tmp_path: Path) -> None:
    cache = NameIndexCache(max_directories=3)
    fds = []
    try:
        for i in range(5):
            d = tmp_path / f"d{i}"
            d.mkdir()
            fds.append(os.open(d, os.O_PATH | os.O_DIRECTORY))
            cache.lookup(fds[-1], "x")
        assert len(cache._indexes) == 3
    finally:
        for fd in fds:
            os.close(fd)
