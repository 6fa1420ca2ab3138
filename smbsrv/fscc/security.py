"""SIDs, ACLs and self-relative security descriptors.

[MS-DTYP] 2.4.2 (SID and its string form), 2.4.4 (ACE), 2.4.5 (ACL), 2.4.6 (SECURITY_DESCRIPTOR, self-relative),
2.4.3 (ACCESS_MASK). Owner and group are presented as the Samba "Unix User/Group" SIDs S-1-22-1-<uid> and
S-1-22-2-<gid>, which cifs.ko maps to ids without an idmap upcall (protocol-notes 11.4).
"""

import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError

# [MS-DTYP] 2.4.3 ACCESS_MASK, file-specific rights from [MS-SMB2] 2.2.13.1.1
from smbsrv.wire.constants import (
    FILE_APPEND_DATA,
    FILE_EXECUTE,
    FILE_READ_ATTRIBUTES,
    FILE_READ_DATA,
    FILE_READ_EA,
    FILE_WRITE_ATTRIBUTES,
    FILE_WRITE_DATA,
    FILE_WRITE_EA,
    READ_CONTROL,
    SYNCHRONIZE,
)
from smbsrv.wire.status import NtStatus

FILE_GENERIC_READ = READ_CONTROL | FILE_READ_DATA | FILE_READ_ATTRIBUTES | FILE_READ_EA | SYNCHRONIZE
FILE_GENERIC_WRITE = (
    READ_CONTROL | FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES | FILE_WRITE_EA | FILE_APPEND_DATA | SYNCHRONIZE
)
FILE_GENERIC_EXECUTE = READ_CONTROL | FILE_READ_ATTRIBUTES | FILE_EXECUTE | SYNCHRONIZE
FILE_ALL_ACCESS = 0x001F01FF

# [MS-DTYP] 2.4.7 SECURITY_INFORMATION (AdditionalInformation of QUERY_INFO/SET_INFO InfoType 3)
OWNER_SECURITY_INFORMATION = 0x00000001
GROUP_SECURITY_INFORMATION = 0x00000002
DACL_SECURITY_INFORMATION = 0x00000004
SACL_SECURITY_INFORMATION = 0x00000008
LABEL_SECURITY_INFORMATION = 0x00000010
ATTRIBUTE_SECURITY_INFORMATION = 0x00000020
SCOPE_SECURITY_INFORMATION = 0x00000040
BACKUP_SECURITY_INFORMATION = 0x00010000

# [MS-DTYP] 2.4.6 SECURITY_DESCRIPTOR Control
SE_OWNER_DEFAULTED = 0x0001
SE_GROUP_DEFAULTED = 0x0002
SE_DACL_PRESENT = 0x0004
SE_DACL_DEFAULTED = 0x0008
SE_SACL_PRESENT = 0x0010
SE_SACL_DEFAULTED = 0x0020
SE_DACL_TRUSTED = 0x0040
SE_SERVER_SECURITY = 0x0080
SE_DACL_AUTO_INHERIT_REQ = 0x0100
SE_SACL_AUTO_INHERIT_REQ = 0x0200
SE_DACL_AUTO_INHERITED = 0x0400
SE_SACL_AUTO_INHERITED = 0x0800
SE_DACL_PROTECTED = 0x1000
SE_SACL_PROTECTED = 0x2000
SE_RM_CONTROL_VALID = 0x4000
SE_SELF_RELATIVE = 0x8000

# [MS-DTYP] 2.4.4.1 ACE_HEADER AceType / AceFlags
ACCESS_ALLOWED_ACE_TYPE = 0x00
ACCESS_DENIED_ACE_TYPE = 0x01
SYSTEM_AUDIT_ACE_TYPE = 0x02
SYSTEM_ALARM_ACE_TYPE = 0x03
ACCESS_ALLOWED_COMPOUND_ACE_TYPE = 0x04
ACCESS_ALLOWED_OBJECT_ACE_TYPE = 0x05
ACCESS_DENIED_OBJECT_ACE_TYPE = 0x06
SYSTEM_AUDIT_OBJECT_ACE_TYPE = 0x07
SYSTEM_ALARM_OBJECT_ACE_TYPE = 0x08
ACCESS_ALLOWED_CALLBACK_ACE_TYPE = 0x09
ACCESS_DENIED_CALLBACK_ACE_TYPE = 0x0A
ACCESS_ALLOWED_CALLBACK_OBJECT_ACE_TYPE = 0x0B
ACCESS_DENIED_CALLBACK_OBJECT_ACE_TYPE = 0x0C
SYSTEM_AUDIT_CALLBACK_ACE_TYPE = 0x0D
SYSTEM_ALARM_CALLBACK_ACE_TYPE = 0x0E
SYSTEM_AUDIT_CALLBACK_OBJECT_ACE_TYPE = 0x0F
SYSTEM_ALARM_CALLBACK_OBJECT_ACE_TYPE = 0x10
SYSTEM_MANDATORY_LABEL_ACE_TYPE = 0x11
SYSTEM_RESOURCE_ATTRIBUTE_ACE_TYPE = 0x12
SYSTEM_SCOPED_POLICY_ID_ACE_TYPE = 0x13

