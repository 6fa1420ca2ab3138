"""Reparse buffers, symlink error responses and attribute readers for tests/integration/test_reparse.py.

Everything here is written from the specs, not from the server's own codecs, so a layout bug on the server
cannot hide behind the same bug in the test:
- [MS-FSCC] 2.1.2.2 REPARSE_DATA_BUFFER, 2.1.2.3 REPARSE_GUID_DATA_BUFFER, 2.1.2.4 symbolic link, 2.1.2.6 NFS;
- [MS-SMB2] 2.2.2 / 2.2.2.1 ERROR response and error contexts, 2.2.2.2.1 Symbolic Link Error Response;
- [MS-SMB2] 2.2.14 CREATE response, 2.2.16 CLOSE response, 2.2.32 IOCTL response;
- [MS-FSCC] 2.4.7 FileBasic, 2.4.2 FileAll, 2.4.29 FileNetworkOpen, 2.4.6 FileAttributeTag information,
  2.4.10 / 2.4.14 / 2.4.8 / 2.4.17 / 2.4.18 / 2.4.22 directory classes, 2.5.1 FileFsAttributeInformation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tests import builders as b

# -- constants, spelled as in the specs ----------------------------------------------------------------------

IO_REPARSE_TAG_SYMLINK = 0xA000000C
IO_REPARSE_TAG_NFS = 0x80000014
IO_REPARSE_TAG_AF_UNIX = 0x80000023
IO_REPARSE_TAG_LX_FIFO = 0x80000024
IO_REPARSE_TAG_LX_CHR = 0x80000025
IO_REPARSE_TAG_LX_BLK = 0x80000026
SYMLINK_FLAG_RELATIVE = 0x00000001
SYMLINK_ERROR_TAG = 0x4C4D5953  # "SYML"
SMB2_ERROR_ID_DEFAULT = 0

# [MS-FSCC] 2.1.2.6: the 8-byte Type field holds the ASCII type name.
NFS_SPECFILE_LNK = 0x00000000014B4E4C
NFS_SPECFILE_CHR = 0x0000000000524843
NFS_SPECFILE_BLK = 0x00000000004B4C42
NFS_SPECFILE_FIFO = 0x000000004F464946
NFS_SPECFILE_SOCK = 0x000000004B434F53

FSCTL_SET_REPARSE_POINT = 0x000900A4
FSCTL_GET_REPARSE_POINT = 0x000900A8
FSCTL_DELETE_REPARSE_POINT = 0x000900AC

FILE_ATTRIBUTE_DIRECTORY = 0x00000010
FILE_ATTRIBUTE_ARCHIVE = 0x00000020
FILE_ATTRIBUTE_NORMAL = 0x00000080
FILE_ATTRIBUTE_REPARSE_POINT = 0x00000400
SMB2_CREATE_FLAG_REPARSEPOINT = 0x01
SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB = 0x0001
FILE_SUPPORTS_REPARSE_POINTS = 0x00000080

FILE_BASIC_INFORMATION = 4
FILE_ALL_INFORMATION = 18
FILE_END_OF_FILE_INFORMATION = 20
FILE_NETWORK_OPEN_INFORMATION = 34
FILE_ATTRIBUTE_TAG_INFORMATION = 35
FILE_FS_ATTRIBUTE_INFORMATION = 5

FILE_DIRECTORY_INFORMATION = 0x01
FILE_FULL_DIRECTORY_INFORMATION = 0x02
FILE_BOTH_DIRECTORY_INFORMATION = 0x03
FILE_ID_BOTH_DIRECTORY_INFORMATION = 0x25
FILE_ID_FULL_DIRECTORY_INFORMATION = 0x26
FILE_ID_EXTD_DIRECTORY_INFORMATION = 0x3C
DIRECTORY_CLASSES = (
    FILE_DIRECTORY_INFORMATION,
    FILE_FULL_DIRECTORY_INFORMATION,
    FILE_BOTH_DIRECTORY_INFORMATION,
    FILE_ID_BOTH_DIRECTORY_INFORMATION,
    FILE_ID_FULL_DIRECTORY_INFORMATION,
    FILE_ID_EXTD_DIRECTORY_INFORMATION,
)

STATUS_BUFFER_OVERFLOW = 0x80000005
STATUS_STOPPED_ON_SYMLINK = 0x8000002D
STATUS_INVALID_BUFFER_SIZE = 0xC0000206
STATUS_NOT_A_REPARSE_POINT = 0xC0000275
STATUS_IO_REPARSE_TAG_INVALID = 0xC0000276
STATUS_IO_REPARSE_TAG_MISMATCH = 0xC0000277
STATUS_IO_REPARSE_DATA_INVALID = 0xC0000278
STATUS_IO_REPARSE_TAG_NOT_HANDLED = 0xC0000279
STATUS_REPARSE_ATTRIBUTE_CONFLICT = 0xC00002B2

_REPARSE_HEADER = struct.Struct("<IHH")  # ReparseTag, ReparseDataLength, Reserved
_SYMLINK_FIELDS = struct.Struct("<HHHHI")  # SubstituteNameOffset/Length, PrintNameOffset/Length, Flags
_SYMLINK_ERROR_HEAD = struct.Struct("<I4sIHH")  # SymLinkLength, SymLinkErrorTag, ReparseTag, Length, Unparsed
_ERROR_RESPONSE = struct.Struct("<HBBI")  # StructureSize, ErrorContextCount, Reserved, ByteCount
_ERROR_CONTEXT = struct.Struct("<II")  # ErrorDataLength, ErrorId


def status_name(status: int) -> str:
    for name, value in globals().items():
        if name.startswith("STATUS_") and value == status:
            return name
    return b.status_name(status)


def utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


# -- reparse buffers ([MS-FSCC] 2.1.2) -------------------------------------------------------------------------

def reparse_buffer(tag: int, data: bytes, reparse_data_length: int | None = None, reserved: int = 0) -> bytes:
    """REPARSE_DATA_BUFFER; `reparse_data_length` may lie to build malformed input."""
    length = len(data) if reparse_data_length is None else reparse_data_length
    return _REPARSE_HEADER.pack(tag, length, reserved) + data


def guid_reparse_buffer(tag: int, guid: bytes, data: bytes, reparse_data_length: int | None = None) -> bytes:
    """REPARSE_GUID_DATA_BUFFER: ReparseDataLength counts the bytes after the 16-byte ReparseGuid."""
    length = len(data) if reparse_data_length is None else reparse_data_length
    return _REPARSE_HEADER.pack(tag, length, 0) + guid + data


def symlink_data(substitute: str, print_name: str, flags: int, print_first: bool = False) -> bytes:
    """The DataBuffer of IO_REPARSE_TAG_SYMLINK ([MS-FSCC] 2.1.2.4): offsets count from PathBuffer."""
    sub, prt = utf16(substitute), utf16(print_name)
    if print_first:
        fields = _SYMLINK_FIELDS.pack(len(prt), len(sub), 0, len(prt), flags)
        return fields + prt + sub
    fields = _SYMLINK_FIELDS.pack(0, len(sub), len(sub), len(prt), flags)
    return fields + sub + prt


def symlink_buffer(substitute: str, print_name: str | None = None, flags: int = SYMLINK_FLAG_RELATIVE,
                   print_first: bool = False) -> bytes:
    data = symlink_data(substitute, substitute if print_name is None else print_name, flags, print_first)
    return reparse_buffer(IO_REPARSE_TAG_SYMLINK, data)


def nfs_buffer(nfs_type: int, payload: bytes = b"") -> bytes:
    """IO_REPARSE_TAG_NFS ([MS-FSCC] 2.1.2.6): Type(8) then the type's DataBuffer."""
    return reparse_buffer(IO_REPARSE_TAG_NFS, struct.pack("<Q", nfs_type) + payload)


