"""Reparse buffers ([MS-FSCC] 2.1.2), FSCTL_SET/DELETE_REPARSE_POINT validation (protocol-notes 8.6) and the
symbolic link error response ([MS-SMB2] 2.2.2.2.1)."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smbprotocol.exceptions import SMB2SymbolicLinkErrorResponse
from smbprotocol.reparse_point import ReparseDataBuffer, SymbolicLinkReparseDataBuffer

from smbsrv.fscc import reparse as rp
from smbsrv.fscc.attributes import (
    IO_REPARSE_TAG_AF_UNIX,
    IO_REPARSE_TAG_LX_CHR,
    IO_REPARSE_TAG_LX_FIFO,
    IO_REPARSE_TAG_LX_SYMLINK,
    IO_REPARSE_TAG_MOUNT_POINT,
    IO_REPARSE_TAG_NFS,
    IO_REPARSE_TAG_SYMLINK,
)
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus

DATA_INVALID = NtStatus.STATUS_IO_REPARSE_DATA_INVALID
THIRD_PARTY_TAG = 0x0000_1234
GUID = bytes(range(16))


def _status(function: object, *args: object) -> NtStatus:
    with pytest.raises(SmbError) as excinfo:
        function(*args)  # type: ignore[operator]
    return excinfo.value.status


def test_symlink_build_by_hand() -> None:
    data = rp.build_symlink("a", "b", True)
    # Tag, ReparseDataLength 12 + 4, Reserved; SubstituteNameOffset/Length, PrintNameOffset/Length;
    # Flags SYMLINK_FLAG_RELATIVE; PathBuffer "a" "b".
    expected = "0c0000a0 1000 0000  0000 0200 0200 0200  01000000  6100 6200"
    assert data == bytes.fromhex(expected)


def test_symlink_matches_smbprotocol() -> None:
    data = rp.build_symlink("\\??\\C:\\dir\\file", "C:\\dir\\file", False)
    outer = ReparseDataBuffer()
    outer.unpack(data)
    assert outer["reparse_tag"].get_value() == IO_REPARSE_TAG_SYMLINK
    inner = SymbolicLinkReparseDataBuffer()
    inner.unpack(outer["data_buffer"].get_value())
    assert inner.get_substitute_name() == "\\??\\C:\\dir\\file" and inner.get_print_name() == "C:\\dir\\file"
    assert inner["flags"].get_value() == 0
    assert rp.parse(data) == rp.SymlinkReparse("\\??\\C:\\dir\\file", "C:\\dir\\file", 0)

    # And the other way: a buffer built by the client.
    inner = SymbolicLinkReparseDataBuffer()
    inner.set_name("target/x", "target/x")
    inner["flags"] = 1
    outer = ReparseDataBuffer()
    outer["reparse_tag"] = IO_REPARSE_TAG_SYMLINK
    outer["data_buffer"] = inner.pack()
    client = outer.pack()
    assert rp.validate_set_buffer(client) == (IO_REPARSE_TAG_SYMLINK, client)
    parsed = rp.parse(client)
    assert (
        isinstance(parsed, rp.SymlinkReparse) and parsed.is_relative and parsed.substitute_name == "target/x"
    )


def test_mount_point() -> None:
    data = rp.build_mount_point("\\??\\C:\\t", "C:\\t")
    assert struct.unpack_from("<IHHHHHH", data) == (
        IO_REPARSE_TAG_MOUNT_POINT,
        len(data) - 8,
        0,
        0,
        16,
        18,
        8,
    )
    assert rp.validate_set_buffer(data)[0] == IO_REPARSE_TAG_MOUNT_POINT
    assert rp.parse(data) == rp.MountPointReparse("\\??\\C:\\t", "C:\\t")


def test_nfs_buffers_by_hand() -> None:
    assert rp.build_nfs(rp.NFS_SPECFILE_CHR, major=4, minor=64) == bytes.fromhex(
        "14000080 1000 0000  4348520000000000  04000000 40000000"
    )
    assert rp.build_nfs(rp.NFS_SPECFILE_BLK, major=8, minor=1)[8:16] == b"BLK\x00\x00\x00\x00\x00"
    assert rp.build_nfs(rp.NFS_SPECFILE_FIFO) == bytes.fromhex("14000080 0800 0000") + b"FIFO\x00\x00\x00\x00"
    assert rp.build_nfs(rp.NFS_SPECFILE_SOCK)[8:] == b"SOCK\x00\x00\x00\x00"
    lnk = rp.build_nfs(rp.NFS_SPECFILE_LNK, target="../t")
    assert lnk[8:16] == bytes.fromhex("4c4e4b0100000000") and lnk[16:] == "../t".encode("utf-16-le")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            rp.build_nfs(rp.NFS_SPECFILE_CHR, major=1, minor=3),
            rp.NfsReparse(rp.NFS_SPECFILE_CHR, major=1, minor=3),
        ),
        (rp.build_nfs(rp.NFS_SPECFILE_BLK, major=8, minor=0), rp.NfsReparse(rp.NFS_SPECFILE_BLK, major=8)),
        (rp.build_nfs(rp.NFS_SPECFILE_FIFO), rp.NfsReparse(rp.NFS_SPECFILE_FIFO)),
        (rp.build_nfs(rp.NFS_SPECFILE_SOCK), rp.NfsReparse(rp.NFS_SPECFILE_SOCK)),
        (
            rp.build_nfs(rp.NFS_SPECFILE_LNK, target="/abs/ü"),
            rp.NfsReparse(rp.NFS_SPECFILE_LNK, target="/abs/ü"),
        ),
        (rp.build_lx_symlink("zïel".encode()), rp.LxSymlinkReparse("zïel".encode(), 2)),
        (rp.build_wsl_special(IO_REPARSE_TAG_LX_FIFO), rp.WslSpecialReparse(IO_REPARSE_TAG_LX_FIFO)),
        (rp.build_wsl_special(IO_REPARSE_TAG_AF_UNIX), rp.WslSpecialReparse(IO_REPARSE_TAG_AF_UNIX)),
        (rp.build_opaque(0x8000_0017, b"wof"), rp.OpaqueReparse(0x8000_0017, b"wof")),
        (rp.build_opaque(THIRD_PARTY_TAG, b"xyz", GUID), rp.OpaqueReparse(THIRD_PARTY_TAG, b"xyz", GUID)),
    ],
)
def test_round_trips(data: bytes, expected: rp.ReparseData) -> None:
    assert rp.parse(data) == expected
    assert rp.validate_set_buffer(data) == (rp.reparse_tag_of(data), data)


def test_lx_symlink_and_wsl_layout() -> None:
    data = rp.build_lx_symlink(b"t")
    assert data == struct.pack("<IHHI", IO_REPARSE_TAG_LX_SYMLINK, 5, 0, 2) + b"t"
    assert rp.build_wsl_special(IO_REPARSE_TAG_LX_CHR) == struct.pack("<IHH", IO_REPARSE_TAG_LX_CHR, 0, 0)
    with pytest.raises(ValueError):
        rp.build_wsl_special(IO_REPARSE_TAG_SYMLINK)


def test_set_buffer_statuses() -> None:
    good = rp.build_symlink("x", "x", True)
    assert _status(rp.validate_set_buffer, b"") == NtStatus.STATUS_INVALID_BUFFER_SIZE
    for short in (b"\x0c", good[:7]):
        assert _status(rp.validate_set_buffer, short) == DATA_INVALID
    # ReparseDataLength must match the input exactly: one byte more or less fails.
    assert _status(rp.validate_set_buffer, good + b"\x00") == DATA_INVALID
    assert _status(rp.validate_set_buffer, good[:-1]) == DATA_INVALID
    # Reserved tags.
    for tag in (0, 1):
        assert _status(rp.validate_set_buffer, struct.pack("<IHH", tag, 0, 0)) == DATA_INVALID
    # Larger than 16 KiB, even with a consistent length field.
    big = rp.build_opaque(0x8000_0017, bytes(16 * 1024 - 8 + 1))
    assert _status(rp.validate_set_buffer, big) == DATA_INVALID
    exact = rp.build_opaque(0x8000_0017, bytes(16 * 1024 - 8))
    assert rp.validate_set_buffer(exact)[0] == 0x8000_0017


def test_set_buffer_third_party_tags_need_the_guid() -> None:
    short_form = rp.build_opaque(THIRD_PARTY_TAG, b"data")
    assert _status(rp.validate_set_buffer, short_form) == DATA_INVALID
    assert (
        _status(rp.validate_set_buffer, struct.pack("<IHH", THIRD_PARTY_TAG, 0, 0) + bytes(15))
        == DATA_INVALID
    )
    guid_form = rp.build_opaque(THIRD_PARTY_TAG, b"data", GUID)
    assert rp.validate_set_buffer(guid_form) == (THIRD_PARTY_TAG, guid_form)


def _symlink_raw(sub_off: int, sub_len: int, prt_off: int, prt_len: int, path: bytes) -> bytes:
    return (
        struct.pack(
            "<IHHHHHHI", IO_REPARSE_TAG_SYMLINK, 12 + len(path), 0, sub_off, sub_len, prt_off, prt_len, 0
        )
        + path
    )


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("<IHH", IO_REPARSE_TAG_SYMLINK, 4, 0) + bytes(4),  # shorter than the symlink fixed part
        _symlink_raw(0, 6, 0, 2, b"a\x00b\x00"),  # substitute name past PathBuffer
        _symlink_raw(4, 2, 0, 2, b"a\x00b\x00"),  # substitute offset past PathBuffer
        _symlink_raw(0, 2, 0xFFFE, 4, b"a\x00b\x00"),
        struct.pack("<IHH", IO_REPARSE_TAG_MOUNT_POINT, 6, 0) + bytes(6),
        struct.pack("<IHHHHHH", IO_REPARSE_TAG_MOUNT_POINT, 8, 0, 0, 2, 0, 0),  # name past PathBuffer
        struct.pack("<IHH", IO_REPARSE_TAG_NFS, 4, 0) + b"FIFO",  # Type truncated
        struct.pack("<IHHQ", IO_REPARSE_TAG_NFS, 12, 0, rp.NFS_SPECFILE_CHR)
        + bytes(4),  # device data 4 bytes
        struct.pack("<IHHQ", IO_REPARSE_TAG_NFS, 8, 0, rp.NFS_SPECFILE_BLK),  # device data missing
        struct.pack("<IHHQ", IO_REPARSE_TAG_NFS, 10, 0, rp.NFS_SPECFILE_FIFO) + bytes(2),  # FIFO with data
        struct.pack("<IHHQ", IO_REPARSE_TAG_NFS, 8, 0, rp.NFS_SPECFILE_LNK),  # empty link target
        struct.pack("<IHHQ", IO_REPARSE_TAG_NFS, 11, 0, rp.NFS_SPECFILE_LNK) + b"abc",  # odd link target
        struct.pack("<IHHQ", IO_REPARSE_TAG_NFS, 8, 0, 0x4B4E5548),  # unknown NFS type
        struct.pack("<IHH", IO_REPARSE_TAG_LX_SYMLINK, 2, 0) + b"\x02\x00",  # Version truncated
    ],
)
def test_set_buffer_tag_specific_layout(data: bytes) -> None:
    assert _status(rp.validate_set_buffer, data) == DATA_INVALID
    assert _status(rp.parse, data) == DATA_INVALID


def test_parse_rejects_bad_names() -> None:
    lone_surrogate = _symlink_raw(0, 2, 0, 2, b"\x00\xd8")
    assert rp.validate_set_buffer(lone_surrogate)[0] == IO_REPARSE_TAG_SYMLINK  # Windows does not look
    assert _status(rp.parse, lone_surrogate) == DATA_INVALID
    nul_in_target = struct.pack("<IHHQ", IO_REPARSE_TAG_NFS, 12, 0, rp.NFS_SPECFILE_LNK) + b"a\x00\x00\x00"
    assert _status(rp.parse, nul_in_target) == DATA_INVALID


def test_delete_buffer() -> None:
    header = struct.pack("<IHH", IO_REPARSE_TAG_SYMLINK, 0, 0)
    assert rp.validate_delete_buffer(header) == IO_REPARSE_TAG_SYMLINK
    assert rp.validate_delete_buffer(header, IO_REPARSE_TAG_SYMLINK) == IO_REPARSE_TAG_SYMLINK
    assert (
        _status(rp.validate_delete_buffer, header, IO_REPARSE_TAG_NFS)
        == NtStatus.STATUS_IO_REPARSE_TAG_MISMATCH
    )
    # Data present is reported before a wrong tag (the Windows/Samba test order).
    with_data = rp.build_symlink("x", "x", True)
    assert _status(rp.validate_delete_buffer, with_data, IO_REPARSE_TAG_NFS) == DATA_INVALID
    assert _status(rp.validate_delete_buffer, header + b"\x00") == DATA_INVALID
    assert _status(rp.validate_delete_buffer, b"") == DATA_INVALID
    assert _status(rp.validate_delete_buffer, header[:7]) == DATA_INVALID
    assert (
        _status(rp.validate_delete_buffer, struct.pack("<IHH", 0, 0, 0))
        == NtStatus.STATUS_IO_REPARSE_TAG_INVALID
    )
    # Third-party tags: exactly the 24-byte GUID header, and the GUID must match.
    guid_header = struct.pack("<IHH", THIRD_PARTY_TAG, 0, 0) + GUID
    assert rp.validate_delete_buffer(guid_header, THIRD_PARTY_TAG, GUID) == THIRD_PARTY_TAG
    assert _status(rp.validate_delete_buffer, guid_header[:8], THIRD_PARTY_TAG) == DATA_INVALID
    assert (
        _status(rp.validate_delete_buffer, guid_header, THIRD_PARTY_TAG, bytes(16))
        == NtStatus.STATUS_REPARSE_ATTRIBUTE_CONFLICT
    )


def test_symlink_error_by_hand() -> None:
    data = rp.build_symlink_error("t", "t", True, 6)
    # SymLinkLength = 32 - 4, "SYML", tag; ReparseDataLength 12 + 4, UnparsedPathLength; the name offsets and
    # lengths; Flags; PathBuffer "t" "t".
    expected = "1c000000 53594d4c 0c0000a0  1000 0600  0000 0200 0200 0200  01000000  7400 7400"
    assert data == bytes.fromhex(expected)


def test_symlink_error_with_smbprotocol_resolution() -> None:
    # [MS-SMB2] 2.2.2.2.1.1: the unparsed part "\DailyDocs\[MS-SMB].doc" is 23 characters, 46 bytes.
    unparsed = "\\DailyDocs\\[MS-SMB].doc"
    data = rp.build_symlink_error("Docs2", "Docs2", True, len(unparsed.encode("utf-16-le")))
    parsed = SMB2SymbolicLinkErrorResponse()
    parsed.unpack(data)
    assert parsed["unparsed_path_length"].get_value() == 46
    assert parsed.get_substitute_name() == "Docs2" and parsed.get_print_name() == "Docs2"
    resolved = parsed.resolve_path("\\\\server\\share\\ProtocolDocs" + unparsed)
    assert resolved == "\\\\server\\share\\Docs2" + unparsed


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(
        [
            IO_REPARSE_TAG_SYMLINK,
            IO_REPARSE_TAG_MOUNT_POINT,
            IO_REPARSE_TAG_NFS,
            IO_REPARSE_TAG_LX_SYMLINK,
            IO_REPARSE_TAG_LX_FIFO,
            THIRD_PARTY_TAG,
            0,
            1,
        ]
    ),
    st.binary(max_size=64),
    st.booleans(),
)
def test_validators_and_parser_only_raise_smb_error(tag: int, body: bytes, consistent: bool) -> None:
    length = len(body) if consistent else len(body) ^ 0x5
    data = struct.pack("<IHH", tag, length & 0xFFFF, 0) + body
    for function in (rp.validate_set_buffer, rp.validate_delete_buffer, rp.parse):
        try:
            function(data)
        except SmbError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=48))
def test_random_bytes_only_raise_smb_error(data: bytes) -> None:
    for function in (rp.validate_set_buffer, rp.validate_delete_buffer, rp.parse):
        try:
            function(data)
        except SmbError:
            pass
