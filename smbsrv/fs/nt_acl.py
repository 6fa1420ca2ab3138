"""NT DACLs <-> POSIX ACLs, the mapping Samba 4.17 makes with default settings (no acl_xattr module).

Samba keeps no NT ACL of its own there: a SET_INFO DACL becomes the file's POSIX access ACL (and, on a
directory, its default ACL), and QUERY_INFO builds the DACL back from the POSIX ACL and the mode. The facts
below are Samba's (source3/smbd/posix_acls.c); docs/access.md says what differs.

SIDs: S-1-22-1-<uid> and S-1-22-2-<gid> (the SIDs QUERY_INFO already names owner and group with), Everyone
(S-1-1-0) is the "other" entry, CREATOR OWNER / CREATOR GROUP (S-1-3-0, S-1-3-1) the owner and owning-group
entries of a default ACL. BUILTIN and NT AUTHORITY SIDs (S-1-5-32-x, S-1-5-x) are ignored; any other SID cannot
be mapped and refuses the whole DACL with STATUS_ACCESS_DENIED, as Samba does.

Rights: read is any of GENERIC_READ, READ_DATA, READ_EA; write any of GENERIC_WRITE, WRITE_DATA, APPEND_DATA,
WRITE_EA; execute GENERIC_EXECUTE or EXECUTE; GENERIC_ALL is rwx. Back: rwx is full control, otherwise each
bit its generic right (and DELETE_CHILD with w on a directory); a file's rwx is full control less DELETE.
"""

from __future__ import annotations

import os
import pwd
import stat as stat_module
from dataclasses import dataclass, replace

from smbsrv.errors import SmbError
from smbsrv.fs import backend, posix_acl
from smbsrv.fs.errno_map import raise_for_oserror
from smbsrv.fs.posix_acl import GROUP, GROUP_OBJ, MASK, OTHER, USER, USER_OBJ, Entry
from smbsrv.fscc.security import (
    ACCESS_ALLOWED_ACE_TYPE,
    ACCESS_DENIED_ACE_TYPE,
    CONTAINER_INHERIT_ACE,
    DACL_SECURITY_INFORMATION,
    FILE_ALL_ACCESS,
    FILE_GENERIC_EXECUTE,
    FILE_GENERIC_READ,
    FILE_GENERIC_WRITE,
    GROUP_SECURITY_INFORMATION,
    INHERIT_ONLY_ACE,
    INHERITED_ACE,
    OBJECT_INHERIT_ACE,
    OWNER_SECURITY_INFORMATION,
    SE_DACL_PRESENT,
    SID_EVERYONE,
    UNIX_GROUP,
    UNIX_USER,
    Ace,
    Acl,
    SecurityDescriptor,
    Sid,
    posix_mode_from_dacl,
    unix_group_sid,
    unix_id_of,
    unix_user_sid,
)
from smbsrv.wire.constants import (
    DELETE,
    FILE_APPEND_DATA,
    FILE_DELETE_CHILD,
    FILE_EXECUTE,
    FILE_READ_DATA,
    FILE_READ_EA,
    FILE_WRITE_DATA,
    FILE_WRITE_EA,
)
from smbsrv.wire.status import NtStatus

SID_CREATOR_OWNER = Sid(3, (0,))
SID_CREATOR_GROUP = Sid(3, (1,))

# [MS-DTYP] 2.4.3 generic rights
_GENERIC_ALL = 0x10000000
_GENERIC_EXECUTE = 0x20000000
_GENERIC_WRITE = 0x40000000
_GENERIC_READ = 0x80000000
_INHERIT_BOTH = OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE

_UID, _GID, _WORLD = "uid", "gid", "world"


@dataclass(slots=True)
class _Canon:
    """One ACE on its way to a POSIX entry (Samba's canon_ace): the POSIX tag and id, rwx, allow or deny."""

    tag: int
    kind: str  # _UID, _GID or _WORLD: what the id means, as entries of different tags may name one id
    qualifier: int
    perm: int
    allow: bool
    sid: Sid
    flags: int = 0


