"""files/kernel_feed.py: fanotify events of other processes become exact changes below a root; this process's
own events and names outside the root are dropped (root only: fanotify filesystem marks need CAP_SYS_ADMIN)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from smbsrv.files.notify import Change, ChangeFeed
from smbsrv.fscc.notify import Action, Filter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="fanotify filesystem marks need root")


def _feed(root: Path) -> tuple[ChangeFeed, list[Change]]:
    got: list[Change] = []
    feed = ChangeFeed()
    feed.subscribe(got.extend)
    feed.want_root(str(root))
    assert feed.kernel is not None
    return feed, got


def test_other_processes_changes_map_to_exact_actions(tmp_path: Path) -> None:
    root = tmp_path / "share"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    feed, got = _feed(root)
    try:
        script = (f"cd {root} && touch x && mv x y && mv y a/z && mkdir d && chmod 700 d && rm a/z "
                  f"&& touch {tmp_path}/outside && touch b/last")
        subprocess.run(["sh", "-c", script], check=True)
        (root / "b" / "mine").write_bytes(b"made by this process: dropped")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(c.name == "last" for c in got):
            feed.kernel.read_events()
            time.sleep(0.01)
    finally:
        feed.release_root(str(root))
    assert feed.kernel is None  # the last root released closes the fanotify group
    names = [(c.action, c.directory, c.name) for c in got if c.filter & (Filter.FILE_NAME | Filter.DIR_NAME)]
    assert names == [
        (Action.ADDED, (), "x"),
        (Action.RENAMED_OLD_NAME, (), "x"), (Action.RENAMED_NEW_NAME, (), "y"),
        (Action.REMOVED, (), "y"), (Action.ADDED, ("a",), "z"),  # a move to another directory
        (Action.ADDED, (), "d"),
        (Action.REMOVED, ("a",), "z"),
        (Action.ADDED, ("b",), "last"),
    ]
    # chmod of a directory is reported as a change of its name in its parent, not as "." in it.
    assert any(c.name == "d" and c.directory == () and c.action == Action.MODIFIED and c.filter & Filter.SECURITY
               for c in got)
    assert not [c for c in got if c.name in ("outside", "mine", ".")]
    assert all(c.root == str(root.resolve()) for c in got)
