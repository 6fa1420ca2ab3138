"""File-system information classes for QUERY_INFO (InfoType SMB2_0_INFO_FILESYSTEM).

[MS-FSCC] 2.5.9 FileFsVolumeInformation, 2.5.8 FileFsSizeInformation, 2.5.10 FileFsDeviceInformation,
2.5.1 FileFsAttributeInformation, 2.5.2 FileFsControlInformation, 2.5.4 FileFsFullSizeInformation,
2.5.6 FileFsObjectIdInformation, 2.5.7 FileFsSectorSizeInformation; [POSIX-FSCC] FileFsPosixInformation (100).
Protocol-notes 11.2. Input: one os.statvfs_result of the share root plus the share's volume description.
"""

import enum
import os
import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.fscc.attributes import (
    FILE_CASE_PRESERVED_NAMES,
    FILE_CASE_SENSITIVE_SEARCH,
    FILE_PERSISTENT_ACLS,
    FILE_SUPPORTS_EXTENDED_ATTRIBUTES,
    FILE_SUPPORTS_REPARSE_POINTS,
    FILE_SUPPORTS_SPARSE_FILES,
    FILE_UNICODE_ON_DISK,
)
from smbsrv.wire.status import NtStatus


class FsInformationClass(enum.IntEnum):
    """[MS-FSCC] 2.5 file-system information class numbers, plus the [POSIX-FSCC] class."""

    FileFsVolumeInformation = 1
    FileFsLabelInformation = 2
    FileFsSizeInformation = 3
    FileFsDeviceInformation = 4
    FileFsAttributeInformation = 5
    FileFsControlInformation = 6
    FileFsFullSizeInformation = 7
    FileFsObjectIdInformation = 8
    FileFsDriverPathInformation = 9
    FileFsVolumeFlagsInformation = 10
    FileFsSectorSizeInformation = 11
    FileFsPosixInformation = 100


F = FsInformationClass

# [MS-FSCC] 2.5.10 DeviceType / Characteristics
FILE_DEVICE_DISK = 0x00000007
FILE_REMOVABLE_MEDIA = 0x00000001
FILE_READ_ONLY_DEVICE = 0x00000002
FILE_FLOPPY_DISKETTE = 0x00000004
FILE_WRITE_ONCE_MEDIA = 0x00000008
FILE_REMOTE_DEVICE = 0x00000010
FILE_DEVICE_IS_MOUNTED = 0x00000020
FILE_VIRTUAL_VOLUME = 0x00000040
FILE_DEVICE_SECURE_OPEN = 0x00000100

# [MS-FSCC] 2.5.7 FileFsSectorSizeInformation Flags
SSINFO_FLAGS_ALIGNED_DEVICE = 0x00000001
SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE = 0x00000002
SSINFO_FLAGS_NO_SEEK_PENALTY = 0x00000004
SSINFO_FLAGS_TRIM_ENABLED = 0x00000008

# [MS-FSCC] 2.5.2 FileSystemControlFlags
FILE_VC_QUOTA_NONE = 0x00000000

BYTES_PER_SECTOR = 512

# Case-sensitive POSIX names, Unicode, ACLs from mode bits, sparse files, EAs (fs/eas.py) and reparse points: cifs.ko 6.15+
# will not touch reparse points on non-POSIX mounts without FILE_SUPPORTS_REPARSE_POINTS (protocol-notes 11.2).
DEFAULT_FS_ATTRIBUTES = (
    FILE_CASE_SENSITIVE_SEARCH
    | FILE_CASE_PRESERVED_NAMES
    | FILE_UNICODE_ON_DISK
    | FILE_PERSISTENT_ACLS
    | FILE_SUPPORTS_SPARSE_FILES
    | FILE_SUPPORTS_REPARSE_POINTS
    | FILE_SUPPORTS_EXTENDED_ATTRIBUTES
)


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    """What the share says about its volume (everything statvfs cannot tell)."""

    label: str = ""
    serial_number: int = 0
    creation_time: int = 0  # FILETIME
    fs_attributes: int = DEFAULT_FS_ATTRIBUTES
    max_component_length: int = 255
    fs_name: str = "NTFS"  # what Samba and ksmbd report; some clients key behaviour off it
    object_id: bytes = bytes(16)
    device_characteristics: int = FILE_DEVICE_IS_MOUNTED


