"""State shared by every connection of one server process ([MS-SMB2] 3.3.1.5 global server state)."""

from __future__ import annotations

import errno
import itertools
import logging
import os
import time
import uuid
from collections import defaultdict
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from smbsrv.auth.authenticator import Authenticator
from smbsrv.auth.users import UserDB
from smbsrv.config import ServerConfig, ShareConfig
from smbsrv.fs import identity
from smbsrv.fs.reparse_store import ReparseStore
from smbsrv.fs.resolver import ShareRoot

if TYPE_CHECKING:
    from smbsrv.protocol.objects import Open, Session

log = logging.getLogger(__name__)


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
        # Every open of a file, by (st_dev, st_ino): share modes and delete-on-close are decided across all
        # connections ([MS-FSA] 2.1.5.1.2).
        self.opens_by_file: dict[tuple[int, int], list[Open]] = defaultdict(list)
        # Pending delete-on-close state per file, kept while any open of it exists.
        self.delete_pending: set[tuple[int, int]] = set()
        self.locks: Any = None  # set by commands.lock on first use
        self.reparse_store = ReparseStore(os.path.join(os.path.abspath(config.state_dir), "reparse"))
        self.connections: set[Any] = set()
        self.running_as_root = identity.running_as_root()
        self.guest_identity = self._lookup_guest(config.guest_account)

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
                root = ShareRoot.open(share.path, case_sensitive=share.case_sensitive)
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

    def acting_as(self, session: Session) -> AbstractContextManager[None]:
        """The block's filesystem calls run with the session user's credentials (root servers only)."""
        return identity.acting_as(session.uid, session.gid, session.groups)
