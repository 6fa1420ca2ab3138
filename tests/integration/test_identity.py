"""Per-user identity against the real daemon (README "Identity"): each session acts as its Unix account.

The tests run as root. They create two Unix accounts, map two SMB users to them through a users file written
with `smbsrv user add`, and check that the kernel, not the server, decides: new files belong to the session's
uid/gid, one user cannot read the other's 0600 file (STATUS_ACCESS_DENIED), and a chmod made on the server side
is honoured at once. The accounts are removed in teardown even when a test fails.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import REPO, SmbServer, start_server, stop_server

_BUG_MARKERS = ("internal error", "Traceback (most recent call last)")
ACCOUNTS = ("smbtest_a", "smbtest_b")
PASSWORDS = {"smbtest_a": "Alpha-pass-1", "smbtest_b": "Bravo-pass-2"}


@dataclass
class Identity:
    server: SmbServer
    share: Path
    uid: dict[str, int]
    gid: dict[str, int]


def _remove_account(name: str) -> None:
    subprocess.run(["userdel", name], capture_output=True, check=False)
    try:
        grp.getgrnam(name)
    except KeyError:
        return
    subprocess.run(["groupdel", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def accounts() -> Iterator[dict[str, pwd.struct_passwd]]:
    if os.geteuid() != 0:
        pytest.fail("test_identity needs root: it creates Unix accounts and checks file ownership")
    created: list[str] = []
    try:
        for name in ACCOUNTS:
            _remove_account(name)  # left over from an interrupted run
            subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                           capture_output=True)
            created.append(name)
        yield {name: pwd.getpwnam(name) for name in ACCOUNTS}
    finally:
        for name in created:
            _remove_account(name)


@pytest.fixture(scope="module")
def identity(accounts: dict[str, pwd.struct_passwd]) -> Iterator[Identity]:
    tmp = Path(tempfile.mkdtemp(prefix="smbsrv-identity-"))
    try:
        # The accounts must be able to reach the share; the sticky bit keeps them from deleting each other's files.
        os.chmod(tmp, 0o755)
        share = tmp / "share"
        share.mkdir()
        os.chmod(share, 0o1777)
        users_file = tmp / "users"
        for name in ACCOUNTS:
            result = subprocess.run(
                [sys.executable, "-m", "smbsrv", "user", "add", name, "--unix-user", name, "--users-file",
                 str(users_file), "--password-stdin"],
                input=PASSWORDS[name] + "\n", capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
            assert result.returncode == 0, result.stderr
        assert users_file.stat().st_mode & 0o077 == 0, "the users file must not be readable by others"
        config = tmp / "smbsrv.toml"
        config.write_text(f'[server]\nusers_file = "{users_file}"\n\n[shares.share]\npath = "{share}"\n')
        server = start_server(share, tmp / "server.log", config=config, users=(), as_root=True)
        try:
            yield Identity(server, share, {n: accounts[n].pw_uid for n in ACCOUNTS},
                           {n: accounts[n].pw_gid for n in ACCOUNTS})
        finally:
            stop_server(server.process)
        log = server.log_text()
        for marker in _BUG_MARKERS:
            assert marker not in log, f"server logged a handler bug:\n{log[log.index(marker) - 1500:][:5000]}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def as_a(identity: Identity) -> Iterator[b.Client]:
    server = identity.server
    with b.connect(server.host, server.port, "smbtest_a", PASSWORDS["smbtest_a"]) as client:
        yield client


@pytest.fixture
def as_b(identity: Identity) -> Iterator[b.Client]:
    server = identity.server
    with b.connect(server.host, server.port, "smbtest_b", PASSWORDS["smbtest_b"]) as client:
        yield client


def _status(response: b.Response) -> str:
    return b.status_name(response.status)


def _read(client: b.Client, name: str) -> tuple[str, bytes]:
    response = client.create(name, desired_access=b.GENERIC_READ)
    if response.status != b.STATUS_SUCCESS:
        return _status(response), b""
    file_id = b.create_file_id(response.body)
    read = client.read(file_id, 0, 4096)
    client.close_file(file_id)
    return _status(read), b.read_data(read) if read.status == b.STATUS_SUCCESS else b""


def test_users_cannot_log_on_with_each_others_password(identity: Identity) -> None:
    server = identity.server
    with b.Client(server.host, server.port) as client:
        assert client.negotiate().status == b.STATUS_SUCCESS
        assert b.status_name(client.session_setup("smbtest_a", PASSWORDS["smbtest_b"])) == "STATUS_LOGON_FAILURE"
        # The quick-start user of the other tests does not exist here.
        assert b.status_name(client.session_setup("alice", "Secret-123")) == "STATUS_LOGON_FAILURE"


def test_new_files_belong_to_the_session_user(identity: Identity, as_a: b.Client, as_b: b.Client) -> None:
    as_a.write_file("owned-by-a.txt", b"from a")
    as_b.write_file("owned-by-b.txt", b"from b")
    as_a.close_file(as_a.open("dir-of-a", disposition=b.FILE_CREATE, options=b.FILE_DIRECTORY_FILE))
    as_a.write_file("dir-of-a\\nested.txt", b"nested")
    for name, owner in (("owned-by-a.txt", "smbtest_a"), ("owned-by-b.txt", "smbtest_b"),
                        ("dir-of-a", "smbtest_a"), ("dir-of-a/nested.txt", "smbtest_a")):
        st = os.stat(identity.share / name)
        assert (st.st_uid, st.st_gid) == (identity.uid[owner], identity.gid[owner]), name
    # Renames and overwrites keep the owner; an overwrite by the other user does not take the file over.
    os.chmod(identity.share / "owned-by-a.txt", 0o666)
    as_b.write_file("owned-by-a.txt", b"overwritten by b")
    st = os.stat(identity.share / "owned-by-a.txt")
    assert st.st_uid == identity.uid["smbtest_a"]
    assert (identity.share / "owned-by-a.txt").read_bytes() == b"overwritten by b"


def test_private_file_of_another_user(identity: Identity, as_a: b.Client, as_b: b.Client) -> None:
    as_b.write_file("private-b.txt", b"b's secret")
    os.chmod(identity.share / "private-b.txt", 0o600)
    assert _read(as_b, "private-b.txt") == ("STATUS_SUCCESS", b"b's secret")
    for access in (b.GENERIC_READ, b.FILE_READ_DATA, b.GENERIC_WRITE, b.FILE_WRITE_DATA, b.FILE_APPEND_DATA):
        response = as_a.create("private-b.txt", desired_access=access)
        assert _status(response) == "STATUS_ACCESS_DENIED", hex(access)
    response = as_a.create("private-b.txt", desired_access=b.GENERIC_WRITE, disposition=b.FILE_OVERWRITE)
    assert _status(response) == "STATUS_ACCESS_DENIED"
    assert (identity.share / "private-b.txt").read_bytes() == b"b's secret"


def test_server_side_chmod_is_honoured(identity: Identity, as_a: b.Client, as_b: b.Client) -> None:
    path = identity.share / "chmod-me.txt"
    as_b.write_file("chmod-me.txt", b"contents")
    os.chmod(path, 0o644)
    assert _read(as_a, "chmod-me.txt") == ("STATUS_SUCCESS", b"contents")
    assert _status(as_a.create("chmod-me.txt", desired_access=b.GENERIC_WRITE)) == "STATUS_ACCESS_DENIED"
    os.chmod(path, 0o600)
    assert _read(as_a, "chmod-me.txt")[0] == "STATUS_ACCESS_DENIED"
    os.chmod(path, 0o666)
    file_id = as_a.open("chmod-me.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
    assert as_a.write(file_id, 0, b"CONTENTS").status == b.STATUS_SUCCESS
    as_a.close_file(file_id)
    assert path.read_bytes() == b"CONTENTS"
    # Even the owner is refused when the mode says so: the session is not root.
    os.chmod(path, 0o000)
    assert _read(as_b, "chmod-me.txt")[0] == "STATUS_ACCESS_DENIED"
    os.chmod(path, 0o400)
    assert _read(as_b, "chmod-me.txt") == ("STATUS_SUCCESS", b"CONTENTS")
    assert _status(as_b.create("chmod-me.txt", desired_access=b.GENERIC_WRITE)) == "STATUS_ACCESS_DENIED"


def test_directory_permissions(identity: Identity, as_a: b.Client, as_b: b.Client) -> None:
    as_a.close_file(as_a.open("closed-dir", disposition=b.FILE_CREATE, options=b.FILE_DIRECTORY_FILE))
    as_a.write_file("closed-dir\\inside.txt", b"inside")
    os.chmod(identity.share / "closed-dir", 0o755)
    response = as_b.create("closed-dir\\b-file.txt", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE)
    assert _status(response) == "STATUS_ACCESS_DENIED"
    assert not (identity.share / "closed-dir" / "b-file.txt").exists()
    os.chmod(identity.share / "closed-dir", 0o700)
    response = as_b.create("closed-dir", options=b.FILE_DIRECTORY_FILE)
    assert _status(response) == "STATUS_ACCESS_DENIED"
    assert _read(as_b, "closed-dir\\inside.txt")[0] == "STATUS_ACCESS_DENIED"
    assert _read(as_a, "closed-dir\\inside.txt") == ("STATUS_SUCCESS", b"inside")


def test_sticky_share_protects_other_users_files(identity: Identity, as_a: b.Client, as_b: b.Client) -> None:
    as_a.write_file("keep-a.txt", b"keep")
    os.chmod(identity.share / "keep-a.txt", 0o666)
    response = as_b.create("keep-a.txt", desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                           options=b.FILE_DELETE_ON_CLOSE)
    close_status = None
    if response.status == b.STATUS_SUCCESS:
        close_status = b.status_name(as_b.close_file(b.create_file_id(response.body)))
    assert (identity.share / "keep-a.txt").read_bytes() == b"keep"
    # The kernel refuses the unlink (sticky directory); Samba checks that at open time (can_delete_file_in_directory)
    # and answers the CREATE with STATUS_ACCESS_DENIED instead of granting a delete that cannot happen.
    assert _status(response) == "STATUS_ACCESS_DENIED", f"CREATE granted, CLOSE said {close_status}"
    # The owner may delete it.
    response = as_a.create("keep-a.txt", desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                           options=b.FILE_DELETE_ON_CLOSE)
    assert _status(response) == "STATUS_SUCCESS"
    as_a.close_file(b.create_file_id(response.body))
    assert not (identity.share / "keep-a.txt").exists()


def test_two_sessions_on_one_connection_keep_their_identities(identity: Identity) -> None:
    server = identity.server
    client = b.connect(server.host, server.port, "smbtest_a", PASSWORDS["smbtest_a"])
    try:
        session_a, tree_a = client.session_id, client.tree_id
        assert client.session_setup("smbtest_b", PASSWORDS["smbtest_b"]) == b.STATUS_SUCCESS
        assert client.tree_connect("share").status == b.STATUS_SUCCESS
        session_b, tree_b = client.session_id, client.tree_id
        assert session_a != session_b
        for session_id, tree_id, name in ((session_a, tree_a, "mixed-a.txt"), (session_b, tree_b, "mixed-b.txt")):
            response = client.request(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_WRITE,
                                                                   disposition=b.FILE_CREATE),
                                      session_id=session_id, tree_id=tree_id)
            assert _status(response) == "STATUS_SUCCESS"
            client.request(b.SMB2_CLOSE, b.close_body(b.create_file_id(response.body)), session_id=session_id,
                           tree_id=tree_id)
        assert os.stat(identity.share / "mixed-a.txt").st_uid == identity.uid["smbtest_a"]
        assert os.stat(identity.share / "mixed-b.txt").st_uid == identity.uid["smbtest_b"]
    finally:
        client.close()
