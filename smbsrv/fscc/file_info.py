"""File information classes for QUERY_INFO (InfoType SMB2_0_INFO_FILE): numbers and encoders.

[MS-FSCC] 2.4 (file information classes), [MS-SMB2] 2.2.37/2.2.38, [POSIX-FSCC] FilePosixInformation
(protocol-notes 11.1 and 11.3). The SET_INFO decoders live in `smbsrv.fscc.set_info`.

Encoders take the FileInfo of one stat plus the per-open state the class needs, and return the bytes of the
whole structure; truncation to OutputBufferLength (STATUS_BUFFER_OVERFLOW) is the caller's business, and
FIXED_SIZE says below which length the answer is STATUS_INFO_LENGTH_MISMATCH instead.
"""

import enum
import stat
import struct
from collections.abc import Iterable, Sequence

from smbsrv.errors import SmbError
from smbsrv.fs.fileinfo import FileInfo
from smbsrv.fscc.attributes import (
    FILE_ATTRIBUTE_REPARSE_POINT,
    FILE_ATTRIBUTE_SPARSE_FILE,
    IO_REPARSE_TAG_AF_UNIX,
    IO_REPARSE_TAG_LX_BLK,
    IO_REPARSE_TAG_LX_CHR,
    IO_REPARSE_TAG_LX_FIFO,
    IO_REPARSE_TAG_LX_SYMLINK,
    IO_REPARSE_TAG_NFS,
    IO_REPARSE_TAG_SYMLINK,
)
from smbsrv.fscc.ea import EaEntry, encode_full_ea_list
from smbsrv.fscc.reparse import (
    NFS_SPECFILE_BLK,
    NFS_SPECFILE_CHR,
    NFS_SPECFILE_FIFO,
    NFS_SPECFILE_LNK,
    NFS_SPECFILE_SOCK,
)
from smbsrv.fscc.security import unix_group_sid_bytes, unix_user_sid_bytes
from smbsrv.wire.status import NtStatus


class FileInformationClass(enum.IntEnum):
    """[MS-FSCC] 2.4 information class numbers, plus FilePosixInformation from [POSIX-FSCC]."""

    FileDirectoryInformation = 1
    FileFullDirectoryInformation = 2
    FileBothDirectoryInformation = 3
    FileBasicInformation = 4
    FileStandardInformation = 5
    FileInternalInformation = 6
    FileEaInformation = 7
    FileAccessInformation = 8
    FileNameInformation = 9
    FileRenameInformation = 10
    FileLinkInformation = 11
    FileNamesInformation = 12
    FileDispositionInformation = 13
    FilePositionInformation = 14
    FileFullEaInformation = 15
    FileModeInformation = 16
    FileAlignmentInformation = 17
    FileAllInformation = 18
    FileAllocationInformation = 19
    FileEndOfFileInformation = 20
    FileAlternateNameInformation = 21
    FileStreamInformation = 22
    FilePipeInformation = 23
    FilePipeLocalInformation = 24
    FilePipeRemoteInformation = 25
    FileCompressionInformation = 28
    FileObjectIdInformation = 29
    FileQuotaInformation = 32
    FileReparsePointInformation = 33
    FileNetworkOpenInformation = 34
    FileAttributeTagInformation = 35
    FileIdBothDirectoryInformation = 37
    FileIdFullDirectoryInformation = 38
    FileValidDataLengthInformation = 39
    FileShortNameInformation = 40
    FileSfioReserveInformation = 44
    FileSfioVolumeInformation = 45
    FileHardLinkInformation = 46
    FileNormalizedNameInformation = 48
    FileIdGlobalTxDirectoryInformation = 50
    FileStandardLinkInformation = 54
    FileIdInformation = 59
    FileIdExtdDirectoryInformation = 60
    FileDispositionInformationEx = 64
    FileRenameInformationEx = 65
    FileStatInformation = 68
    FileStatLxInformation = 70
    FileCaseSensitiveInformation = 71
    FileLinkInformationEx = 72
    FilePosixInformation = 100


