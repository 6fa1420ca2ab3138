"""QUERY_DIRECTORY entries ([MS-FSCC] 2.4.8/10/17/21/22/23/33, POSIX 0x64) and the buffer packer."""

import stat

import pytest
from impacket import smb
from smbprotocol import file_info as sp

from smbsrv.fscc import directory
from smbsrv.fscc.attributes import FILE_ATTRIBUTE_REPARSE_POINT, IO_REPARSE_TAG_LX_FIFO, IO_REPARSE_TAG_NFS
from smbsrv.fscc.file_info import FileInformationClass as C
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus
from tests.unit.fscc.sample import ACCESS, CHANGE, CREATION, WRITE, make_info, u8, u16, u32, u64

NAME = "file.txt"
NAME16 = NAME.encode("utf-16-le")
INDEX = 0x1122334455667788


def _entry(info_class: int, **overrides: int) -> bytes:
    return directory.entry_encoder(info_class)(make_info(**overrides), NAME16, 7)


def _common_prefix(data: bytes) -> None:
    assert u32(data, 0) == 0  # NextEntryOffset, linked by commands/query_directory.py
    assert u32(data, 4) == 7  # FileIndex
    assert [u64(data, o) for o in (8, 16, 24, 32)] == [CREATION, ACCESS, WRITE, CHANGE]
    assert u64(data, 40) == 5000 and u64(data, 48) == 8192 and u32(data, 56) == 0x20
    assert u32(data, 60) == len(NAME16)


def test_directory_information() -> None:
    data = _entry(C.FileDirectoryInformation)
    _common_prefix(data)
    assert data[64:] == NAME16
    parsed = sp.FileDirectoryInformation()
    parsed.unpack(data)
    assert parsed["file_name"].get_value() == NAME16


def test_full_directory_information() -> None:
    data = _entry(C.FileFullDirectoryInformation)
    _common_prefix(data)
    assert u32(data, 64) == 0x44 and data[68:] == NAME16
    parsed = sp.FileFullDirectoryInformation()
    parsed.unpack(data)
    assert parsed["ea_size"].get_value() == 0x44 and parsed["file_name"].get_value() == NAME16


def test_both_directory_information() -> None:
    data = _entry(C.FileBothDirectoryInformation)
    _common_prefix(data)
    assert u32(data, 64) == 0x44 and u8(data, 68) == 0 and u8(data, 69) == 0
    assert data[70:94] == bytes(24) and data[94:] == NAME16
    parsed = sp.FileBothDirectoryInformation()
    parsed.unpack(data)
    assert parsed["file_name"].get_value() == NAME16


def test_names_information() -> None:
    data = _entry(C.FileNamesInformation)
    assert data == bytes.fromhex("00000000 07000000 10000000") + NAME16
    parsed = sp.FileNamesInformation()
    parsed.unpack(data)
    assert parsed["file_name"].get_value() == NAME16


def test_id_both_directory_information() -> None:
    data = _entry(C.FileIdBothDirectoryInformation)
    _common_prefix(data)
    assert u32(data, 64) == 0x44 and data[70:94] == bytes(24) and u16(data, 94) == 0
    assert u64(data, 96) == INDEX and data[104:] == NAME16
    parsed = sp.FileIdBothDirectoryInformation()
    parsed.unpack(data)
    assert parsed["file_id"].get_value() == INDEX and parsed["file_name"].get_value() == NAME16
    other = smb.SMBFindFileIdBothDirectoryInfo(data=data, flags=smb.SMB.FLAGS2_UNICODE)
    assert other["FileID"] == INDEX and other["FileName"] == NAME16 and other["EaSize"] == 0x44


