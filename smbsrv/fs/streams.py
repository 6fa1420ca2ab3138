"""Named streams ([MS-FSCC] 2.1.4 "name:stream:$DATA") kept in xattrs, as Samba's vfs_streams_xattr keeps them.

A stream of a file or directory is the xattr `user.DosStream.<name>:$DATA` of that object: its value is the
stream's data plus one trailing 0 byte (a zero-length stream must still store a value). The layout is Samba's on
purpose: a share moved between Samba (with `vfs objects = streams_xattr`) and smbsrv keeps its streams, and either
server reads what the other wrote.

Limits come from the file system, as for Samba: Linux caps one xattr value at 64 KiB (XATTR_SIZE_MAX), so a
stream holds at most 65,535 bytes, and a write, truncate or allocation beyond that is
STATUS_FILE_SYSTEM_LIMITATION before anything changes (Samba 4.17's answer, from its EOVERFLOW; ReFS gives the
same status for what it cannot hold). ext4 without the ea_inode feature keeps all xattrs of an inode in one 4 KiB
block, shared with the DOS attributes, so there streams are a few KB in all: a write the file system has no room
for is STATUS_DISK_FULL and leaves the stream as it was. Windows clients keep small streams (Zone.Identifier, macOS
Finder's AFP_AfpInfo, thumbnails); larger ones need XFS, btrfs or tmpfs.

Stream names compare case-insensitively, as on NTFS, and keep the case they were created with. Every value is
read and written whole: a stream is small, and one setxattr replaces it atomically, so a reader never sees half
of a write. Callers serialise writers (all stream I/O runs on the event loop's thread). Writes and removals
run with the caller's own permission check (fs/xattr.py set_as_caller): a stream is the file's data, and only a
user who may write the file may change it, whatever the SMB layer granted.
"""

from __future__ import annotations

import errno

from smbsrv.errors import SmbError
from smbsrv.fs import xattr
from smbsrv.fs.errno_map import status_for_errno
from smbsrv.fs.name_index import fold
from smbsrv.wire.status import NtStatus

PREFIX = "user.DosStream."
SUFFIX = ":$DATA"
# XATTR_SIZE_MAX (64 KiB) less the trailing byte.
MAX_STREAM_BYTES = 65536 - 1
# ENOSPC and E2BIG from setxattr: the file system's limit for the object's xattrs.
_NO_ROOM = (status_for_errno(errno.ENOSPC), status_for_errno(errno.E2BIG))


def xattr_name(stream: str) -> str:
    return PREFIX + stream + SUFFIX


def storable(stream: str) -> bool:
    """Whether the stream's xattr name fits Linux's XATTR_NAME_MAX (255 bytes, prefix and suffix included): a
    name of at most 234 UTF-8 bytes. Windows takes 255 characters; Samba cannot store longer names either."""
    return len(xattr_name(stream).encode("utf-8")) <= 255


def stream_of(name: str) -> str | None:
    """The stream an xattr name stores, None for any other xattr."""
    if name.startswith(PREFIX) and name.endswith(SUFFIX) and len(name) > len(PREFIX) + len(SUFFIX):
        return name[len(PREFIX):-len(SUFFIX)]
    return None


def names(fd: int) -> list[str]:
    """The streams of the object behind `fd` (any fd, O_PATH included), in the order the file system lists
    them."""
    found = []
    for name in xattr.list_names(fd, PREFIX):
        stream = stream_of(name)
        if stream is not None:
            found.append(stream)
    return found


def find(fd: int, stream: str) -> str | None:
    """The stream of `fd` that `stream` names in any case, as it is stored; None when there is none."""
    present = names(fd)
    if stream in present:  # the exact spelling first: a share from Samba may hold "t" and "T" both
        return stream
    wanted = fold(stream)
    for existing in present:
        if fold(existing) == wanted:
            return existing
    return None


def read(fd: int, stream: str) -> bytes:
    """The whole data of an existing stream (b"" when it has vanished meanwhile: a delete by another name)."""
    value = xattr.get(fd, xattr_name(stream))
    return value[:-1] if value else b""


def listing(fd: int) -> list[tuple[str, int]]:
    """(name, size) of every stream of `fd`, for FileStreamInformation, read with the caller's own permissions:
    a user who may not read the file sees none of its streams (Samba 4.17 lists only "::$DATA" then)."""
    found = []
    for stream in names(fd):
        try:
            value = xattr.get_as_caller(fd, xattr_name(stream))
        except SmbError as exc:
            if exc.status == NtStatus.STATUS_ACCESS_DENIED:
                return []
            raise
        if value is not None:
            found.append((stream, max(0, len(value) - 1)))
    return found


def check_size(size: int) -> None:
    """A stream cannot grow to `size` bytes: STATUS_FILE_SYSTEM_LIMITATION."""
    if size > MAX_STREAM_BYTES:
        raise SmbError(NtStatus.STATUS_FILE_SYSTEM_LIMITATION)


def write(fd: int, stream: str, data: bytes | bytearray | memoryview) -> None:
    """Replace the stream's data (creating the stream). More than the file system takes: STATUS_DISK_FULL,
    nothing changed."""
    check_size(len(data))
    try:
        xattr.set_as_caller(fd, xattr_name(stream), bytes(data) + b"\0")
    except SmbError as exc:
        if exc.status in _NO_ROOM:
            raise SmbError(NtStatus.STATUS_DISK_FULL) from None
        raise


def write_at(fd: int, stream: str, data: bytes | bytearray | memoryview, offset: int) -> int:
    """`data` at `offset` of the stream, a gap before it filled with zeros; returns len(data)."""
    check_size(offset + len(data))
    current = read(fd, stream)
    if offset > len(current):
        current += bytes(offset - len(current))
    write(fd, stream, current[:offset] + bytes(data) + current[offset + len(data):])
    return len(data)


def truncate(fd: int, stream: str, length: int) -> None:
    """Cut the stream to `length` bytes or extend it with zeros."""
    check_size(length)
    current = read(fd, stream)
    if len(current) != length:
        write(fd, stream, current[:length] + bytes(max(0, length - len(current))))


def remove(fd: int, stream: str) -> bool:
    """Delete the stream; False when it was not there."""
    return xattr.remove_as_caller(fd, xattr_name(stream))


def rename(fd: int, stream: str, new_name: str) -> None:
    """Give the stream the name `new_name` (which the caller found free, or is replacing): the data is stored
    under the new name first, so a failure leaves the stream where it was."""
    write(fd, new_name, read(fd, stream))
    if new_name != stream:
        remove(fd, stream)


def remove_all(fd: int) -> None:
    """Delete every stream (an overwrite of the file replaces its streams, [MS-FSA] 2.1.5.1.2.1)."""
    for stream in names(fd):
        remove(fd, stream)


def allocation_of(size: int) -> int:
    """The AllocationSize a handle of a stream of `size` bytes shows: whole 4 KiB blocks, as for a file.
    (FileStreamInformation gives the size itself, as Samba's streams_xattr does.)"""
    return -(-size // 4096) * 4096