C = FileInformationClass

# [MS-FSCC] 2.4.30 FileModeInformation flags
FILE_WRITE_THROUGH = 0x00000002
FILE_SEQUENTIAL_ONLY = 0x00000004
FILE_NO_INTERMEDIATE_BUFFERING = 0x00000008
FILE_SYNCHRONOUS_IO_ALERT = 0x00000010
FILE_SYNCHRONOUS_IO_NONALERT = 0x00000020
FILE_DELETE_ON_CLOSE = 0x00001000

# [MS-FSCC] 2.4.3 FileAlignmentInformation
FILE_BYTE_ALIGNMENT = 0x00000000

# [MS-FSCC] 2.4.9 FileCompressionInformation
COMPRESSION_FORMAT_NONE = 0x0000

# [POSIX-FSCC] PosixMode bits 12-15: a small type enum, not S_IFMT (protocol-notes 11.3).
POSIX_TYPE_REGULAR = 0
POSIX_TYPE_DIRECTORY = 1
POSIX_TYPE_SYMLINK = 2
POSIX_TYPE_CHARDEV = 3
POSIX_TYPE_BLOCKDEV = 4
POSIX_TYPE_FIFO = 5
POSIX_TYPE_SOCKET = 6
POSIX_TYPE_SHIFT = 12

_S_IFMT_TO_POSIX_TYPE = {
    stat.S_IFREG: POSIX_TYPE_REGULAR,
    stat.S_IFDIR: POSIX_TYPE_DIRECTORY,
    stat.S_IFLNK: POSIX_TYPE_SYMLINK,
    stat.S_IFCHR: POSIX_TYPE_CHARDEV,
    stat.S_IFBLK: POSIX_TYPE_BLOCKDEV,
    stat.S_IFIFO: POSIX_TYPE_FIFO,
    stat.S_IFSOCK: POSIX_TYPE_SOCKET,
}
_TAG_TO_POSIX_TYPE = {
    IO_REPARSE_TAG_SYMLINK: POSIX_TYPE_SYMLINK,
    IO_REPARSE_TAG_LX_SYMLINK: POSIX_TYPE_SYMLINK,
    IO_REPARSE_TAG_LX_CHR: POSIX_TYPE_CHARDEV,
    IO_REPARSE_TAG_LX_BLK: POSIX_TYPE_BLOCKDEV,
    IO_REPARSE_TAG_LX_FIFO: POSIX_TYPE_FIFO,
    IO_REPARSE_TAG_AF_UNIX: POSIX_TYPE_SOCKET,
}
_NFS_TO_POSIX_TYPE = {
    NFS_SPECFILE_LNK: POSIX_TYPE_SYMLINK,
    NFS_SPECFILE_CHR: POSIX_TYPE_CHARDEV,
    NFS_SPECFILE_BLK: POSIX_TYPE_BLOCKDEV,
    NFS_SPECFILE_FIFO: POSIX_TYPE_FIFO,
    NFS_SPECFILE_SOCK: POSIX_TYPE_SOCKET,
}

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_BASIC = struct.Struct("<QQQQII")  # 4 times, FileAttributes, Reserved = 40
# AllocationSize, EndOfFile, NumberOfLinks, DeletePending, Directory, Reserved = 24
_STANDARD = struct.Struct("<QQIBBH")
# Basic(40), Standard(24), Internal(8), Ea(4), Access(4), Position(8), Mode(4), Alignment(4), FileNameLength(4)
_ALL = struct.Struct("<QQQQIIQQIBBHQIIQIII")
_COMPRESSION = struct.Struct("<QHBBB3x")  # CompressedFileSize, Format, Unit/Chunk/ClusterShift, Reserved = 16
# 4 times, AllocationSize, EndOfFile, FileAttributes, Reserved = 56
_NETWORK_OPEN = struct.Struct("<QQQQQQII")
_ATTRIBUTE_TAG = struct.Struct("<II")
_ID = struct.Struct("<QQQ")  # VolumeSerialNumber, FileId (128 bit: inode in the low half)
_STREAM = struct.Struct("<IIQQ")  # NextEntryOffset, StreamNameLength, StreamSize, StreamAllocationSize
# FilePosixInformation fixed part (80 bytes), followed by owner and group SIDs.
_POSIX = struct.Struct("<QQQQQQIQIIIII")
_POSIX_CREATE_RESPONSE = struct.Struct("<III")  # NumberOfLinks, ReparseTag, PosixMode

