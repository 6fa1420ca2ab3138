"""Sparse files and allocation against the daemon: FSCTL_SET_SPARSE ([MS-FSCC] 2.3.64, [MS-FSA] 2.1.5.10.37),
FSCTL_QUERY_ALLOCATED_RANGES ([MS-FSCC] 2.3.51/2.3.52, [MS-FSA] 2.1.5.10.22) and SET_INFO
FileAllocationInformation ([MS-FSCC] 2.4.4, [MS-FSA] 2.1.5.15.1), through raw requests (tests/builders.py: no
real client here sends these with chosen arguments).

Every status and value was compared with Samba 4.17 in the same setup (private smbd, same requests); the
comments name the places where smbsrv follows the spec instead.
"""

from __future__ import annotations

import struct

import pytest

from tests import builders as b
from tests.conftest import SmbServer

FSCTL_SET_SPARSE = 0x000900C4
FSCTL_QUERY_ALLOCATED_RANGES = 0x000940CF
FILE_ALLOCATION_INFORMATION = 19
FILE_ATTRIBUTE_ARCHIVE = 0x20
FILE_ATTRIBUTE_SPARSE_FILE = 0x200
MIB = 1024 * 1024
MAX_LONGLONG = 0x7FFFFFFFFFFFFFFF


def ioctl_output(response: b.Response) -> bytes:
    """OutputOffset(4)@32, OutputCount(4)@36 of an IOCTL response ([MS-SMB2] 2.2.32)."""
    offset, count = struct.unpack_from("<II", response.body, 32)
    return response.body[offset - b.HEADER_SIZE:offset - b.HEADER_SIZE + count]


def _ioctl(client: b.Client, file_id: tuple[int, int], code: int, data: bytes = b"",
           max_output: int = 1024) -> b.Response:
    return client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, code, data, max_output=max_output))


def _attributes(client: b.Client, file_id: tuple[int, int]) -> int:
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION)
    assert response.status == b.STATUS_SUCCESS
    return struct.unpack_from("<I", b.output_buffer(response), 32)[0]  # FileAttributes ([MS-FSCC] 2.4.7)


def _standard(client: b.Client, file_id: tuple[int, int]) -> tuple[int, int]:
    """(AllocationSize, EndOfFile) of FileStandardInformation ([MS-FSCC] 2.4.47)."""
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_STANDARD_INFORMATION)
    assert response.status == b.STATUS_SUCCESS
    return struct.unpack_from("<qq", b.output_buffer(response))


def _ranges(output: bytes) -> list[tuple[int, int]]:
    assert len(output) % 16 == 0
    return [struct.unpack_from("<qq", output, index) for index in range(0, len(output), 16)]


def _open_rw(client: b.Client, name: str) -> tuple[int, int]:
    return client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=b.FILE_OVERWRITE_IF)


# -- FSCTL_SET_SPARSE ------------------------------------------------------------------------------------------

def test_set_sparse_sets_and_clears_the_attribute(smb_server: SmbServer) -> None:
    """No input and SetSparse=1 set FILE_ATTRIBUTE_SPARSE_FILE, SetSparse=0 clears it; the reply has no output.
    The attribute stays with the file (a new handle sees it)."""
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        file_id = _open_rw(client, "sparse.bin")
        assert _attributes(client, file_id) == FILE_ATTRIBUTE_ARCHIVE
        for data, expected in ((b"", True), (b"\x00", False), (b"\x01", True)):
            response = _ioctl(client, file_id, FSCTL_SET_SPARSE, data)
            assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
            assert ioctl_output(response) == b""
            sparse = bool(_attributes(client, file_id) & FILE_ATTRIBUTE_SPARSE_FILE)
            assert sparse is expected, f"SetSparse {data!r}"
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        again = client.open("sparse.bin", desired_access=b.FILE_READ_ATTRIBUTES)
        assert _attributes(client, again) == FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_SPARSE_FILE
        # A handle with neither FILE_WRITE_DATA nor FILE_WRITE_ATTRIBUTES may not change it ([MS-FSA] 2.1.5.10.37).
        assert _ioctl(client, again, FSCTL_SET_SPARSE).status == b.STATUS_ACCESS_DENIED
        assert client.close_file(again) == b.STATUS_SUCCESS


