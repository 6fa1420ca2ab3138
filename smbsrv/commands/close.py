"""CLOSE ([MS-SMB2] 3.3.5.10), and the one teardown path every handle takes (close, logoff, disconnect)."""

from __future__ import annotations

import logging
import os
import stat
from typing import TYPE_CHECKING

from smbsrv.commands import handles
from smbsrv.fscc.notify import Action, Filter
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.objects import Open
from smbsrv.wire import create as wire
from smbsrv.wire.constants import SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB

if TYPE_CHECKING:
    from smbsrv.state import ServerState

log = logging.getLogger(__name__)


def handle(ctx: RequestContext, request: wire.CloseRequest) -> bytes:
    open_ = ctx.open
    assert open_ is not None and ctx.session is not None
    body = wire.encode_close_response(0)
    if request.flags & SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB and open_.pipe is None:
        info = handles.info_for_open(open_)
        body = wire.encode_close_response(
            SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB,
            (info.creation_time, info.last_access_time, info.last_write_time, info.change_time),
            info.allocation_size, info.end_of_file, info.attributes)
    ctx.session.opens.pop(open_.file_id[1], None)
    close_open(ctx.connection.server, open_)
    return body


def close_open(server: ServerState, open_: Open) -> None:
    """Release the handle: share-mode entry, byte-range locks, fds; delete the file when this was the last
    handle of a file whose delete is pending ([MS-FSA] 2.1.5.4)."""
    if open_.closed:
        return
    open_.closed = True
    if open_.pipe is not None:
        return
    effects = server.files.close(open_)
    if open_.is_directory and not effects.delete_now and server.files.is_delete_pending(open_.file_key):
        server.files.watches.delete_pending(server.files.opens(open_.file_key))
    parent_fd, open_.parent_fd = open_.parent_fd, -1
    try:
        if effects.delete_now:
            _delete(server, open_, parent_fd)
    finally:
        if open_.fd >= 0:
            os.close(open_.fd)
            open_.fd = -1
        if parent_fd >= 0:
            os.close(parent_fd)


def _delete(server: ServerState, open_: Open, parent_fd: int) -> None:
    name = open_.name
    if parent_fd < 0 or not name:
        return
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        return
    if (st.st_dev, st.st_ino) != open_.file_key:
        return  # the name now belongs to another file: ours is already gone
    is_dir = stat.S_ISDIR(st.st_mode)
    try:
        if is_dir:
            os.rmdir(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
    except OSError as exc:
        # CREATE and SET_INFO checked what they could; a failure here (a concurrent local change) cannot be
        # reported to the client any more, so it is at least logged.
        log.warning("delete on close of %s failed: %s", "/".join(open_.path_components), exc.strerror)
        return
    open_.tree.share_root.note_removed(parent_fd, name)
    server.files.changes.changed(open_.tree, open_.path_components, Action.REMOVED,
                                 Filter.DIR_NAME if is_dir else Filter.FILE_NAME, is_dir)
