"""Directory leases against the daemon ([MS-SMB2] 3.3.5.9.11, 3.3.4.7; [MS-FSA] 2.1.4.12 PARENT_OBJECT).

A client holding an R or RH lease on a directory learns of every create, delete, rename and attribute change
inside it made by another client, by the same client through another lease key, or by a local process; a
change made through an open whose ParentLeaseKey is the directory's lease key breaks nothing. Raw requests
(tests/builders.py) see the unsolicited break notifications.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer, assert_no_server_bugs, start_server, stop_server
from tests.integration.test_oplocks import (
    LEVEL_LEASE,
    LEVEL_NONE,
    READ_WRITE,
    H,
    R,
    W,
    lease_ack,
    lease_response,
    next_break,
    no_break,
)

DIALECTS_3 = (0x0300, 0x0302, 0x0311)
SMB2_GLOBAL_CAP_DIRECTORY_LEASING = 0x20
PARENT_KEY_SET = 0x4
FILE_LIST_DIRECTORY = 0x1
FILE_WRITE_ATTRIBUTES = 0x100
SYNCHRONIZE = 0x00100000
FILE_BASIC_INFORMATION = 4
SMB2_0_INFO_FILE = 1
STATUS_UNSUCCESSFUL = 0xC0000001


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmbServer]:
    share, plain = tmp_path / "share", tmp_path / "plain"
    share.mkdir()
    plain.mkdir()
    (share / "dir").mkdir()
    (plain / "dir").mkdir()
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[server]\noplock_break_timeout_s = 2\n\n[shares.share]\npath = "{share}"\n\n'
                      f'[shares.plain]\npath = "{plain}"\ndirectory_leases = false\n')
    smb = start_server(share, tmp_path / "server.log", config=config)
    for path in (share / "dir", plain / "dir"):
        os.chown(path, share.stat().st_uid, share.stat().st_gid)
    try:
        yield smb
    finally:
        stop_server(smb.process)
    assert_no_server_bugs(smb)


def client(smb: SmbServer, share: str = "share", capabilities: int = SMB2_GLOBAL_CAP_DIRECTORY_LEASING) -> b.Client:
    return b.connect(smb.host, smb.port, USER, PASSWORD, share=share, dialects=DIALECTS_3, capabilities=capabilities)


def lease_v2(key: bytes, state: int, parent: bytes | None = None) -> bytes:
    flags = PARENT_KEY_SET if parent is not None else 0
    return b.create_context(b"RqLs", struct.pack("<16sIIQ16sHH", key, state, flags, 0, parent or bytes(16), 0, 0))


def open_dir(c: b.Client, name: str, key: bytes, state: int = R | H) -> tuple[int, bytes]:
    """A directory open asking for a lease: (granted state, CREATE response body)."""
    status, body, _ = c.request(b.SMB2_CREATE, b.create_body(
        name, desired_access=FILE_LIST_DIRECTORY | SYNCHRONIZE, disposition=b.FILE_OPEN,
        options=b.FILE_DIRECTORY_FILE, oplock=LEVEL_LEASE, contexts=lease_v2(key, state)))
    assert status == b.STATUS_SUCCESS
    return (lease_response(body)[0] if body[2] == LEVEL_LEASE else -1), body


def create_file(c: b.Client, name: str, *, parent: bytes | None = None, key: bytes | None = None,
                options: int = 0) -> tuple[int, int]:
    contexts = lease_v2(key or uuid.uuid4().bytes, R, parent) if parent is not None or key is not None else b""
    status, body, _ = c.request(b.SMB2_CREATE, b.create_body(
        name, desired_access=READ_WRITE | b.DELETE, disposition=b.FILE_OPEN_IF, options=options,
        oplock=LEVEL_LEASE if contexts else LEVEL_NONE, contexts=contexts))
    assert status == b.STATUS_SUCCESS, b.status_name(status)
    return b.create_file_id(body)


def lease_break(c: b.Client) -> tuple[bytes, int, int, int]:
    """(LeaseKey, CurrentLeaseState, NewLeaseState, Flags) of the next lease break on `c`."""
    _, _, flags, key, current, new = struct.unpack_from("<HHI16sII", next_break(c).body)
    return key, current, new, flags


def test_capability_and_grants(server: SmbServer) -> None:
    """RH and R are granted as asked, W never; 3.x advertises SMB2_GLOBAL_CAP_DIRECTORY_LEASING."""
    with client(server) as c:
        assert c.negotiate_response is not None
        assert struct.unpack_from("<I", c.negotiate_response.body, 24)[0] & SMB2_GLOBAL_CAP_DIRECTORY_LEASING
        assert open_dir(c, "dir", uuid.uuid4().bytes, R | W | H)[0] == R | H
        assert open_dir(c, "dir", uuid.uuid4().bytes, R)[0] == R
        assert open_dir(c, "", uuid.uuid4().bytes, R | H)[0] == R | H  # the share root too
        assert open_dir(c, "dir", uuid.uuid4().bytes, H)[0] == 0  # a lease without R is none


def test_client_without_the_capability_gets_no_directory_lease(server: SmbServer) -> None:
    """Offered only to clients that announce SMB2_GLOBAL_CAP_DIRECTORY_LEASING themselves (impacket does not,
    and fails on every create once a server offers it); without it a directory's lease request gets none,
    while file leases are unchanged."""
    with client(server, capabilities=0) as c:
        assert c.negotiate_response is not None
        assert not struct.unpack_from("<I", c.negotiate_response.body, 24)[0] & SMB2_GLOBAL_CAP_DIRECTORY_LEASING
        granted, body = open_dir(c, "dir", uuid.uuid4().bytes)
        assert granted == -1 and body[2] == LEVEL_NONE


def test_share_switch_off(server: SmbServer) -> None:
    with client(server, "plain") as c:
        granted, body = open_dir(c, "dir", uuid.uuid4().bytes)
        assert granted == -1 and body[2] == LEVEL_NONE and struct.unpack_from("<I", body, 84)[0] == 0


def test_create_by_another_client_breaks_to_none(server: SmbServer) -> None:
    key = uuid.uuid4().bytes
    with client(server) as holder, client(server) as other:
        assert open_dir(holder, "dir", key)[0] == R | H
        file_id = create_file(other, "dir\\new.txt")
        assert lease_break(holder) == (key, R | H, 0, 1)  # H held: acknowledged
        assert lease_ack(holder, key, 0).status == b.STATUS_SUCCESS
        assert other.close_file(file_id) == b.STATUS_SUCCESS
        no_break(holder)
        # An R-only lease is broken without an acknowledgment.
        key2 = uuid.uuid4().bytes
        assert open_dir(holder, "dir", key2, R)[0] == R
        other.close_file(create_file(other, "dir\\second.txt"))
        assert lease_break(holder) == (key2, R, 0, 0)
        assert lease_ack(holder, key2, 0).status == STATUS_UNSUCCESSFUL


def test_own_parent_lease_key_does_not_break(server: SmbServer) -> None:
    """A change through an open whose ParentLeaseKey is the directory's lease key breaks nothing; the same
    client's change through an open naming another (or no) parent key does."""
    key = uuid.uuid4().bytes
    with client(server) as c:
        assert open_dir(c, "dir", key)[0] == R | H
        file_id = create_file(c, "dir\\mine.txt", parent=key)
        rename = b.set_info_body(file_id, SMB2_0_INFO_FILE, 10, b.rename_info("dir\\renamed.txt"))
        assert c.request(b.SMB2_SET_INFO, rename).status == b.STATUS_SUCCESS
        basic = struct.pack("<QQQQII", 0, 0, 0, 0, 0x2, 0)  # HIDDEN
        assert c.set_info(file_id, SMB2_0_INFO_FILE, FILE_BASIC_INFORMATION, basic).status == b.STATUS_SUCCESS
        assert c.set_info(file_id, SMB2_0_INFO_FILE, 13, b.disposition_info()).status == b.STATUS_SUCCESS
        assert c.close_file(file_id) == b.STATUS_SUCCESS  # deleted on close
        no_break(c)
        # Another lease key of the same client (no parent key given): broken.
        c.close_file(create_file(c, "dir\\other-key.txt", key=uuid.uuid4().bytes))
        assert lease_break(c) == (key, R | H, 0, 1)
        assert lease_ack(c, key, 0).status == b.STATUS_SUCCESS