def test_set_sparse_on_a_directory_is_invalid(smb_server: SmbServer) -> None:
    """Samba 4.17 answers INVALID_PARAMETER for a directory handle that may write attributes. For a read-only
    directory handle it answers ACCESS_DENIED (access checked first); smbsrv keeps [MS-FSA] 2.1.5.10.37's order,
    where a directory stream fails with INVALID_PARAMETER before the access check."""
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        for access in (b.GENERIC_READ | b.FILE_WRITE_ATTRIBUTES, b.GENERIC_READ):
            directory = client.open("", desired_access=access, options=b.FILE_DIRECTORY_FILE)
            assert _ioctl(client, directory, FSCTL_SET_SPARSE).status == b.STATUS_INVALID_PARAMETER
            assert client.close_file(directory) == b.STATUS_SUCCESS


# -- FSCTL_QUERY_ALLOCATED_RANGES ------------------------------------------------------------------------------

def test_query_allocated_ranges_reports_data_extents(smb_server: SmbServer) -> None:
    """Two 4 KiB pieces of data, at 0 and at 1 MiB, with a hole between: exactly those ranges come back (ext4
    and tmpfs track holes at page granularity), clipped to the asked range, none past the end of the file."""
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        file_id = _open_rw(client, "holes.bin")
        assert _ioctl(client, file_id, FSCTL_SET_SPARSE).status == b.STATUS_SUCCESS
        assert client.write(file_id, MIB, b"z" * 4096).status == b.STATUS_SUCCESS
        assert client.write(file_id, 0, b"y" * 4096).status == b.STATUS_SUCCESS
        cases = {
            (0, 4 * MIB): [(0, 4096), (MIB, 4096)],
            (0, 2048): [(0, 2048)],
            (1024, MIB): [(1024, 3072), (MIB, 1024)],
            (8192, 4096): [],  # inside the hole
            (MIB + 4096, MIB): [],  # past the end of the file
            (MAX_LONGLONG - 2, 2): [],
        }
        for (start, length), expected in cases.items():
            response = _ioctl(client, file_id, FSCTL_QUERY_ALLOCATED_RANGES, struct.pack("<qq", start, length))
            assert response.status == b.STATUS_SUCCESS, (start, length, b.status_name(response.status))
            assert _ranges(ioctl_output(response)) == expected, (start, length)
        assert client.close_file(file_id) == b.STATUS_SUCCESS