OBJECT_INHERIT_ACE = 0x01
CONTAINER_INHERIT_ACE = 0x02
NO_PROPAGATE_INHERIT_ACE = 0x04
INHERIT_ONLY_ACE = 0x08
INHERITED_ACE = 0x10
SUCCESSFUL_ACCESS_ACE_FLAG = 0x40
FAILED_ACCESS_ACE_FLAG = 0x80

ACL_REVISION = 2
ACL_REVISION_DS = 4
SECURITY_DESCRIPTOR_REVISION = 1

# ACE types whose body is Mask(4) followed directly by a SID ([MS-DTYP] 2.4.4.2 - 2.4.4.17); for the callback
# and resource-attribute types, application data follows the SID inside AceSize.
_MASK_AND_SID_ACE_TYPES = frozenset(
    {
        ACCESS_ALLOWED_ACE_TYPE,
        ACCESS_DENIED_ACE_TYPE,
        SYSTEM_AUDIT_ACE_TYPE,
        SYSTEM_ALARM_ACE_TYPE,
        ACCESS_ALLOWED_CALLBACK_ACE_TYPE,
        ACCESS_DENIED_CALLBACK_ACE_TYPE,
        SYSTEM_AUDIT_CALLBACK_ACE_TYPE,
        SYSTEM_ALARM_CALLBACK_ACE_TYPE,
        SYSTEM_MANDATORY_LABEL_ACE_TYPE,
        SYSTEM_RESOURCE_ATTRIBUTE_ACE_TYPE,
        SYSTEM_SCOPED_POLICY_ID_ACE_TYPE,
    }
)

_SID_HEADER = struct.Struct("<BB6s")  # Revision, SubAuthorityCount, IdentifierAuthority (big-endian 48 bit)
_UNIX_ID_SID = struct.Struct("<BB6sII")  # a SID with exactly two sub-authorities
# Revision, Sbz1, Control, OffsetOwner, OffsetGroup, OffsetSacl, OffsetDacl = 20
_SD_HEADER = struct.Struct("<BBHIIII")
_ACL_HEADER = struct.Struct("<BBHHH")  # AclRevision, Sbz1, AclSize, AceCount, Sbz2
_ACE_HEADER = struct.Struct("<BBH")  # AceType, AceFlags, AceSize
_ACE_MASK = struct.Struct("<I")

SID_MAX_SUB_AUTHORITIES = 15
_AUTHORITY_22 = (22).to_bytes(6, "big")


def _invalid() -> SmbError:
    # STATUS_INVALID_SECURITY_DESCR (0xC0000079) / STATUS_INVALID_SID (0xC0000078) are the Windows answers;
    # they are not in wire/status.py yet, so malformed input is reported as STATUS_INVALID_PARAMETER.
    return SmbError(NtStatus.STATUS_INVALID_PARAMETER)


@dataclass(frozen=True, slots=True)
class Sid:
    """[MS-DTYP] 2.4.2.2 SID."""

    identifier_authority: int
    sub_authority: tuple[int, ...]
    revision: int = 1

    def encode(self) -> bytes:
        return _SID_HEADER.pack(
            self.revision, len(self.sub_authority), self.identifier_authority.to_bytes(6, "big")
        ) + struct.pack(f"<{len(self.sub_authority)}I", *self.sub_authority)

    @property
    def size(self) -> int:
        return 8 + 4 * len(self.sub_authority)

    def __str__(self) -> str:
        # [MS-DTYP] 2.4.2.1: authorities of 2**32 and above are written in hex.
        if self.identifier_authority >= 1 << 32:
            authority = f"0x{self.identifier_authority:012X}"
        else:
            authority = str(self.identifier_authority)
        subs = "".join(f"-{s}" for s in self.sub_authority)
        return f"S-{self.revision}-{authority}{subs}"

    @classmethod
    def from_string(cls, text: str) -> "Sid":
        """Parse "S-1-5-32-544"; a malformed string raises ValueError (this is for configuration, not wire)."""
        parts = text.split("-")
        if len(parts) < 3 or parts[0].upper() != "S":
            raise ValueError(f"not a SID string: {text!r}")
        revision = int(parts[1])
        authority = int(parts[2], 16) if parts[2].lower().startswith("0x") else int(parts[2])
        subs = tuple(int(p) for p in parts[3:])
        if (
            revision != 1
            or not 0 <= authority < 1 << 48
            or len(subs) > SID_MAX_SUB_AUTHORITIES
            or any(not 0 <= s < 1 << 32 for s in subs)
        ):
            raise ValueError(f"SID out of range: {text!r}")
        return cls(authority, subs, revision)