def nfs_device_buffer(nfs_type: int, major: int, minor: int) -> bytes:
    """CHR/BLK: Major then Minor, 32 bits each (protocol-notes 8.4)."""
    return nfs_buffer(nfs_type, struct.pack("<II", major, minor))


def delete_header(tag: int, guid: bytes | None = None, reparse_data_length: int = 0) -> bytes:
    """FSCTL_DELETE_REPARSE_POINT input ([MS-FSCC] 2.3.6): the header only (plus the GUID for third-party
    tags)."""
    return _REPARSE_HEADER.pack(tag, reparse_data_length, 0) + (guid or b"")


# -- the symbolic link error response ([MS-SMB2] 2.2.2.2.1) --------------------------------------------------

def symlink_error_data(substitute: str, print_name: str, flags: int, unparsed_path_length: int) -> bytes:
    """The Symbolic Link Error Response with the substitute name first in PathBuffer (the order the server,
    Samba and Windows' mklink use)."""
    sub, prt = utf16(substitute), utf16(print_name)
    path_buffer = sub + prt
    body = struct.pack("<IHHHHHHI", IO_REPARSE_TAG_SYMLINK, 12 + len(path_buffer), unparsed_path_length,
                       0, len(sub), len(sub), len(prt), flags) + path_buffer
    return struct.pack("<I", 4 + len(body)) + struct.pack("<I", SYMLINK_ERROR_TAG) + body


