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
from smbsrv.fs import identity
from smbsrv.fs.handle import FileHandle
from smbsrv.fscc.notify import Action, Filter

if TYPE_CHECKING:
    from smbsrv.files.table import Deleter, FileTable
    from smbsrv.protocol.objects import Open

log = logging.getLogger(__name__)


def close_open(files: FileTable, open_: Open) -> None:
    """Release the handle: share-mode entry, byte-range locks, lease, fds; remove its name when this was the
    last handle made through a name whose delete is pending ([MS-FSA] 2.1.5.5). Closing twice does nothing."""
    if open_.closed:
        return
    open_.closed = True
    if open_.pipe is not None:
        return
    write_time.closing(open_)  # a handle that wrote sets the file's LastWriteTime as it goes
    effects = files.close(open_)
    if open_.is_directory and not effects.delete_now and files.is_delete_pending(open_):
        files.watches.delete_pending(open_.link.opens)  # a directory has one name: its opens are all there
    try:
        if effects.delete_now and effects.deleter is not None:
            _delete(files, open_, effects.deleter)
        if effects.delete_file_name and effects.file_deleter is not None:
            _delete(files, open_, effects.file_deleter, file_name=True)
    finally:
        open_.handle.close()


def _delete(files: FileTable, open_: Open, deleter: Deleter, *, file_name: bool = False) -> None:
    """Remove the name the closing open was made through: it is the last open through that name (the
    table's Link), whose handle follows renames of the name, so its directory fd and name are the name's. For
    an open of a named stream that is the stream; with `file_name`, the file's name, whose pending delete this
    stream's open was the last to hold ([MS-FSA] 2.1.5.5): the handle's fds are the file's."""
    handle = open_.handle
    stream = open_.stream is not None and not file_name
    try:
        # As the user who asked for the delete (table.Deleter): never as the server, which a teardown (logoff, a
        # dropped connection) runs as, so that the kernel's permission check still holds.
        with identity.acting_for(deleter.uid, deleter.gid, deleter.groups):
            # None: no name to remove, or the name now belongs to another file (ours is already gone).
            is_dir = FileHandle.unlink_if_same(handle) if file_name else handle.unlink_if_same()
    except SmbError as exc:
        # CREATE and SET_INFO checked what they could; a failure here (a concurrent local change) cannot be
        # reported to the client any more, so it is at least logged.
        log.warning("delete on close of %s failed: %s", "/".join(open_.path_components), exc.status.name)
        return
    if is_dir is None:
        return
    if stream:  # a stream went, not the name
        files.changes.changed(open_.tree, open_.named_components, Action.REMOVED_STREAM, Filter.STREAM_NAME,
                              origin=open_)
        events.deleted(deleter.user, deleter.client, open_.tree, open_.named_components)
        return
    open_.tree.share_root.note_removed(handle.parent_fd, handle.name)
    files.changes.changed(open_.tree, open_.path_components, Action.REMOVED,
                          Filter.DIR_NAME if is_dir else Filter.FILE_NAME, is_dir, origin=open_)
    events.deleted(deleter.user, deleter.client, open_.tree, open_.path_components)
