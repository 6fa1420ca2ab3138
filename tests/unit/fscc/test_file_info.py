"""QUERY_INFO file-class encoders: fields at the offsets of the [MS-FSCC] 2.4 tables, cross-checked with the
client-side structures of smbprotocol and impacket."""

import stat

import pytest
from impacket import smb, smb3structs
from smbprotocol import file_info as sp

from smbsrv.fscc import file_info as fi
from smbsrv.fscc.attributes import (
    FILE_ATTRIBUTE_DIRECTORY,
    FILE_ATTRIBUTE_REPARSE_POINT,
    IO_REPARSE_TAG_AF_UNIX,
    IO_REPARSE_TAG_LX_BLK,
    IO_REPARSE_TAG_LX_CHR,
    IO_REPARSE_TAG_LX_FIFO,
    IO_REPARSE_TAG_LX_SYMLINK,
    IO_REPARSE_TAG_NFS,
    IO_REPARSE_TAG_SYMLINK,
)
from smbsrv.fscc.ea import EaEntry
from smbsrv.fscc.file_info import FileInformationClass as C
from smbsrv.fscc.reparse import NFS_SPECFILE_BLK, NFS_SPECFILE_FIFO, NFS_SPECFILE_LNK
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus
from tests.unit.fscc.sample import ACCESS, CHANGE, CREATION, WRITE, make_info, u8, u16, u32, u64

UNIX_USER_1000 = bytes.fromhex("0102000000000016 01000000 e8030000")  # S-1-22-1-1000
UNIX_GROUP_100 = bytes.fromhex("0102000000000016 02000000 64000000")  # S-1-22-2-100


def test_class_numbers_match_the_spec() -> None:
    assert C.FileBasicInformation == 4
    assert C.FileAllInformation == 18
    assert C.FileNetworkOpenInformation == 34
    assert C.FileIdBothDirectoryInformation == 0x25
    assert C.FileIdExtdDirectoryInformation == 0x3C
    assert C.FileIdInformation == 59
    assert C.FileDispositionInformationEx == 64
    assert C.FileRenameInformationEx == 65
    assert C.FilePosixInformation == 100


def test_basic_offsets_and_smbprotocol() -> None:
    data = fi.encode(C.FileBasicInformation, make_info(attributes=0x21))
    assert len(data) == 40
    assert [u64(data, o) for o in (0, 8, 16, 24)] == [CREATION, ACCESS, WRITE, CHANGE]
    assert u32(data, 32) == 0x21 and u32(data, 36) == 0
    parsed = sp.FileBasicInformation()
    parsed.unpack(data)
    assert parsed["file_attributes"].get_value() == 0x21


def test_links_without_a_pending_delete() -> None:
    assert u32(fi.encode(C.FileStandardInformation, make_info()), 16) == 3


def test_standard_offsets_and_impacket() -> None:
    data = fi.encode(C.FileStandardInformation, make_info(), delete_pending=True)
    assert len(data) == 24
    # NumberOfLinks leaves out the name the pending delete removes (3 links on disk, Windows and Samba say 2).
    assert u64(data, 0) == 8192 and u64(data, 8) == 5000 and u32(data, 16) == 2
    assert u8(data, 20) == 1 and u8(data, 21) == 0 and u16(data, 22) == 0
    parsed = smb3structs.FILE_STANDARD_INFORMATION(data)
    assert parsed["DeletePending"] == 1 and parsed["Directory"] == 0 and parsed["NumberOfLinks"] == 2
    directory = fi.encode(C.FileStandardInformation, make_info(attributes=FILE_ATTRIBUTE_DIRECTORY))
    assert u8(directory, 20) == 0 and u8(directory, 21) == 1