@pytest.mark.parametrize(("request_input", "max_output", "status"), [
    (struct.pack("<qq", 0, 4 * MIB), 16, b.STATUS_BUFFER_OVERFLOW),  # two ranges, room for one: the first
    (struct.pack("<qq", 0, 4 * MIB), 31, b.STATUS_BUFFER_OVERFLOW),
    (struct.pack("<qq", 0, 4 * MIB), 8, b.STATUS_BUFFER_TOO_SMALL),  # room for none
    (struct.pack("<q", 0), 1024, b.STATUS_INVALID_PARAMETER),  # input shorter than one range
    (struct.pack("<qq", 5, -1), 1024, b.STATUS_INVALID_PARAMETER),  # negative Length ([MS-FSCC] 2.3.52)
    # Samba 4.17 answers SUCCESS with no ranges to the next two; [MS-FSCC] 2.3.52 requires FileOffset >= 0 and
    # [MS-FSA] 2.1.5.10.22 refuses a range that ends past MAXLONGLONG, which smbsrv follows.
    (struct.pack("<qq", -1, 5), 1024, b.STATUS_INVALID_PARAMETER),
    (struct.pack("<qq", MAX_LONGLONG, 2), 1024, b.STATUS_INVALID_PARAMETER),
], ids=["one-range-room", "one-and-a-half", "no-room", "short-input", "negative-length", "negative-offset", "past-maxlonglong"])
def test_query_allocated_ranges_bad_input(smb_server: SmbServer, request_input: bytes, max_output: int,
                                          status: int) -> None:
    """A buffer with room for some of the ranges gets those with BUFFER_OVERFLOW ([MS-FSA] 2.1.5.10.22, Windows,
    Samba since 4.22: its bug 15699; cifs.ko asks for one range at a time for SEEK_DATA/SEEK_HOLE and reads
    anything else as EIO, so Samba 4.17's BUFFER_TOO_SMALL is not followed); room for none is
    BUFFER_TOO_SMALL."""
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        file_id = _open_rw(client, "holes.bin")
        # Sparse, so the hole shows: a file not marked sparse is reported as one range (Windows, Samba).
        assert _ioctl(client, file_id, FSCTL_SET_SPARSE).status == b.STATUS_SUCCESS
        assert client.write(file_id, MIB, b"z" * 4096).status == b.STATUS_SUCCESS
        assert client.write(file_id, 0, b"y" * 4096).status == b.STATUS_SUCCESS
        response = _ioctl(client, file_id, FSCTL_QUERY_ALLOCATED_RANGES, request_input, max_output=max_output)
        assert response.status == status, b.status_name(response.status)
        if status == b.STATUS_BUFFER_OVERFLOW:
            assert _ranges(ioctl_output(response)) == [(0, 4096)]
        assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_query_allocated_ranges_needs_read_data(smb_server: SmbServer) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        client.write_file("data.bin", b"x" * 100)
        file_id = client.open("data.bin", desired_access=b.FILE_READ_ATTRIBUTES)
        response = _ioctl(client, file_id, FSCTL_QUERY_ALLOCATED_RANGES, struct.pack("<qq", 0, 100))
        assert response.status == b.STATUS_ACCESS_DENIED
        assert client.close_file(file_id) == b.STATUS_SUCCESS


# -- FileAllocationInformation -----------------------------------------------------------------------------------

def test_set_allocation_information(smb_server: SmbServer) -> None:
    """[MS-FSA] 2.1.5.15.1: growing the allocation leaves EndOfFile alone and reserves the blocks (Windows;
    Samba 4.17 without "strict allocate" keeps reporting what the data uses, tests/integration/test_allocation.py);
    setting it below EndOfFile truncates the file to it (and frees what was reserved); 0 empties it."""
    data = bytes(range(256)) * 40  # 10,240 bytes
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        file_id = _open_rw(client, "alloc.bin")
        assert client.write(file_id, 0, data).status == b.STATUS_SUCCESS
        assert _standard(client, file_id) == (12288, len(data))
        steps = [(MIB, (MIB, len(data))), (4096, (4096, 4096)), (0, (0, 0)), (20000, (20480, 0))]
        for allocation, expected in steps:
            response = client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_ALLOCATION_INFORMATION,
                                       struct.pack("<q", allocation))
            assert response.status == b.STATUS_SUCCESS, (allocation, b.status_name(response.status))
            assert _standard(client, file_id) == expected, allocation
            if allocation == 4096:
                read = client.read(file_id, 0, 8192)
                assert read.status == b.STATUS_SUCCESS and b.read_data(read) == data[:4096]
        assert client.close_file(file_id) == b.STATUS_SUCCESS
    assert (smb_server.share_path / "alloc.bin").stat().st_size == 0


def test_set_allocation_information_bad_input(smb_server: SmbServer) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        file_id = _open_rw(client, "alloc.bin")
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_ALLOCATION_INFORMATION, struct.pack("<q", -1))
        assert response.status == b.STATUS_INVALID_PARAMETER
        # A buffer shorter than the 8-byte structure: Samba 4.17 answers INVALID_PARAMETER; [MS-FSA] 2.1.5.15
        # (and Windows) STATUS_INFO_LENGTH_MISMATCH, which smbsrv follows.
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_ALLOCATION_INFORMATION, struct.pack("<i", 5))
        assert response.status == b.STATUS_INFO_LENGTH_MISMATCH
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        reader = client.open("alloc.bin", desired_access=b.GENERIC_READ)
        response = client.set_info(reader, b.SMB2_0_INFO_FILE, FILE_ALLOCATION_INFORMATION, struct.pack("<q", 0))
        assert response.status == b.STATUS_ACCESS_DENIED
        assert client.close_file(reader) == b.STATUS_SUCCESS


