"""`smbsrv close-session` and `smbsrv close-file` against the daemon: an administrator ends a user's sessions or
one open file ([MS-SMB2] 3.3.4.12 and 3.3.4.17, as Windows' Close-SmbSession and Close-SmbOpenFile).

What is checked is what the clients see afterwards: the closed session's next request gets
STATUS_USER_SESSION_DELETED and a new session on the same connection works; a closed file's handle gets
STATUS_FILE_CLOSED; the share modes and byte-range locks held go with them, so another user's open and lock
succeed at once; a disconnected durable open that `smbsrv status` lists can be closed, and its reconnect then
finds nothing. Sessions of other users, other clients and other files are left alone.
"""

from __future__ import annotations

import time
import uuid
from contextlib import AbstractContextManager
from pathlib import Path

from tests import builders as b
from tests.conftest import PASSWORD, USER
from tests.integration.notify_helpers import send_notify
from tests.integration.operations_helpers import OpsServer, ops_server
from tests.integration.test_durable import (
    LEVEL_LEASE,
    READ_WRITE,
    H,
    R,
    W,
    connect,
    create,
    dh2c,
    dh2q,
    lease,
    lock,
)

OTHER_USER, OTHER_PASSWORD = "bob", "Other-Pass-456"
STATUS_FILE_CLOSED = 0xC0000128
STATUS_NOTIFY_CLEANUP = 0x0000010B
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_RANGE_NOT_LOCKED = 0xC000007E
STATUS_SHARING_VIOLATION = 0xC0000043
STATUS_USER_SESSION_DELETED = 0xC0000203


def _query(client: b.Client, file_id: tuple[int, int]) -> int:
    return client.request(b.SMB2_QUERY_INFO, b.query_info_body(file_id, b.SMB2_0_INFO_FILE, 5),  # standard
                          tree_id=client.tree_id, session_id=client.session_id).status


def _exclusive(client: b.Client, name: str) -> b.Response:
    return create(client, name, 0, b"", share_access=0)


def _servers(tmp_path: Path) -> AbstractContextManager[OpsServer]:
    return ops_server(tmp_path, users={USER: PASSWORD, OTHER_USER: OTHER_PASSWORD})