def error_response_body(error_data: bytes, dialect: int) -> bytes:
    """The whole ERROR response body ([MS-SMB2] 2.2.2) carrying `error_data`: on 3.1.1 inside one error
    context with ErrorId SMB2_ERROR_ID_DEFAULT (2.2.2.1), on older dialects as bare ErrorData."""
    if dialect == 0x0311:
        context = _ERROR_CONTEXT.pack(len(error_data), SMB2_ERROR_ID_DEFAULT) + error_data
        return _ERROR_RESPONSE.pack(9, 1, 0, len(context)) + context
    return _ERROR_RESPONSE.pack(9, 0, 0, len(error_data)) + error_data


@dataclass(frozen=True)
class SymlinkError:
    """The fields of a received Symbolic Link Error Response."""

    unparsed_path_length: int
    substitute_name: str
    print_name: str
    flags: int
    error_data: bytes


def parse_symlink_error(response: b.Response, dialect: int) -> SymlinkError:
    """Check the framing of a STOPPED_ON_SYMLINK answer for `dialect` and read the symlink fields."""
    assert response.status == STATUS_STOPPED_ON_SYMLINK, status_name(response.status)
    structure_size, context_count, _reserved, byte_count = _ERROR_RESPONSE.unpack_from(response.body, 0)
    assert structure_size == 9
    payload = response.body[8:8 + byte_count]
    assert len(payload) == byte_count, "ByteCount runs past the response"
    if dialect == 0x0311:
        assert context_count == 1, f"3.1.1 wraps the symlink error in one error context, got {context_count}"
        data_length, error_id = _ERROR_CONTEXT.unpack_from(payload, 0)
        assert error_id == SMB2_ERROR_ID_DEFAULT
        data = payload[8:8 + data_length]
    else:
        assert context_count == 0, f"dialect 0x{dialect:04x} has no error contexts, got {context_count}"
        data = payload
    sym_link_length, error_tag, reparse_tag, data_length, unparsed = _SYMLINK_ERROR_HEAD.unpack_from(data, 0)
    assert error_tag == b"SYML"
    assert reparse_tag == IO_REPARSE_TAG_SYMLINK
    assert sym_link_length == len(data) - 4
    sub_off, sub_len, prt_off, prt_len, flags = _SYMLINK_FIELDS.unpack_from(data, 16)
    path_buffer = data[28:]
    assert data_length == 12 + len(path_buffer)
    assert sub_off + sub_len <= len(path_buffer) and prt_off + prt_len <= len(path_buffer)
    return SymlinkError(unparsed,
                        path_buffer[sub_off:sub_off + sub_len].decode("utf-16-le"),
                        path_buffer[prt_off:prt_off + prt_len].decode("utf-16-le"),
                        flags, data)


