"""Reparse data buffers: build, parse and validate.

[MS-FSCC] 2.1.2.2 REPARSE_DATA_BUFFER, 2.1.2.3 REPARSE_GUID_DATA_BUFFER, 2.1.2.4 symbolic link, 2.1.2.5 mount
point, 2.1.2.6 NFS, 2.1.2.7 LX_SYMLINK; the zero-length WSL tags (AF_UNIX, LX_FIFO, LX_CHR, LX_BLK); [MS-FSA]
2.1.5.10.37 / [MS-FSCC] 2.3.82 (FSCTL_SET_REPARSE_POINT checks), 2.1.5.10.3 (FSCTL_DELETE_REPARSE_POINT); and
the symbolic link error response of [MS-SMB2] 2.2.2.2.1. See protocol-notes sections 7 and 8.
"""

import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.fscc.attributes import (
    IO_REPARSE_TAG_AF_UNIX,
    IO_REPARSE_TAG_LX_BLK,
    IO_REPARSE_TAG_LX_CHR,
    IO_REPARSE_TAG_LX_FIFO,
    IO_REPARSE_TAG_LX_SYMLINK,
    IO_REPARSE_TAG_MOUNT_POINT,
    IO_REPARSE_TAG_NFS,
    IO_REPARSE_TAG_RESERVED_ONE,
    IO_REPARSE_TAG_RESERVED_ZERO,
    IO_REPARSE_TAG_SYMLINK,
    is_reparse_tag_microsoft,
)
from smbsrv.wire.status import NtStatus

SYMLINK_FLAG_RELATIVE = 0x00000001

# [MS-FSCC] 2.1.2.6 NFS_SPECFILE_* (the ASCII type name, little-endian, in a 64-bit field)
NFS_SPECFILE_LNK = 0x00000000014B4E4C
NFS_SPECFILE_CHR = 0x0000000000524843
NFS_SPECFILE_BLK = 0x00000000004B4C42
NFS_SPECFILE_FIFO = 0x000000004F464946
NFS_SPECFILE_SOCK = 0x000000004B434F53

# Windows MAXIMUM_REPARSE_DATA_BUFFER_SIZE, header included (protocol-notes 8.6).
MAXIMUM_REPARSE_DATA_BUFFER_SIZE = 16 * 1024
REPARSE_DATA_BUFFER_HEADER_SIZE = 8
REPARSE_GUID_DATA_BUFFER_HEADER_SIZE = 24

SYMLINK_ERROR_TAG = 0x4C4D5953  # "SYML"

# The WSL special-file tags carry no data: the type is the tag ([MS-FSCC] 2.1.2.1, protocol-notes 8.5).
WSL_SPECIAL_TAGS = frozenset(
    {IO_REPARSE_TAG_AF_UNIX, IO_REPARSE_TAG_LX_FIFO, IO_REPARSE_TAG_LX_CHR, IO_REPARSE_TAG_LX_BLK}
)

_HEADER = struct.Struct("<IHH")  # ReparseTag, ReparseDataLength, Reserved
_SYMLINK = struct.Struct("<IHHHHHHI")  # header + SubstituteNameOffset/Length, PrintNameOffset/Length, Flags
_MOUNT_POINT = struct.Struct("<IHHHHHH")  # header + SubstituteNameOffset/Length, PrintNameOffset/Length
_NFS = struct.Struct("<IHHQ")  # header + Type
_NFS_DEVICE = struct.Struct("<II")  # Major, Minor
_LX_SYMLINK = struct.Struct("<IHHI")  # header + Version
_SYMLINK_ERROR = struct.Struct("<IIIHHHHHHI")  # SymLinkLength, SymLinkErrorTag, then the symlink buffer
_U32 = struct.Struct("<I")


def _data_invalid() -> SmbError:
    return SmbError(NtStatus.STATUS_IO_REPARSE_DATA_INVALID)


@dataclass(frozen=True, slots=True)
class SymlinkReparse:
    """IO_REPARSE_TAG_SYMLINK ([MS-FSCC] 2.1.2.4)."""

    substitute_name: str
    print_name: str
    flags: int

    @property
    def is_relative(self) -> bool:
        return self.flags & SYMLINK_FLAG_RELATIVE != 0


