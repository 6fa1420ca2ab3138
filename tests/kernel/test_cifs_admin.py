"""cifs.ko when an administrator closes its session (`smbsrv close-session`, [MS-SMB2] 3.3.4.12), in both guests
(Debian stable's 6.1 and sid's 7.x): a mount holds a file open for writing when the host closes every session of
the mount's user through the control socket. The server closes the opens, durable ones too; the next request on
the session gets STATUS_USER_SESSION_DELETED, and cifs.ko sets the session up again by itself, reopens the held
file by name and goes on: old files read, new ones are made, the held file's later write lands, nothing is lost.

Run: `SMBSRV_KERNEL_TESTS=1 pytest -m kernel tests/kernel/test_cifs_admin.py` (root).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from smbsrv.control import request
from tests.kernel.image import SID, STABLE, build_image
from tests.kernel.servers import SHARE_NAME, TEST_USER, smbsrv_server_with_config
from tests.kernel.vm import run_guest

pytestmark = pytest.mark.kernel

GUEST_SCRIPT = Path(__file__).resolve().parent / "guest" / "admin_suite.sh"


class Administrator:
    """Closes the mount user's sessions when the guest prints the mark."""

    def __init__(self, control_socket: Path) -> None:
        self.control_socket = control_socket
        self.closed: list[dict[str, Any]] = []
        self.done = threading.Event()

    def on_line(self, line: str) -> None:
        if "SMBTEST-MARK close-session" in line and not self.done.is_set():
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
    deadline = time.monotonic() + 10
    while "reason=closed_by_administrator" not in (log := server.log_path.read_text(errors="replace")) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
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