@dataclass(frozen=True)
class SymlinkReparse:
    substitute_name: str
    print_name: str
    flags: int


def parse_symlink_buffer(buffer: bytes) -> SymlinkReparse:
    tag, data_length, _reserved = _REPARSE_HEADER.unpack_from(buffer, 0)
    assert tag == IO_REPARSE_TAG_SYMLINK, f"tag 0x{tag:08x}"
    assert data_length == len(buffer) - 8
    sub_off, sub_len, prt_off, prt_len, flags = _SYMLINK_FIELDS.unpack_from(buffer, 8)
    path_buffer = buffer[20:]
    return SymlinkReparse(path_buffer[sub_off:sub_off + sub_len].decode("utf-16-le"),
                          path_buffer[prt_off:prt_off + prt_len].decode("utf-16-le"), flags)


# -- FSCTLs ------------------------------------------------------------------------------------------------

def ioctl(client: b.Client, file_id: tuple[int, int], ctl_code: int, input_data: bytes = b"",
          max_output: int = 65536) -> b.Response:
    return client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, ctl_code, input_data, max_output=max_output))


def ioctl_output(response: b.Response) -> bytes:
    """OutputOffset(4)@32 (from the header) and OutputCount(4)@36 of the IOCTL response ([MS-SMB2] 2.2.32)."""
    offset, count = struct.unpack_from("<II", response.body, 32)
    if not count:
        return b""
    start = offset - b.HEADER_SIZE
    return response.body[start:start + count]


def set_reparse(client: b.Client, file_id: tuple[int, int], buffer: bytes) -> int:
    return ioctl(client, file_id, FSCTL_SET_REPARSE_POINT, buffer, max_output=0).status


def get_reparse(client: b.Client, file_id: tuple[int, int], max_output: int = 65536) -> tuple[int, bytes]:
    response = ioctl(client, file_id, FSCTL_GET_REPARSE_POINT, max_output=max_output)
    if response.status in (b.STATUS_SUCCESS, STATUS_BUFFER_OVERFLOW):
        return response.status, ioctl_output(response)
    return response.status, b""


def delete_reparse(client: b.Client, file_id: tuple[int, int], header: bytes) -> int:
    return ioctl(client, file_id, FSCTL_DELETE_REPARSE_POINT, header, max_output=0).status


# -- attributes wherever they are reported ------------------------------------------------------------------

def create_flags_and_attributes(response: b.Response) -> tuple[int, int]:
    """Flags(1)@3 and FileAttributes(4)@56 of a CREATE response ([MS-SMB2] 2.2.14)."""
    return response.body[3], struct.unpack_from("<I", response.body, 56)[0]


def close_postquery_attributes(client: b.Client, file_id: tuple[int, int]) -> int:
    """CLOSE with SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB: the response echoes the flag and FileAttributes@56."""
    response = client.request(b.SMB2_CLOSE, b.close_body(file_id, flags=SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB))
    assert response.status == b.STATUS_SUCCESS, status_name(response.status)
    flags, = struct.unpack_from("<H", response.body, 2)
    assert flags == SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB
    return int(struct.unpack_from("<I", response.body, 56)[0])


def query_file_info(client: b.Client, file_id: tuple[int, int], info_class: int) -> bytes:
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, info_class)
    assert response.status == b.STATUS_SUCCESS, f"class {info_class}: {status_name(response.status)}"
    return b.output_buffer(response)


@dataclass(frozen=True)
class HandleInfo:
    """FileAttributes from each class that reports them, and the ReparseTag of FileAttributeTagInformation."""

    basic: int
    all: int
    network_open: int
    attribute_tag: int
    reparse_tag: int