def rwx_of_mask(mask: int) -> int:
    """Samba's map_nt_perms: the rwx bits an ACE's access mask stands for."""
    if mask & _GENERIC_ALL:
        return 7
    bits = 0
    if mask & (_GENERIC_READ | FILE_READ_DATA | FILE_READ_EA):
        bits |= 4
    if mask & (_GENERIC_WRITE | FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_WRITE_EA):
        bits |= 2
    if mask & (_GENERIC_EXECUTE | FILE_EXECUTE):
        bits |= 1
    return bits


def mask_of_rwx(bits: int, is_directory: bool) -> int:
    """Samba's map_canon_ace_perms with "acl map full control" (its default): rwx is full control, on a file
    less DELETE (which comes from the directory there)."""
    if bits & 7 == 7:
        return FILE_ALL_ACCESS if is_directory else FILE_ALL_ACCESS & ~DELETE
    mask = 0
    if bits & 4:
        mask |= FILE_GENERIC_READ
    if bits & 2:
        mask |= FILE_GENERIC_WRITE | (FILE_DELETE_CHILD if is_directory else 0)
    if bits & 1:
        mask |= FILE_GENERIC_EXECUTE
    return mask


def _non_mappable(sid: Sid) -> bool:
    """BUILTIN\\x and NT AUTHORITY\\x (Samba's non_mappable_sid): left out of the POSIX ACL silently."""
    subs = sid.sub_authority
    return sid.identifier_authority == 5 and (len(subs) == 1 or len(subs) == 2 and subs[0] == 32)


def _canon_of(sid: Sid, st: os.stat_result, perm: int, allow: bool, flags: int) -> _Canon | None:
    if sid == SID_EVERYONE:
        return _Canon(OTHER, _WORLD, -1, perm, allow, sid, flags)
    if sid == SID_CREATOR_OWNER:  # inheritable only, whatever the flags say
        return _Canon(USER_OBJ, _UID, st.st_uid, perm, allow, sid, flags | INHERIT_ONLY_ACE)
    if sid == SID_CREATOR_GROUP:
        return _Canon(GROUP_OBJ, _GID, st.st_gid, perm, allow, sid, flags | INHERIT_ONLY_ACE)
    unix = unix_id_of(sid)
    if unix is not None:
        kind, id_ = unix
        if kind == UNIX_USER:
            return _Canon(USER_OBJ if id_ == st.st_uid else USER, _UID, id_, perm, allow, sid, flags)
        return _Canon(GROUP_OBJ if id_ == st.st_gid else GROUP, _GID, id_, perm, allow, sid, flags)
    if _non_mappable(sid):
        return None
    raise SmbError(NtStatus.STATUS_ACCESS_DENIED)


def _split(dacl: Acl, st: os.stat_result, is_directory: bool) -> tuple[list[_Canon], list[_Canon]] | None:
    """Samba's create_canon_ace_lists: the ACEs for the file's own ACL and those for a directory's default
    ACL (only ACEs inherited by both files and directories can be expressed there). None: nothing to set."""
    file_list: list[_Canon] = []
    dir_list: list[_Canon] = []
    all_inherit_only = is_directory
    for ace in dacl.aces:
        if ace.ace_type not in (ACCESS_ALLOWED_ACE_TYPE, ACCESS_DENIED_ACE_TYPE) or ace.sid is None:
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    for ace in dacl.aces:
        assert ace.sid is not None
        canon = _canon_of(ace.sid, st, rwx_of_mask(ace.mask), ace.ace_type == ACCESS_ALLOWED_ACE_TYPE,
                          ace.ace_flags)
        if canon is None:
            continue
        if is_directory and canon.flags & _INHERIT_BOTH == _INHERIT_BOTH:
            inherited = replace(canon)
            # In a default ACL only CREATOR OWNER / CREATOR GROUP are the owner and owning-group entries.
            if inherited.kind == _UID:
                inherited.tag = USER_OBJ if ace.sid == SID_CREATOR_OWNER else USER
            elif inherited.kind == _GID:
                inherited.tag = GROUP_OBJ if ace.sid == SID_CREATOR_GROUP else GROUP
            _append_ordered(dir_list, inherited)
        if not canon.flags & INHERIT_ONLY_ACE:
            _append_ordered(file_list, canon)
            all_inherit_only = False
    if all_inherit_only or not file_list and not dir_list:
        # A DACL of inheritable entries only on a directory (Windows 2000 traversing a tree) changes nothing.
        return None
    return file_list, dir_list


