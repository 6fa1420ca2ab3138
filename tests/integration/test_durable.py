"""Durable handles against the daemon ([MS-SMB2] 3.3.5.9.6/7/10/12, 3.3.7.1), with raw requests that see every
context: a DH2Q open with a lease survives a dropped TCP connection with its data, locks and lease, and is
taken back on a new connection with DH2C; another user, an unknown handle, a v1 request without a batch
oplock, replays of a DH2Q create, a conflicting open against a disconnected durable open, and the scavenger
(with a 1 s timeout) each get what Samba 4.17 answers.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer, assert_no_server_bugs, start_server, stop_server

OTHER_USER, OTHER_PASSWORD = "bob", "Other-Pass-456"
LEVEL_NONE, LEVEL_II, LEVEL_BATCH, LEVEL_LEASE = 0, 1, 9, 0xFF
R, H, W = 1, 2, 4
READ_WRITE = 0x0012019F
STATUS_DUPLICATE_OBJECTID = 0xC000022A
STATUS_FILE_NOT_AVAILABLE = 0xC0000467
STATUS_INVALID_PARAMETER = 0xC000000D
SMB2_FLAGS_REPLAY_OPERATION = 0x20000000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmbServer]:
    share = tmp_path / "share"
    share.mkdir()
    smb = start_server(share, tmp_path / "server.log", users=((USER, PASSWORD), (OTHER_USER, OTHER_PASSWORD)))
    try:
        yield smb
    finally:
        stop_server(smb.process)
    assert_no_server_bugs(smb)


def connect(smb: SmbServer, client_guid: bytes, user: str = USER, password: str = PASSWORD) -> b.Client:
    client = b.Client(smb.host, smb.port).connect()
    try:
        assert client.negotiate(client_guid=client_guid).status == b.STATUS_SUCCESS
        assert client.session_setup(user, password) == b.STATUS_SUCCESS
        assert client.tree_connect("share").status == b.STATUS_SUCCESS
    except BaseException:
        client.close()
        raise
    return client


def dh2q(create_guid: bytes, timeout_ms: int = 0) -> bytes:
    return b.create_context(b"DH2Q", struct.pack("<II8s16s", timeout_ms, 0, bytes(8), create_guid))


def dh2c(file_id: tuple[int, int], create_guid: bytes) -> bytes:
    return b.create_context(b"DH2C", struct.pack("<QQ16sI", *file_id, create_guid, 0))


def lease(key: bytes, state: int) -> bytes:
    return b.create_context(b"RqLs", struct.pack("<16sIIQ16sHH", key, state, 0, 0, bytes(16), 0, 0))


def response_contexts(body: bytes) -> dict[bytes, bytes]:
    offset, length = struct.unpack_from("<II", body, 80)
    blob = body[offset - b.HEADER_SIZE:offset - b.HEADER_SIZE + length] if length else b""
    found, position = {}, 0
    while blob:
        next_, name_offset, name_length, _, data_offset, data_length = struct.unpack_from("<IHHHHI", blob, position)
        name = blob[position + name_offset:position + name_offset + name_length]
        found[name] = blob[position + data_offset:position + data_offset + data_length]
        if not next_:
            break
        position += next_
    return found


def create(c: b.Client, name: str, oplock: int, contexts: bytes, *, flags: int = 0,
           share_access: int = b.FILE_SHARE_ALL, access: int = READ_WRITE) -> b.Response:
    return c.request(b.SMB2_CREATE, b.create_body(name, desired_access=access, disposition=b.FILE_OPEN_IF,
                                                  share_access=share_access, oplock=oplock, contexts=contexts),
                     tree_id=c.tree_id, session_id=c.session_id, flags=flags)


def lock(c: b.Client, file_id: tuple[int, int], offset: int, length: int) -> int:
    flags = b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
    return c.request(b.SMB2_LOCK, b.lock_body(file_id, [(offset, length, flags)]), tree_id=c.tree_id,
                     session_id=c.session_id).status



EXCLUSIVE = b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
SMB2_GLOBAL_CAP_MULTI_CHANNEL = 0x8


def lock_sequenced(c: b.Client, file_id: tuple[int, int], flags: int, lock_sequence: int) -> int:
    """One LOCK of bytes 100-199 with the given flags and LockSequence ([MS-SMB2] 2.2.26: index << 4 | number)."""
    return c.request(b.SMB2_LOCK, b.lock_body(file_id, [(100, 100, flags)], lock_sequence), tree_id=c.tree_id,
                     session_id=c.session_id).status

def test_dh2q_lease_open_survives_a_dropped_connection(server: SmbServer) -> None:
    guid, create_guid, key = uuid.uuid4().bytes, uuid.uuid4().bytes, uuid.uuid4().bytes
    first = connect(server, guid)
    response = create(first, "kept.txt", LEVEL_LEASE, b.chain_contexts(lease(key, R | W | H), dh2q(create_guid)))
    assert response.status == b.STATUS_SUCCESS
    granted = response_contexts(response.body)
    assert struct.unpack("<II", granted[b"DH2Q"]) == (60_000, 0)  # Timeout 0 asks for the server's default
    file_id = b.create_file_id(response.body)
    assert first.write(file_id, 0, b"before the drop").status == b.STATUS_SUCCESS
    assert lock(first, file_id, 100, 10) == b.STATUS_SUCCESS
    first.close()  # the TCP connection goes without LOGOFF or CLOSE
    time.sleep(0.3)
    with connect(server, guid) as second:
        # With QFid beside it, as cifs.ko sends every reconnect (Samba refuses that; docs/durable.md).
        response = create(second, "kept.txt", LEVEL_LEASE, b.chain_contexts(lease(key, R | W | H), dh2c(file_id, create_guid),
                                                                 b.create_context(b"QFid", b"")))
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert b.create_file_id(response.body) == file_id
        assert response.body[2] == LEVEL_LEASE and b"DH2Q" not in response_contexts(response.body)
        assert len(response_contexts(response.body)[b"QFid"]) == 32
        assert struct.unpack_from("<I", response.body, 4)[0] == 1  # FILE_OPENED
        assert b.read_data(second.read(file_id, 0, 100)) == b"before the drop"
        assert second.write(file_id, 15, b", and after").status == b.STATUS_SUCCESS
        # The lock came back with the handle: taking the range again conflicts, and it can be unlocked.
        assert lock(second, file_id, 100, 10) == b.STATUS_LOCK_NOT_GRANTED
        unlock = b.lock_body(file_id, [(100, 10, b.SMB2_LOCKFLAG_UNLOCK)])
        assert second.request(b.SMB2_LOCK, unlock, tree_id=second.tree_id, session_id=second.session_id).status \
            == b.STATUS_SUCCESS
        assert second.close_file(file_id) == b.STATUS_SUCCESS
    assert (server.share_path / "kept.txt").read_bytes() == b"before the drop, and after"


def test_reconnect_by_another_user_is_access_denied(server: SmbServer) -> None:
    guid, create_guid = uuid.uuid4().bytes, uuid.uuid4().bytes
    first = connect(server, guid)
    response = create(first, "mine.txt", LEVEL_BATCH, dh2q(create_guid))
    assert response.status == b.STATUS_SUCCESS and b"DH2Q" in response_contexts(response.body)
    file_id = b.create_file_id(response.body)
    first.close()
    time.sleep(0.3)
    with connect(server, guid, OTHER_USER, OTHER_PASSWORD) as stranger:
        response = create(stranger, "mine.txt", LEVEL_BATCH, dh2c(file_id, create_guid))
        assert response.status == b.STATUS_ACCESS_DENIED
    with connect(server, guid) as owner:  # still there for its owner
        response = create(owner, "mine.txt", LEVEL_BATCH, dh2c(file_id, create_guid))
        assert response.status == b.STATUS_SUCCESS
        assert owner.close_file(file_id) == b.STATUS_SUCCESS


@pytest.mark.parametrize("tag", [b"DHnC", b"DH2C"])
def test_reconnect_to_an_unknown_or_connected_handle(server: SmbServer, tag: bytes) -> None:
    guid, create_guid = uuid.uuid4().bytes, uuid.uuid4().bytes
    with connect(server, guid) as c:
        response = create(c, "open.txt", LEVEL_BATCH, dh2q(create_guid))
        file_id = b.create_file_id(response.body)
        for target in ((file_id[0] + 1000, file_id[1] + 1000), file_id):  # unknown; still connected
            data = struct.pack("<QQ", *target) if tag == b"DHnC" else struct.pack("<QQ16sI", *target, create_guid, 0)
            assert create(c, "open.txt", LEVEL_BATCH, b.create_context(tag, data)).status == \
                b.STATUS_OBJECT_NAME_NOT_FOUND
        # A reconnect with another context than a lease beside it fails the same way ([MS-SMB2] 3.3.5.9.7).
        assert create(c, "open.txt", LEVEL_BATCH, b.chain_contexts(b.create_context(b"DHnC", struct.pack("<QQ", *file_id)),
                                                        b.create_context(b"MxAc", b""))).status == \
            b.STATUS_OBJECT_NAME_NOT_FOUND
        both = b.chain_contexts(b.create_context(b"DHnC", struct.pack("<QQ", *file_id)), dh2q(uuid.uuid4().bytes))
        assert create(c, "open.txt", LEVEL_BATCH, both).status == STATUS_INVALID_PARAMETER
        assert c.close_file(file_id) == b.STATUS_SUCCESS


@pytest.mark.parametrize(("oplock", "granted"), [(LEVEL_BATCH, True), (LEVEL_II, False), (LEVEL_NONE, False)])
def test_v1_durable_needs_a_batch_oplock(server: SmbServer, oplock: int, granted: bool) -> None:
    with connect(server, uuid.uuid4().bytes) as c:
        response = create(c, f"v1-{oplock}.txt", oplock, b.create_context(b"DHnQ", bytes(16)))
        assert response.status == b.STATUS_SUCCESS
        assert (b"DHnQ" in response_contexts(response.body)) is granted
        if granted:
            assert response_contexts(response.body)[b"DHnQ"] == bytes(8)
        assert c.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS


def test_non_durable_open_closes_with_its_connection(server: SmbServer) -> None:
    guid, create_guid = uuid.uuid4().bytes, uuid.uuid4().bytes
    first = connect(server, guid)
    response = create(first, "plain.txt", LEVEL_II, dh2q(create_guid))
    assert response.status == b.STATUS_SUCCESS and b"DH2Q" not in response_contexts(response.body)
    file_id = b.create_file_id(response.body)
    first.close()
    time.sleep(0.3)
    with connect(server, guid) as second:
        assert create(second, "plain.txt", LEVEL_II, dh2c(file_id, create_guid)).status == \
            b.STATUS_OBJECT_NAME_NOT_FOUND


def test_replay_returns_the_same_open(server: SmbServer) -> None:
    guid, create_guid = uuid.uuid4().bytes, uuid.uuid4().bytes
    with connect(server, guid) as c:
        response = create(c, "replayed.txt", LEVEL_BATCH, dh2q(create_guid))
        assert response.status == b.STATUS_SUCCESS
        file_id = b.create_file_id(response.body)
        replay = create(c, "replayed.txt", LEVEL_BATCH, dh2q(create_guid), flags=SMB2_FLAGS_REPLAY_OPERATION)
        assert replay.status == b.STATUS_SUCCESS and b.create_file_id(replay.body) == file_id
        assert struct.unpack_from("<I", replay.body, 4)[0] == 2  # FILE_CREATED, as the original answered
        # Without the replay flag the same CreateGuid names an open that exists (Samba 4.17).
        assert create(c, "replayed.txt", LEVEL_BATCH, dh2q(create_guid)).status == STATUS_DUPLICATE_OBJECTID
        assert c.close_file(file_id) == b.STATUS_SUCCESS
        # Closed: the CreateGuid is free again.
        again = create(c, "replayed.txt", LEVEL_BATCH, dh2q(create_guid))
        assert again.status == b.STATUS_SUCCESS and b.create_file_id(again.body) != file_id
        assert c.close_file(b.create_file_id(again.body)) == b.STATUS_SUCCESS


def test_conflicting_open_closes_a_disconnected_durable_open(server: SmbServer) -> None:
    """The lease break cannot reach a disconnected client: the durable open is closed at once instead of the
    new open waiting out the 35 s break timeout ([MS-SMB2] 3.3.4.7; Samba 4.17, smbtorture
    smb2.durable-open.open2-lease)."""
    guid, create_guid, key = uuid.uuid4().bytes, uuid.uuid4().bytes, uuid.uuid4().bytes
    first = connect(server, guid)
    response = create(first, "contended.txt", LEVEL_LEASE, b.chain_contexts(lease(key, R | W | H), dh2q(create_guid)),
                      share_access=0)
    file_id = b.create_file_id(response.body)
    first.close()
    time.sleep(0.3)
    with connect(server, uuid.uuid4().bytes) as other:
        started = time.monotonic()
        response = create(other, "contended.txt", LEVEL_NONE, b"")
        assert response.status == b.STATUS_SUCCESS and time.monotonic() - started < 5
        assert other.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
    with connect(server, guid) as back:
        response = create(back, "contended.txt", LEVEL_LEASE, b.chain_contexts(lease(key, R | W | H), dh2c(file_id, create_guid)))
        assert response.status == b.STATUS_OBJECT_NAME_NOT_FOUND


def test_scavenger_closes_after_the_timeout_and_sessions_end_in_the_log(server: SmbServer) -> None:
    guid, create_guid = uuid.uuid4().bytes, uuid.uuid4().bytes
    first = connect(server, guid)
    response = create(first, "short.txt", LEVEL_BATCH, dh2q(create_guid, timeout_ms=1000), share_access=0)
    assert struct.unpack("<II", response_contexts(response.body)[b"DH2Q"]) == (1000, 0)
    file_id = b.create_file_id(response.body)
    first.close()
    deadline = time.monotonic() + 10
    while "event=session_end" not in server.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"user={USER} session=" in server.log_path.read_text()
    assert "reason=disconnect durable=1" in server.log_path.read_text()
    time.sleep(1.5)  # the 1 s timeout passes: the scavenger closes the open and frees its share mode
    with connect(server, guid) as second:
        assert create(second, "short.txt", LEVEL_BATCH, dh2c(file_id, create_guid)).status == \
            b.STATUS_OBJECT_NAME_NOT_FOUND
        response = create(second, "short.txt", LEVEL_NONE, b"", share_access=0)
        assert response.status == b.STATUS_SUCCESS  # no sharing violation with a leftover handle
        assert second.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS


def with_channel_sequence(c: b.Client, req: b.Req, sequence: int) -> b.Response:
    """Send `req` with ChannelSequence `sequence` in its header ([MS-SMB2] 2.2.1.2, bytes 8-9; unsigned)."""
    message, (message_id,) = c.build(req, sign=False)
    struct.pack_into("<H", message, 8, sequence)
    c.send_raw(bytes(message))
    return c.receive(message_id)


def test_an_older_channel_sequence_cannot_modify(server: SmbServer) -> None:
    """[MS-SMB2] 3.3.5.2.10: a newer ChannelSequence becomes the open's; with an older one WRITE, SET_INFO and
    IOCTL get STATUS_FILE_NOT_AVAILABLE while a READ still works (Samba 4.17; smbtorture
    smb2.replay.channel-sequence)."""
    with connect(server, uuid.uuid4().bytes) as c:
        response = create(c, "sequenced.txt", LEVEL_BATCH, dh2q(uuid.uuid4().bytes))
        file_id = b.create_file_id(response.body)

        def write(sequence: int) -> int:
            req = b.Req(b.SMB2_WRITE, b.write_body(file_id, 0, b"data"), tree_id=c.tree_id, session_id=c.session_id)
            return with_channel_sequence(c, req, sequence).status

        assert write(5) == b.STATUS_SUCCESS
        assert write(4) == STATUS_FILE_NOT_AVAILABLE
        assert write(5 + 0x8000) == STATUS_FILE_NOT_AVAILABLE  # more than 0x7FFF ahead counts as older
        read = b.Req(b.SMB2_READ, b.read_body(file_id, 0, 4), tree_id=c.tree_id, session_id=c.session_id)
        assert with_channel_sequence(c, read, 4).status == b.STATUS_SUCCESS
        assert write(6) == b.STATUS_SUCCESS
        assert c.close_file(file_id) == b.STATUS_SUCCESS


def test_logoff_keeps_a_durable_open_for_a_reconnect(server: SmbServer) -> None:
    """Samba 4.17 ends a session's durable opens on LOGOFF as on a dropped connection: they stay, disconnected,
    for a reconnect (smbtorture smb2.durable-open.reopen1a's PreviousSessionId); TREE_DISCONNECT closes them
    (reopen3)."""
    guid, create_guid = uuid.uuid4().bytes, uuid.uuid4().bytes
    with connect(server, guid) as c:
        response = create(c, "after-logoff.txt", LEVEL_BATCH, dh2q(create_guid))
        file_id = b.create_file_id(response.body)
        assert c.request(b.SMB2_LOGOFF, struct.pack("<HH", 4, 0)).status == b.STATUS_SUCCESS
    with connect(server, guid) as back:
        response = create(back, "after-logoff.txt", LEVEL_BATCH, dh2c(file_id, create_guid))
        assert response.status == b.STATUS_SUCCESS and response.body[2] == LEVEL_BATCH
        assert back.request(b.SMB2_TREE_DISCONNECT, struct.pack("<HH", 4, 0)).status == b.STATUS_SUCCESS
        assert back.tree_connect("share").status == b.STATUS_SUCCESS
        assert create(back, "after-logoff.txt", LEVEL_BATCH, dh2c(file_id, create_guid)).status == \
            b.STATUS_OBJECT_NAME_NOT_FOUND


def test_a_create_waiting_for_a_break_cannot_be_replayed_yet(server: SmbServer) -> None:
    """While a DH2Q create waits for an oplock break, a create with its CreateGuid (a replay or not) gets
    STATUS_FILE_NOT_AVAILABLE, so the client retries it (Samba 4.17; smb2.replay.dhv2-pending1*-sane); once the
    holder acknowledges, the waiting create completes and its replay returns that open."""
    holder = connect(server, uuid.uuid4().bytes)
    try:
        response = create(holder, "contested.txt", LEVEL_BATCH, b"")
        held = b.create_file_id(response.body)
        guid, create_guid = uuid.uuid4().bytes, uuid.uuid4().bytes
        with connect(server, guid) as waiter:
            req = b.Req(b.SMB2_CREATE, b.create_body("contested.txt", desired_access=READ_WRITE,
                                                     disposition=b.FILE_OPEN_IF, share_access=b.FILE_SHARE_ALL,
                                                     oplock=LEVEL_BATCH, contexts=dh2q(create_guid)),
                        tree_id=waiter.tree_id, session_id=waiter.session_id)
            (waiting,) = waiter.send(req)
            assert waiter.receive(waiting, skip_pending=False).status == b.STATUS_PENDING
            for flags in (SMB2_FLAGS_REPLAY_OPERATION, 0):
                again = create(waiter, "contested.txt", LEVEL_BATCH, dh2q(create_guid), flags=flags)
                assert again.status == STATUS_FILE_NOT_AVAILABLE
            ack = struct.pack("<HBBIQQ", 24, LEVEL_II, 0, 0, *held)
            assert holder.request(0x12, ack).status == b.STATUS_SUCCESS
            done = waiter.receive(waiting)
            assert done.status == b.STATUS_SUCCESS
            replay = create(waiter, "contested.txt", LEVEL_BATCH, dh2q(create_guid),
                            flags=SMB2_FLAGS_REPLAY_OPERATION)
            assert replay.status == b.STATUS_SUCCESS
            assert b.create_file_id(replay.body) == b.create_file_id(done.body)
            assert waiter.close_file(b.create_file_id(done.body)) == b.STATUS_SUCCESS
        holder.close_file(held)
    finally:
        holder.close()


def test_locks_resent_after_a_reconnect_are_not_applied_twice(server: SmbServer) -> None:
    """[MS-SMB2] 3.3.5.14: on a durable open, a LOCK whose LockSequence entry (index 1-64) holds its number was
    done already. A client that lost the answers with its connection resends both requests after the reconnect:
    neither is applied again (the unlock would fail, and the lock would take back a range the client released).
    Samba 4.17 does the same (smbtorture smb2.lock.replay_smb3_specification_durable)."""
    guid, create_guid, key = uuid.uuid4().bytes, uuid.uuid4().bytes, uuid.uuid4().bytes
    first = connect(server, guid)
    response = create(first, "locked.txt", LEVEL_LEASE, b.chain_contexts(lease(key, R | W | H), dh2q(create_guid)))
    assert response.status == b.STATUS_SUCCESS
    file_id = b.create_file_id(response.body)
    assert lock_sequenced(first, file_id, EXCLUSIVE, 0x11) == b.STATUS_SUCCESS
    assert lock_sequenced(first, file_id, b.SMB2_LOCKFLAG_UNLOCK, 0x21) == b.STATUS_SUCCESS
    first.close()
    time.sleep(0.3)
    with connect(server, guid) as second:
        response = create(second, "locked.txt", LEVEL_LEASE, b.chain_contexts(lease(key, R | W | H), dh2c(file_id, create_guid)))
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert lock_sequenced(second, file_id, b.SMB2_LOCKFLAG_UNLOCK, 0x21) == b.STATUS_SUCCESS
        assert lock_sequenced(second, file_id, EXCLUSIVE, 0x11) == b.STATUS_SUCCESS
        # Neither was applied: the range is not locked (an unlock with a new number is checked and fails).
        assert lock_sequenced(second, file_id, b.SMB2_LOCKFLAG_UNLOCK, 0x22) == b.STATUS_RANGE_NOT_LOCKED
        # A new number in the lock's entry is a new request: it locks, and its own resend does not lock twice.
        assert lock_sequenced(second, file_id, EXCLUSIVE, 0x12) == b.STATUS_SUCCESS
        assert lock_sequenced(second, file_id, EXCLUSIVE, 0x12) == b.STATUS_SUCCESS
        assert lock_sequenced(second, file_id, b.SMB2_LOCKFLAG_UNLOCK, 0x23) == b.STATUS_SUCCESS
        assert lock_sequenced(second, file_id, b.SMB2_LOCKFLAG_UNLOCK, 0x24) == b.STATUS_RANGE_NOT_LOCKED
        # Index 0 (and anything above 64) names no entry: never treated as a resend.
        for sequence in (0x001, 0x411):
            assert lock_sequenced(second, file_id, EXCLUSIVE, sequence) == b.STATUS_SUCCESS
            assert lock_sequenced(second, file_id, EXCLUSIVE, sequence) == b.STATUS_LOCK_NOT_GRANTED
            assert lock_sequenced(second, file_id, b.SMB2_LOCKFLAG_UNLOCK, sequence) == b.STATUS_SUCCESS
            assert lock_sequenced(second, file_id, b.SMB2_LOCKFLAG_UNLOCK, sequence) == b.STATUS_RANGE_NOT_LOCKED
        assert second.close_file(file_id) == b.STATUS_SUCCESS


@pytest.mark.parametrize("multichannel", [False, True], ids=["plain", "multichannel"])
def test_lock_sequences_of_an_open_that_is_not_durable(server: SmbServer, multichannel: bool) -> None:
    """Without a durable handle, LockSequence is verified only on a 3.x connection that negotiated multichannel
    ([MS-SMB2] 3.3.5.14; Samba 4.17 alike, smbtorture smb2.lock.replay_smb3_specification_multi): elsewhere a
    resend is a new request, and a second lock of the same range conflicts with the first."""
    with b.Client(server.host, server.port).connect() as client:
        capabilities = SMB2_GLOBAL_CAP_MULTI_CHANNEL if multichannel else 0
        assert client.negotiate(capabilities=capabilities).status == b.STATUS_SUCCESS
        assert client.session_setup(USER, PASSWORD) == b.STATUS_SUCCESS
        assert client.tree_connect("share").status == b.STATUS_SUCCESS
        response = create(client, "plain.txt", LEVEL_NONE, b"")
        assert response.status == b.STATUS_SUCCESS
        file_id = b.create_file_id(response.body)
        assert lock_sequenced(client, file_id, EXCLUSIVE, 0x11) == b.STATUS_SUCCESS
        expected = b.STATUS_SUCCESS if multichannel else b.STATUS_LOCK_NOT_GRANTED
        assert lock_sequenced(client, file_id, EXCLUSIVE, 0x11) == expected
        assert client.close_file(file_id) == b.STATUS_SUCCESS
