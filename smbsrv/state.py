"""State shared by every connection of one server process ([MS-SMB2] 3.3.1.5 global server state)."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import itertools
import logging
import os
import resource
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from smbsrv import events
from smbsrv.auth.authenticator import Authenticator
from smbsrv.auth.users import UserDB
from smbsrv.config import ServerConfig, ShareConfig
from smbsrv.files import FileTable, closing, oplocks
from smbsrv.fs import identity
from smbsrv.fs.reparse_store import ReparseStore
from smbsrv.fs.resolver import ShareRoot

if TYPE_CHECKING:
    from smbsrv.protocol.connection import Connection
    from smbsrv.protocol.objects import Open, Session, TreeConnect

log = logging.getLogger(__name__)

# An unlimited descriptor limit counts as Linux's default fs.nr_open, the most one process may have: what the
# daemon raises its soft limit to when the hard limit is unlimited, and what max_opens_per_user derives from.
NOFILE_WHEN_UNLIMITED = 1 << 20


class ServerState:
    def __init__(self, config: ServerConfig, users: UserDB) -> None:
        self.config = config
        self.users = users
        self.server_guid = uuid.uuid4().bytes
        self.start_time_ns = time.time_ns()
        self.authenticator = Authenticator(users, config.server_name,
                                           allow_guest=any(s.guest_ok for s in config.shares),
                                           allow_anonymous=any(s.guest_ok for s in config.shares))
        self.shares: dict[str, ShareConfig] = {share.name.lower(): share for share in config.shares}
        self.share_roots: dict[str, ShareRoot] = {}
        self._file_ids = itertools.count(1)
        self._session_ids = itertools.count(1)
        # Per-file state of every open file, by (st_dev, st_ino): share modes, delete-on-close and byte-range
        # locks are decided across all connections ([MS-FSA] 2.1.5.1.2).
        self.files = FileTable()
        # The clock durable-handle timeouts are measured with (monotonic seconds; a test passes its own).
        self.clock: Callable[[], float] = time.monotonic
        self._scavenger: asyncio.TimerHandle | None = None
        self.reparse_store = ReparseStore(os.path.join(os.path.abspath(config.state_dir), "reparse"))
        self.connections: set[Any] = set()
        self.running_as_root = identity.running_as_root()
        self.guest_identity = self._lookup_guest(config.guest_account)

    @functools.cached_property
    def max_opens_per_user(self) -> int:
        """The opens one SMB user may hold over all its sessions and connections (server.max_opens_per_user).
        Every client shares this process's descriptor table (Samba's clients each have a process and table of
        their own), and an open holds up to two descriptors, its own and its directory's. So the default, a
        quarter of the table, leaves at least half of it to the other users while one holds all it may. Worked
        out at the first CREATE, after the daemon raised its limit (daemon._raise_descriptor_limit), and again
        after a reload."""
        if self.config.max_opens_per_user:
            return self.config.max_opens_per_user
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            soft = NOFILE_WHEN_UNLIMITED
        return max(1, soft // 4)

    @staticmethod
    def _lookup_guest(account: str) -> tuple[int, int]:
        import pwd

        try:
            entry = pwd.getpwnam(account)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            return 65534, 65534

    def share_root(self, share: ShareConfig) -> ShareRoot:
        """The share's root directory, for a TREE_CONNECT of the calling thread's user. The fd is the server's
        (opened once, as the server); the user must be able to reach the directory itself, as Samba's chdir
        into the share as the user requires: else OSError (EACCES)."""
        root = self.share_roots.get(share.name.lower())
        if root is None:
            with identity.as_server():
                root = ShareRoot.open(share.path, case_sensitive=share.case_sensitive,
                                      mangled_names=share.mangled_names != "no")
            self.share_roots[share.name.lower()] = root
        # AT_EACCESS: checked with the thread's fsuid/fsgid and groups, every component of the path.
        if not os.access(share.path, os.X_OK, effective_ids=True):
            raise PermissionError(errno.EACCES, "share directory not reachable", share.path)
        return root

    def allocate_file_id(self) -> tuple[int, int]:
        volatile = next(self._file_ids)
        return (volatile, volatile)

    def allocate_session_id(self) -> int:
        # Session ids are never 0 and never reused within the process lifetime; the high bits carry the
        # process id so ids from a restarted server do not collide with stale client state.
        return ((os.getpid() & 0xFFFF) << 40) | next(self._session_ids)

    def acting_as(self, session: Session) -> identity.acting_as:
        """The block's filesystem calls run with the session user's credentials (root servers only)."""
        return identity.acting_as(session.uid, session.gid, session.groups)

    # -- teardown ([MS-SMB2] 3.3.5.6 LOGOFF, 3.3.5.8 TREE_DISCONNECT, 3.3.7.1 connection loss) ----------------

    def close_open(self, open_: Open) -> None:
        """End one handle (CLOSE, tree disconnect, logoff, connection loss): files/closing.py."""
        closing.close_open(self.files, open_)

    def end_session(self, connection: Connection, session: Session, *, keep_signer: bool = False) -> None:
        """Close every open and tree connect of the session and forget it (LOGOFF, a failed re-authentication,
        a PreviousSessionId). The LOGOFF response itself is still signed with the session's key, hence
        `keep_signer`. Its CREATEs still pending (on any channel) are cancelled first (Connection.cancel_creates)."""
        for channel in {connection, *session.channel_connections()}:
            channel.cancel_creates(session)
        self.release_opens(list(session.opens.values()))
        self._forget_session(connection, session, keep_signer)

    def end_tree_connect(self, session: Session, tree: TreeConnect) -> None:
        """TREE_DISCONNECT ([MS-SMB2] 3.3.5.8): the tree connect's opens are closed, durable ones too (Samba
        4.17's file_close_conn; smbtorture smb2.durable-open.reopen3). Its CREATEs still pending are cancelled
        first (Connection.cancel_creates)."""
        for channel in session.channel_connections():
            channel.cancel_creates(session, tree)
        for open_ in [open_ for open_ in session.opens.values() if open_.tree is tree]:
            session.opens.pop(open_.file_id[1], None)
            self.close_open(open_)
        session.tree_connects.pop(tree.tree_id, None)

    def release_opens(self, opens: list[Open]) -> int:
        """End handles whose session, tree connect or connection ends: the FileTable says per open whether it
        is kept as a disconnected durable open or closed. Samba 4.17 keeps durable opens on LOGOFF too (its
        SHUTDOWN_CLOSE), as on connection loss; smbtorture smb2.durable-open.reopen1a reconnects after a
        PreviousSessionId logoff. Returns how many were kept."""
        now = self.clock()
        kept = 0
        for open_ in opens:
            if self.files.disconnect(open_, now):
                kept += 1
            else:
                self.close_open(open_)
        if kept:
            self._schedule_scavenger()
        return kept

    def end_connection(self, connection: Connection) -> None:
        """The transport lost the connection: every session ends, and the FileTable says per open whether it
        is closed or kept ([MS-SMB2] 3.3.7.1). One event line per session that was in use (issue 17)."""
        for session in list(connection.sessions.values()):
            if session.drop_channel(connection):
                continue  # multichannel: the session lives on its other channels ([MS-SMB2] 3.3.7.1)
            kept = self.release_opens(list(session.opens.values()))
            if session.state == "valid":
                events.session_ended(connection, session, "disconnect", kept)
            self._forget_session(connection, session, False)
        connection.sessions.clear()

    # -- durable opens ([MS-SMB2] 3.3.7.1; files/durable.py) --------------------------------------------------

    def scavenge(self, now: float) -> int:
        """Close every disconnected durable open whose timeout has passed at `now`; how many were closed."""
        expired = self.files.durable.expired(now)
        for open_ in expired:
            log.info("durable open of %s not reclaimed in time: closed", "/".join(open_.path_components))
            self.close_open(open_)
        return len(expired)

    def _schedule_scavenger(self) -> None:
        """One timer for the earliest deadline of the disconnected durable opens (none when there are none)."""
        if self._scavenger is not None:
            self._scavenger.cancel()
            self._scavenger = None
        deadline = self.files.durable.next_deadline()
        if deadline is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (unit tests): scavenge() is called directly
        self._scavenger = loop.call_later(max(deadline - self.clock(), 0.0), self._run_scavenger)

    def _run_scavenger(self) -> None:
        self._scavenger = None
        self.scavenge(self.clock())
        self._schedule_scavenger()

    @staticmethod
    def _forget_session(connection: Connection, session: Session, keep_signer: bool) -> None:
        session.cancel_orphaned_requests()
        session.opens.clear()
        session.tree_connects.clear()
        session.state = "expired"
        if not keep_signer:
            session.signer = None
        connection.sessions.pop(session.session_id, None)
        # A LOGOFF on one channel ends the session on all of them ([MS-SMB2] 3.3.5.6).
        for other in session.channel_connections():
            other.sessions.pop(session.session_id, None)

    # -- an administrator closes sessions and files ([MS-SMB2] 3.3.4.12, 3.3.4.17; `smbsrv close-session`,
    # `smbsrv close-file`, as Windows' Close-SmbSession and Close-SmbOpenFile) ---------------------------------

    def close_sessions(self, session_id: int | None = None, user: str | None = None,
                       client: str | None = None) -> list[dict[str, Any]]:
        """Close every session that matches all the criteria given ([MS-SMB2] 3.3.4.12): its opens are closed,
        durable ones too, so their locks, share modes and leases go with them; its tree connects end; its
        pending requests are cancelled. The client's next request on the session gets
        STATUS_USER_SESSION_DELETED, and a client that still has credentials the server takes sets up a new
        session (so revoking a user is removing it from the users file, reloading, then closing its sessions).
        `client` is an address as `smbsrv status` shows it, with or without its port."""
        closed: list[dict[str, Any]] = []
        for connection in list(self.connections):
            for session in list(connection.sessions.values()):
                if session.state != "valid":
                    continue  # being set up, or closed already through another channel
                if session_id is not None and session.session_id != session_id:
                    continue
                if user is not None and events.user_name(session).lower() != user.lower():
                    continue
                if client is not None and client not in (connection.peer, _address_of(connection.peer)):
                    continue
                for channel in {connection, *session.channel_connections()}:
                    channel.cancel_creates(session)
                opens = [open_ for open_ in session.opens.values() if not open_.closed]
                for open_ in opens:
                    self.close_open(open_)
                events.session_ended(connection, session, "closed_by_administrator")
                # The key stays with the session object, as after a LOGOFF: the answers of its requests still
                # waiting (CANCELLED, NOTIFY_CLEANUP, RANGE_NOT_LOCKED, sent in a later turn) are signed as the
                # requests were ([MS-SMB2] 3.3.4.1.1); the session is gone from every channel all the same.
                self._forget_session(connection, session, True)
                closed.append({"session_id": f"{session.session_id:#x}", "user": events.user_name(session),
                               "client": connection.peer, "opens_closed": len(opens)})
        return closed

    def close_files(self, file_ids: list[int]) -> list[dict[str, Any]]:
        """Close the opens with these FileIds (the volatile id `smbsrv status` shows), held by a session or
        kept disconnected for a durable reconnect ([MS-SMB2] 3.3.4.17). A client that goes on using one gets
        STATUS_FILE_CLOSED; one that tries to reconnect it finds nothing."""
        wanted = set(file_ids)
        closed: list[dict[str, Any]] = []
        for connection in list(self.connections):
            for session in list(connection.sessions.values()):
                for open_ in [open_ for open_ in session.opens.values() if open_.file_id[1] in wanted]:
                    session.opens.pop(open_.file_id[1], None)
                    if not open_.closed:
                        closed.append(_open_names(open_, f"{session.session_id:#x}"))
                    self.close_open(open_)
        for record in self.files.durable.disconnected():
            if record.open_.file_id[1] in wanted and not record.open_.closed:
                closed.append(_open_names(record.open_, "-"))
                self.close_open(record.open_)
        if closed:
            self._schedule_scavenger()
        return closed

    # -- operations (control socket: `smbsrv status`, `smbsrv reload`) ---------------------------------------

    # What a reload cannot change in a running server: the sockets are bound and the state store is open.
    RESTART_KEYS = ("listen", "port", "state_dir", "control_socket", "control_group", "metrics",
                    "metrics_listen", "metrics_port", "audit_log")

    def reload(self, config: ServerConfig, users: UserDB) -> dict[str, list[str]]:
        """Take a new configuration and users file (both already validated). New shares can be connected to at
        once; a removed share refuses new tree connects while existing ones keep their share and root; new
        passwords apply to the next logon. Keys in RESTART_KEYS keep their running values and are reported."""
        restart = [key for key in self.RESTART_KEYS if getattr(config, key) != getattr(self.config, key)]
        config = dataclasses.replace(config, **{key: getattr(self.config, key) for key in restart})
        new_shares = {share.name.lower(): share for share in config.shares}
        added = [share.name for key, share in new_shares.items() if key not in self.shares]
        removed = [share.name for key, share in self.shares.items() if key not in new_shares]
        changed = [share.name for key, share in new_shares.items()
                   if key in self.shares and self.shares[key] != share]
        for name in removed + changed:
            # Tree connects made before hold their own ShareRoot; the next one opens the (new) path afresh.
            self.share_roots.pop(name.lower(), None)
        self.config = config
        self.users = users
        self.shares = new_shares
        self.__dict__.pop("max_opens_per_user", None)  # worked out again from the new configuration
        self.guest_identity = self._lookup_guest(config.guest_account)
        self.authenticator = Authenticator(users, config.server_name,
                                           allow_guest=any(s.guest_ok for s in config.shares),
                                           allow_anonymous=any(s.guest_ok for s in config.shares))
        return {"added_shares": added, "removed_shares": removed, "changed_shares": changed,
                "restart_needed": restart}

    def status_snapshot(self) -> dict[str, Any]:
        """Sessions, tree connects, open files (with their oplock or lease), byte-range locks and the oplock
        and lease breaks in flight of every connection, as plain data (the one place `smbsrv status` reads
        them from)."""
        sessions: list[dict[str, Any]] = []
        opens: list[dict[str, Any]] = []
        locks: list[dict[str, Any]] = []
        listed: list[Any] = []  # the opens listed, for their oplock breaks in flight
        now = time.monotonic()  # the clock break deadlines are kept in (commands/oplock_break.py)
        seen: set[int] = set()  # a multichannel session is in every channel's table; listed once
        for connection in list(self.connections):
            for session in list(connection.sessions.values()):
                if session.state != "valid" or session.session_id in seen:
                    continue
                seen.add(session.session_id)
                user = events.user_name(session)
                sessions.append({
                    "session_id": f"{session.session_id:#x}", "user": user, "client": connection.peer,
                    "connection_id": connection.connection_id, "dialect": f"{connection.dialect >> 8}."
                    f"{(connection.dialect >> 4) & 0xF}.{connection.dialect & 0xF}",
                    # required: every message signed; client: as the client asks; off: no key (guest).
                    "signing": "off" if session.signer is None else (
                        "required" if session.signing_required else "client"),
                    # required: the session or a share demands it; available: keys exist, the client chooses.
                    "encryption": "off" if session.cipher is None else (
                        "required" if session.encrypt_data or any(t.encrypt_data for t in
                                                                  session.tree_connects.values())
                        else "available"),
                    "tree_connects": [{"tree_id": tree.tree_id, "share": "IPC$" if tree.is_ipc else tree.share.name}
                                      for tree in session.tree_connects.values()],
                })
                for open_ in list(session.opens.values()):
                    if open_.closed:
                        continue
                    opens.append(_open_status(open_, f"{session.session_id:#x}", user, connection.peer, now))
                    listed.append(open_)
                    held = open_.file.locks.owned_by(open_) if open_.file is not None else ()
                    locks.extend({"session_id": f"{session.session_id:#x}", "user": user,
                                  "share": opens[-1]["share"], "path": opens[-1]["path"],
                                  "file_id": open_.file_id[1], "offset": lock.offset, "length": lock.length,
                                  "exclusive": lock.exclusive} for lock in held)
        for record in self.files.durable.disconnected():
            # Kept for a reconnect, with its share modes, locks and lease, until the deadline (close-file ends it).
            open_ = record.open_
            opens.append({**_open_status(open_, "-", record.owner[1], "disconnected", now),
                          "reconnect_within_s": round((record.deadline or 0.0) - self.clock(), 1)})
        return {"server": {"pid": os.getpid(), "started_ns": self.start_time_ns,
                           "connections": len(self.connections),
                           "shares": sorted(share.name for share in self.shares.values()),
                           # What max_opens_per_user is checked against: disconnected durable opens count too.
                           "opens_per_user": {"limit": self.max_opens_per_user,
                                              "held": {name or "guest": count for name, count
                                                       in sorted(self.files.held_by_user().items())}}},
                "sessions": sessions, "open_files": opens, "locks": locks,
                "breaks": oplocks.breaks_in_flight(self.files, listed, now)}


def _address_of(peer: str) -> str:
    """The address of a peer as the daemon names it: "192.0.2.7:50122" -> "192.0.2.7", "::1:50122" -> "::1"."""
    return peer.rpartition(":")[0]


def _open_names(open_: Open, session_id: str) -> dict[str, Any]:
    """How `smbsrv status` and `smbsrv close-file` name an open: its session, share, path and FileId."""
    return {"session_id": session_id, "share": "IPC$" if open_.tree.is_ipc else open_.tree.share.name,
            "path": "/".join(open_.named_components), "file_id": open_.file_id[1]}


def _open_status(open_: Open, session_id: str, user: str, client: str, now: float) -> dict[str, Any]:
    """An open as `smbsrv status` lists it: its names, access, share access and oplock or lease."""
    return {**_open_names(open_, session_id), "user": user, "client": client,
            "access_mask": f"{open_.granted_access:#010x}", "share_access": open_.share_access,
            "directory": open_.is_directory, "delete_on_close": open_.delete_on_close,
            **oplocks.caching_status(open_, now)}