def _append_ordered(entries: list[_Canon], canon: _Canon) -> None:
    # POSIX has no order: a deny after an allow cannot be expressed, and Samba refuses the DACL.
    if not canon.allow and any(e.allow for e in entries):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    entries.append(canon)


def _merge(entries: list[_Canon], default_acl: bool) -> list[_Canon]:
    """Samba's merge_aces: one entry per id and allow/deny, then a deny masks the allow of the same id."""
    merged: list[_Canon] = []
    for canon in entries:
        for seen in merged:
            if (seen.kind, seen.qualifier, seen.allow) == (canon.kind, canon.qualifier, canon.allow) and (
                    not default_acl or seen.tag == canon.tag):
                seen.perm |= canon.perm
                seen.flags |= canon.flags
                break
        else:
            merged.append(replace(canon))
    result = list(merged)
    for deny in merged:
        if deny.allow or deny not in result:
            continue
        for allow in result[result.index(deny) + 1:]:
            if allow.allow and (allow.kind, allow.qualifier) == (deny.kind, deny.qualifier):
                allow.perm &= ~deny.perm
                result.remove(allow if not allow.perm else deny)
                break
    return result


def _user_in_group(uid: int, gid: int) -> bool:
    try:
        user = pwd.getpwuid(uid)
        return user.pw_gid == gid or gid in os.getgrouplist(user.pw_name, user.pw_gid)
    except (KeyError, OSError):
        return False


def _apply_denies(entries: list[_Canon]) -> list[_Canon]:
    """Samba's process_deny_list: POSIX has no deny entries, so each deny becomes less allowed."""
    result: list[_Canon] = []
    for index, canon in enumerate(entries):
        if canon.allow:
            result.append(canon)
            continue
        later = [e for e in entries[index + 1:] if e.allow]
        if canon.perm == 0:
            continue
        if canon.kind == _WORLD:
            if canon.perm == 7:
                break  # deny everything to everyone: nothing after it counts
            for allow in later:
                allow.perm &= ~canon.perm
        elif canon.kind == _UID:
            # The user keeps what its groups and everyone allow it, less what is denied.
            granted = 0
            if canon.perm != 7:
                for allow in later:
                    if allow.kind == _WORLD or allow.kind == _GID and _user_in_group(canon.qualifier,
                                                                                      allow.qualifier):
                        granted |= allow.perm
            result.append(replace(canon, allow=True, perm=granted & ~canon.perm))
        else:
            everyone = 0
            for allow in later:
                if allow.kind == _WORLD:
                    everyone = allow.perm
                elif allow.kind == _UID and _user_in_group(allow.qualifier, canon.qualifier):
                    allow.perm &= ~canon.perm
            result.append(replace(canon, allow=True, perm=everyone & ~canon.perm))
    # The converted denies go last, as Samba demotes them; a user or group named twice keeps the first.
    allows = [e for e in result if e.allow]
    return allows


