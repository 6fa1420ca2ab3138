"""Multichannel against the real daemon: session binding ([MS-SMB2] 3.3.5.5, 3.3.5.5.2, 3.3.5.5.3), the
channel's own signing key (3.3.4.1.1, 3.3.5.2.4), requests on any channel, LOGOFF and connection loss (3.3.5.6,
3.3.7.1), FSCTL_QUERY_NETWORK_INTERFACE_INFO (3.3.5.15.11).

Every status below is what Samba 4.17 answers (smbtorture smb2.session.bind_negative_* pin them; the order of
the checks is Samba's, commands/session_bind.py says why). The client is tests/builders.py's raw client with
NTLMv2 from pyspnego; the channel key is derived here with the spec's KDF, so a wrong key on either side fails.
"""

from __future__ import annotations

import ipaddress
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import spnego

from smbsrv.crypto import kdf, signing
from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer, assert_no_server_bugs, start_server, stop_server

SMB2_SESSION_FLAG_BINDING = 0x01
SMB2_GLOBAL_CAP_MULTI_CHANNEL = 0x08
FSCTL_QUERY_NETWORK_INTERFACE_INFO = 0x001401FC
STATUS_REQUEST_NOT_ACCEPTED = 0xC00000D0
STATUS_REQUEST_OUT_OF_SEQUENCE = 0xC000042A
ALL_ONES = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
CMAC, GMAC = 1, 2


@pytest.fixture
def two_users(tmp_path: Path) -> Iterator[SmbServer]:
    share = tmp_path / "share"
    share.mkdir()
    server = start_server(share, tmp_path / "server.log", users=((USER, PASSWORD), ("bob", "Bob-pass-1")))
    try:
        yield server
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


def _first(server: SmbServer, dialects: tuple[int, ...] = (0x0311,), signing_algorithm: int = CMAC,
           client_guid: bytes | None = None) -> b.Client:
    """A client that negotiated (asking for multichannel), logged on, connected to the share; signs."""
    client = b.Client(server.host, server.port).connect()
    response = _negotiate(client, dialects, signing_algorithm, client_guid)
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
    assert client.session_setup(USER, PASSWORD) == b.STATUS_SUCCESS
    client.sign_requests = True
    assert client.tree_connect("share").status == b.STATUS_SUCCESS
    return client


def _negotiate(client: b.Client, dialects: tuple[int, ...], signing_algorithm: int = CMAC,
               client_guid: bytes | None = None) -> b.Response:
    contexts = [b.preauth_context(), b.signing_context((signing_algorithm,))] if 0x0311 in dialects else None
    return client.negotiate(dialects, contexts=contexts, capabilities=SMB2_GLOBAL_CAP_MULTI_CHANNEL,
                            client_guid=client_guid)


def _bind(channel: b.Client, first: b.Client, user: str = USER, password: str = PASSWORD,
          sign: bool = True, session_id: int | None = None) -> b.Response:
    """Every leg of a binding SESSION_SETUP on `channel` for `first`'s session, signed with the session's key
    ([MS-SMB2] 3.2.4.1.1). On success the channel signs with its own key from then on."""
    auth = spnego.client(user, password, protocol="ntlm")
    token = auth.step() or b""
    preauth = channel.connection_preauth
    session_id = first.session_id if session_id is None else session_id
    channel.session_id = session_id
    channel.signer = first.signer
    while True:
        req = b.Req(b.SMB2_SESSION_SETUP, b.session_setup_body(token, flags=SMB2_SESSION_FLAG_BINDING),
                    session_id=session_id)
        message, (message_id,) = channel.build(req, sign=sign)
        channel.send_raw(bytes(message))
        preauth = b._sha512(preauth, bytes(message))
        response = channel._receive_setup(message_id)
        if response.status == b.STATUS_MORE_PROCESSING_REQUIRED:
            # Not a success: signed with Session.SigningKey ([MS-SMB2] 3.3.4.1.1).
            assert response.header.flags & b.SMB2_FLAGS_SIGNED
            assert first.signer is not None and first.signer.verify(bytearray(response.raw))
            preauth = b._sha512(preauth, response.raw)
            token = auth.step(b._security_buffer(response.body)) or b""
            continue
        if response.status != b.STATUS_SUCCESS:
            return response
        keys = kdf.derive_session_keys(channel.dialect, auth.session_key,
                                       preauth if channel.dialect == 0x0311 else None, 0)
        channel.signer = signing.make_signer(channel.dialect, channel.signing_algorithm, keys.signing_key)
        # The success is signed with the new channel's key, not the session's.
        assert response.header.flags & b.SMB2_FLAGS_SIGNED
        assert channel.signer.verify(bytearray(response.raw)), "final binding response not signed with the channel key"
        assert not first.signer.verify(bytearray(response.raw))
        channel.sign_requests = True
        channel.tree_id = first.tree_id
        return response


