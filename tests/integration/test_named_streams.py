"""Named streams ("file:stream"), the same client sequence on Samba 4.17 with `vfs objects = streams_xattr` and on
smbsrv with its default share, asserting the same NTSTATUS values and bytes on both.

Both store a stream as Samba's vfs_streams_xattr does: the xattr "user.DosStream.<name>:$DATA" holds the data and
one trailing 0 byte. What Samba does differently from Windows/[MS-FSA] (e.g. FileStreamInformation through a
stream handle is INVALID_PARAMETER, "::$DATA" comes last, a stream rename is case-sensitive) is written down in
the named-streams facts and not tested here; so are filesystem limits (ext4 keeps ~4 KiB of xattrs per file).
The servers run as root serving a non-root account (tests/differential/run.py's servers(), Samba with
vfs_streams_xattr: the `runner` of tests/integration/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from benchmarks.servers import HOST, SHARE_NAME
from tests import builders as b
from tests.conftest import assert_no_server_bugs, start_server, stop_server
from tests.differential.run import Runner, Side
from tests.integration.test_differential import _both
from tests.integration.test_oplocks import next_break, no_break, oplock_ack

pytestmark = [
    pytest.mark.skipif(shutil.which("smbd") is None, reason="Samba's smbd is not installed (apt-get install samba)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="both servers run as root serving a non-root account"),
]

RW = b.GENERIC_READ | b.GENERIC_WRITE
FILE_SHARE_READ, FILE_SHARE_WRITE = 1, 2
FILE_ALLOCATION_INFORMATION = 19
FILE_INTERNAL_INFORMATION = 6
FILE_POSITION_INFORMATION = 14
FILE_NETWORK_OPEN_INFORMATION = 34
FILE_STREAM_INFORMATION = 22
FILE_FS_ATTRIBUTE_INFORMATION = 5
FILE_NAMED_STREAMS = 0x00040000
FILE_ATTRIBUTE_HIDDEN = 0x2
FILE_ATTRIBUTE_ARCHIVE = 0x20
STATUS_FILE_SYSTEM_LIMITATION = 0xC0000427
STATUS_NOT_A_REPARSE_POINT = 0xC0000275
LOCK_EXCLUSIVE, LOCK_UNLOCK, LOCK_FAIL_IMMEDIATELY = 0x2, 0x4, 0x10
FILE_OPEN, FILE_CREATE, FILE_OPEN_IF = 1, 2, 3
OPLOCK_LEVEL_II, OPLOCK_BATCH, OPLOCK_LEASE = 0x01, 0x09, 0xFF
CREATED, OPENED = 2, 1  # CreateAction ([MS-SMB2] 2.2.14)


def _name(status: int) -> str:
    return b.status_name(status)


def _create(client: b.Client, name: str, access: int = b.GENERIC_READ, disposition: int = FILE_OPEN,
            **kwargs: object) -> tuple[str, tuple[int, int] | None, b.Response]:
    response = client.create(name, desired_access=access, disposition=disposition, **kwargs)
    file_id = b.create_file_id(response.body) if response.status == b.STATUS_SUCCESS else None
    return _name(response.status), file_id, response


def _action_eof_attributes(response: b.Response) -> tuple[int, int, int]:
    """CreateAction@4, EndofFile@48, FileAttributes@56 of the CREATE response ([MS-SMB2] 2.2.14)."""
    (action,) = struct.unpack_from("<I", response.body, 4)
    (eof,) = struct.unpack_from("<Q", response.body, 48)
    (attributes,) = struct.unpack_from("<I", response.body, 56)
    return action, eof, attributes


def _make(client: b.Client, name: str, data: bytes = b"") -> None:
    file_id = client.open(name, desired_access=RW, disposition=FILE_OPEN_IF)
    if data:
        assert client.write(file_id, 0, data).status == b.STATUS_SUCCESS, name
    assert client.close_file(file_id) == b.STATUS_SUCCESS


def _read_all(client: b.Client, file_id: tuple[int, int]) -> bytes:
    response = client.read(file_id, 0, 65536)
    if response.status == b.STATUS_END_OF_FILE:
        return b""
    assert response.status == b.STATUS_SUCCESS, _name(response.status)
    return b.read_data(response)


def _query(client: b.Client, file_id: tuple[int, int], info_class: int,
           info_type: int = b.SMB2_0_INFO_FILE) -> bytes:
    response = client.query_info(file_id, info_type, info_class)
    assert response.status == b.STATUS_SUCCESS, _name(response.status)
    return b.output_buffer(response)


def _set(client: b.Client, file_id: tuple[int, int], info_class: int, buffer: bytes) -> str:
    return _name(client.set_info(file_id, b.SMB2_0_INFO_FILE, info_class, buffer).status)


def _standard(client: b.Client, file_id: tuple[int, int]) -> tuple[int, int, int, int]:
    """EndOfFile, NumberOfLinks, DeletePending, Directory of FileStandardInformation ([MS-FSCC] 2.4.41)."""
    buffer = _query(client, file_id, b.FILE_STANDARD_INFORMATION)
    eof, links, pending, directory = struct.unpack_from("<QIBB", buffer, 8)
    return eof, links, pending, directory


def _attributes(client: b.Client, file_id: tuple[int, int]) -> int:
    return struct.unpack_from("<I", _query(client, file_id, b.FILE_BASIC_INFORMATION), 32)[0]


def _streams(buffer: bytes) -> list[tuple[str, int, int, int]]:
    """FILE_STREAM_INFORMATION entries ([MS-FSCC] 2.4.43): (name, StreamSize, StreamAllocationSize,
    NextEntryOffset), in the order given."""
    entries = []
    position = 0
    while buffer:
        next_offset, name_length, size, allocation = struct.unpack_from("<IIqq", buffer, position)
        name = buffer[position + 24:position + 24 + name_length].decode("utf-16-le")
        entries.append((name, size, allocation, next_offset))
        if not next_offset:
            break
        position += next_offset
    return entries


def _stream_sizes(client: b.Client, name: str, who: str) -> dict[str, int]:
    """Every entry of the file's FileStreamInformation as {name: size}, checking the entries' layout: each
    entry 8-aligned, the last one's NextEntryOffset 0, named streams allocated as many bytes as they hold."""
    file_id = client.open(name, desired_access=b.FILE_READ_ATTRIBUTES)
    entries = _streams(_query(client, file_id, FILE_STREAM_INFORMATION))
    assert client.close_file(file_id) == b.STATUS_SUCCESS
    for index, (stream, size, allocation, next_offset) in enumerate(entries):
        last = index == len(entries) - 1
        assert next_offset == (0 if last else (24 + 2 * len(stream) + 7) // 8 * 8), (who, entries)
        if stream != "::$DATA":
            assert allocation == size, (who, entries)  # xattr streams have no clusters (Samba: StreamSize)
    return {stream: size for stream, size, _, _ in entries}


def _xattr(side: Side, path: str, stream: str) -> bytes | None:
    try:
        return os.getxattr(side.share_dir / path, f"user.DosStream.{stream}:$DATA")
    except OSError:
        return None


def _stream_xattrs(side: Side, path: str) -> list[str]:
    return sorted(name for name in os.listxattr(side.share_dir / path) if name.startswith("user.DosStream."))


# -- CREATE ---------------------------------------------------------------------------------------------------

def test_stream_create_makes_the_missing_base_file(runner: Runner) -> None:
    """"f:s" on a missing f: FILE_OPEN is OBJECT_NAME_NOT_FOUND and makes nothing; FILE_OPEN_IF and FILE_CREATE
    make an empty base file (ARCHIVE, plus the attributes asked for) with an empty stream."""
    for side, client, base in _both(runner):
        status, _, _ = _create(client, f"{base}\\m:s", RW, FILE_OPEN)
        assert status == "STATUS_OBJECT_NAME_NOT_FOUND", side.name
        assert not (side.share_dir / base / "m").exists(), side.name
        for name, disposition, attributes in (("a", FILE_OPEN_IF, 0), ("c", FILE_CREATE, FILE_ATTRIBUTE_HIDDEN)):
            status, file_id, response = _create(client, f"{base}\\{name}:s", RW, disposition,
                                                file_attributes=attributes)
            assert status == "STATUS_SUCCESS", (side.name, name)
            assert file_id is not None
            assert _action_eof_attributes(response) == (CREATED, 0, FILE_ATTRIBUTE_ARCHIVE | attributes), side.name
            assert (side.share_dir / base / name).stat().st_size == 0, side.name
            assert _xattr(side, f"{base}/{name}", "s") == b"\x00", side.name
            base_id = client.open(f"{base}\\{name}", desired_access=b.FILE_READ_ATTRIBUTES)
            assert _attributes(client, base_id) == FILE_ATTRIBUTE_ARCHIVE | attributes, side.name
            assert _standard(client, base_id) == (0, 1, 0, 0), side.name
            assert client.close_file(base_id) == b.STATUS_SUCCESS
            assert client.close_file(file_id) == b.STATUS_SUCCESS
        status, _, _ = _create(client, f"{base}\\nodir\\f:s", RW, FILE_OPEN_IF)
        assert status == "STATUS_OBJECT_PATH_NOT_FOUND", side.name


def test_stream_create_dispositions_on_an_existing_file(runner: Runner) -> None:
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"base data")
        assert _create(client, f"{base}\\f:s", RW, FILE_OPEN)[0] == "STATUS_OBJECT_NAME_NOT_FOUND", side.name
        status, file_id, response = _create(client, f"{base}\\f:s", RW, FILE_CREATE)
        assert status == "STATUS_SUCCESS", side.name
        assert _action_eof_attributes(response) == (CREATED, 0, FILE_ATTRIBUTE_ARCHIVE), side.name
        assert client.write(file_id, 0, b"abc").status == b.STATUS_SUCCESS
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        status, file_id, response = _create(client, f"{base}\\f:s", RW, FILE_OPEN_IF)
        assert status == "STATUS_SUCCESS", side.name
        assert _action_eof_attributes(response) == (OPENED, 3, FILE_ATTRIBUTE_ARCHIVE), side.name
        assert _read_all(client, file_id) == b"abc", side.name
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert _create(client, f"{base}\\f:s", RW, FILE_CREATE)[0] == "STATUS_OBJECT_NAME_COLLISION", side.name
        assert (side.share_dir / base / "f").read_bytes() == b"base data", side.name
        assert _xattr(side, f"{base}/f", "s") == b"abc\x00", side.name


