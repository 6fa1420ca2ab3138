"""Oplocks and leases against the daemon ([MS-SMB2] 3.3.5.9.8, 3.3.5.9.11, 3.3.4.6, 3.3.4.7, 3.3.5.22).

Raw requests (tests/builders.py) see every message, the unsolicited break notifications (MessageId
0xFFFFFFFFFFFFFFFF) included: grants, break delivery on another and on the same connection, the conflicting
CREATE answered STATUS_PENDING until the holder acknowledges or the break times out, and the acknowledgment
errors with their exact NTSTATUS. smbprotocol (whose receive thread cannot take an unsolicited message) checks
the grants a real client reads from the CREATE response and its lease context.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from smbprotocol.connection import Connection
from smbprotocol.create_contexts import (
    CreateContextName,
    SMB2CreateContextRequest,
    SMB2CreateRequestLeaseV2,
    SMB2CreateResponseLeaseV2,
)
from smbprotocol.open import (
    CreateDisposition,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer, assert_no_server_bugs, start_server, stop_server
from tests.integration import posix_helpers as p

SMB2_OPLOCK_BREAK = 0x12
NO_MESSAGE_ID = 0xFFFFFFFFFFFFFFFF
LEVEL_NONE, LEVEL_II, LEVEL_EXCLUSIVE, LEVEL_BATCH, LEVEL_LEASE = 0, 1, 8, 9, 0xFF
R, H, W = 1, 2, 4
READ_WRITE = 0x0012019F
STATUS_UNSUCCESSFUL = 0xC0000001
STATUS_INVALID_OPLOCK_PROTOCOL = 0xC00000E3
STATUS_REQUEST_NOT_ACCEPTED = 0xC00000D0
DIALECTS_3 = (0x0300, 0x0302, 0x0311)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmbServer]:
    share, uncached = tmp_path / "share", tmp_path / "uncached"
    share.mkdir()
    uncached.mkdir()
    config = tmp_path / "smbsrv.toml"
    # A short break timeout so the timeout test does not wait 35 s; the others acknowledge at once.
    config.write_text(f'[server]\noplock_break_timeout_s = 2\n\n[shares.share]\npath = "{share}"\n\n'
                      f'[shares.uncached]\npath = "{uncached}"\noplocks = false\n')
    smb = start_server(share, tmp_path / "server.log", config=config)
    try:
        yield smb
    finally:
        stop_server(smb.process)
    assert_no_server_bugs(smb)


def client(smb: SmbServer, dialects: tuple[int, ...] = b.DIALECTS_ALL) -> b.Client:
    return b.connect(smb.host, smb.port, USER, PASSWORD, dialects=dialects)


def create_req(c: b.Client, name: str, oplock: int, contexts: bytes = b"", access: int = READ_WRITE,
               disposition: int = b.FILE_OPEN_IF, share_access: int = b.FILE_SHARE_ALL) -> b.Req:
    return b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=access, disposition=disposition,
                                              share_access=share_access, oplock=oplock, contexts=contexts),
                 tree_id=c.tree_id, session_id=c.session_id)


def lease_v2(key: bytes, state: int, epoch: int = 0) -> bytes:
    return b.create_context(b"RqLs", struct.pack("<16sIIQ16sHH", key, state, 0, 0, bytes(16), epoch, 0))


def lease_response(body: bytes) -> tuple[int, int, int]:
    """(LeaseState, Flags, Epoch) of the RqLs context in a CREATE response."""
    offset, length = struct.unpack_from("<II", body, 80)
    blob = body[offset - b.HEADER_SIZE:offset - b.HEADER_SIZE + length]
    name_offset, name_length, _, data_offset, data_length = struct.unpack_from("<HHHHI", blob, 4)
    assert blob[name_offset:name_offset + name_length] == b"RqLs"
    data = blob[data_offset:data_offset + data_length]
    _key, state, flags, _ = struct.unpack_from("<16sIIQ", data)
    epoch = struct.unpack_from("<H", data, 48)[0] if len(data) == 52 else 0
    return state, flags, epoch


def next_break(c: b.Client, timeout_s: float = 5.0) -> b.Response:
    """The next unsolicited OPLOCK_BREAK on `c`; other messages stay stashed for receive()."""
    for index, response in enumerate(c._stash):
        if response.header.message_id == NO_MESSAGE_ID:
            return c._stash.pop(index)
    assert c.sock is not None
    c.sock.settimeout(timeout_s)
    try:
        while True:
            for response in c.receive_message():
                if response.header.message_id == NO_MESSAGE_ID:
                    assert response.header.command == SMB2_OPLOCK_BREAK and response.header.credits == 0
                    return response
                c._stash.append(response)
    finally:
        c.sock.settimeout(c.timeout_s)


def no_break(c: b.Client, wait_s: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        next_break(c, wait_s)


def oplock_ack(c: b.Client, file_id: tuple[int, int], level: int) -> b.Response:
    return c.request(SMB2_OPLOCK_BREAK, struct.pack("<HBBIQQ", 24, level, 0, 0, *file_id))


def lease_ack(c: b.Client, key: bytes, state: int) -> b.Response:
    return c.request(SMB2_OPLOCK_BREAK, struct.pack("<HHI16sIQ", 36, 0, 0, key, state, 0))


def test_batch_break_on_another_connection_waits_for_the_ack(server: SmbServer) -> None:
    with client(server) as holder, client(server) as other:
        status, body, _ = holder.request(b.SMB2_CREATE, create_req(holder, "f.txt", LEVEL_BATCH).body)
        assert status == b.STATUS_SUCCESS and body[2] == LEVEL_BATCH
        file_id = b.create_file_id(body)
        (mid,) = other.send(create_req(other, "f.txt", LEVEL_BATCH))
        notification = next_break(holder)
        assert notification.header.session_id == holder.session_id
        assert struct.unpack("<HBBIQQ", notification.body) == (24, LEVEL_II, 0, 0, *file_id)
        interim = other.receive(mid, skip_pending=False)
        assert interim.status == b.STATUS_PENDING and interim.header.is_async
        ack = oplock_ack(holder, file_id, LEVEL_II)
        assert ack.status == b.STATUS_SUCCESS and struct.unpack("<HBBIQQ", ack.body)[1] == LEVEL_II
        final = other.receive(mid)
        assert final.status == b.STATUS_SUCCESS and final.body[2] == LEVEL_II  # no W next to another open
        # A WRITE breaks every level II to none, the writer's own included; no acknowledgment is expected.
        assert holder.write(file_id, 0, b"data").status == b.STATUS_SUCCESS
        assert struct.unpack("<HBBIQQ", next_break(holder).body)[1] == LEVEL_NONE
        assert struct.unpack("<HBBIQQ", next_break(other).body)[1] == LEVEL_NONE
        assert oplock_ack(holder, file_id, LEVEL_NONE).status == STATUS_INVALID_OPLOCK_PROTOCOL


def test_break_on_the_same_connection(server: SmbServer) -> None:
    with client(server) as c:
        status, body, _ = c.request(b.SMB2_CREATE, create_req(c, "same.txt", LEVEL_EXCLUSIVE).body)
        assert status == b.STATUS_SUCCESS and body[2] == LEVEL_EXCLUSIVE
        file_id = b.create_file_id(body)
        (mid,) = c.send(create_req(c, "same.txt", LEVEL_NONE))
        assert struct.unpack("<HBBIQQ", next_break(c).body)[1:2] == (LEVEL_II,)
        assert oplock_ack(c, file_id, LEVEL_NONE).status == b.STATUS_SUCCESS  # the client may go further down
        final = c.receive(mid)
        assert final.status == b.STATUS_SUCCESS and final.body[2] == LEVEL_NONE


def test_compound_after_a_waiting_create(server: SmbServer) -> None:
    """A related request after a CREATE that waits for a break runs on the new handle once the CREATE is
    answered (smbtorture smb2.compound.compound-break)."""
    with client(server) as holder, client(server) as other:
        status, body, _ = holder.request(b.SMB2_CREATE, create_req(holder, "chain.txt", LEVEL_BATCH).body)
        assert status == b.STATUS_SUCCESS
        file_id = b.create_file_id(body)
        query = b.Req(b.SMB2_QUERY_INFO, b.query_info_body(b.RELATED_FILE_ID, b.SMB2_0_INFO_FILE,
                                                          b.FILE_STANDARD_INFORMATION), related=True,
                      tree_id=other.tree_id, session_id=other.session_id)
        create_id, query_id = other.send(create_req(other, "chain.txt", LEVEL_NONE), query)
        next_break(holder)
        assert other.receive(create_id, skip_pending=False).status == b.STATUS_PENDING
        assert oplock_ack(holder, file_id, LEVEL_II).status == b.STATUS_SUCCESS
        assert other.receive(create_id).status == b.STATUS_SUCCESS
        assert other.receive(query_id).status == b.STATUS_SUCCESS


def test_sharing_violation_after_the_break(server: SmbServer) -> None:
    with client(server) as holder, client(server) as other:
        status, body, _ = holder.request(b.SMB2_CREATE, create_req(holder, "excl.txt", LEVEL_BATCH,
                                                                   share_access=0).body)
        assert status == b.STATUS_SUCCESS
        file_id = b.create_file_id(body)
        (mid,) = other.send(create_req(other, "excl.txt", LEVEL_NONE))
        next_break(holder)
        assert oplock_ack(holder, file_id, LEVEL_II).status == b.STATUS_SUCCESS
        assert other.receive(mid).status == b.STATUS_SHARING_VIOLATION  # the holder kept its handle


def test_break_times_out(server: SmbServer) -> None:
    with client(server) as holder, client(server) as other:
        status, body, _ = holder.request(b.SMB2_CREATE, create_req(holder, "slow.txt", LEVEL_BATCH).body)
        assert status == b.STATUS_SUCCESS
        file_id = b.create_file_id(body)
        started = time.monotonic()
        (mid,) = other.send(create_req(other, "slow.txt", LEVEL_NONE))
        next_break(holder)
        final = other.receive(mid)  # nobody acknowledges: the configured 2 s pass
        waited = time.monotonic() - started
        assert final.status == b.STATUS_SUCCESS and 1.5 < waited < 8, waited
        # The break was taken as acknowledged to none: a late acknowledgment has nothing to acknowledge.
        assert oplock_ack(holder, file_id, LEVEL_II).status == STATUS_INVALID_OPLOCK_PROTOCOL


def test_holder_closing_lets_the_open_go_on(server: SmbServer) -> None:
    with client(server) as holder, client(server) as other:
        _, body, _ = holder.request(b.SMB2_CREATE, create_req(holder, "close.txt", LEVEL_BATCH,
                                                             share_access=0).body)
        file_id = b.create_file_id(body)
        (mid,) = other.send(create_req(other, "close.txt", LEVEL_BATCH))
        next_break(holder)
        assert holder.close_file(file_id) == b.STATUS_SUCCESS
        final = other.receive(mid)
        assert final.status == b.STATUS_SUCCESS and final.body[2] == LEVEL_BATCH


def test_oplock_ack_errors(server: SmbServer) -> None:
    with client(server) as c:
        _, body, _ = c.request(b.SMB2_CREATE, create_req(c, "ack.txt", LEVEL_BATCH).body)
        file_id = b.create_file_id(body)
        assert oplock_ack(c, file_id, LEVEL_II).status == STATUS_INVALID_OPLOCK_PROTOCOL  # no break sent
        assert oplock_ack(c, (file_id[0] + 1000, file_id[1] + 1000), LEVEL_II).status == b.STATUS_FILE_CLOSED
        (mid,) = c.send(create_req(c, "ack.txt", LEVEL_NONE))
        next_break(c)
        assert oplock_ack(c, file_id, LEVEL_EXCLUSIVE).status == b.STATUS_INVALID_PARAMETER
        bad_size = c.request(SMB2_OPLOCK_BREAK, struct.pack("<HBBIQQ", 25, LEVEL_II, 0, 0, *file_id))
        assert bad_size.status == b.STATUS_INVALID_PARAMETER
        assert oplock_ack(c, file_id, LEVEL_II).status == b.STATUS_SUCCESS
        assert c.receive(mid).status == b.STATUS_SUCCESS


def test_lease_grant_break_and_ack_errors(server: SmbServer) -> None:
    key = uuid.uuid4().bytes
    with client(server, DIALECTS_3) as holder, client(server, DIALECTS_3) as other:
        status, body, _ = holder.request(b.SMB2_CREATE, create_req(holder, "lease.txt", LEVEL_LEASE,
                                                                   lease_v2(key, R | W | H, epoch=7)).body)
        assert status == b.STATUS_SUCCESS and body[2] == LEVEL_LEASE
        assert lease_response(body) == (R | W | H, 0, 8)  # the epoch the client sent, plus one
        assert lease_ack(holder, key, R | H).status == STATUS_UNSUCCESSFUL  # nothing is breaking
        assert lease_ack(holder, uuid.uuid4().bytes, R).status == b.STATUS_OBJECT_NAME_NOT_FOUND
        other_key = uuid.uuid4().bytes
        (mid,) = other.send(create_req(other, "lease.txt", LEVEL_LEASE, lease_v2(other_key, R | W | H)))
        notification = next_break(holder)
        assert notification.header.session_id == 0
        size, epoch, flags, lease_key, current, new = struct.unpack_from("<HHI16sII", notification.body)
        assert (size, epoch, flags, lease_key, current, new) == (44, 9, 1, key, R | W | H, R | H)
        assert other.receive(mid, skip_pending=False).status == b.STATUS_PENDING
        assert lease_ack(holder, key, R | W | H).status == STATUS_REQUEST_NOT_ACCEPTED
        assert lease_ack(other, key, R | H).status == b.STATUS_OBJECT_NAME_NOT_FOUND  # another client's lease
        ack = lease_ack(holder, key, R | H)
        assert ack.status == b.STATUS_SUCCESS and struct.unpack_from("<HHI16sI", ack.body)[3:] == (key, R | H)
        final = other.receive(mid)
        assert final.status == b.STATUS_SUCCESS and lease_response(final.body)[0] == R | H
        # The same key names one file per client.
        clash = holder.request(b.SMB2_CREATE, create_req(holder, "other.txt", LEVEL_LEASE, lease_v2(key, R)).body)
        assert clash.status == b.STATUS_INVALID_PARAMETER


def test_no_leases_on_2_0_2(server: SmbServer) -> None:
    with client(server, (0x0202,)) as c:
        status, body, _ = c.request(b.SMB2_CREATE, create_req(c, "old.txt", LEVEL_LEASE,
                                                             lease_v2(uuid.uuid4().bytes, R | W | H)).body)
        assert status == b.STATUS_SUCCESS and body[2] == LEVEL_NONE
        assert struct.unpack_from("<I", body, 84)[0] == 0  # no lease context in the response


def test_local_write_breaks_leases_and_oplocks(server: SmbServer) -> None:
    """A process on the server writing the file (not through SMB) breaks what clients cache: reported by the
    kernel change feed (fanotify; the daemon runs as root), every oplock and lease of the file goes to none."""
    key = uuid.uuid4().bytes
    with client(server, DIALECTS_3) as c:
        status, body, _ = c.request(b.SMB2_CREATE, create_req(c, "local.txt", LEVEL_LEASE,
                                                             lease_v2(key, R | W | H)).body)
        assert status == b.STATUS_SUCCESS and lease_response(body)[0] == R | W | H  # the share is covered
        with open(server.share_path / "local.txt", "ab") as local:
            local.write(b"written outside SMB")
        _, _, flags, lease_key, current, new = struct.unpack_from("<HHI16sII", next_break(c).body)
        assert (lease_key, current, new, flags) == (key, R | W | H, 0, 1)
        assert lease_ack(c, key, 0).status == b.STATUS_SUCCESS
        status, body, _ = c.request(b.SMB2_CREATE, create_req(c, "local.txt", LEVEL_BATCH).body)
        assert status == b.STATUS_SUCCESS and body[2] == LEVEL_II  # another open (the leased one) exists
        with open(server.share_path / "local.txt", "ab") as local:
            local.write(b"again")
        assert struct.unpack("<HBBIQQ", next_break(c).body)[1] == LEVEL_NONE
        no_break(c)


def test_share_without_oplocks_grants_none(server: SmbServer) -> None:
    """`oplocks = false` (for shares whose files also change outside SMB): nothing is cached, no lease context."""
    with b.connect(server.host, server.port, USER, PASSWORD, share="uncached", dialects=DIALECTS_3) as c:
        for oplock, contexts in ((LEVEL_BATCH, b""), (LEVEL_LEASE, lease_v2(uuid.uuid4().bytes, R | W | H))):
            status, body, _ = c.request(b.SMB2_CREATE, create_req(c, "plain.txt", oplock, contexts).body)
            assert status == b.STATUS_SUCCESS and body[2] == LEVEL_NONE
            assert struct.unpack_from("<I", body, 84)[0] == 0
            assert c.close_file(b.create_file_id(body)) == b.STATUS_SUCCESS


@pytest.mark.parametrize("tag", [b"DHnC", b"DH2C"])
def test_durable_reconnect_to_an_unknown_handle(server: SmbServer, tag: bytes) -> None:
    data = bytes(16) if tag == b"DHnC" else bytes(16) + uuid.uuid4().bytes + bytes(4)
    with client(server) as c:
        c.write_file("durable.txt", b"x")
        response = c.create("durable.txt", desired_access=READ_WRITE, oplock=LEVEL_BATCH,
                            contexts=b.create_context(tag, data))
        assert response.status == b.STATUS_OBJECT_NAME_NOT_FOUND


def test_smbprotocol_sees_oplock_and_lease_grants(server: SmbServer) -> None:
    connection = Connection(uuid.uuid4(), server.host, server.port, require_signing=False)
    connection.connect()
    try:
        session = Session(connection, USER, PASSWORD, require_encryption=False)
        session.connect()
        tree = TreeConnect(session, rf"\\{server.host}\share")
        tree.connect()
        access = FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE
        share = ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE
        batch = Open(tree, "smbprotocol-batch.txt")
        batch.create(ImpersonationLevel.Impersonation, access, 0, share, CreateDisposition.FILE_OVERWRITE_IF, 0,
                     oplock_level=LEVEL_BATCH)
        assert batch.oplock_level == LEVEL_BATCH
        batch.close()
        lease = SMB2CreateRequestLeaseV2()
        lease["lease_key"] = uuid.uuid4().bytes
        lease["lease_state"] = R | W | H
        lease["parent_lease_key"] = bytes(16)
        lease["epoch"] = 0
        context = SMB2CreateContextRequest()
        context["buffer_name"] = CreateContextName.SMB2_CREATE_REQUEST_LEASE
        context["buffer_data"] = lease
        leased = Open(tree, "smbprotocol-lease.txt")
        responses = leased.create(ImpersonationLevel.Impersonation, access, 0, share,
                                  CreateDisposition.FILE_OVERWRITE_IF, 0, oplock_level=LEVEL_LEASE,
                                  create_contexts=[context])
        assert leased.oplock_level == LEVEL_LEASE
        granted = [r for r in responses or [] if isinstance(r, SMB2CreateResponseLeaseV2)]
        assert len(granted) == 1 and granted[0]["lease_state"].get_value() == R | W | H
        leased.close()
    finally:
        connection.disconnect()


def test_posix_rename_over_a_leased_file_breaks_its_lease(server: SmbServer) -> None:
    """A rename that replaces a file open elsewhere (POSIX semantics) leaves the old file without its name: its
    RH lease is broken to none, so cifs.ko drops the handle it kept by deferred close instead of serving the new
    name from the old file (the 6.1 guest's rename_over_open step)."""
    key = uuid.uuid4().bytes
    with client(server, DIALECTS_3) as holder, \
            p.connect(server.host, server.port, USER, PASSWORD, "share", posix=True) as renamer:
        renamer.write_file("src", b"new")
        renamer.write_file("dst", b"old")
        status, body, _ = holder.request(b.SMB2_CREATE, create_req(holder, "dst", LEVEL_LEASE, lease_v2(key, R | H),
                                                                   access=b.GENERIC_READ).body)
        assert status == b.STATUS_SUCCESS and lease_response(body)[0] == R | H
        mover = p.posix_open(renamer, "src", desired_access=b.DELETE)
        response = renamer.set_info(mover, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                    b.rename_info("dst", replace_if_exists=True))
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        notification = next_break(holder)
        _size, _epoch, _flags, lease_key, current, new = struct.unpack_from("<HHI16sII", notification.body)
        assert (lease_key, current, new) == (key, R | H, 0)
        renamer.close_file(mover)
    assert (server.share_path / "dst").read_bytes() == b"new"
