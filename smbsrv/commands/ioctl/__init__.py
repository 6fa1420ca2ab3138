"""IOCTL ([MS-SMB2] 3.3.5.15): a small table from FSCTL code to handler.

Connection-level FSCTLs carry the all-ones FileId; the rest act on the open the request names (or, in a
related compound, the one the previous request created).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from smbsrv.commands import durable_handles
from smbsrv.commands.ioctl import copychunk, duplicate_extents, file_controls, network, object_id, reparse
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.protocol.reply import GoAsync, Reply
from smbsrv.wire import ioctl as wire
from smbsrv.wire.constants import (
    FSCTL_DFS_GET_REFERRALS,
    FSCTL_DFS_GET_REFERRALS_EX,
    FSCTL_DUPLICATE_EXTENTS_TO_FILE,
    FSCTL_GET_COMPRESSION,
    FSCTL_PIPE_TRANSCEIVE,
    FSCTL_QUERY_ALLOCATED_RANGES,
    FSCTL_QUERY_NETWORK_INTERFACE_INFO,
    FSCTL_SET_COMPRESSION,
    FSCTL_SET_SPARSE,
    FSCTL_SET_ZERO_DATA,
    FSCTL_SRV_COPYCHUNK,
    FSCTL_SRV_COPYCHUNK_WRITE,
    FSCTL_SRV_ENUMERATE_SNAPSHOTS,
    FSCTL_SRV_REQUEST_RESUME_KEY,
    FSCTL_VALIDATE_NEGOTIATE_INFO,
    SMB2_0_IOCTL_IS_FSCTL,
)
from smbsrv.wire.status import NtStatus

ConnectionControl = Callable[[RequestContext, wire.IoctlRequest], bytes]
# A file control returns its output, or a Reply whose body is the output with a status other than success (a
# warning, or the error statuses that carry output: [MS-SMB2] 2.2.32, SRV_COPYCHUNK_RESPONSE), or a coroutine
# that returns one of these (a server-side copy large enough to run in a worker thread).
FileOutput = bytes | Reply
FileControl = Callable[[RequestContext, Open, wire.IoctlRequest], "FileOutput | Coroutine[Any, Any, FileOutput]"]

CONNECTION_CONTROLS: dict[int, ConnectionControl] = {
    FSCTL_VALIDATE_NEGOTIATE_INFO: network.validate_negotiate_info,
    FSCTL_QUERY_NETWORK_INTERFACE_INFO: network.query_network_interface_info,
    FSCTL_DFS_GET_REFERRALS: network.dfs_get_referrals,
    FSCTL_DFS_GET_REFERRALS_EX: network.dfs_get_referrals,
}

FILE_CONTROLS: dict[int, FileControl] = {
    FSCTL_PIPE_TRANSCEIVE: file_controls.pipe_transceive,
    FSCTL_SET_SPARSE: file_controls.set_sparse,
    FSCTL_SET_ZERO_DATA: file_controls.set_zero_data,
    FSCTL_QUERY_ALLOCATED_RANGES: file_controls.query_allocated_ranges,
    FSCTL_GET_COMPRESSION: file_controls.get_compression,
    FSCTL_SET_COMPRESSION: file_controls.set_compression,
    FSCTL_SRV_REQUEST_RESUME_KEY: copychunk.request_resume_key,
    FSCTL_SRV_COPYCHUNK: copychunk.copy_chunk,
    FSCTL_SRV_COPYCHUNK_WRITE: copychunk.copy_chunk,
    FSCTL_DUPLICATE_EXTENTS_TO_FILE: duplicate_extents.duplicate_extents,
    duplicate_extents.FSCTL_DUPLICATE_EXTENTS_TO_FILE_EX: duplicate_extents.duplicate_extents_ex,
    FSCTL_SRV_ENUMERATE_SNAPSHOTS: file_controls.enumerate_snapshots,
    **reparse.CONTROLS,
    **object_id.CONTROLS,
}

_ALL_ONES = 0xFFFFFFFFFFFFFFFF


def handle(ctx: RequestContext, request: wire.IoctlRequest) -> bytes | Reply | Coroutine[Any, Any, Reply]:
    if not request.flags & SMB2_0_IOCTL_IS_FSCTL:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    if request.max_output_response > ctx.connection.server.config.max_io_size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    connection_control = CONNECTION_CONTROLS.get(request.ctl_code)
    if connection_control is not None:
        return wire.encode_response(request.ctl_code, (_ALL_ONES, _ALL_ONES), connection_control(ctx, request))
    file_control = FILE_CONTROLS.get(request.ctl_code)
    open_ = _find_open(ctx, request.file_id)
    if file_control is None or (open_.pipe is not None) != (request.ctl_code == FSCTL_PIPE_TRANSCEIVE):
        # Pipes take only the pipe controls, and files only the file ones.
        raise SmbError(NtStatus.STATUS_INVALID_DEVICE_REQUEST)
    try:
        result = file_control(ctx, open_, request)
    except GoAsync as pending:  # e.g. a placeholder hydrating first (docs/hsm.md): the answer comes later
        completion = pending.completion
        raise pending.wrapped(lambda: _finish_later(completion(), request, open_)) from None  # type: ignore[arg-type]
    if inspect.iscoroutine(result):
        return _finish_later(result, request, open_)
    return _finish(result, request, open_)  # type: ignore[arg-type]


async def _finish_later(output: Coroutine[Any, Any, FileOutput], request: wire.IoctlRequest, open_: Open) -> Reply:
    return _finish(await output, request, open_)


def _finish(output: FileOutput, request: wire.IoctlRequest, open_: Open) -> Reply:
    status = NtStatus.STATUS_SUCCESS
    if isinstance(output, Reply):
        status, output = output.status, output.body
    if len(output) > request.max_output_response:
        raise SmbError(NtStatus.STATUS_BUFFER_TOO_SMALL)
    return Reply(wire.encode_response(request.ctl_code, open_.file_id, output), status=status)


def _find_open(ctx: RequestContext, file_id: tuple[int, int]) -> Open:
    session = ctx.session
    assert session is not None
    if ctx.created_file_id is not None:
        file_id = ctx.created_file_id  # a related request uses the chain's handle ([MS-SMB2] 3.3.5.2.7.2)
    open_ = session.opens.get(file_id[1])
    if open_ is None or open_.file_id != file_id or open_.tree is not ctx.tree or open_.closed:
        raise SmbError(NtStatus.STATUS_FILE_CLOSED)
    ctx.open = open_
    durable_handles.request_on(ctx, open_)  # ChannelSequence ([MS-SMB2] 3.3.5.2.10), replay cache
    return open_
