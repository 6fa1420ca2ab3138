"""OPLOCK_BREAK ([MS-SMB2] 3.3.5.22): acknowledgments of oplock and lease breaks; and the CREATE side of
oplocks and leases ([MS-SMB2] 3.3.5.9.8, 3.3.5.9.11): which lease a request asks for, sending the breaks an
open causes, waiting for them, and the response's oplock level and lease context.

The rules themselves are in files/oplocks.py (no I/O there); this module is the edge: it reads the clock,
finds the holder's connection and sends the notifications through Connection.send_unsolicited.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from smbsrv.files import oplocks
from smbsrv.files.change import Change
from smbsrv.fs import backend, identity
from smbsrv.fscc.notify import Action, Filter
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.protocol.reply import GoAsync
from smbsrv.wire import oplock as wire
from smbsrv.wire.constants import (
    SMB2_CREATE_REQUEST_LEASE,
    SMB2_GLOBAL_CAP_DIRECTORY_LEASING,
    SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET,
    SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED,
    SMB2_OPLOCK_LEVEL_LEASE,
    SMB2_OPLOCK_LEVEL_NONE,
    Command,
)
from smbsrv.wire.create_contexts import CreateContext
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.files.table import FileState
    from smbsrv.protocol.objects import TreeConnect
    from smbsrv.state import ServerState

log = logging.getLogger(__name__)

# The clock break deadlines are measured with (monotonic seconds); files/oplocks.py takes it as an argument.
clock: Callable[[], float] = time.monotonic


def timeout_s(server: ServerState) -> float:
    return float(server.config.oplock_break_timeout_s)


# -- acknowledgments ------------------------------------------------------------------------------------------

def handle(ctx: RequestContext, request: wire.OplockBreakAck | wire.LeaseBreakAck) -> bytes:
    server = ctx.connection.server
    if isinstance(request, wire.LeaseBreakAck):
        if ctx.connection.dialect < 0x0210:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)  # no leases on 2.0.2
        follow_ups = oplocks.ack_lease(server.files, ctx.connection.client_guid, request.lease_key,
                                       request.lease_state, clock(), timeout_s(server))
        log.debug("lease break acknowledged: %s to %s", request.lease_key.hex(),
                  oplocks.state_letters(request.lease_state) or "none")
        send_breaks(server, follow_ups)
        return wire.encode_lease_break_response(request.lease_key, request.lease_state)
    session = ctx.session
    assert session is not None
    open_ = session.opens.get(request.file_id[1])
    if open_ is None or open_.file_id[0] != request.file_id[0] or open_.file is None or \
            ctx.tree is not None and open_.tree is not ctx.tree:
        raise SmbError(NtStatus.STATUS_FILE_CLOSED)
    level = oplocks.ack_oplock(open_.file, open_, request.oplock_level)
    log.debug("oplock break acknowledged: file id %d to level %d", open_.file_id[1], level)
    return wire.encode_oplock_break(level, open_.file_id)


# -- delivery -------------------------------------------------------------------------------------------------

def send_breaks(server: ServerState, breaks: list[oplocks.Break]) -> None:
    """Send each break to its holder's connection: an oplock break with the open's session, a lease break to
    a connection of the lease's client (the one the open was made on while it lives)."""
    for brk in breaks:
        if _closed_disconnected(server, brk):
            continue
        connection = brk.open_.connection
        if brk.lease is None:
            if connection is None or connection.closed:
                continue
            log.debug("oplock break of file id %d to level %d", brk.open_.file_id[1], brk.oplock_level)
            connection.send_unsolicited(Command.OPLOCK_BREAK, wire.encode_oplock_break(
                brk.oplock_level, brk.open_.file_id), brk.open_.session)
            continue
        lease = brk.lease
        # To the client's first connection still up, as Samba does (smbtorture smb2.lease.v2_complex1 expects
        # the break there even when the open was made on the client's second connection).
        connection = min((c for c in server.connections if not c.closed and c.client_guid == lease.client_guid
                          and c.dialect >= 0x0210), key=lambda c: c.connection_id, default=None)
        if connection is None:
            continue
        log.debug("lease break %s from %d to %d (epoch %d)", lease.key.hex(), brk.current, brk.new, brk.epoch)
        body = wire.encode_lease_break_notification(
            brk.epoch if lease.version > 1 else 0,
            SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED if brk.ack_required else 0, lease.key, brk.current,
            brk.new)
        connection.send_unsolicited(Command.OPLOCK_BREAK, body)


