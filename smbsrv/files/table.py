"""The per-file state of the server: the object store of [MS-FSA] 2.1.1 (Samba's source3/locking).

One `FileState` per file, keyed by (st_dev, st_ino), exists while the file has an open: its opens with their
access and sharing, the names they were made through (`Link`, each with its own delete-pending), byte-range
locks, and the oplocks and leases granted on it. Commands do not edit this state; they call `FileTable`
operations, which return what the caller must do next (delete a name, send breaks). This is the one seam a
multi-process or clustered implementation would stand behind.
"""

from __future__ import annotations

import functools
import os
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

# (st_dev, st_ino) of a file; a named stream's opens are kept apart under (st_dev, st_ino, folded stream name).
FileKey = tuple[int, int] | tuple[int, int, str]


class FileState:
    """Everything that belongs to one file rather than to one handle ([MS-FSA] 2.1.1.5 Stream/File)."""

    __slots__ = ("hydration", "key", "links", "locks", "opens", "oplocks", "write_time")

    def __init__(self, key: FileKey) -> None:
        self.key = key
        self.opens: list[Open] = []
        self.links: list[Link] = []  # the names the opens were made through; one unless the file has hard links
        self.locks = ByteRangeLocks()
        self.oplocks: Any = None  # files.oplocks.OplockWaiters once a CREATE waited for a break
        # hsm.hydrate.Hydration while the placeholder's content is being fetched (set and cleared by
        # smbsrv/hsm/access.py; the hydration itself lives in hsm.hydrate.Hydrator, as it outlives the opens).
        self.hydration: Any = None
        # files.write_time.WriteTime once a handle wrote: the LastWriteTime every open shows meanwhile.
        self.write_time: Any = None


class Link:
    """One name of a file as opens were made through it ([MS-FSA] 2.1.1 Link, Open.Link): delete-pending
    belongs here, not to the file ([MS-FSA] 2.1.5.15.3 sets Open.Link.IsDeleted, 2.1.5.1 refuses an open
    of a deleted link with STATUS_DELETE_PENDING, 2.1.5.5 removes the link at the close of its last open;
    Samba 4.17 keeps its delete tokens by name hash). Opens through the file's other hard links neither see
    the delete nor hold it up.

    A Link lives while an open made through it is registered. Its name is its opens' path (they are kept
    equal: an open joins the link of its path at FileTable.add, and a rename through one of them moves them
    all, FileTable.renamed), in the share of their tree; through a share inside another, the same name has
    a shorter path (Link.names compares the two shares' real paths then)."""

    __slots__ = ("delete_pending", "deleter", "opens", "stream_opens")

    def __init__(self) -> None:
        self.opens: list[Open] = []
        # Opens of the file's named streams made through this name: they hold the name as the file's own opens
        # do (a delete pending on it waits for them too, [MS-FSA] 2.1.5.5; smbtorture smb2.streams.delete).
        self.stream_opens: list[Open] = []
        self.delete_pending = False
        self.deleter: Deleter | None = None  # who made the delete pending: the open that set it last

    def names(self, root: Any, components: tuple[str, ...]) -> bool:
        """Whether this is the name `components` in the share `root` (fs.resolver.ShareRoot). A directory has
        one name (no hard links), whatever path and share it was reached by (a share inside another's)."""
        first = self.opens[0] if self.opens else self.stream_opens[0]
        if first.is_directory:
            return True
        own = first.tree.share_root
        if first.path_components == components:
            return _same_share_directory(own, root)
        # Another path is another name, unless it comes through a share inside the other's (rare: compared by
        # the shares' real paths only when the ShareRoots differ).
        return own is not root and _share_path(own, first.path_components) == _share_path(root, components)


def _same_share_directory(own: Any, other: Any) -> bool:
    """Whether two ShareRoots are the same directory, as Samba hashes a share's canonical path with the name: a
    configuration reload that changed a share's options gives later tree connects a new ShareRoot of the same
    directory, and their opens must see the name's delete-pending all the same. The fstat is only for the rare
    file with opens through two ShareRoots."""
    if own is other:
        return True
    try:
        a, b = os.fstat(own.root_fd), os.fstat(other.root_fd)
    except OSError:  # a share root closed since (its share was removed): not the directory of a live open
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@functools.lru_cache(maxsize=64)
def _real_path(path: str) -> str:
    return os.path.realpath(path)


