"""The persistent placeholder mark: which provider holds a file's content, and what that content is.

A placeholder is a regular file of its real size with no data blocks (a hole from 0 to EOF) that carries this
mark in the xattr `trusted.smbsrv.hsm`. The mark names the provider instance (the "hsmid" of the linux-fsdevel
fanotify HSM design) and the object: its key, the provider's version or ETag, its size, the file's mtime when
it was released, and the SHA-256 of the content.

Why `trusted.*`: only a process with CAP_SYS_ADMIN can read or write that namespace, so neither an SMB client
(whose share syscalls run with its own fsuid, fs/identity.py; its EAs live in one `user.smbsrv.eas` blob that
never names another xattr) nor a local user who owns the file can create, alter or even see a mark. A forged
mark would otherwise let a user hydrate another user's object into a file of their own.

Encoding: one JSON object, version 1. A value that does not decode as a version-1 mark is reported as
`MarkCorrupt` (the file is then neither served as whole nor hydrated: data access fails until an operator
looks), never silently taken as "not a placeholder".
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import asdict, dataclass

MARK_XATTR = "trusted.smbsrv.hsm"
_VERSION = 1
_MAX_BYTES = 2048  # fits an ext4 inode's xattr block next to our DOS attributes and EAs


class MarkCorrupt(ValueError):
    """The mark xattr exists but is not a valid mark."""


@dataclass(frozen=True, slots=True)
class Mark:
    provider: str  # the provider instance id (per share, `hsm_provider_id`)
    key: str  # object key within the provider
    version: str  # the provider's version id or ETag of the object when it was stored
    size: int
    mtime_ns: int  # the file's mtime when it was released, given back after hydration
    sha256: str  # hex digest of the whole content

    def encode(self) -> bytes:
        data = json.dumps({"v": _VERSION, **asdict(self)}, separators=(",", ":"), sort_keys=True).encode()
        if len(data) > _MAX_BYTES:
            raise ValueError(f"mark too large ({len(data)} bytes)")
        return data

    @classmethod
    def decode(cls, data: bytes) -> Mark:
        try:
            value = json.loads(data)
        except ValueError:
            raise MarkCorrupt("not JSON") from None
        if not isinstance(value, dict) or value.get("v") != _VERSION:
            raise MarkCorrupt("unknown mark version")
        try:
            mark = cls(provider=value["provider"], key=value["key"], version=value["version"],
                       size=value["size"], mtime_ns=value["mtime_ns"], sha256=value["sha256"])
        except KeyError as exc:
            raise MarkCorrupt(f"missing {exc}") from None
        if (not all(isinstance(v, str) for v in (mark.provider, mark.key, mark.version, mark.sha256))
                or not all(type(v) is int and v >= 0 for v in (mark.size, mark.mtime_ns))
                or len(mark.sha256) != 64):
            raise MarkCorrupt("bad field types")
        return mark


def _path(fd: int) -> str:
    # xattr calls refuse O_PATH fds; the /proc magic link names the inode behind the fd itself.
    return f"/proc/self/fd/{fd}"


def read(fd: int) -> Mark | None:
    """The file's mark, None for a file that is not a placeholder; MarkCorrupt for a damaged one. Run as the
    server (trusted.* needs CAP_SYS_ADMIN)."""
    try:
        data = os.getxattr(_path(fd), MARK_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            return None
        raise
    return Mark.decode(data)


def write(fd: int, mark: Mark) -> None:
    """Set the mark in one setxattr (atomic: a reader sees the old value or the new one)."""
    os.setxattr(_path(fd), MARK_XATTR, mark.encode())


def remove(fd: int) -> None:
    """Drop the mark in one removexattr: the commit point of a hydration."""
    try:
        os.removexattr(_path(fd), MARK_XATTR)
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise


def probe(directory_fd: int) -> str | None:
    """Whether marks can be kept under this directory: None, or the reason they cannot (no CAP_SYS_ADMIN, a
    file system without trusted.* xattrs)."""
    name = "trusted.smbsrv.probe"
    try:
        os.setxattr(_path(directory_fd), name, b"1")
        os.removexattr(_path(directory_fd), name)
    except OSError as exc:
        return f"cannot keep placeholder marks ({MARK_XATTR}): {exc.strerror}"
    return None
