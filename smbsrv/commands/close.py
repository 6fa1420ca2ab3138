"""CLOSE ([MS-SMB2] 3.3.5.10). Releasing a handle is ServerState.close_open (files/closing.py), shared with
logoff, tree disconnect, connection loss and the durable-handle scavenger."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smbsrv.files import write_time
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.objects import Open
from smbsrv.wire import create as wire
from smbsrv.wire.constants import SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB

if TYPE_CHECKING:
    from smbsrv.state import ServerState


def handle(ctx: RequestContext, request: wire.CloseRequest) -> bytes:
    open_ = ctx.open
    assert open_ is not None and ctx.session is not None
    body = wire.encode_close_response(0)
    write_time.closing(open_)  # before the answer reads the times (files/write_time.py)
    if request.flags & SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB and open_.pipe is None:
        info = open_.info()
        body = wire.encode_close_response(
            SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB,
            (info.creation_time, info.last_access_time, info.last_write_time, info.change_time),
            info.allocation_size, info.end_of_file, info.attributes)
    ctx.session.opens.pop(open_.file_id[1], None)
    ctx.connection.server.close_open(open_)
    return body


def close_open(server: ServerState, open_: Open) -> None:
    """Release the handle (ServerState.close_open: files/closing.py is the one teardown path)."""
    server.close_open(open_)
