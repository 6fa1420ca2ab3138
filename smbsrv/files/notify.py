"""Change notification: one feed of directory changes, and the watches of CHANGE_NOTIFY opens
([MS-FSA] 2.1.5.10, 2.1.4.17 "Server Requests Change Notification"; Samba's source3/smbd/notify.c).

`ChangeFeed` is the one stream of "this name in this directory of this share changed" events. Two sources feed
it: this server's own operations (the command modules call `changed()`), and local processes or other
protocols (files/kernel_feed.py, a fanotify filesystem mark; its events made by this process are dropped there,
so nothing is reported twice). Consumers subscribe with `ChangeFeed.subscribe(callback, on_overflow)` and ask
for a share's local changes with `want_root(path)`: the CHANGE_NOTIFY watches below are one subscriber,
directory leases are meant to be another (docs/notify.md).

Delivery is synchronous, before the publishing request is answered, and runs as the server (`as_server()`):
a publisher may be inside a handler step acting as its client (fs/identity.py), and subscribers check
listability as each watcher. One operation publishes its records as one batch (a rename's two names), so they
go into one response.

`Watches` keeps the CHANGE_NOTIFY state of each directory open, as [MS-FSA] 2.1.1.6 Open.NotifyChange: its
filter and WATCH_TREE (fixed by the first request, as Windows and Samba), the changes buffered between requests
(bounded: at most MAX_BUFFERED records and the first request's OutputBufferLength in bytes, else one overflow
flag that answers STATUS_NOTIFY_ENUM_DIR) and the requests waiting.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from smbsrv.files.change import Change
from smbsrv.fs import identity
from smbsrv.fscc import notify as records
from smbsrv.fscc.notify import Action, Filter

if TYPE_CHECKING:
    from smbsrv.protocol.objects import Open, TreeConnect

log = logging.getLogger(__name__)

# Records kept per watch between two requests: Samba's guard (notify.c, 1000 changes), and a response never
# needs more (a 64 KiB buffer holds about 2,000 short names).
MAX_BUFFERED = 1000
# Directories whose listability is remembered per tree watch (security check of names below the watched one).
_ACCESS_CACHE = 256


Subscriber = Callable[[Sequence[Change]], None]


ALL_FILTERS = 0xFFFFFFFF


class Subscription:
    __slots__ = ("_feed", "callback", "mask", "on_overflow")

    def __init__(self, feed: ChangeFeed, callback: Subscriber, on_overflow: Callable[[], None] | None,
                 mask: int = ALL_FILTERS) -> None:
        self._feed = feed
        self.callback = callback
        self.on_overflow = on_overflow
        self.mask = mask

    def cancel(self) -> None:
        feed, self._feed = self._feed, None  # type: ignore[assignment]
        if feed is not None:
            feed._subscribers.remove(self)
            feed._update_wanted()


class ChangeFeed:
    """Every change to the shares, from this server and (where the kernel feed runs) from anyone else."""

    def __init__(self, kernel_feed: bool = True, kernel_mask: int | None = None) -> None:
        self._kernel_mask = kernel_mask  # fanotify events of the kernel feed (None: files/kernel_feed.py's)
        self._subscribers: list[Subscription] = []
        self._wanted = 0  # the filters some subscriber wants: changes of no other kind are not even built
        self._roots: dict[str, int] = {}  # real path of a share root -> how many users need its local changes
        self._pending: list[Change] = []
        self._delivering = False
        self._kernel_wanted = kernel_feed
        self.kernel: Any = None  # files.kernel_feed.KernelFeed while some root is wanted
        self._real_paths: dict[str, str] = {}
        self._uncovered: set[str] = set()  # roots the kernel feed could not cover

    # -- subscription API (CHANGE_NOTIFY watches, directory leases) -----------------------------------------

    def subscribe(self, callback: Subscriber, on_overflow: Callable[[], None] | None = None,
                  mask: int = ALL_FILTERS) -> Subscription:
        """Call `callback(changes)` with every batch of changes of every share whose filter has a bit of `mask`
        (directory leases leave out the data-only changes of every WRITE), on the event loop and as the server;
        `on_overflow()` when the kernel dropped events (anything may have changed)."""
        subscription = Subscription(self, callback, on_overflow, mask)
        self._subscribers.append(subscription)
        self._update_wanted()
        return subscription

    def _update_wanted(self) -> None:
        wanted = 0
        for subscription in self._subscribers:
            wanted |= subscription.mask
        self._wanted = wanted

    def want_root(self, root: str) -> None:
        """A subscriber needs the local changes (other processes, other protocols) below share directory
        `root`: the kernel feed covers its file system until the matching release_root()."""
        root = self.real_path(root)
        self._roots[root] = self._roots.get(root, 0) + 1
        if self._roots[root] == 1 and self._kernel_wanted and root not in self._uncovered:
            self._start_kernel(root)

    def release_root(self, root: str) -> None:
        root = self.real_path(root)
        self._roots[root] -= 1
        if self._roots[root]:
            return
        del self._roots[root]
        if self.kernel is not None:
            self.kernel.remove_root(root)
            if not self._roots:
                self.kernel.close()
                self.kernel = None

    def _start_kernel(self, root: str) -> None:
        try:
            if self.kernel is None:
                from smbsrv.files.kernel_feed import KernelFeed

                self.kernel = KernelFeed(self) if self._kernel_mask is None else KernelFeed(self, self._kernel_mask)
            self.kernel.add_root(root)
        except OSError as exc:
            # Unprivileged server or a file system without fanotify: this server's own changes still flow. Not
            # tried again for this root (each new watch would log it again).
            self._uncovered.add(root)
            log.info("change notify: no kernel change feed for %s (%s); local changes are not reported",
                     root, exc.strerror or exc)

    def real_path(self, path: str) -> str:
        real = self._real_paths.get(path)
        if real is None:
            real = self._real_paths[path] = os.path.realpath(path)
        return real

    @property
    def roots(self) -> Sequence[str]:
        return tuple(self._roots)

    # -- publishing -----------------------------------------------------------------------------------------

    def changed(self, tree: TreeConnect, components: Sequence[str], action: int, filter_: int,
                is_dir: bool = False, origin: Open | None = None) -> None:
        """This server changed the object at `components` of the tree's share (the command modules' call),
        through the open `origin` when there is one."""
        wanted = self._wanted
        # `wanted` first: with nobody watching, no IntFlag arithmetic (a Python-level __and__, ~2 us) is done.
        if not wanted or not filter_ & wanted or not components or tree.share_root is None:
            return
        self.publish([Change(self.real_path(tree.share_root.path), tuple(components[:-1]), components[-1],
                             action, filter_, is_dir, origin=origin)])

    def renamed(self, tree: TreeConnect, old: Sequence[str], new: Sequence[str], is_dir: bool,
                origin: Open | None = None) -> None:
        """A rename by this server: OLD_NAME + NEW_NAME in one directory, else REMOVED + ADDED, and for files
        a MODIFIED (attributes, creation) of the new name as Windows 2003 and Samba report it."""
        if not self._subscribers or tree.share_root is None:
            return
        root = self.real_path(tree.share_root.path)
        mask = Filter.DIR_NAME if is_dir else Filter.FILE_NAME
        old_dir, new_dir = tuple(old[:-1]), tuple(new[:-1])
        moved_to = tuple(new) if is_dir else None
        if old_dir == new_dir:
            batch = [Change(root, old_dir, old[-1], Action.RENAMED_OLD_NAME, mask, is_dir, moved_to, origin=origin),
                     Change(root, new_dir, new[-1], Action.RENAMED_NEW_NAME, mask, is_dir, origin=origin)]
        else:
            batch = [Change(root, old_dir, old[-1], Action.REMOVED, mask, is_dir, moved_to, origin=origin),
                     Change(root, new_dir, new[-1], Action.ADDED, mask, is_dir, origin=origin)]
        if not is_dir:
            batch.append(Change(root, new_dir, new[-1], Action.MODIFIED, Filter.ATTRIBUTES | Filter.CREATION,
                                origin=origin))
        self.publish(batch)

    def publish(self, changes: Sequence[Change]) -> None:
        """Hand `changes` (one operation's, in order) to every subscriber now, before the publishing request
        is answered. Not later in the event loop: a client that sends its next request the moment it has an
        answer keeps the transport reading without a loop turn in between, and a deferred delivery would lag
        behind what that client already did."""
        if self._wanted != ALL_FILTERS:
            changes = [change for change in changes if change.filter & self._wanted]
        if not changes:
            return
        self._pending.extend(changes)
        if self._delivering:
            return  # a subscriber published in turn: the loop below takes it
        self._delivering = True
        try:
            # The publisher may be a handler step acting as its client: subscribers work as the server (and
            # check listability as each watcher), then the step goes on as its client.
            if identity.acts_as_client():
                with identity.as_server():
                    self._deliver()
            else:
                self._deliver()
        finally:
            self._delivering = False

    def _deliver(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            for subscription in list(self._subscribers):
                wanted = batch if subscription.mask == ALL_FILTERS else [
                    change for change in batch if change.filter & subscription.mask]
                if not wanted:
                    continue
                try:
                    subscription.callback(wanted)
                except Exception:  # one subscriber's bug must not starve the others
                    log.exception("change feed subscriber failed")

    def overflowed(self) -> None:
        """The kernel dropped events: every watch must tell its client to re-read (STATUS_NOTIFY_ENUM_DIR)."""
        for subscription in list(self._subscribers):
            if subscription.on_overflow is not None:
                subscription.on_overflow()


class Watch:
    """[MS-FSA] 2.1.1.6 Open.NotifyChange of one directory open."""

    __slots__ = ("_access", "buffered", "buffered_bytes", "directory", "filter", "max_buffer", "open",
                 "overflow", "recursive", "root", "waiters")

    def __init__(self, open_: Open, root: str, filter_: int, recursive: bool, max_buffer: int) -> None:
        self.open = open_
        self.root = root
        self.directory = tuple(open_.path_components)
        self.filter = filter_
        self.recursive = recursive
        self.max_buffer = max_buffer
        self.buffered: list[tuple[int, str]] = []
        self.buffered_bytes = 0
        self.overflow = False
        self.waiters: deque[tuple[asyncio.Future[Any], int]] = deque()
        self._access: dict[tuple[str, ...], bool] = {}

    def add(self, action: int, name: str) -> None:
        if self.overflow:
            return
        record = (action, name)
        if self.buffered and self.buffered[-1] == record:
            return  # identical records coalesce (Samba's notify_marshall_changes): a burst of writes is one
        size = records.record_size(name)
        if len(self.buffered) >= MAX_BUFFERED or self.buffered_bytes + size > max(self.max_buffer, 4):
            self.buffered.clear()
            self.buffered_bytes = 0
            self.overflow = True
            return
        self.buffered.append(record)
        self.buffered_bytes += size

    def take(self, limit: int) -> bytes | None:
        """The buffered records as a response for a request of OutputBufferLength `limit` (capped by the first
        request's, as Samba); None when they overflowed or do not fit: STATUS_NOTIFY_ENUM_DIR."""
        buffered, overflow = self.buffered, self.overflow
        self.buffered, self.buffered_bytes, self.overflow = [], 0, False
        if overflow:
            return None
        return records.encode(buffered, min(limit, self.max_buffer))

    def has_news(self) -> bool:
        return self.overflow or bool(self.buffered)

    def may_see(self, directory: tuple[str, ...], root_fd: int) -> bool:
        """Whether the watcher may learn names in `directory` below the watched one: its account could list
        that directory (read and search) and reach it from the share root (search on each component),
        checked as the account (faccessat with AT_EACCESS honours the thread's fsuid, fsgid and groups)."""
        known = self._access.get(directory)
        if known is not None:
            return known
        session = self.open.session
        try:
            with identity.acting_as(session.uid, session.gid, session.groups):
                allowed = os.access("/".join(directory), os.R_OK | os.X_OK, dir_fd=root_fd,
                                    effective_ids=True, follow_symlinks=False)
        except OSError:
            allowed = False
        if len(self._access) >= _ACCESS_CACHE:
            self._access.clear()
        self._access[directory] = allowed
        return allowed

    def forget_access(self) -> None:
        self._access.clear()


class Watches:
    """The CHANGE_NOTIFY watches of every open, indexed by (share root, watched directory)."""

    def __init__(self, feed: ChangeFeed) -> None:
        self.feed = feed
        self._by_open: dict[Open, Watch] = {}  # by the handle object itself (identity, as Open is eq=False)
        self._subscription: Subscription | None = None
        self._by_dir: dict[tuple[str, tuple[str, ...]], list[Watch]] = {}
        self._root_fds: dict[str, int] = {}

    def get(self, open_: Open) -> Watch | None:
        return self._by_open.get(open_)

    def watch(self, open_: Open, filter_: int, recursive: bool, max_buffer: int) -> Watch:
        """The open's first CHANGE_NOTIFY: its filter, WATCH_TREE and buffer size hold for all that follow."""
        share_root = open_.tree.share_root
        root = self.feed.real_path(share_root.path)
        watch = Watch(open_, root, filter_, recursive, max_buffer)
        if self._subscription is None:
            self._subscription = self.feed.subscribe(self._on_changes, self.overflow_all)
        self.feed.want_root(root)
        self._by_open[open_] = watch
        self._by_dir.setdefault((root, watch.directory), []).append(watch)
        self._root_fds[root] = share_root.root_fd
        return watch

    def forget(self, open_: Open) -> None:
        """The open is closed (CLOSE, LOGOFF, TREE_DISCONNECT, connection loss): a waiting request completes
        with STATUS_NOTIFY_CLEANUP ([MS-SMB2] 3.3.5.10; Samba's close_file) and the watch goes."""
        watch = self._by_open.pop(open_, None)
        if watch is None:
            return
        self.feed.release_root(watch.root)
        if not self._by_open and self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        key = (watch.root, watch.directory)
        same = self._by_dir.get(key)
        if same is not None:
            same.remove(watch)
            if not same:
                del self._by_dir[key]
        while watch.waiters:
            future, _ = watch.waiters.popleft()
            if not future.done():
                future.set_result(CLEANUP)

    def delete_pending(self, opens: Sequence[Open]) -> None:
        """The watched directory became delete-pending: waiting requests on its opens complete with
        STATUS_DELETE_PENDING (Samba's close_directory; smbtorture smb2.notify.rmdir1-4)."""
        for open_ in opens:
            watch = self._by_open.get(open_)
            while watch is not None and watch.waiters:
                future, _ = watch.waiters.popleft()
                if not future.done():
                    future.set_result(DELETE_PENDING)

    def __len__(self) -> int:
        return len(self._by_open)

    # -- delivery -------------------------------------------------------------------------------------------

    def _on_changes(self, changes: Sequence[Change]) -> None:
        touched: list[Watch] = []
        by_dir = self._by_dir
        for change in changes:
            if change.moved_to is not None:
                self._follow(change.root, change.directory + (change.name,), change.moved_to)
            directory = change.directory
            for depth in range(len(directory), -1, -1):
                watchers = by_dir.get((change.root, directory[:depth]))
                if not watchers:
                    continue
                relative = "\\".join(directory[depth:] + (change.name,))
                for watch in watchers:
                    if depth < len(directory) and not watch.recursive:
                        continue
                    if change.is_dir and change.filter & (Filter.DIR_NAME | Filter.ATTRIBUTES | Filter.SECURITY):
                        watch.forget_access()  # a directory's permissions or name changed
                    if not change.filter & watch.filter:
                        continue
                    if depth < len(directory) and not watch.may_see(directory, self._root_fds[change.root]):
                        continue
                    watch.add(change.action, relative)
                    touched.append(watch)
        for watch in touched:
            if watch.waiters:
                self._complete_first(watch)

    def _follow(self, root: str, old: tuple[str, ...], new: tuple[str, ...]) -> None:
        """A directory was renamed: watches on it and below it now watch the new path (the handle follows the
        directory, as on Windows)."""
        depth = len(old)
        for key in [key for key in self._by_dir if key[0] == root and key[1][:depth] == old]:
            moved = self._by_dir.pop(key)
            directory = new + key[1][depth:]
            for watch in moved:
                watch.directory = directory
                watch.forget_access()
            self._by_dir.setdefault((root, directory), []).extend(moved)

    def overflow_all(self) -> None:
        for watch in list(self._by_open.values()):
            watch.buffered.clear()
            watch.buffered_bytes = 0
            watch.overflow = True
            if watch.waiters:
                self._complete_first(watch)

    def _complete_first(self, watch: Watch) -> None:
        # A rename's OLD_NAME is held back until its NEW_NAME is buffered too (Samba does the same): both go
        # in one response. Publishers put both in one batch, so this only matters for a torn kernel pair.
        if watch.buffered and watch.buffered[-1][0] == Action.RENAMED_OLD_NAME and not watch.overflow:
            return
        while watch.waiters:
            future, limit = watch.waiters.popleft()
            if future.done():
                continue  # cancelled
            future.set_result(watch.take(limit))
            return

    def wait(self, watch: Watch, limit: int) -> asyncio.Future[Any] | bytes | None:
        """A CHANGE_NOTIFY request on the watch: the buffered changes at once when there are any (bytes, or
        None for STATUS_NOTIFY_ENUM_DIR), else a future that a later change or the close completes."""
        if watch.has_news() and not watch.waiters:
            return watch.take(limit)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        watch.waiters.append((future, limit))
        return future


CLEANUP = object()  # the result a waiting request gets when its open is closed
DELETE_PENDING = object()  # ... when its directory is to be deleted
