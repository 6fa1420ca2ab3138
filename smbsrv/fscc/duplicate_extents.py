"""SMB2_DUPLICATE_EXTENTS_DATA and SMB2_DUPLICATE_EXTENTS_DATA_EX, the inputs of
FSCTL_DUPLICATE_EXTENTS_TO_FILE(_EX) over SMB2 ([MS-FSCC] 2.3.7.2, 2.3.9.2): the source is an SMB2_FILEID."""

import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.wire.status import NtStatus

# SourceFileID (Persistent, Volatile), SourceFileOffset, TargetFileOffset, ByteCount
_DATA = struct.Struct("<QQqqq")
# StructureSize, SourceFileID, SourceFileOffset, TargetFileOffset, ByteCount, Flags, Reserved
_DATA_EX = struct.Struct("<QQQqqqII")
# StructureSize MUST be 0x30 (the size of the local structure, whose handle is 8 bytes), not the 56 sent.
_DATA_EX_STRUCTURE_SIZE = 0x30
DUPLICATE_EXTENTS_DATA_EX_SOURCE_ATOMIC = 0x00000001


@dataclass(frozen=True, slots=True)
class DuplicateExtents:
    source_file_id: tuple[int, int]
    source_offset: int
    target_offset: int
    byte_count: int
    flags: int = 0


def decode(data: memoryview | bytes) -> DuplicateExtents:
    if len(data) < _DATA.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    persistent, volatile, source_offset, target_offset, byte_count = _DATA.unpack_from(data)
    return DuplicateExtents((persistent, volatile), source_offset, target_offset, byte_count)


def decode_ex(data: memoryview | bytes) -> DuplicateExtents:
    """The _EX form starts with its StructureSize, which must be 0x30."""
    if len(data) < _DATA_EX.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    size, persistent, volatile, source_offset, target_offset, byte_count, flags, _ = _DATA_EX.unpack_from(data)
    if size != _DATA_EX_STRUCTURE_SIZE:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    return DuplicateExtents((persistent, volatile), source_offset, target_offset, byte_count, flags)