def _complete(entries: list[_Canon], st: os.stat_result, is_directory: bool) -> list[_Canon]:
    """Samba's ensure_canon_entry_valid_on_set: owner, owning group and other entries always present (the
    owner keeps at least read, rwx on a directory), and the owner and owning group named again as a user and
    a group entry, so a later chown or chgrp cannot take their access away."""
    minimal_owner = 7 if is_directory else 4
    for canon in entries:
        canon.perm &= 7
        if canon.tag == USER_OBJ:
            canon.perm |= minimal_owner
    user = next((e for e in entries if e.tag == USER_OBJ), None)
    group = next((e for e in entries if e.tag == GROUP_OBJ), None)
    other = next((e for e in entries if e.tag == OTHER), None)
    if user is None:
        perm = (st.st_mode >> 6) & 7  # least surprise: what the owner had
        for e in entries:
            if e.tag == USER and e.qualifier == st.st_uid or e.tag in (GROUP_OBJ, GROUP) and _user_in_group(
                    st.st_uid, e.qualifier if e.tag == GROUP else st.st_gid):
                perm |= e.perm
        if perm == 0 and other is not None:
            perm = other.perm
        user = _Canon(USER_OBJ, _UID, st.st_uid, perm | minimal_owner, True, unix_user_sid(st.st_uid))
        entries.insert(0, user)
    if group is None:
        group = _Canon(GROUP_OBJ, _GID, st.st_gid, other.perm if other is not None else 0, True,
                       unix_group_sid(st.st_gid))
        entries.insert(0, group)
    if other is None:
        entries.insert(0, _Canon(OTHER, _WORLD, -1, 0, True, SID_EVERYONE))
    has_user = any(e.tag == USER and e.qualifier == user.qualifier for e in entries)
    has_group = any(e.tag == GROUP and e.qualifier == group.qualifier for e in entries)
    if not has_user:
        entries.insert(0, replace(user, tag=USER))
    if not has_group:
        entries.insert(0, replace(group, tag=GROUP))
    return entries


def _entries(canons: list[_Canon]) -> tuple[Entry, ...]:
    entries: dict[tuple[int, int], Entry] = {}
    for canon in canons:
        key = (canon.tag, canon.qualifier if canon.tag in (USER, GROUP) else -1)
        previous = entries.get(key)
        perm = canon.perm | (previous.perm if previous else 0)
        entries[key] = Entry(canon.tag, perm, canon.qualifier if canon.tag in (USER, GROUP) else
                             posix_acl.UNDEFINED_ID)
    if any(tag in (USER, GROUP) for tag, _ in entries):
        entries[(MASK, -1)] = Entry(MASK, 7)  # Samba's mask takes nothing away
    return tuple(entries.values())


@dataclass(frozen=True, slots=True)
class PosixAcls:
    """What a DACL becomes: the access ACL, and for a directory its default ACL (None: remove it)."""

    access: tuple[Entry, ...]
    default: tuple[Entry, ...] | None


def posix_from_dacl(dacl: Acl, st: os.stat_result) -> PosixAcls | None:
    """The POSIX ACLs for a DACL set on the file `st` describes; None when the DACL changes nothing.
    Raises STATUS_ACCESS_DENIED for what Samba refuses (unmappable SIDs, ACE types other than allow and
    deny, a deny after an allow)."""
    is_directory = stat_module.S_ISDIR(st.st_mode)
    lists = _split(dacl, st, is_directory)
    if lists is None:
        return None
    file_list, dir_list = lists
    access = _complete(_apply_denies(_merge(file_list, False)), st, is_directory)
    default = None
    if dir_list:
        default = _entries(_complete(_apply_denies(_merge(dir_list, True)), st, is_directory))
    return PosixAcls(_entries(access), default)


def null_dacl(st: os.stat_result) -> Acl:
    """A NULL DACL cannot be POSIX; Samba sets owner, group and Everyone to full access instead."""
    return Acl((Ace(ACCESS_ALLOWED_ACE_TYPE, 0, _GENERIC_ALL, unix_user_sid(st.st_uid)),
                Ace(ACCESS_ALLOWED_ACE_TYPE, 0, _GENERIC_ALL, unix_group_sid(st.st_gid)),
                Ace(ACCESS_ALLOWED_ACE_TYPE, 0, _GENERIC_ALL, SID_EVERYONE)))


# -- QUERY_INFO: the DACL of a POSIX ACL ---------------------------------------------------------------------

