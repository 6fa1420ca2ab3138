"""A share with `encryption = "required"` ([MS-SMB2] 3.3.5.7 TREE_CONNECT with EncryptData, 3.3.5.2.9/3.3.4.1.4
encrypted messages, 2.2.41 SMB2 TRANSFORM_HEADER).

A client that can encrypt (smbprotocol, Debian's smbclient) gets SMB2_SHAREFLAG_ENCRYPT_DATA and works, every
message on the wire after the tree connect being a transform ("\\xfdSMB"); a client that negotiated no cipher
is refused at TREE_CONNECT with STATUS_ACCESS_DENIED on every dialect, as Samba 4.17 (`smb encrypt =
required`) answers. The ordinary share next to it stays usable without encryption.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from smbprotocol import Dialects
from smbprotocol import connection as smbprotocol_connection
from smbprotocol.connection import Connection
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer, assert_no_server_bugs, start_server, stop_server

TRANSFORM = b"\xfdSMB"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmbServer]:
    plain, secret = tmp_path / "share", tmp_path / "secret"
    for path in (plain, secret):
        path.mkdir()
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[server]\nusers_file = "{tmp_path / "users"}"\n\n[shares.share]\npath = "{plain}"\n\n'
                      f'[shares.secret]\npath = "{secret}"\nencryption = "required"\n')
    started = start_server(plain, tmp_path / "server.log", config=config)
    started.extra_shares["secret"] = secret
    try:
        yield started
    finally:
        stop_server(started.process)
    assert_no_server_bugs(started)


@pytest.mark.parametrize("dialects", [(0x0311,), (0x0302,), (0x0300,), (0x0202, 0x0210)],
                         ids=["3.1.1", "3.0.2", "3.0", "2.x"])
def test_client_without_cipher_is_refused(server: SmbServer, dialects: tuple[int, ...]) -> None:
    """The raw client offers no encryption context/capability, so no cipher is negotiated."""
    with b.Client(server.host, server.port).connect() as client:
        assert client.negotiate(dialects).status == b.STATUS_SUCCESS
        assert client.session_setup(USER, PASSWORD) == b.STATUS_SUCCESS
        client.sign_requests = True
        assert client.tree_connect("secret").status == b.STATUS_ACCESS_DENIED
        assert client.tree_connect("share").status == b.STATUS_SUCCESS


@pytest.mark.parametrize("dialect", [Dialects.SMB_3_1_1, Dialects.SMB_3_0_2, Dialects.SMB_3_0_0],
                         ids=["3.1.1", "3.0.2", "3.0"])
def test_smbprotocol_reads_and_writes_encrypted(server: SmbServer, dialect: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[bytes] = []

    class RecordingTcp(smbprotocol_connection.Tcp):  # type: ignore[misc]
        """smbprotocol's own transport, noting the first four bytes of every message it receives."""

        def recv(self, timeout: float) -> bytes:
            message = super().recv(timeout)
            if message:
                received.append(bytes(message[:4]))
            return message  # type: ignore[no-any-return]

    monkeypatch.setattr(smbprotocol_connection, "Tcp", RecordingTcp)
    connection = Connection(uuid.uuid4(), server.host, server.port)
    connection.connect(dialect)
    try:
        session = Session(connection, USER, PASSWORD, auth_protocol="ntlm")
        session.connect()
        tree = TreeConnect(session, rf"\\{server.host}\secret")
        tree.connect()
        assert tree.encrypt_data  # smbprotocol sets it from SMB2_SHAREFLAG_ENCRYPT_DATA in the response
        before = len(received)
        handle = Open(tree, "sealed.bin")
        handle.create(ImpersonationLevel.Impersonation,
                      FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE, 0, 7,
                      CreateDisposition.FILE_OVERWRITE_IF, CreateOptions.FILE_NON_DIRECTORY_FILE)
        data = bytes(range(256)) * 300
        assert handle.write(data, 0) == len(data)
        assert handle.read(0, len(data)) == data
        # A bulk READ (at least protocol/bulk.py's BULK_IO_BYTES) sealed: read into memory, not sent with
        # sendfile, not from the signed READs' buffer pool; and one that ends at the end of the file.
        bulk = os.urandom(1024 * 1024 + 1234)
        assert handle.write(bulk, len(data)) == len(bulk)
        assert handle.read(len(data), len(bulk)) == bulk
        assert handle.read(len(data) + 1024 * 1024, 1024 * 1024) == bulk[1024 * 1024:]
        handle.close()
        data += bulk
        # Everything the server sent for the share's requests was a transform, never a plain SMB2 message.
        after = received[before:]
        assert after and all(prefix == TRANSFORM for prefix in after), after
    finally:
        connection.disconnect(True)
    assert (server.extra_shares["secret"] / "sealed.bin").read_bytes() == data


def test_smbclient_encrypts_for_the_share(server: SmbServer, tmp_path: Path) -> None:
    """smbclient sees SMB2_SHAREFLAG_ENCRYPT_DATA and encrypts by itself (also when told
    `client smb encrypt = off`, against Samba 4.17 as well), so only the raw client above shows the refusal."""
    source = tmp_path / "source.bin"
    source.write_bytes(b"sealed with smbclient\n" * 500)
    server.smbclient(f'put "{source}" client.bin; get client.bin "{tmp_path / "back.bin"}"', share="secret")
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
    assert (server.extra_shares["secret"] / "client.bin").read_bytes() == source.read_bytes()
