"""Operators' log lines against the daemon (issue 17): one structured INFO line per session setup, logoff, tree
connect/disconnect and failed logon, with the client's address; the optional audit log of create, write,
rename and delete per user (off by default)."""

from __future__ import annotations

import os
import re
import struct
import time
from pathlib import Path

from tests import builders as b
from tests.conftest import PASSWORD, USER
from tests.integration.operations_helpers import ops_server

_EMPTY_BODY = struct.pack("<HH", 4, 0)
READ_WRITE = 0x0012019F
LEVEL_BATCH = 9  # LOGOFF and TREE_DISCONNECT requests ([MS-SMB2] 2.2.7, 2.2.11)


def _events(log: str) -> list[str]:
    return [line.split("smbsrv.events: ", 1)[1] for line in log.splitlines() if "smbsrv.events: " in line]


def test_lifecycle_lines_carry_the_client_address(tmp_path: Path) -> None:
    with ops_server(tmp_path) as ops:
        server = ops.server
        with b.Client(server.host, server.port).connect() as intruder:
            intruder.negotiate()
            assert b.status_name(intruder.session_setup(USER, "wrong")) == "STATUS_LOGON_FAILURE"
            bad_client = f"127.0.0.1:{intruder.sock.getsockname()[1]}"
        with b.connect(server.host, server.port, USER, PASSWORD, sign=True) as client:
            address = f"127.0.0.1:{client.sock.getsockname()[1]}"
            session = client.session_id
            assert b.status_name(client.tree_connect("nosuch").status) == "STATUS_BAD_NETWORK_NAME"
            assert client.tree_connect("share").status == b.STATUS_SUCCESS
            assert client.request(b.SMB2_TREE_DISCONNECT, _EMPTY_BODY).status == b.STATUS_SUCCESS
            assert client.request(b.SMB2_LOGOFF, _EMPTY_BODY, tree_id=0).status == b.STATUS_SUCCESS
        ops.wait_log("event=logoff")
        events = _events(server.log_text())
    sid = f"{session:#x}"
    assert events == [
        f"event=auth_failure client={bad_client} session={_failed_session(events)}",
        (f"event=session_setup client={address} user={USER} session={sid} dialect=3.1.1 signing=client "
         "encryption=off"),
        f"event=tree_connect client={address} user={USER} session={sid} tree=1 share=share",
        f"event=tree_connect_refused client={address} user={USER} session={sid} status=STATUS_BAD_NETWORK_NAME",
        f"event=tree_connect client={address} user={USER} session={sid} tree=2 share=share",
        f"event=tree_disconnect client={address} user={USER} session={sid} tree=2 share=share",
        f"event=logoff client={address} user={USER} session={sid}",
    ]


def _failed_session(events: list[str]) -> str:
    match = re.match(r"event=auth_failure client=\S+ session=(0x[0-9a-f]+)$", events[0])
    assert match, events[0]
    return match.group(1)