def decode_sid(data: bytes | memoryview, offset: int = 0, end: int | None = None) -> tuple[Sid, int]:
    """Decode a SID at `offset` that must end at or before `end`; returns (sid, offset after it)."""
    limit = len(data) if end is None else end
    if offset < 0 or offset + 8 > limit:
        raise _invalid()
    revision, count, authority = _SID_HEADER.unpack_from(data, offset)
    if revision != 1 or count > SID_MAX_SUB_AUTHORITIES:
        raise _invalid()
    stop = offset + 8 + 4 * count
    if stop > limit:
        raise _invalid()
    subs = struct.unpack_from(f"<{count}I", data, offset + 8)
    return Sid(int.from_bytes(authority, "big"), subs, revision), stop


def unix_user_sid_bytes(uid: int) -> bytes:
    """S-1-22-1-<uid> in binary form (16 bytes); used per stat by the POSIX info encoders."""
    return _UNIX_ID_SID.pack(1, 2, _AUTHORITY_22, 1, uid & 0xFFFFFFFF)


def unix_group_sid_bytes(gid: int) -> bytes:
    """S-1-22-2-<gid> in binary form (16 bytes)."""
    return _UNIX_ID_SID.pack(1, 2, _AUTHORITY_22, 2, gid & 0xFFFFFFFF)


UNIX_USER, UNIX_GROUP = 1, 2  # the first sub-authority of S-1-22 SIDs


def unix_user_sid(uid: int) -> Sid:
    return Sid(22, (UNIX_USER, uid & 0xFFFFFFFF))


def unix_group_sid(gid: int) -> Sid:
    return Sid(22, (UNIX_GROUP, gid & 0xFFFFFFFF))


def unix_id_of(sid: Sid) -> tuple[int, int] | None:
    """The reverse of unix_user_sid/unix_group_sid: (UNIX_USER, uid) or (UNIX_GROUP, gid), None for any other
    SID."""
    subs = sid.sub_authority
    if sid.identifier_authority == 22 and len(subs) == 2 and subs[0] in (UNIX_USER, UNIX_GROUP):
        return subs[0], subs[1]
    return None


SID_EVERYONE = Sid(1, (0,))  # S-1-1-0 (World)
SID_AUTHENTICATED_USERS = Sid(5, (11,))  # S-1-5-11
# S-1-5-88-{1,2,3}-<n>: Windows NFS / cifs.ko "modefromsid" uid, gid and mode SIDs (protocol-notes 11.4).
SID_NFS_AUTHORITY = 5
SID_NFS_RID = 88
SID_NFS_USER = 1
SID_NFS_GROUP = 2
SID_NFS_MODE = 3


@dataclass(frozen=True, slots=True)
class Ace:
    """[MS-DTYP] 2.4.4. `sid` and `mask` are set for the mask-plus-SID types; `body` holds the bytes after the
    4-byte header for every type (object ACEs are kept opaque)."""

    ace_type: int
    ace_flags: int
    mask: int
    sid: Sid | None
    body: bytes = b""

    def encode(self) -> bytes:
        if self.ace_type in _MASK_AND_SID_ACE_TYPES and self.sid is not None and not self.body:
            body = _ACE_MASK.pack(self.mask) + self.sid.encode()
        else:
            body = self.body
        return _ACE_HEADER.pack(self.ace_type, self.ace_flags, 4 + len(body)) + body


@dataclass(frozen=True, slots=True)
class Acl:
    """[MS-DTYP] 2.4.5."""

    aces: tuple[Ace, ...]
    acl_revision: int = ACL_REVISION

    def encode(self) -> bytes:
        body = b"".join(ace.encode() for ace in self.aces)
        return _ACL_HEADER.pack(self.acl_revision, 0, 8 + len(body), len(self.aces), 0) + body


@dataclass(frozen=True, slots=True)
class SecurityDescriptor:
    """A parsed self-relative security descriptor. `dacl` is None when SE_DACL_PRESENT is clear or the DACL is
    NULL (check `control & SE_DACL_PRESENT` to tell them apart); the same holds for `sacl`."""

    control: int
    owner: Sid | None
    group: Sid | None
    sacl: Acl | None
    dacl: Acl | None
    revision: int = SECURITY_DESCRIPTOR_REVISION

    @property
    def has_null_dacl(self) -> bool:
        return self.control & SE_DACL_PRESENT != 0 and self.dacl is None