def handle_info(client: b.Client, file_id: tuple[int, int]) -> HandleInfo:
    basic = query_file_info(client, file_id, FILE_BASIC_INFORMATION)
    everything = query_file_info(client, file_id, FILE_ALL_INFORMATION)
    network_open = query_file_info(client, file_id, FILE_NETWORK_OPEN_INFORMATION)
    attribute_tag = query_file_info(client, file_id, FILE_ATTRIBUTE_TAG_INFORMATION)
    tag_attributes, tag = struct.unpack_from("<II", attribute_tag, 0)
    return HandleInfo(struct.unpack_from("<I", basic, 32)[0], struct.unpack_from("<I", everything, 32)[0],
                      struct.unpack_from("<I", network_open, 48)[0], tag_attributes, tag)


@dataclass(frozen=True)
class DirectoryEntry:
    attributes: int
    ea_size: int | None  # None for FileDirectoryInformation, which has no EaSize
    reparse_point_tag: int | None  # only FileIdExtdDirectoryInformation has this field


# class -> offset of FileName; FileAttributes@56, FileNameLength@60 and EaSize@64 are common to all of them.
_NAME_OFFSET = {
    FILE_DIRECTORY_INFORMATION: 64,
    FILE_FULL_DIRECTORY_INFORMATION: 68,
    FILE_BOTH_DIRECTORY_INFORMATION: 94,
    FILE_ID_BOTH_DIRECTORY_INFORMATION: 104,
    FILE_ID_FULL_DIRECTORY_INFORMATION: 80,
    FILE_ID_EXTD_DIRECTORY_INFORMATION: 88,
}


