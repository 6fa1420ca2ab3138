"""user.* extended attributes on share objects, by fd, plus chunked storage for values bigger than one xattr.

Linux refuses getxattr/setxattr on O_PATH fds (EBADF), and the resolver hands out O_PATH fds, so every call goes
through the fd's /proc magic link, "/proc/self/fd/N", which names the inode behind the fd itself (no path is
re-resolved). The `*_at` variants reach an entry of a directory fd as "/proc/self/fd/N/name" with the l*xattr
calls, so a symlink entry is never followed; that is how a directory listing reads attributes without an fd
per entry.

Linux only allows user.* xattrs on regular files and directories. On a symlink fd the /proc link ends on the
symlink inode itself (not followed): reads find nothing and writes fail with EPERM. Callers still must not
call these for symlinks, FIFOs, sockets or devices; their attributes are synthesized from st_mode (protocol
notes 8.8).

A missing attribute (ENODATA) and a file system without user xattrs (ENOTSUP) both read as None.

Chunked blobs (`get_blob`/`set_blob`): the reparse buffer may reach 16 KiB ([MS-FSCC] 2.3.82; Samba accepts
64 KiB). The blob is zlib-compressed when that shrinks it and stored under `name` as a header plus the data,
in one xattr when the file system takes it (XFS, tmpfs: 64 KiB values), else split into CHUNK_BYTES pieces
named `name.G.1`, `name.G.2`, ... (btrfs, and file systems with a per-value limit), G being a generation bit
so a failed rewrite leaves the old value intact. The header carries a CRC32 so a reader racing a writer sees
"corrupt, retry", never a mix.

Limit, measured on this machine's ext4 (no ea_inode): all xattrs of one inode share one 4 KiB block, so
`user.c0`=4000 bytes fits but 2 x 3000 does not. Chunking cannot help there; only compression can, and an
incompressible blob over ~4 KB fails with STATUS_DISK_FULL (Samba 4.24.5 behaves the same). Storing such
blobs needs space outside the inode (a side store); see the fs report.
"""

import errno
import os
import struct
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from smbsrv.fs import identity
from smbsrv.fs.errno_map import raise_for_oserror

_T = TypeVar("_T")

CHUNK_BYTES = 3968  # fits one 4 KiB ext4/ext3 xattr block with its entry header
MAX_BLOB_BYTES = 65536 + 8  # the largest reparse buffer ReparseDataLength can describe

_NOT_STORED = (errno.ENODATA, errno.ENOTSUP)
_NO_ROOM = (errno.ENOSPC, errno.E2BIG, errno.ERANGE)

# magic, version, flags, generation, chunk count, stored length, crc32 of the stored bytes
_BLOB_HEADER = struct.Struct("<4sBBBxHxxII")
_BLOB_MAGIC = b"SXB1"
_BLOB_VERSION = 1
_FLAG_ZLIB = 0x01
_COMPRESS_ABOVE = 256  # below this, zlib's own overhead usually wins
_READ_RETRIES = 3


# The SMB layer decides who may read and write a file's attributes (FILE_READ_EA, FILE_WRITE_ATTRIBUTES, ...);
# the kernel's rule for user.* xattrs (read or write permission on the file itself) is stricter, e.g. the owner
# of a 0000 file still sees its DOS attributes. So a call the kernel refuses to the client is made again as the
# server, as Samba does for its DOSATTRIB xattr: callers only get here after their SMB access check.


