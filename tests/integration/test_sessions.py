"""Sessions against the real daemon: re-authentication, PreviousSessionId, and real guest logons
([MS-SMB2] 3.3.5.5, 3.3.5.5.3, 3.3.5.7).

Each expectation was checked against Samba 4.17 in the same setup (a private smbd, NTLMv2 from pyspnego, the
raw client of tests/builders.py); where Samba and the spec part ways the comment says which one is followed.
"""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import spnego

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer, assert_no_server_bugs, start_server, stop_server

SMB2_SESSION_FLAG_IS_GUEST = 0x0001  # SessionFlags of the SESSION_SETUP response ([MS-SMB2] 2.2.6)


def _logon(client: b.Client, user: str, password: str, previous_session_id: int = 0,
           session_id: int = 0, sign: bool = False) -> b.Response:
    """Every leg of an NTLMv2 exchange on `session_id` (0: a new session); the last response."""
    auth = spnego.client(user, password, protocol="ntlm")
    token = auth.step() or b""
    while True:
        response = client.request(b.SMB2_SESSION_SETUP, b.session_setup_body(token, previous_session_id=
                                                                              previous_session_id),
                                  session_id=session_id, sign=sign)
        session_id = response.header.session_id
        if response.status != b.STATUS_MORE_PROCESSING_REQUIRED:
            return response
        token = auth.step(b._security_buffer(response.body)) or b""


def _unchecked(client: b.Client) -> b.Client:
    """Stop verifying response signatures: a deleted session's errors are not signed with its key."""
    client.signer = None
    client.sign_requests = False
    return client


# -- re-authentication ------------------------------------------------------------------------------------------

def test_unsigned_reauthentication_where_signing_is_not_required(smb_server: SmbServer) -> None:
    """[MS-SMB2] 3.3.5.2.4: an unsigned request is refused only where the session requires signing. smbtorture's
    smb2.session.reauth* re-authenticate unsigned on a server that only desires signing; Samba 4.17 accepts."""
    with b.connect(smb_server.host, smb_server.port, USER, PASSWORD) as client:
        response = _logon(client, USER, PASSWORD, session_id=client.session_id)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert response.header.session_id == client.session_id