@dataclass(frozen=True, slots=True)
class MountPointReparse:
    """IO_REPARSE_TAG_MOUNT_POINT ([MS-FSCC] 2.1.2.5)."""

    substitute_name: str
    print_name: str


@dataclass(frozen=True, slots=True)
class NfsReparse:
    """IO_REPARSE_TAG_NFS ([MS-FSCC] 2.1.2.6): `target` for LNK, `major`/`minor` for CHR and BLK."""

    nfs_type: int
    target: str = ""
    major: int = 0
    minor: int = 0


@dataclass(frozen=True, slots=True)
class LxSymlinkReparse:
    """IO_REPARSE_TAG_LX_SYMLINK ([MS-FSCC] 2.1.2.7): Version 2 keeps the UTF-8 target in the buffer."""

    target: bytes
    version: int = 2


@dataclass(frozen=True, slots=True)
class WslSpecialReparse:
    """AF_UNIX, LX_FIFO, LX_CHR, LX_BLK: no data; ids, mode and device live in the $LX* EAs."""

    tag: int


@dataclass(frozen=True, slots=True)
class OpaqueReparse:
    """Any other tag. `guid` is set for third-party tags (REPARSE_GUID_DATA_BUFFER); `data` is DataBuffer."""

    tag: int
    data: bytes
    guid: bytes | None = None


ReparseData = (
    SymlinkReparse | MountPointReparse | NfsReparse | LxSymlinkReparse | WslSpecialReparse | OpaqueReparse
)


def _utf16(name: str) -> bytes:
    return name.encode("utf-16-le", "surrogatepass")


def _name_buffer(substitute: str, print_name: str) -> tuple[bytes, bytes, bytes]:
    # Substitute name first, then print name (the order Samba and Windows mklink use); no NULs counted.
    sub = _utf16(substitute)
    prt = _utf16(print_name)
    if 20 + len(sub) + len(prt) > 0xFFFF:
        raise SmbError(NtStatus.STATUS_NAME_TOO_LONG)
    return sub, prt, sub + prt


def build_symlink(substitute: str, print_name: str, relative: bool) -> bytes:
    """REPARSE_DATA_BUFFER for IO_REPARSE_TAG_SYMLINK ([MS-FSCC] 2.1.2.4)."""
    sub, prt, path_buffer = _name_buffer(substitute, print_name)
    flags = SYMLINK_FLAG_RELATIVE if relative else 0
    return (
        _SYMLINK.pack(
            IO_REPARSE_TAG_SYMLINK, 12 + len(path_buffer), 0, 0, len(sub), len(sub), len(prt), flags
        )
        + path_buffer
    )


def build_mount_point(substitute: str, print_name: str) -> bytes:
    """REPARSE_DATA_BUFFER for IO_REPARSE_TAG_MOUNT_POINT ([MS-FSCC] 2.1.2.5). Windows NUL-terminates both
    names inside PathBuffer (not counted in the lengths); we do the same so Windows tools read it."""
    sub = _utf16(substitute)
    prt = _utf16(print_name)
    path_buffer = sub + b"\x00\x00" + prt + b"\x00\x00"
    return (
        _MOUNT_POINT.pack(
            IO_REPARSE_TAG_MOUNT_POINT, 8 + len(path_buffer), 0, 0, len(sub), len(sub) + 2, len(prt)
        )
        + path_buffer
    )


def build_nfs(nfs_type: int, *, target: str = "", major: int = 0, minor: int = 0) -> bytes:
    """REPARSE_DATA_BUFFER for IO_REPARSE_TAG_NFS ([MS-FSCC] 2.1.2.6). Major is written first (cifs.ko and
    Samba agree, protocol-notes 8.4)."""
    if nfs_type == NFS_SPECFILE_LNK:
        data = _utf16(target)
    elif nfs_type in (NFS_SPECFILE_CHR, NFS_SPECFILE_BLK):
        data = _NFS_DEVICE.pack(major, minor)
    elif nfs_type in (NFS_SPECFILE_FIFO, NFS_SPECFILE_SOCK):
        data = b""
    else:
        raise ValueError(f"unknown NFS type 0x{nfs_type:x}")
    return _NFS.pack(IO_REPARSE_TAG_NFS, 8 + len(data), 0, nfs_type) + data