def _closed_disconnected(server: ServerState, brk: oplocks.Break) -> bool:
    """A break for disconnected durable opens (every open of the lease, or the oplock's open) cannot reach
    anyone: those opens are closed instead, as Samba does, and nothing waits for an acknowledgment
    ([MS-SMB2] 3.3.4.6, 3.3.4.7; files/durable.py)."""
    durable = server.files.durable
    opens = list(brk.lease.opens) if brk.lease is not None else [brk.open_]
    if not opens or not all(durable.is_disconnected(open_) for open_ in opens):
        return False
    # As the server, like every other teardown (connection loss, the durable scavenger): whichever user's
    # request caused the break, a pending delete of the closed open was checked when it was set.
    with identity.as_server():
        for open_ in opens:
            log.debug("break for disconnected durable open of %s: closed", "/".join(open_.path_components))
            server.close_open(open_)
    return True


def break_for_write(server: ServerState, open_: Open) -> None:
    """A WRITE, byte-range LOCK or size change through `open_`: level II holders and read leases lose their
    read cache (no acknowledgment, nothing waits)."""
    state = open_.file
    if state is not None and (len(state.opens) > 1 or open_.oplock_level):
        send_breaks(server, oplocks.breaks_for_write(state, open_, clock(), timeout_s(server)))


def break_replaced(server: ServerState, key: tuple[int, int]) -> None:
    """A rename replaced the file `key` while it was open (POSIX semantics): its name now leads elsewhere, so
    its holders lose all caching, H included; a client must not serve the new name from a handle it cached
    for the old file (cifs.ko's deferred close does exactly that)."""
    state = server.files.get(key)
    if state is not None:
        send_breaks(server, oplocks.breaks_for_local_change(state, clock(), timeout_s(server)))


# -- CREATE ---------------------------------------------------------------------------------------------------

def lease_request(ctx: RequestContext, requested_level: int, contexts: dict[bytes, bytes]) -> wire.LeaseRequest | None:
    """The lease a CREATE asks for, or None: a lease needs OplockLevel LEASE, 2.1 or later, a non-zero key,
    and v2 needs 3.x (else the context is ignored, as by Samba)."""
    data = contexts.get(SMB2_CREATE_REQUEST_LEASE)
    if data is None or requested_level != SMB2_OPLOCK_LEVEL_LEASE or ctx.connection.dialect < 0x0210:
        return None
    lease = wire.decode_lease_request(data)
    if not any(lease.lease_key) or lease.version == 2 and ctx.connection.dialect < 0x0300:
        return None
    return lease


class MustWait(Exception):
    """An open that must wait for breaks to be acknowledged before it is tried again."""

    def __init__(self, state: FileState) -> None:
        super().__init__("waiting for an oplock break")
        self.state = state


def check_breaks(ctx: RequestContext, state: FileState | None, *, access: int, sharing_violation: bool,
                 overwrite: bool, lease: wire.LeaseRequest | None, first_attempt: bool) -> None:
    """Break what this open conflicts with; raise MustWait when it has to wait for an acknowledgment, else
    SHARING_VIOLATION when the sharing check failed."""
    if state is not None and state.opens:
        server = ctx.connection.server
        own = None
        if lease is not None:
            own = server.files.leases.get((ctx.connection.client_guid, lease.lease_key))
        now = clock()
        follow_ups, _ = oplocks.expire(server.files, state, now, timeout_s(server))
        breaks, delay = oplocks.breaks_for_open(state, access=access, sharing_violation=sharing_violation,
                                                overwrite=overwrite, lease=own, first_attempt=first_attempt,
                                                now=now, timeout_s=timeout_s(server))
        send_breaks(server, follow_ups + breaks)
        if delay:
            raise MustWait(state)
    if sharing_violation:
        raise SmbError(NtStatus.STATUS_SHARING_VIOLATION)


def check_rename(ctx: RequestContext, open_: Open) -> None:
    """Before a rename through `open_`: other leases give up H first (MustWait while they do)."""
    state = open_.file
    if open_.lease is None or state is None:
        return
    server = ctx.connection.server
    breaks, delay = oplocks.breaks_for_rename(state, open_, clock(), timeout_s(server))
    send_breaks(server, breaks)
    if delay:
        raise MustWait(state)


