"""DOS attributes and creation time of a share object, kept in our own xattr ([MS-FSCC] 2.6, 2.4.7).

Linux has no place for READONLY/HIDDEN/SYSTEM/ARCHIVE or a settable creation time, so they live in one small
xattr, `user.smbsrv.dos` (Samba's equivalent is `user.DOSATTRIB`, in an NDR format of its own; we do not
share it). Layout, little-endian, 16 bytes:

    version u16 (=1) | flags u16 | attributes u32 | creation_time u64 (NT FILETIME)

flags bit 0 (DOS_FLAG_CREATION_TIME) says creation_time is set. A reader ignores a value with another version
or length (treated as absent) so a later format can be introduced without breaking old servers.

DIRECTORY and NORMAL are never stored: DIRECTORY always comes from st_mode, NORMAL means "nothing else".

Without the xattr, creation time is min(st_mtime, st_ctime). Python 3.11's os.stat has no birth time on Linux
(st_birthtime is not filled there), and statx through ctypes would add a system call to every stat of a
listing; the derived value is at least stable across listings and QUERY_INFO. Files created over SMB get the
xattr, with their real creation time, at create time.

Only regular files and directories can carry user.* xattrs; `read_at` answers None for anything else without
a system call.
"""

import hashlib
import os
import stat
import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.fs import entry_xattr, xattr

# The attribute names are re-exported: callers speak of dos_attrs.FILE_ATTRIBUTE_* with the stored mask.
from smbsrv.fscc.attributes import (
    FILE_ATTRIBUTE_ARCHIVE,
    FILE_ATTRIBUTE_HIDDEN,
    FILE_ATTRIBUTE_NOT_CONTENT_INDEXED,
    FILE_ATTRIBUTE_OFFLINE,
    FILE_ATTRIBUTE_READONLY,
    FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS,
    FILE_ATTRIBUTE_REPARSE_POINT,
    FILE_ATTRIBUTE_SPARSE_FILE,
    FILE_ATTRIBUTE_SYSTEM,
    FILE_ATTRIBUTE_TEMPORARY,
)
from smbsrv.fscc.times import unix_ns_to_filetime
from smbsrv.wire.status import NtStatus

# What a client may set and we keep. REPARSE_POINT is kept for client-set reparse blobs (as Samba keeps it in
# user.DOSATTRIB), so a listing knows which files to read the tag of.
STORED_ATTRIBUTES_MASK = (
    FILE_ATTRIBUTE_READONLY
    | FILE_ATTRIBUTE_HIDDEN
    | FILE_ATTRIBUTE_SYSTEM
    | FILE_ATTRIBUTE_ARCHIVE
    | FILE_ATTRIBUTE_TEMPORARY
    | FILE_ATTRIBUTE_SPARSE_FILE
    | FILE_ATTRIBUTE_REPARSE_POINT
    | FILE_ATTRIBUTE_OFFLINE
    | FILE_ATTRIBUTE_NOT_CONTENT_INDEXED
    # Set by the server alone on placeholders (smbsrv/hsm), with OFFLINE: the listing's hint, the mark rules.
    | FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS
)

DOS_XATTR_NAME = "user.smbsrv.dos"
DOS_FLAG_CREATION_TIME = 0x0001
DOS_FLAG_CHANGE_TIME = 0x0002
_DOS_VERSION = 1
_DOS_STRUCT = struct.Struct("<HHIQ")
# Version 2 adds a ChangeTime a client set, with the anchor it holds for (see change_anchor).
_DOS_VERSION_2 = 2
_DOS_STRUCT_2 = struct.Struct("<HHIQQQ")
# mtime as unsigned 64 bits: a time past 2262 has more nanoseconds than an int64 holds (masked below; the
# bytes of every earlier time are what "<q" gave).
_ANCHOR = struct.Struct("<QqIIII")


@dataclass(frozen=True, slots=True)
class DosInfo:
    attributes: int
    creation_time: int  # NT FILETIME; 0 = not recorded
    change_time: int = 0  # NT FILETIME a client set with FileBasicInformation; 0 = the real ctime
    change_anchor: int = 0  # change_anchor() of the file when change_time was set

    def encode(self) -> bytes:
        flags = DOS_FLAG_CREATION_TIME if self.creation_time else 0
        attributes = self.attributes & STORED_ATTRIBUTES_MASK
        if not self.change_time:
            return _DOS_STRUCT.pack(_DOS_VERSION, flags, attributes, self.creation_time)
        return _DOS_STRUCT_2.pack(_DOS_VERSION_2, flags | DOS_FLAG_CHANGE_TIME, attributes, self.creation_time,
                                  self.change_time, self.change_anchor)

    @classmethod
    def decode(cls, value: bytes) -> "DosInfo | None":
        change_time = change_anchor = 0
        if len(value) == _DOS_STRUCT.size:
            version, flags, attributes, creation_time = _DOS_STRUCT.unpack(value)
            if version != _DOS_VERSION:
                return None
        elif len(value) == _DOS_STRUCT_2.size:
            version, flags, attributes, creation_time, change_time, change_anchor = _DOS_STRUCT_2.unpack(value)
            if version != _DOS_VERSION_2 or not flags & DOS_FLAG_CHANGE_TIME:
                return None
        else:
            return None
        if not flags & DOS_FLAG_CREATION_TIME:
            creation_time = 0
        return cls(attributes & STORED_ATTRIBUTES_MASK, creation_time, change_time, change_anchor)