def test_small_fixed_classes() -> None:
    info = make_info()
    assert fi.encode(C.FileInternalInformation, info) == (0x1122334455667788).to_bytes(8, "little")
    assert fi.encode(C.FileEaInformation, info) == (0x44).to_bytes(4, "little")
    assert fi.encode(C.FileAccessInformation, info, access_flags=0x12019F) == bytes.fromhex("9f011200")
    assert fi.encode(C.FilePositionInformation, info, current_offset=0x1234) == bytes.fromhex(
        "3412000000000000"
    )
    assert fi.encode(C.FileModeInformation, info, mode=0x22) == bytes.fromhex("22000000")
    assert fi.encode(C.FileAlignmentInformation, info) == bytes(4)


def test_name_classes() -> None:
    info = make_info()
    expected = bytes.fromhex("08000000") + "\\a\\b".encode("utf-16-le")
    assert fi.encode(C.FileNameInformation, info, file_name="\\a\\b") == expected
    assert fi.encode(C.FileNormalizedNameInformation, info, file_name="\\a\\b") == expected
    assert fi.encode(C.FileAlternateNameInformation, info) == bytes(4)
    parsed = sp.FileNameInformation()
    parsed.unpack(expected)
    assert parsed["file_name"].get_value() == "\\a\\b"


def test_all_offsets_impacket_and_smbprotocol() -> None:
    info = make_info()
    data = fi.encode(
        C.FileAllInformation,
        info,
        file_name="\\dir\\f.txt",
        delete_pending=True,
        access_flags=0x1F01FF,
        current_offset=77,
        mode=0x20,
    )
    name = "\\dir\\f.txt".encode("utf-16-le")
    assert len(data) == 100 + len(name)
    assert [u64(data, o) for o in (0, 8, 16, 24)] == [CREATION, ACCESS, WRITE, CHANGE]
    assert u32(data, 32) == 0x20
    assert u64(data, 40) == 8192 and u64(data, 48) == 5000 and u32(data, 56) == 2  # 3 links, one delete pending
    assert u8(data, 60) == 1 and u8(data, 61) == 0
    assert u64(data, 64) == 0x1122334455667788
    assert u32(data, 72) == 0x44 and u32(data, 76) == 0x1F01FF
    assert u64(data, 80) == 77 and u32(data, 88) == 0x20 and u32(data, 92) == 0
    assert u32(data, 96) == len(name) and data[100:] == name

    parsed = smb3structs.FILE_ALL_INFORMATION(data)
    assert parsed["NameInformation"]["FileName"] == name
    assert parsed["PositionInformation"]["CurrentByteOffset"] == 77
    other = sp.FileAllInformation()
    other.unpack(data)
    assert other["name_information"]["file_name"].get_value() == "\\dir\\f.txt"
    assert other["standard_information"]["end_of_file"].get_value() == 5000


def test_stream_information_default_file_and_directory() -> None:
    data = fi.encode(C.FileStreamInformation, make_info())
    name = "::$DATA".encode("utf-16-le")
    assert u32(data, 0) == 0 and u32(data, 4) == len(name)
    assert u64(data, 8) == 5000 and u64(data, 16) == 8192 and data[24:] == name
    parsed = sp.FileStreamInformation()
    parsed.unpack(data)
    assert parsed["stream_name"].get_value() == "::$DATA"
    assert fi.encode(C.FileStreamInformation, make_info(attributes=FILE_ATTRIBUTE_DIRECTORY)) == b""


def test_stream_information_entries_are_8_byte_aligned() -> None:
    data = fi.encode(C.FileStreamInformation, make_info(), streams=[("::$DATA", 1, 2), (":s:$DATA", 3, 4)])
    first_len = 24 + 14
    assert u32(data, 0) == 40  # 38 rounded up to 8
    assert data[first_len:40] == bytes(2)
    assert u32(data, 40) == 0 and u64(data, 48) == 3 and data[64:].decode("utf-16-le") == ":s:$DATA"


