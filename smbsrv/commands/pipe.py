"""Named pipes on IPC$: CREATE, READ and WRITE of an RPC pipe ([MS-SMB2] 3.3.5.9, 3.3.5.12, 3.3.5.13)."""

from __future__ import annotations

from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.protocol.reply import Reply
from smbsrv.rpc.pipes import PipeServerInfo, ShareEntry
from smbsrv.rpc.pipes import open_pipe as open_rpc_pipe
from smbsrv.wire import create as create_wire
from smbsrv.wire import readwrite as readwrite_wire
from smbsrv.wire.buffer import decode_utf16
from smbsrv.wire.constants import FILE_OPENED
from smbsrv.wire.status import NtStatus

STYPE_DISKTREE = 0
STYPE_IPC_HIDDEN = 0x80000003
_FILE_ATTRIBUTE_NORMAL = 0x80


def _server_info(ctx: RequestContext) -> PipeServerInfo:
    server = ctx.connection.server
    shares = [ShareEntry(share.name, STYPE_DISKTREE, share.comment, share.path) for share in server.config.shares]
    shares.append(ShareEntry("IPC$", STYPE_IPC_HIDDEN, "IPC Service", ""))
    return PipeServerInfo(server.config.server_name, tuple(shares))


def open_pipe(ctx: RequestContext, request: create_wire.CreateRequest) -> bytes:
    session, tree = ctx.session, ctx.tree
    assert session is not None and tree is not None
    name = decode_utf16(request.name)
    pipe = open_rpc_pipe(name, _server_info(ctx))
    if pipe is None:
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND)
    server = ctx.connection.server
    open_ = Open(file_id=server.allocate_file_id(), tree=tree, session=session,
                 granted_access=request.desired_access, share_access=request.share_access,
                 create_options=request.create_options, path_components=(name,), pipe=pipe)
    session.opens[open_.file_id[1]] = open_
    ctx.open = open_
    ctx.created_file_id = open_.file_id
    return create_wire.encode_response(
        oplock_level=0, flags=0, create_action=FILE_OPENED, creation_time=0, last_access_time=0,
        last_write_time=0, change_time=0, allocation_size=4096, end_of_file=0,
        file_attributes=_FILE_ATTRIBUTE_NORMAL, file_id=open_.file_id, contexts=b"")


def read_pipe(open_: Open, length: int) -> Reply:
    data = open_.pipe.read(length)
    if not data:
        raise SmbError(NtStatus.STATUS_PIPE_EMPTY)
    # More of the same message left: the client reads on (STATUS_BUFFER_OVERFLOW, [MS-SMB2] 3.3.5.12).
    status = NtStatus.STATUS_BUFFER_OVERFLOW if open_.pipe.current_message_remaining() else NtStatus.STATUS_SUCCESS
    return Reply(readwrite_wire.encode_read_response_header(len(data)), data, status=status)


def write_pipe(open_: Open, data: memoryview) -> bytes:
    written = open_.pipe.write(data)
    return readwrite_wire.encode_write_response(written)