# Sizes of the fixed part of each query class: shorter output buffers get STATUS_INFO_LENGTH_MISMATCH.
FIXED_SIZE: dict[int, int] = {
    C.FileBasicInformation: _BASIC.size,
    C.FileStandardInformation: _STANDARD.size,
    C.FileInternalInformation: 8,
    C.FileEaInformation: 4,
    C.FileAccessInformation: 4,
    C.FileNameInformation: 4,
    C.FilePositionInformation: 8,
    C.FileFullEaInformation: 0,
    C.FileModeInformation: 4,
    C.FileAlignmentInformation: 4,
    C.FileAllInformation: _ALL.size,
    C.FileAlternateNameInformation: 4,
    C.FileStreamInformation: 0,
    C.FileCompressionInformation: _COMPRESSION.size,
    C.FileNetworkOpenInformation: _NETWORK_OPEN.size,
    C.FileAttributeTagInformation: _ATTRIBUTE_TAG.size,
    C.FileNormalizedNameInformation: 4,
    C.FileIdInformation: _ID.size,
    C.FilePosixInformation: _POSIX.size,
}


def _reparse_tag(info: FileInfo) -> int:
    # The tag is only meaningful when FILE_ATTRIBUTE_REPARSE_POINT is set ([MS-FSCC] 2.4.6 ReparseTag).
    return info.reparse_tag if info.attributes & FILE_ATTRIBUTE_REPARSE_POINT else 0


def encode_basic(info: FileInfo) -> bytes:
    """[MS-FSCC] 2.4.7 FILE_BASIC_INFORMATION."""
    return _BASIC.pack(
        info.creation_time, info.last_access_time, info.last_write_time, info.change_time, info.attributes, 0
    )


def _links(info: FileInfo, delete_pending: bool) -> int:
    """NumberOfLinks counts the names that stay: the one a pending delete will remove is not among them
    (Windows, and Samba's smbd_do_qfilepathinfo; smbtorture smb2.setinfo reads 0 for a single-link file).
    A directory has one link whatever st_nlink counts (its "." and its subdirectories' ".."), as on NTFS and
    in Samba 4.17 (tests/differential found the 2 of an empty directory)."""
    links = 1 if info.is_directory and info.number_of_links else info.number_of_links
    return max(links - 1, 0) if delete_pending else links


def encode_standard(info: FileInfo, delete_pending: bool = False) -> bytes:
    """[MS-FSCC] 2.4.47 FILE_STANDARD_INFORMATION."""
    return _STANDARD.pack(
        info.allocation_size,
        info.end_of_file,
        _links(info, delete_pending),
        1 if delete_pending else 0,
        1 if info.is_directory else 0,
        0,
    )


def encode_internal(info: FileInfo) -> bytes:
    """[MS-FSCC] 2.4.24 FILE_INTERNAL_INFORMATION: IndexNumber (cifs.ko uses it as the inode number)."""
    return _U64.pack(info.index_number)


def encode_ea(info: FileInfo) -> bytes:
    """[MS-FSCC] 2.4.13 FILE_EA_INFORMATION."""
    return _U32.pack(info.ea_size)


