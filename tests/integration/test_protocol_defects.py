"""Protocol defects found while comparing smbsrv with Windows and Samba 4.17 (issues 11 and 19), each pinned to
the exact NTSTATUS over raw sockets against the real daemon.

- OutputBufferLength of QUERY_INFO / QUERY_DIRECTORY above the negotiated MaxTransactSize, or above what the
  CreditCharge pays for: STATUS_INVALID_PARAMETER ([MS-SMB2] 3.3.5.2.5, 3.3.5.18, 3.3.5.20; Samba's getinfo
  and query_directory checks). Samba 4.17 gives the same answers to the same requests.
- Related compounds ([MS-SMB2] 3.3.5.2.7.2): the operation after CREATE acts on the handle CREATE made whatever
  FileId it carries; a related first request and a request related to one without a usable session are
  STATUS_INVALID_PARAMETER, and an unrelated request after them starts over (smbtorture smb2.compound.invalid1
  and invalid2).
- POSIX information levels on a connection that did not negotiate POSIX: STATUS_INVALID_INFO_CLASS (Samba, and
  samba.tests.smb3unix test_posix_fs_info).
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Iterator

import pytest

from tests import builders as b
from tests.conftest import SmbServer, assert_no_server_bugs, start_server, stop_server

MIB = 1024 * 1024
MAX_IO_SIZE = 8 * MIB  # the default server.max_io_size: the MaxTransactSize of every dialect after 2.0.2
STATUS_NOT_A_REPARSE_POINT = 0xC0000275
FILE_FS_SIZE_INFORMATION = 3
FILE_FS_POSIX_INFORMATION = 100
SMB2_FIND_POSIX_INFORMATION = 0x64
SMB2_RESTART_SCANS = 0x01


@pytest.fixture
def client(server: SmbServer) -> Iterator[b.Client]:
    with b.connect(server.host, server.port, server.user, server.password, sign=True) as connected:
        yield connected


@pytest.fixture
def name() -> str:
    return f"d-{uuid.uuid4().hex[:10]}"


def _status(response: b.Response) -> str:
    return b.status_name(response.status)


def _new_file(client: b.Client, name: str) -> tuple[int, int]:
    return client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE, disposition=b.FILE_CREATE)


def _root(client: b.Client) -> tuple[int, int]:
    return client.open("", desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)


def _charge(length: int) -> int:
    return (length - 1) // 65536 + 1


# -- OutputBufferLength against MaxTransactSize and CreditCharge ------------------------------------------------

def test_max_transact_size_is_what_negotiate_said(client: b.Client) -> None:
    assert client.negotiate_response is not None
    assert struct.unpack_from("<I", client.negotiate_response.body, 28)[0] == MAX_IO_SIZE


QUERIES = {
    "QUERY_INFO FileBasicInformation": lambda f, d, n: b.query_info_body(f, b.SMB2_0_INFO_FILE,
                                                                         b.FILE_BASIC_INFORMATION, output_length=n),
    "QUERY_INFO FileFsSizeInformation": lambda f, d, n: b.query_info_body(f, 2, FILE_FS_SIZE_INFORMATION,
                                                                          output_length=n),
    "QUERY_INFO security": lambda f, d, n: b.query_info_body(f, 3, 0, output_length=n, additional_information=7),
    "QUERY_DIRECTORY": lambda f, d, n: b.query_directory_body(d, output_length=n, flags=SMB2_RESTART_SCANS),
}


@pytest.mark.parametrize("query", list(QUERIES))
def test_output_buffer_length_up_to_max_transact_size_is_answered(client: b.Client, name: str, query: str) -> None:
    file_id, root = _new_file(client, name), _root(client)
    command = b.SMB2_QUERY_DIRECTORY if query == "QUERY_DIRECTORY" else b.SMB2_QUERY_INFO
    try:
        response = client.request(command, QUERIES[query](file_id, root, MAX_IO_SIZE),
                                  credit_charge=_charge(MAX_IO_SIZE))
        assert _status(response) == "STATUS_SUCCESS"
    finally:
        client.close_file(file_id)
        client.close_file(root)


@pytest.mark.parametrize("length", [MAX_IO_SIZE + 1, 16 * MIB, 0xFFFFFFFF])
@pytest.mark.parametrize("query", list(QUERIES))
def test_output_buffer_length_above_max_transact_size_is_invalid_parameter(client: b.Client, name: str,
                                                                           query: str, length: int) -> None:
    """Samba 4.17 answers these requests (same bytes) with STATUS_INVALID_PARAMETER too; so does Windows."""
    file_id, root = _new_file(client, name), _root(client)
    command = b.SMB2_QUERY_DIRECTORY if query == "QUERY_DIRECTORY" else b.SMB2_QUERY_INFO
    try:
        # Even a CreditCharge that pays for it (as far as the 16-bit field goes) does not make it valid.
        response = client.request(command, QUERIES[query](file_id, root, length),
                                  credit_charge=min(_charge(length), 256))
        assert _status(response) == "STATUS_INVALID_PARAMETER"
    finally:
        client.close_file(file_id)
        client.close_file(root)


@pytest.mark.parametrize("query", list(QUERIES))
def test_output_buffer_length_the_credit_charge_does_not_pay_for(client: b.Client, name: str, query: str) -> None:
    """[MS-SMB2] 3.3.5.2.5: 128 KiB needs a CreditCharge of 2; 1 is STATUS_INVALID_PARAMETER (Samba 4.17 alike)."""
    file_id, root = _new_file(client, name), _root(client)
    command = b.SMB2_QUERY_DIRECTORY if query == "QUERY_DIRECTORY" else b.SMB2_QUERY_INFO
    try:
        response = client.request(command, QUERIES[query](file_id, root, 128 * 1024), credit_charge=1)
        assert _status(response) == "STATUS_INVALID_PARAMETER"
        response = client.request(command, QUERIES[query](file_id, root, 128 * 1024), credit_charge=2)
        assert _status(response) == "STATUS_SUCCESS"
    finally:
        client.close_file(file_id)
        client.close_file(root)


def test_smb2_0_2_max_transact_size_is_64_kib(server: SmbServer, name: str) -> None:
    with b.connect(server.host, server.port, server.user, server.password, dialects=(0x0202,),
                   sign=True) as client:
        assert client.negotiate_response is not None
        assert struct.unpack_from("<I", client.negotiate_response.body, 28)[0] == 65536
        file_id, root = _new_file(client, name), _root(client)
        try:
            for query, build in QUERIES.items():
                command = b.SMB2_QUERY_DIRECTORY if query == "QUERY_DIRECTORY" else b.SMB2_QUERY_INFO
                assert _status(client.request(command, build(file_id, root, 65536))) == "STATUS_SUCCESS", query
                assert _status(client.request(command, build(file_id, root, 65537))) == \
                    "STATUS_INVALID_PARAMETER", query
        finally:
            client.close_file(file_id)
            client.close_file(root)


# -- related compounds ([MS-SMB2] 3.3.5.2.7.2) ------------------------------------------------------------------

def test_related_requests_after_create_ignore_the_file_id_they_carry(client: b.Client, name: str) -> None:
    client.close_file(_new_file(client, name))
    responses = client.compound(
        b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_READ)),
        b.Req(b.SMB2_IOCTL, b.ioctl_body((0x1234567, 0x7654321), b.FSCTL_GET_REPARSE_POINT), related=True),
        b.Req(b.SMB2_QUERY_INFO, b.query_info_body((0x99, 0x98), b.SMB2_0_INFO_FILE, b.FILE_STANDARD_INFORMATION),
              related=True),
        b.Req(b.SMB2_CLOSE, b.close_body((0xABC, 0xDEF)), related=True))
    statuses = [r.status for r in responses]
    # The IOCTL reached the new (ordinary) file: not a reparse point, not FILE_CLOSED for the made-up FileId.
    assert statuses == [b.STATUS_SUCCESS, STATUS_NOT_A_REPARSE_POINT, b.STATUS_SUCCESS, b.STATUS_SUCCESS], \
        [b.status_name(s) for s in statuses]
    created = b.create_file_id(responses[0].body)
    # The CLOSE with its made-up FileId closed the handle CREATE made.
    assert client.close_file(created) == b.STATUS_FILE_CLOSED


def test_related_request_after_an_existing_handle_uses_that_handle(client: b.Client, name: str) -> None:
    file_id = _new_file(client, name)
    try:
        responses = client.compound(
            b.Req(b.SMB2_QUERY_INFO, b.query_info_body(file_id, b.SMB2_0_INFO_FILE, b.FILE_STANDARD_INFORMATION)),
            b.Req(b.SMB2_QUERY_INFO, b.query_info_body((7, 7), b.SMB2_0_INFO_FILE, b.FILE_STANDARD_INFORMATION),
                  related=True))
        assert [_status(r) for r in responses] == ["STATUS_SUCCESS", "STATUS_SUCCESS"]
    finally:
        client.close_file(file_id)


def test_compound_invalid1(client: b.Client, name: str) -> None:
    """smbtorture smb2.compound.invalid1: a related first request, a CLOSE related to it, then an unrelated CLOSE
    of the all-ones FileId: INVALID_PARAMETER, INVALID_PARAMETER, FILE_CLOSED (Windows, Samba)."""
    responses = client.compound(
        b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_ALL, disposition=b.FILE_OPEN_IF),
              related=True),
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True),
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID)))
    assert [_status(r) for r in responses] == ["STATUS_INVALID_PARAMETER", "STATUS_INVALID_PARAMETER",
                                               "STATUS_FILE_CLOSED"]
    # Nothing was created by the refused CREATE.
    assert _status(client.create(name)) == "STATUS_OBJECT_NAME_NOT_FOUND"


def test_compound_invalid2(client: b.Client, name: str) -> None:
    """smbtorture smb2.compound.invalid2: a related CLOSE with bogus SessionId/TreeId inherits the CREATE's and
    succeeds; unrelated CLOSEs with the bogus ids get USER_SESSION_DELETED, and a CLOSE related to those
    inherits no session: INVALID_PARAMETER."""
    bogus = {"session_id": 0xFFFFFFFFFFFFFFFF, "tree_id": 0xFFFFFFFF}
    responses = client.compound(
        b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_ALL, disposition=b.FILE_OPEN_IF)),
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True, **bogus),  # type: ignore[arg-type]
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), **bogus),  # type: ignore[arg-type]
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), **bogus),  # type: ignore[arg-type]
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True, **bogus))  # type: ignore[arg-type]
    assert [_status(r) for r in responses] == ["STATUS_SUCCESS", "STATUS_SUCCESS", "STATUS_USER_SESSION_DELETED",
                                               "STATUS_USER_SESSION_DELETED", "STATUS_INVALID_PARAMETER"]
    # The related CLOSE answered for the CREATE's session.
    assert responses[1].header.session_id == client.session_id


# -- POSIX levels without POSIX ---------------------------------------------------------------------------------

POSIX_LEVELS = {
    "QUERY_INFO FilePosixInformation": lambda c, f: c.query_info(f, b.SMB2_0_INFO_FILE, b.FILE_POSIX_INFORMATION),
    "QUERY_INFO FileFsPosixInformation": lambda c, f: c.query_info(f, 2, FILE_FS_POSIX_INFORMATION),
    "QUERY_DIRECTORY POSIX": lambda c, f: c.query_directory(f, info_class=SMB2_FIND_POSIX_INFORMATION),
}


@pytest.mark.parametrize("level", list(POSIX_LEVELS))
def test_posix_levels_without_posix_are_invalid_info_class(client: b.Client, level: str) -> None:
    """Samba 4.17 answers all three with STATUS_INVALID_INFO_CLASS on a connection without the POSIX context."""
    root = _root(client)
    try:
        assert _status(POSIX_LEVELS[level](client, root)) == "STATUS_INVALID_INFO_CLASS"
    finally:
        client.close_file(root)


# -- FILETIMEs in SET_INFO FileBasicInformation ([MS-FSCC] 2.4.7, [MS-FSA] 2.1.5.15.2) ---------------------------

_BASIC = struct.Struct("<qqqqI")  # CreationTime, LastAccessTime, LastWriteTime, ChangeTime, FileAttributes
EPOCH_AS_FILETIME = 116444736000000000  # 1970-01-01 in FILETIME units (100 ns since 1601)
FILETIME_MAX = 0x7FFFFFFFFFFFFFFF


def _filetime_of_unix(seconds: int) -> int:
    return seconds * 10**7 + EPOCH_AS_FILETIME


def _basic(client: b.Client, file_id: tuple[int, int]) -> tuple[int, int, int, int, int]:
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION)
    assert _status(response) == "STATUS_SUCCESS"
    return _BASIC.unpack_from(b.output_buffer(response), 0)  # type: ignore[return-value]


def _set_basic(client: b.Client, file_id: tuple[int, int], creation: int = 0, access: int = 0, write: int = 0,
               change: int = 0) -> str:
    buffer = _BASIC.pack(creation, access, write, change, 0) + bytes(4)
    return _status(client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION, buffer))


@pytest.mark.parametrize("unix_s", [10000000000, 15032385535, 4294967295, 1, 0, -1, -2, -30000000])
def test_far_future_and_boundary_times_are_stored(client: b.Client, server: SmbServer, name: str,
                                                   unix_s: int) -> None:
    """smbtorture smb2.timestamps.time_t_*: year 2286 and ext4's last second (2446-05-10) used to overflow an
    int64 of nanoseconds (STATUS_INTERNAL_ERROR). Creation and change times are kept exactly; the write time as
    the file system holds it (ext4 holds both of these exactly)."""
    file_id = _new_file(client, name)
    try:
        ft = _filetime_of_unix(unix_s)
        assert _set_basic(client, file_id, creation=ft, write=ft, change=ft) == "STATUS_SUCCESS"
        creation, _, write, change, _ = _basic(client, file_id)
        assert creation == ft
        assert change == ft
        on_disk = (server.share_path / name).stat().st_mtime_ns // 100 + EPOCH_AS_FILETIME
        assert write == on_disk
        if unix_s <= 15032385535:  # ext4's range with 256-byte inodes (and tmpfs's, and btrfs's)
            assert write == ft
    finally:
        client.close_file(file_id)
    # The times survive a new open (nothing per-handle about them).
    file_id = client.open(name)
    try:
        assert _basic(client, file_id)[0] == ft
    finally:
        client.close_file(file_id)


def test_largest_filetime_is_clamped_by_the_file_system_not_refused(client: b.Client, server: SmbServer,
                                                                      name: str) -> None:
    """0x7FFFFFFFFFFFFFFF (year 30828): Windows takes it. The creation time (our xattr) keeps it; the write time
    is what the kernel clamped it to (utimensat), reported as the file system holds it."""
    file_id = _new_file(client, name)
    try:
        assert _set_basic(client, file_id, creation=FILETIME_MAX, write=FILETIME_MAX) == "STATUS_SUCCESS"
        creation, _, write, _, _ = _basic(client, file_id)
        assert creation == FILETIME_MAX
        on_disk_ns = (server.share_path / name).stat().st_mtime_ns
        assert write == min(on_disk_ns // 100 + EPOCH_AS_FILETIME, FILETIME_MAX)
        assert on_disk_ns > 10000000000 * 10**9  # clamped to the file system's last second, not wrapped around
    finally:
        client.close_file(file_id)


@pytest.mark.parametrize("value", [0, -1, -2])
def test_zero_and_minus_one_and_minus_two_change_nothing(client: b.Client, name: str, value: int) -> None:
    """[MS-FSCC] 2.4.7: 0 leaves a time alone; -1 and -2 stop and resume automatic updates, and set nothing."""
    file_id = _new_file(client, name)
    try:
        ft = _filetime_of_unix(1_500_000_000)
        assert _set_basic(client, file_id, creation=ft, access=ft, write=ft, change=ft) == "STATUS_SUCCESS"
        before = _basic(client, file_id)
        assert _set_basic(client, file_id, creation=value, access=value, write=value, change=value) == \
            "STATUS_SUCCESS"
        assert _basic(client, file_id)[:4] == before[:4] == (ft, ft, ft, ft)
    finally:
        client.close_file(file_id)


@pytest.mark.parametrize("unsigned", [0xFFFFFFFFFFFFFFFD, 0x8000000000000000, 0xFFFFFFFF00000000])
@pytest.mark.parametrize("field", ["creation", "access", "write", "change"])
def test_times_past_2_63_are_invalid_parameter(client: b.Client, name: str, field: str, unsigned: int) -> None:
    """A FILETIME field is signed: from 2^63 on it is negative, and below -2 it is STATUS_INVALID_PARAMETER
    ([MS-FSA] 2.1.5.15.2 MUST, as Windows does). Samba 4.17 reads the field as unsigned and stores the largest
    time instead (SUCCESS); we follow the spec and Windows. Nothing is changed."""
    file_id = _new_file(client, name)
    try:
        before = _basic(client, file_id)
        assert _set_basic(client, file_id, **{field: unsigned - (1 << 64)}) == "STATUS_INVALID_PARAMETER"
        assert _basic(client, file_id) == before
    finally:
        client.close_file(file_id)


# -- extended attributes: a bounded list, bounded work ([MS-FSA] 2.1.5.15.5) --------------------------------------

FILE_FULL_EA_INFORMATION = 15
FILE_EA_INFORMATION = 7
STATUS_EA_TOO_LARGE = 0xC0000050
SMB2_CREATE_EA_BUFFER = b"ExtA"


def _ea_list(count: int, value: bytes = b"v") -> bytes:
    """FILE_FULL_EA_INFORMATION ([MS-FSCC] 2.4.15) built by hand: EAnnnnnn=value, 4-byte aligned."""
    out = bytearray()
    for index in range(count):
        name = b"EA%06d" % index
        entry = struct.pack("<IBBH", 0, 0, len(name), len(value)) + name + b"\x00" + value
        if index != count - 1:
            entry += bytes(-len(entry) % 4)
            entry = struct.pack("<I", len(entry)) + entry[4:]
        out += entry
    return bytes(out)


def _set_eas(client: b.Client, file_id: tuple[int, int], buffer: bytes) -> int:
    response = client.request(b.SMB2_SET_INFO, b.set_info_body(file_id, b.SMB2_0_INFO_FILE,
                                                                FILE_FULL_EA_INFORMATION, buffer),
                              credit_charge=_charge(len(buffer)))
    return response.status


@pytest.mark.parametrize("count", [5000, 20000, 100000])
@pytest.mark.parametrize("value", [b"v", b""])
def test_thousands_of_eas_in_one_request_are_ea_too_large_at_once(client: b.Client, name: str, count: int,
                                                                  value: bytes) -> None:
    """A list longer than a file's EAs may be (64 KiB - 5 bytes) is STATUS_EA_TOO_LARGE, as Windows answers
    for a list that grows past it. It used to cost quadratic time: 5,000 EAs took 0.8 s of server time,
    20,000 more than 10 s. Removals only (empty values) are refused the same way (see fscc/ea.py)."""
    file_id = _new_file(client, name)
    try:
        started = time.perf_counter()
        assert _set_eas(client, file_id, _ea_list(count, value)) == STATUS_EA_TOO_LARGE
        assert time.perf_counter() - started < 2.0
        # Nothing was stored.
        response = client.query_info(file_id, b.SMB2_0_INFO_FILE, FILE_EA_INFORMATION)
        assert b.output_buffer(response) == bytes(4)
    finally:
        client.close_file(file_id)


def test_a_list_that_fits_is_stored(client: b.Client, name: str) -> None:
    file_id = _new_file(client, name)
    try:
        assert _set_eas(client, file_id, _ea_list(100)) == b.STATUS_SUCCESS
        response = client.query_info(file_id, b.SMB2_0_INFO_FILE, FILE_EA_INFORMATION)
        assert struct.unpack("<I", b.output_buffer(response))[0] == 100 * 20  # 8 + 8 + 1 + 1, 4-byte aligned
        # One entry per 20-byte buffer: whole entries only, the rest reported as BUFFER_OVERFLOW.
        response = client.query_info(file_id, b.SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION, output_length=20,
                                     flags=0x01)
        assert _status(response) == "STATUS_BUFFER_OVERFLOW"
        assert b.output_buffer(response) == _ea_list(1)
    finally:
        client.close_file(file_id)


def test_ea_create_context_past_64_kib_is_ea_too_large(client: b.Client, name: str) -> None:
    context = b.create_context(SMB2_CREATE_EA_BUFFER, _ea_list(5000))
    response = client.request(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_ALL,
                                                           disposition=b.FILE_CREATE, contexts=context),
                              credit_charge=2)
    assert response.status == STATUS_EA_TOO_LARGE
    assert _status(client.create(name)) == "STATUS_OBJECT_NAME_NOT_FOUND"


# -- LOCK element rules ([MS-SMB2] 3.3.5.14) ----------------------------------------------------------------------

SHARED = b.SMB2_LOCKFLAG_SHARED_LOCK
EXCLUSIVE = b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK
UNLOCK = b.SMB2_LOCKFLAG_UNLOCK
NOW = b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY


def _lock(client: b.Client, file_id: tuple[int, int], *locks: tuple[int, int, int]) -> str:
    return _status(client.request(b.SMB2_LOCK, b.lock_body(file_id, list(locks))))


@pytest.mark.parametrize("flags", [(SHARED | NOW, SHARED), (EXCLUSIVE | NOW, EXCLUSIVE | NOW, SHARED),
                                   (SHARED, SHARED | NOW), (0, 0), (SHARED | NOW, UNLOCK)])
def test_several_locks_need_fail_immediately_on_every_element(client: b.Client, name: str,
                                                              flags: tuple[int, ...]) -> None:
    """smbtorture smb2.lock.valid-request: STATUS_INVALID_PARAMETER, and nothing is locked."""
    file_id = _new_file(client, name)
    try:
        locks = [(100 * index, 10, flag) for index, flag in enumerate(flags)]
        assert _lock(client, file_id, *locks) == "STATUS_INVALID_PARAMETER"
        for offset, length, _ in locks:
            assert _lock(client, file_id, (offset, length, UNLOCK)) == "STATUS_RANGE_NOT_LOCKED"
    finally:
        client.close_file(file_id)


def test_unlock_then_invalid_element_keeps_the_unlock(client: b.Client, name: str) -> None:
    """smbtorture smb2.lock.multiple-unlock: unlocks run in order; an element after them that is not an unlock
    is STATUS_INVALID_PARAMETER, and the unlocks before it stay done (Windows, Samba)."""
    file_id = _new_file(client, name)
    try:
        assert _lock(client, file_id, (0, 10, EXCLUSIVE | NOW), (10, 10, EXCLUSIVE | NOW)) == "STATUS_SUCCESS"
        assert _lock(client, file_id, (0, 10, UNLOCK), (10, 10, EXCLUSIVE | NOW)) == "STATUS_INVALID_PARAMETER"
        assert _lock(client, file_id, (0, 10, EXCLUSIVE | NOW)) == "STATUS_SUCCESS"  # it was unlocked
        assert _lock(client, file_id, (10, 10, UNLOCK), (0, 10, UNLOCK)) == "STATUS_SUCCESS"
        # A second range that is not locked: RANGE_NOT_LOCKED, the first one unlocked all the same.
        assert _lock(client, file_id, (0, 10, EXCLUSIVE | NOW)) == "STATUS_SUCCESS"
        assert _lock(client, file_id, (0, 10, UNLOCK), (10, 10, UNLOCK)) == "STATUS_RANGE_NOT_LOCKED"
        assert _lock(client, file_id, (0, 10, UNLOCK)) == "STATUS_RANGE_NOT_LOCKED"
    finally:
        client.close_file(file_id)


# -- WRITE past MAXFILESIZE ([MS-FSA] 2.1.5.3) ---------------------------------------------------------------------

MAXFILESIZE = 0xFFFFFFF0000


def _written_count(response: b.Response) -> int:
    return int(struct.unpack_from("<I", response.body, 4)[0])


def test_write_ending_past_maxfilesize_is_invalid_parameter(client: b.Client, server: SmbServer,
                                                            name: str) -> None:
    """smbtorture smb2.rw.invalid (its MAXFILESIZE part), Samba's vfs_valid_pwrite_range: a byte at or past
    0xFFFFFFF0000 is STATUS_INVALID_PARAMETER; the byte before it and an empty write at it are fine."""
    file_id = _new_file(client, name)
    try:
        for offset, data in ((MAXFILESIZE, b"x"), (MAXFILESIZE - 1, b"xy"), (0x7FFFFFFFFFFF0000, b"x")):
            assert _status(client.write(file_id, offset, data)) == "STATUS_INVALID_PARAMETER", hex(offset)
        assert (server.share_path / name).stat().st_size == 0
        response = client.write(file_id, MAXFILESIZE, b"")
        assert _status(response) == "STATUS_SUCCESS" and _written_count(response) == 0
        response = client.write(file_id, MAXFILESIZE - 1, b"z")
        assert _status(response) == "STATUS_SUCCESS" and _written_count(response) == 1
        assert (server.share_path / name).stat().st_size == MAXFILESIZE
    finally:
        client.request(b.SMB2_SET_INFO, b.set_info_body(file_id, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION,
                                                        b.disposition_info()))
        client.close_file(file_id)


# -- SET_INFO FileBasicInformation rules and what a pending delete shows (smbtorture smb2.setinfo) ---------------

FILE_ATTRIBUTE_HIDDEN = 0x2
FILE_ATTRIBUTE_TEMPORARY = 0x100


def _set_basic_with_attributes(client: b.Client, file_id: tuple[int, int], attributes: int,
                               write: int = 0, change: int = 0) -> str:
    buffer = _BASIC.pack(0, 0, write, change, attributes) + bytes(4)
    return _status(client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION, buffer))


def test_a_file_cannot_become_a_directory(client: b.Client, name: str) -> None:
    """[MS-FSA] 2.1.5.15.2: FILE_ATTRIBUTE_DIRECTORY on a file is STATUS_INVALID_PARAMETER, and the times in the
    same request are not applied."""
    file_id = _new_file(client, name)
    try:
        before = _basic(client, file_id)
        ft = _filetime_of_unix(1_400_000_000)
        assert _set_basic_with_attributes(client, file_id, b.FILE_ATTRIBUTE_DIRECTORY, write=ft) == \
            "STATUS_INVALID_PARAMETER"
        assert _basic(client, file_id) == before
    finally:
        client.close_file(file_id)
    directory = client.open(name + ".d", desired_access=b.GENERIC_ALL, disposition=b.FILE_CREATE,
                            options=b.FILE_DIRECTORY_FILE)
    try:
        assert _set_basic_with_attributes(client, directory, b.FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_TEMPORARY) \
            == "STATUS_INVALID_PARAMETER"
        assert _set_basic_with_attributes(client, directory, b.FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_HIDDEN) \
            == "STATUS_SUCCESS"
    finally:
        client.set_info(directory, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
        client.close_file(directory)


def test_change_time_a_handle_set_stays_when_it_changes_attributes(client: b.Client, name: str) -> None:
    """[MS-FSA] 2.1.5.15.2 Open.UserSetChangeTime: after a handle set ChangeTime, changing the attributes with
    zero times keeps it (Windows; smbtorture smb2.setinfo). ChangeTime -2 lets it follow changes again."""
    file_id = _new_file(client, name)
    try:
        ft = _filetime_of_unix(1_300_000_000)
        assert _set_basic(client, file_id, change=ft) == "STATUS_SUCCESS"
        assert _set_basic_with_attributes(client, file_id, FILE_ATTRIBUTE_HIDDEN) == "STATUS_SUCCESS"
        _, _, _, change, attributes = _basic(client, file_id)
        assert (change, attributes & FILE_ATTRIBUTE_HIDDEN) == (ft, FILE_ATTRIBUTE_HIDDEN)
        assert _set_basic_with_attributes(client, file_id, b.FILE_ATTRIBUTE_NORMAL, change=-2) == "STATUS_SUCCESS"
        assert _basic(client, file_id)[3] != ft
    finally:
        client.close_file(file_id)


def test_delete_pending_file_reports_its_remaining_links(client: b.Client, name: str) -> None:
    """FileStandardInformation/FileAllInformation NumberOfLinks leave out the name a pending delete removes
    (Windows, Samba): 0 for a file with one name, 1 again once the delete is cancelled."""
    file_id = _new_file(client, name)
    try:
        for pending, links in ((True, 0), (False, 1)):
            response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION,
                                       b.disposition_info(pending))
            assert _status(response) == "STATUS_SUCCESS"
            standard = b.output_buffer(client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_STANDARD_INFORMATION))
            assert struct.unpack_from("<IBB", standard, 16) == (links, int(pending), 0)
            every = b.output_buffer(client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_ALL_INFORMATION))
            assert struct.unpack_from("<IB", every, 56) == (links, int(pending))
    finally:
        client.close_file(file_id)


# -- QUERY_DIRECTORY continued after the directory changed (smbtorture smb2.dir.fixed) ----------------------------

def test_scan_continued_after_its_files_were_deleted_lists_none_of_them(client: b.Client, name: str) -> None:
    directory = name + ".d"
    client.close_file(client.open(directory, desired_access=b.GENERIC_ALL, disposition=b.FILE_CREATE,
                                  options=b.FILE_DIRECTORY_FILE))
    files = [f"{directory}\\f{index:03d}" for index in range(40)]
    for path in files:
        client.close_file(client.open(path, desired_access=b.GENERIC_ALL, disposition=b.FILE_CREATE))
    scan = client.open(directory, desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
    try:
        first = client.query_directory(scan, flags=b.SMB2_RETURN_SINGLE_ENTRY, output_length=0x100)
        assert _status(first) == "STATUS_SUCCESS"
        assert b.directory_names(b.output_buffer(first)) == ["."]
        for path in files:  # through other handles
            file_id = client.open(path, desired_access=b.DELETE, options=b.FILE_DELETE_ON_CLOSE)
            client.close_file(file_id)
        listed: list[str] = []
        while True:
            response = client.query_directory(scan, output_length=4096)
            if response.status == b.STATUS_NO_MORE_FILES:
                break
            assert _status(response) == "STATUS_SUCCESS"
            listed += b.directory_names(b.output_buffer(response))
        assert listed == [".."]  # none of the deleted names, and no error
    finally:
        client.close_file(scan)
        root = client.open(directory, desired_access=b.DELETE, options=b.FILE_DIRECTORY_FILE | b.FILE_DELETE_ON_CLOSE)
        client.close_file(root)


# -- CREATE request checks (smbtorture smb2.create.gentest) and FSCTL_SET_SPARSE access (smb2.ioctl.sparse_perms) --

FILE_ATTRIBUTE_VOLUME = 0x8
FSCTL_SET_SPARSE = 0x000900C4


@pytest.mark.parametrize("access", [0x08000000, 0x04000000])
def test_reserved_access_bits_are_access_denied_before_attributes_are_checked(client: b.Client, name: str,
                                                                              access: int) -> None:
    response = client.create(name, desired_access=access, disposition=b.FILE_CREATE,
                             file_attributes=FILE_ATTRIBUTE_VOLUME)
    assert _status(response) == "STATUS_ACCESS_DENIED"
    response = client.create(name, desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                             file_attributes=FILE_ATTRIBUTE_VOLUME)
    assert _status(response) == "STATUS_INVALID_PARAMETER"


@pytest.mark.parametrize("option", [0x00000080, 0x00100000, 0x00002000])
def test_tree_connection_opfilter_and_file_id_options_are_not_supported(client: b.Client, name: str,
                                                                         option: int) -> None:
    """FILE_CREATE_TREE_CONNECTION, FILE_RESERVE_OPFILTER, FILE_OPEN_BY_FILE_ID: STATUS_NOT_SUPPORTED, the
    not_supported_mask Windows gives in smbtorture smb2.create.gentest (0x00102080)."""
    response = client.create(name, desired_access=b.GENERIC_READ, disposition=b.FILE_OPEN_IF, options=option)
    assert _status(response) == "STATUS_NOT_SUPPORTED"
    assert _status(client.create(name)) == "STATUS_OBJECT_NAME_NOT_FOUND"


@pytest.mark.parametrize("access", [b.FILE_APPEND_DATA, b.FILE_WRITE_DATA, b.FILE_WRITE_ATTRIBUTES])
def test_set_sparse_with_any_write_right(client: b.Client, name: str, access: int) -> None:
    """Windows and Samba 4.17 also take FILE_APPEND_DATA alone (smbtorture smb2.ioctl.sparse_perms)."""
    client.close_file(_new_file(client, name))
    file_id = client.open(name, desired_access=access)
    try:
        response = client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, FSCTL_SET_SPARSE, max_output=0))
        assert _status(response) == "STATUS_SUCCESS"
    finally:
        client.close_file(file_id)
    file_id = client.open(name, desired_access=b.FILE_READ_ATTRIBUTES)
    try:
        assert _basic(client, file_id)[4] & 0x200  # FILE_ATTRIBUTE_SPARSE_FILE
    finally:
        client.close_file(file_id)


# -- stream names on a share without streams (smbtorture smb2.create_no_streams.no_stream) ------------------------

@pytest.fixture(scope="module")
def no_streams_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmbServer]:
    """A share with `named_streams = false`, as a Samba share without a streams module."""
    base = tmp_path_factory.mktemp("no-streams")
    share = base / "share"
    share.mkdir()
    server = start_server(share, base / "server.log", "--share-option", "named_streams=false")
    try:
        yield server
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


@pytest.mark.parametrize("stream", ["::$DATA", "::foo", ":stream", ":stream:$DATA", "::$INDEX_ALLOCATION", ":"])
@pytest.mark.parametrize("exists", [False, True])
@pytest.mark.parametrize("disposition", [b.FILE_OPEN, b.FILE_OPEN_IF])
def test_stream_names_are_object_name_invalid(no_streams_server: SmbServer, name: str, stream: str, exists: bool,
                                              disposition: int) -> None:
    """FILE_NAMED_STREAMS is not advertised: any stream syntax in a Windows open is STATUS_OBJECT_NAME_INVALID,
    the default stream "::$DATA" of an existing file included. Samba 4.17 without a streams module answers all
    24 of these requests the same way (probed in the same setup); nothing is created."""
    server = no_streams_server
    with b.connect(server.host, server.port, server.user, server.password, sign=True) as client:
        if exists:
            client.close_file(_new_file(client, name))
        response = client.create(name + stream, desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                 disposition=disposition)
        assert _status(response) == "STATUS_OBJECT_NAME_INVALID"
        assert _status(client.create(name)) == ("STATUS_SUCCESS" if exists else "STATUS_OBJECT_NAME_NOT_FOUND")


# -- FSCTL_SET_ZERO_DATA and QUERY_ALLOCATED_RANGES of non-sparse files (smbtorture smb2.ioctl.sparse_*) ----------

FSCTL_SET_ZERO_DATA = 0x000980C8
FSCTL_QUERY_ALLOCATED_RANGES = 0x000940CF
STATUS_FILE_LOCK_CONFLICT = 0xC0000054


def _ioctl(client: b.Client, file_id: tuple[int, int], code: int, data: bytes, max_output: int = 0) -> b.Response:
    return client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, code, data, max_output=max_output))


def _zero(client: b.Client, file_id: tuple[int, int], offset: int, beyond: int) -> int:
    return _ioctl(client, file_id, FSCTL_SET_ZERO_DATA, struct.pack("<qq", offset, beyond)).status


def _ranges(client: b.Client, file_id: tuple[int, int], offset: int, length: int) -> list[tuple[int, int]]:
    response = _ioctl(client, file_id, FSCTL_QUERY_ALLOCATED_RANGES, struct.pack("<qq", offset, length),
                      max_output=4096)
    assert _status(response) == "STATUS_SUCCESS"
    (out_offset, out_count) = struct.unpack_from("<II", response.body, 32)
    data = response.raw[out_offset:out_offset + out_count]
    return [struct.unpack_from("<qq", data, index) for index in range(0, len(data), 16)]  # type: ignore[misc]


def test_zero_data_punches_a_hole_and_keeps_the_size(client: b.Client, server: SmbServer, name: str) -> None:
    file_id = _new_file(client, name)
    try:
        assert _status(client.write(file_id, 0, b"x" * 16384)) == "STATUS_SUCCESS"
        # Not sparse: the whole range is reported allocated, holes or not (Windows, Samba).
        assert _zero(client, file_id, 4096, 8192) == b.STATUS_SUCCESS
        assert _ranges(client, file_id, 0, 16384) == [(0, 16384)]
        assert _ioctl(client, file_id, FSCTL_SET_SPARSE, b"").status == b.STATUS_SUCCESS
        assert _ranges(client, file_id, 0, 16384) == [(0, 4096), (8192, 8192)]  # ext4 and tmpfs: 4 KiB pages
        assert _zero(client, file_id, 12288, 1 << 40) == b.STATUS_SUCCESS  # past the end: size stays
        assert (server.share_path / name).read_bytes() == b"x" * 4096 + bytes(4096) + b"x" * 4096 + bytes(4096)
        assert _zero(client, file_id, 100, 100) == b.STATUS_SUCCESS  # empty
        for offset, beyond in ((8192, 4096), (-1, 10)):
            assert _zero(client, file_id, offset, beyond) == b.STATUS_INVALID_PARAMETER
        assert _ioctl(client, file_id, FSCTL_SET_ZERO_DATA, b"\0" * 15).status == b.STATUS_INVALID_PARAMETER
    finally:
        client.close_file(file_id)


@pytest.mark.parametrize("access", [b.FILE_APPEND_DATA, b.FILE_WRITE_ATTRIBUTES, b.GENERIC_READ])
def test_zero_data_needs_write_data(client: b.Client, server: SmbServer, name: str, access: int) -> None:
    """smbtorture smb2.ioctl.sparse_perms: only FILE_WRITE_DATA may zero (Windows, Samba)."""
    client.write_file(name, b"y" * 8192)
    file_id = client.open(name, desired_access=access)
    try:
        assert _zero(client, file_id, 0, 4096) == b.STATUS_ACCESS_DENIED
    finally:
        client.close_file(file_id)
    assert (server.share_path / name).read_bytes() == b"y" * 8192


def test_zero_data_over_another_handles_lock_is_a_lock_conflict(client: b.Client, server: SmbServer,
                                                               name: str) -> None:
    """smbtorture smb2.ioctl.sparse_lock: STATUS_FILE_LOCK_CONFLICT, nothing zeroed; past the lock it works."""
    client.write_file(name, b"z" * 8192)
    locker = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
    zeroer = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
    try:
        assert _lock(client, locker, (0, 4096, EXCLUSIVE | NOW)) == "STATUS_SUCCESS"
        assert _zero(client, zeroer, 0, 4096) == STATUS_FILE_LOCK_CONFLICT
        assert _zero(client, zeroer, 4096, 8192) == b.STATUS_SUCCESS
    finally:
        client.close_file(locker)
        client.close_file(zeroer)
    assert (server.share_path / name).read_bytes() == b"z" * 4096 + bytes(4096)