def _channel(server: SmbServer, dialects: tuple[int, ...] = (0x0311,), signing_algorithm: int = CMAC) -> b.Client:
    client = b.Client(server.host, server.port).connect()
    assert _negotiate(client, dialects, signing_algorithm).status == b.STATUS_SUCCESS
    return client


def _read_position(client: b.Client, file_id: tuple[int, int]) -> int:
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, 14)  # FilePositionInformation
    return response.status


@pytest.mark.parametrize("dialect", [0x0311, 0x0302, 0x0300])
def test_two_connections_share_one_session(smb_server: SmbServer, dialect: int) -> None:
    """A file opened on channel 1 is read on channel 2; channel 1 dropped, channel 2 goes on with the same
    handle and session; every request on channel 2 is signed with the channel's key and answered so."""
    first = _first(smb_server, (dialect,))
    assert first.negotiate_response is not None
    (capabilities,) = struct.unpack_from("<I", first.negotiate_response.body, 24)
    assert capabilities & SMB2_GLOBAL_CAP_MULTI_CHANNEL
    file_id = first.open("shared.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                         disposition=b.FILE_OVERWRITE_IF)
    assert first.write(file_id, 0, b"written on channel 1").status == b.STATUS_SUCCESS
    second = _channel(smb_server, (dialect,))
    try:
        response = _bind(second, first)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert response.header.session_id == first.session_id
        assert struct.unpack_from("<H", response.body, 2)[0] == 0  # SessionFlags
        read = second.read(file_id, 0, 100)
        assert read.status == b.STATUS_SUCCESS and b.read_data(read) == b"written on channel 1"
        assert read.header.flags & b.SMB2_FLAGS_SIGNED  # verified with the channel key by the client
        # A request signed with the session's key instead of the channel's is refused on channel 2.
        channel_signer, second.signer = second.signer, first.signer
        message, (message_id,) = second.build(b.Req(b.SMB2_READ, b.read_body(file_id, 0, 1)), sign=True)
        second.signer = channel_signer
        second.send_raw(bytes(message))
        refused = second._receive_setup(message_id)
        assert refused.status == b.STATUS_ACCESS_DENIED
        assert channel_signer is not None and channel_signer.verify(bytearray(refused.raw))  # as Samba signs it
        first.close()
        # The session lives on through channel 2, with its tree connect and handle.
        assert second.write(file_id, 0, b"WRITTEN").status == b.STATUS_SUCCESS
        read = second.read(file_id, 0, 100)
        assert read.status == b.STATUS_SUCCESS and b.read_data(read) == b"WRITTEN on channel 1"
        other = second.open("made-on-2.txt", desired_access=b.GENERIC_WRITE, disposition=b.FILE_OVERWRITE_IF)
        assert second.close_file(other) == b.STATUS_SUCCESS
        assert second.close_file(file_id) == b.STATUS_SUCCESS
        assert second.request(b.SMB2_LOGOFF, struct.pack("<HH", 4, 0)).status == b.STATUS_SUCCESS
    finally:
        second.close()
        first.close()
    assert (smb_server.share_path / "shared.txt").read_bytes() == b"WRITTEN on channel 1"


def test_logoff_on_one_channel_ends_the_session_on_all(smb_server: SmbServer) -> None:
    with _first(smb_server) as first, _channel(smb_server) as second:
        file_id = first.open("held.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                             disposition=b.FILE_OVERWRITE_IF, share_access=0)
        assert _bind(second, first).status == b.STATUS_SUCCESS
        assert second.request(b.SMB2_LOGOFF, struct.pack("<HH", 4, 0)).status == b.STATUS_SUCCESS
        first.signer = None  # the session is gone: its errors are not signed
        assert first.read(file_id, 0, 1).status == b.STATUS_USER_SESSION_DELETED
    # Its handles went with it: an exclusive open succeeds again.
    with b.connect(smb_server.host, smb_server.port, USER, PASSWORD) as client:
        assert client.close_file(client.open("held.txt", share_access=0)) == b.STATUS_SUCCESS


def test_dropping_the_last_channel_ends_the_session(smb_server: SmbServer) -> None:
    first = _first(smb_server)
    second = _channel(smb_server)
    first.open("exclusive.txt", desired_access=b.GENERIC_WRITE, disposition=b.FILE_OVERWRITE_IF, share_access=0)
    assert _bind(second, first).status == b.STATUS_SUCCESS
    second.close()
    assert first.create("exclusive.txt", share_access=b.FILE_SHARE_ALL).status == b.STATUS_SHARING_VIOLATION
    first.close()
    with b.connect(smb_server.host, smb_server.port, USER, PASSWORD) as client:
        for _ in range(50):  # the server notices the closed socket on its own time
            response = client.create("exclusive.txt", share_access=0)
            if response.status == b.STATUS_SUCCESS:
                break
            time.sleep(0.1)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)


@pytest.mark.parametrize(("session", "channel", "status"), [
    # (dialects, signing algorithm) of the session's connection and of the binding one
    (((0x0311,), GMAC), ((0x0311,), CMAC), STATUS_REQUEST_OUT_OF_SEQUENCE),
    (((0x0311,), GMAC), ((0x0300,), CMAC), STATUS_REQUEST_OUT_OF_SEQUENCE),
    (((0x0311,), CMAC), ((0x0311,), GMAC), b.STATUS_NOT_SUPPORTED),
    (((0x0210,), CMAC), ((0x0311,), GMAC), b.STATUS_NOT_SUPPORTED),
    (((0x0311,), CMAC), ((0x0210,), CMAC), STATUS_REQUEST_NOT_ACCEPTED),
    (((0x0210,), CMAC), ((0x0210,), CMAC), STATUS_REQUEST_NOT_ACCEPTED),
    (((0x0202,), CMAC), ((0x0202,), CMAC), STATUS_REQUEST_NOT_ACCEPTED),
    (((0x0210,), CMAC), ((0x0300,), CMAC), b.STATUS_INVALID_PARAMETER),  # another dialect
    (((0x0300,), CMAC), ((0x0302,), CMAC), b.STATUS_INVALID_PARAMETER),
    (((0x0311,), CMAC), ((0x0311,), 0), b.STATUS_SUCCESS),  # another algorithm below GMAC: allowed
])
def test_binding_refusals(smb_server: SmbServer, session: tuple, channel: tuple, status: int) -> None:
    with _first(smb_server, *session) as first, _channel(smb_server, *channel) as second:
        file_id = first.open("f.txt", desired_access=b.GENERIC_READ, disposition=b.FILE_OVERWRITE_IF)
        response = _bind(second, first)
        assert response.status == status, b.status_name(response.status)
        if status != b.STATUS_SUCCESS:
            # The refusal is signed with the session's key (a client that requires signing needs it).
            assert response.header.flags & b.SMB2_FLAGS_SIGNED
        else:
            assert _read_position(second, file_id) == b.STATUS_SUCCESS
        # The session itself is untouched.
        assert _read_position(first, file_id) == b.STATUS_SUCCESS


def test_binding_rules(two_users: SmbServer) -> None:
    server = two_users
    with _first(server) as first:
        # Unsigned: INVALID_PARAMETER ([MS-SMB2] 3.3.5.5.2).
        with _channel(server) as second:
            assert _bind(second, first, sign=False).status == b.STATUS_INVALID_PARAMETER
        # SessionId 0, and a session that does not exist.
        with _channel(server) as second:
            assert _bind(second, first, session_id=0).status == b.STATUS_INVALID_PARAMETER
        with _channel(server) as second:
            assert _bind(second, first, session_id=first.session_id + 12345).status == \
                b.STATUS_USER_SESSION_DELETED
        # The session's own connection, and a connection bound already: REQUEST_NOT_ACCEPTED.
        assert _bind(first, first).status == STATUS_REQUEST_NOT_ACCEPTED
        # Another user cannot join the session: ACCESS_DENIED after the exchange, and nothing is bound.
        with _channel(server) as second:
            assert _bind(second, first, user="bob", password="Bob-pass-1").status == b.STATUS_ACCESS_DENIED
            assert _bind(second, first).status == b.STATUS_SUCCESS
            channel_signer = second.signer
            # On a bound channel a request signed with the session's key fails its signature check first.
            assert _bind(second, first).status == b.STATUS_ACCESS_DENIED
            second.signer = channel_signer
            second.session_id = first.session_id
            assert second.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS
            # Rebinding signed with the channel's own key: the connection is a channel already.
            auth = spnego.client(USER, PASSWORD, protocol="ntlm")
            req = b.session_setup_body(auth.step() or b"", flags=SMB2_SESSION_FLAG_BINDING)
            response = second.request(b.SMB2_SESSION_SETUP, req, sign=True)
            assert response.status == STATUS_REQUEST_NOT_ACCEPTED, b.status_name(response.status)


def test_multichannel_off(tmp_path: Path) -> None:
    """`multi_channel = false` (Samba's "server multi channel support = no"): no capability, binding is
    REQUEST_NOT_ACCEPTED, the interface FSCTL is INVALID_DEVICE_REQUEST on a disk share (Samba's answers)."""
    share = tmp_path / "share"
    share.mkdir()
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[server]\nmulti_channel = false\nsigning = "desired"\n[shares.share]\npath = "{share}"\n')
    server = start_server(share, tmp_path / "server.log", config=config)
    try:
        with _first(server) as first, _channel(server) as second:
            assert first.negotiate_response is not None
            assert not struct.unpack_from("<I", first.negotiate_response.body, 24)[0] & SMB2_GLOBAL_CAP_MULTI_CHANNEL
            assert _bind(second, first).status == STATUS_REQUEST_NOT_ACCEPTED
            response = first.request(b.SMB2_IOCTL, b.ioctl_body(ALL_ONES, FSCTL_QUERY_NETWORK_INTERFACE_INFO))
            assert response.status == b.STATUS_INVALID_DEVICE_REQUEST, b.status_name(response.status)
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


def test_capability_only_for_3x_clients_that_ask(smb_server: SmbServer) -> None:
    for dialects, asked, announced in (((0x0311,), True, True), ((0x0300,), True, True),
                                       ((0x0210,), True, False), ((0x0311,), False, False)):
        with b.Client(smb_server.host, smb_server.port).connect() as client:
            response = client.negotiate(dialects, capabilities=SMB2_GLOBAL_CAP_MULTI_CHANNEL if asked else 0)
            assert response.status == b.STATUS_SUCCESS
            capabilities = struct.unpack_from("<I", response.body, 24)[0]
            assert bool(capabilities & SMB2_GLOBAL_CAP_MULTI_CHANNEL) == announced, (dialects, asked)


def _ioctl_output(response: b.Response) -> bytes:
    """OutputOffset(4)@32, OutputCount(4)@36 of an IOCTL response ([MS-SMB2] 2.2.32)."""
    offset, count = struct.unpack_from("<II", response.body, 32)
    return response.body[offset - 64:offset - 64 + count]


def _interfaces(output: bytes) -> list[tuple[int, int, str]]:
    """(IfIndex, LinkSpeed, address) of each NETWORK_INTERFACE_INFO ([MS-SMB2] 2.2.32.5), decoded by hand."""
    found = []
    position = 0
    while True:
        next_offset, if_index, capability, reserved, speed = struct.unpack_from("<IIIIQ", output, position)
        assert capability == 0 and reserved == 0 and speed > 0
        (family,) = struct.unpack_from("<H", output, position + 24)
        if family == 0x0002:
            address = str(ipaddress.IPv4Address(output[position + 28:position + 32]))
        else:
            assert family == 0x0017
            address = str(ipaddress.IPv6Address(output[position + 32:position + 48]))
        found.append((if_index, speed, address))
        if not next_offset:
            assert position + 152 == len(output)
            return found
        assert next_offset == 152
        position += next_offset


def test_network_interface_info(smb_server: SmbServer) -> None:
    """The daemon listens on 127.0.0.1 only: that is the one interface a client may add channels on."""
    with _first(smb_server) as client:
        response = client.request(b.SMB2_IOCTL, b.ioctl_body(ALL_ONES, FSCTL_QUERY_NETWORK_INTERFACE_INFO))
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert [address for _, _, address in _interfaces(_ioctl_output(response))] == ["127.0.0.1"]
        response = client.request(b.SMB2_IOCTL, b.ioctl_body(ALL_ONES, FSCTL_QUERY_NETWORK_INTERFACE_INFO,
                                                             b"x"))
        assert response.status == b.STATUS_INVALID_PARAMETER
        response = client.request(b.SMB2_IOCTL, b.ioctl_body(ALL_ONES, FSCTL_QUERY_NETWORK_INTERFACE_INFO,
                                                             max_output=100))
        assert response.status == b.STATUS_BUFFER_TOO_SMALL


def test_different_client_guid_binds_too(smb_server: SmbServer) -> None:
    """No ClientGuid comparison (the spec has none; smbtorture's bind_negative_*d want the same answers)."""
    with _first(smb_server, client_guid=uuid.uuid4().bytes) as first:
        second = b.Client(smb_server.host, smb_server.port).connect()
        with second:
            assert _negotiate(second, (0x0311,), CMAC, uuid.uuid4().bytes).status == b.STATUS_SUCCESS
            assert _bind(second, first).status == b.STATUS_SUCCESS



# -- a CREATE waiting for a break when its channel drops (Samba 4.17; smbtorture smb2.replay.dhv2-pending2*) ----

BATCH, LEVEL_II, REPLAY = 9, 1, 0x20000000  # oplock levels, SMB2_FLAGS_REPLAY_OPERATION
FILE_OPENED = 1
STATUS_FILE_NOT_AVAILABLE = 0xC0000467


def _dh2q_create(client: b.Client, name: str, create_guid: bytes, *, flags: int = 0) -> b.Req:
    context = b.create_context(b"DH2Q", struct.pack("<II8s16s", 0, 0, bytes(8), create_guid))
    return b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                              disposition=b.FILE_OPEN_IF, share_access=b.FILE_SHARE_ALL,
                                              oplock=BATCH, contexts=context),
                 tree_id=client.tree_id, session_id=client.session_id, flags=flags)