def _as_server_if_denied(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    try:
        return call(*args, **kwargs)
    except PermissionError:
        if not identity.acts_as_client():
            raise
    with identity.as_server():
        return call(*args, **kwargs)


def _user_namespace(name: str) -> str:
    """Only user.* names pass here: a call retried as the server must never reach trusted.* (where the
    placeholder marks of smbsrv/hsm live, docs/hsm.md) or security.*, whatever name reaches this module."""
    if not name.startswith("user."):
        raise ValueError(f"xattr {name!r} is outside user.*")
    return name


def _getxattr(path: str, name: str, follow_symlinks: bool = True) -> bytes:
    return _as_server_if_denied(os.getxattr, path, _user_namespace(name), follow_symlinks=follow_symlinks)


def _setxattr(path: str, name: str, value: bytes, flags: int = 0, follow_symlinks: bool = True) -> None:
    _as_server_if_denied(os.setxattr, path, _user_namespace(name), value, flags, follow_symlinks=follow_symlinks)


def _removexattr(path: str, name: str, follow_symlinks: bool = True) -> None:
    _as_server_if_denied(os.removexattr, path, _user_namespace(name), follow_symlinks=follow_symlinks)


def _listxattr(path: str, follow_symlinks: bool = True) -> list[str]:
    return _as_server_if_denied(os.listxattr, path, follow_symlinks=follow_symlinks)


class BlobCorrupt(Exception):
    """The stored blob is unreadable: wrong header, bad CRC after retries, or a missing chunk."""


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _entry_path(dir_fd: int, entry_name: str) -> str:
    if not entry_name or entry_name in (".", "..") or "/" in entry_name:
        raise ValueError(f"not a single directory entry: {entry_name!r}")
    return f"/proc/self/fd/{dir_fd}/{entry_name}"


# --- plain attributes ---------------------------------------------------------------------------------------


def _get(path: str, name: str, follow: bool) -> bytes | None:
    try:
        return _getxattr(path, name, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in _NOT_STORED:
            return None
        raise_for_oserror(exc)


def _set(path: str, name: str, value: bytes, follow: bool) -> None:
    try:
        _setxattr(path, name, value, 0, follow_symlinks=follow)
    except OSError as exc:
        raise_for_oserror(exc)


def _remove(path: str, name: str, follow: bool) -> bool:
    try:
        _removexattr(path, name, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in _NOT_STORED:
            return False
        raise_for_oserror(exc)
    return True


def get(fd: int, name: str) -> bytes | None:
    """The value of xattr `name` of the object behind `fd` (O_PATH or not), None if absent/unsupported."""
    return _get(_fd_path(fd), name, True)


def get_at(dir_fd: int, entry_name: str, name: str) -> bytes | None:
    """Like get() for the entry `entry_name` of directory `dir_fd`, without following a symlink entry."""
    return _get(_entry_path(dir_fd, entry_name), name, False)


def set(fd: int, name: str, value: bytes) -> None:
    """Create or replace xattr `name`; errors (ENOSPC, ENOTSUP, EPERM, ...) become SmbError."""
    _set(_fd_path(fd), name, value, True)


def remove(fd: int, name: str) -> bool:
    """Remove xattr `name`; False when it was not there."""
    return _remove(_fd_path(fd), name, True)


def get_as_caller(fd: int, name: str) -> bytes | None:
    """get() with the caller's own permission check (see set_as_caller); None when absent."""
    try:
        return os.getxattr(_fd_path(fd), _user_namespace(name))
    except OSError as exc:
        if exc.errno in _NOT_STORED:
            return None
        raise_for_oserror(exc)


def set_as_caller(fd: int, name: str, value: bytes) -> None:
    """set() with the kernel's own permission check for the caller, never retried as the server: for data the
    file's write permission guards (named streams, fs/streams.py), not metadata the SMB layer grants."""
    try:
        os.setxattr(_fd_path(fd), _user_namespace(name), value)
    except OSError as exc:
        raise_for_oserror(exc)


def remove_as_caller(fd: int, name: str) -> bool:
    """remove() with the caller's own permission check (see set_as_caller); False when it was not there."""
    try:
        os.removexattr(_fd_path(fd), _user_namespace(name))
    except OSError as exc:
        if exc.errno in _NOT_STORED:
            return False
        raise_for_oserror(exc)
    return True


def list_names(fd: int, prefix: str = "user.") -> list[str]:
    _user_namespace(prefix)
    try:
        names = _listxattr(_fd_path(fd))
    except OSError as exc:
        if exc.errno in _NOT_STORED:
            return []
        raise_for_oserror(exc)
    return [n for n in names if n.startswith(prefix)]


# --- chunked blobs ------------------------------------------------------------------------------------------


def _chunk_name(name: str, generation: int, index: int) -> str:
    return f"{name}.{generation}.{index}"


def _read_blob(path: str, name: str, follow: bool) -> bytes | None:
    for _attempt in range(_READ_RETRIES):
        head = _get(path, name, follow)
        if head is None:
            return None
        if len(head) < _BLOB_HEADER.size:
            raise BlobCorrupt(f"{name}: short header")
        magic, version, flags, generation, count, stored_len, crc = _BLOB_HEADER.unpack_from(head)
        if magic != _BLOB_MAGIC or version != _BLOB_VERSION or count == 0 or stored_len > 2 * MAX_BLOB_BYTES:
            raise BlobCorrupt(f"{name}: bad header")
        parts = [head[_BLOB_HEADER.size :]]
        for index in range(1, count):
            chunk = _get(path, _chunk_name(name, generation, index), follow)
            if chunk is None:
                break
            parts.append(chunk)
        stored = b"".join(parts)
        if len(stored) == stored_len and zlib.crc32(stored) == crc:
            if not flags & _FLAG_ZLIB:
                return stored
            inflater = zlib.decompressobj()
            data = inflater.decompress(stored, MAX_BLOB_BYTES + 1)
            if len(data) > MAX_BLOB_BYTES or not inflater.eof:
                raise BlobCorrupt(f"{name}: inflates beyond the limit")
            return data
        # A writer was between chunks and header: read again.
    raise BlobCorrupt(f"{name}: inconsistent after {_READ_RETRIES} reads")


def get_blob(fd: int, name: str) -> bytes | None:
    """The blob stored by set_blob() under `name`, None if there is none; raises BlobCorrupt."""
    return _read_blob(_fd_path(fd), name, True)


def get_blob_at(dir_fd: int, entry_name: str, name: str) -> bytes | None:
    return _read_blob(_entry_path(dir_fd, entry_name), name, False)


def _header_of(path: str, name: str) -> tuple[int, int] | None:
    """(generation, chunk count) of the blob currently stored, if it is readable at all."""
    head = _get(path, name, True)
    if head is None or len(head) < _BLOB_HEADER.size:
        return None
    magic, _version, _flags, generation, count, _len, _crc = _BLOB_HEADER.unpack_from(head)
    return (generation, count) if magic == _BLOB_MAGIC else None


def set_blob(fd: int, name: str, data: bytes | bytearray | memoryview) -> None:
    """Store `data` (at most MAX_BLOB_BYTES) under `name`; STATUS_DISK_FULL when the inode has no room."""
    raw = bytes(data)
    if len(raw) > MAX_BLOB_BYTES:
        raise ValueError("blob larger than MAX_BLOB_BYTES")
    flags = 0
    stored = raw
    if len(raw) > _COMPRESS_ABOVE:
        packed = zlib.compress(raw, 6)
        if len(packed) < len(raw):
            stored, flags = packed, _FLAG_ZLIB
    path = _fd_path(fd)
    previous = _header_of(path, name)
    generation = 1 - previous[0] if previous else 0
    crc = zlib.crc32(stored)

    # Common case: one xattr holds header and data.
    single = _BLOB_HEADER.pack(_BLOB_MAGIC, _BLOB_VERSION, flags, generation, 1, len(stored), crc) + stored
    try:
        _setxattr(path, name, single, 0)
    except OSError as exc:
        if exc.errno not in _NO_ROOM or len(stored) <= CHUNK_BYTES:
            raise_for_oserror(exc)
    else:
        _drop_chunks(path, name, previous)
        return

    chunks = [stored[i : i + CHUNK_BYTES] for i in range(0, len(stored), CHUNK_BYTES)]
    written: list[str] = []
    try:
        for index in range(1, len(chunks)):
            chunk_name = _chunk_name(name, generation, index)
            _setxattr(path, chunk_name, chunks[index], 0)
            written.append(chunk_name)
        head = _BLOB_HEADER.pack(_BLOB_MAGIC, _BLOB_VERSION, flags, generation, len(chunks), len(stored), crc)
        _setxattr(path, name, head + chunks[0], 0)
    except OSError as exc:
        # The old header still points at the old generation, which we did not touch.
        for chunk_name in written:
            _remove(path, chunk_name, True)
        raise_for_oserror(exc)
    _drop_chunks(path, name, previous)


def _drop_chunks(path: str, name: str, previous: tuple[int, int] | None) -> None:
    if previous is None:
        return
    generation, count = previous
    for index in range(1, count):
        _remove(path, _chunk_name(name, generation, index), True)


def remove_blob(fd: int, name: str) -> bool:
    """Remove a blob and its chunks; False when there was none."""
    path = _fd_path(fd)
    previous = _header_of(path, name)
    existed = _remove(path, name, True)
    _drop_chunks(path, name, previous)
    return existed