def _canonicalise(entries: tuple[Entry, ...], st: os.stat_result, owner: Sid, group: Sid) -> list[_Canon]:
    """Samba's canonicalise_acl, in its order: entries reversed (it prepends), the mask applied to all but
    owner and other, entries left with nothing moved to the front, then the owner first and other last."""
    mask = 7
    canons: list[_Canon] = []
    for e in entries:
        if e.tag == MASK:
            mask = e.perm
            continue
        if e.tag == USER_OBJ:
            canon = _Canon(USER_OBJ, _UID, st.st_uid, e.perm, True, owner)
        elif e.tag == USER:
            canon = _Canon(USER, _UID, e.qualifier, e.perm, True, unix_user_sid(e.qualifier))
        elif e.tag == GROUP_OBJ:
            canon = _Canon(GROUP_OBJ, _GID, st.st_gid, e.perm, True, group)
        elif e.tag == GROUP:
            canon = _Canon(GROUP, _GID, e.qualifier, e.perm, True, unix_group_sid(e.qualifier))
        else:
            canon = _Canon(OTHER, _WORLD, -1, e.perm, True, SID_EVERYONE)
        canons.insert(0, canon)
    for tag, shift in ((USER_OBJ, 6), (GROUP_OBJ, 3), (OTHER, 0)):
        if not any(c.tag == tag for c in canons):
            sid = owner if tag == USER_OBJ else group if tag == GROUP_OBJ else SID_EVERYONE
            canons.insert(0, _Canon(tag, _WORLD, -1, (st.st_mode >> shift) & 7, True, sid))
    for canon in list(canons):
        if canon.tag not in (OTHER, USER_OBJ):
            canon.perm &= mask
        if canon.perm == 0:
            canons.remove(canon)
            canons.insert(0, canon)
    owner_entry = next(c for c in canons if c.tag == USER_OBJ)
    other_entry = next(c for c in canons if c.tag == OTHER)
    canons.remove(owner_entry)
    canons.remove(other_entry)
    return [owner_entry, *canons, other_entry]


def dacl_from_posix(st: os.stat_result, access: tuple[Entry, ...] | None,
                    default: tuple[Entry, ...] | None) -> Acl:
    """The DACL QUERY_INFO reports: the access ACL (the mode's when none is stored), and on a directory its
    default ACL as inherit-only ACEs (CREATOR OWNER / CREATOR GROUP for the owner and owning group), an ACE
    in both with the same SID and rights shown once with the inheritance flags (Samba's merge_default_aces)."""
    is_directory = stat_module.S_ISDIR(st.st_mode)
    if access is None:
        access = posix_acl.from_mode(st.st_mode)
    aces = [Ace(ACCESS_ALLOWED_ACE_TYPE, 0, mask_of_rwx(c.perm, is_directory), c.sid)
            for c in _canonicalise(access, st, unix_user_sid(st.st_uid), unix_group_sid(st.st_gid))]
    if is_directory and default is not None:
        for c in _canonicalise(default, st, SID_CREATOR_OWNER, SID_CREATOR_GROUP):
            mask = mask_of_rwx(c.perm, True)
            for index, ace in enumerate(aces):
                if ace.sid == c.sid and ace.mask == mask and not ace.ace_flags & INHERIT_ONLY_ACE:
                    aces[index] = Ace(ACCESS_ALLOWED_ACE_TYPE, ace.ace_flags | _INHERIT_BOTH, mask, c.sid)
                    break
            else:
                aces.append(Ace(ACCESS_ALLOWED_ACE_TYPE, _INHERIT_BOTH | INHERIT_ONLY_ACE, mask, c.sid))
    # Canonical order (deny first, then what applies to the object itself, then inheritable ones); all allow.
    aces.sort(key=lambda a: (bool(a.ace_flags & INHERITED_ACE), bool(a.ace_flags & INHERIT_ONLY_ACE),
                             not a.ace_flags & _INHERIT_BOTH))
    return Acl(tuple(aces))



# -- on the file ---------------------------------------------------------------------------------------------