def _first_answer(client: b.Client, req: b.Req) -> b.Response:
    """The first response to `req`: STATUS_PENDING when it went async."""
    (message_id,) = client.send(req)
    return client.receive(message_id, skip_pending=False)


def _create_left_waiting(server: SmbServer, client_guid: bytes,
                         create_guid: bytes) -> tuple[b.Client, tuple[int, int], b.Client]:
    """A batch oplock holder (its own client, with its handle) and the second channel of a session whose first
    channel sent a DH2Q create of the holder's file, which waits for the unacknowledged break, and dropped."""
    holder = b.connect(server.host, server.port, USER, PASSWORD)
    held = holder.open("contested.txt", oplock=BATCH, desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                       disposition=b.FILE_OPEN_IF)
    first = _first(server, client_guid=client_guid)
    second = b.Client(server.host, server.port).connect()
    assert _negotiate(second, (0x0311,), CMAC, client_guid).status == b.STATUS_SUCCESS
    assert _bind(second, first).status == b.STATUS_SUCCESS
    assert _first_answer(first, _dh2q_create(first, "contested.txt", create_guid)).status == b.STATUS_PENDING
    first.close()
    time.sleep(0.5)  # the server notices the closed socket on its own time
    return holder, held, second


def _acknowledge(holder: b.Client, held: tuple[int, int]) -> None:
    ack = struct.pack("<HBBIQQ", 24, LEVEL_II, 0, 0, *held)
    assert holder.request(0x12, ack).status == b.STATUS_SUCCESS


