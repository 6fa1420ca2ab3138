"""The smbprotocol package against the real daemon, on every dialect, signed and unsigned.

The low-level API (Connection/Session/TreeConnect/Open) lets each test pick the exact request: CREATE with its
dispositions and options ([MS-SMB2] 2.2.13, [MS-FSA] 2.1.5.1), READ/WRITE ([MS-SMB2] 2.2.19, 2.2.21) including
multi-credit ones on dialects with SMB2_GLOBAL_CAP_LARGE_MTU ([MS-SMB2] 3.3.5.2.5), QUERY_DIRECTORY
([MS-SMB2] 2.2.33), QUERY_INFO / SET_INFO with FileAllInformation, FileBasicInformation, FileRenameInformation
and FileDispositionInformation ([MS-FSCC] 2.4.2, 2.4.7, 2.4.34.2, 2.4.11), and related compounds
([MS-SMB2] 3.3.5.2.7.2). The high-level `smbclient` module of the same package runs the os-like calls on top.

With require_signing the client signs every request after SESSION_SETUP and verifies every response signature
([MS-SMB2] 3.2.5.1.3), so a wrong server signature fails the call.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import smbclient
from smbprotocol import Dialects
from smbprotocol.connection import Connection
from smbprotocol.exceptions import SMBOSError, SMBResponseException
from smbprotocol.file_info import (
    FileAllInformation,
    FileAttributes,
    FileBasicInformation,
    FileDispositionInformation,
    FileInformationClass,
    FileRenameInformation,
    FileStandardInformation,
    InfoType,
)
from smbprotocol.header import NtStatus
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
    SMB2QueryInfoRequest,
    SMB2QueryInfoResponse,
    SMB2SetInfoRequest,
)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

from tests.conftest import SmbServer, serve_as_test_account

DIALECTS = {
    "2.0.2": Dialects.SMB_2_0_2,
    "2.1": Dialects.SMB_2_1_0,
    "3.0": Dialects.SMB_3_0_0,
    "3.0.2": Dialects.SMB_3_0_2,
    "3.1.1": Dialects.SMB_3_1_1,
}
VARIANTS = [(name, signing) for name in DIALECTS for signing in (False, True)]
# A test that hangs would hang the whole run: smbprotocol waits for responses without a timeout, so a
# watchdog closes the socket, which wakes every waiting call with an error.
WATCHDOG_S = 120
MAX_PAYLOAD = 65536

ALL_ACCESS = FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE \
    | FilePipePrinterAccessMask.DELETE
SHARE_ALL = ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE
RELATED_FILE_ID = b"\xff" * 16
_work_counter = itertools.count()


@dataclass
class Client:
    connection: Connection
    session: Session
    tree: TreeConnect
    root: Path  # this test's own directory on the server side
    prefix: str  # the same directory as a share-relative SMB name

    def name(self, relative: str) -> str:
        return f"{self.prefix}\\{relative}" if relative else self.prefix

    def open(self, relative: str, disposition: int = CreateDisposition.FILE_OPEN, options: int = 0,
             access: int = ALL_ACCESS, attributes: int = FileAttributes.FILE_ATTRIBUTE_NORMAL) -> Open:
        serve_as_test_account(self.root)  # what the test made on disk as root belongs to the SMB user's account
        handle = Open(self.tree, self.name(relative))
        handle.create(ImpersonationLevel.Impersonation, access, attributes, SHARE_ALL, disposition, options)
        return handle

    def open_dir(self, relative: str, disposition: int = CreateDisposition.FILE_OPEN, options: int = 0) -> Open:
        access = FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.DELETE
        return self.open(relative, disposition, CreateOptions.FILE_DIRECTORY_FILE | options, access,
                         FileAttributes.FILE_ATTRIBUTE_DIRECTORY)

    def query_info(self, handle: Open, info_class: type, output_length: int = 4096) -> SMB2QueryInfoResponse:
        request = SMB2QueryInfoRequest()
        request["info_type"] = InfoType.SMB2_0_INFO_FILE
        request["file_info_class"] = info_class.INFO_CLASS  # type: ignore[attr-defined]
        request["output_buffer_length"] = output_length
        request["file_id"] = handle.file_id
        sent = self.connection.send(request, self.session.session_id, self.tree.tree_connect_id)
        response = SMB2QueryInfoResponse()
        response.unpack(self.connection.receive(sent)["data"].get_value())
        return response

    def set_info(self, handle: Open, info: object) -> None:
        request = SMB2SetInfoRequest()
        request["info_type"] = InfoType.SMB2_0_INFO_FILE
        request["file_info_class"] = info.INFO_CLASS  # type: ignore[attr-defined]
        request["file_id"] = handle.file_id
        request["buffer"] = info
        sent = self.connection.send(request, self.session.session_id, self.tree.tree_connect_id)
        self.connection.receive(sent)


def _close_transport(connection: Connection) -> None:
    if connection.transport is not None:
        connection.transport.close()


def _status(exc: SMBResponseException) -> int:
    return int(exc.status)


@pytest.fixture(params=VARIANTS, ids=[f"{name}-{'signed' if signing else 'unsigned'}" for name, signing in VARIANTS])
def variant(request: pytest.FixtureRequest) -> tuple[str, bool]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def client(module_server: SmbServer, variant: tuple[str, bool]) -> Iterator[Client]:
    dialect_name, signing = variant
    work = f"w{next(_work_counter)}"
    root = module_server.share_path / work
    root.mkdir()
    serve_as_test_account(root)
    connection = Connection(uuid.uuid4(), module_server.host, module_server.port, require_signing=signing)
    watchdog = threading.Timer(WATCHDOG_S, _close_transport, (connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.connect(dialect=DIALECTS[dialect_name], timeout=30)
        assert connection.dialect == DIALECTS[dialect_name]
        session = Session(connection, module_server.user, module_server.password, require_encryption=False,
                          auth_protocol="ntlm")
        session.connect()
        assert session.signing_required == signing
        tree = TreeConnect(session, f"\\\\{module_server.host}\\{module_server.share}")
        tree.connect()
        yield Client(connection, session, tree, root, work)
        # Closes what the test left open, disconnects the tree and logs off.
        session.disconnect()
    finally:
        watchdog.cancel()
        connection.disconnect(True)


# --- create / write / read / close ---------------------------------------------------------------------------

def test_create_write_read_close(client: Client) -> None:
    handle = client.open("hello.txt", CreateDisposition.FILE_CREATE, CreateOptions.FILE_NON_DIRECTORY_FILE)
    assert handle.create_action == 2  # FILE_CREATED ([MS-SMB2] 2.2.14)
    assert handle.end_of_file == 0
    assert handle.write(b"hello, world", 0) == 12
    assert handle.write(b"W", 7) == 1
    assert handle.read(0, 12) == b"hello, World"
    # A read that starts at end of file is STATUS_END_OF_FILE ([MS-SMB2] 3.3.5.12).
    with pytest.raises(SMBResponseException) as excinfo:
        handle.read(12, 10)
    assert _status(excinfo.value) == NtStatus.STATUS_END_OF_FILE
    # A short read returns what there is.
    assert handle.read(7, 100) == b"World"
    close = handle.close(get_attributes=True)
    assert close is not None and close["end_of_file"].get_value() == 12
    assert (client.root / "hello.txt").read_bytes() == b"hello, World"

    again = client.open("hello.txt")
    assert again.create_action == 1  # FILE_OPENED
    assert again.end_of_file == 12
    assert again.read(0, 12) == b"hello, World"
    again.close()

    with pytest.raises(SMBResponseException) as excinfo:
        client.open("hello.txt", CreateDisposition.FILE_CREATE)
    assert _status(excinfo.value) == NtStatus.STATUS_OBJECT_NAME_COLLISION

    with pytest.raises(SMBResponseException) as excinfo:
        client.open("missing.txt")
    assert _status(excinfo.value) == NtStatus.STATUS_OBJECT_NAME_NOT_FOUND

    with pytest.raises(SMBResponseException) as excinfo:
        client.open("no-such-dir\\file.txt")
    assert _status(excinfo.value) == NtStatus.STATUS_OBJECT_PATH_NOT_FOUND

    overwritten = client.open("hello.txt", CreateDisposition.FILE_OVERWRITE_IF)
    assert overwritten.create_action == 3  # FILE_OVERWRITTEN
    assert overwritten.end_of_file == 0
    overwritten.close()
    assert (client.root / "hello.txt").read_bytes() == b""


# --- directories ---------------------------------------------------------------------------------------------

def test_query_directory_lists_names_sizes_and_ends(client: Client) -> None:
    (client.root / "d").mkdir()
    expected = {"a.txt": 1, "b.txt": 22, "c.dat": 333, "sub": 0}
    for name, size in expected.items():
        if name == "sub":
            (client.root / "d" / name).mkdir()
        else:
            (client.root / "d" / name).write_bytes(b"x" * size)

    directory = client.open_dir("d")
    entries = directory.query_directory("*", FileInformationClass.FILE_ID_BOTH_DIRECTORY_INFORMATION)
    by_name = {entry["file_name"].get_value().decode("utf-16-le"): entry for entry in entries}
    assert set(by_name) == {".", "..", *expected}
    for name, size in expected.items():
        assert by_name[name]["end_of_file"].get_value() == size
    is_dir = {name: bool(entry["file_attributes"].get_value() & FileAttributes.FILE_ATTRIBUTE_DIRECTORY)
              for name, entry in by_name.items()}
    assert is_dir == {".": True, "..": True, "a.txt": False, "b.txt": False, "c.dat": False, "sub": True}
    mtime = datetime.fromtimestamp((client.root / "d" / "b.txt").stat().st_mtime, UTC)
    listed = by_name["b.txt"]["last_write_time"].get_value()
    assert abs(listed.timestamp() - mtime.timestamp()) < 0.001

    # The enumeration is finished: the next call says so ([MS-SMB2] 3.3.5.18).
    with pytest.raises(SMBResponseException) as excinfo:
        directory.query_directory("*", FileInformationClass.FILE_ID_BOTH_DIRECTORY_INFORMATION)
    assert _status(excinfo.value) == NtStatus.STATUS_NO_MORE_FILES

    # SMB2_RESTART_SCANS starts over; the pattern stays the one of the first query (Windows and Samba).
    again = directory.query_directory("*.txt", FileInformationClass.FILE_NAMES_INFORMATION, flags=0x01)
    assert {entry["file_name"].get_value().decode("utf-16-le") for entry in again} == {".", "..", *expected}
    # SMB2_REOPEN starts over with the new pattern ([MS-SMB2] 3.3.5.18).
    txt = directory.query_directory("*.txt", FileInformationClass.FILE_NAMES_INFORMATION, flags=0x10)
    assert {entry["file_name"].get_value().decode("utf-16-le") for entry in txt} == {"a.txt", "b.txt"}
    directory.close()

    fresh = client.open_dir("d")
    with pytest.raises(SMBResponseException) as excinfo:
        fresh.query_directory("nothing*", FileInformationClass.FILE_DIRECTORY_INFORMATION)
    assert _status(excinfo.value) == NtStatus.STATUS_NO_SUCH_FILE
    fresh.close()


def test_query_directory_in_small_buffers_returns_every_entry_once(client: Client) -> None:
    (client.root / "many").mkdir()
    names = {f"file-{index:04d}-{'x' * 40}" for index in range(600)}
    for name in names:
        (client.root / "many" / name).write_bytes(b"")
    directory = client.open_dir("many")
    seen: list[str] = []
    while True:
        try:
            entries = directory.query_directory("*", FileInformationClass.FILE_FULL_DIRECTORY_INFORMATION,
                                                max_output=4096)
        except SMBResponseException as exc:
            assert _status(exc) == NtStatus.STATUS_NO_MORE_FILES
            break
        assert entries
        seen += [entry["file_name"].get_value().decode("utf-16-le") for entry in entries]
    directory.close()
    assert len(seen) == len(set(seen)), "an entry was returned twice"
    assert set(seen) == names | {".", ".."}


def test_mkdir_rmdir(client: Client) -> None:
    made = client.open_dir("newdir", CreateDisposition.FILE_CREATE)
    assert made.create_action == 2
    made.close()
    assert (client.root / "newdir").is_dir()

    inner = client.open_dir("newdir\\inner", CreateDisposition.FILE_CREATE)
    inner.close()

    # A non-empty directory cannot be marked for deletion ([MS-FSA] 2.1.5.14.3).
    outer = client.open_dir("newdir")
    disposition = FileDispositionInformation()
    disposition["delete_pending"] = True
    with pytest.raises(SMBResponseException) as excinfo:
        client.set_info(outer, disposition)
    assert _status(excinfo.value) == NtStatus.STATUS_DIRECTORY_NOT_EMPTY
    outer.close()
    assert (client.root / "newdir").is_dir()

    # rmdir the way Windows does it: open with DELETE_ON_CLOSE, close.
    gone = client.open_dir("newdir\\inner", options=CreateOptions.FILE_DELETE_ON_CLOSE)
    gone.close()
    assert not (client.root / "newdir" / "inner").exists()

    outer = client.open_dir("newdir")
    client.set_info(outer, disposition)
    outer.close()
    assert not (client.root / "newdir").exists()

    # Opening a file as a directory and a directory as a file are type errors ([MS-FSA] 2.1.5.1.2).
    (client.root / "plain").write_bytes(b"p")
    (client.root / "dir").mkdir()
    with pytest.raises(SMBResponseException) as excinfo:
        client.open_dir("plain")
    assert _status(excinfo.value) == NtStatus.STATUS_NOT_A_DIRECTORY
    with pytest.raises(SMBResponseException) as excinfo:
        client.open("dir", options=CreateOptions.FILE_NON_DIRECTORY_FILE)
    assert _status(excinfo.value) == NtStatus.STATUS_FILE_IS_A_DIRECTORY


# --- query_info / set_info ------------------------------------------------------------------------------------

def test_query_info_all_and_basic(client: Client) -> None:
    path = client.root / "info.bin"
    path.write_bytes(b"z" * 5000)
    mtime = datetime(2020, 2, 3, 4, 5, 6, 700000, tzinfo=UTC).timestamp()
    os.utime(path, (mtime, mtime))

    handle = client.open("info.bin", access=FilePipePrinterAccessMask.GENERIC_READ)
    all_info = client.query_info(handle, FileAllInformation).parse_buffer(FileAllInformation)
    standard = all_info["standard_information"]
    assert standard["end_of_file"].get_value() == 5000
    assert standard["allocation_size"].get_value() >= 5000
    assert standard["number_of_links"].get_value() == 1
    assert standard["directory"].get_value() is False
    assert standard["delete_pending"].get_value() is False
    assert all_info["internal_information"]["index_number"].get_value() != 0
    assert all_info["position_information"]["current_byte_offset"].get_value() == 0
    # FileNameInformation in FileAllInformation is the path from the share root ([MS-FSCC] 2.4.2).
    reported = all_info["name_information"]["file_name"].get_value()
    assert reported.lower().endswith(f"{client.prefix}\\info.bin".lower())

    basic = client.query_info(handle, FileBasicInformation).parse_buffer(FileBasicInformation)
    # FILETIME: 100 ns ticks since 1601-01-01.
    expected_ticks = int(mtime * 10_000_000) + 116444736000000000
    assert abs(basic["last_write_time"].get_value() - expected_ticks) < 10
    assert basic["last_access_time"].get_value() == basic["last_write_time"].get_value()
    assert basic["file_attributes"].get_value() & FileAttributes.FILE_ATTRIBUTE_ARCHIVE
    assert not basic["file_attributes"].get_value() & FileAttributes.FILE_ATTRIBUTE_DIRECTORY
    assert basic["file_attributes"].get_value() == FileAttributes.FILE_ATTRIBUTE_ARCHIVE
    assert all_info["basic_information"]["last_write_time"].get_value() == basic["last_write_time"].get_value()
    handle.close()

    directory = client.open_dir("")
    dir_all = client.query_info(directory, FileAllInformation).parse_buffer(FileAllInformation)
    assert dir_all["standard_information"]["directory"].get_value() is True
    assert dir_all["basic_information"]["file_attributes"].get_value() & FileAttributes.FILE_ATTRIBUTE_DIRECTORY
    directory.close()


def test_query_info_with_a_too_small_buffer(client: Client) -> None:
    (client.root / "f").write_bytes(b"f")
    handle = client.open("f", access=FilePipePrinterAccessMask.GENERIC_READ)
    # FileBasicInformation is 40 bytes: a smaller buffer is STATUS_INFO_LENGTH_MISMATCH ([MS-SMB2] 3.3.5.20.1).
    with pytest.raises(SMBResponseException) as excinfo:
        client.query_info(handle, FileBasicInformation, output_length=8)
    assert _status(excinfo.value) == NtStatus.STATUS_INFO_LENGTH_MISMATCH
    handle.close()


def test_set_basic_information_changes_times_and_attributes(client: Client) -> None:
    path = client.root / "times.txt"
    path.write_bytes(b"t")
    handle = client.open("times.txt", access=ALL_ACCESS | FilePipePrinterAccessMask.FILE_WRITE_ATTRIBUTES)
    wanted = datetime(2019, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp()
    basic = FileBasicInformation()
    basic["last_write_time"] = int(wanted * 10_000_000) + 116444736000000000
    basic["file_attributes"] = FileAttributes.FILE_ATTRIBUTE_HIDDEN | FileAttributes.FILE_ATTRIBUTE_ARCHIVE
    client.set_info(handle, basic)
    back = client.query_info(handle, FileBasicInformation).parse_buffer(FileBasicInformation)
    handle.close()
    assert back["last_write_time"].get_value() == basic["last_write_time"].get_value()
    assert back["file_attributes"].get_value() & FileAttributes.FILE_ATTRIBUTE_HIDDEN
    assert path.stat().st_mtime == wanted


def test_rename_with_set_info(client: Client) -> None:
    (client.root / "src.txt").write_bytes(b"payload")
    (client.root / "target-dir").mkdir()
    (client.root / "occupied.txt").write_bytes(b"occupied")

    handle = client.open("src.txt")
    rename = FileRenameInformation()
    # The new name is relative to the share root ([MS-FSCC] 2.4.34.2, RootDirectory 0 for SMB2).
    rename["file_name"] = client.name("target-dir\\dst.txt")
    client.set_info(handle, rename)
    # The open follows the file to its new name.
    assert handle.read(0, 7) == b"payload"
    handle.close()
    assert not (client.root / "src.txt").exists()
    assert (client.root / "target-dir" / "dst.txt").read_bytes() == b"payload"

    handle = client.open("target-dir\\dst.txt")
    clash = FileRenameInformation()
    clash["file_name"] = client.name("occupied.txt")
    with pytest.raises(SMBResponseException) as excinfo:
        client.set_info(handle, clash)
    assert _status(excinfo.value) == NtStatus.STATUS_OBJECT_NAME_COLLISION
    clash["replace_if_exists"] = True
    client.set_info(handle, clash)
    handle.close()
    assert (client.root / "occupied.txt").read_bytes() == b"payload"
    assert not (client.root / "target-dir" / "dst.txt").exists()

    # Renaming a directory moves its contents along.
    (client.root / "target-dir" / "child").write_bytes(b"c")
    directory = client.open_dir("target-dir")
    moved = FileRenameInformation()
    moved["file_name"] = client.name("renamed-dir")
    client.set_info(directory, moved)
    directory.close()
    assert (client.root / "renamed-dir" / "child").read_bytes() == b"c"


def test_remove_with_delete_on_close_and_disposition(client: Client) -> None:
    (client.root / "doomed.txt").write_bytes(b"bye")
    handle = client.open("doomed.txt", options=CreateOptions.FILE_DELETE_ON_CLOSE)
    # Still there while the handle is open ...
    assert (client.root / "doomed.txt").exists()
    handle.close()
    # ... and gone after the last close.
    assert not (client.root / "doomed.txt").exists()

    (client.root / "second.txt").write_bytes(b"bye")
    handle = client.open("second.txt")
    disposition = FileDispositionInformation()
    disposition["delete_pending"] = True
    client.set_info(handle, disposition)
    standard = client.query_info(handle, FileStandardInformation).parse_buffer(FileStandardInformation)
    assert standard["delete_pending"].get_value() is True
    handle.close()
    assert not (client.root / "second.txt").exists()

    # DELETE_ON_CLOSE without DELETE access is refused: INVALID_PARAMETER, as Windows and Samba 4.17 answer
    # (test_differential.py test_delete_on_close_without_delete_is_invalid_parameter).
    (client.root / "kept.txt").write_bytes(b"kept")
    with pytest.raises(SMBResponseException) as excinfo:
        client.open("kept.txt", options=CreateOptions.FILE_DELETE_ON_CLOSE,
                    access=FilePipePrinterAccessMask.GENERIC_READ)
    assert _status(excinfo.value) == NtStatus.STATUS_INVALID_PARAMETER
    assert (client.root / "kept.txt").exists()


# --- large I/O -----------------------------------------------------------------------------------------------

def test_large_reads_and_writes(client: Client, variant: tuple[str, bool]) -> None:
    connection = client.connection
    if variant[0] == "2.0.2":
        # 2.0.2 has no multi-credit requests: the server must keep every size at 64 KiB ([MS-SMB2] 3.3.5.4).
        assert not connection.supports_multi_credit
        assert connection.max_read_size <= MAX_PAYLOAD and connection.max_write_size <= MAX_PAYLOAD
        chunk = MAX_PAYLOAD
    else:
        assert connection.supports_multi_credit, "SMB2_GLOBAL_CAP_LARGE_MTU not offered on a 2.1+ dialect"
        assert connection.max_read_size >= 1024 * 1024 and connection.max_write_size >= 1024 * 1024
        chunk = 1024 * 1024  # 16 credits per request
    data = os.urandom(4 * 1024 * 1024 + 1234)
    handle = client.open("large.bin", CreateDisposition.FILE_OVERWRITE_IF)
    for offset in range(0, len(data), chunk):
        assert handle.write(data[offset:offset + chunk], offset) == len(data[offset:offset + chunk])
    assert hashlib.sha256((client.root / "large.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    received = bytearray()
    for offset in range(0, len(data), chunk):
        received += handle.read(offset, min(chunk, len(data) - offset))
    handle.close()
    assert bytes(received) == data
    if variant[0] != "2.0.2":
        # Far more than the initial credits were needed: the server must have granted them along the way.
        assert connection.sequence_window["high"] > 64


def test_pipelined_reads_within_the_credit_window(client: Client) -> None:
    # Many READs in flight at once on one connection ([MS-SMB2] 3.2.4.1.5 credits): each answered with its own
    # MessageId and data, whatever order the responses come back in.
    data = os.urandom(32 * MAX_PAYLOAD)
    (client.root / "pipelined.bin").write_bytes(data)
    handle = client.open("pipelined.bin", access=FilePipePrinterAccessMask.GENERIC_READ)
    pending = []
    for index in range(32):
        request, receive = handle.read(index * MAX_PAYLOAD, MAX_PAYLOAD, send=False)
        sent = client.connection.send(request, client.session.session_id, client.tree.tree_connect_id)
        pending.append((index, sent, receive))
    for index, sent, receive in pending:
        assert receive(sent) == data[index * MAX_PAYLOAD:(index + 1) * MAX_PAYLOAD], f"read {index}"
    handle.close()


# 2.0.2 reads at most 64 KiB, below the bulk threshold: the dialects that can send a bulk READ.
_BULK_VARIANTS = [variant for variant in VARIANTS if variant[0] != "2.0.2"]


@pytest.mark.parametrize("variant", _BULK_VARIANTS, indirect=True,
                         ids=[f"{name}-{'signed' if signing else 'unsigned'}" for name, signing in _BULK_VARIANTS])
def test_pipelined_large_reads_of_two_files_end_with_a_short_read(client: Client) -> None:
    # Large READs of a signed connection pass through memory in reused buffers (protocol/bulk.py ReadBuffer):
    # many in flight, alternating between two files of different content, the last of each file short (it
    # ends at the end of the file); every response must carry its own range, correctly signed.
    chunk = 256 * 1024  # BULK_IO_BYTES, 4 credits: 14 READs in flight fit the client's credit window
    files = {name: os.urandom(6 * chunk + 4321) for name in ("first.bin", "second.bin")}
    handles = {}
    for name, data in files.items():
        (client.root / name).write_bytes(data)
        handles[name] = client.open(name, access=FilePipePrinterAccessMask.GENERIC_READ)
    pending = []
    for offset in range(0, 6 * chunk + 4321, chunk):
        for name, handle in handles.items():
            request, receive = handle.read(offset, chunk, send=False)
            sent = client.connection.send(request, client.session.session_id, client.tree.tree_connect_id)
            pending.append((name, offset, sent, receive))
    for name, offset, sent, receive in pending:
        assert receive(sent) == files[name][offset:offset + chunk], f"{name} at {offset}"
    for handle in handles.values():
        handle.close()


def test_echo_and_tree_connect_errors(client: Client, module_server: SmbServer) -> None:
    client.connection.echo(sid=client.session.session_id)
    with pytest.raises(SMBResponseException) as excinfo:
        TreeConnect(client.session, f"\\\\{module_server.host}\\no-such-share").connect()
    assert _status(excinfo.value) == NtStatus.STATUS_BAD_NETWORK_NAME
    ipc = TreeConnect(client.session, f"\\\\{module_server.host}\\IPC$")
    ipc.connect()
    ipc.disconnect()
    # A FileId the server never handed out: the Open lookup fails ([MS-SMB2] 3.3.5.12).
    bogus = Open(client.tree, client.name("x"))
    bogus.file_id = b"\x01" * 16
    bogus._connected = True
    with pytest.raises(SMBResponseException) as excinfo:
        bogus.read(0, 1)
    assert _status(excinfo.value) == NtStatus.STATUS_FILE_CLOSED
    bogus._connected = False


# --- compounds -----------------------------------------------------------------------------------------------

def test_related_compound_create_query_close(client: Client) -> None:
    (client.root / "compound.txt").write_bytes(b"0123456789abcdef")
    handle = Open(client.tree, client.name("compound.txt"))
    create_request, create_receive = handle.create(
        ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.GENERIC_READ,
        FileAttributes.FILE_ATTRIBUTE_NORMAL, SHARE_ALL, CreateDisposition.FILE_OPEN, 0, send=False)
    query = SMB2QueryInfoRequest()
    query["info_type"] = InfoType.SMB2_0_INFO_FILE
    query["file_info_class"] = FileInformationClass.FILE_STANDARD_INFORMATION
    query["output_buffer_length"] = 1024
    query["file_id"] = RELATED_FILE_ID
    close_request, close_receive = handle.close(get_attributes=True, send=False)
    close_request["file_id"] = RELATED_FILE_ID
    requests = client.connection.send_compound([create_request, query, close_request], client.session.session_id,
                                               client.tree.tree_connect_id, related=True)
    create_receive(requests[0])
    assert handle.create_action == 1 and handle.end_of_file == 16
    query_response = SMB2QueryInfoResponse()
    query_response.unpack(client.connection.receive(requests[1])["data"].get_value())
    standard = query_response.parse_buffer(FileStandardInformation)
    assert standard["end_of_file"].get_value() == 16
    assert standard["directory"].get_value() is False
    close_response = close_receive(requests[2])
    assert close_response is not None and close_response["end_of_file"].get_value() == 16

    # The file is really closed: it can be deleted by a new open with no sharing left over.
    doomed = client.open("compound.txt", options=CreateOptions.FILE_DELETE_ON_CLOSE)
    doomed.close()
    assert not (client.root / "compound.txt").exists()


def test_related_compound_create_write_read_close(client: Client) -> None:
    handle = Open(client.tree, client.name("cw.txt"))
    create_request, create_receive = handle.create(
        ImpersonationLevel.Impersonation, ALL_ACCESS, FileAttributes.FILE_ATTRIBUTE_NORMAL, SHARE_ALL,
        CreateDisposition.FILE_CREATE, 0, send=False)
    write_request, write_receive = handle.write(b"compound data", 0, send=False)
    read_request, read_receive = handle.read(0, 13, send=False)
    close_request, close_receive = handle.close(send=False)
    requests = client.connection.send_compound([create_request, write_request, read_request, close_request],
                                               client.session.session_id, client.tree.tree_connect_id,
                                               related=True)
    create_receive(requests[0])
    assert handle.create_action == 2
    assert write_receive(requests[1]) == 13
    assert read_receive(requests[2]) == b"compound data"
    close_receive(requests[3])
    assert (client.root / "cw.txt").read_bytes() == b"compound data"


def test_related_compound_after_a_failed_create_fails_alike(client: Client) -> None:
    # [MS-SMB2] 3.3.5.2.7.2: when the CREATE that provides the FileId fails, the related requests fail with the
    # same status (what Windows and Samba do).
    handle = Open(client.tree, client.name("absent.txt"))
    create_request, _ = handle.create(
        ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.GENERIC_READ,
        FileAttributes.FILE_ATTRIBUTE_NORMAL, SHARE_ALL, CreateDisposition.FILE_OPEN, 0, send=False)
    query = SMB2QueryInfoRequest()
    query["info_type"] = InfoType.SMB2_0_INFO_FILE
    query["file_info_class"] = FileInformationClass.FILE_STANDARD_INFORMATION
    query["output_buffer_length"] = 1024
    query["file_id"] = RELATED_FILE_ID
    close_request, _ = handle.close(send=False)
    close_request["file_id"] = RELATED_FILE_ID
    requests = client.connection.send_compound([create_request, query, close_request], client.session.session_id,
                                               client.tree.tree_connect_id, related=True)
    statuses = []
    for request in requests:
        try:
            client.connection.receive(request)
        except SMBResponseException as exc:
            statuses.append(_status(exc))
        else:
            statuses.append(0)
    assert statuses == [NtStatus.STATUS_OBJECT_NAME_NOT_FOUND] * 3


def test_related_compound_close_after_failed_set_info_still_closes(client: Client) -> None:
    # Only a failed CREATE cascades its status along the chain (Samba; Windows Server). A CLOSE after a failed
    # SET_INFO on a valid FileId must close the open: the client will never send another CLOSE for it.
    (client.root / "full").mkdir()
    (client.root / "full" / "child").write_bytes(b"c")
    handle = Open(client.tree, client.name("full"))
    create_request, create_receive = handle.create(
        ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.DELETE,
        FileAttributes.FILE_ATTRIBUTE_DIRECTORY, SHARE_ALL, CreateDisposition.FILE_OPEN,
        CreateOptions.FILE_DIRECTORY_FILE, send=False)
    disposition = FileDispositionInformation()
    disposition["delete_pending"] = True
    set_info = SMB2SetInfoRequest()
    set_info["info_type"] = InfoType.SMB2_0_INFO_FILE
    set_info["file_info_class"] = FileInformationClass.FILE_DISPOSITION_INFORMATION
    set_info["file_id"] = RELATED_FILE_ID
    set_info["buffer"] = disposition
    close_request, close_receive = handle.close(send=False)
    close_request["file_id"] = RELATED_FILE_ID
    requests = client.connection.send_compound([create_request, set_info, close_request],
                                               client.session.session_id, client.tree.tree_connect_id,
                                               related=True)
    create_receive(requests[0])
    statuses = []
    for request, receive in ((requests[1], client.connection.receive), (requests[2], close_receive)):
        try:
            receive(request)
        except SMBResponseException as exc:
            statuses.append(_status(exc))
        else:
            statuses.append(0)
    assert statuses == [NtStatus.STATUS_DIRECTORY_NOT_EMPTY, 0]

    # With the first open really closed, emptying the directory and deleting it removes it at once.
    (client.root / "full" / "child").unlink()
    doomed = client.open_dir("full", options=CreateOptions.FILE_DELETE_ON_CLOSE)
    doomed.close()
    assert not (client.root / "full").exists()


def test_unrelated_compound_of_two_creates(client: Client) -> None:
    (client.root / "one").write_bytes(b"1")
    (client.root / "two").write_bytes(b"22")
    first, second = Open(client.tree, client.name("one")), Open(client.tree, client.name("two"))
    messages, receivers = [], []
    for handle in (first, second):
        message, receive = handle.create(
            ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.GENERIC_READ,
            FileAttributes.FILE_ATTRIBUTE_NORMAL, SHARE_ALL, CreateDisposition.FILE_OPEN, 0, send=False)
        messages.append(message)
        receivers.append(receive)
    requests = client.connection.send_compound(messages, client.session.session_id, client.tree.tree_connect_id)
    for receive, request in zip(receivers, requests, strict=True):
        receive(request)
    assert first.end_of_file == 1 and second.end_of_file == 2
    assert first.file_id != second.file_id
    assert first.read(0, 1) == b"1" and second.read(0, 2) == b"22"
    first.close()
    second.close()


# --- the high-level smbclient module ------------------------------------------------------------------------

@pytest.mark.parametrize("signing", [False, True], ids=["unsigned", "signed"])
def test_high_level_smbclient_module(module_server: SmbServer, signing: bool) -> None:
    cache: dict[str, Connection] = {}
    host, port = module_server.host, module_server.port
    work = f"hl{next(_work_counter)}"
    local = module_server.share_path / work
    root = f"\\\\{host}\\{module_server.share}\\{work}"
    options = {"port": port, "connection_cache": cache}
    try:
        session = smbclient.register_session(host, module_server.user, module_server.password, port=port,
                                             connection_cache=cache, require_signing=signing)
        assert session.signing_required == signing
        smbclient.makedirs(f"{root}\\a\\b\\c", **options)
        assert (local / "a" / "b" / "c").is_dir()
        smbclient.makedirs(f"{root}\\a\\b\\c", exist_ok=True, **options)

        payload = os.urandom(300_000)
        with smbclient.open_file(f"{root}\\a\\data.bin", mode="wb", **options) as file:
            file.write(payload)
        assert (local / "a" / "data.bin").read_bytes() == payload
        with smbclient.open_file(f"{root}\\a\\data.bin", mode="rb", **options) as file:
            assert file.read() == payload
        with smbclient.open_file(f"{root}\\a\\text.txt", mode="w", **options) as file:
            file.write("line one\nline two\n")
        with smbclient.open_file(f"{root}\\a\\text.txt", mode="a", **options) as file:
            file.write("line three\n")
        with smbclient.open_file(f"{root}\\a\\text.txt", mode="r", **options) as file:
            assert file.read().splitlines() == ["line one", "line two", "line three"]

        assert sorted(smbclient.listdir(f"{root}\\a", **options)) == ["b", "data.bin", "text.txt"]
        assert smbclient.listdir(f"{root}\\a", search_pattern="*.bin", **options) == ["data.bin"]

        stat = smbclient.stat(f"{root}\\a\\data.bin", **options)
        local_stat = (local / "a" / "data.bin").stat()
        assert stat.st_size == len(payload)
        assert abs(stat.st_mtime - local_stat.st_mtime) < 0.001
        assert not smbclient.path.isdir(f"{root}\\a\\data.bin", **options)
        assert smbclient.path.isdir(f"{root}\\a\\b", **options)
        assert not smbclient.path.exists(f"{root}\\a\\nothing", **options)

        smbclient.rename(f"{root}\\a\\data.bin", f"{root}\\a\\b\\moved.bin", **options)
        assert (local / "a" / "b" / "moved.bin").read_bytes() == payload
        with pytest.raises(SMBOSError) as missing:
            smbclient.stat(f"{root}\\a\\data.bin", **options)
        assert missing.value.ntstatus == NtStatus.STATUS_OBJECT_NAME_NOT_FOUND
        assert missing.value.errno == errno.ENOENT

        smbclient.remove(f"{root}\\a\\b\\moved.bin", **options)
        assert not (local / "a" / "b" / "moved.bin").exists()
        with pytest.raises(SMBOSError) as not_empty:
            smbclient.rmdir(f"{root}\\a\\b", **options)  # still holds c
        # Refused when the delete disposition is set ([MS-FSA] 2.1.5.15.3), as Samba 4.17 answers.
        assert not_empty.value.ntstatus == NtStatus.STATUS_DIRECTORY_NOT_EMPTY
        assert not_empty.value.errno == errno.ENOTEMPTY
        smbclient.rmdir(f"{root}\\a\\b\\c", **options)
        smbclient.rmdir(f"{root}\\a\\b", **options)
        smbclient.remove(f"{root}\\a\\text.txt", **options)
        smbclient.rmdir(f"{root}\\a", **options)
        assert list(local.iterdir()) == []

        walked = [(top, sorted(dirs), sorted(files)) for top, dirs, files in smbclient.walk(root, **options)]
        assert walked == [(root, [], [])]
    finally:
        smbclient.reset_connection_cache(fail_on_error=False, connection_cache=cache)
