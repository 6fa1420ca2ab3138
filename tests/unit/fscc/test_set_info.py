"""SET_INFO decoders: client-built buffers (smbprotocol, impacket), malformed variants, and fuzzing."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from impacket import smb3structs
from smbprotocol import file_info as sp

from smbsrv.fscc import set_info as si
from smbsrv.fscc.ea import EaEntry
from smbsrv.fscc.file_info import FileInformationClass as C
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus

INFO_LENGTH_MISMATCH = NtStatus.STATUS_INFO_LENGTH_MISMATCH
INVALID_PARAMETER = NtStatus.STATUS_INVALID_PARAMETER


def _status(info_class: int, data: bytes) -> NtStatus:
    with pytest.raises(SmbError) as excinfo:
        si.decode(info_class, data)
    return excinfo.value.status


def test_basic_from_smbprotocol() -> None:
    basic = sp.FileBasicInformation()
    basic["creation_time"] = 0  # FILETIME 0: leave alone
    basic["last_access_time"] = 0
    basic["last_write_time"] = 0
    basic["change_time"] = 0
    basic["file_attributes"] = 0x21
    decoded = si.decode(C.FileBasicInformation, basic.pack())
    assert decoded == si.BasicInformation(0, 0, 0, 0, 0x21)


def test_basic_special_times() -> None:
    data = struct.pack("<qqqqII", -1, -2, 0, 132000000000000000, 0, 0)
    assert si.decode(C.FileBasicInformation, data) == si.BasicInformation(-1, -2, 0, 132000000000000000, 0)
    for index in range(4):
        times = [0, 0, 0, 0]
        times[index] = -3
        assert _status(C.FileBasicInformation, struct.pack("<qqqqII", *times, 0, 0)) == INVALID_PARAMETER
    assert _status(C.FileBasicInformation, bytes(39)) == INFO_LENGTH_MISMATCH


def _rename_buffer(name: str, replace: bool) -> bytes:
    rename = sp.FileRenameInformation()
    rename["replace_if_exists"] = replace
    rename["file_name"] = name
    return rename.pack()


def test_rename_from_smbprotocol_and_impacket() -> None:
    decoded = si.decode(C.FileRenameInformation, _rename_buffer("dir\\new.txt", True))
    assert decoded == si.RenameInformation(True, si.FILE_RENAME_REPLACE_IF_EXISTS, 0, "dir\\new.txt")

    impacket_rename = smb3structs.FILE_RENAME_INFORMATION_TYPE_2()
    impacket_rename["ReplaceIfExists"] = 0
    impacket_rename["RootDirectory"] = 0
    impacket_rename["FileName"] = "b.txt".encode("utf-16-le")
    impacket_rename["FileNameLength"] = 10
    decoded = si.decode(C.FileRenameInformation, impacket_rename.getData())
    assert decoded == si.RenameInformation(False, 0, 0, "b.txt")


def test_link_from_smbprotocol() -> None:
    link = sp.FileLinkInformation()
    link["file_name"] = "hard"
    decoded = si.decode(C.FileLinkInformation, link.pack())
    assert isinstance(decoded, si.RenameInformation) and decoded.file_name == "hard"


def test_rename_offsets_by_hand() -> None:
    name = "x".encode("utf-16-le")
    data = bytes([1]) + bytes(7) + bytes(8) + struct.pack("<I", 2) + name + b"\x00\x00"
    assert si.decode(C.FileRenameInformation, data).file_name == "x"
    # A NUL counted in FileNameLength (cifs.ko sends one after the name) is the same name.
    data = bytes(16) + struct.pack("<I", 4) + name + b"\x00\x00"
    assert si.decode(C.FileRenameInformation, data).file_name == "x"


def test_rename_ex_flags() -> None:
    flags = si.FILE_RENAME_REPLACE_IF_EXISTS | si.FILE_RENAME_POSIX_SEMANTICS
    data = struct.pack("<I4xQI", flags, 0, 4) + "ab".encode("utf-16-le")
    decoded = si.decode(C.FileRenameInformationEx, data)
    assert decoded == si.RenameInformation(True, flags, 0, "ab")
    decoded = si.decode(C.FileRenameInformationEx, struct.pack("<I4xQI", 2, 0, 2) + b"a\x00")
    assert not decoded.replace_if_exists  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "info_class", [C.FileRenameInformation, C.FileLinkInformation, C.FileRenameInformationEx]
)
def test_rename_malformed(info_class: int) -> None:
    assert _status(info_class, bytes(19)) == INFO_LENGTH_MISMATCH
    # FileNameLength beyond the buffer.
    assert _status(info_class, bytes(16) + struct.pack("<I", 4) + b"a\x00") == INVALID_PARAMETER
    # Odd length.
    assert _status(info_class, bytes(16) + struct.pack("<I", 3) + b"a\x00b\x00") == INVALID_PARAMETER
    # Huge length.
    assert _status(info_class, bytes(16) + struct.pack("<I", 0xFFFFFFFE) + b"a\x00") == INVALID_PARAMETER
    # RootDirectory must be 0 over SMB2.
    assert _status(info_class, bytes(8) + struct.pack("<QI", 5, 2) + b"a\x00") == INVALID_PARAMETER
    # A lone surrogate is not a name.
    assert (
        _status(info_class, bytes(16) + struct.pack("<I", 2) + b"\x00\xd8")
        == NtStatus.STATUS_OBJECT_NAME_INVALID
    )


def test_disposition() -> None:
    disposition = sp.FileDispositionInformation()
    disposition["delete_pending"] = True
    assert si.decode(C.FileDispositionInformation, disposition.pack()) == si.DispositionInformation(
        True, si.FILE_DISPOSITION_DELETE
    )
    assert si.decode(C.FileDispositionInformation, b"\x00") == si.DispositionInformation(False, 0)
    assert _status(C.FileDispositionInformation, b"") == INFO_LENGTH_MISMATCH

    flags = si.FILE_DISPOSITION_DELETE | si.FILE_DISPOSITION_POSIX_SEMANTICS
    assert si.decode(C.FileDispositionInformationEx, struct.pack("<I", flags)) == si.DispositionInformation(
        True, flags
    )
    assert si.decode(C.FileDispositionInformationEx, struct.pack("<I", 0)) == si.DispositionInformation(
        False, 0
    )
    assert _status(C.FileDispositionInformationEx, b"\x01\x00\x00") == INFO_LENGTH_MISMATCH


def test_position_end_of_file_allocation() -> None:
    position = sp.FilePositionInformation()
    position["current_byte_offset"] = 4096
    assert si.decode(C.FilePositionInformation, position.pack()) == si.PositionInformation(4096)
    eof = sp.FileEndOfFileInformation()
    eof["end_of_file"] = 123456789
    assert si.decode(C.FileEndOfFileInformation, eof.pack()) == si.EndOfFileInformation(123456789)
    assert si.decode(C.FileAllocationInformation, struct.pack("<q", 1 << 40)) == si.AllocationInformation(
        1 << 40
    )
    for info_class in (C.FilePositionInformation, C.FileEndOfFileInformation, C.FileAllocationInformation):
        assert _status(info_class, struct.pack("<q", -1)) == INVALID_PARAMETER
        assert _status(info_class, bytes(7)) == INFO_LENGTH_MISMATCH


def test_mode() -> None:
    mode = sp.FileModeInformation()
    mode["mode"] = 0x2 | 0x20
    assert si.decode(C.FileModeInformation, mode.pack()) == si.ModeInformation(0x22)
    assert si.decode(C.FileModeInformation, struct.pack("<I", 0)) == si.ModeInformation(0)
    # NO_INTERMEDIATE_BUFFERING and DELETE_ON_CLOSE cannot be set; both SYNCHRONOUS flags together neither.
    for bad in (0x8, 0x1000, 0x10 | 0x20, 0x1):
        assert _status(C.FileModeInformation, struct.pack("<I", bad)) == INVALID_PARAMETER
    assert _status(C.FileModeInformation, bytes(3)) == INFO_LENGTH_MISMATCH


def test_full_ea_from_smbprotocol() -> None:
    first = sp.FileFullEaInformation()
    first["ea_name"] = b"USER.ONE"
    first["ea_value"] = b"value"
    second = sp.FileFullEaInformation()
    second["ea_name"] = b"TWO"
    second["ea_value"] = b""
    first_bytes = first.pack()
    padded = first_bytes + bytes(-len(first_bytes) % 4)
    first["next_entry_offset"] = len(padded)
    data = first.pack() + bytes(-len(first_bytes) % 4) + second.pack()
    decoded = si.decode(C.FileFullEaInformation, data)
    assert decoded == si.FullEaInformation((EaEntry(b"USER.ONE", b"value"), EaEntry(b"TWO", b"")))


def test_unsupported_set_class() -> None:
    for info_class in (C.FileAllInformation, C.FileStandardInformation, C.FilePosixInformation, 0, 255):
        assert _status(info_class, bytes(64)) == NtStatus.STATUS_INVALID_INFO_CLASS


SETTABLE = [
    C.FileBasicInformation,
    C.FileRenameInformation,
    C.FileLinkInformation,
    C.FileDispositionInformation,
    C.FilePositionInformation,
    C.FileFullEaInformation,
    C.FileModeInformation,
    C.FileAllocationInformation,
    C.FileEndOfFileInformation,
    C.FileDispositionInformationEx,
    C.FileRenameInformationEx,
    C.FileLinkInformationEx,
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SETTABLE), st.binary(max_size=96))
def test_decoders_only_raise_smb_error(info_class: int, data: bytes) -> None:
    try:
        si.decode(info_class, data)
    except SmbError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([C.FileRenameInformation, C.FileRenameInformationEx]),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=40),
)
def test_rename_name_length_fuzz(info_class: int, name_length: int, tail: bytes) -> None:
    data = bytes(16) + struct.pack("<I", name_length) + tail
    try:
        decoded = si.decode(info_class, data)
    except SmbError as exc:
        assert exc.status in (INVALID_PARAMETER, NtStatus.STATUS_OBJECT_NAME_INVALID)
    else:
        assert isinstance(decoded, si.RenameInformation)
        assert name_length <= len(tail) and name_length % 2 == 0
