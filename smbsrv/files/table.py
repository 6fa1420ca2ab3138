"""The per-file state of the server: the object store of [MS-FSA] 2.1.1 (Samba's source3/locking).

One `FileState` per file, keyed by (st_dev, st_ino), exists while the file has an open: its opens with their
access and sharing, delete-pending, byte-range locks, and the oplocks and leases granted on it. Commands do
not edit this state; they call `FileTable` operations, which return what the caller must do next (delete
the file, send breaks). This is the one seam a multi-process or clustered implementation would stand behind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smbsrv import events
from smbsrv.files import oplocks
from smbsrv.files.durable import DurableOpens
from smbsrv.files.locks import ByteRangeLocks
from smbsrv.files.notify import ChangeFeed, Watches
from smbsrv.wire.constants import FILE_DELETE_ON_CLOSE

if TYPE_CHECKING:
    from smbsrv.protocol.objects import Open, Session

FileKey = tuple[int, int]


class FileState:
    """Everything that belongs to one file rather than to one handle ([MS-FSA] 2.1.1.5 Stream/File)."""

    __slots__ = ("delete_pending", "deleter", "hydration", "key", "locks", "opens", "oplocks", "write_time")

    def __init__(self, key: FileKey) -> None:
        self.key = key
        self.opens: list[Open] = []
        self.delete_pending = False
        # Who made the delete pending, and through which name: the open that set it last (Deleter).
        self.deleter: Deleter | None = None
        self.locks = ByteRangeLocks()
        self.oplocks: Any = None  # files.oplocks.OplockWaiters once a CREATE waited for a break
        # hsm.hydrate.Hydration while the placeholder's content is being fetched (set and cleared by
        # smbsrv/hsm/access.py; the hydration itself lives in hsm.hydrate.Hydrator, as it outlives the opens).
        self.hydration: Any = None
        # files.write_time.WriteTime once a handle wrote: the LastWriteTime every open shows meanwhile.
        self.write_time: Any = None


@dataclass(frozen=True, slots=True)
class Deleter:
    """The name a pending delete removes and the user who asked for it ([MS-FSA] 2.1.5.15.3 marks the link
    the open was made through, Open.Link.IsDeleted; Samba keeps the setter's delete token with the name). The
    last close of the file may come through another hard link, and from another user who may not delete in
    that directory; the name marked goes, with the credentials of the user who marked it."""

    path_components: tuple[str, ...]
    uid: int
    gid: int
    groups: tuple[int, ...]
    user: str  # for the audit log (events.deleted): the SMB user and the client address it asked from
    client: str

    @classmethod
    def of(cls, open_: Open) -> Deleter:
        session = open_.session
        client = open_.connection.peer if open_.connection is not None else "-"
        return cls(open_.path_components, session.uid, session.gid, session.groups, events.user_name(session),
                   client)


@dataclass(slots=True)
class CloseEffects:
    """What the caller of FileTable.close must do: remove the file's name now (delete on close): the name
    `deleter` marked, as its user, whoever closes last and from wherever (a teardown runs as the server)."""

    delete_now: bool = False
    deleter: Deleter | None = None


_NO_EFFECTS = CloseEffects()


class FileTable:
    def __init__(self) -> None:
        self._files: dict[FileKey, FileState] = {}
        # [MS-SMB2] 3.3.1.11 GlobalLeaseTableList: the leases of every client, by (ClientGuid, LeaseKey).
        self.leases: dict[tuple[bytes, bytes], oplocks.Lease] = {}
        self.local_changes: Any = None  # commands.oplock_break.LocalChanges once something was cached
        self.directory_changes: Any = None  # commands.oplock_break.DirectoryChanges once a directory was leased
        # Every change to the shares (files/notify.py), and the CHANGE_NOTIFY watches of directory opens.
        self.changes = ChangeFeed()
        self.watches = Watches(self.changes)
        # Durable opens and the DH2Q replay cache (files/durable.py).
        self.durable = DurableOpens()
        # Registered opens by the SMB user holding them, over all its sessions and connections, disconnected
        # durable opens included (each still holds its descriptors): what server.max_opens_per_user limits.
        self._held: dict[str, int] = {}

    # -- lookups --------------------------------------------------------------------------------------------

    def get(self, key: FileKey) -> FileState | None:
        return self._files.get(key)

    def opens(self, key: FileKey) -> list[Open]:
        state = self._files.get(key)
        return state.opens if state is not None else []

    def is_delete_pending(self, key: FileKey) -> bool:
        state = self._files.get(key)
        return state is not None and state.delete_pending

    def held_by(self, session: Session) -> int:
        """How many registered opens the session's user holds, on this and every other session of it."""
        return self._held.get(_holder(session), 0)

    def held_by_user(self) -> dict[str, int]:
        """Every user's count of registered opens (`smbsrv status`); guest and anonymous sessions under ""."""
        return dict(self._held)

    def has_open_below(self, open_: Open) -> bool:
        """Whether any open of the same share lies inside the directory `open_` names (a rename of the
        directory is refused then). A scan of every open, as Samba's have_file_open_below walks its open
        files: a directory rename is rare and an open is not, so nothing is kept up to date per open for it
        (a per-directory count cost every CREATE and CLOSE ~2 us)."""
        return any(self._opens_below(open_.tree.share_root, open_.path_components))

    # -- operations -----------------------------------------------------------------------------------------

    def add(self, open_: Open) -> FileState:
        """Register a new open of its file (open_.handle.key); the sharing check was made before."""
        state = self._files.get(open_.handle.key)
        if state is None:
            state = self._files[open_.handle.key] = FileState(open_.handle.key)
        state.opens.append(open_)
        open_.file = state
        holder = open_.held_by = _holder(open_.session)
        self._held[holder] = self._held.get(holder, 0) + 1
        return state

    def close(self, open_: Open) -> CloseEffects:
        """Forget the open: its byte-range locks go (waiters are woken), and the answer says whether the file
        must be deleted now ([MS-FSA] 2.1.5.4): this was the last open of a delete-pending file, or a POSIX
        handle asked for delete and only POSIX handles remain (the name goes, the others keep the data, as
        on a local filesystem; Samba does the same when no Windows open remains)."""
        self.watches.forget(open_)  # a waiting CHANGE_NOTIFY completes with STATUS_NOTIFY_CLEANUP
        self.durable.forget(open_)
        state = self._remove(open_)
        if self.directory_changes is not None:
            self.directory_changes.closed(open_)  # a handle that wrote changes its directory's entry now
        if open_.lease is not None:
            oplocks.release(self, open_)
        if state is None:
            return CloseEffects(True, Deleter.of(open_)) if open_.delete_on_close else _NO_EFFECTS
        if state.oplocks is not None:
            state.oplocks.wake()  # a CREATE waiting for this open's break may go on
        opens = state.opens
        if open_.delete_on_close:
            if open_.posix and all(other.posix for other in opens):
                state.delete_pending = False
                return CloseEffects(True, Deleter.of(open_))
            state.delete_pending = True
            state.deleter = Deleter.of(open_)
        if state.delete_pending and not opens:
            state.delete_pending = False
            deleter, state.deleter = state.deleter or Deleter.of(open_), None
            return CloseEffects(True, deleter)
        return _NO_EFFECTS

    def disconnect(self, open_: Open, now: float) -> bool:
        """The open's connection is gone ([MS-SMB2] 3.3.7.1): True when it is kept as a disconnected durable
        open (its locks, lease and share mode stay; files/durable.py), False when the caller must close it."""
        return self.durable.disconnect(open_, now)

    def set_delete_pending(self, open_: Open, pending: bool) -> None:
        """FileDispositionInformation through `open_` ([MS-FSA] 2.1.5.14.3): the handle deletes on close, and
        the file is delete-pending for every other opener (or no longer is). Clearing it does not undo a
        FILE_DELETE_ON_CLOSE the handle was created with: its close makes the file delete-pending again
        (Windows: clearing "has no effect" on such a handle; Samba's initial_delete_on_close)."""
        open_.delete_on_close = pending or bool(open_.create_options & FILE_DELETE_ON_CLOSE)
        state = self._files.get(open_.handle.key)
        if state is not None:
            state.delete_pending = pending
            state.deleter = Deleter.of(open_) if pending else None

    def renamed(self, key: FileKey, components: tuple[str, ...]) -> list[Open]:
        """Every open of the file now has the path `components`, and so has a delete pending on it; returns those
        opens."""
        opens = self.opens(key)
        for other in opens:
            other.path_components = components
        state = self._files.get(key)
        if state is not None and state.deleter is not None:
            state.deleter = dataclasses.replace(state.deleter, path_components=components)
        return opens

    def moved_below(self, directory: Open, old_components: tuple[str, ...]) -> None:
        """A POSIX rename moved the directory `directory` (now at its path_components) from `old_components`
        with opens inside it: their paths follow, as their fds already do."""
        depth, new = len(old_components), directory.path_components
        for other in list(self._opens_below(directory.tree.share_root, old_components)):
            other.path_components = new + other.path_components[depth:]
            deleter = other.file.deleter if other.file is not None else None
            if deleter is not None and deleter.path_components[:depth] == old_components:
                other.file.deleter = dataclasses.replace(
                    deleter, path_components=new + deleter.path_components[depth:])

    def _opens_below(self, root: Any, directory: tuple[str, ...]) -> Iterator[Open]:
        """The opens of the share `root` that lie inside `directory` (path components), at any depth."""
        depth = len(directory)
        for state in self._files.values():
            for other in state.opens:
                components = other.path_components
                if len(components) > depth and components[:depth] == directory and other.tree.share_root is root:
                    yield other

    def rekey(self, open_: Open, new_key: FileKey) -> None:
        """The handle now refers to another file (a placeholder replaced by the real object)."""
        self._remove(open_)
        open_.handle.key = new_key
        self.add(open_)

    def _remove(self, open_: Open) -> FileState | None:
        state = self._files.get(open_.handle.key)
        if state is None:
            return None
        state.locks.release_open(open_)
        opens = state.opens
        if open_ in opens:
            opens.remove(open_)
            holder = open_.held_by  # its session may have re-authenticated as another user since
            if self._held[holder] == 1:
                del self._held[holder]
            else:
                self._held[holder] -= 1
        if not opens:
            del self._files[open_.handle.key]
        return state


def _holder(session: Session) -> str:
    """Whose opens these are for server.max_opens_per_user: the SMB user of the session that makes the open;
    guest and anonymous sessions share one count."""
    user = session.user
    return user.name if user is not None else ""
