"""The kernel evidence of durable handles (issue 13), in both guests (Debian stable's 6.1 and sid's 7.x): the TCP
connection is cut under a mount (the test's relay drops both ends) while a program holds a file open for
writing; its next write and its close succeed after cifs.ko reconnects (reopening the file with DH2C), and the
data on the server is intact. The server's log shows the session ended with its handles kept (durable=N).

Run: `SMBSRV_KERNEL_TESTS=1 pytest -m kernel tests/kernel/test_cifs_durable.py` (root).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from tests.kernel.image import SID, STABLE, build_image
from tests.kernel.netns import TcpRelay
from tests.kernel.servers import SHARE_NAME, smbsrv_server_with_config
from tests.kernel.vm import run_guest

pytestmark = pytest.mark.kernel

GUEST_SCRIPT = Path(__file__).resolve().parent / "guest" / "durable_suite.sh"
CONTENT = b"written before the cut\nwritten after the reconnect\n"


class Cutter:
    """Cuts the guest's connections when the guest prints the mark."""

    def __init__(self) -> None:
        self.relay: TcpRelay | None = None
        self.cut_sockets = 0
        self.done = threading.Event()

    def on_line(self, line: str) -> None:
        if "SMBTEST-MARK cut" in line and self.relay is not None and not self.done.is_set():
            self.cut_sockets = self.relay.cut()
            self.done.set()


@pytest.mark.parametrize("suite", [STABLE, SID])
def test_writes_go_on_across_a_cut_connection(tmp_path: Path, suite: str) -> None:
    image = build_image(suite=suite)
    share = tmp_path / "share"
    share.mkdir()
    # DEBUG: the log names each durable reconnect (commands/durable_handles.py).
    config = (f'[server]\nstate_dir = "{tmp_path / "state"}"\ncontrol_socket = "{tmp_path / "control.sock"}"\n'
              f'log_level = "DEBUG"\n\n[shares.{SHARE_NAME}]\npath = "{share}"\n')
    cutter = Cutter()

    def on_relay(relay: TcpRelay) -> None:
        cutter.relay = relay

    with smbsrv_server_with_config(tmp_path, config, share) as server:
        result = run_guest(GUEST_SCRIPT.read_text(), server.port, 240, env=server.guest_env(), image=image,
                           on_line=cutter.on_line, on_relay=on_relay)
    # The server's stderr reaches its log file in blocks; all of it once the server has stopped.
    deadline = time.monotonic() + 10
    while "event=session_end" not in (log := server.log_path.read_text(errors="replace")) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not result.timed_out and result.exit_code == 0, result.output[-4000:]
    assert result.steps == {"mount": True, "write_across_cut": True, "umount": True}, result.failure_logs
    assert cutter.done.is_set() and cutter.cut_sockets >= 2  # both ends of the mount's connection
    assert (share / "durable.txt").read_bytes() == CONTENT
    kept = [int(match) for match in re.findall(r"event=session_end .* durable=(\d+)", log)]
    assert kept and kept[0] >= 1, log[-3000:]  # the cut session's handles were kept for the reconnect
    # ... and cifs.ko took the written file's handle back (DH2C) instead of opening it again by name.
    assert "durable open of durable.txt reconnected" in log, log[-3000:]