def test_close_session_by_user_ends_its_sessions_opens_and_locks(tmp_path: Path) -> None:
    with _servers(tmp_path) as ops:
        smb = ops.server
        with connect(smb, uuid.uuid4().bytes) as alice, connect(smb, uuid.uuid4().bytes, OTHER_USER,
                                                                OTHER_PASSWORD) as bob:
            held = b.create_file_id(_exclusive(alice, "held.txt").body)
            assert lock(alice, held, 0, 10) == b.STATUS_SUCCESS
            mine = b.create_file_id(_exclusive(bob, "bobs.txt").body)
            assert _exclusive(bob, "held.txt").status == STATUS_SHARING_VIOLATION
            root = alice.open("", desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
            watch = send_notify(alice, root)
            assert alice.receive(watch, skip_pending=False).status == b.STATUS_PENDING
            alice_session = f"{alice.session_id:#x}"

            result = ops.smbsrv("close-session", "-c", str(ops.config), "--user", USER.upper(), check=True)
            assert result.stdout == (f"closed session {alice_session} of {USER} from 127.0.0.1:"
                                     f"{alice.sock.getsockname()[1]} (2 open(s))\n")

            # The pending CHANGE_NOTIFY ends with its handle, as on a CLOSE.
            assert alice.receive(watch).status == STATUS_NOTIFY_CLEANUP
            assert _query(alice, held) == STATUS_USER_SESSION_DELETED
            # The share mode and the lock went with the session: bob opens the file alone and locks the range.
            taken = _exclusive(bob, "held.txt")
            assert taken.status == b.STATUS_SUCCESS
            assert lock(bob, b.create_file_id(taken.body), 0, 10) == b.STATUS_SUCCESS
            assert _query(bob, mine) == b.STATUS_SUCCESS
            # The connection stays: alice logs on again on it, as cifs.ko does after USER_SESSION_DELETED.
            assert alice.session_setup(USER, PASSWORD) == b.STATUS_SUCCESS
            assert alice.tree_connect("share").status == b.STATUS_SUCCESS
            assert _exclusive(alice, "again.txt").status == b.STATUS_SUCCESS
        ops.wait_log(f"event=session_end client=\\S+ user={USER} session={alice_session} "
                     "reason=closed_by_administrator")
        ops.wait_log(f"administrator closed session {alice_session} of {USER}")
        again = ops.smbsrv("close-session", "-c", str(ops.config), "--user", "nobody-here")
    assert (again.returncode, again.stdout, again.stderr) == (1, "", "smbsrv close-session: no session matched\n")


def test_close_session_criteria_must_all_match(tmp_path: Path) -> None:
    with _servers(tmp_path) as ops:
        smb = ops.server
        with connect(smb, uuid.uuid4().bytes) as first, connect(smb, uuid.uuid4().bytes) as second:
            first_address = f"127.0.0.1:{first.sock.getsockname()[1]}"
            # Another client's session id with this client's address matches nothing.
            mixed = ops.smbsrv("close-session", "-c", str(ops.config), "--client", first_address,
                               "--session", f"{second.session_id:#x}")
            assert mixed.returncode == 1
            assert ops.smbsrv("close-session", "-c", str(ops.config), "--client", first_address,
                              "--user", USER, check=True).stdout.startswith(f"closed session {first.session_id:#x}")
            assert _query(first, (0, 0)) == STATUS_USER_SESSION_DELETED
            assert second.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS
            assert _exclusive(second, "still.txt").status == b.STATUS_SUCCESS
            # By address alone (no port), then by session id.
            bad = ops.smbsrv("close-session", "-c", str(ops.config), "--session", "seven")
            assert (bad.returncode, bad.stderr) == (1, "smbsrv close-session: not a session id: 'seven'\n")
            none = ops.smbsrv("close-session", "-c", str(ops.config))
            assert none.returncode == 2 and "--session, --user or --client" in none.stderr
            assert ops.smbsrv("close-session", "-c", str(ops.config), "--session", f"{second.session_id:#x}",
                              "--client", "127.0.0.1", check=True).stdout.count("closed session") == 1
            assert _query(second, (0, 0)) == STATUS_USER_SESSION_DELETED


def test_close_file_of_a_session_and_a_disconnected_durable_open(tmp_path: Path) -> None:
    with _servers(tmp_path) as ops:
        smb = ops.server
        guid, create_guid, key = uuid.uuid4().bytes, uuid.uuid4().bytes, uuid.uuid4().bytes
        with connect(smb, uuid.uuid4().bytes) as alice, connect(smb, uuid.uuid4().bytes, OTHER_USER,
                                                                OTHER_PASSWORD) as bob:
            stuck = b.create_file_id(_exclusive(alice, "stuck.txt").body)
            assert lock(alice, stuck, 0, 10) == b.STATUS_SUCCESS
            other = b.create_file_id(_exclusive(alice, "other.txt").body)
            closed = ops.smbsrv("close-file", "-c", str(ops.config), str(stuck[1]), check=True)
            assert closed.stdout == f"closed FileId {stuck[1]}: share/stuck.txt (session {alice.session_id:#x})\n"
            assert _query(alice, stuck) == STATUS_FILE_CLOSED
            assert _query(alice, other) == b.STATUS_SUCCESS
            taken = _exclusive(bob, "stuck.txt")
            assert taken.status == b.STATUS_SUCCESS
            assert lock(bob, b.create_file_id(taken.body), 0, 10) == b.STATUS_SUCCESS

            # A durable open left behind by a client that went away.
            gone = connect(smb, guid)
            response = create(gone, "durable.txt", LEVEL_LEASE, b.chain_contexts(lease(key, R | W | H),
                                                                                  dh2q(create_guid)),
                              access=READ_WRITE)
            assert response.status == b.STATUS_SUCCESS
            durable = b.create_file_id(response.body)
            gone.close()
            deadline = time.monotonic() + 10
            while not [entry for entry in ops.status()["open_files"]  # type: ignore[union-attr]
                       if entry["file_id"] == durable[1] and entry["client"] == "disconnected"]:
                assert time.monotonic() < deadline, ops.status()
                time.sleep(0.1)
            listed = next(entry for entry in ops.status()["open_files"]  # type: ignore[union-attr]
                          if entry["file_id"] == durable[1])
            assert (listed["session_id"], listed["user"], listed["path"]) == ("-", USER, "durable.txt")
            assert 0 < listed["reconnect_within_s"] <= 60
            assert ops.smbsrv("close-file", "-c", str(ops.config), str(durable[1]), check=True).stdout == \
                f"closed FileId {durable[1]}: share/durable.txt (session -)\n"
            # More FileIds than one control request holds (20 digits each): the command sends them in parts.
            bogus = [10**19 + index for index in range(400)]
            missing = ops.smbsrv("close-file", "-c", str(ops.config), str(durable[1]), *map(str, bogus))
            missing_ids = ", ".join(map(str, sorted((durable[1], *bogus))))
            assert (missing.returncode, missing.stderr) == (1, f"smbsrv close-file: no open with FileId {missing_ids}\n")
        with connect(smb, guid) as back:
            response = create(back, "durable.txt", LEVEL_LEASE, b.chain_contexts(lease(key, R | W | H),
                                                                                  dh2c(durable, create_guid)))
            assert response.status == STATUS_OBJECT_NAME_NOT_FOUND, b.status_name(response.status)


def test_the_closed_sessions_waiting_requests_are_answered_signed(tmp_path: Path) -> None:
    """The requests the closed session still had waiting (a CHANGE_NOTIFY, a blocking LOCK) end with their
    handles, and their final answers are signed with the session's key as the request was ([MS-SMB2] 3.3.4.1.1),
    as after a LOGOFF: a client that requires signing takes no unsigned answer to a signed request."""
    with _servers(tmp_path) as ops, connect(ops.server, uuid.uuid4().bytes) as alice:
        alice.sign_requests = True  # every request signed (the server requires signing by default too)
        first = b.create_file_id(create(alice, "locked.txt", 0, b"", access=READ_WRITE).body)
        second = b.create_file_id(create(alice, "locked.txt", 0, b"", access=READ_WRITE).body)
        assert lock(alice, first, 0, 10) == b.STATUS_SUCCESS
        (blocked,) = alice.send(b.Req(b.SMB2_LOCK, b.lock_body(second, [(0, 10, b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK)])))
        assert alice.receive(blocked, skip_pending=False).status == b.STATUS_PENDING
        root = alice.open("", desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
        watch = send_notify(alice, root)
        assert alice.receive(watch, skip_pending=False).status == b.STATUS_PENDING

        ops.smbsrv("close-session", "-c", str(ops.config), "--session", f"{alice.session_id:#x}", check=True)

        for message_id, status in ((watch, STATUS_NOTIFY_CLEANUP), (blocked, STATUS_RANGE_NOT_LOCKED)):
            answer = alice.receive(message_id)  # a signed one is verified by the client
            assert answer.status == status, b.status_name(answer.status)
            assert answer.header.flags & b.SMB2_FLAGS_SIGNED, b.status_name(answer.status)