def test_delete_rename_and_attributes_break(server: SmbServer) -> None:
    (server.share_path / "dir" / "a.txt").write_bytes(b"a")
    (server.share_path / "dir" / "b.txt").write_bytes(b"b")
    for name in ("a.txt", "b.txt"):
        os.chown(server.share_path / "dir" / name, server.share_path.stat().st_uid, server.share_path.stat().st_gid)
    with client(server) as holder, client(server) as other:
        steps = {
            "rename": lambda fid: other.request(b.SMB2_SET_INFO, b.set_info_body(
                fid, SMB2_0_INFO_FILE, 10, b.rename_info("dir\\moved.txt"))).status,
            "attributes": lambda fid: other.set_info(fid, SMB2_0_INFO_FILE, FILE_BASIC_INFORMATION, struct.pack(
                "<QQQQII", 0, 0, 0, 0, 0x2, 0)).status,
            "delete": lambda fid: other.set_info(fid, SMB2_0_INFO_FILE, 13, b.disposition_info()).status,
        }
        for name, (step, action) in zip(("a.txt", "b.txt", "moved.txt"), steps.items(), strict=True):
            key = uuid.uuid4().bytes
            assert open_dir(holder, "dir", key)[0] == R | H
            file_id = create_file(other, f"dir\\{name}")  # opening an existing file breaks nothing
            no_break(holder, 0.2)
            assert action(file_id) == b.STATUS_SUCCESS, step
            if step == "delete":
                assert other.close_file(file_id) == b.STATUS_SUCCESS
            assert lease_break(holder) == (key, R | H, 0, 1), step
            assert lease_ack(holder, key, 0).status == b.STATUS_SUCCESS
            if step != "delete":
                other.close_file(file_id)


