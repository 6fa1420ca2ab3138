"""cifs.ko when an administrator closes its session (`smbsrv close-session`, [MS-SMB2] 3.3.4.12), in both guests
(Debian stable's 6.1 and sid's 7.x): a mount holds a file open for writing when the host closes every session of
the mount's user through the control socket. The server closes the opens, durable ones too; the next request on
the session gets STATUS_USER_SESSION_DELETED, and cifs.ko sets the session up again by itself, reopens the held
file by name and goes on: old files read, new ones are made, the held file's later write lands, nothing is lost.

Revoking a user (README): the host removes it from the users file, reloads and closes its sessions. cifs.ko's
new logon is refused, and every operation on the mount fails at once with EHOSTDOWN instead of hanging.

Run: `SMBSRV_KERNEL_TESTS=1 pytest -m kernel tests/kernel/test_cifs_admin.py` (root).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from smbsrv.auth.users import UserDB
from smbsrv.control import request
from tests.kernel.image import SID, STABLE, build_image
from tests.kernel.kernel_log import assert_no_kernel_errors
from tests.kernel.servers import (
    SHARE_NAME,
    TEST_PASSWORD,
    TEST_USER,
    hand_share_roots_to_account,
    smbsrv_server_with_config,
)
from tests.kernel.vm import run_guest

pytestmark = pytest.mark.kernel

GUEST_SCRIPT = Path(__file__).resolve().parent / "guest" / "admin_suite.sh"


class Administrator:
    """Closes the mount user's sessions when the guest prints the mark."""

    def __init__(self, control_socket: Path, revoke_in: Path | None = None) -> None:
        self.control_socket = control_socket
        self.revoke_in = revoke_in  # a users file to remove the user from (and reload) first
        self.closed: list[dict[str, Any]] = []
        self.done = threading.Event()

    def on_line(self, line: str) -> None:
        if "SMBTEST-MARK close-session" in line and not self.done.is_set():
            if self.revoke_in is not None:
                users = UserDB.load(self.revoke_in)
                users.remove(TEST_USER)
                users.save()
                request(str(self.control_socket), "reload")
            self.closed = request(str(self.control_socket), "close-session", user=TEST_USER)["closed"]
            self.done.set()


@pytest.mark.parametrize("suite", [STABLE, SID])
def test_the_mount_goes_on_after_its_session_is_closed(tmp_path: Path, suite: str) -> None:
    image = build_image(suite=suite)
    share = tmp_path / "share"
    share.mkdir()
    control_socket = tmp_path / "control.sock"
    config = (f'[server]\nstate_dir = "{tmp_path / "state"}"\ncontrol_socket = "{control_socket}"\n\n'
              f'[shares.{SHARE_NAME}]\npath = "{share}"\n')
    administrator = Administrator(control_socket)
    with smbsrv_server_with_config(tmp_path, config, share) as server:
        result = run_guest(GUEST_SCRIPT.read_text(), server.port, 240, env=server.guest_env(), image=image,
                           on_line=administrator.on_line)
    log = server.log_path.read_text(errors="replace")  # all of it once the server has stopped
    result.assert_finished()
    assert result.steps == {"mount": True, "prepare": True, "across_close": True, "umount": True}, \
        result.failure_logs
    assert administrator.done.is_set()
    # The mount's one session, with the held file (and whatever else cifs.ko had open) closed with it.
    assert [entry["user"] for entry in administrator.closed] == [TEST_USER], administrator.closed
    assert administrator.closed[0]["opens_closed"] >= 1
    assert "reason=closed_by_administrator" in log, log[-3000:]
    # cifs.ko logged on again after the close, by itself.
    closed_at = log.index("reason=closed_by_administrator")
    assert "event=session_setup client=127.0.0.1" in log[closed_at:], log[closed_at - 2000:]
    assert (share / "held.txt").read_bytes() == b"one\ntwo\n"
    assert (share / "dir" / "after.txt").read_bytes() == b"written after\n"
    assert_no_kernel_errors(result.dmesg, "smbsrv")


def test_a_revoked_user_fails_at_once(tmp_path: Path) -> None:
    image = build_image(suite=SID)
    share = tmp_path / "share"
    share.mkdir()
    users_file = tmp_path / "users"
    users = UserDB.load(users_file)
    users.add(TEST_USER, TEST_PASSWORD, hand_share_roots_to_account(share))  # the account --user maps to
    users.save()
    control_socket = tmp_path / "control.sock"
    config = (f'[server]\nusers_file = "{users_file}"\nstate_dir = "{tmp_path / "state"}"\n'
              f'control_socket = "{control_socket}"\n\n[shares.{SHARE_NAME}]\npath = "{share}"\n')
    administrator = Administrator(control_socket, revoke_in=users_file)
    with smbsrv_server_with_config(tmp_path, config, share, users=()) as server:
        result = run_guest(GUEST_SCRIPT.read_text(), server.port, 240, env={**server.guest_env(),
                           "ADMIN_MODE": "revoke"}, image=image, on_line=administrator.on_line)
    log = server.log_path.read_text(errors="replace")  # all of it once the server has stopped
    result.assert_finished()
    assert result.steps == {"mount": True, "prepare": True, "revoked": True, "umount": True}, result.failure_logs
    assert [entry["user"] for entry in administrator.closed] == [TEST_USER], administrator.closed
    assert f"unknown user '{TEST_USER}'" in log[log.index("reason=closed_by_administrator"):], log[-3000:]
    assert sorted(path.name for path in share.iterdir()) == ["before.txt", "dir"]
    assert_no_kernel_errors(result.dmesg, "smbsrv")