def test_a_waiting_create_outlives_its_dropped_channel(smb_server: SmbServer) -> None:
    """The CREATE runs on while its session has another channel: a replay there is STATUS_FILE_NOT_AVAILABLE
    (not a second create waiting for the break); once the holder acknowledges, the create completes (its
    response has nowhere to go) and the replay returns that open, FILE_OPENED, usable on the live channel."""
    client_guid, create_guid = uuid.uuid4().bytes, uuid.uuid4().bytes
    holder, held, second = _create_left_waiting(smb_server, client_guid, create_guid)
    try:
        replay = _first_answer(second, _dh2q_create(second, "contested.txt", create_guid, flags=REPLAY))
        assert replay.status == STATUS_FILE_NOT_AVAILABLE, b.status_name(replay.status)
        _acknowledge(holder, held)
        for _ in range(50):  # the waiting create finishes on the server's own time
            replay = _first_answer(second, _dh2q_create(second, "contested.txt", create_guid, flags=REPLAY))
            if replay.status != STATUS_FILE_NOT_AVAILABLE:
                break
            time.sleep(0.1)
        assert replay.status == b.STATUS_SUCCESS, b.status_name(replay.status)
        assert struct.unpack_from("<I", replay.body, 4)[0] == FILE_OPENED
        file_id = b.create_file_id(replay.body)
        assert second.write(file_id, 0, b"through the live channel").status == b.STATUS_SUCCESS
        assert second.close_file(file_id) == b.STATUS_SUCCESS
        assert holder.close_file(held) == b.STATUS_SUCCESS
    finally:
        second.close()
        holder.close()


