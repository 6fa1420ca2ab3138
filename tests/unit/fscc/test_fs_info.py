"""File-system information classes ([MS-FSCC] 2.5, [POSIX-FSCC] FileFsPosixInformation)."""

import os

import pytest
from smbprotocol import file_info as sp

from smbsrv.fscc import fs_info
from smbsrv.fscc.attributes import FILE_SUPPORTS_REPARSE_POINTS
from smbsrv.fscc.fs_info import FsInformationClass as F
from smbsrv.fscc.fs_info import VolumeInfo
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus
from tests.unit.fscc.sample import u8, u32, u64

# f_bsize, f_frsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_favail, f_flag, f_namemax, f_fsid
STATVFS = os.statvfs_result((8192, 4096, 1000, 600, 500, 70000, 60000, 60000, 0, 255, 0xABCDEF0123456789))
VOLUME = VolumeInfo(label="share", serial_number=0x1234ABCD, creation_time=0x01D9000000000000)


def test_volume_information() -> None:
    data = fs_info.encode(F.FileFsVolumeInformation, STATVFS, VOLUME)
    label = "share".encode("utf-16-le")
    assert u64(data, 0) == 0x01D9000000000000 and u32(data, 8) == 0x1234ABCD
    assert u32(data, 12) == len(label) and u8(data, 16) == 0 and u8(data, 17) == 0 and data[18:] == label
    parsed = sp.FileFsVolumeInformation()
    parsed.unpack(data)
    assert parsed["volume_label"].get_value() == "share"
    assert parsed["volume_serial_number"].get_value() == 0x1234ABCD


def test_size_information() -> None:
    data = fs_info.encode(F.FileFsSizeInformation, STATVFS, VOLUME)
    assert data == (1000).to_bytes(8, "little") + (500).to_bytes(8, "little") + bytes.fromhex(
        "08000000 00020000"
    )


def test_full_size_information() -> None:
    data = fs_info.encode(F.FileFsFullSizeInformation, STATVFS, VOLUME)
    assert len(data) == 32
    assert u64(data, 0) == 1000 and u64(data, 8) == 500 and u64(data, 16) == 600
    assert u32(data, 24) == 8 and u32(data, 28) == 512
    parsed = sp.FileFsFullSizeInformation()
    parsed.unpack(data)
    assert parsed["caller_available_units"].get_value() == 500
    assert parsed["actual_available_units"].get_value() == 600


def test_odd_fragment_size_is_expressed_in_sectors() -> None:
    odd = os.statvfs_result((1000, 1000, 512, 256, 128, 0, 0, 0, 0, 255))
    data = fs_info.encode(F.FileFsFullSizeInformation, odd, VOLUME)
    assert u64(data, 0) == 1000 and u64(data, 8) == 250 and u64(data, 16) == 500
    assert u32(data, 24) == 1 and u32(data, 28) == 512


def test_device_attribute_control() -> None:
    assert fs_info.encode(F.FileFsDeviceInformation, STATVFS, VOLUME) == bytes.fromhex("07000000 20000000")
    data = fs_info.encode(F.FileFsAttributeInformation, STATVFS, VOLUME)
    name = "NTFS".encode("utf-16-le")
    assert u32(data, 0) == fs_info.DEFAULT_FS_ATTRIBUTES and u32(data, 0) & FILE_SUPPORTS_REPARSE_POINTS
    assert u32(data, 4) == 255 and u32(data, 8) == 8 and data[12:] == name
    control = fs_info.encode(F.FileFsControlInformation, STATVFS, VOLUME)
    assert (
        len(control) == 48
        and u64(control, 24) == 0xFFFFFFFFFFFFFFFF
        and u64(control, 32) == 0xFFFFFFFFFFFFFFFF
    )


def test_object_id_and_sector_size() -> None:
    volume = VolumeInfo(object_id=bytes(range(16)))
    data = fs_info.encode(F.FileFsObjectIdInformation, STATVFS, volume)
    assert data == bytes(range(16)) + bytes(48)
    parsed = sp.FileFsObjectIdInformation()
    parsed.unpack(data)
    sector = fs_info.encode(F.FileFsSectorSizeInformation, STATVFS, VOLUME)
    assert sector == bytes.fromhex("00020000" * 4 + "03000000 00000000 00000000")


def test_posix_fs_information() -> None:
    data = fs_info.encode(F.FileFsPosixInformation, STATVFS, VOLUME)
    assert len(data) == 56
    assert u32(data, 0) == 8192 and u32(data, 4) == 4096
    assert u64(data, 8) == 1000 and u64(data, 16) == 600 and u64(data, 24) == 500
    assert u64(data, 32) == 70000 and u64(data, 40) == 60000 and u64(data, 48) == 0xABCDEF0123456789
    no_fsid = os.statvfs_result((4096, 4096, 1, 1, 1, 1, 1, 1, 0, 255))
    assert u64(fs_info.encode(F.FileFsPosixInformation, no_fsid, VOLUME), 48) == 0


def test_real_statvfs() -> None:
    st = os.statvfs("/")
    for fs_class, size in fs_info.FIXED_SIZE.items():
        assert len(fs_info.encode(fs_class, st, VOLUME)) >= size


@pytest.mark.parametrize("fs_class", [2, 9, 10, 0, 99])
def test_unsupported_class(fs_class: int) -> None:
    with pytest.raises(SmbError) as excinfo:
        fs_info.encode(fs_class, STATVFS, VOLUME)
    assert excinfo.value.status == NtStatus.STATUS_INVALID_INFO_CLASS