def _share_path(root: Any, components: tuple[str, ...]) -> str:
    """Where the name `components` of the share `root` is, as Samba names it: the share's canonical path and
    the name (components are the names on disk, never through a symlink)."""
    return os.path.join(_real_path(root.path), *components)


def _in_share(root: Any, path: str) -> tuple[str, ...] | None:
    """The components of `path` (a _share_path) in the share `root`, None when it lies outside."""
    relative = os.path.relpath(path, _real_path(root.path))
    if relative == "." or relative == ".." or relative.startswith("../"):
        return None
    return tuple(relative.split("/"))


@dataclass(frozen=True, slots=True)
class Deleter:
    """The user who asked for a pending delete ([MS-FSA] 2.1.5.15.3; Samba keeps the setter's delete token
    with the name). The last close through the name may come from another user, who may not delete in that
    directory, or from a teardown running as the server; the name goes with the credentials of the user who
    marked it."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    user: str  # for the audit log (events.deleted): the SMB user and the client address it asked from
    client: str

    @classmethod
    def of(cls, open_: Open) -> Deleter:
        session = open_.session
        client = open_.connection.peer if open_.connection is not None else "-"
        return cls(session.uid, session.gid, session.groups, events.user_name(session), client)


@dataclass(slots=True)
class CloseEffects:
    """What the caller of FileTable.close must do: remove the closing open's name now (delete on close), as
    the user `deleter`, whoever closes last and from wherever (a teardown runs as the server). For the open of
    a named stream, `delete_now` removes the stream, and `delete_file_name` the file's name that a pending
    delete kept while the stream was open (`file_deleter` asked for that)."""

    delete_now: bool = False
    deleter: Deleter | None = None
    delete_file_name: bool = False
    file_deleter: Deleter | None = None


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
        # The keys of a file's named streams that have opens, by the file's key (fs/streams.py).
        self._streams: dict[FileKey, set[FileKey]] = {}

    # -- lookups --------------------------------------------------------------------------------------------

    def get(self, key: FileKey) -> FileState | None:
        return self._files.get(key)

    def opens(self, key: FileKey) -> list[Open]:
        state = self._files.get(key)
        return state.opens if state is not None else []

    def is_delete_pending(self, open_: Open) -> bool:
        """Whether the name `open_` was made through is delete-pending (FileStandardInformation.DeletePending
        is the link's: Open.Link.IsDeleted in [MS-FSA])."""
        link = open_.link
        return link is not None and link.delete_pending

    def is_name_delete_pending(self, key: FileKey, root: Any, components: tuple[str, ...]) -> bool:
        """Whether the name `components` (in the share `root`) of the file `key` is delete-pending: a new
        open through it fails with STATUS_DELETE_PENDING ([MS-FSA] 2.1.5.1), one through another hard link
        of the file does not."""
        state = self._files.get(key)
        return state is not None and any(link.delete_pending and link.names(root, components)
                                         for link in state.links)

    def stream_opens(self, key: FileKey) -> list[Open]:
        """The opens of the named streams of the file `key`."""
        return [open_ for stream_key in self._streams.get(key, ()) for open_ in self._files[stream_key].opens]

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
        key = open_.handle.key
        state = self._files.get(key)
        if state is None:
            state = self._files[key] = FileState(key)
            if len(key) == 3:
                self._streams.setdefault(key[:2], set()).add(key)
        state.opens.append(open_)
        open_.file = state
        open_.link = self._link_for(state, open_)
        if len(key) == 3 and open_.name_link is None:  # a rekeyed stream open keeps holding the name
            self._hold_file_name(open_, key[:2])
        holder = open_.held_by = _holder(open_.session)
        self._held[holder] = self._held.get(holder, 0) + 1
        return state

    def close(self, open_: Open) -> CloseEffects:
        """Forget the open: its byte-range locks go (waiters are woken), and the answer says whether its name
        must be deleted now ([MS-FSA] 2.1.5.5): this was the last open made through a delete-pending name (opens
        through the file's other hard links do not count), or a POSIX handle asked for delete and only POSIX
        handles remain on the name (it goes, the others keep the data, as on a local filesystem; Samba does the
        same when no Windows open of the name remains). The open of a named stream also lets go of its file's
        name (Link.stream_opens)."""
        effects = self._close(open_)
        if open_.name_link is not None:
            effects = self._release_file_name(open_, effects)
        return effects

    def _close(self, open_: Open) -> CloseEffects:
        self.watches.forget(open_)  # a waiting CHANGE_NOTIFY completes with STATUS_NOTIFY_CLEANUP
        self.durable.forget(open_)
        state = self._remove(open_)
        if self.directory_changes is not None:
            self.directory_changes.closed(open_)  # a handle that wrote changes its directory's entry now
        if open_.lease is not None:
            oplocks.release(self, open_)
        link = open_.link
        if state is None or link is None:
            return CloseEffects(True, Deleter.of(open_)) if open_.delete_on_close else _NO_EFFECTS
        if state.oplocks is not None:
            state.oplocks.wake()  # a CREATE waiting for this open's break may go on
        if open_.delete_on_close:
            # [MS-FSA] 2.1.5.5 Phase 1: the close of a handle that deletes on close marks its link.
            if open_.posix and all(other.posix for other in link.opens):
                link.delete_pending, link.deleter = False, None
                return CloseEffects(True, Deleter.of(open_))
            link.delete_pending = True
            link.deleter = Deleter.of(open_)
        if link.delete_pending and not link.opens and not link.stream_opens:
            # Phase 3: the last open of a deleted link is gone, the name goes (the file lives on while its
            # other names have opens or exist).
            deleter = link.deleter or Deleter.of(open_)
            link.delete_pending, link.deleter = False, None
            return CloseEffects(True, deleter)
        return _NO_EFFECTS

    def disconnect(self, open_: Open, now: float) -> bool:
        """The open's connection is gone ([MS-SMB2] 3.3.7.1): True when it is kept as a disconnected durable
        open (its locks, lease and share mode stay; files/durable.py), False when the caller must close it."""
        return self.durable.disconnect(open_, now)

    def set_delete_pending(self, open_: Open, pending: bool) -> None:
        """FileDispositionInformation through `open_` ([MS-FSA] 2.1.5.15.3): the handle deletes on close, and
        the name it was opened through is delete-pending for every other opener of that name (or no longer
        is); the file's other hard links are not. Clearing it does not undo a FILE_DELETE_ON_CLOSE the handle
        was created with: its close makes the name delete-pending again (Windows: clearing "has no effect" on
        such a handle; Samba's initial_delete_on_close)."""
        open_.delete_on_close = pending or bool(open_.create_options & FILE_DELETE_ON_CLOSE)
        link = open_.link
        if link is not None:
            link.delete_pending = pending
            link.deleter = Deleter.of(open_) if pending else None

    def renamed(self, open_: Open, components: tuple[str, ...]) -> list[Open]:
        """A rename through `open_` moved its name to the path `components`: every open made through that name
        follows it, and so does a delete pending on it (the Link moves, [MS-FSA] 2.1.5.15.11); opens through
        the file's other hard links keep their names (Samba 4.17's rename_open_files, by name hash). Returns
        the opens that moved."""
        link = open_.link
        opens = link.opens if link is not None else [open_]
        root, moved = open_.tree.share_root, None
        for other in opens:
            own = other.tree.share_root
            if own is root or _same_share_directory(own, root):
                other.path_components = components
            else:  # through a share inside (or around) this one: its path there, unless the name left it
                moved = moved or _share_path(root, components)
                inside = _in_share(own, moved)
                if inside is not None:
                    other.path_components = inside
        return opens

    def moved_below(self, directory: Open, old_components: tuple[str, ...]) -> None:
        """A POSIX rename moved the directory `directory` (now at its path_components) from `old_components`
        with opens inside it: their paths follow, as their fds already do (and so do their links' names)."""
        depth, new = len(old_components), directory.path_components
        for other in list(self._opens_below(directory.tree.share_root, old_components)):
            other.path_components = new + other.path_components[depth:]

    def _opens_below(self, root: Any, directory: tuple[str, ...]) -> Iterator[Open]:
        """The opens of the share `root` that lie inside `directory` (path components), at any depth, through
        `root` or another ShareRoot of its directory (a tree connect from before a reload): as for Link.names,
        the share is its directory. The fstat is made once per other ShareRoot met."""
        depth = len(directory)
        same: dict[int, bool] = {id(root): True}
        for state in self._files.values():
            for other in state.opens:
                components = other.path_components
                if len(components) > depth and components[:depth] == directory:
                    own = other.tree.share_root
                    known = same.get(id(own))
                    if known is None:
                        known = same[id(own)] = _same_share_directory(own, root)
                    if known:
                        yield other

    def rekey(self, open_: Open, new_key: FileKey) -> None:
        """The handle now refers to another file (a placeholder replaced by the real object), by the same
        name: a delete pending on that name stays pending."""
        old = open_.link
        self._remove(open_)
        open_.handle.key = new_key
        self.add(open_)
        if old is not None and old.delete_pending:
            open_.link.delete_pending, open_.link.deleter = True, old.deleter

    @staticmethod
    def _link_for(state: FileState, open_: Open) -> Link:
        """The Link of the name `open_` was made through, with `open_` in it (a new one for a new name)."""
        link = _link_named(state, open_)
        link.opens.append(open_)
        return link

    def _hold_file_name(self, open_: Open, file_key: FileKey) -> None:
        """A stream open holds the name of its file it was made through (Link.stream_opens); the file's state
        is kept while it does, even with no open of the file's own."""
        state = self._files.get(file_key)
        if state is None:
            state = self._files[file_key] = FileState(file_key)
        link = _link_named(state, open_)
        link.stream_opens.append(open_)
        open_.name_link = link

    def _release_file_name(self, open_: Open, effects: CloseEffects) -> CloseEffects:
        """The stream open is gone from its file's name: when it was the last to hold a name whose delete is
        pending, the name goes now."""
        link, open_.name_link = open_.name_link, None
        link.stream_opens.remove(open_)
        file_key = open_.handle.key[:2]
        state = self._files[file_key]
        if link.opens or link.stream_opens:
            return effects
        state.links.remove(link)
        if not state.opens and not state.links:
            del self._files[file_key]
        if not link.delete_pending:
            return effects
        link.delete_pending = False
        return CloseEffects(effects.delete_now, effects.deleter, True, link.deleter or Deleter.of(open_))

    def _remove(self, open_: Open) -> FileState | None:
        state = self._files.get(open_.handle.key)
        if state is None:
            return None
        state.locks.release_open(open_)
        opens = state.opens
        if open_ in opens:
            opens.remove(open_)
            link = open_.link  # registered opens are in their link's opens too (add)
            link.opens.remove(open_)
            if not link.opens and not link.stream_opens:
                state.links.remove(link)
            holder = open_.held_by  # its session may have re-authenticated as another user since
            if self._held[holder] == 1:
                del self._held[holder]
            else:
                self._held[holder] -= 1
        if not opens and not state.links:
            key = open_.handle.key
            del self._files[key]
            if len(key) == 3:
                streams = self._streams[key[:2]]
                streams.discard(key)
                if not streams:
                    del self._streams[key[:2]]
        return state


def _link_named(state: FileState, open_: Open) -> Link:
    """The file's Link of the name `open_` was made through, a new one (added to the file) for a new name."""
    root, components = open_.tree.share_root, open_.path_components
    for link in state.links:
        if link.names(root, components):
            return link
    link = Link()
    state.links.append(link)
    return link


def _holder(session: Session) -> str:
    """Whose opens these are for server.max_opens_per_user: the SMB user of the session that makes the open;
    guest and anonymous sessions share one count."""
    user = session.user
    return user.name if user is not None else ""
