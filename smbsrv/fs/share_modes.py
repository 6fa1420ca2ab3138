"""Access masks and share modes across all opens of one file ([MS-FSA] 2.1.5.1.2, [MS-SMB2] 2.2.13.1)."""

from __future__ import annotations

import stat
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from smbsrv.errors import SmbError
from smbsrv.fs import posix_acl
from smbsrv.wire.constants import (
    DELETE,
    FILE_ALL_ACCESS,
    FILE_APPEND_DATA,
    FILE_DELETE_CHILD,
    FILE_EXECUTE,
    FILE_GENERIC_EXECUTE,
    FILE_GENERIC_READ,
    FILE_GENERIC_WRITE,
    FILE_READ_ATTRIBUTES,
    FILE_READ_DATA,
    FILE_SHARE_DELETE,
    FILE_SHARE_READ,
    FILE_SHARE_WRITE,
    FILE_WRITE_DATA,
    GENERIC_ALL,
    GENERIC_EXECUTE,
    GENERIC_READ,
    GENERIC_WRITE,
    MAXIMUM_ALLOWED,
    READ_CONTROL,
    WRITE_DAC,
)
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.protocol.objects import Open

# Bits outside every defined right: [MS-SMB2] 3.3.5.9 fails such requests.
_INVALID_ACCESS_BITS = 0x0CE0FE00
_READ_ONLY_MAXIMUM = FILE_GENERIC_READ | FILE_GENERIC_EXECUTE


def map_generic(desired: int) -> int:
    """Replace GENERIC_* bits with the file rights they stand for ([MS-SMB2] 2.2.13.1.1)."""
    if desired & _INVALID_ACCESS_BITS:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    mapped = desired & ~(GENERIC_ALL | GENERIC_EXECUTE | GENERIC_WRITE | GENERIC_READ)
    if desired & GENERIC_READ:
        mapped |= FILE_GENERIC_READ
    if desired & GENERIC_WRITE:
        mapped |= FILE_GENERIC_WRITE
    if desired & GENERIC_EXECUTE:
        mapped |= FILE_GENERIC_EXECUTE
    if desired & GENERIC_ALL:
        mapped |= FILE_ALL_ACCESS
    return mapped


def _rights_of_mode_bits(bits: int) -> int:
    """What one class of the mode (owner, group or other) grants, as Samba maps it to an NT ACE: rwx is full
    control, otherwise each bit its generic right (so DELETE_CHILD, WRITE_DAC and WRITE_OWNER come with rwx)."""
    if bits == 7:
        return FILE_ALL_ACCESS
    access = 0
    if bits & 4:
        access |= FILE_GENERIC_READ
    if bits & 2:
        access |= FILE_GENERIC_WRITE
    if bits & 1:
        access |= FILE_GENERIC_EXECUTE
    return access


def acl_can_matter(uid: int, owner: int) -> bool:
    """Whether a POSIX access ACL can change what maximal_access gives `uid` on a file of `owner`: the owner's
    entry is always the mode's owner bits and root passes anyway, so only other users cost the xattr read
    (docs/access.md)."""
    return uid not in (0, owner)


def maximal_access(st_mode: int, st_uid: int, st_gid: int, uid: int, gid: int, groups: Iterable[int],
                   *, read_only_share: bool, may_delete: bool = True,
                   acl: Sequence[posix_acl.Entry] | None = None) -> int:
    """The rights the Unix permissions give this user: what MAXIMUM_ALLOWED and MxAc report, and the bound for
    every requested right (docs/access.md).

    As Samba 4.17 with default settings: the ACL it synthesises from the mode (owner, group and everyone,
    chosen as the kernel chooses the class), plus the rights Windows gives an object's owner implicitly
    (READ_CONTROL, WRITE_DAC), FILE_READ_ATTRIBUTES to anyone who can reach the object, and DELETE where the
    directory lets this user remove the name (`may_delete`: write and search on it, and the sticky-bit rule).
    The kernel still enforces permissions at open(); this is the SMB view of the same bits.

    `acl`: the file's POSIX access ACL when it has one stored (fs/posix_acl.py); the class is then the entry
    the kernel's ACL check picks (owner, named user, owning and named groups, other), bounded by the mask."""
    if uid == 0:
        access = FILE_ALL_ACCESS
    else:
        if acl is not None:
            bits = posix_acl.permitted_bits(acl, st_uid, st_gid, uid, gid, groups)
        elif st_uid == uid:
            bits = (st_mode >> 6) & 7
        elif st_gid == gid or st_gid in groups:
            bits = (st_mode >> 3) & 7
        else:
            bits = st_mode & 7
        access = _rights_of_mode_bits(bits) | FILE_READ_ATTRIBUTES
        if stat.S_ISDIR(st_mode):
            if bits & 2:
                access |= FILE_DELETE_CHILD  # as Samba maps `w` of a directory (posix_acls.c): w is unlink(2)'s
        else:
            # A file's DELETE comes from its directory only (unlink(2) asks nothing of the file): rwx is
            # 0x1E01FF on a file, as Samba 4.17 maps it (docs/access.md). With it from rwx, a group member
            # or anyone on a 0777 file was granted DELETE in a directory they may not write.
            access &= ~DELETE
        if st_uid == uid:
            access |= READ_CONTROL | WRITE_DAC
        if may_delete:
            access |= DELETE
    if read_only_share:
        access &= _READ_ONLY_MAXIMUM
    return access


def resolve_desired_access(desired: int, maximum: int) -> int:
    """The access to grant: MAXIMUM_ALLOWED becomes everything the user may have; every other requested
    bit must be within the maximum, else STATUS_ACCESS_DENIED, also next to MAXIMUM_ALLOWED (as Samba checks
    the union against the ACL; smbtorture smb2.acls.MXAC-NOT-GRANTED)."""
    mapped = map_generic(desired)
    if mapped & ~maximum & ~(MAXIMUM_ALLOWED | 0x01000000):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if mapped & MAXIMUM_ALLOWED:
        return (mapped & ~MAXIMUM_ALLOWED) | maximum
    return mapped


def _uses(access: int, bits: int) -> bool:
    return access & bits != 0


def check_share_access(existing: Iterable[Open], access: int, share_access: int) -> None:
    """[MS-FSA] 2.1.5.1.2: a new open conflicts with any existing open whose sharing it does not fit, or whose
    access its own sharing does not allow. Opens for attributes only never conflict."""
    data_bits = FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_EXECUTE | DELETE
    if not access & data_bits:
        return
    for other in existing:
        other_access = other.granted_access
        if not other_access & data_bits:
            continue
        if (_uses(access, FILE_READ_DATA | FILE_EXECUTE) and not other.share_access & FILE_SHARE_READ
                or _uses(access, FILE_WRITE_DATA | FILE_APPEND_DATA) and not other.share_access & FILE_SHARE_WRITE
                or _uses(access, DELETE) and not other.share_access & FILE_SHARE_DELETE
                or _uses(other_access, FILE_READ_DATA | FILE_EXECUTE) and not share_access & FILE_SHARE_READ
                or _uses(other_access, FILE_WRITE_DATA | FILE_APPEND_DATA) and not share_access & FILE_SHARE_WRITE
                or _uses(other_access, DELETE) and not share_access & FILE_SHARE_DELETE):
            raise SmbError(NtStatus.STATUS_SHARING_VIOLATION)