# What FILE_OPEN and FILE_OPEN_IF (GENERIC_READ|GENERIC_WRITE) answer for each name, on a file f with a
# 3-byte stream s. Stream names may hold any character but ':', '\\', '/' and NUL ([MS-FSCC] 2.1.5.3); the
# stream type must be $DATA.
NAMES = (
    ("f::$DATA", "STATUS_SUCCESS", "STATUS_SUCCESS"),
    ("f::$data", "STATUS_SUCCESS", "STATUS_SUCCESS"),
    ("f:s:$DATA", "STATUS_SUCCESS", "STATUS_SUCCESS"),
    ("f:S", "STATUS_SUCCESS", "STATUS_SUCCESS"),
    ("f:S:$data", "STATUS_SUCCESS", "STATUS_SUCCESS"),
    ("f:s:$FOO", "STATUS_INVALID_PARAMETER", "STATUS_INVALID_PARAMETER"),
    ("f::$FOO", "STATUS_INVALID_PARAMETER", "STATUS_INVALID_PARAMETER"),
    ("f:s:t", "STATUS_INVALID_PARAMETER", "STATUS_INVALID_PARAMETER"),
    ("f:", "STATUS_OBJECT_NAME_INVALID", "STATUS_OBJECT_NAME_INVALID"),
    ("f::", "STATUS_OBJECT_NAME_INVALID", "STATUS_OBJECT_NAME_INVALID"),
    ("f:s:", "STATUS_OBJECT_NAME_INVALID", "STATUS_OBJECT_NAME_INVALID"),
    ("f:s:$DATA:", "STATUS_OBJECT_NAME_INVALID", "STATUS_OBJECT_NAME_INVALID"),
    ("f:s:t:$DATA", "STATUS_OBJECT_NAME_INVALID", "STATUS_OBJECT_NAME_INVALID"),
    ("f:s/x", "STATUS_OBJECT_NAME_INVALID", "STATUS_OBJECT_NAME_INVALID"),
    ("f:s\\x", "STATUS_OBJECT_NAME_INVALID", "STATUS_OBJECT_NAME_INVALID"),
    ("f:s*", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),
    ("f:s?", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),
    ("f:s<", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),
    ("f:s>", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),
    ('f:s"', "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),
    ("f:s|", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),
    ("f:s\x01", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),
    ("f:$DATA", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),  # a stream named "$DATA"
    ("f: ", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),
    ("f:s ", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),
    # The longest stream name an xattr name holds (255 bytes with "user.DosStream." and ":$DATA"), and one more.
    ("f:" + "L" * 234, "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),
    ("f:" + "M" * 235, "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_OBJECT_NAME_NOT_FOUND"),
    ("nof::$DATA", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),  # the default stream of a new file
)


def test_stream_names(runner: Runner) -> None:
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"0123456789")
        _make(client, f"{base}\\f:s", b"abc")
        for name, on_open, on_open_if in NAMES:
            answers = []
            for disposition in (FILE_OPEN, FILE_OPEN_IF):
                status, file_id, _ = _create(client, f"{base}\\{name}", RW, disposition)
                answers.append(status)
                if file_id is not None:
                    assert client.close_file(file_id) == b.STATUS_SUCCESS
            assert answers == [on_open, on_open_if], (side.name, name)
        # "::$DATA" is the file itself, a stream name matches in any case.
        for name, data in (("f::$DATA", b"0123456789"), ("f:S", b"abc"), ("f:s:$DATA", b"abc")):
            file_id = client.open(f"{base}\\{name}", desired_access=b.GENERIC_READ)
            assert _read_all(client, file_id) == data, (side.name, name)
            assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert _stream_xattrs(side, f"{base}/f") == sorted(
            f"user.DosStream.{stream}:$DATA" for stream in ("s", "s*", "s?", "s<", "s>", 's"', "s|", "s\x01", "$DATA",
                                                           " ", "s ", "L" * 234)), side.name


def test_stream_of_a_directory(runner: Runner) -> None:
    """A directory may have named streams (regular-file streams: attributes without DIRECTORY); it has no
    "::$DATA"."""
    for side, client, base in _both(runner):
        client.close_file(client.open(f"{base}\\d", desired_access=b.GENERIC_READ, disposition=FILE_CREATE,
                                      options=b.FILE_DIRECTORY_FILE))
        _make(client, f"{base}\\f")
        status, file_id, response = _create(client, f"{base}\\d:s", RW, FILE_CREATE)
        assert status == "STATUS_SUCCESS", side.name
        assert _action_eof_attributes(response) == (CREATED, 0, FILE_ATTRIBUTE_ARCHIVE), side.name
        assert _standard(client, file_id)[3] == 0, side.name  # not a directory
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        for name, disposition, options, expected in (
            ("d:s", FILE_OPEN, 0, "STATUS_SUCCESS"),
            ("d:s", FILE_OPEN, b.FILE_NON_DIRECTORY_FILE, "STATUS_SUCCESS"),
            ("d:s", FILE_OPEN, b.FILE_DIRECTORY_FILE, "STATUS_NOT_A_DIRECTORY"),
            ("d:t", FILE_CREATE, b.FILE_DIRECTORY_FILE, "STATUS_NOT_A_DIRECTORY"),
            ("d:s:$DATA", FILE_OPEN, 0, "STATUS_SUCCESS"),
            ("d::$DATA", FILE_OPEN, 0, "STATUS_FILE_IS_A_DIRECTORY"),
            ("d::$DATA", FILE_OPEN, b.FILE_DIRECTORY_FILE, "STATUS_NOT_A_DIRECTORY"),
            ("d:$DATA", FILE_OPEN, 0, "STATUS_OBJECT_NAME_NOT_FOUND"),
            ("f:s", FILE_OPEN_IF, b.FILE_DIRECTORY_FILE, "STATUS_NOT_A_DIRECTORY"),
            ("f:u", FILE_CREATE, b.FILE_DIRECTORY_FILE, "STATUS_NOT_A_DIRECTORY"),
            ("f:s", FILE_OPEN_IF, b.FILE_NON_DIRECTORY_FILE, "STATUS_SUCCESS"),
        ):
            status, file_id, _ = _create(client, f"{base}\\{name}", b.GENERIC_READ, disposition, options=options)
            assert status == expected, (side.name, name, disposition, options)
            if file_id is not None:
                assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert _stream_xattrs(side, f"{base}/d") == ["user.DosStream.s:$DATA"], side.name
        assert _stream_xattrs(side, f"{base}/f") == ["user.DosStream.s:$DATA"], side.name


# -- FileStreamInformation ---------------------------------------------------------------------------------------

def test_stream_information_of_a_file(runner: Runner) -> None:
    """[MS-FSCC] 2.4.43: "::$DATA" with the file's size, each named stream as ":name:$DATA" in the case it was
    created with. Samba 4.17 lists "::$DATA" last, Windows first: the order is not compared."""
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f")
        file_id = client.open(f"{base}\\f", desired_access=b.FILE_READ_ATTRIBUTES)
        buffer = _query(client, file_id, FILE_STREAM_INFORMATION)
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        # One entry, the empty default stream: NextEntryOffset 0, StreamNameLength 14, sizes 0.
        assert buffer == struct.pack("<IIqq", 0, 14, 0, 0) + "::$DATA".encode("utf-16-le"), side.name
        _make(client, f"{base}\\f", b"hello")
        assert _stream_sizes(client, f"{base}\\f", side.name) == {"::$DATA": 5}, side.name
        _make(client, f"{base}\\f:Zeta")
        assert _stream_sizes(client, f"{base}\\f", side.name) == {"::$DATA": 5, ":Zeta:$DATA": 0}, side.name
        _make(client, f"{base}\\f:zeta", b"abc")  # the same stream: names match in any case
        _make(client, f"{base}\\f:alpha", b"x" * 500)
        expected = {"::$DATA": 5, ":Zeta:$DATA": 3, ":alpha:$DATA": 500}
        assert _stream_sizes(client, f"{base}\\f", side.name) == expected, side.name


def test_stream_information_ignores_other_xattrs(runner: Runner) -> None:
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"x")
        os.setxattr(side.share_dir / base / "f", "user.foo", b"bar")
        assert _stream_sizes(client, f"{base}\\f", side.name) == {"::$DATA": 1}, side.name