def retry_after_breaks(ctx: RequestContext, state: FileState, attempt: Callable[[], bytes]) -> GoAsync:
    """The request goes async ([MS-SMB2] 3.3.4.2) and `attempt` runs again each time a break of the file is
    acknowledged, its holder closes, or a break times out: as the session's user, like every step of an async
    request's completion (Connection._as_requester)."""

    async def retry() -> bytes:
        waiting = state
        while True:
            await wait_for_breaks(ctx, waiting)
            try:
                return attempt()
            except MustWait as again:
                waiting = again.state

    # An end in sight (the break times out at the latest): in the middle of a compound the request still goes
    # async and the related requests after it wait (Connection._answer_smb2).
    return GoAsync(retry, holds_chain=True)


async def wait_for_breaks(ctx: RequestContext, state: FileState) -> None:
    """Until a break of the file is acknowledged, its holder closes, or the earliest deadline passes."""
    server = ctx.connection.server
    breaks, pending = oplocks.expire(server.files, state, clock(), timeout_s(server))
    send_breaks(server, breaks)
    if pending is None:
        await asyncio.sleep(0)  # nothing is outstanding any more: try again at once
        return
    await oplocks.waiters(state).wait(pending - clock())
    breaks, _ = oplocks.expire(server.files, state, clock(), timeout_s(server))
    send_breaks(server, breaks)


class LocalChanges:
    """Keeps oplocks and leases honest about changes made outside SMB (local processes, NFS): a kernel change
    feed of its own (files/kernel_feed.py, fanotify) reports files closed after writing (FAN_CLOSE_WRITE), and
    every oplock or lease of such a file is broken to none. Close rather than each write: the server's own
    writes then cost no event at all (FAN_MODIFY, one event per write syscall, cost 30-50 us CPU per 64 KiB
    WRITE of a cached file), at the price of a local writer that keeps the file open breaking caches at its
    close only. Where the feed cannot cover a share (an unprivileged server, a file system without fanotify),
    that share's clients get read caching only: no W (dirty data a local reader would miss) and no H (a handle
    kept open, and its R with it, long after the application closed the file)."""

    def __init__(self, server: ServerState) -> None:
        from smbsrv.files.kernel_feed import FAN_CLOSE_WRITE
        from smbsrv.files.notify import ChangeFeed

        self.server = server
        self.feed = ChangeFeed(kernel_mask=FAN_CLOSE_WRITE)
        self._covered: dict[str, bool] = {}  # share root (real path) -> whether the kernel feed reports it
        self._subscription: object | None = None

    def allowed(self, tree: TreeConnect) -> int:
        feed = self.feed
        root = feed.real_path(tree.share_root.path)
        covered = self._covered.get(root)
        if covered is None:
            if self._subscription is None:
                self._subscription = feed.subscribe(self._on_changes)
            feed.want_root(root)  # kept for the server's lifetime: leases come and go too often to re-mark
            covered = self._covered[root] = feed.kernel is not None and feed.kernel.covers(root)
            if not covered:
                log.info("oplocks: no kernel change feed for %s; clients get read caching only", root)
        return oplocks.R | oplocks.W | oplocks.H if covered else oplocks.R

    def _on_changes(self, changes: Sequence[Change]) -> None:
        files = self.server.files
        now, breaks = clock(), []
        for change in changes:
            if not change.local or change.is_dir or not change.filter & (Filter.LAST_WRITE | Filter.SIZE):
                continue
            st = backend.lstat_path(os.path.join(change.root, *change.directory, change.name))
            if st is None:
                continue
            state = files.get((st.st_dev, st.st_ino))
            if state is not None:
                breaks.extend(oplocks.breaks_for_local_change(state, now, timeout_s(self.server)))
        if breaks:
            log.debug("a change outside SMB breaks %d oplocks/leases", len(breaks))
            send_breaks(self.server, breaks)


def local_changes(server: ServerState) -> LocalChanges:
    watcher = server.files.local_changes
    if watcher is None:
        watcher = server.files.local_changes = LocalChanges(server)
    return watcher  # type: ignore[no-any-return]