def encode_access(access_flags: int) -> bytes:
    """[MS-FSCC] 2.4.1 FILE_ACCESS_INFORMATION: the open's granted access."""
    return _U32.pack(access_flags)


def encode_name(file_name: str) -> bytes:
    """[MS-FSCC] 2.4.28 FILE_NAME_INFORMATION (also FileNormalizedNameInformation, 2.4.30, and
    FileAlternateNameInformation, 2.4.5). The caller passes the name exactly as it should appear."""
    name = file_name.encode("utf-16-le", "surrogatepass")
    return _U32.pack(len(name)) + name


def encode_position(current_offset: int) -> bytes:
    """[MS-FSCC] 2.4.35 FILE_POSITION_INFORMATION."""
    return _U64.pack(current_offset)


def encode_full_ea(ea_entries: Iterable[EaEntry]) -> bytes:
    """[MS-FSCC] 2.4.15 FILE_FULL_EA_INFORMATION list (the caller filters by the FILE_GET_EA_INFORMATION
    input and answers STATUS_NO_EAS_ON_FILE for an empty list)."""
    return encode_full_ea_list(ea_entries)


def encode_mode(mode: int) -> bytes:
    """[MS-FSCC] 2.4.31 FILE_MODE_INFORMATION: the open's CreateOptions subset, as changed by SET_INFO."""
    return _U32.pack(mode)


def encode_alignment() -> bytes:
    """[MS-FSCC] 2.4.3 FILE_ALIGNMENT_INFORMATION: byte alignment, as Samba and Windows NTFS report."""
    return _U32.pack(FILE_BYTE_ALIGNMENT)


def encode_all(
    info: FileInfo,
    file_name: str,
    *,
    delete_pending: bool = False,
    access_flags: int = 0,
    current_offset: int = 0,
    mode: int = 0,
) -> bytes:
    """[MS-FSCC] 2.4.2 FILE_ALL_INFORMATION: Basic, Standard, Internal, Ea, Access, Position, Mode, Alignment
    and Name, packed with no gaps (100 bytes, then the name)."""
    name = file_name.encode("utf-16-le", "surrogatepass")
    return (
        _ALL.pack(
            info.creation_time,
            info.last_access_time,
            info.last_write_time,
            info.change_time,
            info.attributes,
            0,
            info.allocation_size,
            info.end_of_file,
            _links(info, delete_pending),
            1 if delete_pending else 0,
            1 if info.is_directory else 0,
            0,
            info.index_number,
            info.ea_size,
            access_flags,
            current_offset,
            mode,
            FILE_BYTE_ALIGNMENT,
            len(name),
        )
        + name
    )


def encode_stream(info: FileInfo, streams: Sequence[tuple[str, int, int]] | None = None) -> bytes:
    """[MS-FSCC] 2.4.49 FILE_STREAM_INFORMATION entries (name, size, allocation size), 8-byte aligned.

    Without `streams`, a file reports its one unnamed stream "::$DATA" and a directory reports none (what
    Windows NTFS does for a directory without alternate data streams).
    """
    if streams is None:
        streams = () if info.is_directory else (("::$DATA", info.end_of_file, info.allocation_size),)
    out = bytearray()
    previous = -1
    for stream_name, size, allocation in streams:
        if previous >= 0:
            out += bytes(-len(out) % 8)
            _U32.pack_into(out, previous, len(out) - previous)
        previous = len(out)
        name = stream_name.encode("utf-16-le", "surrogatepass")
        out += _STREAM.pack(0, len(name), size, allocation)
        out += name
    return bytes(out)


def encode_compression(info: FileInfo) -> bytes:
    """[MS-FSCC] 2.4.9 FILE_COMPRESSION_INFORMATION for an uncompressed file."""
    return _COMPRESSION.pack(info.end_of_file, COMPRESSION_FORMAT_NONE, 0, 0, 0)