def test_a_waiting_create_ends_with_the_last_channel(smb_server: SmbServer) -> None:
    """When the session's last channel drops too, the CREATE left running is cancelled (Samba 4.17's session
    shutdown): its CreateGuid is free at once, though the holder never acknowledged the break."""
    client_guid, create_guid = uuid.uuid4().bytes, uuid.uuid4().bytes
    holder, held, second = _create_left_waiting(smb_server, client_guid, create_guid)
    try:
        replay = _first_answer(second, _dh2q_create(second, "contested.txt", create_guid, flags=REPLAY))
        assert replay.status == STATUS_FILE_NOT_AVAILABLE, b.status_name(replay.status)
        second.close()
        with _first(smb_server, client_guid=client_guid) as other:
            # The client's CreateGuid on another file: refused while the create waits, a new open once it is gone.
            for _ in range(50):
                probe = _first_answer(other, _dh2q_create(other, "probe.txt", create_guid))
                if probe.status != STATUS_FILE_NOT_AVAILABLE:
                    break
                time.sleep(0.1)
            assert probe.status == b.STATUS_SUCCESS, b.status_name(probe.status)
            assert other.close_file(b.create_file_id(probe.body)) == b.STATUS_SUCCESS
        assert holder.close_file(held) == b.STATUS_SUCCESS
    finally:
        second.close()
        holder.close()
