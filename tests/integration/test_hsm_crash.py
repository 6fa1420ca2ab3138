"""SIGKILL at random moments of hydration (the daemon) and of release (`smbsrv hsm release`), 50 cycles.

The guarantee under test (docs/hsm.md): after any kill, the file is either a placeholder (its mark present,
its size the real size, and its provider object whole) or complete and byte for byte the original. Never a
short or corrupt file presented as whole. After the last cycle, a client reads the original through SMB.

Bounded: each kill waits at most about as long as the operation it interrupts takes; the test ends in well
under two minutes on this machine.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import REPO, start_server, stop_server
from tests.integration.hsm_helpers import MARK_XATTR, is_placeholder, make_file, write_config

pytestmark = pytest.mark.slow

CYCLES = 50
SIZE = 48 * 1024 * 1024


def _check(path: Path, original_sha: str, cold: Path) -> str:
    """The invariant; returns which state the file is in."""
    st = os.stat(path)
    if is_placeholder(path):
        mark = os.getxattr(path, MARK_XATTR)
        assert st.st_size == SIZE, f"placeholder of {st.st_size} bytes"
        assert original_sha.encode() in mark
        stored = cold / original_sha[:2] / original_sha
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == original_sha, "mark names an incomplete object"
        return "placeholder"
    assert st.st_size == SIZE, f"a whole file of {st.st_size} bytes"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == original_sha, "a corrupt file presented as whole"
    return "local"


def _release(config: Path, path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "smbsrv", "hsm", "release", "-c", str(config), str(path)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sigkill_during_hydration_and_release(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("SMBSRV_CRASH_SEED", "16")))
    share = tmp_path / "share"
    cold = tmp_path / "cold"
    share.mkdir()
    cold.mkdir()
    path = share / "crash.bin"
    original_sha = hashlib.sha256(make_file(path, SIZE)).hexdigest()
    config = write_config(tmp_path, share, hsm_provider="directory", hsm_directory=str(cold),
                          hsm_range_first_bytes=1 << 30)
    # How long one release and one hydration take here: the kills land anywhere within those windows.
    started = time.monotonic()
    assert _release(config, path).wait(60) == 0
    release_s = time.monotonic() - started
    seen: dict[str, int] = {"placeholder": 0, "local": 0}
    deadline = time.monotonic() + 150
    for cycle in range(CYCLES):
        assert time.monotonic() < deadline, f"cycle {cycle}: out of time"
        if cycle % 2 == 0:
            # Hydration: a READ starts it, the daemon is killed somewhere between the request and the commit.
            if not is_placeholder(path):
                assert _release(config, path).wait(60) == 0
            server = start_server(share, tmp_path / f"server{cycle}.log", config=config)
            try:
                client = b.connect(server.host, server.port, server.user, server.password)
                file_id = client.open("crash.bin")
                client.send(b.Req(b.SMB2_READ, b.read_body(file_id, 0, 65536)))
                time.sleep(rng.uniform(0, 0.6))
                server.process.send_signal(signal.SIGKILL)
                server.process.wait(10)
                client.close()
            finally:
                stop_server(server.process)
        else:
            # Release: the CLI is killed somewhere between its start and its end.
            if is_placeholder(path):
                server = start_server(share, tmp_path / f"server{cycle}.log", config=config)
                try:
                    server.smbclient(f"get crash.bin {tmp_path / 'fetched.bin'}")
                finally:
                    stop_server(server.process)
            process = _release(config, path)
            time.sleep(rng.uniform(0, release_s * 1.2))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        seen[_check(path, original_sha, cold)] += 1
    # Both outcomes were reached, so the kills did land on both sides of the commit points.
    assert seen["placeholder"] and seen["local"], seen
    server = start_server(share, tmp_path / "final.log", config=config)
    try:
        server.smbclient(f"get crash.bin {tmp_path / 'final.bin'}")
    finally:
        stop_server(server.process)
    assert hashlib.sha256((tmp_path / "final.bin").read_bytes()).hexdigest() == original_sha
    assert not is_placeholder(path)