def build_lx_symlink(target: bytes) -> bytes:
    """REPARSE_DATA_BUFFER for IO_REPARSE_TAG_LX_SYMLINK, Version 2, UTF-8 target without NUL."""
    return _LX_SYMLINK.pack(IO_REPARSE_TAG_LX_SYMLINK, 4 + len(target), 0, 2) + target


def build_wsl_special(tag: int) -> bytes:
    """The 8-byte header of a zero-length WSL special-file reparse point."""
    if tag not in WSL_SPECIAL_TAGS:
        raise ValueError(f"not a WSL special-file tag: 0x{tag:08x}")
    return _HEADER.pack(tag, 0, 0)


def build_opaque(tag: int, data: bytes, guid: bytes | None = None) -> bytes:
    """Generic REPARSE_DATA_BUFFER, or REPARSE_GUID_DATA_BUFFER when `guid` is given."""
    if guid is not None:
        return _HEADER.pack(tag, len(data), 0) + guid + data
    return _HEADER.pack(tag, len(data), 0) + data


def _check_names(path_len: int, sub_off: int, sub_len: int, prt_off: int, prt_len: int) -> None:
    if sub_off + sub_len > path_len or prt_off + prt_len > path_len:
        raise _data_invalid()


def _check_symlink_layout(data: bytes | memoryview, data_len: int) -> None:
    if data_len < 12:
        raise _data_invalid()
    _tag, _len, _res, sub_off, sub_len, prt_off, prt_len, _flags = _SYMLINK.unpack_from(data, 0)
    _check_names(data_len - 12, sub_off, sub_len, prt_off, prt_len)


def _check_mount_point_layout(data: bytes | memoryview, data_len: int) -> None:
    if data_len < 8:
        raise _data_invalid()
    _tag, _len, _res, sub_off, sub_len, prt_off, prt_len = _MOUNT_POINT.unpack_from(data, 0)
    _check_names(data_len - 8, sub_off, sub_len, prt_off, prt_len)


def _check_nfs_layout(data: bytes | memoryview, data_len: int) -> int:
    """cifs.ko's rules (reparse.c parse_reparse_nfs): known type and the exact payload size for it."""
    if data_len < 8:
        raise _data_invalid()
    nfs_type = int(_NFS.unpack_from(data, 0)[3])
    payload = data_len - 8
    if nfs_type in (NFS_SPECFILE_CHR, NFS_SPECFILE_BLK):
        ok = payload == 8
    elif nfs_type in (NFS_SPECFILE_FIFO, NFS_SPECFILE_SOCK):
        ok = payload == 0
    elif nfs_type == NFS_SPECFILE_LNK:
        ok = payload > 0 and payload % 2 == 0
    else:
        ok = False
    if not ok:
        raise _data_invalid()
    return nfs_type


