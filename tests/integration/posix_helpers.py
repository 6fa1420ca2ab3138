"""Raw-client helpers for the SMB3.1.1 POSIX extension tests ([POSIX-SMB2], [POSIX-FSCC]; protocol-notes 3, 6,
11.2-11.4, 12).

Expected wire bytes are built here from os.lstat / os.statvfs of the server-side object, field by field from
the spec layouts, without the server's encoders: a bug in smbsrv.fscc cannot hide behind a matching bug here.
Requests go through tests/builders.py (the raw SMB2 client); this module only adds what POSIX needs: the
negotiate context, the create context, and the POSIX information layouts.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from tests import builders as b

# -- constants, spelled as in the specs ---------------------------------------------------------------------

SMB2_CREATE_POSIX_CONTEXT = b.POSIX_EXTENSIONS_GUID  # the create context is named by the same 16 bytes
SMB3_POSIX_DIALECT = 0x0311

# [POSIX-FSCC] information classes
FILE_POSIX_INFORMATION = 100  # QUERY_INFO, InfoType 1
SMB2_FIND_POSIX_INFORMATION = 0x64  # QUERY_DIRECTORY
FILE_FS_POSIX_INFORMATION = 100  # QUERY_INFO, InfoType 2
# [MS-FSCC] 2.5.1, 2.4.12, 2.4.42.2
FILE_FS_ATTRIBUTE_INFORMATION = 5
FILE_DISPOSITION_INFORMATION_EX = 64
FILE_RENAME_INFORMATION_EX = 65

FILE_DISPOSITION_DELETE = 0x1
FILE_DISPOSITION_POSIX_SEMANTICS = 0x2
FILE_RENAME_REPLACE_IF_EXISTS = 0x1
FILE_RENAME_POSIX_SEMANTICS = 0x2

FILE_SUPPORTS_REPARSE_POINTS = 0x00000080
FILE_SUPPORTS_POSIX_UNLINK_RENAME = 0x00000400

# [MS-FSCC] 2.6
FILE_ATTRIBUTE_DIRECTORY = 0x10
FILE_ATTRIBUTE_ARCHIVE = 0x20
FILE_ATTRIBUTE_NORMAL = 0x80
FILE_ATTRIBUTE_REPARSE_POINT = 0x400
# Bits of our DOS xattr that the server reports (smbsrv.fs.dos_attrs: everything a client may keep).
_STORED_ATTRIBUTES = 0x1 | 0x2 | 0x4 | 0x20 | 0x100 | 0x200 | 0x400 | 0x1000 | 0x2000

# [MS-FSCC] 2.1.2.1
IO_REPARSE_TAG_SYMLINK = 0xA000000C
IO_REPARSE_TAG_NFS = 0x80000014
IO_REPARSE_TAG_AF_UNIX = 0x80000023
IO_REPARSE_TAG_LX_FIFO = 0x80000024
IO_REPARSE_TAG_LX_CHR = 0x80000025
IO_REPARSE_TAG_LX_BLK = 0x80000026

# [POSIX-FSCC] 2.1.1: the file type in PosixMode bits 12-15 is a small enum, not S_IFMT.
POSIX_TYPE = {stat.S_IFREG: 0, stat.S_IFDIR: 1, stat.S_IFLNK: 2, stat.S_IFCHR: 3, stat.S_IFBLK: 4,
              stat.S_IFIFO: 5, stat.S_IFSOCK: 6}
_NFS_TAGS = {stat.S_IFLNK: IO_REPARSE_TAG_SYMLINK, stat.S_IFIFO: IO_REPARSE_TAG_NFS,
             stat.S_IFSOCK: IO_REPARSE_TAG_NFS, stat.S_IFCHR: IO_REPARSE_TAG_NFS,
             stat.S_IFBLK: IO_REPARSE_TAG_NFS}
_WSL_TAGS = {stat.S_IFLNK: IO_REPARSE_TAG_SYMLINK, stat.S_IFIFO: IO_REPARSE_TAG_LX_FIFO,
             stat.S_IFSOCK: IO_REPARSE_TAG_AF_UNIX, stat.S_IFCHR: IO_REPARSE_TAG_LX_CHR,
             stat.S_IFBLK: IO_REPARSE_TAG_LX_BLK}

# [MS-DTYP] 2.4.4.1, 2.4.6
ACCESS_ALLOWED_ACE_TYPE = 0x00
SE_DACL_PRESENT = 0x0004
SE_SELF_RELATIVE = 0x8000
WRITE_DAC = 0x00040000
WRITE_OWNER = 0x00080000

_NT_EPOCH_OFFSET = 116444736000000000  # 100 ns intervals from 1601-01-01 to 1970-01-01
_DOS_XATTR = "user.smbsrv.dos"
_DOS_XATTR_LAYOUT = struct.Struct("<HHIQ")  # version, flags, attributes, creation_time

# FilePosixInformation up to PosixMode: four times, EndOfFile, AllocationSize, FileAttributes, InodeNumber,
# DeviceId, Zero, NumberOfLinks, ReparseTag, PosixMode = 80 bytes (protocol-notes 11.3, packed).
_POSIX_FIXED = struct.Struct("<QQQQQQIQIIIII")
# FileFsPosixInformation: OptimalTransferSize, BlockSize, TotalBlocks, BlocksAvail, UserBlocksAvail,
# TotalFileNodes, FreeFileNodes, FileSysIdentifier = 56 bytes.
FS_POSIX = struct.Struct("<IIQQQQQQ")


# -- SIDs ([MS-DTYP] 2.4.2.2) --------------------------------------------------------------------------------

def sid(authority: int, *sub_authorities: int) -> bytes:
    return struct.pack("<BB", 1, len(sub_authorities)) + authority.to_bytes(6, "big") + b"".join(
        struct.pack("<I", s) for s in sub_authorities)


def unix_user_sid(uid: int) -> bytes:
    """S-1-22-1-<uid> (Samba's "Unix User" form, which cifs.ko maps without an idmap upcall)."""
    return sid(22, 1, uid)


def unix_group_sid(gid: int) -> bytes:
    return sid(22, 2, gid)


def mode_sid(mode: int) -> bytes:
    """S-1-5-88-3-<mode>: the mode SID of a POSIX chmod (protocol-notes 11.4)."""
    return sid(5, 88, 3, mode)


def sid_string(data: bytes) -> str:
    count = data[1]
    authority = int.from_bytes(data[2:8], "big")
    subs = struct.unpack_from(f"<{count}I", data, 8)
    return f"S-{data[0]}-{authority}" + "".join(f"-{s}" for s in subs)


def split_sid(data: bytes, offset: int) -> tuple[bytes, int]:
    """The SID at `offset` and the offset after it."""
    end = offset + 8 + 4 * data[offset + 1]
    return data[offset:end], end


def security_descriptor(*, owner: bytes | None = None, group: bytes | None = None,
                        dacl_aces: list[tuple[int, int, int, bytes]] | None = None) -> bytes:
    """Self-relative SECURITY_DESCRIPTOR ([MS-DTYP] 2.4.6) with the given parts; ACEs are (type, flags, mask,
    SID)."""
    control = SE_SELF_RELATIVE
    body = b""
    position = 20
    owner_offset = group_offset = dacl_offset = 0
    if owner is not None:
        owner_offset, body, position = position, body + owner, position + len(owner)
    if group is not None:
        group_offset, body, position = position, body + group, position + len(group)
    if dacl_aces is not None:
        control |= SE_DACL_PRESENT
        aces = b"".join(struct.pack("<BBHI", ace_type, flags, 8 + len(ace_sid), mask) + ace_sid
                        for ace_type, flags, mask, ace_sid in dacl_aces)
        dacl_offset = position
        body += struct.pack("<BBHHH", 2, 0, 8 + len(aces), len(dacl_aces), 0) + aces
    return struct.pack("<BBHIIII", 1, 0, control, owner_offset, group_offset, 0, dacl_offset) + body


def chmod_descriptor(mode: int) -> bytes:
    """The DACL cifs.ko sends for chmod on a POSIX mount: one ACCESS_ALLOWED ACE, mask 0, SID
    S-1-5-88-3-<mode>."""
    return security_descriptor(dacl_aces=[(ACCESS_ALLOWED_ACE_TYPE, 0, 0, mode_sid(mode))])


# -- negotiate and connect -----------------------------------------------------------------------------------

def posix_negotiate_context(data: bytes = b.POSIX_EXTENSIONS_GUID) -> bytes:
    return b.negotiate_context(b.SMB2_POSIX_EXTENSIONS_AVAILABLE, data)


def negotiate_contexts(response: b.Response) -> list[tuple[int, bytes]]:
    """(ContextType, Data) of each context of a 3.1.1 NEGOTIATE response ([MS-SMB2] 2.2.4):
    NegotiateContextCount(2)@6, NegotiateContextOffset(4)@60 from the header, each context 8-byte aligned."""
    body = response.body
    (count,) = struct.unpack_from("<H", body, 6)
    (offset,) = struct.unpack_from("<I", body, 60)
    position = offset - b.HEADER_SIZE
    found = []
    for _ in range(count):
        context_type, length = struct.unpack_from("<HH", body, position)
        found.append((context_type, body[position + 8:position + 8 + length]))
        position += 8 + length
        position += -position % 8
    return found


def connect(host: str, port: int, user: str, password: str, share: str | None = "share", *,
            posix: bool = True, dialects: tuple[int, ...] = (SMB3_POSIX_DIALECT,)) -> b.Client:
    """A logged-on client whose NEGOTIATE offered the POSIX context (when `posix`), connected to `share`."""
    client = b.Client(host, port).connect()
    try:
        contexts = None
        if SMB3_POSIX_DIALECT in dialects:
            contexts = [b.preauth_context(), b.signing_context()]
            if posix:
                contexts.append(posix_negotiate_context())
        response = client.negotiate(dialects, contexts=contexts)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        status = client.session_setup(user, password)
        assert status == b.STATUS_SUCCESS, f"logon as {user}: {b.status_name(status)}"
        if share is not None:
            response = client.tree_connect(share)
            assert response.status == b.STATUS_SUCCESS, \
                f"TREE_CONNECT {share}: {b.status_name(response.status)}"
    except BaseException:
        client.close()
        raise
    return client


# -- CREATE with the POSIX context ---------------------------------------------------------------------------

def posix_create_context(mode: int | bytes = 0o644) -> bytes:
    """SMB2_CREATE_POSIX_CONTEXT request: Mode(4); raw bytes send a malformed Mode."""
    data = struct.pack("<I", mode) if isinstance(mode, int) else mode
    return b.create_context(SMB2_CREATE_POSIX_CONTEXT, data)


def posix_create(client: b.Client, name: str, mode: int | bytes = 0o644, **kwargs: object) -> b.Response:
    """CREATE carrying the POSIX create context: a POSIX open ([POSIX-SMB2])."""
    return client.create(name, contexts=posix_create_context(mode), **kwargs)


def posix_open(client: b.Client, name: str, mode: int = 0o644, **kwargs: object) -> tuple[int, int]:
    response = posix_create(client, name, mode, **kwargs)
    assert response.status == b.STATUS_SUCCESS, f"POSIX CREATE {name!r}: {b.status_name(response.status)}"
    return b.create_file_id(response.body)


def create_response_contexts(response: b.Response) -> dict[bytes, bytes]:
    """Name -> Data of the create contexts of a CREATE response ([MS-SMB2] 2.2.14: CreateContextsOffset(4)@80,
    CreateContextsLength(4)@84; each context [MS-SMB2] 2.2.13.2)."""
    body = response.body
    offset, length = struct.unpack_from("<II", body, 80)
    found: dict[bytes, bytes] = {}
    if not length:
        return found
    position = offset - b.HEADER_SIZE
    end = position + length
    while True:
        next_offset, name_offset, name_length, _reserved, data_offset, data_length = struct.unpack_from(
            "<IHHHHI", body, position)
        name = body[position + name_offset:position + name_offset + name_length]
        found[bytes(name)] = bytes(body[position + data_offset:position + data_offset + data_length])
        assert position + max(name_offset + name_length, data_offset + data_length) <= end
        if not next_offset:
            return found
        position += next_offset


# -- expected values from the server-side object -------------------------------------------------------------

def nt_time(ns: int) -> int:
    return ns // 100 + _NT_EPOCH_OFFSET


@dataclass(frozen=True)
class ShareStyle:
    """The share options that change what POSIX info says about an object."""

    file_type_bits: bool = True  # posix_file_type_bits
    wsl: bool = False  # special_files = "wsl"


DEFAULT_STYLE = ShareStyle()


def _dos_xattr(path: Path, st: os.stat_result) -> tuple[int, int] | None:
    """(attributes, creation_time) from the server's DOS xattr, which only files and directories can carry."""
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return None
    try:
        raw = os.getxattr(path, _DOS_XATTR, follow_symlinks=False)
    except OSError:
        return None
    if len(raw) != _DOS_XATTR_LAYOUT.size:
        return None
    version, flags, attributes, creation_time = _DOS_XATTR_LAYOUT.unpack(raw)
    if version != 1:
        return None
    return attributes, creation_time if flags & 1 else 0


def expected_reparse_tag(st: os.stat_result, style: ShareStyle) -> int:
    return (_WSL_TAGS if style.wsl else _NFS_TAGS).get(stat.S_IFMT(st.st_mode), 0)


def expected_posix_mode(st: os.stat_result, style: ShareStyle) -> int:
    permissions = st.st_mode & 0o7777
    if not style.file_type_bits:
        return permissions
    return permissions | POSIX_TYPE[stat.S_IFMT(st.st_mode)] << 12


def expected_attributes(path: Path, st: os.stat_result, style: ShareStyle) -> int:
    """DOS attributes: our xattr's bits, else ARCHIVE for regular files; DIRECTORY and REPARSE_POINT follow
    the object; NORMAL only alone ([MS-FSCC] 2.6)."""
    dos = _dos_xattr(path, st)
    if dos is not None:
        attributes = dos[0] & _STORED_ATTRIBUTES
    else:
        attributes = FILE_ATTRIBUTE_ARCHIVE if stat.S_ISREG(st.st_mode) else 0
    if stat.S_ISDIR(st.st_mode):
        attributes |= FILE_ATTRIBUTE_DIRECTORY
    if expected_reparse_tag(st, style):
        attributes |= FILE_ATTRIBUTE_REPARSE_POINT
    return attributes or FILE_ATTRIBUTE_NORMAL


def expected_creation_time(path: Path, st: os.stat_result) -> int:
    """The DOS xattr's creation time, else min(mtime, ctime) (Linux stat gives Python no birth time)."""
    dos = _dos_xattr(path, st)
    if dos is not None and dos[1]:
        return dos[1]
    return nt_time(min(st.st_mtime_ns, st.st_ctime_ns))


def expected_posix_information(path: Path, style: ShareStyle = DEFAULT_STYLE) -> bytes:
    """FilePosixInformation ([POSIX-FSCC]; protocol-notes 11.3) of the object at `path`, never following
    it."""
    st = os.lstat(path)
    is_dir = stat.S_ISDIR(st.st_mode)
    fixed = _POSIX_FIXED.pack(
        expected_creation_time(path, st),
        nt_time(st.st_atime_ns),
        nt_time(st.st_mtime_ns),
        nt_time(st.st_ctime_ns),
        0 if is_dir else st.st_size,  # EndOfFile: directories have none (Windows, Samba get_file_size_stat)
        0 if is_dir else st.st_blocks * 512,  # AllocationSize
        expected_attributes(path, st, style),
        st.st_ino,
        st.st_dev & 0xFFFFFFFF,  # DeviceId: st_dev, as Samba sends it
        0,
        st.st_nlink,
        expected_reparse_tag(st, style),
        expected_posix_mode(st, style),
    )
    return fixed + unix_user_sid(st.st_uid) + unix_group_sid(st.st_gid)


def expected_create_response(path: Path, style: ShareStyle = DEFAULT_STYLE) -> bytes:
    """SMB2_CREATE_POSIX_CONTEXT response data: the FilePosixInformation bytes from NumberOfLinks on."""
    return expected_posix_information(path, style)[68:]


FIELD_NAMES = ("CreationTime", "LastAccessTime", "LastWriteTime", "ChangeTime", "EndOfFile",
               "AllocationSize", "FileAttributes", "InodeNumber", "DeviceId", "Zero", "NumberOfLinks",
               "ReparseTag", "PosixMode")


def describe_posix_information(data: bytes) -> dict[str, object]:
    """Field name -> value of a FilePosixInformation body, for readable assertion failures."""
    values = dict(zip(FIELD_NAMES, _POSIX_FIXED.unpack_from(data, 0), strict=True))
    fields: dict[str, object] = dict(values)
    owner, end = split_sid(data, _POSIX_FIXED.size)
    group, end = split_sid(data, end)
    fields["OwnerSid"] = sid_string(owner)
    fields["GroupSid"] = sid_string(group)
    fields["trailing"] = data[end:].hex()
    fields["PosixMode"] = oct(values["PosixMode"])
    fields["FileAttributes"] = hex(values["FileAttributes"])
    fields["ReparseTag"] = hex(values["ReparseTag"])
    return fields


def assert_posix_information(actual: bytes, expected: bytes, what: str) -> None:
    if actual != expected:
        got, want = describe_posix_information(actual), describe_posix_information(expected)
        diff = {k: (got[k], want[k]) for k in want if got.get(k) != want[k]}
        raise AssertionError(f"{what}: fields differ (got, expected): {diff}\n got  {actual.hex()}\n want "
                             f"{expected.hex()}")


# -- POSIX directory entries ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PosixEntry:
    name: str
    file_index: int
    body: bytes  # the FilePosixInformation part: @8 up to the FileNameLength field


def posix_directory_entries(buffer: bytes) -> list[PosixEntry]:
    """Walk a QUERY_DIRECTORY 0x64 buffer: NextEntryOffset(4), FileIndex(4), FilePosixInformation body (80
    fixed bytes, owner SID, group SID), FileNameLength(4), FileName (protocol-notes 10, 11.3). Entries are
    8-byte aligned and the last one has NextEntryOffset 0."""
    entries = []
    position = 0
    while True:
        next_offset, file_index = struct.unpack_from("<II", buffer, position)
        _, after_owner = split_sid(buffer, position + 8 + _POSIX_FIXED.size)
        _, after_group = split_sid(buffer, after_owner)
        (name_length,) = struct.unpack_from("<I", buffer, after_group)
        name_start = after_group + 4
        name = buffer[name_start:name_start + name_length].decode("utf-16-le", "surrogatepass")
        entries.append(PosixEntry(name, file_index, bytes(buffer[position + 8:after_group])))
        if not next_offset:
            assert name_start + name_length <= len(buffer)
            return entries
        assert next_offset % 8 == 0 and next_offset >= name_start + name_length - position, "misaligned entry"
        position += next_offset


def list_posix(client: b.Client, directory_id: tuple[int, int], pattern: str = "*") -> list[PosixEntry]:
    """Every entry of a POSIX listing, until STATUS_NO_MORE_FILES."""
    entries: list[PosixEntry] = []
    flags = b.SMB2_RESTART_SCANS
    while True:
        response = client.query_directory(directory_id, pattern, info_class=SMB2_FIND_POSIX_INFORMATION,
                                          flags=flags)
        flags = 0
        if response.status == b.STATUS_NO_MORE_FILES:
            return entries
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        entries += posix_directory_entries(b.output_buffer(response))


# -- SET_INFO buffers ----------------------------------------------------------------------------------------

def disposition_info_ex(flags: int) -> bytes:
    """[MS-FSCC] 2.4.12 FILE_DISPOSITION_INFORMATION_EX: Flags(4)."""
    return struct.pack("<I", flags)


def rename_info_ex(target: str, flags: int) -> bytes:
    """[MS-FSCC] 2.4.42.2 FILE_RENAME_INFORMATION_EX (SMB2 form): Flags(4), Reserved(4), RootDirectory(8),
    FileNameLength(4), FileName."""
    name = b.utf16(target)
    return struct.pack("<I4xQI", flags, 0, len(name)) + name


# -- file-system information ---------------------------------------------------------------------------------

def expected_fs_posix_information(st: os.statvfs_result) -> bytes:
    """FileFsPosixInformation from statvfs the way Samba's linux_statvfs fills it (OptimalTransferSize =
    f_frsize, BlockSize = f_bsize, block and node counts as statvfs gives them, FileSysIdentifier =
    f_fsid)."""
    return FS_POSIX.pack(st.f_frsize, st.f_bsize, st.f_blocks, st.f_bfree, st.f_bavail, st.f_files,
                         st.f_ffree, st.f_fsid & 0xFFFFFFFFFFFFFFFF)
