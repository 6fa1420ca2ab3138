"""A fresh file system in an image file, loop-mounted for one test or benchmark (root only)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def loop_mounted(image: Path, mount_point: Path, size: int, mkfs: Sequence[str]) -> Iterator[Path]:
    """Make `image` a sparse file of `size` bytes, run `mkfs` (argv without the image) on it and mount it at
    `mount_point` (made here); unmounted afterwards, lazily if something still holds it. The loop device goes
    with the last unmount (mount -o loop sets autoclear). A failing mkfs or mount raises CalledProcessError."""
    mount_point.mkdir()
    with open(image, "wb") as file:
        file.truncate(size)
    subprocess.run([*mkfs, str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount_point)], check=True, capture_output=True)
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False, capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)