class DirectoryChanges:
    """Breaks directory leases ([MS-SMB2] 3.3.4.7; [MS-FSA] 2.1.4.12 with PARENT_OBJECT) when a name inside
    the directory is added, removed, renamed or has its attributes changed: by this server's clients (the
    server's change feed, FileTable.changes, which says which open made the change) and by local processes (a
    kernel feed of its own with create, delete, rename and attribute events only; data writes inside a
    directory change no listing). A share the kernel feed cannot cover gets no directory leases: a listing
    cached there would never learn of a local create.

    Started by the first directory lease a share grants and kept for the server's lifetime, as LocalChanges."""

    # Filters of a MODIFIED change that only say the data changed (WRITE, a size change): no break then; the
    # handle that wrote breaks the directory's leases when it closes (its entry's time and size settle then:
    # Windows, smbtorture smb2.lease.v2_request), and a local process's close after writing breaks them too.
    # A named stream's write changes no directory entry at all (docs/streams.md).
    _DATA_ONLY = Filter.LAST_WRITE | Filter.LAST_ACCESS | Filter.SIZE | Filter.STREAM_WRITE | Filter.STREAM_SIZE

    def __init__(self, server: ServerState) -> None:
        from smbsrv.files.kernel_feed import (
            FAN_ATTRIB,
            FAN_CLOSE_WRITE,
            FAN_CREATE,
            FAN_DELETE,
            FAN_ONDIR,
            FAN_RENAME,
        )
        from smbsrv.files.notify import ChangeFeed

        self.server = server
        self.local = ChangeFeed(kernel_mask=FAN_ATTRIB | FAN_CREATE | FAN_DELETE | FAN_RENAME | FAN_ONDIR
                                | FAN_CLOSE_WRITE)
        self._covered: dict[str, bool] = {}
        self._subscriptions: list[object] = []

    def allowed(self, tree: TreeConnect) -> int:
        root = self.local.real_path(tree.share_root.path)
        covered = self._covered.get(root)
        if covered is None:
            if not self._subscriptions:
                # Not the data-only changes of each WRITE from this server's feed: delivering them would cost
                # every WRITE a Change and an identity switch (measured: ~40 us per 64 KiB WRITE).
                from smbsrv.files.notify import ALL_FILTERS

                self._subscriptions = [
                    self.server.files.changes.subscribe(self._on_changes, mask=ALL_FILTERS & ~self._DATA_ONLY),
                    self.local.subscribe(self._on_changes)]
            self.local.want_root(root)
            covered = self._covered[root] = self.local.kernel is not None and self.local.kernel.covers(root)
            if not covered:
                log.info("directory leases: no kernel change feed for %s; no directory is leased there", root)
        return oplocks.R | oplocks.H if covered else 0

    def _on_changes(self, changes: Sequence[Change]) -> None:
        files = self.server.files
        now, breaks = clock(), []
        seen: dict[str, FileState | None] = {}
        for change in changes:
            if (change.action in (Action.MODIFIED, Action.MODIFIED_STREAM) and not change.filter & ~self._DATA_ONLY
                    and not change.local):
                continue
            path = os.path.join(change.root, *change.directory)
            if path in seen:
                state = seen[path]
            else:
                st = backend.lstat_path(path)
                state = seen[path] = files.get((st.st_dev, st.st_ino)) if st is not None else None
            if state is None:
                continue
            origin = change.origin
            key = None
            if origin is not None and origin.parent_lease_key is not None and origin.connection is not None:
                key = (origin.connection.client_guid, origin.parent_lease_key)
            breaks.extend(oplocks.breaks_for_child_change(state, key, now, timeout_s(self.server)))
        if breaks:
            log.debug("a change inside a leased directory breaks %d directory leases", len(breaks))
            send_breaks(self.server, breaks)

    def closed(self, open_: Open) -> None:
        """FileTable.close: a handle that wrote is closing, which settles its entry in the directory."""
        if not open_.wrote:
            return
        share_root = open_.tree.share_root
        if share_root is None or not open_.path_components:
            return
        self._on_changes([Change(self.local.real_path(share_root.path), tuple(open_.path_components[:-1]),
                                 open_.path_components[-1], Action.MODIFIED, Filter.LAST_WRITE | Filter.ATTRIBUTES,
                                 origin=open_)])


