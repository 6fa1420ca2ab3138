"""Appending: WRITE at the append offset 0xFFFFFFFFFFFFFFFF and append-only handles (FILE_APPEND_DATA without
FILE_WRITE_DATA) against the daemon ([MS-SMB2] 2.2.21, 3.3.5.13; [MS-FSA] 2.1.5.4).

Three behaviours exist, and the tests say which one smbsrv has:
- [MS-FSA] 2.1.5.4: a negative ByteOffset (the all-ones offset) writes at the end of the stream; Windows
  (ZwWriteFile) also sends every write of an append-only handle to the end, whatever offset it names.
- Samba 4.17 answers the all-ones offset with STATUS_INVALID_PARAMETER and lets an append-only handle write
  at any offset, overwriting data (checked in the same setup).
- smbsrv follows the spec for the all-ones offset and Samba for the rest: an append-only Windows handle writes
  at the offset it names (samba.tests.smb3unix test_append depends on it). A POSIX handle without
  FILE_WRITE_DATA is in append mode (O_APPEND): only the all-ones offset is accepted, any other offset is
  STATUS_INVALID_PARAMETER, as Samba's POSIX handles answer in that same test.
Opening with FILE_APPEND_DATA alone succeeds in both servers.
"""

from __future__ import annotations

import struct

import smbclient

from tests import builders as b
from tests.conftest import SmbServer
from tests.integration import posix_helpers as p

APPEND_OFFSET = 0xFFFFFFFFFFFFFFFF


def _content(client: b.Client, name: str) -> bytes:
    file_id = client.open(name, desired_access=b.GENERIC_READ)
    try:
        response = client.read(file_id, 0, 65536)
        assert response.status in (b.STATUS_SUCCESS, b.STATUS_END_OF_FILE), b.status_name(response.status)
        return b.read_data(response) if response.status == b.STATUS_SUCCESS else b""
    finally:
        client.close_file(file_id)


def _written(response: b.Response, length: int) -> None:
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
    assert struct.unpack_from("<I", response.body, 4)[0] == length  # Count ([MS-SMB2] 2.2.22)


def test_append_offset_writes_at_the_end(smb_server: SmbServer) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        file_id = client.open("log.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                              disposition=b.FILE_OVERWRITE_IF)
        _written(client.write(file_id, 0, b"first"), 5)
        _written(client.write(file_id, APPEND_OFFSET, b"-second"), 7)
        _written(client.write(file_id, APPEND_OFFSET, b"-third"), 6)
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert _content(client, "log.txt") == b"first-second-third"


def test_append_only_handle(smb_server: SmbServer) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        client.write_file("journal.txt", b"0123456789")
        response = client.create("journal.txt", desired_access=b.FILE_APPEND_DATA | b.FILE_READ_ATTRIBUTES
                                 | b.SYNCHRONIZE)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        file_id = b.create_file_id(response.body)
        _written(client.write(file_id, APPEND_OFFSET, b"+a"), 2)  # at the end: 12 bytes now
        _written(client.write(file_id, 12, b"+b"), 2)  # exactly at the end
        # Anywhere else the data goes where the client says, as Samba 4.17 does (Windows would append):
        # samba.tests.smb3unix test_append relies on it (docs/access.md).
        _written(client.write(file_id, 0, b"X"), 1)
        # No FILE_READ_DATA: reading is refused, as everywhere.
        assert client.read(file_id, 0, 10).status == b.STATUS_ACCESS_DENIED
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert _content(client, "journal.txt") == b"X123456789+a+b"
    assert (smb_server.share_path / "journal.txt").read_bytes() == b"X123456789+a+b"


def test_smbclient_module_append_mode(smb_server: SmbServer) -> None:
    """smbprotocol's high-level open_file(mode="a") opens with FILE_APPEND_DATA and writes at the end of the
    file; a second append adds after the first."""
    unc = rf"\\{smb_server.host}\{smb_server.share}\appended.txt"
    kwargs = {"username": smb_server.user, "password": smb_server.password, "port": smb_server.port}
    try:
        with smbclient.open_file(unc, mode="w", **kwargs) as handle:
            handle.write("start")
        for piece in ("-one", "-two"):
            with smbclient.open_file(unc, mode="a", **kwargs) as handle:
                handle.write(piece)
        with smbclient.open_file(unc, mode="r", **kwargs) as handle:
            assert handle.read() == "start-one-two"
    finally:
        smbclient.reset_connection_cache()


def test_smb3unix_append_behaviour(smb_server: SmbServer) -> None:
    """Samba's samba.tests.smb3unix test_append, step by step: a POSIX handle and a Windows handle, both with
    FILE_APPEND_DATA and no FILE_WRITE_DATA, on one file."""
    server = smb_server
    with p.connect(server.host, server.port, server.user, server.password, "share", posix=True) as pc, \
            b.connect(server.host, server.port, server.user, server.password) as wc:
        posix_handle = p.posix_open(pc, "test_append", 0o644, desired_access=b.FILE_APPEND_DATA | b.FILE_READ_DATA,
                                    disposition=b.FILE_CREATE, share_access=b.FILE_SHARE_READ | b.FILE_SHARE_WRITE)
        response = wc.create("test_append", desired_access=b.FILE_APPEND_DATA,
                             share_access=b.FILE_SHARE_READ | b.FILE_SHARE_WRITE)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        windows_handle = b.create_file_id(response.body)
        _written(wc.write(windows_handle, 0, b"hello"), 5)
        _written(wc.write(windows_handle, 0, b"h"), 1)
        assert pc.write(posix_handle, 0, b"world").status == b.STATUS_INVALID_PARAMETER
        _written(pc.write(posix_handle, APPEND_OFFSET, b" world"), 6)
        assert (server.share_path / "test_append").stat().st_size == 11
        response = pc.read(posix_handle, 0, 11)
        assert response.status == b.STATUS_SUCCESS and b.read_data(response) == b"hello world"
        pc.close_file(posix_handle)
        wc.close_file(windows_handle)