# -- FSCTL_SET_ZERO_DATA and AllocationSize ----------------------------------------------------------------------

FSCTL_SET_ZERO_DATA = 0x000980C8


def test_zeroed_range_of_a_sparse_file_frees_its_allocation(smb_server: SmbServer) -> None:
    """AllocationSize is what the file really uses (st_blocks): a hole punched by SET_ZERO_DATA in a sparse file
    takes its blocks away, and the range reads back as zeros with the end of file unchanged."""
    path = smb_server.share_path / "zeroed.bin"
    path.write_bytes(bytes(range(256)) * (4 * MIB // 256))
    smb_server.hand_over()
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        file_id = client.open("zeroed.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
        assert _standard(client, file_id) == (4 * MIB, 4 * MIB)
        assert _ioctl(client, file_id, FSCTL_SET_SPARSE).status == b.STATUS_SUCCESS
        zero = _ioctl(client, file_id, FSCTL_SET_ZERO_DATA, struct.pack("<qq", MIB, 3 * MIB))
        assert zero.status == b.STATUS_SUCCESS, b.status_name(zero.status)
        assert _standard(client, file_id) == (2 * MIB, 4 * MIB)
        read = client.read(file_id, MIB, 65536)
        assert read.status == b.STATUS_SUCCESS and b.read_data(read) == bytes(65536)
        assert client.close_file(file_id) == b.STATUS_SUCCESS
    assert path.stat().st_blocks * 512 == 2 * MIB


# -- FSCTL_GET_COMPRESSION / FSCTL_SET_COMPRESSION ---------------------------------------------------------------

FSCTL_GET_COMPRESSION = 0x0009003C
FSCTL_SET_COMPRESSION = 0x0009C040
COMPRESSION_FORMAT_NONE = 0
COMPRESSION_FORMAT_DEFAULT = 1
COMPRESSION_FORMAT_LZNT1 = 2
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_INVALID_USER_BUFFER = 0xC00000E8


def test_compression_is_never_on(smb_server: SmbServer) -> None:
    """The volume does not compress (no FILE_FILE_COMPRESSION), so, as Samba 4.17 answers (smbtorture
    compress_notsup_get/set) and ReFS does: GET says COMPRESSION_FORMAT_NONE to any handle (no access right
    needed) and STATUS_INVALID_USER_BUFFER when 2 bytes do not fit; SET of NONE succeeds, other formats are
    STATUS_NOT_SUPPORTED, a short buffer STATUS_INVALID_PARAMETER, and a handle without FILE_WRITE_DATA
    STATUS_ACCESS_DENIED."""
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        file_id = _open_rw(client, "plain.bin")
        attributes_only = client.open("plain.bin", desired_access=b.FILE_READ_ATTRIBUTES)
        for handle in (file_id, attributes_only):
            response = _ioctl(client, handle, FSCTL_GET_COMPRESSION)
            assert response.status == b.STATUS_SUCCESS
            assert ioctl_output(response) == struct.pack("<H", COMPRESSION_FORMAT_NONE)
        assert _ioctl(client, file_id, FSCTL_GET_COMPRESSION, max_output=1).status == STATUS_INVALID_USER_BUFFER
        cases = [(struct.pack("<H", COMPRESSION_FORMAT_NONE), b.STATUS_SUCCESS),
                 (struct.pack("<H", COMPRESSION_FORMAT_DEFAULT), STATUS_NOT_SUPPORTED),
                 (struct.pack("<H", COMPRESSION_FORMAT_LZNT1), STATUS_NOT_SUPPORTED),
                 (b"\x00", b.STATUS_INVALID_PARAMETER)]
        for data, status in cases:
            response = _ioctl(client, file_id, FSCTL_SET_COMPRESSION, data)
            assert response.status == status, (data, b.status_name(response.status))
        response = _ioctl(client, attributes_only, FSCTL_SET_COMPRESSION, struct.pack("<H", COMPRESSION_FORMAT_NONE))
        assert response.status == b.STATUS_ACCESS_DENIED
        assert _attributes(client, file_id) & 0x800 == 0  # never FILE_ATTRIBUTE_COMPRESSED
