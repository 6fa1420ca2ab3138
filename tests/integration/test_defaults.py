"""The secure defaults of a server started with no options: signing required, guests refused, SMB1 refused.

Real clients sign when the server requires it (smbclient, smbprotocol); an unsigned request on such a session
is refused, and a guest logon (which has no key to sign with) is refused too.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer, assert_no_server_bugs, start_server, stop_server


@pytest.fixture
def default_server(share_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    server = start_server(share_dir, tmp_path / "server.log", signing=None)
    try:
        yield server
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


def test_negotiate_says_signing_required(default_server: SmbServer) -> None:
    client = b.Client(default_server.host, default_server.port).connect()
    try:
        response = client.negotiate(b.DIALECTS_ALL)
        assert response.status == b.STATUS_SUCCESS
        (security_mode,) = struct.unpack_from("<H", response.body, 2)
        assert security_mode & 0x0002, "SMB2_NEGOTIATE_SIGNING_REQUIRED must be set by default"
    finally:
        client.close()


def test_unsigned_request_is_refused(default_server: SmbServer) -> None:
    client = b.connect(default_server.host, default_server.port, USER, PASSWORD, share=None, sign=False)
    try:
        response = client.request(b.SMB2_TREE_CONNECT,
                                  b.tree_connect_body(f"\\\\127.0.0.1\\{default_server.share}"), sign=False)
        assert response.status == b.STATUS_ACCESS_DENIED
    finally:
        client.close()


def test_smbclient_signs_and_works(default_server: SmbServer, tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(b"signed by default" * 1000)
    default_server.smbclient(f'put "{source}" data.bin; get data.bin "{tmp_path / "back.bin"}"')
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()


def test_guest_logon_is_refused(default_server: SmbServer) -> None:
    result = default_server.smbclient("ls", user="%", check=False)
    assert result.returncode != 0
    assert "NT_STATUS_LOGON_FAILURE" in result.stdout + result.stderr


def test_smb1_only_negotiate_is_dropped(default_server: SmbServer) -> None:
    """An SMB1 NEGOTIATE that offers no SMB2 dialect ends the connection: SMB1 is never served."""
    dialects = b"\x02NT LM 0.12\x00"
    smb1 = b"\xffSMB" + bytes([0x72]) + bytes(27) + b"\x00" + struct.pack("<H", len(dialects)) + dialects
    with socket.create_connection((default_server.host, default_server.port), timeout=5) as sock:
        sock.sendall(struct.pack(">I", len(smb1)) + smb1)
        assert sock.recv(4) == b""
