"""The daemon as deployed (issue 11): root serving an ordinary account, from a Python only root can read.

A root server acts as each client's Unix account for share syscalls (fs/identity.py). Everything else it does
must stay the server's: importing modules lazily, starting I/O worker threads, writing its log and its state
files. A Python installation that the account cannot read (a venv in a 0700 home, pyenv under /root) turns any
of those done under the client's identity into STATUS_INTERNAL_ERROR. So the daemon here runs from a private
mount namespace where the interpreter's whole prefix sits below a 0700 tmpfs: the account cannot reach one
file of it, whatever the machine's own permissions are.

Then a non-root account does what real clients do: 64 MiB puts and gets (the large-WRITE worker threads), EAs,
a reparse buffer over the 2 KiB xattr budget (the server's side store under state_dir), with the DEBUG log on,
and the log must hold no handler bug.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import (
    SmbServer,
    assert_no_server_bugs,
    serving_account,
    start_server,
    stop_server,
)
from tests.integration import reparse_helpers as r

# Mounts a 0700 tmpfs at $1, binds the interpreter's prefix ($2) below it and runs the interpreter found at the
# relative path $3 there with the remaining arguments. Only this process's private mount namespace sees it.
_PRIVATE_PYTHON = """\
set -e
private="$1"; prefix="$2"; interpreter="$3"; shift 3
mount -t tmpfs -o mode=0700 smbsrv-private "$private"
mkdir "$private/python"
mount --bind "$prefix" "$private/python"
exec "$private/python/$interpreter" "$@"
"""
OPAQUE_MICROSOFT_TAG = 0x80000099
FILE_FULL_EA_INFORMATION = 15
SMB2_0_INFO_FILE = 1


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def deployed(request: pytest.FixtureRequest) -> Iterator[SmbServer]:
    """Both event loops: uvloop imports what the executor needs up front, the stdlib loop does not (its first
    large WRITE imported concurrent.futures.thread as the client)."""
    assert os.geteuid() == 0, "this test starts the daemon as root, as deployed"
    if sys.prefix != sys.base_prefix:
        pytest.fail("run the suite from a Python installation, not a venv: the test re-homes the interpreter's "
                    "prefix, which a venv splits in two")
    account = serving_account()
    assert account is not None
    interpreter = os.path.relpath(os.path.realpath(sys.executable), sys.base_prefix)
    tmp = Path(tempfile.mkdtemp(prefix="smbsrv-deployed-"))
    try:
        (tmp / "private").mkdir()
        script = tmp / "private-python.sh"
        script.write_text(_PRIVATE_PYTHON)
        share = tmp / "share"
        share.mkdir()
        state = tmp / "state"
        config = tmp / "smbsrv.toml"
        config.write_text(f'[server]\nstate_dir = "{state}"\n[shares.share]\npath = "{share}"\n')
        python = ("unshare", "--mount", "--propagation", "private", "sh", str(script), str(tmp / "private"),
                  sys.base_prefix, interpreter)
        server = start_server(share, tmp / "server.log", config=config, python=python,
                              env={"SMBSRV_EVENT_LOOP": request.param})
        try:
            yield server
        finally:
            stop_server(server.process)
        assert_no_server_bugs(server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_account_cannot_read_the_servers_python(deployed: SmbServer) -> None:
    """The premise: inside the server's mount namespace the stdlib is below a 0700 directory."""
    account = serving_account()
    assert account is not None
    root = Path(f"/proc/{deployed.process.pid}/root")
    mounts = Path(f"/proc/{deployed.process.pid}/mountinfo").read_text()
    private = next(line.split()[4] for line in mounts.splitlines() if "smbsrv-private" in line)
    assert (root / private.lstrip("/")).stat().st_mode & 0o777 == 0o700
    assert os.readlink(f"/proc/{deployed.process.pid}/exe").startswith(private)


def test_large_puts_and_gets_as_the_account(deployed: SmbServer, tmp_path: Path) -> None:
    data = os.urandom(64 * 1024 * 1024)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    back = tmp_path / "back.bin"
    deployed.smbclient(f'put "{source}" big.bin; get big.bin "{back}"', "-m", "SMB3")
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(data).digest()
    account = serving_account()
    assert account is not None
    assert (deployed.share_path / "big.bin").stat().st_uid == account.pw_uid


def _full_ea(name: bytes, value: bytes) -> bytes:
    """One FILE_FULL_EA_INFORMATION entry ([MS-FSCC] 2.4.15), NextEntryOffset 0."""
    return struct.pack("<IBBH", 0, 0, len(name), len(value)) + name + b"\x00" + value


def test_eas_and_a_side_stored_reparse_buffer_as_the_account(deployed: SmbServer) -> None:
    with b.connect(deployed.host, deployed.port, deployed.user, deployed.password) as client:
        file_id = client.open("tagged.bin", desired_access=b.GENERIC_ALL, disposition=b.FILE_CREATE)
        response = client.set_info(file_id, SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION,
                                   _full_ea(b"USER.COLOUR", b"blue"))
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        response = client.query_info(file_id, SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert b"USER.COLOUR\x00blue" in b.output_buffer(response)
        # Over the 2 KiB a file's xattr block can hold next to the others: kept in the side store.
        payload = os.urandom(6000)
        buffer = r.reparse_buffer(OPAQUE_MICROSOFT_TAG, payload)
        assert r.set_reparse(client, file_id, buffer) == b.STATUS_SUCCESS
        status, stored = r.get_reparse(client, file_id)
        assert status == b.STATUS_SUCCESS, b.status_name(status)
        assert stored == buffer
        client.close_file(file_id)
    side_files = [path for path in (deployed.share_path.parent / "state").rglob("*") if path.is_file()]
    assert side_files, "the buffer did not reach the side store"
    assert all(path.stat().st_uid == 0 for path in side_files), "state files must be the server's"


def test_no_handler_bug_was_logged(deployed: SmbServer) -> None:
    """Runs last in the module (file order): the DEBUG log of everything above holds no internal error."""
    assert_no_server_bugs(deployed)
    assert " DEBUG " in deployed.log_text()
    assert "ModuleNotFoundError" not in deployed.log_text()
