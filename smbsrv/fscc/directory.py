"""QUERY_DIRECTORY entries.

[MS-FSCC] 2.4.10 FileDirectoryInformation, 2.4.17 FileFullDirectoryInformation, 2.4.8 FileBothDirectoryInformation,
2.4.33 FileNamesInformation, 2.4.21 FileIdBothDirectoryInformation, 2.4.23 FileIdFullDirectoryInformation,
2.4.22 FileIdExtdDirectoryInformation, [POSIX-FSCC] SMB2_FIND_POSIX_INFORMATION (0x64); [MS-SMB2] 3.3.5.18
(entries 8-byte aligned, the last NextEntryOffset 0, never a split entry). Protocol-notes section 10.

This is the hot path of a directory listing. Most entries (regular files and directories without a reparse
point) are written by a `row_packer` straight into the response buffer from stat fields, with no FileInfo; the
rest go through an encoder, a closure over one precompiled Struct that takes a FileInfo. Entries come out
unpadded with NextEntryOffset 0; the caller (commands/query_directory.py) links them.
"""

import struct
from collections.abc import Callable

from smbsrv.errors import SmbError
from smbsrv.fs.fileinfo import FileInfo
from smbsrv.fscc.attributes import FILE_ATTRIBUTE_REPARSE_POINT
from smbsrv.fscc.file_info import FileInformationClass, encode_posix
from smbsrv.wire.status import NtStatus

C = FileInformationClass

EntryEncoder = Callable[[FileInfo, bytes, int], bytes]

_ZERO_SHORT_NAME = bytes(24)

# NextEntryOffset, FileIndex, CreationTime, LastAccessTime, LastWriteTime, ChangeTime, EndOfFile, AllocationSize,
# FileAttributes, FileNameLength: the common prefix of classes 0x01, 0x02, 0x03, 0x25, 0x26, 0x3C.
_DIRECTORY = struct.Struct("<IIQQQQQQII")  # 64
_FULL_DIRECTORY = struct.Struct("<IIQQQQQQIII")  # + EaSize = 68
_BOTH_DIRECTORY = struct.Struct("<IIQQQQQQIIIBB24s")  # + ShortNameLength, Reserved1, ShortName = 94
_NAMES = struct.Struct("<III")  # NextEntryOffset, FileIndex, FileNameLength = 12
_ID_BOTH_DIRECTORY = struct.Struct("<IIQQQQQQIIIBB24sHQ")  # + Reserved2, FileId = 104
_ID_FULL_DIRECTORY = struct.Struct("<IIQQQQQQIIIIQ")  # + Reserved1, FileId = 80
_ID_EXTD_DIRECTORY = struct.Struct("<IIQQQQQQIIIIQQ")  # + EaSize, ReparsePointTag, FileId(16) = 88
# POSIX: NextEntryOffset and FileIndex, then the FilePosixInformation of QUERY_INFO class 100 (80 bytes and two
# 16-byte S-1-22 SIDs, file_info.encode_posix), then FileNameLength and the name.
_POSIX_HEAD = struct.Struct("<II")
_POSIX_FIXED_SIZE = _POSIX_HEAD.size + 112 + 4

_U32 = struct.Struct("<I")

ENTRY_FIXED_SIZE: dict[int, int] = {
    C.FileDirectoryInformation: _DIRECTORY.size,
    C.FileFullDirectoryInformation: _FULL_DIRECTORY.size,
    C.FileBothDirectoryInformation: _BOTH_DIRECTORY.size,
    C.FileNamesInformation: _NAMES.size,
    C.FileIdBothDirectoryInformation: _ID_BOTH_DIRECTORY.size,
    C.FileIdFullDirectoryInformation: _ID_FULL_DIRECTORY.size,
    C.FileIdExtdDirectoryInformation: _ID_EXTD_DIRECTORY.size,
    C.FilePosixInformation: _POSIX_FIXED_SIZE,
}


def _ea_size_field(info: FileInfo) -> int:
    # [MS-FSCC] 2.4.8 and siblings: with FILE_ATTRIBUTE_REPARSE_POINT set, EaSize carries the reparse tag
    # (cifs.ko takes d_type from it).
    return info.reparse_tag if info.attributes & FILE_ATTRIBUTE_REPARSE_POINT else info.ea_size


def _directory(info: FileInfo, name: bytes, file_index: int) -> bytes:
    return (
        _DIRECTORY.pack(
            0,
            file_index,
            info.creation_time,
            info.last_access_time,
            info.last_write_time,
            info.change_time,
            info.end_of_file,
            info.allocation_size,
            info.attributes,
            len(name),
        )
        + name
    )


