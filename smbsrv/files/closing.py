"""The one path every handle takes when it ends: CLOSE, LOGOFF, TREE_DISCONNECT, a dropped connection, and the
durable-handle scavenger ([MS-SMB2] 3.3.4.17 and 3.3.7.1; [MS-FSA] 2.1.5.4).

The FileTable decides (CloseEffects: delete the name now or not); this module carries the decision out on disk
and releases the handle's fds. It lives beside the table, not in commands/, so that teardown runs downwards.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from smbsrv import events
from smbsrv.errors import SmbError
from smbsrv.files import write_time
from smbsrv.fs import backend, identity
from smbsrv.fs.path import SmbPath
from smbsrv.fs.resolver import SymlinkMet
from smbsrv.fscc.notify import Action, Filter

if TYPE_CHECKING:
    from smbsrv.files.table import Deleter, FileTable
    from smbsrv.protocol.objects import Open

log = logging.getLogger(__name__)


def close_open(files: FileTable, open_: Open) -> None:
    """Release the handle: share-mode entry, byte-range locks, lease, fds; delete the file when this was the
    last handle of a file whose delete is pending ([MS-FSA] 2.1.5.4). Closing twice does nothing."""
    if open_.closed:
        return
    open_.closed = True
    if open_.pipe is not None:
        return
    write_time.closing(open_)  # a handle that wrote sets the file's LastWriteTime as it goes
    effects = files.close(open_)
    if open_.is_directory and not effects.delete_now and files.is_delete_pending(open_.handle.key):
        files.watches.delete_pending(files.opens(open_.handle.key))
    try:
        if effects.delete_now and effects.deleter is not None:
            _delete(files, open_, effects.deleter)
    finally:
        open_.handle.close()


def _delete(files: FileTable, open_: Open, deleter: Deleter) -> None:
    handle = open_.handle
    parent_fd, name = handle.parent_fd, handle.name
    components = open_.path_components
    try:
        # The name the delete was asked for, as the user who asked (table.Deleter): never as the server, which a
        # teardown (logoff, a dropped connection) runs as, so that the kernel's permission check still holds.
        components = deleter.path_components
        with identity.acting_for(deleter.uid, deleter.gid, deleter.groups):
            if components != open_.path_components:
                is_dir = _unlink_other_link(open_, components)
                if is_dir is None and handle.stat().st_nlink == 1:
                    components = open_.path_components  # the file's one name is the handle's after all
            if components == open_.path_components:
                # None: no name to remove, or the name now belongs to another file (ours is already gone).
                is_dir = handle.unlink_if_same()
    except SmbError as exc:
        # CREATE and SET_INFO checked what they could; a failure here (a concurrent local change) cannot be
        # reported to the client any more, so it is at least logged.
        log.warning("delete on close of %s failed: %s", "/".join(open_.path_components), exc.status.name)
        return
    if is_dir is None:
        return
    if components == open_.path_components:
        open_.tree.share_root.note_removed(parent_fd, name)
    files.changes.changed(open_.tree, components, Action.REMOVED,
                          Filter.DIR_NAME if is_dir else Filter.FILE_NAME, is_dir, origin=open_)
    events.deleted(deleter.user, deleter.client, open_.tree, components)


def _unlink_other_link(open_: Open, components: tuple[str, ...]) -> bool | None:
    """Remove the hard link `components` (from the share root) if it still names the closing open's file:
    whether it was a directory, None when there was nothing to remove."""
    try:
        target = open_.tree.share_root.resolve(SmbPath(components), case_insensitive=False)
    except SymlinkMet:  # a directory on the way became a symlink: the name is not the file's any more
        return None
    with target:
        st = target.stat
        if st is None or (st.st_dev, st.st_ino) != open_.handle.key:
            return None
        backend.unlink_at(target.parent_fd, target.name)
        open_.tree.share_root.note_removed(target.parent_fd, target.name)
        return False