def test_stream_information_of_a_directory(runner: Runner) -> None:
    """A directory has no default data stream: no streams is an empty answer, one stream is its entry alone."""
    for side, client, base in _both(runner):
        directory = client.open(f"{base}\\d", desired_access=b.GENERIC_READ, disposition=FILE_CREATE,
                                options=b.FILE_DIRECTORY_FILE)
        response = client.query_info(directory, b.SMB2_0_INFO_FILE, FILE_STREAM_INFORMATION)
        assert (_name(response.status), b.output_buffer(response)) == ("STATUS_SUCCESS", b""), side.name
        _make(client, f"{base}\\d:ds", b"12")
        buffer = _query(client, directory, FILE_STREAM_INFORMATION)
        assert buffer == struct.pack("<IIqq", 0, 18, 2, 2) + ":ds:$DATA".encode("utf-16-le"), side.name
        assert client.close_file(directory) == b.STATUS_SUCCESS


def test_stream_information_in_a_small_buffer(runner: Runner) -> None:
    """Below the fixed part of an entry the answer is INFO_LENGTH_MISMATCH; a buffer that does not hold every
    entry is BUFFER_OVERFLOW (Samba 4.17 returns no entries then, Windows those that fit: the data is not
    compared); the last entry is not padded, so the exact size is enough."""
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"12345")
        _make(client, f"{base}\\f:aa", b"A")
        _make(client, f"{base}\\f:bbbb", b"BB")
        file_id = client.open(f"{base}\\f", desired_access=b.FILE_READ_ATTRIBUTES)
        # ":aa:$DATA" and ":bbbb:$DATA" take 48 bytes each with padding, "::$DATA" 24 + 14.
        for length, expected in ((16, "STATUS_INFO_LENGTH_MISMATCH"), (100, "STATUS_BUFFER_OVERFLOW"),
                                 (133, "STATUS_BUFFER_OVERFLOW"), (134, "STATUS_SUCCESS")):
            response = client.query_info(file_id, b.SMB2_0_INFO_FILE, FILE_STREAM_INFORMATION, output_length=length)
            assert _name(response.status) == expected, (side.name, length)
        assert len(b.output_buffer(response)) == 134, side.name
        assert client.close_file(file_id) == b.STATUS_SUCCESS


