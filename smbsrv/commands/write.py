"""WRITE ([MS-SMB2] 3.3.5.13): the payload is written straight from the receive buffer."""

from __future__ import annotations

import os

from smbsrv.commands.read import check_credit_charge
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.wire import readwrite as wire
from smbsrv.wire.constants import FILE_APPEND_DATA, FILE_WRITE_DATA, FILE_WRITE_THROUGH, SMB2_WRITEFLAG_WRITE_THROUGH
from smbsrv.wire.status import NtStatus

_APPEND_OFFSET = 0xFFFFFFFFFFFFFFFF


def handle(ctx: RequestContext, request: wire.WriteRequest) -> bytes:
    open_ = ctx.open
    assert open_ is not None and ctx.tree is not None
    connection = ctx.connection
    length = len(request.data)
    if length > connection.server.config.max_io_size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    check_credit_charge(ctx, length)
    if open_.pipe is not None:
        from smbsrv.commands.pipe import write_pipe

        return write_pipe(open_, request.data)
    if open_.is_directory:
        raise SmbError(NtStatus.STATUS_INVALID_DEVICE_REQUEST)
    offset = request.offset
    if offset == _APPEND_OFFSET and open_.granted_access & FILE_APPEND_DATA:
        offset = os.fstat(open_.fd).st_size
    elif not open_.granted_access & FILE_WRITE_DATA:
        # An append-only handle may write only at the end of the file ([MS-FSA] 2.1.5.3).
        if not open_.granted_access & FILE_APPEND_DATA or offset != os.fstat(open_.fd).st_size:
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if offset > 0x7FFFFFFFFFFFFFFF or offset + length > 0x7FFFFFFFFFFFFFFF:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    locks = connection.server.locks
    if locks is not None and length:
        locks.check_io(open_, offset, length, write=True)
    data = request.data
    written = 0
    try:
        while written < length:
            written += os.pwrite(open_.fd, data[written:], offset + written)
    except OSError as exc:
        from smbsrv.fs.errno_map import status_for_errno

        raise SmbError(status_for_errno(exc.errno)) from None
    if (request.flags & SMB2_WRITEFLAG_WRITE_THROUGH or open_.create_options & FILE_WRITE_THROUGH
            or ctx.tree.share.sync_always):
        os.fdatasync(open_.fd)
    return wire.encode_write_response(written)
