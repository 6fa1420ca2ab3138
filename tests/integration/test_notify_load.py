"""CHANGE_NOTIFY under load against the daemon: a tree watch on a busy tree (a local process making thousands
of changes a second) answers every request in bounded time with bounded memory, and a tree watch on a tree of
10,000 directories costs the kernel one fanotify mark and no inotify watch (docs/notify.md has the numbers)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from tests import builders as b
from tests.conftest import SmbServer
from tests.integration.notify_helpers import (
    ADDED,
    ALL,
    WATCH_TREE,
    changes,
    collect_until,
    pending_notify,
    send_notify,
    status,
)

_WRITER = r"""
import os, sys, time
root, seconds = sys.argv[1], float(sys.argv[2])
dirs = [os.path.join(root, f"d{index:02}") for index in range(20)]
done, deadline, index = 0, time.monotonic() + seconds, 0
while time.monotonic() < deadline:
    for directory in dirs:
        name = os.path.join(directory, f"f{index % 50}.txt")
        with open(name, "wb") as handle:   # create (or truncate) and write
            handle.write(b"x" * 100)
        if index % 3 == 0:
            os.unlink(name)
        done += 1
    index += 1
print(done)
"""


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def _fanotify_marks(pid: int) -> tuple[int, int]:
    """(fanotify filesystem marks, inotify watches) held by the process."""
    marks = watches = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        marks += sum(1 for line in info.splitlines() if line.startswith("fanotify sdev:"))
        watches += sum(1 for line in info.splitlines() if line.startswith("inotify wd:"))
    return marks, watches


def test_busy_tree_every_request_answered_with_bounded_memory(smb_server: SmbServer) -> None:
    busy = smb_server.share_path / "busy"
    for index in range(20):
        (busy / f"d{index:02}").mkdir(parents=True)
    smb_server.hand_over()
    pid = smb_server.process.pid
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        handle = client.open("busy", options=b.FILE_DIRECTORY_FILE)
        message_id, _ = pending_notify(client, handle, flags=WATCH_TREE, completion_filter=ALL,
                                       output_length=65536)
        rss_before = _kib(pid, "VmRSS")
        seconds = 4.0
        started = time.monotonic()
        writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(busy), str(seconds)], stdout=subprocess.PIPE)
        answered = records = enum_dir = 0
        slowest = 0.0
        try:
            asked = time.monotonic()
            while True:
                # Wait for the answer while the writer runs; once it has stopped, the request may rightly wait
                # for a change that no longer comes: the final marker below is that change.
                if not select.select([client.sock], [], [], 0.5)[0]:
                    if writer.poll() is not None:
                        break
                    continue
                response = client.receive(message_id, skip_pending=False)
                if status(response) == "STATUS_PENDING":
                    continue  # the interim answer: the final one follows with the next changes
                slowest = max(slowest, time.monotonic() - asked)
                answered += 1
                if status(response) == "STATUS_NOTIFY_ENUM_DIR":
                    enum_dir += 1
                else:
                    records += len(changes(response))
                message_id = send_notify(client, handle, flags=WATCH_TREE, completion_filter=ALL,
                                         output_length=65536)
                asked = time.monotonic()
            made = int(writer.communicate(timeout=30)[0])
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        elapsed = time.monotonic() - started
        rss_after = _kib(pid, "VmRSS")
        # The request that was waiting when the writer stopped still completes: the last change reaches it (or
        # the next one), nothing is lost in between.
        (busy / "d00" / "final-marker.txt").write_bytes(b"end")
        seen = [] if status(response := client.receive(message_id)) == "STATUS_NOTIFY_ENUM_DIR" else changes(response)
        seen = collect_until(client, handle, (ADDED, "d00\\final-marker.txt"), seen=seen, flags=WATCH_TREE,
                             completion_filter=ALL, output_length=65536)
    rate = made / seconds
    print(f"\n{made} local changes in {seconds:.0f} s ({rate:.0f}/s, create+write, a third also deleted); "
          f"{answered} notify responses ({records} records, {enum_dir} ENUM_DIR), slowest answer {slowest:.3f} s; "
          f"server RSS {rss_before} -> {rss_after} KiB; {elapsed:.1f} s in all")
    assert rate > 1000, rate  # "thousands of changes a second"
    assert answered > 10 and records > 0
    assert slowest < 5.0  # a waiting request never waits long while changes pour in
    assert rss_after - rss_before < 40 * 1024, (rss_before, rss_after)  # bounded: no per-change growth


def test_a_watch_nobody_reads_stays_bounded(smb_server: SmbServer) -> None:
    """Changes pile up between requests only up to the buffer's bound; then the watch just remembers that it
    overflowed, and the next request answers STATUS_NOTIFY_ENUM_DIR at once."""
    busy = smb_server.share_path / "busy"
    for index in range(20):
        (busy / f"d{index:02}").mkdir(parents=True)
    smb_server.hand_over()
    pid = smb_server.process.pid
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        handle = client.open("busy", options=b.FILE_DIRECTORY_FILE)
        message_id, _ = pending_notify(client, handle, flags=WATCH_TREE, completion_filter=ALL,
                                       output_length=65536)
        (busy / "d00" / "first.txt").write_bytes(b"x")
        collect_until(client, handle, (ADDED, "d00\\first.txt"), seen=changes(client.receive(message_id)),
                      flags=WATCH_TREE, completion_filter=ALL, output_length=65536)
        rss_before = _kib(pid, "VmRSS")
        made = int(subprocess.run([sys.executable, "-c", _WRITER, str(busy), "3"], capture_output=True,
                                  check=True).stdout)
        time.sleep(0.5)  # the kernel feed drains
        rss_after = _kib(pid, "VmRSS")
        answer = client.receive(send_notify(client, handle, flags=WATCH_TREE, completion_filter=ALL,
                                            output_length=65536))
    print(f"\n{made} changes with no request waiting: server RSS {rss_before} -> {rss_after} KiB")
    assert status(answer) == "STATUS_NOTIFY_ENUM_DIR"
    assert rss_after - rss_before < 10 * 1024, (rss_before, rss_after)


def test_tree_watch_on_10000_directories(smb_server: SmbServer) -> None:
    tree = smb_server.share_path / "big"
    for outer in range(100):
        for inner in range(100):
            os.makedirs(tree / f"o{outer:03}" / f"i{inner:03}")
    smb_server.hand_over()
    pid = smb_server.process.pid
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        rss_before = _kib(pid, "VmRSS")
        handle = client.open("big", options=b.FILE_DIRECTORY_FILE)
        started = time.monotonic()
        message_id, _ = pending_notify(client, handle, flags=WATCH_TREE, completion_filter=ALL)
        setup = time.monotonic() - started
        marks, inotify_watches = _fanotify_marks(pid)
        (tree / "o099" / "i099" / "deep.txt").write_bytes(b"x")
        seen = changes(client.receive(message_id))
        seen = collect_until(client, handle, (ADDED, "o099\\i099\\deep.txt"), seen=seen, flags=WATCH_TREE,
                             completion_filter=ALL)
        rss_after = _kib(pid, "VmRSS")
    print(f"\n10,000 directories: watch set up in {setup * 1000:.1f} ms, {marks} fanotify mark(s), "
          f"{inotify_watches} inotify watches, server RSS {rss_before} -> {rss_after} KiB")
    assert marks == 1 and inotify_watches == 0
    assert setup < 1.0
    assert rss_after - rss_before < 10 * 1024