def change_anchor(st: os.stat_result) -> int:
    """What a client-set ChangeTime is valid for. Linux's ctime cannot be set, and writing our xattr changes it,
    so the stored ChangeTime holds while the file's data and Unix metadata (mtime, size, mode, owner, links)
    are what they were when it was set; any later change shows the real ctime again, as Windows would move
    ChangeTime then."""
    packed = _ANCHOR.pack(st.st_mtime_ns & 0xFFFFFFFFFFFFFFFF, st.st_size, st.st_mode, st.st_uid, st.st_gid,
                          st.st_nlink)
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "little")


def change_time(dos: "DosInfo | None", st: os.stat_result) -> int:
    """ChangeTime (NT FILETIME) of an object: the client-set one while it holds, else the real ctime."""
    if dos is not None and dos.change_time and dos.change_anchor == change_anchor(st):
        return dos.change_time
    return unix_ns_to_filetime(st.st_ctime_ns)


def derived_creation_time(st: os.stat_result) -> int:
    """Creation time (NT FILETIME) for an object without our xattr: min(mtime, ctime)."""
    return unix_ns_to_filetime(min(st.st_mtime_ns, st.st_ctime_ns))


def _can_hold_xattrs(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)


# Decoded xattrs by (st_dev, st_ino), valid for the st_ctime_ns they were read at. Setting an xattr changes
# the inode's ctime, so an entry never answers for an object changed since (and our own writes drop it); a
# repeated listing of a large directory then costs one fstatat per entry instead of two system calls.
# Bounded: the cache is dropped whole when full. Limit: a change made behind the server's back (setfattr by a
# local user) within the same ctime tick as the server's last read is not seen until the inode changes again.
_cache: dict[tuple[int, int], "tuple[int, DosInfo | None]"] = {}
_CACHE_LIMIT = 65536


def _cached(st: os.stat_result) -> "tuple[int, DosInfo | None] | None":
    entry = _cache.get((st.st_dev, st.st_ino))
    if entry is not None and entry[0] == st.st_ctime_ns:
        return entry
    return None


def _remember(st: os.stat_result, info: "DosInfo | None") -> "DosInfo | None":
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[(st.st_dev, st.st_ino)] = (st.st_ctime_ns, info)
    return info


def read(fd: int, st: os.stat_result) -> DosInfo | None:
    """Our DOS xattr of the object behind `fd` (any fd; `st` is its stat), None when absent."""
    if not _can_hold_xattrs(st):
        return None
    entry = _cached(st)
    if entry is not None:
        return entry[1]
    value = xattr.get(fd, DOS_XATTR_NAME)
    return _remember(st, DosInfo.decode(value) if value is not None else None)


def read_at(dir_fd: int, name: str, st: os.stat_result) -> DosInfo | None:
    """Like read() for an entry of a directory fd, as a listing needs it (one lgetxattr, no open)."""
    if not _can_hold_xattrs(st):
        return None
    entry = _cached(st)
    if entry is not None:
        return entry[1]
    value = entry_xattr.get(dir_fd, name, DOS_XATTR_NAME)  # xattr.get_at, with getxattrat where it exists
    return _remember(st, DosInfo.decode(value) if value is not None else None)


def write(fd: int, info: DosInfo) -> None:
    """Store `info` on a regular file or directory (at create, and on SET_INFO FileBasicInformation)."""
    value = info.encode()
    xattr.set(fd, DOS_XATTR_NAME, value)
    # The cache keeps what was just written, for the ctime the write left: the reply of the CREATE or SET_INFO
    # that wrote it then reads no xattr. (Dropping the entry instead cost every create a getxattr.) A local
    # change between the setxattr and this fstat is the cache's limit above, in a window of microseconds.
    _remember(os.fstat(fd), DosInfo.decode(value))


def initialise(fd: int, attributes: int, st: os.stat_result) -> None:
    """Record the attributes and creation time of an object we just created (`st` is its fresh stat, so its
    ctime is the creation moment). A file system without user xattrs just keeps nothing."""
    if not _can_hold_xattrs(st):
        return
    try:
        write(fd, DosInfo(attributes, derived_creation_time(st)))
    except SmbError as exc:
        if exc.status != NtStatus.STATUS_NOT_SUPPORTED:
            raise


def set_attributes(fd: int, attributes: int, st: os.stat_result) -> None:
    """Replace the stored attributes (SET_INFO FileBasicInformation, overwrite dispositions), keeping the
    recorded creation time, or recording the derived one if there was none."""
    if not _can_hold_xattrs(st):
        return
    previous = read(fd, st)
    creation_time = previous.creation_time if previous is not None and previous.creation_time else 0
    write(fd, DosInfo(attributes, creation_time or derived_creation_time(st)))


def set_creation_time(fd: int, creation_time: int, st: os.stat_result) -> None:
    """Replace the recorded creation time (SET_INFO FileBasicInformation CreationTime), keeping attributes."""
    if not _can_hold_xattrs(st):
        return
    previous = read(fd, st)
    attributes = previous.attributes if previous is not None else _default_attributes(st)
    write(fd, DosInfo(attributes, creation_time))


def _default_attributes(st: os.stat_result) -> int:
    return FILE_ATTRIBUTE_ARCHIVE if stat.S_ISREG(st.st_mode) else 0


def is_read_only(parent_fd: int, name: str, st: os.stat_result) -> bool:
    """Whether the entry carries FILE_ATTRIBUTE_READONLY (DELETE_ON_CLOSE then fails with CANNOT_DELETE)."""
    info = read_at(parent_fd, name, st)
    return info is not None and bool(info.attributes & FILE_ATTRIBUTE_READONLY)