def validate_set_buffer(data: bytes | memoryview) -> tuple[int, bytes]:
    """Check an FSCTL_SET_REPARSE_POINT input the way Windows does; return (tag, buffer).

    Order and statuses follow protocol-notes 8.6: empty -> STATUS_INVALID_BUFFER_SIZE; shorter than the header,
    over 16 KiB, ReparseDataLength not matching the input, tag 0 or 1, or a third-party tag without the GUID
    header -> STATUS_IO_REPARSE_DATA_INVALID; then the tag-specific layout of SYMLINK, MOUNT_POINT, NFS and
    LX_SYMLINK.
    """
    size = len(data)
    if size == 0:
        raise SmbError(NtStatus.STATUS_INVALID_BUFFER_SIZE)
    if size < REPARSE_DATA_BUFFER_HEADER_SIZE or size > MAXIMUM_REPARSE_DATA_BUFFER_SIZE:
        raise _data_invalid()
    tag, data_len, _reserved = _HEADER.unpack_from(data, 0)
    if tag in (IO_REPARSE_TAG_RESERVED_ZERO, IO_REPARSE_TAG_RESERVED_ONE):
        raise _data_invalid()
    if is_reparse_tag_microsoft(tag):
        if data_len != size - REPARSE_DATA_BUFFER_HEADER_SIZE:
            raise _data_invalid()
    else:
        # [MS-FSCC] 2.3.82: third-party tags must use REPARSE_GUID_DATA_BUFFER; ReparseDataLength then counts
        # the bytes after the GUID. (Samba accepts the short form here; open question 3 in protocol-notes.)
        if (
            size < REPARSE_GUID_DATA_BUFFER_HEADER_SIZE
            or data_len != size - REPARSE_GUID_DATA_BUFFER_HEADER_SIZE
        ):
            raise _data_invalid()
    if tag == IO_REPARSE_TAG_SYMLINK:
        _check_symlink_layout(data, data_len)
    elif tag == IO_REPARSE_TAG_MOUNT_POINT:
        _check_mount_point_layout(data, data_len)
    elif tag == IO_REPARSE_TAG_NFS:
        _check_nfs_layout(data, data_len)
    elif tag == IO_REPARSE_TAG_LX_SYMLINK and data_len < 4:
        raise _data_invalid()
    return tag, bytes(data)


def validate_delete_buffer(
    data: bytes | memoryview, stored_tag: int | None = None, stored_guid: bytes | None = None
) -> int:
    """Check an FSCTL_DELETE_REPARSE_POINT input; return its tag.

    The caller answers STATUS_NOT_A_REPARSE_POINT before calling this when the file has no reparse point. Then
    ([MS-FSCC] 2.3.6, [MS-FSA] 2.1.5.10.3, the Samba/Windows test order): shorter than the header or data
    present -> STATUS_IO_REPARSE_DATA_INVALID (even when the tag is wrong too); tag 0/1 ->
    STATUS_IO_REPARSE_TAG_INVALID; not exactly the 8-byte (Microsoft tag) or 24-byte (third-party tag, with
    GUID) header -> STATUS_IO_REPARSE_DATA_INVALID; tag differing from `stored_tag` ->
    STATUS_IO_REPARSE_TAG_MISMATCH; third-party GUID differing from `stored_guid` ->
    STATUS_REPARSE_ATTRIBUTE_CONFLICT.
    """
    size = len(data)
    if size < REPARSE_DATA_BUFFER_HEADER_SIZE:
        raise _data_invalid()
    tag, data_len, _reserved = _HEADER.unpack_from(data, 0)
    tag = int(tag)
    if data_len != 0:
        raise _data_invalid()
    # The reserved tags are refused as such, before the size check that would treat them as third-party tags.
    if tag in (IO_REPARSE_TAG_RESERVED_ZERO, IO_REPARSE_TAG_RESERVED_ONE):
        raise SmbError(NtStatus.STATUS_IO_REPARSE_TAG_INVALID)
    expected = (
        REPARSE_DATA_BUFFER_HEADER_SIZE
        if is_reparse_tag_microsoft(tag)
        else REPARSE_GUID_DATA_BUFFER_HEADER_SIZE
    )
    if size != expected:
        raise _data_invalid()
    if stored_tag is not None and tag != stored_tag:
        raise SmbError(NtStatus.STATUS_IO_REPARSE_TAG_MISMATCH)
    if stored_guid is not None and not is_reparse_tag_microsoft(tag) and bytes(data[8:24]) != stored_guid:
        raise SmbError(NtStatus.STATUS_REPARSE_ATTRIBUTE_CONFLICT)
    return tag


def reparse_tag_of(data: bytes | memoryview) -> int:
    """The tag of a stored buffer (already validated when it was set)."""
    if len(data) < REPARSE_DATA_BUFFER_HEADER_SIZE:
        raise _data_invalid()
    return int(_U32.unpack_from(data, 0)[0])


