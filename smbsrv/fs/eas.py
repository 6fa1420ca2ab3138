"""Extended attributes (EAs) a client sets on a file or directory ([MS-FSCC] 2.4.15, [MS-FSA] 2.1.5.15.x).

The whole list lives in one xattr, `user.smbsrv.eas`, in FILE_FULL_EA_INFORMATION form: what a client sets is
what it reads back, byte for byte (WSL's $LXUID/$LXGID/$LXMOD/$LXDEV, OS/2-style EAs of Windows programs,
cifs.ko's user.* xattrs). Names compare case-insensitively, as NTFS does, and keep the case they were first
set with. Only regular files and directories carry user.* xattrs; other objects have no EAs.
"""

from __future__ import annotations

import errno
import os
import re
import stat

from smbsrv.errors import SmbError
from smbsrv.fs import xattr
from smbsrv.fscc.ea import FILE_NEED_EA, MAX_EA_LIST_SIZE, EaEntry, decode_full_ea_list, encode_full_ea_list
from smbsrv.wire.status import NtStatus

XATTR_NAME = "user.smbsrv.eas"
# [MS-FSA] 2.1.5.15.5: a file's EA list (ExtendedAttributesLength) may not grow past 64 KiB - 5 bytes; Windows
# answers STATUS_EA_TOO_LARGE. It also bounds the work of every request that reads or rewrites the list.
MAX_LIST_SIZE = MAX_EA_LIST_SIZE
# [MS-FSCC] 2.4.15: EaName holds 7-bit ASCII without control characters and these ([MS-FSA] 2.1.5.15.5).
_INVALID_NAME_BYTE = re.compile(rb'[\x00-\x1f"*+,/:;<=>?\[\\\]|\x80-\xff]')


def check_names(entries: list[EaEntry]) -> None:
    search = _INVALID_NAME_BYTE.search
    for entry in entries:
        if not entry.name or search(entry.name):
            raise SmbError(NtStatus.STATUS_INVALID_EA_NAME)


def read(fd: int, st: os.stat_result) -> list[EaEntry]:
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return []
    stored = xattr.get(fd, XATTR_NAME)
    return decode_full_ea_list(stored) if stored else []


# EaSize by (st_dev, st_ino), valid for the st_ctime_ns it was read at: FileAllInformation, what every stat of
# a Linux client asks for, then costs no getxattr on a file unchanged since. The rule and its limit are those of
# dos_attrs' cache: setting an xattr changes the inode's ctime, apply() drops the entry itself (a change within
# one coarse ctime tick of the last read), and a local setfattr within that tick is not seen until the inode
# changes again. Bounded: dropped whole when full.
_size_cache: dict[tuple[int, int], tuple[int, int]] = {}
_SIZE_CACHE_LIMIT = 65536


def cached_size(fd: int, st: os.stat_result) -> int:
    """size(read(fd, st)), from the cache while the object's ctime has not moved."""
    key = (st.st_dev, st.st_ino)
    entry = _size_cache.get(key)
    if entry is not None and entry[0] == st.st_ctime_ns:
        return entry[1]
    result = size(read(fd, st))
    if len(_size_cache) >= _SIZE_CACHE_LIMIT:
        _size_cache.clear()
    _size_cache[key] = (st.st_ctime_ns, result)
    return result


def entry_size(entry: EaEntry) -> int:
    """What one EA adds to the list: its FILE_FULL_EA_INFORMATION entry, 4-byte aligned."""
    return (8 + len(entry.name) + 1 + len(entry.value) + 3) & ~3


def size(entries: list[EaEntry]) -> int:
    """FILE_EA_INFORMATION EaSize: the list's FILE_FULL_EA_INFORMATION size, each entry 4-byte aligned."""
    return sum(entry_size(entry) for entry in entries)


def apply(fd: int, st: os.stat_result, updates: list[EaEntry]) -> None:
    """Set each EA of `updates` in order; an empty value removes that EA ([MS-FSA] 2.1.5.15.5).

    The work is linear in the stored list plus the request (one dict keyed by the case-folded name, whose order
    is the list's: an EA set again moves to the end, as its removal and re-adding in the spec does). The list
    is refused with STATUS_EA_TOO_LARGE as soon as it would pass MAX_LIST_SIZE, and nothing is stored then."""
    check_names(updates)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise SmbError(NtStatus.STATUS_EAS_NOT_SUPPORTED)
    entries = {entry.name.upper(): entry for entry in read(fd, st)}
    total = sum(entry_size(entry) for entry in entries.values())
    for update in updates:
        folded = update.name.upper()
        previous = entries.pop(folded, None)
        if previous is not None:
            total -= entry_size(previous)
        if update.value:
            entry = EaEntry(previous.name if previous is not None else update.name, update.value,
                            update.flags & FILE_NEED_EA)
            entries[folded] = entry
            total += entry_size(entry)
            if total > MAX_LIST_SIZE:
                raise SmbError(NtStatus.STATUS_EA_TOO_LARGE)
    try:
        if entries:
            xattr.set(fd, XATTR_NAME, encode_full_ea_list(entries.values()))
        else:
            xattr.remove(fd, XATTR_NAME)
    except SmbError as exc:
        # ext4 keeps all of an inode's xattrs in one 4 KiB block: a list that does not fit is too large.
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.E2BIG, errno.ERANGE):
            raise SmbError(NtStatus.STATUS_EA_TOO_LARGE) from None
        raise
    finally:
        _size_cache.pop((st.st_dev, st.st_ino), None)