def _full_directory(info: FileInfo, name: bytes, file_index: int) -> bytes:
    return (
        _FULL_DIRECTORY.pack(
            0,
            file_index,
            info.creation_time,
            info.last_access_time,
            info.last_write_time,
            info.change_time,
            info.end_of_file,
            info.allocation_size,
            info.attributes,
            len(name),
            _ea_size_field(info),
        )
        + name
    )


def _both_directory(info: FileInfo, name: bytes, file_index: int) -> bytes:
    return (
        _BOTH_DIRECTORY.pack(
            0,
            file_index,
            info.creation_time,
            info.last_access_time,
            info.last_write_time,
            info.change_time,
            info.end_of_file,
            info.allocation_size,
            info.attributes,
            len(name),
            _ea_size_field(info),
            0,
            0,
            _ZERO_SHORT_NAME,
        )
        + name
    )


def _names(info: FileInfo, name: bytes, file_index: int) -> bytes:
    return _NAMES.pack(0, file_index, len(name)) + name


def _id_both_directory(info: FileInfo, name: bytes, file_index: int) -> bytes:
    return (
        _ID_BOTH_DIRECTORY.pack(
            0,
            file_index,
            info.creation_time,
            info.last_access_time,
            info.last_write_time,
            info.change_time,
            info.end_of_file,
            info.allocation_size,
            info.attributes,
            len(name),
            _ea_size_field(info),
            0,
            0,
            _ZERO_SHORT_NAME,
            0,
            info.index_number,
        )
        + name
    )


def _id_full_directory(info: FileInfo, name: bytes, file_index: int) -> bytes:
    return (
        _ID_FULL_DIRECTORY.pack(
            0,
            file_index,
            info.creation_time,
            info.last_access_time,
            info.last_write_time,
            info.change_time,
            info.end_of_file,
            info.allocation_size,
            info.attributes,
            len(name),
            _ea_size_field(info),
            0,
            info.index_number,
        )
        + name
    )


def _id_extd_directory(info: FileInfo, name: bytes, file_index: int) -> bytes:
    # This class has its own ReparsePointTag field, so EaSize keeps its plain meaning ([MS-FSCC] 2.4.22).
    is_reparse = info.attributes & FILE_ATTRIBUTE_REPARSE_POINT
    return (
        _ID_EXTD_DIRECTORY.pack(
            0,
            file_index,
            info.creation_time,
            info.last_access_time,
            info.last_write_time,
            info.change_time,
            info.end_of_file,
            info.allocation_size,
            info.attributes,
            len(name),
            info.ea_size,
            info.reparse_tag if is_reparse else 0,
            info.index_number,
            0,
        )
        + name
    )


def _make_posix(with_file_type: bool) -> EntryEncoder:
    def _posix(info: FileInfo, name: bytes, file_index: int) -> bytes:
        return b"".join((_POSIX_HEAD.pack(0, file_index), encode_posix(info, with_file_type),
                         _U32.pack(len(name)), name))

    return _posix


_POSIX_WITH_TYPE = _make_posix(True)
_POSIX_PERMISSIONS_ONLY = _make_posix(False)

_ENCODERS: dict[int, EntryEncoder] = {
    C.FileDirectoryInformation: _directory,
    C.FileFullDirectoryInformation: _full_directory,
    C.FileBothDirectoryInformation: _both_directory,
    C.FileNamesInformation: _names,
    C.FileIdBothDirectoryInformation: _id_both_directory,
    C.FileIdFullDirectoryInformation: _id_full_directory,
    C.FileIdExtdDirectoryInformation: _id_extd_directory,
    C.FilePosixInformation: _POSIX_WITH_TYPE,
}


def _short_name_field(name: bytes, short_name: Callable[[str], str]) -> tuple[int, bytes]:
    """ShortNameLength and the 24-byte ShortName ([MS-FSCC] 2.4.8): empty for a name that is 8.3 itself."""
    short = short_name(name.decode("utf-16-le", "surrogatepass"))
    if not short:
        return 0, _ZERO_SHORT_NAME
    encoded = short.upper().encode("utf-16-le")[:24]
    return len(encoded), encoded


def _with_short_names(info_class: int, short_name: Callable[[str], str]) -> EntryEncoder:
    both = info_class == C.FileBothDirectoryInformation

    def encode(info: FileInfo, name: bytes, file_index: int) -> bytes:
        length, short = _short_name_field(name, short_name)
        fields = (0, file_index, info.creation_time, info.last_access_time, info.last_write_time,
                  info.change_time, info.end_of_file, info.allocation_size, info.attributes, len(name),
                  _ea_size_field(info), length, 0, short)
        if both:
            return _BOTH_DIRECTORY.pack(*fields) + name
        return _ID_BOTH_DIRECTORY.pack(*fields, 0, info.index_number) + name

    return encode