def test_audit_log_records_create_write_rename_delete_per_user(tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    with ops_server(tmp_path, audit_log=str(audit)) as ops:
        server = ops.server
        with b.connect(server.host, server.port, USER, PASSWORD, sign=True) as client:
            address = f"127.0.0.1:{client.sock.getsockname()[1]}"
            handle = client.open("report draft.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                                 disposition=b.FILE_CREATE)
            assert client.write(handle, 0, b"one").status == b.STATUS_SUCCESS
            assert client.write(handle, 3, b"two").status == b.STATUS_SUCCESS  # one line per handle
            assert client.set_info(handle, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                   b.rename_info("final.txt")).status == b.STATUS_SUCCESS
            assert client.close_file(handle) == b.STATUS_SUCCESS
            reader = client.open("final.txt")  # opening to read is not audited
            assert client.close_file(reader) == b.STATUS_SUCCESS
            directory = client.open("dir", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                                    options=b.FILE_DIRECTORY_FILE)
            assert client.close_file(directory) == b.STATUS_SUCCESS
            doomed = client.open("final.txt", desired_access=b.DELETE, options=b.FILE_DELETE_ON_CLOSE)
            assert client.close_file(doomed) == b.STATUS_SUCCESS
        ops.wait_log("event=tree_connect")
    lines = [line.split(" ", 2)[2] for line in audit.read_text().splitlines()]
    prefix = f"user={USER} client={address} share=share"
    assert lines == [
        f'op=create {prefix} path="report draft.txt"',
        f'op=write {prefix} path="report draft.txt"',
        f'op=rename {prefix} path=final.txt from="report draft.txt"',
        f"op=create {prefix} path=dir",
        f"op=delete {prefix} path=final.txt",
    ]
    assert not (server.share_path / "final.txt").exists()
    st = os.stat(audit)
    assert (st.st_mode & 0o777, st.st_uid) == (0o640, os.geteuid())  # written as the server, not the user


def test_audit_log_follows_its_path_when_rotated(tmp_path: Path) -> None:
    """logrotate renames the file and the server writes on: the next line starts a new file at the configured
    path, mode 0640 again, and the rotated file keeps what was written before."""
    audit = tmp_path / "audit.log"
    rotated = tmp_path / "audit.log.1"
    with ops_server(tmp_path, audit_log=str(audit)) as ops:
        with b.connect(ops.server.host, ops.server.port, USER, PASSWORD) as client:
            client.write_file("before.txt", b"x")
            os.rename(audit, rotated)
            client.write_file("after.txt", b"y")
            os.rename(audit, tmp_path / "audit.log.2")  # a second rotation, with no line between
            os.unlink(tmp_path / "audit.log.2")
            client.write_file("last.txt", b"z")
        ops.wait_log("event=tree_connect")
    assert "path=before.txt" in rotated.read_text() and "after.txt" not in rotated.read_text()
    lines = audit.read_text()
    assert "path=last.txt" in lines and "path=after.txt" not in lines and "before.txt" not in lines
    st = os.stat(audit)
    assert (st.st_mode & 0o777, st.st_uid) == (0o640, os.geteuid())


def test_audit_log_that_cannot_be_reopened_fails_no_request(tmp_path: Path) -> None:
    """The audit log's directory goes away after a rotation (or its file system fills): the server cannot start
    the new file, and says so once, but the requests whose lines are lost still succeed; once the directory is
    back, the next line starts the new file there, 0640 again."""
    logs = tmp_path / "logs"
    logs.mkdir()
    audit = logs / "audit.log"
    with ops_server(tmp_path, audit_log=str(audit)) as ops:
        with b.connect(ops.server.host, ops.server.port, USER, PASSWORD) as client:
            client.write_file("before.txt", b"x")
            audit.unlink()
            logs.rmdir()
            client.write_file("lost.txt", b"y")  # asserts SUCCESS for the CREATE, WRITE and CLOSE
            client.write_file("lost2.txt", b"y")
            logs.mkdir()
            client.write_file("after.txt", b"z")
        ops.wait_log("cannot write the audit log")
    assert ops.server.log_text().count("cannot write the audit log") == 1
    lines = audit.read_text()
    assert "path=after.txt" in lines and "lost" not in lines
    st = os.stat(audit)
    assert (st.st_mode & 0o777, st.st_uid) == (0o640, os.geteuid())


def test_audit_log_reopened_after_rotation_never_follows_a_symlink(tmp_path: Path) -> None:
    """Between a rotation and the next line, a symlink put at the audit log's path (the directory may be
    writable by others) must not make the server, which writes the log as root, append to its target."""
    audit = tmp_path / "audit.log"
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    with ops_server(tmp_path, audit_log=str(audit)) as ops:
        with b.connect(ops.server.host, ops.server.port, USER, PASSWORD) as client:
            client.write_file("before.txt", b"x")
            os.rename(audit, tmp_path / "audit.log.1")
            os.symlink(victim, audit)
            client.write_file("after.txt", b"y")  # its audit line is lost, the request is not
            os.unlink(audit)
            client.write_file("last.txt", b"z")
        ops.wait_log("cannot write the audit log")
    assert victim.read_text() == "untouched\n"
    assert (ops.server.share_path / "after.txt").read_bytes() == b"y"
    assert "path=last.txt" in audit.read_text() and not audit.is_symlink()


def test_audit_log_records_a_create_that_waited_for_an_oplock_break(tmp_path: Path) -> None:
    """An overwrite that had to wait for another client's batch oplock to break goes async; its line comes when
    it is answered (it had none: the observer saw only the interim STATUS_PENDING)."""
    audit = tmp_path / "audit.log"
    with ops_server(tmp_path, audit_log=str(audit), metrics=False) as ops:
        server = ops.server
        with b.connect(server.host, server.port, USER, PASSWORD) as holder, \
                b.connect(server.host, server.port, USER, PASSWORD) as other:
            held = holder.request(b.SMB2_CREATE, b.create_body("contested.txt", desired_access=READ_WRITE,
                                                               disposition=b.FILE_OPEN_IF, oplock=LEVEL_BATCH),
                                  tree_id=holder.tree_id, session_id=holder.session_id)
            assert held.status == b.STATUS_SUCCESS and held.body[2] == LEVEL_BATCH
            (waiting,) = other.send(b.Req(b.SMB2_CREATE, b.create_body(
                "contested.txt", desired_access=READ_WRITE, disposition=b.FILE_OVERWRITE_IF)))
            assert other.receive(waiting, skip_pending=False).status == b.STATUS_PENDING
            assert holder.close_file(b.create_file_id(held.body)) == b.STATUS_SUCCESS  # the break ends
            assert other.receive(waiting).status == b.STATUS_SUCCESS
            address = f"127.0.0.1:{other.sock.getsockname()[1]}"
        ops.wait_log("event=tree_connect", count=2)
    lines = [line.split(" ", 2)[2] for line in audit.read_text().splitlines()]
    assert f"op=overwrite user={USER} client={address} share=share path=contested.txt" in lines, lines


def test_audit_log_records_a_delete_carried_out_at_teardown(tmp_path: Path) -> None:
    """A delete on close happens when the file's last handle goes, which may be no CLOSE at all: the client's
    connection drops. The line is written where the name is removed, for the user who asked for it."""
    audit = tmp_path / "audit.log"
    with ops_server(tmp_path, audit_log=str(audit)) as ops:
        server = ops.server
        client = b.connect(server.host, server.port, USER, PASSWORD)
        address = f"127.0.0.1:{client.sock.getsockname()[1]}"
        client.open("doomed.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                    disposition=b.FILE_CREATE, options=b.FILE_DELETE_ON_CLOSE)
        client.close()  # no CLOSE: the teardown closes the handle, and the file goes
        deadline = time.monotonic() + 10
        while (server.share_path / "doomed.txt").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    lines = [line.split(" ", 2)[2] for line in audit.read_text().splitlines()]
    prefix = f"user={USER} client={address} share=share"
    assert lines == [f"op=create {prefix} path=doomed.txt", f"op=delete {prefix} path=doomed.txt"]


def test_audit_log_is_off_by_default(tmp_path: Path) -> None:
    with ops_server(tmp_path) as ops:
        with b.connect(ops.server.host, ops.server.port, USER, PASSWORD) as client:
            client.write_file("x.txt", b"x")
        assert "smbsrv.daemon: audit log" not in ops.server.log_text()
        assert "op=" not in ops.server.log_text()
        assert not any(name.endswith(".log") and name != "server.log" for name in os.listdir(tmp_path))