def _decode_name(data: bytes | memoryview, start: int, length: int) -> str:
    try:
        return bytes(data[start : start + length]).decode("utf-16-le")
    except UnicodeDecodeError:
        raise _data_invalid() from None


def parse(data: bytes | memoryview) -> ReparseData:
    """Parse a REPARSE_DATA_BUFFER / REPARSE_GUID_DATA_BUFFER. Any inconsistency (lengths, offsets, names that
    are not valid UTF-16, unknown NFS types) raises SmbError(STATUS_IO_REPARSE_DATA_INVALID)."""
    size = len(data)
    if size < REPARSE_DATA_BUFFER_HEADER_SIZE:
        raise _data_invalid()
    tag, data_len, _reserved = _HEADER.unpack_from(data, 0)
    if not is_reparse_tag_microsoft(tag):
        if (
            size < REPARSE_GUID_DATA_BUFFER_HEADER_SIZE
            or data_len != size - REPARSE_GUID_DATA_BUFFER_HEADER_SIZE
        ):
            raise _data_invalid()
        return OpaqueReparse(tag, bytes(data[24:]), bytes(data[8:24]))
    if data_len != size - REPARSE_DATA_BUFFER_HEADER_SIZE:
        raise _data_invalid()
    if tag == IO_REPARSE_TAG_SYMLINK:
        _check_symlink_layout(data, data_len)
        _t, _l, _r, sub_off, sub_len, prt_off, prt_len, flags = _SYMLINK.unpack_from(data, 0)
        return SymlinkReparse(
            _decode_name(data, 20 + sub_off, sub_len), _decode_name(data, 20 + prt_off, prt_len), flags
        )
    if tag == IO_REPARSE_TAG_MOUNT_POINT:
        _check_mount_point_layout(data, data_len)
        _t, _l, _r, sub_off, sub_len, prt_off, prt_len = _MOUNT_POINT.unpack_from(data, 0)
        return MountPointReparse(
            _decode_name(data, 16 + sub_off, sub_len), _decode_name(data, 16 + prt_off, prt_len)
        )
    if tag == IO_REPARSE_TAG_NFS:
        nfs_type = _check_nfs_layout(data, data_len)
        if nfs_type == NFS_SPECFILE_LNK:
            target = _decode_name(data, 16, data_len - 8)
            if "\x00" in target:
                raise _data_invalid()
            return NfsReparse(nfs_type, target=target)
        if nfs_type in (NFS_SPECFILE_CHR, NFS_SPECFILE_BLK):
            major, minor = _NFS_DEVICE.unpack_from(data, 16)
            return NfsReparse(nfs_type, major=major, minor=minor)
        return NfsReparse(nfs_type)
    if tag == IO_REPARSE_TAG_LX_SYMLINK:
        if data_len < 4:
            raise _data_invalid()
        version = _LX_SYMLINK.unpack_from(data, 0)[3]
        return LxSymlinkReparse(bytes(data[12:]), version)
    if tag in WSL_SPECIAL_TAGS and data_len == 0:
        return WslSpecialReparse(tag)
    return OpaqueReparse(tag, bytes(data[8:]))


def build_symlink_error(substitute: str, print_name: str, relative: bool, unparsed_path_length: int) -> bytes:
    """Symbolic Link Error Response ([MS-SMB2] 2.2.2.2.1): SymLinkLength, SymLinkErrorTag, then a symlink
    reparse buffer whose Reserved field carries UnparsedPathLength (bytes of the path after the link,
    including its leading separator; protocol-notes 7). The caller wraps it in an error context on 3.1.1."""
    sub, prt, path_buffer = _name_buffer(substitute, print_name)
    total = _SYMLINK_ERROR.size + len(path_buffer)
    return (
        _SYMLINK_ERROR.pack(
            total - 4,
            SYMLINK_ERROR_TAG,
            IO_REPARSE_TAG_SYMLINK,
            12 + len(path_buffer),
            unparsed_path_length,
            0,
            len(sub),
            len(sub),
            len(prt),
            SYMLINK_FLAG_RELATIVE if relative else 0,
        )
        + path_buffer
    )