def encode_network_open(info: FileInfo) -> bytes:
    """[MS-FSCC] 2.4.34 FILE_NETWORK_OPEN_INFORMATION."""
    return _NETWORK_OPEN.pack(
        info.creation_time,
        info.last_access_time,
        info.last_write_time,
        info.change_time,
        info.allocation_size,
        info.end_of_file,
        info.attributes,
        0,
    )


def encode_attribute_tag(info: FileInfo) -> bytes:
    """[MS-FSCC] 2.4.6 FILE_ATTRIBUTE_TAG_INFORMATION."""
    return _ATTRIBUTE_TAG.pack(info.attributes, _reparse_tag(info))


def encode_id(info: FileInfo, volume_serial_number: int) -> bytes:
    """[MS-FSCC] 2.4.26 FILE_ID_INFORMATION: VolumeSerialNumber(8) and a 128-bit FileId."""
    return _ID.pack(volume_serial_number, info.index_number, 0)


def posix_file_type(info: FileInfo, nfs_type: int | None = None) -> int:
    """The [POSIX-FSCC] PosixMode type (0-6). A reparse point's type comes from its tag (SYMLINK and the WSL
    tags) or, for IO_REPARSE_TAG_NFS, from the NFS Type the caller read from the buffer (`nfs_type`); other
    tags, and NFS without `nfs_type`, fall back to st_mode, which is right for the real FIFOs, sockets and
    devices the server synthesizes NFS buffers for (protocol-notes 11.3, Samba smb2_posix.c)."""
    if info.attributes & FILE_ATTRIBUTE_REPARSE_POINT:
        tag_type = _TAG_TO_POSIX_TYPE.get(info.reparse_tag)
        if tag_type is not None:
            return tag_type
        if info.reparse_tag == IO_REPARSE_TAG_NFS and nfs_type is not None:
            return _NFS_TO_POSIX_TYPE.get(nfs_type, POSIX_TYPE_REGULAR)
    return _S_IFMT_TO_POSIX_TYPE.get(stat.S_IFMT(info.mode), POSIX_TYPE_REGULAR)


def posix_mode(info: FileInfo, with_file_type: bool = True, nfs_type: int | None = None) -> int:
    """PosixMode: permission bits 07777, plus the type enum in bits 12-15 when `with_file_type` (Samba 4.22,
    cifs.ko 6.13 and later understand it; older peers expect permissions only). A symlink shows 0777, as
    lstat(2) of one on Linux does: a symlink a client made is a regular file here (the reparse blob in an
    xattr), and that file's own mode (0644) is no mode of the link."""
    file_type = posix_file_type(info, nfs_type)
    perms = 0o777 if file_type == POSIX_TYPE_SYMLINK else info.mode & 0o7777
    if with_file_type:
        return perms | (file_type << POSIX_TYPE_SHIFT)
    return perms


def posix_attributes(info: FileInfo) -> int:
    """FileAttributes for a POSIX client: a file with holes (fewer bytes allocated than its size) is SPARSE.
    On Linux any file may have holes and SEEK_DATA/SEEK_HOLE find them; cifs.ko asks the server for the
    allocated ranges (FSCTL_QUERY_ALLOCATED_RANGES) only for a file marked sparse (smb3_llseek). Windows views
    keep SPARSE for FSCTL_SET_SPARSE alone ([MS-FSCC] 2.3.64; smbtorture smb2.ioctl.sparse_file_attr)."""
    attributes = info.attributes
    if (stat.S_ISREG(info.mode) and not attributes & FILE_ATTRIBUTE_REPARSE_POINT
            and info.allocation_size < info.end_of_file):
        attributes |= FILE_ATTRIBUTE_SPARSE_FILE
    return attributes


