"""The exact NTSTATUS of each error path of the core server, over a real socket ([MS-SMB2] 3.3.5; [MS-FSA] 2.1.5).

Every test talks to the real daemon with the raw client of tests/builders.py. The expected statuses are what
[MS-SMB2] / [MS-FSA] require and Windows and Samba return. After each test a brand-new client must still be
served (negotiate, logon, tree connect, create, write, read, delete) and the server log must show no handler bug.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import SmbServer, start_server, stop_server

_BUG_MARKERS = ("internal error", "Traceback (most recent call last)")


# -- fixtures ---------------------------------------------------------------------------------------------------

def _check_server_after(server: SmbServer, log_start: int) -> None:
    assert server.process.poll() is None, "the server process died"
    b.assert_serves_fresh_client(server.host, server.port, server.user, server.password, server.share)
    new_log = server.log_text()[log_start:]
    for marker in _BUG_MARKERS:
        assert marker not in new_log, f"server logged a handler bug:\n{new_log[new_log.index(marker) - 1500:][:5000]}"


@pytest.fixture
def server(module_server: SmbServer) -> Iterator[SmbServer]:
    log_start = len(module_server.log_text())
    yield module_server
    _check_server_after(module_server, log_start)


@pytest.fixture
def name() -> str:
    """A file name no other test uses (the module shares one server and one share)."""
    return f"t-{uuid.uuid4().hex[:10]}"


def _make_file(client: b.Client, name: str, data: bytes = b"0123456789" * 10, attributes: int = 0) -> None:
    file_id = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=b.FILE_CREATE,
                          file_attributes=attributes)
    if data:
        assert client.write(file_id, 0, data).status == b.STATUS_SUCCESS
    assert client.close_file(file_id) == b.STATUS_SUCCESS


def _make_dir(client: b.Client, name: str) -> None:
    file_id = client.open(name, desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                          options=b.FILE_DIRECTORY_FILE)
    assert client.close_file(file_id) == b.STATUS_SUCCESS


def _status(response: b.Response) -> str:
    return b.status_name(response.status)


def _required_length(response: b.Response) -> int:
    """The 4-byte required length of a STATUS_BUFFER_TOO_SMALL error ([MS-SMB2] 2.2.2, 2.2.2.1): plain ErrorData,
    or on 3.1.1 possibly one SMB2_ERROR_ID_DEFAULT error context around it."""
    error_context_count = response.body[2]
    data = response.error_data()
    if error_context_count:
        data_length, error_id = struct.unpack_from("<II", data, 0)
        assert error_id == 0
        data = data[8:8 + data_length]
    assert len(data) == 4, f"BUFFER_TOO_SMALL error data is {data.hex()}"
    return int(struct.unpack("<I", data)[0])


# -- CREATE -----------------------------------------------------------------------------------------------------

def test_open_missing_file(client: b.Client, name: str) -> None:
    assert _status(client.create(name)) == "STATUS_OBJECT_NAME_NOT_FOUND"


def test_open_under_missing_directory(client: b.Client, name: str) -> None:
    assert _status(client.create(f"{name}\\inner.txt")) == "STATUS_OBJECT_PATH_NOT_FOUND"
    assert _status(client.create(f"{name}\\deeper\\inner.txt", disposition=b.FILE_OPEN_IF)) == \
        "STATUS_OBJECT_PATH_NOT_FOUND"


def test_create_on_existing(client: b.Client, name: str) -> None:
    _make_file(client, name)
    assert _status(client.create(name, disposition=b.FILE_CREATE)) == "STATUS_OBJECT_NAME_COLLISION"


def test_directory_file_on_a_file(client: b.Client, name: str) -> None:
    _make_file(client, name)
    assert _status(client.create(name, options=b.FILE_DIRECTORY_FILE)) == "STATUS_NOT_A_DIRECTORY"


def test_non_directory_file_on_a_directory(client: b.Client, name: str) -> None:
    _make_dir(client, name)
    assert _status(client.create(name, options=b.FILE_NON_DIRECTORY_FILE)) == "STATUS_FILE_IS_A_DIRECTORY"


def test_file_under_a_file_is_path_not_found(client: b.Client, name: str) -> None:
    # [MS-FSA] 2.1.5.1: a non-directory met as an intermediate component is STATUS_OBJECT_PATH_NOT_FOUND.
    _make_file(client, name)
    assert _status(client.create(f"{name}\\x")) == "STATUS_OBJECT_PATH_NOT_FOUND"


_R, _W, _D = b.FILE_SHARE_READ, b.FILE_SHARE_WRITE, b.FILE_SHARE_DELETE
_STAT_ACCESS = b.FILE_READ_ATTRIBUTES | b.SYNCHRONIZE | b.READ_CONTROL


@pytest.mark.parametrize(("first_access", "first_share", "second_access", "second_share", "expected"), [
    # the existing open does not share what the new one wants
    (b.FILE_READ_DATA, _W | _D, b.FILE_READ_DATA, _R | _W | _D, "STATUS_SHARING_VIOLATION"),
    (b.FILE_WRITE_DATA, _R | _D, b.FILE_WRITE_DATA, _R | _W | _D, "STATUS_SHARING_VIOLATION"),
    (b.FILE_WRITE_DATA, _R | _D, b.FILE_APPEND_DATA, _R | _W | _D, "STATUS_SHARING_VIOLATION"),
    (b.DELETE, _R | _W, b.DELETE, _R | _W | _D, "STATUS_SHARING_VIOLATION"),
    (b.FILE_READ_DATA, _W | _D, b.FILE_EXECUTE, _R | _W | _D, "STATUS_SHARING_VIOLATION"),
    # the new open does not share what the existing one holds
    (b.FILE_READ_DATA, _R | _W | _D, b.FILE_WRITE_DATA, _W | _D, "STATUS_SHARING_VIOLATION"),
    (b.FILE_WRITE_DATA, _R | _W | _D, b.FILE_READ_DATA, _R | _D, "STATUS_SHARING_VIOLATION"),
    (b.DELETE, _R | _W | _D, b.FILE_READ_DATA, _R | _W, "STATUS_SHARING_VIOLATION"),
    # compatible opens
    (b.FILE_READ_DATA, _R, b.FILE_READ_DATA, _R, "STATUS_SUCCESS"),
    (b.FILE_READ_DATA | b.FILE_WRITE_DATA, _R | _W, b.FILE_WRITE_DATA, _R | _W, "STATUS_SUCCESS"),
    # attribute-only ("stat") opens never conflict ([MS-FSA] 2.1.5.1.2)
    (b.FILE_READ_DATA | b.FILE_WRITE_DATA | b.DELETE, 0, _STAT_ACCESS, 0, "STATUS_SUCCESS"),
    (b.FILE_READ_DATA, 0, b.FILE_READ_ATTRIBUTES | b.FILE_WRITE_ATTRIBUTES, _R | _W | _D, "STATUS_SUCCESS"),
    (_STAT_ACCESS, 0, b.FILE_READ_DATA | b.FILE_WRITE_DATA | b.DELETE, 0, "STATUS_SUCCESS"),
])
def test_share_modes(client: b.Client, name: str, first_access: int, first_share: int, second_access: int,
                     second_share: int, expected: str) -> None:
    _make_file(client, name)
    first = client.open(name, desired_access=first_access, share_access=first_share)
    try:
        response = client.create(name, desired_access=second_access, share_access=second_share)
        assert _status(response) == expected
        if response.status == b.STATUS_SUCCESS:
            client.close_file(b.create_file_id(response.body))
    finally:
        client.close_file(first)
    # Once the first open is gone, the second one is granted.
    client.close_file(client.open(name, desired_access=second_access, share_access=second_share))


def test_sharing_violation_across_sessions(server: SmbServer, client: b.Client, name: str) -> None:
    _make_file(client, name)
    first = client.open(name, desired_access=b.FILE_READ_DATA | b.FILE_WRITE_DATA, share_access=0)
    with b.connect(server.host, server.port, server.user, server.password) as other:
        assert _status(other.create(name, desired_access=b.FILE_READ_DATA)) == "STATUS_SHARING_VIOLATION"
    client.close_file(first)


def test_delete_pending(client: b.Client, name: str) -> None:
    _make_file(client, name)
    file_id = client.open(name, desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES)
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
    assert _status(response) == "STATUS_SUCCESS"
    assert _status(client.create(name)) == "STATUS_DELETE_PENDING"
    assert _status(client.create(name, desired_access=b.FILE_READ_ATTRIBUTES)) == "STATUS_DELETE_PENDING"
    assert client.close_file(file_id) == b.STATUS_SUCCESS
    assert _status(client.create(name)) == "STATUS_OBJECT_NAME_NOT_FOUND"


def test_delete_on_close_without_delete_access(client: b.Client, name: str) -> None:
    """A request for FILE_DELETE_ON_CLOSE without DELETE is INVALID_PARAMETER (Windows; Samba 4.17, bug 13358;
    tests/integration/test_named_streams.py compares the two servers)."""
    _make_file(client, name)
    response = client.create(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE, options=b.FILE_DELETE_ON_CLOSE)
    assert _status(response) == "STATUS_INVALID_PARAMETER"
    response = client.create(name + "-new", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE,
                             options=b.FILE_DELETE_ON_CLOSE)
    assert _status(response) == "STATUS_INVALID_PARAMETER"
    # Nothing was created by the refused request.
    assert _status(client.create(name + "-new")) == "STATUS_OBJECT_NAME_NOT_FOUND"


def test_delete_on_close_on_read_only_file(client: b.Client, name: str) -> None:
    _make_file(client, name, attributes=b.FILE_ATTRIBUTE_READONLY)
    response = client.create(name, desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES, options=b.FILE_DELETE_ON_CLOSE)
    assert _status(response) == "STATUS_CANNOT_DELETE"
    # [MS-FSA] 2.1.5.1.1: a new file asked to be READONLY and DELETE_ON_CLOSE at once is refused the same way.
    response = client.create(name + "-new", desired_access=b.DELETE | b.GENERIC_WRITE, disposition=b.FILE_CREATE,
                             options=b.FILE_DELETE_ON_CLOSE, file_attributes=b.FILE_ATTRIBUTE_READONLY)
    assert _status(response) == "STATUS_CANNOT_DELETE"


@pytest.mark.parametrize("level", [4, 5, 0xFFFFFFFF])
def test_bad_impersonation_level(client: b.Client, name: str, level: int) -> None:
    response = client.create(name, disposition=b.FILE_OPEN_IF, impersonation=level)
    assert _status(response) == "STATUS_BAD_IMPERSONATION_LEVEL"


@pytest.mark.parametrize("disposition", [6, 7, 0xFFFFFFFF])
def test_invalid_disposition(client: b.Client, name: str, disposition: int) -> None:
    assert _status(client.create(name, disposition=disposition)) == "STATUS_INVALID_PARAMETER"


def test_directory_and_non_directory_together(client: b.Client, name: str) -> None:
    response = client.create(name, disposition=b.FILE_OPEN_IF,
                             options=b.FILE_DIRECTORY_FILE | b.FILE_NON_DIRECTORY_FILE)
    assert _status(response) == "STATUS_INVALID_PARAMETER"


@pytest.mark.parametrize("leading", ["\\", "\\\\", "/"])
def test_leading_separator(client: b.Client, name: str, leading: str) -> None:
    # [MS-SMB2] 3.3.5.9: a name that starts with a path separator MUST fail with STATUS_INVALID_PARAMETER.
    _make_file(client, name)
    assert _status(client.create(leading + name)) == "STATUS_INVALID_PARAMETER"


@pytest.mark.parametrize("char", ["*", "?", "<", ">", '"', "|"])
def test_wildcard_characters_in_name(client: b.Client, name: str, char: str) -> None:
    response = client.create(f"{name}{char}x", desired_access=b.GENERIC_WRITE, disposition=b.FILE_OPEN_IF)
    assert _status(response) == "STATUS_OBJECT_NAME_INVALID"


@pytest.mark.parametrize("raw_name", [
    b"a\x00b",  # odd length
    "ab".encode("utf-16-le") + b"\x00\xd8",  # lone high surrogate
    b"\x00\xdc" + "ab".encode("utf-16-le"),  # lone low surrogate
    "a\x00b".encode("utf-16-le"),  # embedded NUL
], ids=["odd-length", "lone-high-surrogate", "lone-low-surrogate", "embedded-nul"])
def test_malformed_utf16_name(client: b.Client, raw_name: bytes) -> None:
    # Windows refuses such names with STATUS_OBJECT_NAME_INVALID (Samba says ILLEGAL_CHARACTER for the
    # unconvertible ones); this server documents OBJECT_NAME_INVALID for all of them (smbsrv/wire/buffer.py).
    response = client.create(raw_name, desired_access=b.GENERIC_WRITE, disposition=b.FILE_OPEN_IF)
    assert _status(response) == "STATUS_OBJECT_NAME_INVALID"


# -- shares, sessions, handles -----------------------------------------------------------------------------------

@pytest.fixture
def read_only_server(tmp_path: Path) -> Iterator[SmbServer]:
    share = tmp_path / "ro"
    share.mkdir()
    (share / "existing.txt").write_bytes(b"read only data")
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[server]\nusers_file = "{tmp_path / "users"}"\n\n'
                      f'[shares.ro]\npath = "{share}"\nread_only = true\n')
    server = start_server(share, tmp_path / "ro-server.log", config=config)
    server.share = "ro"
    try:
        yield server
    finally:
        stop_server(server.process)
    log = server.log_text()
    for marker in _BUG_MARKERS:
        assert marker not in log, log


def test_write_on_read_only_share(read_only_server: SmbServer) -> None:
    srv = read_only_server
    with b.connect(srv.host, srv.port, srv.user, srv.password, share="ro") as client:
        client.close_file(client.open("existing.txt", desired_access=b.GENERIC_READ))
        for access in (b.GENERIC_WRITE, b.FILE_WRITE_DATA, b.FILE_APPEND_DATA, b.DELETE, b.GENERIC_ALL):
            response = client.create("existing.txt", desired_access=access)
            assert _status(response) == "STATUS_ACCESS_DENIED", hex(access)
        for disposition in (b.FILE_CREATE, b.FILE_OPEN_IF, b.FILE_OVERWRITE_IF):
            response = client.create("new.txt", desired_access=b.GENERIC_WRITE, disposition=disposition)
            assert _status(response) == "STATUS_ACCESS_DENIED", disposition
        response = client.create("newdir", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                                 options=b.FILE_DIRECTORY_FILE)
        assert _status(response) == "STATUS_ACCESS_DENIED"
        response = client.create("existing.txt", desired_access=b.GENERIC_READ, disposition=b.FILE_OVERWRITE)
        assert _status(response) == "STATUS_ACCESS_DENIED"
    assert (srv.share_path / "existing.txt").read_bytes() == b"read only data"
    assert sorted(p.name for p in srv.share_path.iterdir()) == ["existing.txt"]
    with b.connect(srv.host, srv.port, srv.user, srv.password, share="ro") as fresh:
        response = fresh.read(fresh.open("existing.txt"), 0, 100)
        assert b.read_data(response) == b"read only data"


def test_unknown_share(server: SmbServer) -> None:
    with b.connect(server.host, server.port, server.user, server.password, share=None) as client:
        assert _status(client.tree_connect("no-such-share")) == "STATUS_BAD_NETWORK_NAME"
        assert _status(client.tree_connect("share")) == "STATUS_SUCCESS"


@pytest.mark.parametrize(("user_kind", "password"), [("known", "wrong-password"), ("unknown", "Secret-123"),
                                                     ("known", "")])
def test_logon_failure(server: SmbServer, user_kind: str, password: str) -> None:
    user = server.user if user_kind == "known" else "no_such_user_x"
    with b.Client(server.host, server.port) as client:
        assert client.negotiate().status == b.STATUS_SUCCESS
        assert b.status_name(client.session_setup(user, password)) == "STATUS_LOGON_FAILURE"
        # The failed session is gone: a request on it is refused.
        response = client.request(b.SMB2_TREE_CONNECT, b.tree_connect_body(f"\\\\{server.host}\\share"))
        assert _status(response) == "STATUS_USER_SESSION_DELETED"
        # The same connection can still log on properly.
        assert client.session_setup(server.user, server.password) == b.STATUS_SUCCESS


def test_closed_file_id(client: b.Client, name: str) -> None:
    _make_file(client, name)
    file_id = client.open(name)
    assert client.close_file(file_id) == b.STATUS_SUCCESS
    assert _status(client.read(file_id, 0, 10)) == "STATUS_FILE_CLOSED"
    assert _status(client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION)) == "STATUS_FILE_CLOSED"
    assert b.status_name(client.close_file(file_id)) == "STATUS_FILE_CLOSED"
    assert _status(client.read((0x1234, 0x5678), 0, 10)) == "STATUS_FILE_CLOSED"


def test_foreign_file_id(server: SmbServer, client: b.Client, name: str) -> None:
    _make_file(client, name)
    with b.connect(server.host, server.port, server.user, server.password) as other:
        foreign = other.open(name)
        assert _status(client.read(foreign, 0, 10)) == "STATUS_FILE_CLOSED"
        assert b.status_name(client.close_file(foreign)) == "STATUS_FILE_CLOSED"
        # The owner's handle was not touched.
        assert _status(other.read(foreign, 0, 10)) == "STATUS_SUCCESS"
        other.close_file(foreign)


def test_file_id_of_another_tree(server: SmbServer, client: b.Client, name: str) -> None:
    _make_file(client, name)
    file_id = client.open(name)
    first_tree = client.tree_id
    assert client.tree_connect("share").status == b.STATUS_SUCCESS
    assert client.tree_id != first_tree
    assert _status(client.read(file_id, 0, 10)) == "STATUS_FILE_CLOSED"
    assert _status(client.request(b.SMB2_READ, b.read_body(file_id, 0, 10), tree_id=first_tree)) == "STATUS_SUCCESS"


def test_bad_tree_id(client: b.Client, name: str) -> None:
    response = client.request(b.SMB2_CREATE, b.create_body(name, disposition=b.FILE_OPEN_IF), tree_id=0xDEAD)
    assert _status(response) == "STATUS_NETWORK_NAME_DELETED"
    tree_id = client.tree_id
    assert _status(client.request(b.SMB2_TREE_DISCONNECT, struct.pack("<HH", 4, 0))) == "STATUS_SUCCESS"
    response = client.request(b.SMB2_CREATE, b.create_body(name, disposition=b.FILE_OPEN_IF), tree_id=tree_id)
    assert _status(response) == "STATUS_NETWORK_NAME_DELETED"


def test_bad_session_id(client: b.Client, name: str) -> None:
    for session_id in (0, 0x1234, client.session_id ^ 0xFF00):
        response = client.request(b.SMB2_CREATE, b.create_body(name, disposition=b.FILE_OPEN_IF),
                                  session_id=session_id, sign=False)
        assert _status(response) == "STATUS_USER_SESSION_DELETED", hex(session_id)
    assert _status(client.request(b.SMB2_LOGOFF, struct.pack("<HH", 4, 0))) == "STATUS_SUCCESS"
    response = client.request(b.SMB2_CREATE, b.create_body(name, disposition=b.FILE_OPEN_IF), sign=False)
    assert _status(response) == "STATUS_USER_SESSION_DELETED"


# -- READ / WRITE ----------------------------------------------------------------------------------------------

def test_read_past_end_of_file(client: b.Client, name: str) -> None:
    _make_file(client, name, b"x" * 100)
    file_id = client.open(name)
    assert _status(client.read(file_id, 100, 10)) == "STATUS_END_OF_FILE"
    assert _status(client.read(file_id, 5000, 1)) == "STATUS_END_OF_FILE"
    response = client.read(file_id, 95, 10)
    assert _status(response) == "STATUS_SUCCESS" and b.read_data(response) == b"x" * 5
    client.close_file(file_id)
    _make_file(client, name + "-empty", b"")
    file_id = client.open(name + "-empty")
    assert _status(client.read(file_id, 0, 1)) == "STATUS_END_OF_FILE"
    client.close_file(file_id)


def test_read_and_write_without_access(client: b.Client, name: str) -> None:
    _make_file(client, name)
    write_only = client.open(name, desired_access=b.FILE_WRITE_DATA)
    read_only = client.open(name, desired_access=b.FILE_READ_DATA)
    attributes_only = client.open(name, desired_access=b.FILE_READ_ATTRIBUTES)
    assert _status(client.read(write_only, 0, 10)) == "STATUS_ACCESS_DENIED"
    assert _status(client.write(read_only, 0, b"nope")) == "STATUS_ACCESS_DENIED"
    assert _status(client.read(attributes_only, 0, 10)) == "STATUS_ACCESS_DENIED"
    assert _status(client.write(attributes_only, 0, b"nope")) == "STATUS_ACCESS_DENIED"
    for file_id in (write_only, read_only, attributes_only):
        client.close_file(file_id)
    file_id = client.open(name)
    response = client.read(file_id, 0, 4)
    assert b.read_data(response) == b"0123"
    client.close_file(file_id)


# -- QUERY_DIRECTORY ---------------------------------------------------------------------------------------------

def test_query_directory_statuses(client: b.Client, name: str) -> None:
    _make_dir(client, name)
    _make_file(client, f"{name}\\one.txt")
    dir_id = client.open(name, options=b.FILE_DIRECTORY_FILE)
    assert _status(client.query_directory(dir_id, "nothing-matches*")) == "STATUS_NO_SUCH_FILE"
    client.close_file(dir_id)

    dir_id = client.open(name, options=b.FILE_DIRECTORY_FILE)
    first = client.query_directory(dir_id, "*")
    assert _status(first) == "STATUS_SUCCESS"
    assert sorted(b.directory_names(b.output_buffer(first))) == [".", "..", "one.txt"]
    assert _status(client.query_directory(dir_id, "*")) == "STATUS_NO_MORE_FILES"
    assert _status(client.query_directory(dir_id, "*")) == "STATUS_NO_MORE_FILES"
    again = client.query_directory(dir_id, "*", flags=b.SMB2_RESTART_SCANS)
    assert _status(again) == "STATUS_SUCCESS"
    client.close_file(dir_id)

    dir_id = client.open(name, options=b.FILE_DIRECTORY_FILE)
    single = client.query_directory(dir_id, "one.txt")
    assert b.directory_names(b.output_buffer(single)) == ["one.txt"]
    assert _status(client.query_directory(dir_id, "one.txt")) == "STATUS_NO_MORE_FILES"
    client.close_file(dir_id)


def test_query_directory_tiny_buffer(client: b.Client, name: str) -> None:
    _make_dir(client, name)
    dir_id = client.open(name, options=b.FILE_DIRECTORY_FILE)
    for info_class in (b.FILE_ID_BOTH_DIRECTORY_INFORMATION, b.FILE_NAMES_INFORMATION):
        response = client.query_directory(dir_id, "*", info_class=info_class, output_length=8,
                                          flags=b.SMB2_RESTART_SCANS)
        assert _status(response) == "STATUS_INFO_LENGTH_MISMATCH", info_class
    client.close_file(dir_id)


@pytest.mark.parametrize("info_class", [0x00, 0x04, 0x55, 0xFF])
def test_query_directory_bad_info_class(client: b.Client, name: str, info_class: int) -> None:
    _make_dir(client, name)
    dir_id = client.open(name, options=b.FILE_DIRECTORY_FILE)
    assert _status(client.query_directory(dir_id, "*", info_class=info_class)) == "STATUS_INVALID_INFO_CLASS"
    client.close_file(dir_id)


def test_query_directory_on_a_file(client: b.Client, name: str) -> None:
    # [MS-FSA] 2.1.5.6: a directory query on a non-directory open is STATUS_INVALID_PARAMETER.
    _make_file(client, name)
    file_id = client.open(name)
    assert _status(client.query_directory(file_id, "*")) == "STATUS_INVALID_PARAMETER"
    client.close_file(file_id)


# -- QUERY_INFO -------------------------------------------------------------------------------------------------

def test_query_info_small_buffers(client: b.Client, name: str) -> None:
    _make_file(client, name)
    file_id = client.open(name)
    # Fixed-size classes: a buffer below the structure size is STATUS_INFO_LENGTH_MISMATCH.
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION, output_length=39)
    assert _status(response) == "STATUS_INFO_LENGTH_MISMATCH"
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_STANDARD_INFORMATION, output_length=0)
    assert _status(response) == "STATUS_INFO_LENGTH_MISMATCH"
    # FileAllInformation: below its fixed part ([MS-FSA] 2.1.5.12.1: BlockAlign(100 + 2, 8) = 104) it is a
    # length mismatch; with the fixed part but not the whole name, STATUS_BUFFER_OVERFLOW and partial data.
    full = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_ALL_INFORMATION)
    assert _status(full) == "STATUS_SUCCESS"
    full_data = b.output_buffer(full)
    assert len(full_data) > 104
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_ALL_INFORMATION, output_length=96)
    assert _status(response) == "STATUS_INFO_LENGTH_MISMATCH"
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_ALL_INFORMATION, output_length=104)
    assert _status(response) == "STATUS_BUFFER_OVERFLOW"
    partial = b.output_buffer(response)
    assert len(partial) == 104
    assert partial[:96] == full_data[:96]
    client.close_file(file_id)


def test_query_security_buffer_too_small(client: b.Client, name: str) -> None:
    _make_file(client, name)
    file_id = client.open(name, desired_access=b.READ_CONTROL | b.FILE_READ_ATTRIBUTES)
    wanted = b.OWNER_SECURITY_INFORMATION | b.GROUP_SECURITY_INFORMATION | b.DACL_SECURITY_INFORMATION
    full = client.query_info(file_id, b.SMB2_0_INFO_SECURITY, 0, additional_information=wanted)
    assert _status(full) == "STATUS_SUCCESS"
    descriptor = b.output_buffer(full)
    assert len(descriptor) >= 20 and descriptor[0] == 1  # self-relative SD, revision 1
    response = client.query_info(file_id, b.SMB2_0_INFO_SECURITY, 0, additional_information=wanted,
                                 output_length=8)
    assert _status(response) == "STATUS_BUFFER_TOO_SMALL"
    assert _required_length(response) == len(descriptor)
    client.close_file(file_id)


def test_posix_class_without_posix_negotiated(client: b.Client, name: str) -> None:
    _make_file(client, name)
    file_id = client.open(name)
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_POSIX_INFORMATION)
    assert _status(response) == "STATUS_INVALID_INFO_CLASS"  # as Samba (samba.tests.smb3unix)
    client.close_file(file_id)


@pytest.mark.parametrize(("info_type", "info_class"), [(1, 0), (1, 0x7F), (2, 0x7F), (9, 1)])
def test_query_info_unknown_class(client: b.Client, name: str, info_type: int, info_class: int) -> None:
    _make_file(client, name)
    file_id = client.open(name)
    response = client.query_info(file_id, info_type, info_class)
    assert _status(response) == ("STATUS_INVALID_INFO_CLASS" if info_type != 9 else "STATUS_INVALID_PARAMETER")
    client.close_file(file_id)


# -- SET_INFO ---------------------------------------------------------------------------------------------------

def test_rename_onto_existing_without_replace(client: b.Client, name: str) -> None:
    _make_file(client, name, b"source")
    _make_file(client, name + "-target", b"target")
    file_id = client.open(name, desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES)
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                               b.rename_info(name + "-target"))
    assert _status(response) == "STATUS_OBJECT_NAME_COLLISION"
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                               b.rename_info(name + "-target", replace_if_exists=True))
    assert _status(response) == "STATUS_SUCCESS"
    client.close_file(file_id)
    file_id = client.open(name + "-target")
    assert b.read_data(client.read(file_id, 0, 10)) == b"source"
    client.close_file(file_id)


def test_rename_without_delete_access(client: b.Client, name: str) -> None:
    # [MS-FSA] 2.1.5.15.12: a rename needs DELETE on the open.
    _make_file(client, name)
    file_id = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION, b.rename_info(name + "-2"))
    assert _status(response) == "STATUS_ACCESS_DENIED"
    client.close_file(file_id)


def test_delete_non_empty_directory(client: b.Client, name: str) -> None:
    _make_dir(client, name)
    _make_file(client, f"{name}\\child")
    dir_id = client.open(name, desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES, options=b.FILE_DIRECTORY_FILE)
    response = client.set_info(dir_id, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
    assert _status(response) == "STATUS_DIRECTORY_NOT_EMPTY"
    client.close_file(dir_id)
    assert sorted(client.list_directory(name)) == [".", "..", "child"]


def test_disposition_without_delete_access(client: b.Client, name: str) -> None:
    _make_file(client, name)
    file_id = client.open(name, desired_access=b.GENERIC_READ)
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
    assert _status(response) == "STATUS_ACCESS_DENIED"
    client.close_file(file_id)


# -- LOCK -------------------------------------------------------------------------------------------------------

@pytest.fixture
def two_handles(client: b.Client, name: str) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
    _make_file(client, name, b"L" * 100)
    first = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
    second = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
    yield first, second
    client.close_file(first)
    client.close_file(second)


def _lock(client: b.Client, file_id: tuple[int, int], offset: int, length: int, flags: int) -> str:
    return _status(client.request(b.SMB2_LOCK, b.lock_body(file_id, [(offset, length, flags)])))


_EXCLUSIVE_NOW = b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
_SHARED_NOW = b.SMB2_LOCKFLAG_SHARED_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY


def test_lock_conflicts(client: b.Client, two_handles: tuple[tuple[int, int], tuple[int, int]]) -> None:
    first, second = two_handles
    assert _lock(client, first, 0, 10, _EXCLUSIVE_NOW) == "STATUS_SUCCESS"
    assert _lock(client, second, 5, 10, _EXCLUSIVE_NOW) == "STATUS_LOCK_NOT_GRANTED"
    assert _lock(client, second, 0, 1, _SHARED_NOW) == "STATUS_LOCK_NOT_GRANTED"
    assert _lock(client, second, 10, 10, _EXCLUSIVE_NOW) == "STATUS_SUCCESS"  # adjacent, not overlapping
    # The same handle cannot take an overlapping exclusive lock twice either.
    assert _lock(client, first, 0, 10, _EXCLUSIVE_NOW) == "STATUS_LOCK_NOT_GRANTED"
    assert _lock(client, first, 0, 10, b.SMB2_LOCKFLAG_UNLOCK) == "STATUS_SUCCESS"
    assert _lock(client, second, 0, 5, _SHARED_NOW) == "STATUS_SUCCESS"
    assert _lock(client, first, 0, 5, _SHARED_NOW) == "STATUS_SUCCESS"  # shared locks coexist


def test_unlock_of_unlocked_range(client: b.Client, two_handles: tuple[tuple[int, int], tuple[int, int]]) -> None:
    first, second = two_handles
    assert _lock(client, first, 50, 10, b.SMB2_LOCKFLAG_UNLOCK) == "STATUS_RANGE_NOT_LOCKED"
    assert _lock(client, first, 0, 10, _EXCLUSIVE_NOW) == "STATUS_SUCCESS"
    # Another handle cannot release it, and a different range is not the lock.
    assert _lock(client, second, 0, 10, b.SMB2_LOCKFLAG_UNLOCK) == "STATUS_RANGE_NOT_LOCKED"
    assert _lock(client, first, 0, 5, b.SMB2_LOCKFLAG_UNLOCK) == "STATUS_RANGE_NOT_LOCKED"
    assert _lock(client, first, 0, 10, b.SMB2_LOCKFLAG_UNLOCK) == "STATUS_SUCCESS"
    assert _lock(client, first, 0, 10, b.SMB2_LOCKFLAG_UNLOCK) == "STATUS_RANGE_NOT_LOCKED"


def test_io_into_another_handles_lock(client: b.Client,
                                      two_handles: tuple[tuple[int, int], tuple[int, int]]) -> None:
    first, second = two_handles
    assert _lock(client, first, 10, 10, _EXCLUSIVE_NOW) == "STATUS_SUCCESS"
    assert _status(client.read(second, 15, 2)) == "STATUS_FILE_LOCK_CONFLICT"
    assert _status(client.read(second, 0, 11)) == "STATUS_FILE_LOCK_CONFLICT"
    assert _status(client.write(second, 19, b"ab")) == "STATUS_FILE_LOCK_CONFLICT"
    assert _status(client.read(second, 0, 10)) == "STATUS_SUCCESS"
    assert _status(client.read(first, 10, 10)) == "STATUS_SUCCESS"
    assert _status(client.write(first, 10, b"mine")) == "STATUS_SUCCESS"
    # A shared lock lets others read but not write.
    assert _lock(client, first, 50, 10, _SHARED_NOW) == "STATUS_SUCCESS"
    assert _status(client.read(second, 50, 10)) == "STATUS_SUCCESS"
    assert _status(client.write(second, 55, b"x")) == "STATUS_FILE_LOCK_CONFLICT"


def test_blocking_lock_completes_after_unlock(client: b.Client,
                                              two_handles: tuple[tuple[int, int], tuple[int, int]]) -> None:
    first, second = two_handles
    assert _lock(client, first, 0, 10, _EXCLUSIVE_NOW) == "STATUS_SUCCESS"
    (lock_id,) = client.send(b.Req(b.SMB2_LOCK, b.lock_body(second, [(0, 10, b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK)])))
    interim = client.receive(lock_id, skip_pending=False)
    assert _status(interim) == "STATUS_PENDING"
    assert interim.header.is_async and interim.header.async_id != 0
    assert _lock(client, first, 0, 10, b.SMB2_LOCKFLAG_UNLOCK) == "STATUS_SUCCESS"
    final = client.receive(lock_id, skip_pending=False)
    assert _status(final) == "STATUS_SUCCESS"
    assert final.header.is_async and final.header.async_id == interim.header.async_id
    assert _status(client.read(first, 0, 5)) == "STATUS_FILE_LOCK_CONFLICT"


@pytest.mark.parametrize("cancel_by", ["async_id", "message_id"])
def test_cancel_pending_lock(client: b.Client, two_handles: tuple[tuple[int, int], tuple[int, int]],
                             cancel_by: str) -> None:
    first, second = two_handles
    assert _lock(client, first, 0, 10, _EXCLUSIVE_NOW) == "STATUS_SUCCESS"
    (lock_id,) = client.send(b.Req(b.SMB2_LOCK, b.lock_body(second, [(0, 10, b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK)])))
    interim = client.receive(lock_id, skip_pending=False)
    assert _status(interim) == "STATUS_PENDING"
    if cancel_by == "async_id":
        client.send(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=0, async_id=interim.header.async_id))
    else:
        client.send(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=lock_id))
    final = client.receive(lock_id, skip_pending=False)
    assert _status(final) == "STATUS_CANCELLED"
    # The cancelled lock was never granted: the range is still only the first handle's.
    assert _lock(client, first, 0, 10, b.SMB2_LOCKFLAG_UNLOCK) == "STATUS_SUCCESS"
    assert _lock(client, second, 0, 10, b.SMB2_LOCKFLAG_UNLOCK) == "STATUS_RANGE_NOT_LOCKED"


def test_cancel_arriving_with_the_lock(client: b.Client,
                                      two_handles: tuple[tuple[int, int], tuple[int, int]]) -> None:
    """LOCK and its CANCEL (by message id) in one TCP write: the server reads the CANCEL before the waiter
    has run once. The lock must still end with STATUS_CANCELLED (a loaded client sends it this way)."""
    first, second = two_handles
    assert _lock(client, first, 0, 10, _EXCLUSIVE_NOW) == "STATUS_SUCCESS"
    lock_message, (lock_id,) = client.build(
        b.Req(b.SMB2_LOCK, b.lock_body(second, [(0, 10, b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK)])))
    cancel_message, _ = client.build(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=lock_id))
    frame = struct.Struct(">I")
    assert client.sock is not None
    client.sock.sendall(frame.pack(len(lock_message)) + lock_message + frame.pack(len(cancel_message))
                        + cancel_message)
    assert _status(client.receive(lock_id, skip_pending=False)) == "STATUS_PENDING"
    assert _status(client.receive(lock_id, skip_pending=False)) == "STATUS_CANCELLED"
    assert _lock(client, second, 0, 10, b.SMB2_LOCKFLAG_UNLOCK) == "STATUS_RANGE_NOT_LOCKED"


def test_pending_lock_ends_when_handle_closes(server: SmbServer, client: b.Client, name: str) -> None:
    # Closing the holder's handle releases its byte-range locks ([MS-FSA] 2.1.5.4), so the waiter is granted.
    _make_file(client, name, b"L" * 100)
    holder = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
    waiter = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
    assert _lock(client, holder, 0, 10, _EXCLUSIVE_NOW) == "STATUS_SUCCESS"
    (lock_id,) = client.send(b.Req(b.SMB2_LOCK, b.lock_body(waiter, [(0, 10, b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK)])))
    assert _status(client.receive(lock_id, skip_pending=False)) == "STATUS_PENDING"
    assert client.close_file(holder) == b.STATUS_SUCCESS
    assert _status(client.receive(lock_id, skip_pending=False)) == "STATUS_SUCCESS"
    client.close_file(waiter)


# -- IOCTL ------------------------------------------------------------------------------------------------------

_UNKNOWN_FSCTL = (0x9 << 16) | (0xFFF << 2)


def test_ioctl_unknown_fsctl(client: b.Client, name: str) -> None:
    _make_file(client, name)
    file_id = client.open(name)
    response = client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, _UNKNOWN_FSCTL))
    assert _status(response) == "STATUS_INVALID_DEVICE_REQUEST"
    client.close_file(file_id)


def test_ioctl_without_fsctl_flag(client: b.Client, name: str) -> None:
    # [MS-SMB2] 3.3.5.15: Flags other than SMB2_0_IOCTL_IS_FSCTL MUST fail with STATUS_NOT_SUPPORTED.
    _make_file(client, name)
    file_id = client.open(name)
    for ctl_code in (b.FSCTL_GET_REPARSE_POINT, _UNKNOWN_FSCTL):
        response = client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, ctl_code, flags=0))
        assert _status(response) == "STATUS_NOT_SUPPORTED", hex(ctl_code)
    client.close_file(file_id)


# -- framing and structure sizes ---------------------------------------------------------------------------------

def _with_structure_size(body: bytes, delta: int) -> bytes:
    (size,) = struct.unpack_from("<H", body, 0)
    return struct.pack("<H", size + delta) + body[2:]


@pytest.mark.parametrize("command", ["CREATE", "CLOSE", "FLUSH", "READ", "WRITE", "LOCK", "IOCTL", "ECHO",
                                     "QUERY_DIRECTORY", "QUERY_INFO", "SET_INFO", "TREE_CONNECT"])
@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_structure_size(client: b.Client, name: str, command: str, delta: int) -> None:
    _make_file(client, name)
    file_id = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE)
    bodies = {
        "CREATE": (b.SMB2_CREATE, b.create_body(name)),
        "CLOSE": (b.SMB2_CLOSE, b.close_body(file_id)),
        "FLUSH": (b.SMB2_FLUSH, b.flush_body(file_id)),
        "READ": (b.SMB2_READ, b.read_body(file_id, 0, 10)),
        "WRITE": (b.SMB2_WRITE, b.write_body(file_id, 0, b"data")),
        "LOCK": (b.SMB2_LOCK, b.lock_body(file_id, [(0, 1, _EXCLUSIVE_NOW)])),
        "IOCTL": (b.SMB2_IOCTL, b.ioctl_body(file_id, b.FSCTL_GET_REPARSE_POINT)),
        "ECHO": (b.SMB2_ECHO, b.echo_body()),
        "QUERY_DIRECTORY": (b.SMB2_QUERY_DIRECTORY, b.query_directory_body(file_id)),
        "QUERY_INFO": (b.SMB2_QUERY_INFO, b.query_info_body(file_id, 1, b.FILE_BASIC_INFORMATION)),
        "SET_INFO": (b.SMB2_SET_INFO, b.set_info_body(file_id, 1, b.FILE_END_OF_FILE_INFORMATION, bytes(8))),
        "TREE_CONNECT": (b.SMB2_TREE_CONNECT, b.tree_connect_body("\\\\127.0.0.1\\share")),
    }
    command_code, body = bodies[command]
    response = client.request(command_code, _with_structure_size(body, delta))
    assert _status(response) == "STATUS_INVALID_PARAMETER"
    # The handle is untouched by the refused request.
    assert _status(client.read(file_id, 0, 4)) == "STATUS_SUCCESS"
    client.close_file(file_id)


def test_truncated_body(client: b.Client, name: str) -> None:
    _make_file(client, name)
    file_id = client.open(name)
    response = client.request(b.SMB2_READ, b.read_body(file_id, 0, 10)[:20])
    assert _status(response) == "STATUS_INVALID_PARAMETER"
    body = bytearray(b.create_body(name))
    struct.pack_into("<H", body, 46, 400)  # NameLength past the end of the message
    assert _status(client.request(b.SMB2_CREATE, bytes(body))) == "STATUS_INVALID_PARAMETER"
    client.close_file(file_id)


# -- signing ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dialect", [0x0311, 0x0302, 0x0210])
def test_bad_signature(server: SmbServer, name: str, dialect: int) -> None:
    with b.connect(server.host, server.port, server.user, server.password, dialects=(dialect,),
                   sign=True) as client:
        # Properly signed requests work.
        assert _status(client.request(b.SMB2_ECHO, b.echo_body())) == "STATUS_SUCCESS"
        assert _status(client.create(name, disposition=b.FILE_OPEN_IF)) == "STATUS_SUCCESS"
        # The SIGNED flag with an all-zero signature.
        response = client.request(b.SMB2_CREATE, b.create_body(name), flags=b.SMB2_FLAGS_SIGNED, sign=False)
        assert _status(response) == "STATUS_ACCESS_DENIED"
        # A correct signature over different bytes.
        message, (message_id,) = client.build(b.Req(b.SMB2_CREATE, b.create_body(name)), sign=True)
        message[-2] ^= 0x01
        client.send_raw(bytes(message))
        assert _status(client.receive(message_id)) == "STATUS_ACCESS_DENIED"
        # A flipped signature bit.
        message, (message_id,) = client.build(b.Req(b.SMB2_ECHO, b.echo_body()), sign=True)
        message[50] ^= 0x80
        client.send_raw(bytes(message))
        assert _status(client.receive(message_id)) == "STATUS_ACCESS_DENIED"
        # The session survives refused requests.
        assert _status(client.request(b.SMB2_ECHO, b.echo_body())) == "STATUS_SUCCESS"


@pytest.mark.parametrize("algorithm", [0, 1, 2], ids=["hmac-sha256", "aes-cmac", "aes-gmac"])
def test_large_write_signature_checked_while_it_arrives(server: SmbServer, name: str, algorithm: int) -> None:
    """A large signed WRITE is folded into its signature as it arrives (transport._read_signed): it still
    lands only when every byte verifies, however the bytes are split on the wire."""
    payload = bytes(range(256)) * 4096  # 1 MiB
    with b.Client(server.host, server.port) as client:
        response = client.negotiate((0x0311,), contexts=[b.preauth_context(), b.signing_context((algorithm,))])
        assert _status(response) == "STATUS_SUCCESS" and client.signing_algorithm == algorithm
        assert client.session_setup(server.user, server.password) == b.STATUS_SUCCESS
        client.sign_requests = True
        assert client.tree_connect("share").status == b.STATUS_SUCCESS
        _make_file(client, name, data=b"original")
        file_id = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
        charge = len(payload) // 65536

        def send_in_pieces(message: bytes) -> None:
            assert client.sock is not None
            wire = struct.pack(">I", len(message)) + message
            for start in range(0, len(wire), 100_000):
                client.sock.sendall(wire[start:start + 100_000])

        for flipped in (70, 64 + 48 + 512 * 1024, len(payload) + 64 + 48 - 1):
            message, (message_id,) = client.build(
                b.Req(b.SMB2_WRITE, b.write_body(file_id, 0, payload), credit_charge=charge))
            message[flipped] ^= 0x01
            send_in_pieces(bytes(message))
            assert _status(client.receive(message_id)) == "STATUS_ACCESS_DENIED"
        assert b.read_data(client.read(file_id, 0, 16)) == b"original"
        message, (message_id,) = client.build(
            b.Req(b.SMB2_WRITE, b.write_body(file_id, 0, payload), credit_charge=charge))
        send_in_pieces(bytes(message))
        assert _status(client.receive(message_id)) == "STATUS_SUCCESS"
        client.close_file(file_id)
    assert (server.share_path / name).read_bytes() == payload


def test_signing_required_refuses_unsigned(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    server = start_server(share, tmp_path / "signed.log", "--signing", "required")
    try:
        with b.connect(server.host, server.port, server.user, server.password, share=None) as client:
            assert _status(client.tree_connect("share")) == "STATUS_ACCESS_DENIED"
            client.sign_requests = True
            assert _status(client.tree_connect("share")) == "STATUS_SUCCESS"
            client.sign_requests = False
            assert _status(client.create("x", disposition=b.FILE_OPEN_IF)) == "STATUS_ACCESS_DENIED"
            client.sign_requests = True
            assert _status(client.create("x", disposition=b.FILE_OPEN_IF)) == "STATUS_SUCCESS"
    finally:
        stop_server(server.process)
    for marker in _BUG_MARKERS:
        assert marker not in server.log_text()


# -- compounds --------------------------------------------------------------------------------------------------

def test_related_compound_after_failed_create(client: b.Client, name: str) -> None:
    responses = client.compound(
        b.Req(b.SMB2_CREATE, b.create_body(name)),
        b.Req(b.SMB2_QUERY_INFO, b.query_info_body(b.RELATED_FILE_ID, 1, b.FILE_BASIC_INFORMATION), related=True),
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True))
    assert [_status(r) for r in responses] == ["STATUS_OBJECT_NAME_NOT_FOUND"] * 3


def test_related_compound_success(client: b.Client, name: str) -> None:
    responses = client.compound(
        b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                           disposition=b.FILE_CREATE)),
        b.Req(b.SMB2_WRITE, b.write_body(b.RELATED_FILE_ID, 0, b"compound"), related=True),
        b.Req(b.SMB2_READ, b.read_body(b.RELATED_FILE_ID, 0, 8), related=True),
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True))
    assert [_status(r) for r in responses] == ["STATUS_SUCCESS"] * 4
    assert b.read_data(responses[2]) == b"compound"
    assert all(r.header.flags & b.SMB2_FLAGS_RELATED_OPERATIONS for r in responses[1:])


def test_unrelated_compound(client: b.Client, name: str) -> None:
    _make_file(client, name)
    responses = client.compound(
        b.Req(b.SMB2_CREATE, b.create_body(name + "-missing")),
        b.Req(b.SMB2_ECHO, b.echo_body()),
        b.Req(b.SMB2_CREATE, b.create_body(name)))
    assert [_status(r) for r in responses] == ["STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS", "STATUS_SUCCESS"]
    client.close_file(b.create_file_id(responses[2].body))


def test_related_file_id_without_previous_create(client: b.Client) -> None:
    response = client.request(b.SMB2_READ, b.read_body(b.RELATED_FILE_ID, 0, 1))
    assert _status(response) == "STATUS_FILE_CLOSED"


# -- connection-level violations ---------------------------------------------------------------------------------

def test_message_id_reuse_drops_connection(client: b.Client) -> None:
    assert _status(client.request(b.SMB2_ECHO, b.echo_body())) == "STATUS_SUCCESS"
    client.send(b.Req(b.SMB2_ECHO, b.echo_body(), message_id=client.next_message_id - 1))
    assert client.is_dropped()


def test_message_id_outside_window_drops_connection(client: b.Client) -> None:
    client.send(b.Req(b.SMB2_ECHO, b.echo_body(), message_id=client.next_message_id + 100000))
    assert client.is_dropped()


def test_credit_charge_beyond_window_drops_connection(client: b.Client) -> None:
    client.send(b.Req(b.SMB2_ECHO, b.echo_body(), credit_charge=65535))
    assert client.is_dropped()


def test_second_negotiate_drops_connection(server: SmbServer) -> None:
    with b.Client(server.host, server.port) as client:
        assert client.negotiate().status == b.STATUS_SUCCESS
        client.send(b.Req(b.SMB2_NEGOTIATE, b.negotiate_body(b.DIALECTS_ALL, [b.preauth_context()])))
        assert client.is_dropped()
    with b.connect(server.host, server.port, server.user, server.password) as client:
        client.send(b.Req(b.SMB2_NEGOTIATE, b.negotiate_body((0x0302,))))
        assert client.is_dropped()


def test_request_before_negotiate_drops_connection(server: SmbServer) -> None:
    with b.Client(server.host, server.port) as client:
        client.send(b.Req(b.SMB2_ECHO, b.echo_body()))
        assert client.is_dropped()


def test_smb1_negotiate_with_wildcard(server: SmbServer) -> None:
    with b.Client(server.host, server.port) as client:
        client.send_raw(b.smb1_negotiate([b"PC NETWORK PROGRAM 1.0", b"NT LM 0.12", b"SMB 2.002", b"SMB 2.???"]))
        (response,) = client.receive_message()
        assert _status(response) == "STATUS_SUCCESS"
        assert response.header.command == b.SMB2_NEGOTIATE
        assert struct.unpack_from("<H", response.body, 4)[0] == 0x02FF
        assert response.header.message_id == 0
        # The client continues with an SMB2 NEGOTIATE, message id 1 ([MS-SMB2] 3.2.5.2).
        client.next_message_id = 1
        assert client.negotiate().status == b.STATUS_SUCCESS
        assert client.dialect == 0x0311
        assert client.session_setup(server.user, server.password) == b.STATUS_SUCCESS
        assert client.tree_connect("share").status == b.STATUS_SUCCESS
        assert _status(client.create("", options=b.FILE_DIRECTORY_FILE)) == "STATUS_SUCCESS"


@pytest.mark.parametrize("message", [
    b.smb1_negotiate([b"PC NETWORK PROGRAM 1.0", b"LANMAN1.0", b"NT LM 0.12"]),
    b"\xffSMB" + bytes([0x73]) + bytes(27) + b"\x00\x00\x00",  # SMB1 SESSION_SETUP_ANDX
    b"\xffSMB",  # truncated
    b"\xfeSMB" + bytes(10),  # truncated SMB2 header
    b"XXXX" + bytes(60),  # unknown protocol id
], ids=["smb1-without-smb2", "smb1-session-setup", "smb1-truncated", "smb2-truncated", "garbage"])
def test_other_first_messages_drop_connection(server: SmbServer, message: bytes) -> None:
    with b.Client(server.host, server.port) as client:
        client.send_raw(message)
        assert client.is_dropped()


def test_smb1_after_smb2_negotiate_drops_connection(server: SmbServer) -> None:
    with b.Client(server.host, server.port) as client:
        assert client.negotiate().status == b.STATUS_SUCCESS
        client.send_raw(b.smb1_negotiate([b"SMB 2.???"]))
        assert client.is_dropped()


# -- NEGOTIATE --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dialects", [(0x0201,), (0x0400, 0x0312), (0x02FF,)])
def test_negotiate_without_common_dialect(server: SmbServer, dialects: tuple[int, ...]) -> None:
    with b.Client(server.host, server.port) as client:
        assert _status(client.negotiate(dialects, contexts=[])) == "STATUS_NOT_SUPPORTED"


def test_negotiate_with_no_dialects(server: SmbServer) -> None:
    with b.Client(server.host, server.port) as client:
        assert _status(client.negotiate((), contexts=[])) == "STATUS_INVALID_PARAMETER"


@pytest.mark.parametrize("contexts", [[], [b.signing_context()], [b.posix_context()]],
                         ids=["no-contexts", "signing-only", "posix-only"])
def test_smb311_without_preauth_context(server: SmbServer, contexts: list[bytes]) -> None:
    with b.Client(server.host, server.port) as client:
        assert _status(client.negotiate((0x0311,), contexts=contexts)) == "STATUS_INVALID_PARAMETER"


def test_preauth_without_sha512(server: SmbServer) -> None:
    with b.Client(server.host, server.port) as client:
        response = client.negotiate((0x0311,), contexts=[b.preauth_context((0x0002, 0x0003))])
        assert _status(response) == "STATUS_SMB_NO_PREAUTH_INTEGRITY_HASH_OVERLAP"
