"""Requests that go async inside a compound ([MS-SMB2] 3.3.5.2.7 and its note <262>): one that may wait for ever
(a blocking LOCK here; CHANGE_NOTIFY in test_notify_raw.py) fails with STATUS_INTERNAL_ERROR when requests
follow it, as on Windows, leaving nothing behind, and the rest of the chain runs; a wait with an end in sight
(a placeholder's hydration, a rename waiting for a lease break) goes async there and the related requests after
it run once it is answered, so the compounds real clients send (cifs.ko CREATE + SET_INFO + CLOSE, macOS
CREATE + READ + CLOSE) keep working (protocol/connection.py, GoAsync.holds_chain)."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import SmbServer, assert_no_server_bugs, checked_while
from tests.integration.hsm_helpers import hsm_cli, hsm_server, is_placeholder, make_file
from tests.integration.test_oplocks import DIALECTS_3, LEVEL_LEASE, H, R, lease_ack, lease_v2, next_break

STATUS_INTERNAL_ERROR = 0xC00000E5
STATUS_LOCK_NOT_GRANTED = 0xC0000055
EXCLUSIVE, FAIL_IMMEDIATELY, UNLOCK = 0x02, 0x10, 0x04
FILE_BASIC_INFORMATION = 4
FILE_END_OF_FILE_INFORMATION = 20
RELATED = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
_READ_WRITE = b.GENERIC_READ | b.GENERIC_WRITE


@pytest.fixture
def server(module_server: SmbServer) -> Iterator[SmbServer]:
    with checked_while(module_server) as checked:
        yield checked


def blocking_lock_compound(client: b.Client, name: str) -> tuple[int, int, int, tuple[int, int]]:
    """CREATE(name) + LOCK(bytes 0-9, exclusive, blocking) + QUERY_INFO(FileBasicInformation), related: the three
    statuses and the handle CREATE made."""
    ids = client.send(
        b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=_READ_WRITE, disposition=b.FILE_OPEN)),
        b.Req(b.SMB2_LOCK, b.lock_body(RELATED, [(0, 10, EXCLUSIVE)]), related=True),
        b.Req(b.SMB2_QUERY_INFO, b.query_info_body(RELATED, b.SMB2_0_INFO_FILE, FILE_BASIC_INFORMATION),
              related=True))
    create, lock, query = (client.receive(message_id, skip_pending=False) for message_id in ids)
    assert not lock.header.is_async  # answered within the compound, no interim response
    return create.status, lock.status, query.status, b.create_file_id(create.body)


def test_a_blocking_lock_in_the_middle_of_a_compound_fails_and_is_not_taken(server: SmbServer) -> None:
    """Samba 4.17 (benchmarks/servers.py SambaServer, same client) answers STATUS_SUCCESS, STATUS_CANCELLED,
    STATUS_SUCCESS: it cancels the waiting lock (smb2_server.c smbd_smb2_request_pending_queue); the lock is
    not taken there either."""
    name = f"lock-{uuid.uuid4().hex[:10]}.bin"
    with b.connect(server.host, server.port, server.user, server.password) as holder, \
            b.connect(server.host, server.port, server.user, server.password) as client:
        held = holder.open(name, desired_access=_READ_WRITE, disposition=b.FILE_CREATE)
        assert holder.request(b.SMB2_LOCK, b.lock_body(held, [(0, 10, EXCLUSIVE | FAIL_IMMEDIATELY)])).status == 0
        create, lock, query, handle = blocking_lock_compound(client, name)
        assert (b.status_name(create), hex(lock), b.status_name(query)) == (
            "STATUS_SUCCESS", hex(STATUS_INTERNAL_ERROR), "STATUS_SUCCESS")
        # Not queued: once the holder unlocks, the range is free (a queued lock would take it now), and the
        # failed request gets no second answer.
        assert holder.request(b.SMB2_LOCK, b.lock_body(held, [(0, 10, UNLOCK)])).status == b.STATUS_SUCCESS
        assert client.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS
        assert holder.request(b.SMB2_LOCK, b.lock_body(held, [(0, 10, EXCLUSIVE | FAIL_IMMEDIATELY)])).status == 0
        assert client.request(b.SMB2_LOCK, b.lock_body(handle, [(0, 10, EXCLUSIVE | FAIL_IMMEDIATELY)])).status \
            == STATUS_LOCK_NOT_GRANTED
        assert not [response for response in client._stash if response.header.command == b.SMB2_LOCK]
        assert client.close_file(handle) == b.STATUS_SUCCESS
        assert holder.close_file(held) == b.STATUS_SUCCESS


def test_the_last_request_of_a_compound_still_waits(server: SmbServer) -> None:
    """The same LOCK at the end of the compound goes async, and the holder's unlock grants it."""
    name = f"lock-{uuid.uuid4().hex[:10]}.bin"
    with b.connect(server.host, server.port, server.user, server.password) as holder, \
            b.connect(server.host, server.port, server.user, server.password) as client:
        held = holder.open(name, desired_access=_READ_WRITE, disposition=b.FILE_CREATE)
        assert holder.request(b.SMB2_LOCK, b.lock_body(held, [(0, 10, EXCLUSIVE | FAIL_IMMEDIATELY)])).status == 0
        ids = client.send(
            b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=_READ_WRITE, disposition=b.FILE_OPEN)),
            b.Req(b.SMB2_LOCK, b.lock_body(RELATED, [(0, 10, EXCLUSIVE)]), related=True))
        create = client.receive(ids[0])
        assert create.status == b.STATUS_SUCCESS
        assert b.status_name(client.receive(ids[1], skip_pending=False).status) == "STATUS_PENDING"
        assert holder.request(b.SMB2_LOCK, b.lock_body(held, [(0, 10, UNLOCK)])).status == b.STATUS_SUCCESS
        assert client.receive(ids[1]).status == b.STATUS_SUCCESS
        assert client.close_file(b.create_file_id(create.body)) == b.STATUS_SUCCESS
        assert holder.close_file(held) == b.STATUS_SUCCESS