def encode_posix(info: FileInfo, with_file_type: bool = True, nfs_type: int | None = None) -> bytes:
    """[POSIX-FSCC] FilePosixInformation (QUERY_INFO class 100): 80 fixed bytes, then owner S-1-22-1-uid and
    group S-1-22-2-gid. DeviceId is st_dev, as Samba sends it (protocol-notes 16, question 1)."""
    return (
        _POSIX.pack(
            info.creation_time,
            info.last_access_time,
            info.last_write_time,
            info.change_time,
            info.end_of_file,
            info.allocation_size,
            posix_attributes(info),
            info.index_number,
            info.dev & 0xFFFFFFFF,
            0,
            info.number_of_links,
            _reparse_tag(info),
            posix_mode(info, with_file_type, nfs_type),
        )
        + unix_user_sid_bytes(info.uid)
        + unix_group_sid_bytes(info.gid)
    )


def encode_posix_create_response(
    info: FileInfo, with_file_type: bool = True, nfs_type: int | None = None
) -> bytes:
    """[POSIX-SMB2] SMB2_CREATE_POSIX_CONTEXT response data: NumberOfLinks, ReparseTag, PosixMode, owner SID,
    group SID; the same bytes as FilePosixInformation from offset 68 on (protocol-notes 11.3)."""
    return (
        _POSIX_CREATE_RESPONSE.pack(
            info.number_of_links, _reparse_tag(info), posix_mode(info, with_file_type, nfs_type)
        )
        + unix_user_sid_bytes(info.uid)
        + unix_group_sid_bytes(info.gid)
    )


def encode(
    info_class: int,
    info: FileInfo,
    *,
    file_name: str = "",
    short_name: str = "",
    delete_pending: bool = False,
    current_offset: int = 0,
    mode: int = 0,
    access_flags: int = 0,
    ea_entries: Iterable[EaEntry] = (),
    streams: Sequence[tuple[str, int, int]] | None = None,
    volume_serial_number: int = 0,
    posix_with_file_type: bool = True,
    nfs_type: int | None = None,
) -> bytes:
    """Encode QUERY_INFO file class `info_class`. `file_name` serves Name, All and NormalizedName; the other
    keywords are the per-open state of [MS-FSA] (Open.Mode, GrantedAccess, CurrentByteOffset, ...).
    Classes this server does not answer raise SmbError(STATUS_INVALID_INFO_CLASS)."""
    if info_class == C.FileAllInformation:
        return encode_all(
            info,
            file_name,
            delete_pending=delete_pending,
            access_flags=access_flags,
            current_offset=current_offset,
            mode=mode,
        )
    if info_class == C.FileBasicInformation:
        return encode_basic(info)
    if info_class == C.FileStandardInformation:
        return encode_standard(info, delete_pending)
    if info_class == C.FileNetworkOpenInformation:
        return encode_network_open(info)
    if info_class == C.FilePosixInformation:
        return encode_posix(info, posix_with_file_type, nfs_type)
    if info_class == C.FileInternalInformation:
        return encode_internal(info)
    if info_class == C.FileAttributeTagInformation:
        return encode_attribute_tag(info)
    if info_class == C.FileEaInformation:
        return encode_ea(info)
    if info_class == C.FileAccessInformation:
        return encode_access(access_flags)
    if info_class in (C.FileNameInformation, C.FileNormalizedNameInformation):
        return encode_name(file_name)
    if info_class == C.FileAlternateNameInformation:
        return encode_name(short_name)
    if info_class == C.FilePositionInformation:
        return encode_position(current_offset)
    if info_class == C.FileFullEaInformation:
        return encode_full_ea(ea_entries)
    if info_class == C.FileModeInformation:
        return encode_mode(mode)
    if info_class == C.FileAlignmentInformation:
        return encode_alignment()
    if info_class == C.FileStreamInformation:
        return encode_stream(info, streams)
    if info_class == C.FileCompressionInformation:
        return encode_compression(info)
    if info_class == C.FileIdInformation:
        return encode_id(info, volume_serial_number)
    raise SmbError(NtStatus.STATUS_INVALID_INFO_CLASS)
