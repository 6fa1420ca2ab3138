"""`smbsrv status` against the daemon: sessions, tree connects, open files and byte-range locks (issue 17).

Two clients are connected while it runs: smbclient (its own session, kept open on standard input) and a raw
client holding an open file with an exclusive byte-range lock and an open directory. The JSON must list exactly
them; the text output their rows. The control socket admits root and members of control_group only, checked by
the file mode and again by SO_PEERCRED.
"""

from __future__ import annotations

import grp
import os
import subprocess
import time
from pathlib import Path

import pytest

from smbsrv.control import ControlError, request
from tests import builders as b
from tests.conftest import PASSWORD, USER, serving_account
from tests.integration.operations_helpers import OpsServer, ops_server

FILE_READ_DATA, FILE_WRITE_DATA = 0x1, 0x2
FILE_SHARE_READ, FILE_SHARE_WRITE = 0x1, 0x2


def _wait_sessions(ops: OpsServer, count: int) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 20
    while True:
        status = ops.status()
        if len(status["sessions"]) >= count:  # type: ignore[arg-type]
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def test_status_lists_sessions_trees_opens_and_locks(tmp_path: Path) -> None:
    with ops_server(tmp_path) as ops:
        server = ops.server
        smbclient = subprocess.Popen(["smbclient", f"//{server.host}/share", "-p", str(server.port), "-U",
                                      f"{USER}%{PASSWORD}", "--client-protection=encrypt"], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        try:
            assert smbclient.stdin is not None
            smbclient.stdin.write("ls\n")
            smbclient.stdin.flush()
            with b.connect(server.host, server.port, USER, PASSWORD, sign=True) as client:
                local_port = client.sock.getsockname()[1]
                handle = client.open("locked.txt", desired_access=FILE_READ_DATA | FILE_WRITE_DATA,
                                     share_access=FILE_SHARE_READ | FILE_SHARE_WRITE, disposition=b.FILE_CREATE)
                lock = b.lock_body(handle, [(10, 10, b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY)])
                assert client.request(b.SMB2_LOCK, lock).status == b.STATUS_SUCCESS
                directory = client.open("", desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
                status = _wait_sessions(ops, 2)
                text = ops.smbsrv("status", "-c", str(ops.config), check=True).stdout
        finally:
            smbclient.communicate("quit\n", timeout=30)

    mine = [s for s in status["sessions"] if s["client"] == f"127.0.0.1:{local_port}"]
    others = [s for s in status["sessions"] if s["client"] != f"127.0.0.1:{local_port}"]
    assert len(mine) == 1 and len(others) == 1
    session = mine[0]
    assert {k: v for k, v in session.items() if k not in ("session_id", "connection_id", "client")} == {
        "user": USER, "dialect": "3.1.1", "signing": "client", "encryption": "off",
        "tree_connects": [{"tree_id": 1, "share": "share"}]}
    other = others[0]
    assert other["user"] == USER and other["dialect"] == "3.1.1" and other["encryption"] == "available"
    assert other["tree_connects"] == [{"tree_id": 1, "share": "share"}]
    sid = session["session_id"]
    # GENERIC_READ on the directory is granted as FILE_GENERIC_READ ([MS-SMB2] 3.3.5.9: generic rights mapped).
    # Only this client's opens: smbclient's `ls` may still hold its directory open when the status is taken
    # (a loaded machine: the listing is slower than the two CREATEs and the LOCK above).
    assert sorted((o for o in status["open_files"] if o["session_id"] == sid), key=lambda o: o["path"]) == [
        {"session_id": sid, "user": USER, "client": session["client"], "share": "share", "path": "",
         "file_id": directory[1], "access_mask": "0x00120089", "share_access": 7,
         "directory": True, "delete_on_close": False, "oplock": "none", "lease": None, "breaking_to": None,
         "break_deadline_s": None},
        {"session_id": sid, "user": USER, "client": session["client"], "share": "share", "path": "locked.txt",
         "file_id": handle[1], "access_mask": f"{FILE_READ_DATA | FILE_WRITE_DATA:#010x}", "share_access": 3,
         "directory": False, "delete_on_close": False, "oplock": "none", "lease": None, "breaking_to": None,
         "break_deadline_s": None},
    ]
    assert status["locks"] == [{"session_id": sid, "user": USER, "share": "share", "path": "locked.txt",
                                "file_id": handle[1], "offset": 10, "length": 10, "exclusive": True}]
    assert status["breaks"] == []
    assert status["server"]["shares"] == ["share"] and status["server"]["connections"] == 2
    # The two opens count against the user's limit (by default a quarter of the daemon's descriptor limit).
    limit = status["server"]["opens_per_user"]["limit"]
    assert status["server"]["opens_per_user"]["held"] == {USER: 2} and limit > 2
    # The text form has one row per session, open and lock.
    rows = text.splitlines()
    assert rows[1] == f"opens per user (limit {limit}): {USER} 2"
    assert any(row.startswith(sid) and "127.0.0.1:" + str(local_port) in row and "3.1.1" in row for row in rows)
    assert any(row.startswith(sid) and row.endswith("share        locked.txt") and " RW- " in row for row in rows)
    assert any(row.startswith(sid) and " EX " in row and row.endswith("share/locked.txt") for row in rows)


def _request_as(uid: int, gid: int, path: Path) -> str:
    """`status` over the socket from a child process with the given credentials (no groups but gid): "ok",
    or the error it got."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to uid/gid, ask, report through the pipe
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            try:
                request(str(path), "status", timeout_s=10)
                answer = "ok"
            except ControlError as exc:
                answer = str(exc)
            os.write(write_end, answer.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other users")
def test_control_socket_admits_root_and_the_control_group_only(tmp_path: Path) -> None:
    account = serving_account()
    assert account is not None
    with ops_server(tmp_path) as ops:
        assert (os.stat(ops.socket).st_mode & 0o777) == 0o600
        assert _request_as(0, 0, ops.socket) == "ok"
        assert _request_as(account.pw_uid, account.pw_gid, ops.socket) == f"{ops.socket}: Permission denied"
        # Past the file mode, the server's own check (SO_PEERCRED) still refuses a non-member.
        os.chmod(ops.socket, 0o666)
        assert _request_as(account.pw_uid, account.pw_gid, ops.socket) == "permission denied"
        ops.wait_log(rf"control socket: refused pid \d+ uid {account.pw_uid} gid {account.pw_gid}")
    group = grp.getgrgid(account.pw_gid).gr_name
    base = tmp_path / "grouped"
    base.mkdir()
    with ops_server(base, control_group=group) as ops:
        st = os.stat(ops.socket)
        assert (st.st_mode & 0o777, st.st_gid) == (0o660, account.pw_gid)
        assert _request_as(account.pw_uid, account.pw_gid, ops.socket) == "ok"
        assert _request_as(65534, 65534, ops.socket) == f"{ops.socket}: Permission denied"


def test_status_without_a_server_fails_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "none.sock"
    result = subprocess.run(["python3", "-m", "smbsrv", "status", "-s", str(missing)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 1
    assert result.stderr == f"smbsrv status: {missing}: No such file or directory\n"