def test_a_handle_that_wrote_breaks_at_its_close(server: SmbServer) -> None:
    """WRITE breaks no directory lease; the close of the handle that wrote does (the entry's time and size
    settle then; Windows, smbtorture smb2.lease.v2_request), unless it names the lease as its parent."""
    key = uuid.uuid4().bytes
    with client(server) as holder, client(server) as other:
        file_id = create_file(other, "dir\\data.txt")
        assert open_dir(holder, "dir", key)[0] == R | H
        assert other.write(file_id, 0, b"x" * 4096).status == b.STATUS_SUCCESS
        no_break(holder)
        assert other.close_file(file_id) == b.STATUS_SUCCESS
        assert lease_break(holder) == (key, R | H, 0, 1)
        assert lease_ack(holder, key, 0).status == b.STATUS_SUCCESS
        # Reading and closing breaks nothing; writing through an open naming the lease as parent neither.
        key2 = uuid.uuid4().bytes
        assert open_dir(holder, "dir", key2)[0] == R | H
        file_id = create_file(other, "dir\\data.txt")
        assert other.read(file_id, 0, 10).status == b.STATUS_SUCCESS
        assert other.close_file(file_id) == b.STATUS_SUCCESS
        no_break(holder)
        file_id = create_file(holder, "dir\\data.txt", parent=key2)
        assert holder.write(file_id, 0, b"y").status == b.STATUS_SUCCESS
        assert holder.close_file(file_id) == b.STATUS_SUCCESS
        no_break(holder)


def test_local_write_and_close_breaks(server: SmbServer) -> None:
    (server.share_path / "dir" / "plain.txt").write_bytes(b"plain")
    key = uuid.uuid4().bytes
    with client(server) as holder:
        assert open_dir(holder, "dir", key)[0] == R | H
        with open(server.share_path / "dir" / "plain.txt", "ab") as local:
            local.write(b" and more")
        assert lease_break(holder) == (key, R | H, 0, 1)


def test_local_create_breaks(server: SmbServer) -> None:
    """A process on the server creating a name in the directory (the kernel change feed)."""
    key = uuid.uuid4().bytes
    with client(server) as holder:
        assert open_dir(holder, "dir", key)[0] == R | H
        (server.share_path / "dir" / "local.txt").write_bytes(b"local")
        assert lease_break(holder) == (key, R | H, 0, 1)
        assert lease_ack(holder, key, 0).status == b.STATUS_SUCCESS
        key2 = uuid.uuid4().bytes
        assert open_dir(holder, "dir", key2)[0] == R | H
        os.rename(server.share_path / "dir" / "local.txt", server.share_path / "dir" / "local2.txt")
        assert lease_break(holder) == (key2, R | H, 0, 1)


def test_opening_the_directory_with_a_sharing_violation_breaks_h(server: SmbServer) -> None:
    """Opens of the directory itself follow the file rules: H goes when the sharing check fails."""
    key = uuid.uuid4().bytes
    with client(server) as holder, client(server) as other:
        assert open_dir(holder, "dir", key)[0] == R | H
        (mid,) = other.send(b.Req(b.SMB2_CREATE, b.create_body(
            "dir", desired_access=b.DELETE, options=b.FILE_DIRECTORY_FILE, share_access=0),
            tree_id=other.tree_id, session_id=other.session_id))
        assert lease_break(holder) == (key, R | H, R, 1)
        assert lease_ack(holder, key, R).status == b.STATUS_SUCCESS
        assert other.receive(mid).status == b.STATUS_SHARING_VIOLATION


def test_broken_lease_is_taken_again_with_its_key(server: SmbServer) -> None:
    """After a break to none, opening the directory again with the same key (asking RWH, as smbtorture's
    smb2.lease.v2_request does) brings the lease back to RH with a new epoch."""
    key = uuid.uuid4().bytes
    with client(server) as holder, client(server) as other:
        granted, body = open_dir(holder, "dir", key, R | W | H)
        assert granted == R | H
        epoch = lease_response(body)[2]
        other.close_file(create_file(other, "dir\\again.txt"))
        assert lease_break(holder) == (key, R | H, 0, 1)
        assert lease_ack(holder, key, 0).status == b.STATUS_SUCCESS
        granted, body = open_dir(holder, "dir", key, R | W | H)
        assert granted == R | H and lease_response(body)[2] == epoch + 2
