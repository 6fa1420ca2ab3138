"""IOCTL ([MS-SMB2] 3.3.5.15): a small table from FSCTL code to handler.

Connection-level FSCTLs carry the all-ones FileId; the rest act on the open the request names (or, in a
related compound, the one the previous request created).
"""

from __future__ import annotations

from collections.abc import Callable

from smbsrv.commands.ioctl import file_controls, network, reparse
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.protocol.reply import Reply
from smbsrv.wire import ioctl as wire
from smbsrv.wire.constants import (
    FSCTL_DFS_GET_REFERRALS,
    FSCTL_DFS_GET_REFERRALS_EX,
    FSCTL_PIPE_TRANSCEIVE,
    FSCTL_QUERY_ALLOCATED_RANGES,
    FSCTL_QUERY_NETWORK_INTERFACE_INFO,
    FSCTL_SET_SPARSE,
    FSCTL_SET_ZERO_DATA,
    FSCTL_SRV_ENUMERATE_SNAPSHOTS,
    FSCTL_SRV_REQUEST_RESUME_KEY,
    FSCTL_VALIDATE_NEGOTIATE_INFO,
    SMB2_0_IOCTL_IS_FSCTL,
)
from smbsrv.wire.status import NtStatus

ConnectionControl = Callable[[RequestContext, wire.IoctlRequest], bytes]
# A file control returns its output, or a Reply whose body is the output when the status is a warning.
FileControl = Callable[[RequestContext, Open, wire.IoctlRequest], "bytes | Reply"]

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
    FSCTL_SRV_REQUEST_RESUME_KEY: file_controls.request_resume_key,
    FSCTL_SRV_ENUMERATE_SNAPSHOTS: file_controls.enumerate_snapshots,
    **reparse.CONTROLS,
}

_ALL_ONES = 0xFFFFFFFFFFFFFFFF


def handle(ctx: RequestContext, request: wire.IoctlRequest) -> bytes | Reply:
    if not request.flags & SMB2_0_IOCTL_IS_FSCTL:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    if request.max_output_response > ctx.connection.server.config.max_io_size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    connection_control = CONNECTION_CONTROLS.get(request.ctl_code)
    if connection_control is not None:
        output = connection_control(ctx, request)
        return wire.encode_response(request.ctl_code, (_ALL_ONES, _ALL_ONES), output)
    file_control = FILE_CONTROLS.get(request.ctl_code)
    open_ = _find_open(ctx, request.file_id)
    if file_control is None or (open_.pipe is not None) != (request.ctl_code == FSCTL_PIPE_TRANSCEIVE):
        # Pipes take only the pipe controls, and files only the file ones.
        raise SmbError(NtStatus.STATUS_INVALID_DEVICE_REQUEST)
    output = file_control(ctx, open_, request)
    status = NtStatus.STATUS_SUCCESS
    if isinstance(output, Reply):
        output, status = output.body, output.status
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
    return open_