def test_a_rename_waiting_for_a_lease_break_holds_the_rest_of_the_compound(server: SmbServer) -> None:
    """cifs.ko renames a path with CREATE + SET_INFO(FileRenameInformation) + CLOSE. When another client holds
    an RH lease (and the renaming open has a lease: only then does a rename wait, as with Samba 4.17's
    delay_rename_for_lease_break), the rename waits for its break: in the middle of the compound too, and the
    CLOSE runs after it (Windows, smbtorture smb2.compound_async.rename_middle of Samba 4.22; Samba 4.17 fails
    the rename with STATUS_INTERNAL_ERROR there)."""
    source, target = f"src-{uuid.uuid4().hex[:8]}.txt", f"dst-{uuid.uuid4().hex[:8]}.txt"
    key = uuid.uuid4().bytes
    with b.connect(server.host, server.port, server.user, server.password, dialects=DIALECTS_3) as holder, \
            b.connect(server.host, server.port, server.user, server.password, dialects=DIALECTS_3) as client:
        leased = holder.create(source, desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                               oplock=LEVEL_LEASE, contexts=lease_v2(key, R | H))
        assert leased.status == b.STATUS_SUCCESS
        ids = client.send(
            b.Req(b.SMB2_CREATE, b.create_body(source, desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                                               oplock=LEVEL_LEASE, contexts=lease_v2(uuid.uuid4().bytes, R | H))),
            b.Req(b.SMB2_SET_INFO, b.set_info_body(RELATED, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                                   b.rename_info(target)), related=True),
            b.Req(b.SMB2_CLOSE, b.close_body(RELATED), related=True))
        assert struct.unpack_from("<HHI16sII", next_break(holder).body)[3:] == (key, R | H, R)
        assert b.status_name(client.receive(ids[1], skip_pending=False).status) == "STATUS_PENDING"
        assert lease_ack(holder, key, R).status == b.STATUS_SUCCESS
        assert [b.status_name(client.receive(message_id).status) for message_id in ids] == ["STATUS_SUCCESS"] * 3
        assert holder.close_file(b.create_file_id(leased.body)) == b.STATUS_SUCCESS
    assert (server.share_path / target).exists() and not (server.share_path / source).exists()


def test_a_hydration_in_a_compound_holds_the_requests_after_it(tmp_path: Path) -> None:
    """CREATE + READ + CLOSE (macOS reads a small file so) and CREATE + SET_INFO(EndOfFile) + CLOSE (cifs.ko's
    truncate(2) of a path) on placeholders: the READ or SET_INFO waits for the hydration (interim response),
    then the CLOSE runs, and all three succeed (docs/hsm.md)."""
    share, cold = tmp_path / "share", tmp_path / "cold"
    share.mkdir()
    cold.mkdir()
    data = make_file(share / "r.bin", 300000)
    make_file(share / "t.bin", 300000, seed=2)
    with hsm_server(tmp_path, share, hsm_provider="directory", hsm_directory=str(cold)) as (server, config):
        hsm_cli(config, "release", str(share / "r.bin"), str(share / "t.bin"))
        assert is_placeholder(share / "r.bin") and is_placeholder(share / "t.bin")
        with b.connect(server.host, server.port, server.user, server.password) as client:
            ids = client.send(
                b.Req(b.SMB2_CREATE, b.create_body("r.bin", desired_access=b.GENERIC_READ)),
                b.Req(b.SMB2_READ, b.read_body(RELATED, 1000, 4096), related=True),
                b.Req(b.SMB2_CLOSE, b.close_body(RELATED), related=True))
            create, read, close = (client.receive(message_id) for message_id in ids)
            assert [b.status_name(r.status) for r in (create, read, close)] == ["STATUS_SUCCESS"] * 3
            assert b.read_data(read) == data[1000:5096]
            ids = client.send(
                b.Req(b.SMB2_CREATE, b.create_body("t.bin", desired_access=_READ_WRITE)),
                b.Req(b.SMB2_SET_INFO, b.set_info_body(RELATED, b.SMB2_0_INFO_FILE, FILE_END_OF_FILE_INFORMATION,
                                                       struct.pack("<q", 1000)), related=True),
                b.Req(b.SMB2_CLOSE, b.close_body(RELATED), related=True))
            assert [b.status_name(client.receive(message_id).status) for message_id in ids] == \
                ["STATUS_SUCCESS"] * 3
            assert len(client.interims) == 2  # the READ and the SET_INFO each went async
        assert (share / "t.bin").read_bytes() == make_file(tmp_path / "t.ref", 300000, seed=2)[:1000]
        assert_no_server_bugs(server)
