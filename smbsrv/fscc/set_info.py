"""SET_INFO file information classes: decoders into frozen dataclasses.

[MS-FSCC] 2.4 input structures, with the parameter checks of [MS-FSA] 2.1.5.15 that need nothing but the buffer.
A buffer shorter than the fixed part raises SmbError(STATUS_INFO_LENGTH_MISMATCH); inconsistent lengths,
offsets or values raise SmbError(STATUS_INVALID_PARAMETER). Checks that need the open (access, stream type,
Open.Mode) stay with the SET_INFO handler.
"""

import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.fscc.ea import EaEntry, decode_ea_list_to_set
from smbsrv.fscc.file_info import (
    FILE_SEQUENTIAL_ONLY,
    FILE_SYNCHRONOUS_IO_ALERT,
    FILE_SYNCHRONOUS_IO_NONALERT,
    FILE_WRITE_THROUGH,
    FileInformationClass,
)
from smbsrv.wire.status import NtStatus

C = FileInformationClass

# [MS-FSCC] 2.4.42.3 FileRenameInformationEx Flags
FILE_RENAME_REPLACE_IF_EXISTS = 0x00000001
FILE_RENAME_POSIX_SEMANTICS = 0x00000002
FILE_RENAME_SUPPRESS_PIN_STATE_INHERITANCE = 0x00000004
FILE_RENAME_SUPPRESS_STORAGE_RESERVE_INHERITANCE = 0x00000008
FILE_RENAME_NO_INCREASE_AVAILABLE_SPACE = 0x00000010
FILE_RENAME_NO_DECREASE_AVAILABLE_SPACE = 0x00000020
FILE_RENAME_IGNORE_READONLY_ATTRIBUTE = 0x00000040
FILE_RENAME_FORCE_RESIZE_TARGET_SR = 0x00000080
FILE_RENAME_FORCE_RESIZE_SOURCE_SR = 0x00000100

# FileLinkInformationEx Flags
FILE_LINK_REPLACE_IF_EXISTS = 0x00000001
FILE_LINK_POSIX_SEMANTICS = 0x00000002

# [MS-FSCC] 2.4.12 FileDispositionInformationEx Flags
FILE_DISPOSITION_DO_NOT_DELETE = 0x00000000
FILE_DISPOSITION_DELETE = 0x00000001
FILE_DISPOSITION_POSIX_SEMANTICS = 0x00000002
FILE_DISPOSITION_FORCE_IMAGE_SECTION_CHECK = 0x00000004
FILE_DISPOSITION_ON_CLOSE = 0x00000008
FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE = 0x00000010

_BASIC = struct.Struct("<qqqqI")  # times are signed here: 0, -1 and -2 have meanings ([MS-FSCC] 2.4.7)
_RENAME = struct.Struct("<B7xQI")  # ReplaceIfExists, Reserved, RootDirectory, FileNameLength
_RENAME_EX = struct.Struct("<I4xQI")  # Flags, Reserved, RootDirectory, FileNameLength
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")

_MODE_SETTABLE = (
    FILE_WRITE_THROUGH | FILE_SEQUENTIAL_ONLY | FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT
)


def _need(data: bytes | memoryview, size: int) -> None:
    if len(data) < size:
        raise SmbError(NtStatus.STATUS_INFO_LENGTH_MISMATCH)


def _invalid() -> SmbError:
    return SmbError(NtStatus.STATUS_INVALID_PARAMETER)


@dataclass(frozen=True, slots=True)
class BasicInformation:
    """[MS-FSCC] 2.4.7. Times: 0 = leave alone, -1 = stop automatic updates on this handle, -2 = resume them."""

    creation_time: int
    last_access_time: int
    last_write_time: int
    change_time: int
    file_attributes: int


@dataclass(frozen=True, slots=True)
class RenameInformation:
    """FileRenameInformation(Ex) and FileLinkInformation(Ex): the target path, relative to the share root.
    `flags` is FILE_RENAME_* / FILE_LINK_* (for the non-Ex classes only REPLACE_IF_EXISTS can be set)."""

    replace_if_exists: bool
    flags: int
    root_directory: int
    file_name: str


@dataclass(frozen=True, slots=True)
class DispositionInformation:
    """FileDispositionInformation / FileDispositionInformationEx; `flags` is FILE_DISPOSITION_*."""

    delete_pending: bool
    flags: int


@dataclass(frozen=True, slots=True)
class PositionInformation:
    current_byte_offset: int


@dataclass(frozen=True, slots=True)
class FullEaInformation:
    entries: tuple[EaEntry, ...]


@dataclass(frozen=True, slots=True)
class ModeInformation:
    mode: int


@dataclass(frozen=True, slots=True)
class AllocationInformation:
    allocation_size: int


@dataclass(frozen=True, slots=True)
class EndOfFileInformation:
    end_of_file: int


SetInformation = (
    BasicInformation
    | RenameInformation
    | DispositionInformation
    | PositionInformation
    | FullEaInformation
    | ModeInformation
    | AllocationInformation
    | EndOfFileInformation
)


def decode_basic(data: bytes | memoryview) -> BasicInformation:
    """[MS-FSCC] 2.4.7 / [MS-FSA] 2.1.5.15.2: 40 bytes; a time below -2 is STATUS_INVALID_PARAMETER."""
    _need(data, 40)
    creation, access, write, change, attributes = _BASIC.unpack_from(data, 0)
    if creation < -2 or access < -2 or write < -2 or change < -2:
        raise _invalid()
    return BasicInformation(creation, access, write, change, attributes)