def directory_entries(client: b.Client, directory: str, info_class: int, pattern: str = "*"
                      ) -> dict[str, DirectoryEntry]:
    """Every entry of `directory` in `info_class`, by name, until STATUS_NO_MORE_FILES."""
    file_id = client.open(directory, desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
    entries: dict[str, DirectoryEntry] = {}
    try:
        while True:
            response = client.query_directory(file_id, pattern, info_class=info_class)
            if response.status in (b.STATUS_NO_MORE_FILES, b.STATUS_NO_SUCH_FILE):
                return entries
            assert response.status == b.STATUS_SUCCESS, status_name(response.status)
            buffer = b.output_buffer(response)
            position = 0
            while True:
                next_offset, = struct.unpack_from("<I", buffer, position)
                attributes, name_length = struct.unpack_from("<II", buffer, position + 56)
                start = position + _NAME_OFFSET[info_class]
                name = buffer[start:start + name_length].decode("utf-16-le")
                ea_size = None
                if info_class != FILE_DIRECTORY_INFORMATION:
                    ea_size = struct.unpack_from("<I", buffer, position + 64)[0]
                tag = None
                if info_class == FILE_ID_EXTD_DIRECTORY_INFORMATION:
                    tag = struct.unpack_from("<I", buffer, position + 68)[0]
                entries[name] = DirectoryEntry(attributes, ea_size, tag)
                if not next_offset:
                    break
                position += next_offset
    finally:
        client.close_file(file_id)


def fs_attributes(client: b.Client, file_id: tuple[int, int]) -> int:
    """FileSystemAttributes(4)@0 of FileFsAttributeInformation ([MS-FSCC] 2.5.1)."""
    response = client.query_info(file_id, b.SMB2_0_INFO_FILESYSTEM, FILE_FS_ATTRIBUTE_INFORMATION)
    assert response.status == b.STATUS_SUCCESS, status_name(response.status)
    return int(struct.unpack_from("<I", b.output_buffer(response), 0)[0])


# -- SMB3 POSIX extensions ([POSIX-SMB2], [POSIX-FSCC]; protocol-notes 6, 11.3) ----------------------------

FILE_POSIX_INFORMATION = 100
SMB2_FIND_POSIX_INFORMATION = 0x64
# PosixMode bits 12-15: the file type as a small enum ([POSIX-FSCC] 2.1.1).
POSIX_TYPE_REGULAR, POSIX_TYPE_DIRECTORY, POSIX_TYPE_SYMLINK = 0, 1, 2
POSIX_TYPE_CHARDEV, POSIX_TYPE_BLOCKDEV, POSIX_TYPE_FIFO, POSIX_TYPE_SOCKET = 3, 4, 5, 6


def create_contexts(response: b.Response) -> dict[bytes, bytes]:
    """Name -> data of the contexts of a CREATE response: CreateContextsOffset(4)@80, Length(4)@84 ([MS-SMB2]
    2.2.14), each Next(4), NameOffset(2), NameLength(2), Reserved(2), DataOffset(2), DataLength(4) (2.2.13.2)."""
    offset, length = struct.unpack_from("<II", response.body, 80)
    contexts: dict[bytes, bytes] = {}
    if not length:
        return contexts
    position = offset - b.HEADER_SIZE
    while True:
        next_offset, name_offset, name_length, _reserved, data_offset, data_length = struct.unpack_from(
            "<IHHHHI", response.body, position)
        name = response.body[position + name_offset:position + name_offset + name_length]
        contexts[name] = response.body[position + data_offset:position + data_offset + data_length]
        if not next_offset:
            return contexts
        position += next_offset


@dataclass(frozen=True)
class PosixView:
    attributes: int | None  # None where the structure carries no FileAttributes (the create context)
    reparse_tag: int
    posix_type: int


def posix_create_view(data: bytes) -> PosixView:
    """The POSIX create context response: NumberOfLinks(4), ReparseTag(4), PosixMode(4), SIDs."""
    _links, tag, mode = struct.unpack_from("<III", data, 0)
    return PosixView(None, tag, (mode >> 12) & 0xF)


def posix_info_view(data: bytes, at: int = 0) -> PosixView:
    """FilePosixInformation ([POSIX-FSCC]; protocol-notes 11.3) starting at `at`."""
    attributes, = struct.unpack_from("<I", data, at + 48)
    tag, mode = struct.unpack_from("<II", data, at + 72)
    return PosixView(attributes, tag, (mode >> 12) & 0xF)


def _sid_length(data: bytes, at: int) -> int:
    """A binary SID ([MS-DTYP] 2.4.2.2): Revision(1), SubAuthorityCount(1), Authority(6), 4 bytes each."""
    return 8 + 4 * data[at + 1]


def posix_directory_entries(client: b.Client, directory: str) -> dict[str, PosixView]:
    """SMB2_FIND_POSIX_INFORMATION entries: FilePosixInformation from @8, then FileNameLength(4), FileName."""
    # The POSIX levels are answered on POSIX opens only (as Samba does): open the directory with the context.
    file_id = client.open(directory, desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE,
                          contexts=b.create_context(b.POSIX_EXTENSIONS_GUID, struct.pack("<I", 0o755)))
    entries: dict[str, PosixView] = {}
    try:
        while True:
            response = client.query_directory(file_id, "*", info_class=SMB2_FIND_POSIX_INFORMATION)
            if response.status in (b.STATUS_NO_MORE_FILES, b.STATUS_NO_SUCH_FILE):
                return entries
            assert response.status == b.STATUS_SUCCESS, status_name(response.status)
            buffer = b.output_buffer(response)
            position = 0
            while True:
                next_offset, = struct.unpack_from("<I", buffer, position)
                sids = position + 8 + 80
                sids += _sid_length(buffer, sids)
                sids += _sid_length(buffer, sids)
                name_length, = struct.unpack_from("<I", buffer, sids)
                name = buffer[sids + 4:sids + 4 + name_length].decode("utf-16-le")
                entries[name] = posix_info_view(buffer, position + 8)
                if not next_offset:
                    break
                position += next_offset
    finally:
        client.close_file(file_id)
