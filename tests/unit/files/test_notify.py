"""files/notify.py and fscc/notify.py: the change feed, the watches of CHANGE_NOTIFY opens and their records,
without a server (delivery runs at once when no event loop runs)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from smbsrv.files import notify
from smbsrv.files.notify import Change, ChangeFeed, Watches
from smbsrv.fscc import notify as records
from smbsrv.fscc.notify import Action, Filter


class _Open:
    """What a watch reads of a protocol.objects.Open; hashed by identity like it."""

    def __init__(self, root: Path, components: tuple[str, ...]) -> None:
        share_root = SimpleNamespace(path=str(root), root_fd=os.open(root, os.O_PATH | os.O_DIRECTORY))
        self.tree = SimpleNamespace(share_root=share_root)
        self.session = SimpleNamespace(uid=os.geteuid(), gid=os.getegid(), groups=())
        self.path_components = components
        self.is_directory = True


def _open(root: Path, components: tuple[str, ...]) -> _Open:
    return _Open(root, components)


@pytest.fixture
def feed() -> ChangeFeed:
    return ChangeFeed(kernel_feed=False)


def _change(root: Path, directory: tuple[str, ...], name: str, action: int = Action.ADDED,
            filter_: int = Filter.FILE_NAME) -> Change:
    return Change(str(root.resolve()), directory, name, action, filter_)


def test_records_are_chained_and_aligned_to_four_bytes() -> None:
    data = records.encode([(Action.ADDED, "a"), (Action.REMOVED, "abc")], 4096)
    assert data is not None
    # 12 + 2 bytes of name, padded to 16; the last record is not padded.
    assert data[:4] == (16).to_bytes(4, "little")
    assert len(data) == 16 + 12 + 6
    assert records.decode(data) == [(Action.ADDED, "a"), (Action.REMOVED, "abc")]
    assert records.encode([(Action.ADDED, "abc")], 17) is None  # 18 bytes do not fit in 17


def test_tree_and_flat_watches_and_relative_paths(tmp_path: Path, feed: ChangeFeed) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    watches = Watches(feed)
    tree = watches.watch(_open(tmp_path, ("d",)), Filter.FILE_NAME, True, 4096)  # type: ignore[arg-type]
    flat = watches.watch(_open(tmp_path, ("d",)), Filter.FILE_NAME, False, 4096)  # type: ignore[arg-type]
    other_filter = watches.watch(_open(tmp_path, ("d",)), Filter.ATTRIBUTES, True, 4096)  # type: ignore[arg-type]
    # In a thread of its own: the tree watch checks listability as the watcher (fs/identity.py), and the
    # identity a thread last switched to is per-thread state other unit tests rely on.
    worker = threading.Thread(target=feed.publish, args=([
        _change(tmp_path, ("d", "sub"), "x.txt"), _change(tmp_path, ("d",), "y.txt"),
        _change(tmp_path, (), "outside-the-watch.txt")],))
    worker.start()
    worker.join()
    assert tree.buffered == [(Action.ADDED, "sub\\x.txt"), (Action.ADDED, "y.txt")]
    assert flat.buffered == [(Action.ADDED, "y.txt")]
    assert other_filter.buffered == []


def test_buffer_overflows_to_one_flag_and_identical_records_coalesce(tmp_path: Path, feed: ChangeFeed) -> None:
    watches = Watches(feed)
    watch = watches.watch(_open(tmp_path, ()), Filter.LAST_WRITE, False, 200)  # type: ignore[arg-type]
    for _ in range(100):  # a burst of writes to one file is one record
        feed.publish([_change(tmp_path, (), "busy.txt", Action.MODIFIED, Filter.LAST_WRITE)])
    assert watch.buffered == [(Action.MODIFIED, "busy.txt")]
    for index in range(20):  # 20 records of 32 bytes exceed the first request's 200 bytes
        feed.publish([_change(tmp_path, (), f"file-{index:02}", Action.MODIFIED, Filter.LAST_WRITE)])
    assert watch.overflow and watch.buffered == []
    assert watch.take(4096) is None  # STATUS_NOTIFY_ENUM_DIR, once
    assert not watch.has_news()


def test_record_count_is_bounded_whatever_the_buffer(tmp_path: Path, feed: ChangeFeed) -> None:
    watches = Watches(feed)
    watch = watches.watch(_open(tmp_path, ()), Filter.FILE_NAME, False, 8 << 20)  # type: ignore[arg-type]
    feed.publish([_change(tmp_path, (), f"n{index}") for index in range(notify.MAX_BUFFERED + 1)])
    assert watch.overflow and watch.buffered == []


def test_waiting_request_gets_the_change_or_cleanup(tmp_path: Path, feed: ChangeFeed) -> None:
    async def scenario() -> tuple[object, object]:
        watches = Watches(feed)
        open_ = _open(tmp_path, ())
        watch = watches.watch(open_, Filter.FILE_NAME, False, 4096)  # type: ignore[arg-type]
        first = watches.wait(watch, 4096)
        assert isinstance(first, asyncio.Future)
        feed.publish([_change(tmp_path, (), "new.txt")])
        got = await first
        second = watches.wait(watch, 4096)
        assert isinstance(second, asyncio.Future)
        watches.forget(open_)  # type: ignore[arg-type]
        return got, await second

    got, ended = asyncio.run(scenario())
    assert records.decode(got) == [(Action.ADDED, "new.txt")]  # type: ignore[arg-type]
    assert ended is notify.CLEANUP


def test_subscribers_get_every_batch_and_can_leave(tmp_path: Path, feed: ChangeFeed) -> None:
    """The subscription API directory leases use: one callback per batch, nothing after cancel()."""
    batches: list[list[Change]] = []
    subscription = feed.subscribe(lambda changes: batches.append(list(changes)))
    tree = SimpleNamespace(share_root=SimpleNamespace(path=str(tmp_path)))
    feed.renamed(tree, ("a.txt",), ("b.txt",), is_dir=False)  # type: ignore[arg-type]
    assert [(c.action, c.name) for c in batches[0]] == [
        (Action.RENAMED_OLD_NAME, "a.txt"), (Action.RENAMED_NEW_NAME, "b.txt"), (Action.MODIFIED, "b.txt")]
    feed.renamed(tree, ("x", "a"), ("y", "a"), is_dir=True)  # type: ignore[arg-type]
    assert [(c.action, c.directory) for c in batches[1]] == [(Action.REMOVED, ("x",)), (Action.ADDED, ("y",))]
    subscription.cancel()
    feed.changed(tree, ("c.txt",), Action.ADDED, Filter.FILE_NAME)  # type: ignore[arg-type]
    assert len(batches) == 2


def test_without_a_kernel_feed_this_servers_changes_still_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """An unprivileged server (fanotify_init: EPERM): watches work on this server's own changes, and the
    missing feed is logged once per share, not for every new watch."""
    from smbsrv.files import kernel_feed

    def refuse(feed: ChangeFeed) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(kernel_feed, "KernelFeed", refuse)
    feed = ChangeFeed()
    watches = Watches(feed)
    opens = [_open(tmp_path, ()) for _ in range(3)]
    watch = None
    with caplog.at_level("INFO", logger="smbsrv.files.notify"):
        for open_ in opens:
            watch = watches.watch(open_, Filter.FILE_NAME, False, 4096)  # type: ignore[arg-type]
            watches.forget(open_)  # type: ignore[arg-type]
        watch = watches.watch(opens[0], Filter.FILE_NAME, False, 4096)  # type: ignore[arg-type]
    assert feed.kernel is None
    assert len([r for r in caplog.records if "no kernel change feed" in r.getMessage()]) == 1
    tree = SimpleNamespace(share_root=SimpleNamespace(path=str(tmp_path)))
    feed.changed(tree, ("made-here.txt",), Action.ADDED, Filter.FILE_NAME)  # type: ignore[arg-type]
    assert watch.buffered == [(Action.ADDED, "made-here.txt")]