def test_id_full_directory_information() -> None:
    data = _entry(C.FileIdFullDirectoryInformation)
    _common_prefix(data)
    assert u32(data, 64) == 0x44 and u32(data, 68) == 0 and u64(data, 72) == INDEX and data[80:] == NAME16
    parsed = sp.FileIdFullDirectoryInformation()
    parsed.unpack(data)
    assert parsed["file_id"].get_value() == INDEX and parsed["file_name"].get_value() == NAME16
    other = smb.SMBFindFileIdFullDirectoryInfo(data=data, flags=smb.SMB.FLAGS2_UNICODE)
    assert other["FileID"] == INDEX and other["FileName"] == NAME16


def test_id_extd_directory_information() -> None:
    data = _entry(C.FileIdExtdDirectoryInformation, attributes=0x420, reparse_tag=IO_REPARSE_TAG_NFS)
    assert u32(data, 56) == 0x420 and u32(data, 60) == len(NAME16)
    assert u32(data, 64) == 0x44  # EaSize keeps its meaning: the tag has its own field here
    assert u32(data, 68) == IO_REPARSE_TAG_NFS
    assert data[72:88] == INDEX.to_bytes(16, "little") and data[88:] == NAME16
    plain = _entry(C.FileIdExtdDirectoryInformation, reparse_tag=IO_REPARSE_TAG_NFS)
    assert u32(plain, 68) == 0


@pytest.mark.parametrize(
    "info_class",
    [
        C.FileFullDirectoryInformation,
        C.FileBothDirectoryInformation,
        C.FileIdBothDirectoryInformation,
        C.FileIdFullDirectoryInformation,
    ],
)
def test_ea_size_carries_the_reparse_tag(info_class: int) -> None:
    tagged = _entry(
        info_class, attributes=0x20 | FILE_ATTRIBUTE_REPARSE_POINT, reparse_tag=IO_REPARSE_TAG_LX_FIFO
    )
    assert u32(tagged, 64) == IO_REPARSE_TAG_LX_FIFO
    untagged = _entry(info_class, reparse_tag=IO_REPARSE_TAG_LX_FIFO)
    assert u32(untagged, 64) == 0x44


def test_posix_entry() -> None:
    data = _entry(C.FilePosixInformation, mode=stat.S_IFDIR | 0o755, attributes=0x10)
    assert u32(data, 0) == 0 and u32(data, 4) == 7
    body = data[8:]
    assert [u64(body, o) for o in (0, 8, 16, 24)] == [CREATION, ACCESS, WRITE, CHANGE]
    assert u64(body, 32) == 5000 and u64(body, 40) == 8192 and u32(body, 48) == 0x10
    assert u64(body, 52) == INDEX and u32(body, 60) == 0x803 and u32(body, 64) == 0
    assert u32(body, 68) == 3 and u32(body, 72) == 0 and u32(body, 76) == 0o755 | (1 << 12)
    assert body[80:96] == bytes.fromhex("0102000000000016 01000000 e8030000")
    assert body[96:112] == bytes.fromhex("0102000000000016 02000000 64000000")
    assert u32(body, 112) == len(NAME16) and body[116:] == NAME16
    permissions_only = directory.entry_encoder(C.FilePosixInformation, posix_with_file_type=False)
    assert u32(permissions_only(make_info(mode=stat.S_IFDIR | 0o755), NAME16, 0), 84) == 0o755


def test_encode_entry_convenience() -> None:
    assert directory.encode_entry(C.FileNamesInformation, make_info(), NAME, 7) == _entry(
        C.FileNamesInformation
    )


def test_unknown_class() -> None:
    for info_class in (C.FileBasicInformation, 0, 0x3D):
        with pytest.raises(SmbError) as excinfo:
            directory.entry_encoder(info_class)
        assert excinfo.value.status == NtStatus.STATUS_INVALID_INFO_CLASS


def test_fixed_sizes() -> None:
    assert directory.ENTRY_FIXED_SIZE == {
        1: 64,
        2: 68,
        3: 94,
        12: 12,
        0x25: 104,
        0x26: 80,
        0x3C: 88,
        0x64: 124,
    }
    for info_class, size in directory.ENTRY_FIXED_SIZE.items():
        assert len(directory.entry_encoder(info_class)(make_info(), b"", 0)) == size