# -- information through a stream handle ------------------------------------------------------------------------

def test_information_through_a_stream_handle(runner: Runner) -> None:
    """The stream's own size; the base file's attributes and IndexNumber; a position of its own."""
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"0123456789")
        file_id = client.open(f"{base}\\f", desired_access=b.FILE_READ_ATTRIBUTES)
        stream = client.open(f"{base}\\f:s", desired_access=RW, disposition=FILE_CREATE)
        assert client.write(stream, 0, b"abc").status == b.STATUS_SUCCESS
        assert _standard(client, stream) == (3, 1, 0, 0), side.name
        assert _attributes(client, stream) == _attributes(client, file_id) == FILE_ATTRIBUTE_ARCHIVE, side.name
        assert _query(client, stream, FILE_INTERNAL_INFORMATION) == _query(client, file_id,
                                                                            FILE_INTERNAL_INFORMATION), side.name
        network = _query(client, stream, FILE_NETWORK_OPEN_INFORMATION)
        assert struct.unpack_from("<QI", network, 40) == (3, FILE_ATTRIBUTE_ARCHIVE), side.name
        everything = _query(client, stream, b.FILE_ALL_INFORMATION)
        # FileAllInformation ([MS-FSCC] 2.4.2): Basic (FileAttributes@32), then Standard (EndOfFile@48,
        # NumberOfLinks@56, DeletePending@60, Directory@61).
        assert struct.unpack_from("<I", everything, 32)[0] == FILE_ATTRIBUTE_ARCHIVE, side.name
        assert struct.unpack_from("<QIBB", everything, 48) == (3, 1, 0, 0), side.name
        assert _query(client, stream, FILE_POSITION_INFORMATION) == bytes(8), side.name
        assert _set(client, stream, FILE_POSITION_INFORMATION, struct.pack("<Q", 5)) == "STATUS_SUCCESS"
        assert _query(client, stream, FILE_POSITION_INFORMATION) == struct.pack("<Q", 5), side.name
        assert _query(client, file_id, FILE_POSITION_INFORMATION) == bytes(8), side.name
        assert _standard(client, file_id)[0] == 10, side.name
        assert client.close_file(stream) == b.STATUS_SUCCESS
        assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_end_of_file_and_allocation_of_a_stream(runner: Runner) -> None:
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"base")
        stream = client.open(f"{base}\\f:s", desired_access=RW, disposition=FILE_CREATE)
        assert client.write(stream, 0, b"abc").status == b.STATUS_SUCCESS
        assert _set(client, stream, b.FILE_END_OF_FILE_INFORMATION, struct.pack("<Q", 10)) == "STATUS_SUCCESS"
        assert _read_all(client, stream) == b"abc" + bytes(7), side.name
        assert _xattr(side, f"{base}/f", "s") == b"abc" + bytes(8), side.name
        assert _set(client, stream, b.FILE_END_OF_FILE_INFORMATION, struct.pack("<Q", 2)) == "STATUS_SUCCESS"
        assert _read_all(client, stream) == b"ab", side.name
        # FileAllocationInformation ([MS-FSA] 2.1.5.15.1): larger keeps EndOfFile, smaller truncates.
        assert _set(client, stream, FILE_ALLOCATION_INFORMATION, struct.pack("<Q", 100)) == "STATUS_SUCCESS"
        assert _standard(client, stream)[0] == 2, side.name
        assert _set(client, stream, FILE_ALLOCATION_INFORMATION, struct.pack("<Q", 1)) == "STATUS_SUCCESS"
        assert _standard(client, stream)[0] == 1, side.name
        assert _read_all(client, stream) == b"a", side.name
        assert _set(client, stream, FILE_ALLOCATION_INFORMATION, struct.pack("<Q", 0)) == "STATUS_SUCCESS"
        assert _read_all(client, stream) == b"", side.name
        assert _xattr(side, f"{base}/f", "s") == b"\x00", side.name
        assert (side.share_dir / base / "f").read_bytes() == b"base", side.name
        assert client.close_file(stream) == b.STATUS_SUCCESS


def test_basic_information_through_a_stream_sets_the_file_attributes(runner: Runner) -> None:
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f")
        stream = client.open(f"{base}\\f:s", desired_access=RW | b.FILE_WRITE_ATTRIBUTES, disposition=FILE_CREATE)
        basic = bytes(32) + struct.pack("<II", FILE_ATTRIBUTE_HIDDEN, 0)
        assert _set(client, stream, b.FILE_BASIC_INFORMATION, basic) == "STATUS_SUCCESS", side.name
        file_id = client.open(f"{base}\\f", desired_access=b.FILE_READ_ATTRIBUTES)
        assert _attributes(client, file_id) == FILE_ATTRIBUTE_HIDDEN, side.name
        assert _attributes(client, stream) == FILE_ATTRIBUTE_HIDDEN, side.name
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert client.close_file(stream) == b.STATUS_SUCCESS


# -- WRITE and READ --------------------------------------------------------------------------------------------

def test_write_and_read_of_a_stream(runner: Runner) -> None:
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"base")
        stream = client.open(f"{base}\\f:s", desired_access=RW, disposition=FILE_CREATE)
        response = client.write(stream, 5, b"XY")
        assert _name(response.status) == "STATUS_SUCCESS", side.name
        assert struct.unpack_from("<I", response.body, 4)[0] == 2, side.name
        assert _read_all(client, stream) == bytes(5) + b"XY", side.name  # the gap is zeros
        assert _xattr(side, f"{base}/f", "s") == bytes(5) + b"XY\x00", side.name
        for offset, length, expected in ((7, 10, "STATUS_END_OF_FILE"), (100, 10, "STATUS_END_OF_FILE"),
                                         (0, 0, "STATUS_SUCCESS"), (7, 0, "STATUS_SUCCESS"),
                                         (100, 0, "STATUS_SUCCESS")):
            assert _name(client.read(stream, offset, length).status) == expected, (side.name, offset, length)
        response = client.read(stream, 3, 100)
        assert (_name(response.status), b.read_data(response)) == ("STATUS_SUCCESS", b"\x00\x00XY"), side.name
        assert client.write(stream, 1, b"bc").status == b.STATUS_SUCCESS
        assert _read_all(client, stream) == b"\x00bc\x00\x00XY", side.name
        assert _name(client.request(b.SMB2_FLUSH, b.flush_body(stream)).status) == "STATUS_SUCCESS", side.name
        assert client.close_file(stream) == b.STATUS_SUCCESS
        assert (side.share_dir / base / "f").read_bytes() == b"base", side.name