def _decode_ace(data: bytes | memoryview, offset: int, limit: int) -> tuple[Ace, int]:
    if offset + 4 > limit:
        raise _invalid()
    ace_type, ace_flags, ace_size = _ACE_HEADER.unpack_from(data, offset)
    end = offset + ace_size
    if ace_size < 4 or end > limit:
        raise _invalid()
    body = bytes(data[offset + 4 : end])
    if ace_type in _MASK_AND_SID_ACE_TYPES:
        if ace_size < 8:
            raise _invalid()
        (mask,) = _ACE_MASK.unpack_from(data, offset + 4)
        sid, sid_end = decode_sid(data, offset + 8, end)
        # A plain ACE carries nothing after its SID; keep `body` only where it holds extra application data.
        if sid_end == end:
            body = b""
        return Ace(ace_type, ace_flags, mask, sid, body), end
    mask = _ACE_MASK.unpack_from(data, offset + 4)[0] if ace_size >= 8 else 0
    return Ace(ace_type, ace_flags, mask, None, body), end


def decode_acl(data: bytes | memoryview, offset: int = 0, end: int | None = None) -> tuple[Acl, int]:
    """Decode an ACL at `offset`; every ACE must lie inside AclSize, and AclSize inside `end`."""
    limit = len(data) if end is None else end
    if offset < 0 or offset + 8 > limit:
        raise _invalid()
    revision, _sbz1, acl_size, ace_count, _sbz2 = _ACL_HEADER.unpack_from(data, offset)
    acl_end = offset + acl_size
    if revision not in (ACL_REVISION, ACL_REVISION_DS) or acl_size < 8 or acl_end > limit:
        raise _invalid()
    # Each ACE is at least 8 bytes (header plus mask) in anything we interpret, and 4 in any case.
    if ace_count * 4 > acl_size - 8:
        raise _invalid()
    aces = []
    pos = offset + 8
    for _ in range(ace_count):
        ace, pos = _decode_ace(data, pos, acl_end)
        aces.append(ace)
    return Acl(tuple(aces), revision), acl_end


def parse_descriptor(data: bytes | memoryview) -> SecurityDescriptor:
    """Decode a self-relative SECURITY_DESCRIPTOR ([MS-DTYP] 2.4.6) as sent in SET_INFO / SD create contexts."""
    if len(data) < _SD_HEADER.size:
        raise _invalid()
    revision, _sbz1, control, off_owner, off_group, off_sacl, off_dacl = _SD_HEADER.unpack_from(data, 0)
    if revision != SECURITY_DESCRIPTOR_REVISION or not control & SE_SELF_RELATIVE:
        raise _invalid()
    for off in (off_owner, off_group, off_sacl, off_dacl):
        # Offsets point past the 20-byte header; 0 means "absent".
        if off != 0 and (off < _SD_HEADER.size or off >= len(data)):
            raise _invalid()
    owner = decode_sid(data, off_owner)[0] if off_owner else None
    group = decode_sid(data, off_group)[0] if off_group else None
    sacl = decode_acl(data, off_sacl)[0] if control & SE_SACL_PRESENT and off_sacl else None
    dacl = decode_acl(data, off_dacl)[0] if control & SE_DACL_PRESENT and off_dacl else None
    return SecurityDescriptor(control, owner, group, sacl, dacl, revision)


def encode_descriptor(sd: SecurityDescriptor) -> bytes:
    """Self-relative encoding of a SecurityDescriptor (owner, group, SACL, DACL in that order)."""
    control = sd.control | SE_SELF_RELATIVE
    parts: list[bytes] = []
    offsets = [0, 0, 0, 0]
    pos = _SD_HEADER.size
    items: tuple[Sid | Acl | None, ...] = (sd.owner, sd.group, sd.sacl, sd.dacl)
    for index, item in enumerate(items):
        if item is None:
            continue
        blob = item.encode()
        offsets[index] = pos
        parts.append(blob)
        pos += len(blob)
    header = _SD_HEADER.pack(sd.revision, 0, control, *offsets)
    return header + b"".join(parts)


def posix_mode_from_dacl(sd: SecurityDescriptor) -> int | None:
    """The mode of a POSIX chmod: a DACL of exactly one ACCESS_ALLOWED ACE whose SID is S-1-5-88-3-<mode>
    (cifs.ko 6.13+, protocol-notes 11.4). Returns mode & 0o7777, or None when the DACL is anything else."""
    dacl = sd.dacl
    if dacl is None or len(dacl.aces) != 1:
        return None
    ace = dacl.aces[0]
    sid = ace.sid
    if (
        ace.ace_type != ACCESS_ALLOWED_ACE_TYPE
        or sid is None
        or sid.identifier_authority != SID_NFS_AUTHORITY
        or len(sid.sub_authority) != 3
        or sid.sub_authority[0] != SID_NFS_RID
        or sid.sub_authority[1] != SID_NFS_MODE
    ):
        return None
    return sid.sub_authority[2] & 0o7777
