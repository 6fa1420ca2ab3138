"""Writer for the "newc" cpio format that the Linux initramfs unpacker reads.

Format: Documentation/driver-api/early-userspace/buffer-format.rst in the kernel tree. Each member is a
110-byte ASCII header ("070701" followed by thirteen 8-digit hex fields), the NUL-terminated name padded to a
multiple of 4 bytes, then the data padded the same way. The archive ends with a member named "TRAILER!!!".

The kernel unpacks archives that are simply concatenated, later members replacing earlier ones. The VM runner
uses that to add a small per-run layer (guest scripts, settings) to the cached base image without rebuilding it.

Written here rather than calling cpio(1) so the archive needs no root privileges for device nodes and owners.
"""

from __future__ import annotations

import io
import stat
from pathlib import Path

NEWC_MAGIC = b"070701"
TRAILER_NAME = "TRAILER!!!"


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


class CpioWriter:
    """Builds one newc archive in memory; every member is owned by root."""

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._next_ino = 1
        self._dirs: set[str] = set()
        self._finished = False

    def _member(self, name: str, mode: int, data: bytes = b"", rdev_major: int = 0, rdev_minor: int = 0) -> None:
        if self._finished:
            raise RuntimeError("archive already finished")
        name_bytes = name.encode() + b"\0"
        fields = (
            self._next_ino,  # c_ino
            mode,  # c_mode
            0,  # c_uid
            0,  # c_gid
            2 if stat.S_ISDIR(mode) else 1,  # c_nlink
            0,  # c_mtime: fixed so identical inputs give identical archives
            len(data),  # c_filesize
            0,  # c_devmajor
            0,  # c_devminor
            rdev_major,  # c_rdevmajor
            rdev_minor,  # c_rdevminor
            len(name_bytes),  # c_namesize
            0,  # c_check: only used by the "070702" variant
        )
        self._next_ino += 1
        header = NEWC_MAGIC + b"".join(b"%08X" % value for value in fields)
        self._out.write(header)
        self._out.write(name_bytes)
        self._out.write(_pad4(len(header) + len(name_bytes)))
        self._out.write(data)
        self._out.write(_pad4(len(data)))

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            self.add_dir("/".join(parts[:depth]))

    def add_dir(self, name: str, perm: int = 0o755) -> None:
        """Adds a directory once; parents of every other member are added automatically."""
        name = name.strip("/")
        if not name or name in self._dirs:
            return
        self._parents(name)
        self._dirs.add(name)
        self._member(name, stat.S_IFDIR | perm)

    def add_file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        name = name.strip("/")
        self._parents(name)
        self._member(name, stat.S_IFREG | perm, data)

    def add_path(self, name: str, source: Path, perm: int | None = None) -> None:
        """Adds a host file under a new name, keeping its permission bits unless perm is given."""
        mode = source.stat().st_mode
        self.add_file(name, source.read_bytes(), stat.S_IMODE(mode) if perm is None else perm)

    def add_symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        self._parents(name)
        self._member(name, stat.S_IFLNK | 0o777, target.encode())

    def add_char_device(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        name = name.strip("/")
        self._parents(name)
        self._member(name, stat.S_IFCHR | perm, rdev_major=major, rdev_minor=minor)

    def finish(self) -> bytes:
        """Appends the trailer and returns the archive, padded to 512 bytes like cpio(1) does."""
        if not self._finished:
            self._member(TRAILER_NAME, 0)
            self._finished = True
            self._out.write(b"\0" * (-self._out.tell() % 512))
        return self._out.getvalue()