def test_write_beyond_the_largest_stream(runner: Runner) -> None:
    """An xattr holds at most 64 KiB (Linux XATTR_SIZE_MAX), the stream one byte less: a WRITE reaching offset
    65535 is STATUS_FILE_SYSTEM_LIMITATION, as ReFS answers (Samba's streams_xattr_pwrite), and writes nothing."""
    for side, client, base in _both(runner):
        stream = client.open(f"{base}\\f:s", desired_access=RW, disposition=FILE_OPEN_IF)
        assert client.write(stream, 0, b"abc").status == b.STATUS_SUCCESS
        for offset, length in ((65535, 1), (65534, 2), (1 << 32, 1)):
            response = client.write(stream, offset, b"q" * length)
            assert response.status == STATUS_FILE_SYSTEM_LIMITATION, (side.name, offset, _name(response.status))
        assert _read_all(client, stream) == b"abc", side.name
        assert client.close_file(stream) == b.STATUS_SUCCESS


# -- share modes, delete ---------------------------------------------------------------------------------------

def test_share_modes_of_streams_and_the_file(runner: Runner) -> None:
    """Each stream has share modes of its own ([MS-FSA] 2.1.5.1.2: the sharing check is per stream); "::$DATA"
    is the file's own stream."""
    for side, client, base in _both(runner):
        other = side.clients[1]
        _make(client, f"{base}\\f", b"data")
        _make(client, f"{base}\\f:s", b"s")
        _make(client, f"{base}\\f:t", b"t")
        for first, first_access, first_share, second, second_access, second_share, expected in (
            ("f:s", RW, 0, "f", RW, 0, "STATUS_SUCCESS"),
            ("f", RW, 0, "f:s", RW, 0, "STATUS_SUCCESS"),
            ("f:s", RW, 0, "f:t", RW, 0, "STATUS_SUCCESS"),
            ("f:s", RW, 0, "f:s", RW, 0, "STATUS_SHARING_VIOLATION"),
            ("f:s", b.GENERIC_READ, 0, "f:S", b.GENERIC_READ, FILE_SHARE_READ, "STATUS_SHARING_VIOLATION"),
            ("f", b.GENERIC_READ, FILE_SHARE_READ, "f:s", b.GENERIC_WRITE, 7, "STATUS_SUCCESS"),
            ("f::$DATA", RW, 0, "f", RW, 0, "STATUS_SHARING_VIOLATION"),
        ):
            held = client.open(f"{base}\\{first}", desired_access=first_access, share_access=first_share)
            status, file_id, _ = _create(other, f"{base}\\{second}", second_access, share_access=second_share)
            assert status == expected, (side.name, first, first_share, second, second_share)
            if file_id is not None:
                assert other.close_file(file_id) == b.STATUS_SUCCESS
            assert client.close_file(held) == b.STATUS_SUCCESS


def test_deleting_the_file_needs_its_open_streams_to_share_delete(runner: Runner) -> None:
    """A DELETE open of the file conflicts with a stream open that does not share delete ([MS-FSA] 2.1.5.1.2.1:
    a DELETE open of the default stream checks every stream of the file)."""
    for side, client, base in _both(runner):
        other = side.clients[1]
        _make(client, f"{base}\\f", b"data")
        _make(client, f"{base}\\f:s", b"s")
        stream = client.open(f"{base}\\f:s", desired_access=RW, share_access=FILE_SHARE_READ | FILE_SHARE_WRITE)
        for options in (0, b.FILE_DELETE_ON_CLOSE):
            status, _, _ = _create(other, f"{base}\\f", b.DELETE, share_access=7, options=options)
            assert status == "STATUS_SHARING_VIOLATION", (side.name, options)
        assert client.close_file(stream) == b.STATUS_SUCCESS
        # The other order: the file's DELETE open first, then a stream open that does not share delete.
        held = other.open(f"{base}\\f", desired_access=b.DELETE, share_access=7)
        status, file_id, _ = _create(client, f"{base}\\f:s", RW, share_access=FILE_SHARE_READ | FILE_SHARE_WRITE)
        assert status == "STATUS_SUCCESS", side.name
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert other.close_file(held) == b.STATUS_SUCCESS


def test_file_deleted_while_a_stream_is_open(runner: Runner) -> None:
    """The file goes when its last open, a stream's included, closes; meanwhile its streams may not be opened."""
    for side, client, base in _both(runner):
        other = side.clients[1]
        _make(client, f"{base}\\f", b"data")
        _make(client, f"{base}\\f:s", b"stream")
        stream = client.open(f"{base}\\f:s", desired_access=RW, share_access=7)
        file_id = other.open(f"{base}\\f", desired_access=b.DELETE, share_access=7)
        assert _set(other, file_id, b.FILE_DISPOSITION_INFORMATION, b.disposition_info()) == "STATUS_SUCCESS"
        for name, disposition in (("f:s", FILE_OPEN), ("f:new", FILE_CREATE)):
            status, _, _ = _create(other, f"{base}\\{name}", RW, disposition)
            assert status == "STATUS_DELETE_PENDING", (side.name, name)
        assert other.close_file(file_id) == b.STATUS_SUCCESS
        assert (side.share_dir / base / "f").exists(), side.name  # the stream's open keeps it
        assert _read_all(client, stream) == b"stream", side.name
        assert client.close_file(stream) == b.STATUS_SUCCESS
        assert not (side.share_dir / base / "f").exists(), side.name
        # A new file of that name has no streams.
        _make(client, f"{base}\\f", b"new")
        assert _stream_sizes(client, f"{base}\\f", side.name) == {"::$DATA": 3}, side.name
        assert _create(client, f"{base}\\f:s")[0] == "STATUS_OBJECT_NAME_NOT_FOUND", side.name


def test_deleting_a_stream(runner: Runner) -> None:
    """FileDispositionInformation or FILE_DELETE_ON_CLOSE on a stream handle deletes that stream at close; the file
    and its other streams stay."""
    for side, client, base in _both(runner):
        other = side.clients[1]
        _make(client, f"{base}\\f", b"data")
        _make(client, f"{base}\\f:s", b"s")
        _make(client, f"{base}\\f:t", b"t")
        stream = client.open(f"{base}\\f:s", desired_access=RW | b.DELETE, share_access=7)
        assert _set(client, stream, b.FILE_DISPOSITION_INFORMATION, b.disposition_info()) == "STATUS_SUCCESS"
        assert _standard(client, stream) == (1, 0, 1, 0), side.name  # no link left, delete pending
        assert _create(other, f"{base}\\f:s")[0] == "STATUS_DELETE_PENDING", side.name
        status, file_id, _ = _create(other, f"{base}\\f")
        assert status == "STATUS_SUCCESS", side.name
        assert _standard(other, file_id) == (4, 1, 0, 0), side.name
        assert other.close_file(file_id) == b.STATUS_SUCCESS
        assert client.close_file(stream) == b.STATUS_SUCCESS
        assert _stream_xattrs(side, f"{base}/f") == ["user.DosStream.t:$DATA"], side.name
        stream = client.open(f"{base}\\f:t", desired_access=b.DELETE, options=b.FILE_DELETE_ON_CLOSE)
        assert client.close_file(stream) == b.STATUS_SUCCESS
        assert _stream_sizes(client, f"{base}\\f", side.name) == {"::$DATA": 4}, side.name
        assert (side.share_dir / base / "f").read_bytes() == b"data", side.name
        status, _, _ = _create(client, f"{base}\\f:u", b.GENERIC_READ, FILE_OPEN_IF, options=b.FILE_DELETE_ON_CLOSE)
        assert status == "STATUS_INVALID_PARAMETER", side.name  # FILE_DELETE_ON_CLOSE needs DELETE access