# VolumeCreationTime, VolumeSerialNumber, VolumeLabelLength, SupportsObjects, Reserved = 18
_VOLUME = struct.Struct("<QIIBB")
# TotalAllocationUnits, AvailableAllocationUnits, SectorsPerAllocationUnit, BytesPerSector = 24
_SIZE = struct.Struct("<QQII")
# DeviceType, Characteristics
_DEVICE = struct.Struct("<II")
# FileSystemAttributes, MaximumComponentNameLength, FileSystemNameLength = 12
_ATTRIBUTE = struct.Struct("<III")
# FreeSpaceStartFiltering, FreeSpaceThreshold, FreeSpaceStopFiltering, DefaultQuotaThreshold, DefaultQuotaLimit,
# FileSystemControlFlags, Padding = 48
_CONTROL = struct.Struct("<QQQQQII")
# TotalAllocationUnits, CallerAvailableAllocationUnits, ActualAvailableAllocationUnits, SectorsPerAllocationUnit,
# BytesPerSector = 32
_FULL_SIZE = struct.Struct("<QQQII")
# ObjectId, ExtendedInfo = 64
_OBJECT_ID = struct.Struct("<16s48s")
# LogicalBytesPerSector, PhysicalBytesPerSectorForAtomicity, PhysicalBytesPerSectorForPerformance,
# FileSystemEffectivePhysicalBytesPerSectorForAtomicity, Flags, ByteOffsetForSectorAlignment,
# ByteOffsetForPartitionAlignment = 28
_SECTOR_SIZE = struct.Struct("<7I")
# OptimalTransferSize, BlockSize, TotalBlocks, BlocksAvail, UserBlocksAvail, TotalFileNodes, FreeFileNodes,
# FileSysIdentifier = 56
_POSIX = struct.Struct("<IIQQQQQQ")

_NO_LIMIT = 0xFFFFFFFFFFFFFFFF

FIXED_SIZE: dict[int, int] = {
    F.FileFsVolumeInformation: _VOLUME.size,
    F.FileFsSizeInformation: _SIZE.size,
    F.FileFsDeviceInformation: _DEVICE.size,
    F.FileFsAttributeInformation: _ATTRIBUTE.size,
    F.FileFsControlInformation: _CONTROL.size,
    F.FileFsFullSizeInformation: _FULL_SIZE.size,
    F.FileFsObjectIdInformation: _OBJECT_ID.size,
    F.FileFsSectorSizeInformation: _SECTOR_SIZE.size,
    F.FileFsPosixInformation: _POSIX.size,
}


def _allocation_units(st: os.statvfs_result) -> tuple[int, int, int, int]:
    """(total, caller_available, actual_available, sectors_per_unit) with 512-byte sectors. statvfs counts are
    in f_frsize units; an f_frsize that is not a multiple of 512 is re-expressed in 512-byte units."""
    unit = st.f_frsize or st.f_bsize or BYTES_PER_SECTOR
    if unit % BYTES_PER_SECTOR == 0:
        return st.f_blocks, st.f_bavail, st.f_bfree, unit // BYTES_PER_SECTOR
    return (
        st.f_blocks * unit // BYTES_PER_SECTOR,
        st.f_bavail * unit // BYTES_PER_SECTOR,
        st.f_bfree * unit // BYTES_PER_SECTOR,
        1,
    )


def encode_volume(volume: VolumeInfo) -> bytes:
    """[MS-FSCC] 2.5.9 FILE_FS_VOLUME_INFORMATION (18 bytes, then the label)."""
    label = volume.label.encode("utf-16-le")
    return _VOLUME.pack(volume.creation_time, volume.serial_number & 0xFFFFFFFF, len(label), 0, 0) + label


def encode_size(st: os.statvfs_result) -> bytes:
    """[MS-FSCC] 2.5.8 FILE_FS_SIZE_INFORMATION: available units are what the caller may use (f_bavail)."""
    total, caller, _actual, sectors = _allocation_units(st)
    return _SIZE.pack(total, caller, sectors, BYTES_PER_SECTOR)