def test_compression_network_open_attribute_tag_id() -> None:
    info = make_info(attributes=0x420, reparse_tag=IO_REPARSE_TAG_SYMLINK)
    compression = fi.encode(C.FileCompressionInformation, info)
    assert len(compression) == 16 and u64(compression, 0) == 5000 and compression[8:] == bytes(8)

    network = fi.encode(C.FileNetworkOpenInformation, info)
    assert len(network) == 56
    assert u64(network, 32) == 8192 and u64(network, 40) == 5000 and u32(network, 48) == 0x420
    parsed = smb.SMBFileNetworkOpenInfo(network)
    assert parsed["EndOfFile"] == 5000 and parsed["ChangeTime"] == CHANGE

    tag = fi.encode(C.FileAttributeTagInformation, info)
    assert tag == (0x420).to_bytes(4, "little") + IO_REPARSE_TAG_SYMLINK.to_bytes(4, "little")
    # A tag without FILE_ATTRIBUTE_REPARSE_POINT is not reported.
    plain = fi.encode(C.FileAttributeTagInformation, make_info(reparse_tag=IO_REPARSE_TAG_SYMLINK))
    assert u32(plain, 4) == 0

    file_id = fi.encode(C.FileIdInformation, info, volume_serial_number=0xAABBCCDD)
    assert len(file_id) == 24 and u64(file_id, 0) == 0xAABBCCDD
    assert file_id[8:24] == (0x1122334455667788).to_bytes(16, "little")


def test_full_ea_uses_the_ea_list() -> None:
    data = fi.encode(C.FileFullEaInformation, make_info(), ea_entries=[EaEntry(b"A", b"xy")])
    assert data == bytes.fromhex("00000000 00 01 0200") + b"A\x00xy"


def test_posix_information_layout() -> None:
    info = make_info()
    data = fi.encode(C.FilePosixInformation, info)
    assert len(data) == 80 + 16 + 16
    assert [u64(data, o) for o in (0, 8, 16, 24)] == [CREATION, ACCESS, WRITE, CHANGE]
    assert u64(data, 32) == 5000  # EndOfFile
    assert u64(data, 40) == 8192  # AllocationSize
    assert u32(data, 48) == 0x20  # FileAttributes
    assert u64(data, 52) == 0x1122334455667788  # InodeNumber
    assert u32(data, 60) == 0x803  # DeviceId = st_dev
    assert u32(data, 64) == 0
    assert u32(data, 68) == 3  # NumberOfLinks
    assert u32(data, 72) == 0  # ReparseTag
    assert u32(data, 76) == 0o640  # regular file: type 0
    assert data[80:96] == UNIX_USER_1000 and data[96:112] == UNIX_GROUP_100
    assert fi.encode_posix_create_response(info) == data[68:]


@pytest.mark.parametrize(
    ("mode", "posix_type"),
    [
        (stat.S_IFREG | 0o644, 0),
        (stat.S_IFDIR | 0o755, 1),
        (stat.S_IFLNK | 0o777, 2),
        (stat.S_IFCHR | 0o620, 3),
        (stat.S_IFBLK | 0o660, 4),
        (stat.S_IFIFO | 0o600, 5),
        (stat.S_IFSOCK | 0o755, 6),
        (stat.S_IFREG | 0o4755, 0),
        (stat.S_IFDIR | 0o1777, 1),
    ],
)
def test_posix_mode_type_from_st_mode(mode: int, posix_type: int) -> None:
    info = make_info(mode=mode)
    expected = (mode & 0o7777) | (posix_type << 12)
    assert u32(fi.encode(C.FilePosixInformation, info), 76) == expected
    assert u32(fi.encode(C.FilePosixInformation, info, posix_with_file_type=False), 76) == mode & 0o7777