def test_delete_on_close_of_the_default_stream_deletes_the_file(runner: Runner) -> None:
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"data")
        _make(client, f"{base}\\f:s", b"s")
        file_id = client.open(f"{base}\\f::$DATA", desired_access=b.DELETE, options=b.FILE_DELETE_ON_CLOSE)
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert not (side.share_dir / base / "f").exists(), side.name


# -- rename ---------------------------------------------------------------------------------------------------

def _rename(client: b.Client, name: str, target: str, replace: bool = False) -> str:
    file_id = client.open(name, desired_access=b.DELETE, share_access=7)
    status = _set(client, file_id, b.FILE_RENAME_INFORMATION, b.rename_info(target, replace))
    assert client.close_file(file_id) == b.STATUS_SUCCESS
    return status


def test_stream_rename(runner: Runner) -> None:
    """[MS-FSA] 2.1.5.15.12: a stream is renamed to ":name" or ":name:$DATA" of the same file."""
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"data")
        _make(client, f"{base}\\f:s", b"SSS")
        assert _rename(client, f"{base}\\f:s", ":new") == "STATUS_SUCCESS", side.name
        assert _rename(client, f"{base}\\f:new", ":new2:$DATA") == "STATUS_SUCCESS", side.name
        assert _stream_xattrs(side, f"{base}/f") == ["user.DosStream.new2:$DATA"], side.name
        assert _xattr(side, f"{base}/f", "new2") == b"SSS\x00", side.name
        _make(client, f"{base}\\f:t", b"TT")
        assert _rename(client, f"{base}\\f:new2", ":t") == "STATUS_OBJECT_NAME_COLLISION", side.name
        assert _rename(client, f"{base}\\f:new2", ":t", replace=True) == "STATUS_SUCCESS", side.name
        assert _stream_xattrs(side, f"{base}/f") == ["user.DosStream.t:$DATA"], side.name
        assert _xattr(side, f"{base}/f", "t") == b"SSS\x00", side.name
        assert _rename(client, f"{base}\\f:t", ":t") == "STATUS_SUCCESS", side.name  # its own name
        assert _xattr(side, f"{base}/f", "t") == b"SSS\x00", side.name
        for target, expected in (("::$DATA", "STATUS_OBJECT_NAME_COLLISION"),
                                 ("v", "STATUS_INVALID_PARAMETER"),
                                 (":v:$FOO", "STATUS_INVALID_PARAMETER"),
                                 (":", "STATUS_OBJECT_NAME_INVALID"),
                                 (":v/x", "STATUS_OBJECT_NAME_INVALID")):
            assert _rename(client, f"{base}\\f:t", target) == expected, (side.name, target)
        assert _stream_xattrs(side, f"{base}/f") == ["user.DosStream.t:$DATA"], side.name
        assert (side.share_dir / base / "f").read_bytes() == b"data", side.name


def test_stream_rename_with_other_opens(runner: Runner) -> None:
    for side, client, base in _both(runner):
        other = side.clients[1]
        _make(client, f"{base}\\f", b"data")
        _make(client, f"{base}\\f:s", b"s")
        _make(client, f"{base}\\f:t", b"t")
        for held, source, target in (("f", "f:s", ":s2"), ("f:t", "f:s2", ":s3")):
            held_id = other.open(f"{base}\\{held}", desired_access=b.GENERIC_READ, share_access=7)
            assert _rename(client, f"{base}\\{source}", target) == "STATUS_SUCCESS", (side.name, held)
            assert other.close_file(held_id) == b.STATUS_SUCCESS
        assert _stream_xattrs(side, f"{base}/f") == ["user.DosStream.s3:$DATA", "user.DosStream.t:$DATA"], side.name


def test_file_rename_while_a_stream_is_open(runner: Runner) -> None:
    """smbtorture smb2.streams.basefile-rename-with-open-stream: ACCESS_DENIED, and the stream stays readable."""
    for side, client, base in _both(runner):
        other = side.clients[1]
        _make(client, f"{base}\\h", b"data")
        _make(client, f"{base}\\h:s", b"hs")
        stream = other.open(f"{base}\\h:s", desired_access=b.GENERIC_READ, share_access=7)
        assert _rename(client, f"{base}\\h", f"{base}\\h2") == "STATUS_ACCESS_DENIED", side.name
        assert _read_all(other, stream) == b"hs", side.name
        assert other.close_file(stream) == b.STATUS_SUCCESS
        assert _rename(client, f"{base}\\h", f"{base}\\h2") == "STATUS_SUCCESS", side.name
        assert _xattr(side, f"{base}/h2", "s") == b"hs\x00", side.name


# -- permissions ------------------------------------------------------------------------------------------------

def test_streams_of_a_file_the_user_may_only_read(runner: Runner) -> None:
    """A stream is read and written with the file's permissions: a user who may only read the file (mode 0644,
    in no group of the owner's) reads its streams and may not write or create any."""
    for side, client, base in _both(runner):
        stranger = side.clients[3]
        _make(client, f"{base}\\f", b"data")
        _make(client, f"{base}\\f:s", b"SS")
        (side.share_dir / base / "f").chmod(0o644)
        for name, access, disposition, expected in (
            ("f:s", b.GENERIC_WRITE, FILE_OPEN, "STATUS_ACCESS_DENIED"),
            ("f:s", b.FILE_WRITE_DATA, FILE_OPEN, "STATUS_ACCESS_DENIED"),
            ("f:s", b.DELETE, FILE_OPEN, "STATUS_ACCESS_DENIED"),
            ("f:s", b.FILE_WRITE_ATTRIBUTES, FILE_OPEN, "STATUS_ACCESS_DENIED"),
            ("f:new", RW, FILE_CREATE, "STATUS_ACCESS_DENIED"),
            ("f:new", b.GENERIC_READ, FILE_OPEN_IF, "STATUS_ACCESS_DENIED"),
        ):
            status, _, _ = _create(stranger, f"{base}\\{name}", access, disposition)
            assert status == expected, (side.name, name, hex(access), disposition)
        for access in (b.GENERIC_READ, b.MAXIMUM_ALLOWED):
            file_id = stranger.open(f"{base}\\f:s", desired_access=access)
            assert _read_all(stranger, file_id) == b"SS", side.name
            assert stranger.close_file(file_id) == b.STATUS_SUCCESS
        (side.share_dir / base / "f").chmod(0o600)
        assert _create(stranger, f"{base}\\f:s")[0] == "STATUS_ACCESS_DENIED", side.name
        assert _stream_xattrs(side, f"{base}/f") == ["user.DosStream.s:$DATA"], side.name