def encode_device(volume: VolumeInfo) -> bytes:
    """[MS-FSCC] 2.5.10 FILE_FS_DEVICE_INFORMATION: a mounted disk."""
    return _DEVICE.pack(FILE_DEVICE_DISK, volume.device_characteristics)


def encode_attribute(volume: VolumeInfo) -> bytes:
    """[MS-FSCC] 2.5.1 FILE_FS_ATTRIBUTE_INFORMATION."""
    name = volume.fs_name.encode("utf-16-le")
    return _ATTRIBUTE.pack(volume.fs_attributes, volume.max_component_length, len(name)) + name


def encode_control() -> bytes:
    """[MS-FSCC] 2.5.2 FILE_FS_CONTROL_INFORMATION: no content filtering, no default quota (all ones = none)."""
    return _CONTROL.pack(0, 0, 0, _NO_LIMIT, _NO_LIMIT, FILE_VC_QUOTA_NONE, 0)


def encode_full_size(st: os.statvfs_result) -> bytes:
    """[MS-FSCC] 2.5.4 FILE_FS_FULL_SIZE_INFORMATION (cifs.ko statfs on non-POSIX mounts)."""
    total, caller, actual, sectors = _allocation_units(st)
    return _FULL_SIZE.pack(total, caller, actual, sectors, BYTES_PER_SECTOR)


def encode_object_id(volume: VolumeInfo) -> bytes:
    """[MS-FSCC] 2.5.6 FILE_FS_OBJECTID_INFORMATION: the volume's 16-byte id, ExtendedInfo zero."""
    return _OBJECT_ID.pack(volume.object_id, b"")


def encode_sector_size() -> bytes:
    """[MS-FSCC] 2.5.7 FILE_FS_SECTOR_SIZE_INFORMATION: 512-byte sectors, aligned, offsets 0 (as Samba)."""
    return _SECTOR_SIZE.pack(
        BYTES_PER_SECTOR,
        BYTES_PER_SECTOR,
        BYTES_PER_SECTOR,
        BYTES_PER_SECTOR,
        SSINFO_FLAGS_ALIGNED_DEVICE | SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE,
        0,
        0,
    )


def encode_posix(st: os.statvfs_result) -> bytes:
    """[POSIX-FSCC] FileFsPosixInformation (56 bytes), the statfs of cifs.ko POSIX mounts. Block counts are in
    BlockSize (f_frsize) units, as statvfs gives them."""
    fsid = getattr(st, "f_fsid", None) or 0
    return _POSIX.pack(
        st.f_bsize & 0xFFFFFFFF,
        (st.f_frsize or st.f_bsize) & 0xFFFFFFFF,
        st.f_blocks,
        st.f_bfree,
        st.f_bavail,
        st.f_files,
        st.f_ffree,
        fsid & 0xFFFFFFFFFFFFFFFF,
    )


def encode(fs_class: int, st: os.statvfs_result, volume: VolumeInfo) -> bytes:
    """Encode file-system class `fs_class`; unsupported classes raise SmbError(STATUS_INVALID_INFO_CLASS).
    (Whether POSIX class 100 is allowed on this open, STATUS_INVALID_LEVEL otherwise, is the handler's call.)"""
    if fs_class == F.FileFsFullSizeInformation:
        return encode_full_size(st)
    if fs_class == F.FileFsAttributeInformation:
        return encode_attribute(volume)
    if fs_class == F.FileFsVolumeInformation:
        return encode_volume(volume)
    if fs_class == F.FileFsSizeInformation:
        return encode_size(st)
    if fs_class == F.FileFsDeviceInformation:
        return encode_device(volume)
    if fs_class == F.FileFsSectorSizeInformation:
        return encode_sector_size()
    if fs_class == F.FileFsPosixInformation:
        return encode_posix(st)
    if fs_class == F.FileFsObjectIdInformation:
        return encode_object_id(volume)
    if fs_class == F.FileFsControlInformation:
        return encode_control()
    raise SmbError(NtStatus.STATUS_INVALID_INFO_CLASS)
