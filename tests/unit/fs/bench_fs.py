"""Micro benchmark for the fs hot path (not a test; pytest does not collect it).

    python -m tests.unit.fs.bench_fs [--dir /tmp]

Measures resolve() of a 3-deep path (openat2 fast path, component walk, case-insensitive walk), list_dir of
10,000 entries (with and without the DOS xattr per entry), and creating files in one directory on a
case-insensitive share with and without the in-place index updates.
"""

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from smbsrv.fs import backend, dos_attrs, resolver
from smbsrv.fs.path import SmbPath
from smbsrv.fs.resolver import ShareRoot
from smbsrv.fscc import attributes as fattr


def per_op_us(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def bench_resolve(root: ShareRoot, share_dir: Path) -> None:
    (share_dir / "Alpha" / "Beta").mkdir(parents=True)
    (share_dir / "Alpha" / "Beta" / "File.txt").write_text("x")
    exact = SmbPath.parse("Alpha\\Beta\\File.txt", posix=False)
    folded = SmbPath.parse("ALPHA\\beta\\file.TXT", posix=False)

    def resolve(path: SmbPath, ci: bool) -> Callable[[], None]:
        def run() -> None:
            root.resolve(path, case_insensitive=ci).close()

        return run

    print(f"resolve 3-deep, openat2 fast path:         {per_op_us(resolve(exact, True), 20000):7.2f} us")
    wire_name = "Alpha\\Beta\\File.txt"

    def parse_and_resolve() -> None:
        root.resolve(SmbPath.parse(wire_name, posix=False), case_insensitive=True).close()

    print(f"parse + resolve, fast path:                 {per_op_us(parse_and_resolve, 20000):7.2f} us")
    saved = resolver._openat2_usable
    resolver._openat2_usable = False
    try:
        print(f"resolve 3-deep, component walk:            {per_op_us(resolve(exact, True), 20000):7.2f} us")
    finally:
        resolver._openat2_usable = saved
    print(f"resolve 3-deep, every component wrong case: {per_op_us(resolve(folded, True), 20000):7.2f} us")
    missing = SmbPath.parse("Alpha\\Beta\\nothing", posix=False)
    print(f"resolve 3-deep, last missing (CI index):   {per_op_us(resolve(missing, True), 20000):7.2f} us")


def bench_list_dir(root: ShareRoot, share_dir: Path) -> None:
    big = share_dir / "big"
    big.mkdir()
    big_fd = os.open(big, os.O_PATH | os.O_DIRECTORY)
    for i in range(10_000):
        fd = backend.create_at(big_fd, f"file{i:05d}.dat", 0o644)
        if i % 2:
            dos_attrs.initialise(fd, fattr.FILE_ATTRIBUTE_ARCHIVE, os.fstat(fd))
        os.close(fd)

    def listing() -> int:
        fd = backend.open_dir_at(big_fd, ".")
        try:
            return len(backend.list_dir(fd))
        finally:
            os.close(fd)

    def listing_with_info() -> int:
        fd = backend.open_dir_at(big_fd, ".")
        try:
            infos = [
                backend.file_info(st, dos_attrs.read_at(fd, name, st), name=name)
                for name, st in backend.list_dir(fd)
            ]
            return len(infos)
        finally:
            os.close(fd)

    assert listing() == 10_000
    print(f"list_dir 10,000 entries:                    {per_op_us(listing, 10) / 1000:7.2f} ms")
    print(f"list_dir + DOS xattr + FileInfo, 10,000:    {per_op_us(listing_with_info, 5) / 1000:7.2f} ms")
    os.close(big_fd)


def bench_creates(root: ShareRoot, share_dir: Path, count: int, *, note: bool) -> None:
    target = share_dir / f"creates-{note}"
    target.mkdir()
    root.name_index.clear()
    scans_before = root.name_index.scans
    start = time.perf_counter()
    for i in range(count):
        name = f"New{i:05d}.bin"
        with root.resolve(
            SmbPath.parse(f"creates-{note}\\{name.lower()}", posix=False), case_insensitive=True
        ) as res:
            assert not res.exists
            os.close(backend.create_at(res.parent_fd, name, 0o644))
            if note:
                root.note_created(res.parent_fd, name)
    elapsed = time.perf_counter() - start
    scans = root.name_index.scans - scans_before
    label = "with note_created" if note else "without note_created"
    print(f"{count:6d} CI creates in one dir, {label:21s}: {elapsed:6.2f} s, {scans} directory scans")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="smbsrv-bench-", dir=args.dir))
    try:
        share_dir = base / "share"
        share_dir.mkdir()
        with ShareRoot.open(str(share_dir), case_sensitive=False) as root:
            bench_resolve(root, share_dir)
            bench_list_dir(root, share_dir)
            bench_creates(root, share_dir, 10_000, note=True)
            bench_creates(root, share_dir, 3_000, note=False)
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