def test_streams_of_a_read_only_file(runner: Runner) -> None:
    """FILE_ATTRIBUTE_READONLY of the file covers its streams: no write open, no new stream; reading works."""
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"data")
        _make(client, f"{base}\\f:s", b"SS")
        file_id = client.open(f"{base}\\f", desired_access=b.FILE_WRITE_ATTRIBUTES)
        basic = bytes(32) + struct.pack("<II", b.FILE_ATTRIBUTE_READONLY, 0)
        assert _set(client, file_id, b.FILE_BASIC_INFORMATION, basic) == "STATUS_SUCCESS"
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert _create(client, f"{base}\\f:s", b.GENERIC_WRITE)[0] == "STATUS_ACCESS_DENIED", side.name
        assert _create(client, f"{base}\\f:ro", RW, FILE_CREATE)[0] == "STATUS_ACCESS_DENIED", side.name
        status, file_id, response = _create(client, f"{base}\\f:s")
        assert status == "STATUS_SUCCESS", side.name
        assert _action_eof_attributes(response) == (OPENED, 2, b.FILE_ATTRIBUTE_READONLY), side.name
        assert client.close_file(file_id) == b.STATUS_SUCCESS


# -- LOCK, QUERY_DIRECTORY, IOCTL ------------------------------------------------------------------------------

def test_byte_range_locks_are_per_stream(runner: Runner) -> None:
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"0123456789")
        _make(client, f"{base}\\f:s", b"0123456789")
        first = client.open(f"{base}\\f:s", desired_access=RW)
        second = client.open(f"{base}\\f:s", desired_access=RW)
        file_id = client.open(f"{base}\\f", desired_access=RW)
        exclusive = LOCK_EXCLUSIVE | LOCK_FAIL_IMMEDIATELY
        for handle, expected in ((first, "STATUS_SUCCESS"), (second, "STATUS_LOCK_NOT_GRANTED"),
                                 (file_id, "STATUS_SUCCESS")):
            response = client.request(b.SMB2_LOCK, b.lock_body(handle, [(0, 4, exclusive)]))
            assert _name(response.status) == expected, side.name
        response = client.request(b.SMB2_LOCK, b.lock_body(first, [(0, 4, LOCK_UNLOCK)]))
        assert _name(response.status) == "STATUS_SUCCESS", side.name
        response = client.request(b.SMB2_LOCK, b.lock_body(second, [(0, 4, exclusive)]))
        assert _name(response.status) == "STATUS_SUCCESS", side.name
        for handle in (first, second, file_id):
            assert client.close_file(handle) == b.STATUS_SUCCESS


def test_query_directory_on_a_stream(runner: Runner) -> None:
    """A stream handle is no directory, a directory's stream neither: QUERY_DIRECTORY answers as for a file
    (INVALID_PARAMETER per [MS-SMB2] 3.3.5.18; Samba 4.17 answers NOT_SUPPORTED for files and streams alike).
    Listings never show streams."""
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f")
        client.close_file(client.open(f"{base}\\d", desired_access=b.GENERIC_READ, disposition=FILE_CREATE,
                                      options=b.FILE_DIRECTORY_FILE))
        _make(client, f"{base}\\f:s")
        _make(client, f"{base}\\d:s")
        file_id = client.open(f"{base}\\f", desired_access=b.GENERIC_READ)
        as_file = client.query_directory(file_id).status
        assert as_file != b.STATUS_SUCCESS, side.name
        for name in ("f:s", "d:s"):
            stream = client.open(f"{base}\\{name}", desired_access=b.GENERIC_READ)
            assert client.query_directory(stream).status == as_file, (side.name, name)
            assert client.close_file(stream) == b.STATUS_SUCCESS
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert sorted(client.list_directory(base)) == [".", "..", "d", "f"], side.name


def test_get_reparse_point_of_a_stream(runner: Runner) -> None:
    for side, client, base in _both(runner):
        stream = client.open(f"{base}\\f:s", desired_access=RW, disposition=FILE_OPEN_IF)
        response = client.request(b.SMB2_IOCTL, b.ioctl_body(stream, b.FSCTL_GET_REPARSE_POINT))
        assert response.status == STATUS_NOT_A_REPARSE_POINT, (side.name, _name(response.status))
        assert client.close_file(stream) == b.STATUS_SUCCESS


# -- oplocks and leases ---------------------------------------------------------------------------------------

def _lease_context(key: bytes, state: int) -> bytes:
    """SMB2_CREATE_REQUEST_LEASE ([MS-SMB2] 2.2.13.2.8)."""
    return b.create_context(b"RqLs", struct.pack("<16sIIQ", key, state, 0, 0))


def _granted_lease_state(response: b.Response) -> int | None:
    offset, length = struct.unpack_from("<II", response.body, 80)
    if not length:
        return None
    position = offset - b.HEADER_SIZE
    _, _, _, _, data_offset, _ = struct.unpack_from("<IHHHHI", response.body, position)
    return struct.unpack_from("<I", response.body, position + data_offset + 16)[0]