def _decode_target_name(data: bytes | memoryview, fixed: int, name_length: int) -> str:
    if name_length % 2 or fixed + name_length > len(data):
        raise _invalid()
    try:
        name = bytes(data[fixed : fixed + name_length]).decode("utf-16-le")
    except UnicodeDecodeError:
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_INVALID) from None
    # cifs.ko sends a terminating NUL after the counted name; a client counting it in FileNameLength
    # means the same name, so one trailing NUL is dropped.
    return name.removesuffix("\x00")


def decode_rename(data: bytes | memoryview) -> RenameInformation:
    """[MS-FSCC] 2.4.42.2 FILE_RENAME_INFORMATION_TYPE_2 (also FileLinkInformation, 2.4.27.2).

    Fixed part 20 bytes. RootDirectory must be 0 over SMB2 ([MS-FSCC] 2.4.42.2: the server fails a nonzero
    value with STATUS_INVALID_PARAMETER); an odd or overlong FileNameLength is STATUS_INVALID_PARAMETER.
    """
    _need(data, _RENAME.size)
    replace, root, name_length = _RENAME.unpack_from(data, 0)
    if root != 0:
        raise _invalid()
    name = _decode_target_name(data, _RENAME.size, name_length)
    return RenameInformation(replace != 0, FILE_RENAME_REPLACE_IF_EXISTS if replace else 0, root, name)


def decode_rename_ex(data: bytes | memoryview) -> RenameInformation:
    """[MS-FSCC] 2.4.42.3 FileRenameInformationEx (and FileLinkInformationEx): Flags(4) instead of
    ReplaceIfExists(1), same offsets otherwise."""
    _need(data, _RENAME_EX.size)
    flags, root, name_length = _RENAME_EX.unpack_from(data, 0)
    if root != 0:
        raise _invalid()
    name = _decode_target_name(data, _RENAME_EX.size, name_length)
    return RenameInformation(flags & FILE_RENAME_REPLACE_IF_EXISTS != 0, flags, root, name)


def decode_disposition(data: bytes | memoryview) -> DispositionInformation:
    """[MS-FSCC] 2.4.11 FILE_DISPOSITION_INFORMATION: DeletePending(1)."""
    _need(data, 1)
    pending = data[0] != 0
    return DispositionInformation(
        pending, FILE_DISPOSITION_DELETE if pending else FILE_DISPOSITION_DO_NOT_DELETE
    )


def decode_disposition_ex(data: bytes | memoryview) -> DispositionInformation:
    """[MS-FSCC] 2.4.12 FILE_DISPOSITION_INFORMATION_EX: Flags(4)."""
    _need(data, 4)
    (flags,) = _U32.unpack_from(data, 0)
    return DispositionInformation(flags & FILE_DISPOSITION_DELETE != 0, flags)


def decode_position(data: bytes | memoryview) -> PositionInformation:
    """[MS-FSCC] 2.4.35: CurrentByteOffset is a signed 64-bit value; negative is STATUS_INVALID_PARAMETER."""
    _need(data, 8)
    (offset,) = _I64.unpack_from(data, 0)
    if offset < 0:
        raise _invalid()
    return PositionInformation(offset)


def decode_full_ea(data: bytes | memoryview) -> FullEaInformation:
    """[MS-FSCC] 2.4.15 FILE_FULL_EA_INFORMATION list."""
    return FullEaInformation(tuple(decode_ea_list_to_set(data)))


def decode_mode(data: bytes | memoryview) -> ModeInformation:
    """[MS-FSA] 2.1.5.15.7: only WRITE_THROUGH, SEQUENTIAL_ONLY and the two SYNCHRONOUS_IO flags may be set,
    and not both SYNCHRONOUS_IO flags. (The comparison with Open.Mode is the handler's.)"""
    _need(data, 4)
    (mode,) = _U32.unpack_from(data, 0)
    both_sync = FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT
    if mode & ~_MODE_SETTABLE or mode & both_sync == both_sync:
        raise _invalid()
    return ModeInformation(mode)


def decode_allocation(data: bytes | memoryview) -> AllocationInformation:
    """[MS-FSCC] 2.4.4 FILE_ALLOCATION_INFORMATION: signed 64-bit; negative is STATUS_INVALID_PARAMETER."""
    _need(data, 8)
    (size,) = _I64.unpack_from(data, 0)
    if size < 0:
        raise _invalid()
    return AllocationInformation(size)


def decode_end_of_file(data: bytes | memoryview) -> EndOfFileInformation:
    """[MS-FSCC] 2.4.14 FILE_END_OF_FILE_INFORMATION: signed 64-bit; negative is STATUS_INVALID_PARAMETER."""
    _need(data, 8)
    (size,) = _I64.unpack_from(data, 0)
    if size < 0:
        raise _invalid()
    return EndOfFileInformation(size)


def decode(info_class: int, data: bytes | memoryview) -> SetInformation:
    """Decode the SET_INFO input for file class `info_class`; classes this server cannot set raise
    SmbError(STATUS_INVALID_INFO_CLASS)."""
    if info_class == C.FileBasicInformation:
        return decode_basic(data)
    if info_class == C.FileEndOfFileInformation:
        return decode_end_of_file(data)
    if info_class == C.FileDispositionInformation:
        return decode_disposition(data)
    if info_class in (C.FileRenameInformation, C.FileLinkInformation):
        return decode_rename(data)
    if info_class in (C.FileRenameInformationEx, C.FileLinkInformationEx):
        return decode_rename_ex(data)
    if info_class == C.FileDispositionInformationEx:
        return decode_disposition_ex(data)
    if info_class == C.FileAllocationInformation:
        return decode_allocation(data)
    if info_class == C.FilePositionInformation:
        return decode_position(data)
    if info_class == C.FileFullEaInformation:
        return decode_full_ea(data)
    if info_class == C.FileModeInformation:
        return decode_mode(data)
    raise SmbError(NtStatus.STATUS_INVALID_INFO_CLASS)