@pytest.mark.parametrize(
    ("tag", "posix_type"),
    [
        (IO_REPARSE_TAG_SYMLINK, 2),
        (IO_REPARSE_TAG_LX_SYMLINK, 2),
        (IO_REPARSE_TAG_LX_CHR, 3),
        (IO_REPARSE_TAG_LX_BLK, 4),
        (IO_REPARSE_TAG_LX_FIFO, 5),
        (IO_REPARSE_TAG_AF_UNIX, 6),
        (0x9000001A, 0),  # a cloud placeholder on a regular file stays a regular file
    ],
)
def test_posix_mode_type_from_reparse_tag(tag: int, posix_type: int) -> None:
    info = make_info(attributes=0x20 | FILE_ATTRIBUTE_REPARSE_POINT, reparse_tag=tag)
    data = fi.encode(C.FilePosixInformation, info)
    assert u32(data, 72) == tag
    # A symlink shows 0777 whatever the mode of the file that carries it (lstat(2) of a Linux symlink).
    assert u32(data, 76) == (0o777 if posix_type == 2 else 0o640) | (posix_type << 12)


def test_symlink_tag_on_a_directory_reports_a_symlink() -> None:
    # cifs.ko creates symlinks to directories as empty directories with IO_REPARSE_TAG_SYMLINK (notes 12.6).
    info = make_info(
        attributes=FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT,
        reparse_tag=IO_REPARSE_TAG_SYMLINK,
        mode=stat.S_IFDIR | 0o755,
    )
    assert fi.posix_file_type(info) == 2


def test_posix_mode_nfs_type() -> None:
    nfs_blob = make_info(attributes=0x20 | FILE_ATTRIBUTE_REPARSE_POINT, reparse_tag=IO_REPARSE_TAG_NFS)
    assert fi.posix_file_type(nfs_blob, NFS_SPECFILE_FIFO) == 5
    assert fi.posix_file_type(nfs_blob, NFS_SPECFILE_BLK) == 4
    assert fi.posix_file_type(nfs_blob, NFS_SPECFILE_LNK) == 2
    assert fi.posix_file_type(nfs_blob) == 0
    real_fifo = make_info(
        attributes=FILE_ATTRIBUTE_REPARSE_POINT, reparse_tag=IO_REPARSE_TAG_NFS, mode=stat.S_IFIFO | 0o600
    )
    assert fi.posix_file_type(real_fifo) == 5


@pytest.mark.parametrize("info_class", [C.FileRenameInformation, C.FileDispositionInformation, 0, 200])
def test_unsupported_query_class(info_class: int) -> None:
    with pytest.raises(SmbError) as excinfo:
        fi.encode(info_class, make_info())
    assert excinfo.value.status == NtStatus.STATUS_INVALID_INFO_CLASS


def test_fixed_sizes_match_encodings() -> None:
    info = make_info()
    for info_class, size in fi.FIXED_SIZE.items():
        data = fi.encode(info_class, info)
        assert len(data) >= size, info_class


@pytest.mark.parametrize(
    ("overrides", "sparse"),
    [
        ({"end_of_file": 8 << 20, "allocation_size": 4096}, True),  # a hole: fewer bytes allocated than the size
        ({"end_of_file": 5000, "allocation_size": 8192}, False),
        ({"end_of_file": 8 << 20, "allocation_size": 4096, "mode": stat.S_IFLNK | 0o777}, False),
        ({"end_of_file": 8 << 20, "allocation_size": 0, "attributes": 0x20 | FILE_ATTRIBUTE_REPARSE_POINT,
          "reparse_tag": IO_REPARSE_TAG_SYMLINK}, False),
    ],
)
def test_posix_information_marks_files_with_holes_sparse(overrides: dict[str, int], sparse: bool) -> None:
    # cifs.ko asks for allocated ranges (SEEK_DATA/SEEK_HOLE) only of a file marked sparse; the Windows classes
    # keep the stored attributes.
    info = make_info(**overrides)
    assert bool(u32(fi.encode(C.FilePosixInformation, info), 48) & 0x200) == sparse
    assert u32(fi.encode(C.FileBasicInformation, info), 32) & 0x200 == 0
