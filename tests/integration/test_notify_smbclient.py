"""smbclient's `notify` command against the daemon: it sees a file another smbclient puts and a file a local
process creates (issue 14's evidence)."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from pathlib import Path

from tests.conftest import SmbServer


def _lines_until(process: subprocess.Popen[bytes], wanted: set[str], timeout: float) -> list[str]:
    """Read smbclient's output lines until every line of `wanted` appeared (or the time is up)."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    buffer = b""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while not wanted <= set(lines) and time.monotonic() < deadline:
        if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            break
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines += [line.decode(errors="replace").strip() for line in complete]
    return lines


def test_smbclient_notify_sees_smb_and_local_creates(smb_server: SmbServer, tmp_path: Path) -> None:
    watched = smb_server.share_path / "watched"
    watched.mkdir()
    smb_server.hand_over()
    source = tmp_path / "payload.txt"
    source.write_bytes(b"hello\n")
    # stdbuf: smbclient prints each change as it comes, but a pipe would hold them in stdio's buffer.
    argv = ["stdbuf", "-o0", "smbclient", f"//{smb_server.host}/{smb_server.share}", "-p", str(smb_server.port),
            "-U", f"{smb_server.user}%{smb_server.password}", "-c", "notify watched"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while "CHANGE_NOTIFY" not in smb_server.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)  # smbclient's watch is in place once its first request reached the server
        smb_server.smbclient(f"put {source} watched\\from-smbclient.txt")
        (watched / "from-local-process.txt").write_bytes(b"local\n")
        # smbclient prints the action in four hex digits and the name: 0001 is FILE_ACTION_ADDED.
        lines = _lines_until(process, {"0001 from-smbclient.txt", "0001 from-local-process.txt"}, timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "0001 from-smbclient.txt" in lines, lines
    assert "0001 from-local-process.txt" in lines, lines