def apply_descriptor(fd: int, descriptor: SecurityDescriptor, parts: int) -> None:
    """Keep the `parts` (OWNER/GROUP/DACL_SECURITY_INFORMATION) of a client's descriptor on the file open as
    `fd`, as the client: SET_INFO's security information and the SD context of a CREATE ([MS-SMB2] 3.3.5.9.2).
    The caller has checked WRITE_OWNER/WRITE_DAC where they apply."""
    # Ownership first, as Samba: a DACL's CREATOR OWNER entries are the new owner's.
    if parts & (OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION):
        backend.fchown(fd, _owner_id(descriptor.owner if parts & OWNER_SECURITY_INFORMATION else None, UNIX_USER),
                       _owner_id(descriptor.group if parts & GROUP_SECURITY_INFORMATION else None, UNIX_GROUP))
    if parts & DACL_SECURITY_INFORMATION and descriptor.control & SE_DACL_PRESENT:
        mode = posix_mode_from_dacl(descriptor)
        if mode is None:
            set_dacl(fd, backend.fstat(fd), descriptor.dacl)  # any other DACL becomes the POSIX ACL (docs/access.md)
        else:
            backend.fchmod(fd, mode & _chmod_bits(backend.fstat(fd)))


def _chmod_bits(st: os.stat_result) -> int:
    """The bits a POSIX chmod (the S-1-5-88-3 ACE) may set: the permissions and the sticky bit, and on a
    directory setgid too (its new entries take its group), as chmod(2) sets them for the owner; the kernel
    still clears setgid for a caller outside the group. Never setuid, nor setgid on a file: a client does not
    plant set-id programs on the server. (Samba keeps the 0777 bits only, protocol-notes 11.4.)"""
    if stat_module.S_ISDIR(st.st_mode):
        return 0o3777
    return 0o1777


def _owner_id(sid: Sid | None, kind: int) -> int | None:
    """The uid (UNIX_USER) or gid (UNIX_GROUP) an owner or group SID names; None: no change asked. Any other
    SID names nothing on this server ([MS-DTYP] owners outside S-1-22): INVALID_OWNER."""
    if sid is None:
        return None
    unix = unix_id_of(sid)
    if unix is None or unix[0] != kind:
        raise SmbError(NtStatus.STATUS_INVALID_OWNER)
    return unix[1]


def set_dacl(fd: int, st: os.stat_result, dacl: Acl | None) -> None:
    """SET_INFO of a DACL (None: a NULL DACL) on the file open as `fd`, as the client: its POSIX ACLs, or
    only the mode where the file system keeps no ACLs (Samba's fallback to chmod)."""
    if stat_module.S_ISLNK(st.st_mode):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)  # a symlink keeps no ACL (Samba's refuse_symlink_fsp)
    if dacl is not None and any(ace.sid is not None and ace.sid.identifier_authority == 5
                                and ace.sid.sub_authority[:1] == (88,) for ace in dacl.aces):
        return  # the NFS SIDs S-1-5-88-x only ever mean to change the mode: Samba leaves such a DACL alone
    acls = posix_from_dacl(null_dacl(st) if dacl is None else dacl, st)
    if acls is None:
        return
    if not posix_acl.write(fd, acls.access):
        try:
            os.chmod(f"/proc/self/fd/{fd}", posix_acl.mode_bits(acls.access))
        except OSError as exc:
            raise_for_oserror(exc)
        return
    if stat_module.S_ISDIR(st.st_mode):
        if acls.default is None:
            posix_acl.remove(fd, posix_acl.DEFAULT)
        else:
            posix_acl.write(fd, acls.default, posix_acl.DEFAULT)


def dacl_of(fd: int, st: os.stat_result) -> Acl:
    """The DACL QUERY_INFO reports for the file open as `fd`."""
    default = posix_acl.read(fd, posix_acl.DEFAULT) if stat_module.S_ISDIR(st.st_mode) else None
    return dacl_from_posix(st, posix_acl.read(fd), default)
