"""Extended attributes (EAs) a client sets on a file or directory ([MS-FSCC] 2.4.15, [MS-FSA] 2.1.5.15.x).

The whole list lives in one xattr, `user.smbsrv.eas`, in FILE_FULL_EA_INFORMATION form: what a client sets is
what it reads back, byte for byte (WSL's $LXUID/$LXGID/$LXMOD/$LXDEV, OS/2-style EAs of Windows programs,
cifs.ko's user.* xattrs). Names compare case-insensitively, as NTFS does, and keep the case they were first
set with. Only regular files and directories carry user.* xattrs; other objects have no EAs.
"""

from __future__ import annotations

import errno
import os
import stat

from smbsrv.fs import xattr
from smbsrv.fscc.ea import EaEntry, decode_full_ea_list, encode_full_ea_list
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus

XATTR_NAME = "user.smbsrv.eas"
# [MS-FSCC] 2.4.15: EaName holds 8-bit ASCII without these ([MS-FSA] 2.1.5.15.x FileFullEaInformation).
_INVALID_NAME_BYTES = frozenset(b'"*+,/:;<=>?[\\]|') | frozenset(range(0x20))


def check_names(entries: list[EaEntry]) -> None:
    for entry in entries:
        if not entry.name or any(byte in _INVALID_NAME_BYTES or byte > 0x7F for byte in entry.name):
            raise SmbError(NtStatus.STATUS_INVALID_EA_NAME)


def read(fd: int, st: os.stat_result) -> list[EaEntry]:
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return []
    stored = xattr.get(fd, XATTR_NAME)
    return decode_full_ea_list(stored) if stored else []


def size(entries: list[EaEntry]) -> int:
    """FILE_EA_INFORMATION EaSize: the list's FILE_FULL_EA_INFORMATION size, each entry 4-byte aligned."""
    return sum((8 + len(entry.name) + 1 + len(entry.value) + 3) & ~3 for entry in entries)


def apply(fd: int, st: os.stat_result, updates: list[EaEntry]) -> None:
    """Set each EA of `updates`; an empty value removes that EA ([MS-FSA] 2.1.5.15.x)."""
    check_names(updates)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise SmbError(NtStatus.STATUS_EAS_NOT_SUPPORTED)
    entries = read(fd, st)
    for update in updates:
        folded = update.name.upper()
        kept = [entry for entry in entries if entry.name.upper() != folded]
        if update.value:
            existing = next((entry.name for entry in entries if entry.name.upper() == folded), update.name)
            kept.append(EaEntry(existing, update.value, update.flags & 0x80))
        entries = kept
    try:
        if entries:
            xattr.set(fd, XATTR_NAME, encode_full_ea_list(entries))
        else:
            xattr.remove(fd, XATTR_NAME)
    except SmbError as exc:
        # ext4 keeps all of an inode's xattrs in one 4 KiB block: a list that does not fit is too large.
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.E2BIG, errno.ERANGE):
            raise SmbError(NtStatus.STATUS_EA_TOO_LARGE) from None
        raise