def test_unsigned_reauthentication_where_signing_is_required(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    server = start_server(share, tmp_path / "server.log", signing="required")
    try:
        with b.connect(server.host, server.port, USER, PASSWORD, sign=True) as client:
            response = _logon(client, USER, PASSWORD, session_id=client.session_id, sign=False)
            assert response.status == b.STATUS_ACCESS_DENIED, b.status_name(response.status)
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


def test_reauthentication_keeps_session_tree_and_handles(smb_server: SmbServer) -> None:
    """[MS-SMB2] 3.3.5.5.3: a SESSION_SETUP on a valid session re-authenticates it; the SessionId, its trees
    and its opens stay. The exchange is signed with the session's key (it has one)."""
    with b.connect(smb_server.host, smb_server.port, USER, PASSWORD, sign=True) as client:
        session_id, tree_id = client.session_id, client.tree_id
        file_id = client.open("kept.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                              disposition=b.FILE_OVERWRITE_IF)
        assert client.write(file_id, 0, b"before").status == b.STATUS_SUCCESS
        response = _logon(client, USER, PASSWORD, session_id=session_id, sign=True)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert response.header.session_id == session_id
        assert response.header.flags & b.SMB2_FLAGS_SIGNED  # the final leg is signed with the old key
        assert struct.unpack_from("<H", response.body, 2)[0] == 0  # SessionFlags: neither guest nor null
        assert client.tree_id == tree_id
        assert client.write(file_id, 6, b"+after").status == b.STATUS_SUCCESS
        read = client.read(file_id, 0, 64)
        assert read.status == b.STATUS_SUCCESS and b.read_data(read) == b"before+after"
        assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_failed_reauthentication_ends_the_session(smb_server: SmbServer) -> None:
    with b.connect(smb_server.host, smb_server.port, USER, PASSWORD, sign=True) as client:
        response = _logon(client, USER, "not-the-password", session_id=client.session_id, sign=True)
        assert response.status == b.STATUS_LOGON_FAILURE, b.status_name(response.status)
        _unchecked(client)
        assert client.create("after.txt", disposition=b.FILE_OPEN_IF).status == b.STATUS_USER_SESSION_DELETED


# -- PreviousSessionId ------------------------------------------------------------------------------------------

def test_previous_session_id_ends_the_old_session_and_its_opens(smb_server: SmbServer) -> None:
    """[MS-SMB2] 3.3.5.5.3: a logon naming PreviousSessionId of the same user (a client that reconnected)
    closes that session: its handles go (an exclusive open succeeds again) and the old connection's requests on
    it get STATUS_USER_SESSION_DELETED. Samba 4.17 answers the same."""
    host, port = smb_server.host, smb_server.port
    with b.connect(host, port, USER, PASSWORD, sign=True) as old:
        old_file = old.open("held.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                            disposition=b.FILE_OVERWRITE_IF, share_access=0)
        with b.connect(host, port, USER, PASSWORD, sign=True) as other:
            assert other.create("held.txt", share_access=b.FILE_SHARE_ALL).status == b.STATUS_SHARING_VIOLATION
        with b.Client(host, port).connect() as new:
            assert new.negotiate().status == b.STATUS_SUCCESS
            response = _logon(new, USER, PASSWORD, previous_session_id=old.session_id)
            assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
            assert response.header.session_id != old.session_id
        _unchecked(old)
        assert old.request(b.SMB2_READ, b.read_body(old_file, 0, 1)).status == b.STATUS_USER_SESSION_DELETED
        assert old.create("x.txt", disposition=b.FILE_OPEN_IF).status == b.STATUS_USER_SESSION_DELETED
    with b.connect(host, port, USER, PASSWORD, sign=True) as client:
        file_id = client.open("held.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE, share_access=0)
        assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_previous_session_id_of_another_user_is_left_alone(tmp_path: Path) -> None:
    """Only the same user's old session is closed ([MS-SMB2] 3.3.5.5.3): another user naming it changes
    nothing."""
    share = tmp_path / "share"
    share.mkdir()
    server = start_server(share, tmp_path / "server.log", users=((USER, PASSWORD), ("bob", "Bob-pass-1")))
    try:
        with b.connect(server.host, server.port, USER, PASSWORD, sign=True) as alice:
            with b.Client(server.host, server.port).connect() as bob:
                assert bob.negotiate().status == b.STATUS_SUCCESS
                response = _logon(bob, "bob", "Bob-pass-1", previous_session_id=alice.session_id)
                assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
            response = alice.create("still.txt", disposition=b.FILE_OPEN_IF)
            assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
            assert alice.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


# -- guest --------------------------------------------------------------------------------------------------------

@pytest.fixture
def guest_server(tmp_path: Path) -> Iterator[SmbServer]:
    """A `guest_ok` share (world-writable, so the guest account may create files) next to an ordinary one;
    signing "desired" (a required signature would refuse guests, who have no key)."""
    public, private = tmp_path / "public", tmp_path / "private"
    for path in (public, private):
        path.mkdir()
    os.chmod(public, 0o777)
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[server]\nusers_file = "{tmp_path / "users"}"\nguest_account = "nobody"\n\n'
                      f'[shares.public]\npath = "{public}"\nguest_ok = true\n\n'
                      f'[shares.share]\npath = "{private}"\n')
    server = start_server(public, tmp_path / "server.log", config=config)
    try:
        yield server
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


def test_unknown_user_logs_on_as_guest(guest_server: SmbServer) -> None:
    """A real NTLMv2 logon by an account the server does not know becomes a guest session ("map to guest =
    bad user" in Samba's words): SessionFlags IS_GUEST, the guest_ok share connects, the other one answers
    STATUS_ACCESS_DENIED. Samba 4.17 answers the same."""
    with b.Client(guest_server.host, guest_server.port).connect() as client:
        assert client.negotiate().status == b.STATUS_SUCCESS
        response = _logon(client, "nosuchuser", "whatever")
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert struct.unpack_from("<H", response.body, 2)[0] == SMB2_SESSION_FLAG_IS_GUEST
        client.session_id = response.header.session_id
        assert client.tree_connect("share").status == b.STATUS_ACCESS_DENIED
        assert client.tree_connect("public").status == b.STATUS_SUCCESS
        client.write_file("from-guest.txt", b"guest data")
        assert "from-guest.txt" in client.list_directory()


def test_known_user_with_wrong_password_is_not_a_guest(guest_server: SmbServer) -> None:
    with b.Client(guest_server.host, guest_server.port).connect() as client:
        assert client.negotiate().status == b.STATUS_SUCCESS
        assert _logon(client, USER, "wrong-password").status == b.STATUS_LOGON_FAILURE


def test_smbclient_guest_writes_as_the_guest_account(guest_server: SmbServer, tmp_path: Path) -> None:
    """Debian's smbclient with an unknown user: the file it puts is owned by guest_account (when the server
    runs as root and can act as another account), and the private share refuses it."""
    source = tmp_path / "source.txt"
    source.write_bytes(b"written by a guest\n")
    result = guest_server.smbclient(f'put "{source}" guest.txt', share="public", user="nosuchuser%whatever")
    assert (guest_server.share_path / "guest.txt").read_bytes() == source.read_bytes(), result.stdout
    if os.geteuid() == 0:
        assert (guest_server.share_path / "guest.txt").stat().st_uid == _uid("nobody")
    refused = guest_server.smbclient("ls", share="share", user="nosuchuser%whatever", check=False)
    assert refused.returncode != 0
    assert "NT_STATUS_ACCESS_DENIED" in refused.stdout + refused.stderr


def _uid(name: str) -> int:
    return int(subprocess.run(["id", "-u", name], check=True, capture_output=True, text=True).stdout)
