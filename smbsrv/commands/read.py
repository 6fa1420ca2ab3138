"""READ ([MS-SMB2] 3.3.5.12): data goes from the page cache into one buffer and out without another copy."""

from __future__ import annotations

import os

from smbsrv.fs.errno_map import raise_for_oserror
from smbsrv.hsm import access as hsm_access
from smbsrv.protocol.bulk import BULK_IO_BYTES, READ_BUFFERS
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.credits import check_credit_charge
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.protocol.reply import FileRange, Reply
from smbsrv.wire import readwrite as wire
from smbsrv.wire.constants import FILE_EXECUTE, FILE_READ_DATA
from smbsrv.wire.status import NtStatus

_MAX_FILE_OFFSET = 0x7FFFFFFFFFFFFFFF


def _signed_or_sealed(ctx: RequestContext) -> bool:
    """Whether the response will be signed or encrypted, so its data must pass through memory anyway."""
    return ctx.encrypted or ctx.connection.response_signer(ctx) is not None


def handle(ctx: RequestContext, request: wire.ReadRequest) -> Reply:
    open_ = ctx.open
    assert open_ is not None
    connection = ctx.connection
    if request.length > connection.server.config.max_io_size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    check_credit_charge(ctx, request.length)
    if open_.pipe is not None:
        from smbsrv.commands.pipe import read_pipe

        return read_pipe(open_, request.length)
    if open_.is_directory:
        raise SmbError(NtStatus.STATUS_INVALID_DEVICE_REQUEST)
    if not open_.granted_access & (FILE_READ_DATA | FILE_EXECUTE):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if request.offset + request.length > _MAX_FILE_OFFSET:
        # Beyond what off_t can address: refused before any system call ([MS-FSA] 2.1.5.2).
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if request.length and open_.file.locks.held:
        open_.file.locks.check_io(open_, request.offset, request.length, write=False)
    if request.length == 0:
        if request.minimum_count:
            raise SmbError(NtStatus.STATUS_END_OF_FILE)
        return Reply(wire.encode_read_response_header(0))
    if open_.stream is not None:
        # A named stream is an xattr value (fs/streams.py): no placeholder, no sendfile, no read buffer.
        data: bytes | bytearray = open_.handle.read(request.length, request.offset)
        if not data or len(data) < request.minimum_count:
            raise SmbError(NtStatus.STATUS_END_OF_FILE)
        return Reply(wire.encode_read_response_header(len(data)), data)
    if ctx.tree is not None and ctx.tree.share.hsm_provider:  # a placeholder's data is fetched first (docs/hsm.md)
        hsm_access.before_read(ctx, open_, request.offset, request.length, request.minimum_count,
                               lambda: handle(ctx, request))
    if request.length >= BULK_IO_BYTES and not _signed_or_sealed(ctx):
        # Large reads leave through sendfile(2) when the response needs no signature or encryption; the
        # connection falls back to reading the range into memory when it does.
        count = max(0, min(request.length, open_.handle.size() - request.offset))
        if count == 0 or count < request.minimum_count:
            raise SmbError(NtStatus.STATUS_END_OF_FILE)
        return Reply(wire.encode_read_response_header(count), FileRange(open_.handle.dup(), request.offset, count))
    if request.length >= BULK_IO_BYTES and not ctx.encrypted:
        # Sealed responses are joined into their transform, which copies the data: the buffer could not go back
        # to the pool, and a fresh one is zeroed, which os.pread's bytes are not.
        data = _read_into_buffer(open_, request)
    else:
        data = open_.handle.read(request.length, request.offset)
    if not data or len(data) < request.minimum_count:
        raise SmbError(NtStatus.STATUS_END_OF_FILE)
    return Reply(wire.encode_read_response_header(len(data)), data)


def _read_into_buffer(open_: Open, request: wire.ReadRequest) -> bytearray:
    """A large read that must pass through memory lands in a reused ReadBuffer (protocol/bulk.py). A short
    read (the end of the file) keeps only what it got, in a plain bytearray, so the buffer keeps its size."""
    buffer = READ_BUFFERS.take(request.length)
    try:
        count = os.preadv(open_.handle.fd, [buffer], request.offset)
    except OSError as exc:
        READ_BUFFERS.give(buffer)
        raise_for_oserror(exc)
    if count == len(buffer):
        return buffer
    READ_BUFFERS.give(buffer)
    return bytearray(memoryview(buffer)[:count])