def directory_changes(server: ServerState) -> DirectoryChanges:
    watcher = server.files.directory_changes
    if watcher is None:
        watcher = server.files.directory_changes = DirectoryChanges(server)
    return watcher  # type: ignore[no-any-return]


def grant(ctx: RequestContext, open_: Open, requested_level: int, lease: wire.LeaseRequest | None,
          existed: bool) -> None:
    """Give the new open its oplock or lease; a directory only a v2 lease on 3.x (R or RH, where the share has
    directory_leases), and an open of an existing file for attributes only gets no oplock (it may get a lease;
    smbtorture smb2.oplock.exclusive4)."""
    # A CREATE that finishes after its channel dropped (Session.keep_request) sends breaks through a live one.
    connection = ctx.connection
    if connection.closed and ctx.session is not None:
        connection = ctx.session.live_connection() or connection
    open_.connection = connection
    if lease is not None and lease.version > 1 and lease.flags & SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET:
        open_.parent_lease_key = lease.parent_lease_key
    if open_.file is None or not open_.tree.share.oplocks:
        return
    if open_.is_directory:
        # Only where this connection was offered SMB2_GLOBAL_CAP_DIRECTORY_LEASING ([MS-SMB2] 3.3.5.9.11).
        if (lease is not None and lease.version > 1 and open_.tree.share.directory_leases
                and ctx.connection.server_capabilities & SMB2_GLOBAL_CAP_DIRECTORY_LEASING):
            _grant_directory(ctx, open_, lease)
        return
    if lease is None:
        if requested_level in (SMB2_OPLOCK_LEVEL_NONE, SMB2_OPLOCK_LEVEL_LEASE) or existed and \
                oplocks.is_oplock_stat_open(open_.granted_access):
            return
        oplocks.grant(ctx.connection.server.files, open_.file, open_, requested_level=requested_level,
                      lease_key=None, lease_state=0, version=0, parent_key=None, epoch=0, client_guid=b"",
                      allowed=local_changes(ctx.connection.server).allowed(open_.tree))
        log.debug("oplock level %d (asked %d) on file id %d", open_.oplock_level, requested_level,
                  open_.file_id[1])
        return
    parent = lease.parent_lease_key if lease.version > 1 and lease.flags & SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET \
        else None
    oplocks.grant(ctx.connection.server.files, open_.file, open_, requested_level=requested_level,
                  lease_key=lease.lease_key, lease_state=lease.lease_state, version=lease.version,
                  parent_key=parent, epoch=lease.epoch, client_guid=ctx.connection.client_guid,
                  allowed=local_changes(ctx.connection.server).allowed(open_.tree))
    log.debug("lease %s state %d (asked %d, epoch %d) on file id %d", lease.lease_key.hex(), open_.lease.state,
              lease.lease_state, open_.lease.epoch, open_.file_id[1])


def _grant_directory(ctx: RequestContext, open_: Open, lease: wire.LeaseRequest) -> None:
    """[MS-SMB2] 3.3.5.9.11: a directory lease is R or RH (W is never granted, a request without R gets none)."""
    server = ctx.connection.server
    parent = lease.parent_lease_key if lease.flags & SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET else None
    oplocks.grant(server.files, open_.file, open_, requested_level=SMB2_OPLOCK_LEVEL_LEASE,
                  lease_key=lease.lease_key, lease_state=lease.lease_state, version=lease.version,
                  parent_key=parent, epoch=lease.epoch, client_guid=ctx.connection.client_guid,
                  allowed=directory_changes(server).allowed(open_.tree), directory=True)
    log.debug("directory lease %s state %d (asked %d, epoch %d) on file id %d", lease.lease_key.hex(),
              open_.lease.state, lease.lease_state, open_.lease.epoch, open_.file_id[1])


def reply_level_and_context(open_: Open) -> tuple[int, CreateContext | None]:
    if open_.lease is None:
        return open_.oplock_level, None
    granted = open_.lease
    data = wire.encode_lease_response(granted.version, granted.key,
                                      granted.state, granted.flags, granted.parent_key or bytes(16),
                                      granted.epoch)
    return SMB2_OPLOCK_LEVEL_LEASE, CreateContext(SMB2_CREATE_REQUEST_LEASE, data)
