"""impacket's SMBConnection against the real daemon, on every dialect it speaks, with signing desired and required.

impacket builds its requests independently of Samba and smbprotocol, so it checks the same commands from a third
angle: NEGOTIATE ([MS-SMB2] 2.2.3, and the SMB1 multi-protocol negotiate upgraded to SMB2 per 3.3.5.3.1),
SESSION_SETUP with NTLMSSP, share enumeration (srvsvc NetrShareEnum over IPC$, [MS-SRVS] 3.1.4.8), QUERY_DIRECTORY,
CREATE/READ/WRITE/CLOSE, SET_INFO rename and delete, and QUERY_INFO ([MS-FSCC] 2.4.2, 2.4.7, 2.4.41).
When the server requires signing, impacket signs every request and checks every response ([MS-SMB2] 3.1.4.1).
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from impacket import nt_errors, smb3
from impacket.smb3structs import (
    FILE_ATTRIBUTE_ARCHIVE,
    FILE_ATTRIBUTE_DIRECTORY,
    FILE_CREATE,
    FILE_NON_DIRECTORY_FILE,
    FILE_OPEN,
    FILE_OVERWRITE_IF,
    FILE_READ_ATTRIBUTES,
    FILE_READ_DATA,
    FILE_SHARE_READ,
    FILE_SHARE_WRITE,
    FILE_WRITE_DATA,
    GENERIC_READ,
    SMB2_DIALECT_002,
    SMB2_DIALECT_21,
    SMB2_DIALECT_30,
    SMB2_DIALECT_302,
    SMB2_DIALECT_311,
    SMB2_FILE_ALL_INFO,
    SMB2_FILE_BASIC_INFO,
)
from impacket.smbconnection import SessionError, SMBConnection

from tests.conftest import SmbServer, assert_no_server_bugs, serve_as_test_account, start_server, stop_server

# None: impacket's default, an SMB1 NEGOTIATE listing "SMB 2.002" and "SMB 2.???" that the server must answer
# with an SMB2 NEGOTIATE response; impacket then negotiates again with every SMB2 dialect.
DIALECTS: dict[str, int | None] = {
    "2.0.2": SMB2_DIALECT_002,
    "2.1": SMB2_DIALECT_21,
    "3.0": SMB2_DIALECT_30,
    "3.0.2": SMB2_DIALECT_302,
    "3.1.1": SMB2_DIALECT_311,
    "multi-protocol": None,
}
SIGNING_MODES = ("desired", "required")
STYPE_DISKTREE = 0x0
STYPE_IPC = 0x3
STYPE_SPECIAL = 0x80000000
_FILETIME_EPOCH_OFFSET = 116444736000000000
_work_counter = itertools.count()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SmbServer]]:
    """One server per signing mode for the whole module."""
    started: dict[str, SmbServer] = {}
    with tempfile.TemporaryDirectory(prefix="smbsrv-impacket-") as tmp:
        try:
            for mode in SIGNING_MODES:
                share = Path(tmp) / f"share-{mode}"
                share.mkdir()
                started[mode] = start_server(share, Path(tmp) / f"server-{mode}.log", "--signing", mode)
            yield started
        finally:
            for server in started.values():
                stop_server(server.process)
        for server in started.values():
            assert_no_server_bugs(server)


@pytest.fixture(params=[(d, s) for d in DIALECTS for s in SIGNING_MODES],
                ids=[f"{d}-{s}" for d in DIALECTS for s in SIGNING_MODES])
def variant(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def server(servers: dict[str, SmbServer], variant: tuple[str, str]) -> SmbServer:
    return servers[variant[1]]


def connect(server: SmbServer, dialect_name: str) -> SMBConnection:
    dialect = DIALECTS[dialect_name]
    if dialect == SMB2_DIALECT_302:
        # SMBConnection does not accept 3.0.2 as preferredDialect; its SMB3 engine does.
        engine = smb3.SMB3(server.host, server.host, sess_port=server.port, timeout=30, preferredDialect=dialect)
        connection = SMBConnection(existingConnection=engine)
    else:
        connection = SMBConnection(server.host, server.host, sess_port=server.port, timeout=30,
                                   preferredDialect=dialect)
    connection.login(server.user, server.password)
    return connection


@pytest.fixture
def conn(server: SmbServer, variant: tuple[str, str]) -> Iterator[SMBConnection]:
    connection = connect(server, variant[0])
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def work(server: SmbServer) -> tuple[str, Path]:
    """A fresh directory for one test: (its SMB name, its path on the server side)."""
    name = f"w{next(_work_counter)}"
    path = server.share_path / name
    path.mkdir()
    serve_as_test_account(path)
    return name, path


def error_code(excinfo: pytest.ExceptionInfo[SessionError]) -> int:
    return int(excinfo.value.getErrorCode())


def test_login_negotiates_the_dialect_and_signing(conn: SMBConnection, variant: tuple[str, str]) -> None:
    dialect_name, mode = variant
    expected = DIALECTS[dialect_name] or SMB2_DIALECT_311
    assert conn.getDialect() == expected
    assert not conn.isGuestSession()
    # impacket always signs 3.1.1 sessions; on older dialects it signs when the server requires it.
    signs = mode == "required" or expected == SMB2_DIALECT_311
    assert conn.isSigningRequired() == signs
    engine = conn.getSMBServer()
    assert engine._Session["SigningActivated"] == signs


def test_wrong_password_is_refused(server: SmbServer, variant: tuple[str, str]) -> None:
    dialect = DIALECTS[variant[0]]
    if dialect == SMB2_DIALECT_302:
        connection = SMBConnection(existingConnection=smb3.SMB3(server.host, server.host, sess_port=server.port,
                                                                timeout=30, preferredDialect=dialect))
    else:
        connection = SMBConnection(server.host, server.host, sess_port=server.port, timeout=30,
                                   preferredDialect=dialect)
    try:
        with pytest.raises(SessionError) as excinfo:
            connection.login(server.user, "not-the-password")
        assert error_code(excinfo) == nt_errors.STATUS_LOGON_FAILURE
    finally:
        connection.close()


def test_list_shares(conn: SMBConnection, server: SmbServer) -> None:
    shares = {entry["shi1_netname"].rstrip("\x00"): entry for entry in conn.listShares()}
    assert server.share in shares and "IPC$" in shares
    assert shares[server.share]["shi1_type"] & ~STYPE_SPECIAL == STYPE_DISKTREE
    assert shares["IPC$"]["shi1_type"] & ~STYPE_SPECIAL == STYPE_IPC


def test_list_path(conn: SMBConnection, server: SmbServer, work: tuple[str, Path]) -> None:
    name, path = work
    (path / "alpha.txt").write_bytes(b"a" * 100)
    (path / "beta.bin").write_bytes(b"")
    (path / "gamma").mkdir()
    mtime = 1_600_000_000
    os.utime(path / "alpha.txt", (mtime, mtime))

    entries = {entry.get_longname(): entry for entry in conn.listPath(server.share, f"{name}\\*")}
    assert set(entries) == {".", "..", "alpha.txt", "beta.bin", "gamma"}
    assert entries["alpha.txt"].get_filesize() == 100
    assert entries["beta.bin"].get_filesize() == 0
    assert entries["gamma"].is_directory() and not entries["alpha.txt"].is_directory()
    # The raw FILETIME: impacket's own epoch conversion drops the low 20 bits.
    assert entries["alpha.txt"].get_wtime() == mtime * 10_000_000 + _FILETIME_EPOCH_OFFSET

    only_txt = [entry.get_longname() for entry in conn.listPath(server.share, f"{name}\\*.txt")]
    assert only_txt == ["alpha.txt"]

    with pytest.raises(SessionError) as excinfo:
        conn.listPath(server.share, f"{name}\\nothing*")
    assert error_code(excinfo) == nt_errors.STATUS_NO_SUCH_FILE


def test_put_and_get_file(conn: SMBConnection, server: SmbServer, work: tuple[str, Path]) -> None:
    name, path = work
    # Two WRITEs at impacket's 1 MiB limit (17 at 64 KiB on 2.0.2). Kept small: impacket signs 3.x requests with a
    # pure-Python AES-CMAC, about a second per MiB.
    data = os.urandom(1024 * 1024 + 77)
    conn.putFile(server.share, f"{name}\\blob.bin", io.BytesIO(data).read)
    assert (path / "blob.bin").read_bytes() == data

    received = io.BytesIO()
    conn.getFile(server.share, f"{name}\\blob.bin", received.write)
    assert received.getvalue() == data

    with pytest.raises(SessionError) as excinfo:
        conn.getFile(server.share, f"{name}\\missing.bin", io.BytesIO().write)
    assert error_code(excinfo) == nt_errors.STATUS_OBJECT_NAME_NOT_FOUND


def test_directories_rename_and_delete(conn: SMBConnection, server: SmbServer, work: tuple[str, Path]) -> None:
    name, path = work
    conn.createDirectory(server.share, f"{name}\\made")
    assert (path / "made").is_dir()
    with pytest.raises(SessionError) as excinfo:
        conn.createDirectory(server.share, f"{name}\\made")
    assert error_code(excinfo) == nt_errors.STATUS_OBJECT_NAME_COLLISION

    conn.putFile(server.share, f"{name}\\made\\file.txt", io.BytesIO(b"text").read)
    with pytest.raises(SessionError) as excinfo:
        conn.deleteDirectory(server.share, f"{name}\\made")
    assert error_code(excinfo) == nt_errors.STATUS_DIRECTORY_NOT_EMPTY
    assert (path / "made" / "file.txt").exists()

    conn.rename(server.share, f"{name}\\made\\file.txt", f"{name}\\made\\renamed.txt")
    assert (path / "made" / "renamed.txt").read_bytes() == b"text"
    assert not (path / "made" / "file.txt").exists()
    conn.rename(server.share, f"{name}\\made", f"{name}\\moved")
    assert (path / "moved" / "renamed.txt").read_bytes() == b"text"

    conn.deleteFile(server.share, f"{name}\\moved\\renamed.txt")
    assert not (path / "moved" / "renamed.txt").exists()
    conn.deleteDirectory(server.share, f"{name}\\moved")
    assert not (path / "moved").exists()

    with pytest.raises(SessionError) as excinfo:
        conn.deleteFile(server.share, f"{name}\\never-there.txt")
    assert error_code(excinfo) == nt_errors.STATUS_OBJECT_NAME_NOT_FOUND
    assert list(path.iterdir()) == []


def test_open_read_write_and_query_info(conn: SMBConnection, server: SmbServer, work: tuple[str, Path]) -> None:
    name, path = work
    tree = conn.connectTree(server.share)
    try:
        fid = conn.openFile(tree, f"{name}\\rw.bin", desiredAccess=FILE_READ_DATA | FILE_WRITE_DATA | GENERIC_READ,
                            shareMode=FILE_SHARE_READ | FILE_SHARE_WRITE, creationOption=FILE_NON_DIRECTORY_FILE,
                            creationDisposition=FILE_CREATE)
        try:
            assert conn.writeFile(tree, fid, b"0123456789", 0) == 10
            assert conn.writeFile(tree, fid, b"ABC", 20) == 3  # leaves a hole of zeros
            assert conn.readFile(tree, fid, 0, 23) == b"0123456789" + b"\x00" * 10 + b"ABC"
            assert conn.readFile(tree, fid, 5, 3) == b"567"

            standard = conn.queryInfo(tree, fid)
            assert standard["EndOfFile"] == 23
            assert standard["Directory"] == 0

            basic = conn.queryInfo(tree, fid, fileInfoClass=SMB2_FILE_BASIC_INFO)
            assert len(basic) == 40  # [MS-FSCC] 2.4.7
            attributes = struct.unpack_from("<I", basic, 32)[0]
            assert attributes & FILE_ATTRIBUTE_ARCHIVE and not attributes & FILE_ATTRIBUTE_DIRECTORY

            everything = conn.queryInfo(tree, fid, fileInfoClass=SMB2_FILE_ALL_INFO)
            # FileAllInformation: Basic(40) Standard(24) Internal(8) Ea(4) Access(4) Position(8) Mode(4)
            # Alignment(4) then FileNameLength(4) and the name ([MS-FSCC] 2.4.2).
            assert everything[:40] == basic
            end_of_file = struct.unpack_from("<q", everything, 48)[0]
            assert end_of_file == 23
            name_length = struct.unpack_from("<I", everything, 96)[0]
            reported = everything[100:100 + name_length].decode("utf-16-le")
            assert reported.lower().endswith(f"{name}\\rw.bin".lower())
            # Within 2 s of a handle's first write its LastWriteTime stays where it was (Windows' and Samba's
            # delayed update, smb2.timestamps.delayed-*): the creation's, not the kernel's mtime of the WRITE.
            creation_ticks, write_ticks = struct.unpack_from("<q", basic, 0)[0], struct.unpack_from("<q", basic, 16)[0]
            assert write_ticks == creation_ticks
        finally:
            conn.closeFile(tree, fid)
        assert (path / "rw.bin").read_bytes() == b"0123456789" + b"\x00" * 10 + b"ABC"
        # The close settles it: what the file system holds is what a new handle reports.
        fid = conn.openFile(tree, f"{name}\\rw.bin", desiredAccess=FILE_READ_ATTRIBUTES)
        try:
            write_ticks = struct.unpack_from("<q", conn.queryInfo(tree, fid, fileInfoClass=SMB2_FILE_BASIC_INFO), 16)[0]
        finally:
            conn.closeFile(tree, fid)
        assert write_ticks > creation_ticks
        mtime_ns = (path / "rw.bin").stat().st_mtime_ns
        assert write_ticks == mtime_ns // 100 + _FILETIME_EPOCH_OFFSET

        fid = conn.openFile(tree, f"{name}\\rw.bin", desiredAccess=FILE_READ_DATA | FILE_WRITE_DATA,
                            creationDisposition=FILE_OVERWRITE_IF)
        try:
            assert conn.queryInfo(tree, fid)["EndOfFile"] == 0
            # impacket keeps reading until it has the length it asked for; 64 KiB fits one request everywhere.
            big = os.urandom(65536)
            conn.writeFile(tree, fid, big, 0)
            assert conn.readFile(tree, fid, 0, 65536) == big
        finally:
            conn.closeFile(tree, fid)

        with pytest.raises(SessionError) as excinfo:
            conn.openFile(tree, f"{name}\\absent.bin", creationDisposition=FILE_OPEN)
        assert error_code(excinfo) == nt_errors.STATUS_OBJECT_NAME_NOT_FOUND
    finally:
        conn.disconnectTree(tree)


def test_two_sessions_on_separate_connections_see_each_other(server: SmbServer, variant: tuple[str, str],
                                                            work: tuple[str, Path]) -> None:
    name, _ = work
    first, second = connect(server, variant[0]), connect(server, variant[0])
    try:
        first.putFile(server.share, f"{name}\\shared.txt", io.BytesIO(b"from first").read)
        received = io.BytesIO()
        second.getFile(server.share, f"{name}\\shared.txt", received.write)
        assert received.getvalue() == b"from first"
    finally:
        first.close()
        second.close()