def test_oplocks_and_leases_on_streams(runner: Runner) -> None:
    """Each stream is an oplock target of its own ([MS-FSA] 2.1.5.17: oplocks are per stream): a batch oplock and
    a RWH lease are granted on a stream while another stream holds one."""
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f")
        held = []
        for name in ("f:s", "f:t"):
            response = client.create(f"{base}\\{name}", desired_access=RW, disposition=FILE_OPEN_IF,
                                     oplock=OPLOCK_BATCH)
            assert (_name(response.status), response.body[2]) == ("STATUS_SUCCESS", OPLOCK_BATCH), (side.name, name)
            held.append(b.create_file_id(response.body))
        for key, name in ((b"A" * 16, "g:s"), (b"B" * 16, "g:t")):
            response = client.create(f"{base}\\{name}", desired_access=RW, disposition=FILE_OPEN_IF,
                                     oplock=OPLOCK_LEASE, contexts=_lease_context(key, 7))
            assert _name(response.status) == "STATUS_SUCCESS", side.name
            assert (response.body[2], _granted_lease_state(response)) == (OPLOCK_LEASE, 7), (side.name, name)
            held.append(b.create_file_id(response.body))
        for file_id in held:
            assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_stream_oplocks_break_per_stream(runner: Runner) -> None:
    """smbtorture smb2.oplock.batch26: a batch oplock on the file and one on its stream coexist; an open of the file
    by another client does not break the stream's oplock, an open of the same stream does (to level II)."""
    for side, client, base in _both(runner):
        other = side.clients[1]
        _make(client, f"{base}\\f")
        file_response = client.create(f"{base}\\f", desired_access=0x120089, disposition=FILE_OPEN, oplock=OPLOCK_BATCH)
        assert (_name(file_response.status), file_response.body[2]) == ("STATUS_SUCCESS", OPLOCK_BATCH), side.name
        assert client.close_file(b.create_file_id(file_response.body)) == b.STATUS_SUCCESS
        response = client.create(f"{base}\\f:s", desired_access=RW, disposition=FILE_OPEN_IF, oplock=OPLOCK_BATCH)
        assert (_name(response.status), response.body[2]) == ("STATUS_SUCCESS", OPLOCK_BATCH), side.name
        stream = b.create_file_id(response.body)
        status, file_id, _ = _create(other, f"{base}\\f", RW)
        assert status == "STATUS_SUCCESS", side.name
        no_break(client, 1.0)
        assert other.close_file(file_id) == b.STATUS_SUCCESS
        message_id = other.send(b.Req(b.SMB2_CREATE, b.create_body(f"{base}\\f:s", desired_access=RW)))[0]
        notification = next_break(client, 5.0)
        assert notification.body[2] == OPLOCK_LEVEL_II, side.name
        assert oplock_ack(client, stream, OPLOCK_LEVEL_II).status == b.STATUS_SUCCESS
        response = other.receive(message_id)
        assert _name(response.status) == "STATUS_SUCCESS", side.name
        assert other.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
        assert client.close_file(stream) == b.STATUS_SUCCESS


# -- the volume ----------------------------------------------------------------------------------------------

def test_volume_announces_named_streams(runner: Runner) -> None:
    """FileFsAttributeInformation ([MS-FSCC] 2.5.1) has FILE_NAMED_STREAMS (Samba with streams_xattr: 0x5006f,
    without: 0x1006f)."""
    for side, client, _ in _both(runner):
        root = client.open("", desired_access=b.GENERIC_READ)
        attributes = struct.unpack_from("<I", _query(client, root, FILE_FS_ATTRIBUTE_INFORMATION,
                                                      b.SMB2_0_INFO_FILESYSTEM), 0)[0]
        assert attributes & FILE_NAMED_STREAMS, (side.name, hex(attributes))
        assert client.close_file(root) == b.STATUS_SUCCESS


# -- the share option ---------------------------------------------------------------------------------------------

def test_share_without_named_streams_refuses_stream_names(tmp_path: Path) -> None:
    """`named_streams = false` keeps the behaviour from before named streams (Samba without streams_xattr):
    "f:s" is OBJECT_NAME_INVALID, nothing is stored, FILE_NAMED_STREAMS is not announced."""
    share = tmp_path / "share"
    share.mkdir()
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[shares.share]\npath = "{share}"\nnamed_streams = false\n')
    server = start_server(share, tmp_path / "server.log", config=config)
    try:
        with b.connect(server.host, server.port, server.user, server.password) as client:
            client.write_file("f", b"data")
            for name, disposition in (("f:s", FILE_OPEN_IF), ("f:s", FILE_OPEN), ("new:s", FILE_CREATE)):
                status, _, _ = _create(client, name, RW, disposition)
                assert status == "STATUS_OBJECT_NAME_INVALID", name
            assert not (share / "new").exists()
            assert not [name for name in os.listxattr(share / "f") if name.startswith("user.DosStream.")]
            root = client.open("", desired_access=b.GENERIC_READ)
            attributes = struct.unpack_from("<I", _query(client, root, FILE_FS_ATTRIBUTE_INFORMATION,
                                                          b.SMB2_0_INFO_FILESYSTEM), 0)[0]
            assert not attributes & FILE_NAMED_STREAMS, hex(attributes)
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


def _smbclient(side: Side, commands: str, tmp: Path) -> str:
    argv = ["smbclient", f"//{HOST}/{SHARE_NAME}", "-p", str(side.port), "-U", f"{side.users[0]}%{side.password}",
            "-m", "SMB3", "-c", commands]
    result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, cwd=tmp)
    assert result.returncode == 0, (side.name, result.stdout, result.stderr)
    return result.stdout


def test_smbclient_puts_gets_and_lists_streams(runner: Runner, tmp_path: Path) -> None:
    """A real client: smbclient stores a Zone.Identifier the way Windows marks a download, reads it back, and
    `allinfo` lists the file's streams with their sizes, on both servers alike."""
    zone = tmp_path / "zone"
    zone.write_bytes(b"[ZoneTransfer]\r\nZoneId=3\r\n")
    body = tmp_path / "body"
    body.write_bytes(b"x" * 1000)
    for side, _client, base in _both(runner):
        out = _smbclient(side, f"cd {base}; put body f.exe; put zone f.exe:Zone.Identifier; "
                               f"get f.exe:Zone.Identifier got-{side.name}; allinfo f.exe", tmp_path)
        assert (tmp_path / f"got-{side.name}").read_bytes() == zone.read_bytes(), side.name
        streams = sorted(line.strip() for line in out.splitlines() if line.startswith("stream:"))
        assert streams == ["stream: [::$DATA], 1000 bytes", "stream: [:Zone.Identifier:$DATA], 26 bytes"], (
            side.name, out)
        assert _xattr(side, f"{base}/f.exe", "Zone.Identifier") == zone.read_bytes() + b"\0", side.name


def test_smbprotocol_writes_reads_and_lists_streams(runner: Runner) -> None:
    """smbprotocol's high-level client (what Python programs on Windows-less hosts use): open_file on
    "file:stream" writes and reads a stream, and liststreams gives the same list on both servers (macOS keeps
    Finder information in a 60-byte AFP_AfpInfo stream)."""
    import smbclient
    import smbclient._os

    afp_info = b"AFP\0" + bytes(56)
    for side, _client, base in _both(runner):
        unc = rf"\\{HOST}\{SHARE_NAME}\{base}\photo.jpg"
        kwargs = {"username": side.users[0], "password": side.password, "port": side.port}
        try:
            with smbclient.open_file(unc, mode="wb", **kwargs) as handle:
                handle.write(b"jpeg data")
            with smbclient.open_file(unc + ":AFP_AfpInfo", mode="wb", **kwargs) as handle:
                handle.write(afp_info)
            with smbclient.open_file(unc + ":AFP_AfpInfo", mode="rb", **kwargs) as handle:
                assert handle.read() == afp_info, side.name
            listed = sorted((entry.name, entry.size) for entry in smbclient._os.liststreams(unc, **kwargs))
            assert listed == [("::$DATA", 9), (":AFP_AfpInfo:$DATA", 60)], side.name
        finally:
            smbclient.reset_connection_cache()
