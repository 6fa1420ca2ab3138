"""cifs.ko caches what smbsrv's leases let it cache, in both guests (Debian stable's 6.1 and sid's 7.x), against
the default share (a config with nothing but its path), and `smbsrv status` shows a kernel mount (issues 13, 17).

One boot per guest runs guest/lease_suite.sh. Each "SMBTEST-MARK" line it prints makes the host scrape the
server's Prometheus endpoint, so the READ bytes and CREATE requests of each stretch are counted on the server:

- (a) reading a 16 MiB file twice sends its data once (with oplocks = false: 32 MiB in 8,194 READs);
- (b) 100 opens and closes of a file in a loop cost (nearly) no CREATE: cifs.ko's deferred close keeps the handle
  under its handle lease;
- (c) two mounts with their own connections (nosharesock) stay coherent: one caches, the other writes (in
  place, then truncating), the first reads the new data right after its lease is broken; and back;
- (e) a listing of the share's root repeated under the client's directory lease sends no QUERY_DIRECTORY (with
  directory_leases = false: 2 CREATEs and 2 QUERY_DIRECTORY), and a file a local process creates then is listed
  within 1 s (cifs.ko keeps a leased listing until the lease breaks, at most dir_cache_timeout, 30 s): the
  kernel change feed broke the directory lease;
- (d) while the mount holds a file open, the host connects smbclient and a raw client holding an open file with
  a byte-range lock, and `smbsrv status --json` lists all three sessions, the kernel client's open file with its
  lease, and the lock; the text output has their rows.

Run: `SMBSRV_KERNEL_TESTS=1 pytest -m kernel tests/kernel/test_cifs_leases.py` (root).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests import builders as b
from tests.kernel.image import SID, STABLE, build_image
from tests.kernel.kernel_log import assert_no_kernel_errors
from tests.kernel.servers import (
    REPO_ROOT,
    SHARE_NAME,
    TEST_PASSWORD,
    TEST_USER,
    free_port,
    smbsrv_server_with_config,
)
from tests.kernel.vm import run_guest

pytestmark = pytest.mark.kernel

GUEST_SCRIPT = Path(__file__).resolve().parent / "guest" / "lease_suite.sh"
MIB = 1024 * 1024
BIG = 16 * MIB
_MARK = re.compile(r"SMBTEST-MARK (\S+)")
_SAMPLE = re.compile(r'^smbsrv_requests_total\{command="(\w+)",status="(\w+)"\} ([0-9.e+]+)$', re.MULTILINE)
_READ_BYTES = re.compile(r"^smbsrv_read_bytes_total ([0-9.e+]+)$", re.MULTILINE)


class Observer:
    """The host's side of the marks: metrics snapshots, and the status check at the "status" mark."""

    def __init__(self, share: Path, config: Path, metrics_port: int) -> None:
        self.share, self.config, self.port = share, config, metrics_port
        self.snapshots: dict[str, tuple[dict[str, float], float]] = {}
        self.status: dict[str, Any] | None = None
        self.status_text = ""
        self.raw: tuple[int, int] = (0, 0)
        self.errors: list[str] = []

    def metrics(self) -> tuple[dict[str, float], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as response:
            text = response.read().decode()
        counts: dict[str, float] = {}
        for command, _status, value in _SAMPLE.findall(text):
            counts[command] = counts.get(command, 0.0) + float(value)
        return counts, float(_READ_BYTES.search(text).group(1))  # type: ignore[union-attr]

    def on_line(self, line: str) -> None:
        match = _MARK.search(line)
        if match is None:
            return
        try:
            self.snapshots[match.group(1)] = self.metrics()
            if match.group(1) == "status":
                self.check_status()
            if match.group(1) == "dir-end":
                (self.share / "local-new.txt").write_text("made on the server")
        except Exception as exc:  # noqa: BLE001  (reported by the test, not lost in the console thread)
            self.errors.append(f"{match.group(1)}: {exc!r}")
        finally:
            if match.group(1) == "status":
                (self.share / "status-done").write_text("done")

    def check_status(self) -> None:
        """smbclient and a raw client with a locked file join the kernel mount; status is taken with all three."""
        port = int(os.environ.get("SMBSRV_LEASE_TEST_PORT", "0"))
        smbclient = subprocess.Popen(["smbclient", f"//127.0.0.1/{SHARE_NAME}", "-p", str(port), "-U",
                                      f"{TEST_USER}%{TEST_PASSWORD}"], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        try:
            assert smbclient.stdin is not None
            smbclient.stdin.write("ls\n")
            smbclient.stdin.flush()
            with b.connect("127.0.0.1", port, TEST_USER, TEST_PASSWORD, share=SHARE_NAME, sign=True) as raw:
                handle = raw.open("locked.txt", desired_access=0x3, share_access=0x3, disposition=b.FILE_CREATE)
                lock = b.lock_body(handle, [(0, 100, b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY)])
                assert raw.request(b.SMB2_LOCK, lock).status == b.STATUS_SUCCESS
                self.raw = (raw.sock.getsockname()[1], handle[1])  # type: ignore[union-attr]
                deadline = time.monotonic() + 20
                while True:
                    self.status = json.loads(self.smbsrv("status", "--json"))
                    if len(self.status["sessions"]) >= 3 or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                self.status_text = self.smbsrv("status")
        finally:
            smbclient.communicate("quit\n", timeout=30)

    def smbsrv(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "smbsrv", *args, "-c", str(self.config)], cwd=REPO_ROOT,
                              check=True, capture_output=True, text=True, timeout=60).stdout

    def delta(self, begin: str, end: str) -> tuple[dict[str, float], float]:
        (c0, r0), (c1, r1) = self.snapshots[begin], self.snapshots[end]
        return {k: c1.get(k, 0.0) - c0.get(k, 0.0) for k in c1}, r1 - r0


@pytest.mark.parametrize("suite", [STABLE, SID])
def test_cifs_caches_under_leases(tmp_path: Path, suite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    image = build_image(suite=suite)
    share = tmp_path / "share"
    share.mkdir()
    big = os.urandom(BIG)
    (share / "big.bin").write_bytes(big)
    (share / "small.txt").write_text("small\n")
    (share / "c.txt").write_text("before")
    (share / "held.txt").write_text("held\n")
    metrics_port = free_port()
    config = (f'[server]\nstate_dir = "{tmp_path / "state"}"\ncontrol_socket = "{tmp_path / "control.sock"}"\n'
              f'metrics = true\nmetrics_port = {metrics_port}\n\n[shares.{SHARE_NAME}]\npath = "{share}"\n')
    with smbsrv_server_with_config(tmp_path, config, share) as server:
        for name in ("big.bin", "small.txt", "c.txt", "held.txt"):
            os.chown(share / name, share.stat().st_uid, share.stat().st_gid)
        monkeypatch.setenv("SMBSRV_LEASE_TEST_PORT", str(server.port))
        observer = Observer(share, tmp_path / "smbsrv.toml", metrics_port)
        env = {**server.guest_env(), "BIG_MD5": hashlib.md5(big).hexdigest()}
        result = run_guest(GUEST_SCRIPT.read_text(), server.port, 300, env=env, image=image,
                           on_line=observer.on_line)
    assert not result.timed_out and result.exit_code == 0, result.output[-4000:]
    assert result.steps == {"mount": True, "read_twice": True, "open_close_loop": True, "coherent": True,
                            "listing_cached": True, "status": True, "umount": True}, result.failure_logs
    assert observer.errors == []

    # (a) 16 MiB read twice: the data crossed the wire once (readahead may fetch a little beyond, never twice).
    counts, read_bytes = observer.delta("read-begin", "read-end")
    print(f"{suite}: 16 MiB read twice: {read_bytes / MIB:.2f} MiB in {counts.get('READ', 0):.0f} READs")
    assert BIG <= read_bytes < 1.25 * BIG, (read_bytes, counts)
    # (b) 100 opens and closes: the handle is kept and reused; the few CREATEs are the marks' own.
    counts, _ = observer.delta("loop-begin", "loop-end")
    print(f"{suite}: 100 opens/closes: {counts.get('CREATE', 0):.0f} CREATEs, {counts.get('CLOSE', 0):.0f} CLOSEs")
    assert counts.get("CREATE", 0) <= 5, counts
    # (e) the third listing of the root: from the client's cache under its directory lease.
    counts, _ = observer.delta("dir-begin", "dir-end")
    print(f"{suite}: cached listing: {counts.get('QUERY_DIRECTORY', 0):.0f} QUERY_DIRECTORY, "
          f"{counts.get('CREATE', 0):.0f} CREATEs")
    assert counts.get("QUERY_DIRECTORY", 0) == 0, counts  # directory_leases = false: 2 QUERY_DIRECTORY, 2 CREATE

    # (d) the kernel mount, smbclient and the raw client with its lock, in one status.
    status = observer.status
    assert status is not None
    raw_port, raw_file_id = observer.raw
    by_client = {session["client"]: session for session in status["sessions"]}
    raw_session = by_client.pop(f"127.0.0.1:{raw_port}")
    assert len(by_client) == 2, status["sessions"]  # the guest's mount and smbclient
    assert all(s["user"] == TEST_USER and s["dialect"] == "3.1.1" for s in status["sessions"])
    assert [t["share"] for t in raw_session["tree_connects"]] == [SHARE_NAME]
    kernel_opens = [o for o in status["open_files"] if o["path"] == "held.txt"]
    assert len(kernel_opens) == 1 and kernel_opens[0]["session_id"] != raw_session["session_id"]
    assert kernel_opens[0]["oplock"] == "lease" and "R" in kernel_opens[0]["lease"]["state"], kernel_opens
    kernel_session = kernel_opens[0]["session_id"]
    smbclient_sessions = [s for s in status["sessions"] if s["session_id"] not in (kernel_session,
                                                                                   raw_session["session_id"])]
    assert len(smbclient_sessions) == 1
    assert status["locks"] == [{"session_id": raw_session["session_id"], "user": TEST_USER, "share": SHARE_NAME,
                                "path": "locked.txt", "file_id": raw_file_id, "offset": 0, "length": 100,
                                "exclusive": True}]
    assert status["breaks"] == []
    rows = observer.status_text.splitlines()
    assert any(row.startswith(kernel_session) and "held.txt" in row and "lease R" in row for row in rows)
    assert any(row.startswith(raw_session["session_id"]) and " EX " in row and "locked.txt" in row for row in rows)
    assert sum(1 for row in rows if row.startswith("0x") and "3.1.1" in row) == 3
    assert (share / "c.txt").read_text() == "third!"
    assert_no_kernel_errors(result.dmesg, "smbsrv")
