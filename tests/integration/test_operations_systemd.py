"""conf/smbsrv.service and the sd_notify readiness protocol (issue 17).

The unit must pass `systemd-analyze verify` (with ExecStart pointing at this installation's smbsrv); the
daemon, given a $NOTIFY_SOCKET the test binds, must send READY=1 with its MAINPID once it accepts connections,
RELOADING=1 and READY=1 around a SIGHUP reload, and STOPPING=1 on SIGTERM (sd_notify(3)).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, start_server, stop_server

UNIT = REPO / "conf" / "smbsrv.service"
CAPABILITIES = ["CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
                "CAP_CHOWN", "CAP_FOWNER"]


def _installed_unit(tmp_path: Path, text: str) -> Path:
    """The unit with ExecStart naming the smbsrv this test runs (verify checks that the program exists)."""
    program = shutil.which("smbsrv") or str(Path(sys.executable).parent / "smbsrv")
    assert Path(program).exists(), "smbsrv is not installed (pip install -e .)"
    unit = tmp_path / "smbsrv.service"
    unit.write_text(text.replace("/usr/local/bin/smbsrv", program))
    return unit


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: scripts/test installs it (Debian package systemd)")
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120,
                          check=False)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = _verify(_installed_unit(tmp_path, UNIT.read_text()))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    # The check is real: a misspelt setting in the same file is reported.
    broken = _installed_unit(tmp_path, UNIT.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    assert "Unknown key 'NoNewPrivilege'" in _verify(broken).stderr


def test_unit_sandbox_and_capabilities() -> None:
    text = UNIT.read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE))
    assert settings["Type"] == "notify"
    assert settings["CapabilityBoundingSet"].split() == CAPABILITIES
    for key, value in (("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                       ("ProtectHome", "yes"), ("ReadWritePaths", "/srv/smb"), ("StateDirectory", "smbsrv")):
        assert settings[key] == value, key
    for capability in CAPABILITIES:  # each one is justified in a comment
        assert re.search(rf"^#\s+{capability}\s+\S", text, re.MULTILINE), capability


DROP_IN = REPO / "conf" / "smbsrv.service.d" / "local-changes.conf"


def test_local_changes_drop_in_adds_only_cap_sys_admin(tmp_path: Path) -> None:
    """The optional drop-in (fanotify for notify, W/H leases and HSM) loads with the unit, verifies, and adds
    exactly CAP_SYS_ADMIN: CapabilityBoundingSet lines accumulate, so it must not repeat or replace the list."""
    _installed_unit(tmp_path, UNIT.read_text())
    drop_ins = tmp_path / "smbsrv.service.d"
    drop_ins.mkdir()
    (drop_ins / DROP_IN.name).write_text(DROP_IN.read_text())
    settings = re.findall(r"^(\w+)=(.*)$", DROP_IN.read_text(), re.MULTILINE)
    assert settings == [("CapabilityBoundingSet", "CAP_SYS_ADMIN")]

    def verify(unit_dir: Path) -> subprocess.CompletedProcess[str]:
        # By name with the directory on the unit path, so that systemd reads smbsrv.service.d/ as it would in
        # /etc/systemd/system.
        return subprocess.run(["systemd-analyze", "verify", "smbsrv.service"], capture_output=True, text=True,
                              timeout=120, check=False, env={**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:"})

    result = verify(tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    # The drop-in is really read: a misspelt key in it is reported against its own path.
    (drop_ins / DROP_IN.name).write_text(DROP_IN.read_text() + "CapabilityBoundingSett=CAP_SYS_ADMIN\n")
    assert f"{drop_ins / DROP_IN.name}:" in verify(tmp_path).stderr


def _notifications(sock: socket.socket, until: str, timeout_s: float = 15) -> list[str]:
    sock.settimeout(timeout_s)
    received: list[str] = []
    while until not in received:
        received += sock.recv(4096).decode().split("\n")
    return received


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_server_notifies_ready_reloading_stopping(tmp_path: Path, abstract: bool) -> None:
    share = tmp_path / "share"
    share.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        if abstract:
            name = f"smbsrv-test-{tmp_path.name}"
            notify.bind("\0" + name)
            address = "@" + name
        else:
            address = str(tmp_path / "notify.sock")
            notify.bind(address)
        server = start_server(share, tmp_path / "server.log", env={"NOTIFY_SOCKET": address})
        try:
            ready = _notifications(notify, "READY=1")
            assert f"MAINPID={server.process.pid}" in ready
            assert any(line.startswith("STATUS=serving 1 share(s) on port ") for line in ready)
            # Ready means connectable.
            socket.create_connection((server.host, server.port), timeout=5).close()
            server.process.send_signal(signal.SIGHUP)
            reload = _notifications(notify, "READY=1")
            assert reload[0] == "RELOADING=1" and re.fullmatch(r"MONOTONIC_USEC=\d+", reload[1])
            stop_server(server.process)
            assert _notifications(notify, "STOPPING=1") == ["STOPPING=1"]
            assert server.process.returncode == 0
        finally:
            stop_server(server.process)


def test_no_notify_socket_no_notification(tmp_path: Path) -> None:
    """Without $NOTIFY_SOCKET (a plain start, a container) nothing is sent and nothing is logged about it."""
    share = tmp_path / "share"
    share.mkdir()
    server = start_server(share, tmp_path / "server.log", env={"NOTIFY_SOCKET": ""})
    stop_server(server.process)
    assert "sd_notify" not in server.log_text() and "NOTIFY_SOCKET" not in server.log_text()