def entry_encoder(info_class: int, posix_with_file_type: bool = True,
                  short_name: Callable[[str], str] | None = None) -> EntryEncoder:
    """The encoder for one QUERY_DIRECTORY class: (FileInfo, UTF-16LE name, FileIndex) -> unpadded entry with
    NextEntryOffset 0. For the POSIX class the PosixMode type comes from the reparse tag or st_mode (a backend
    presenting a client-set NFS buffer can put its type into FileInfo.mode's S_IFMT bits). An unknown class
    raises SmbError(STATUS_INVALID_INFO_CLASS) ([MS-SMB2] 3.3.5.18).

    `short_name`: name -> its 8.3 short name, "" when the name is 8.3 itself (fs/mangle.py); the two Both
    classes then carry it, as Samba fills ShortName only for names that are not 8.3."""
    if short_name is not None and info_class in (C.FileBothDirectoryInformation, C.FileIdBothDirectoryInformation):
        return _with_short_names(info_class, short_name)
    if info_class == C.FilePosixInformation and not posix_with_file_type:
        return _POSIX_PERMISSIONS_ONLY
    try:
        return _ENCODERS[info_class]
    except KeyError:
        raise SmbError(NtStatus.STATUS_INVALID_INFO_CLASS) from None


def encode_entry(info_class: int, info: FileInfo, name: str, file_index: int = 0) -> bytes:
    """One entry of `info_class` (convenience form of entry_encoder)."""
    return entry_encoder(info_class)(info, name.encode("utf-16-le", "surrogatepass"), file_index)


# --- the listing's fast path: fixed fields packed straight into the response buffer --------------------------

# (buffer, offset, CreationTime, LastAccessTime, LastWriteTime, ChangeTime, EndOfFile, AllocationSize,
# FileAttributes, FileId, UTF-16LE name) -> the offset after the entry. For entries that are no reparse point
# and report no EAs, so EaSize (and IdExtd's ReparsePointTag) is 0, FileIndex 0 and NextEntryOffset left for
# the caller to link. The buffer is zero-filled, so the short name, reserved fields and padding need no writes.
RowPacker = Callable[[bytearray, int, int, int, int, int, int, int, int, int, bytes], int]


def _row_packer(layout: struct.Struct, tail: int) -> RowPacker:
    """A packer for the classes that start with _DIRECTORY's fields; `tail` is FileId's offset, 0 for none."""
    pack_into = _DIRECTORY.pack_into
    fixed = layout.size
    if tail:
        pack_id = struct.Struct("<Q").pack_into

        def pack_with_id(buf: bytearray, offset: int, creation: int, access: int, write: int, change: int,
                         eof: int, allocation: int, attributes: int, file_id: int, name: bytes) -> int:
            pack_into(buf, offset, 0, 0, creation, access, write, change, eof, allocation, attributes, len(name))
            pack_id(buf, offset + tail, file_id)
            start = offset + fixed
            end = start + len(name)
            buf[start:end] = name
            return end

        return pack_with_id

    def pack(buf: bytearray, offset: int, creation: int, access: int, write: int, change: int, eof: int,
             allocation: int, attributes: int, file_id: int, name: bytes) -> int:
        pack_into(buf, offset, 0, 0, creation, access, write, change, eof, allocation, attributes, len(name))
        start = offset + fixed
        end = start + len(name)
        buf[start:end] = name
        return end

    return pack


def _names_row(buf: bytearray, offset: int, creation: int, access: int, write: int, change: int, eof: int,
               allocation: int, attributes: int, file_id: int, name: bytes) -> int:
    _NAMES.pack_into(buf, offset, 0, 0, len(name))
    start = offset + _NAMES.size
    end = start + len(name)
    buf[start:end] = name
    return end


_ROW_PACKERS: dict[int, RowPacker] = {
    C.FileDirectoryInformation: _row_packer(_DIRECTORY, 0),
    C.FileFullDirectoryInformation: _row_packer(_FULL_DIRECTORY, 0),
    C.FileBothDirectoryInformation: _row_packer(_BOTH_DIRECTORY, 0),
    C.FileNamesInformation: _names_row,
    C.FileIdBothDirectoryInformation: _row_packer(_ID_BOTH_DIRECTORY, _ID_BOTH_DIRECTORY.size - 8),
    C.FileIdFullDirectoryInformation: _row_packer(_ID_FULL_DIRECTORY, _ID_FULL_DIRECTORY.size - 8),
    C.FileIdExtdDirectoryInformation: _row_packer(_ID_EXTD_DIRECTORY, _ID_EXTD_DIRECTORY.size - 16),
}


def row_packer(info_class: int, short_names: bool = False) -> RowPacker | None:
    """The fast-path packer of a class (see RowPacker), None where entries need more than those fields: the
    POSIX class, and the two Both classes when they carry short names."""
    if short_names and info_class in (C.FileBothDirectoryInformation, C.FileIdBothDirectoryInformation):
        return None
    return _ROW_PACKERS.get(info_class)
