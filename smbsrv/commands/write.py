"""WRITE ([MS-SMB2] 3.3.5.13): the payload is written straight from the receive buffer."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from smbsrv.commands import oplock_break
from smbsrv.files import write_time
from smbsrv.fs import backend
from smbsrv.fscc import attributes as fattr
from smbsrv.fscc.notify import Action, Filter
from smbsrv.hsm import access as hsm_access
from smbsrv.protocol.bulk import BULK_IO_BYTES
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.credits import check_credit_charge
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.wire import readwrite as wire
from smbsrv.wire.constants import (
    FILE_APPEND_DATA,
    FILE_WRITE_DATA,
    FILE_WRITE_THROUGH,
    SMB2_WRITEFLAG_WRITE_THROUGH,
)
from smbsrv.wire.status import NtStatus

_APPEND_OFFSET = 0xFFFFFFFFFFFFFFFF
# [MS-FSA] 2.1.5.3 MAXFILESIZE: no byte may be written at or past it (STATUS_INVALID_PARAMETER; Samba's
# vfs_valid_pwrite_range; smbtorture smb2.rw.invalid). An empty write there is fine.
_MAXFILESIZE = 0xFFFFFFF0000


def handle(ctx: RequestContext, request: wire.WriteRequest) -> bytes | Coroutine[Any, Any, bytes]:
    open_ = ctx.open
    assert open_ is not None and ctx.tree is not None
    connection = ctx.connection
    length = len(request.data)
    if length > connection.server.config.write_size_limit:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    check_credit_charge(ctx, length)
    if open_.pipe is not None:
        from smbsrv.commands.pipe import write_pipe

        return write_pipe(open_, request.data)
    if open_.is_directory:
        raise SmbError(NtStatus.STATUS_INVALID_DEVICE_REQUEST)
    offset = _write_offset(open_, request.offset)
    if offset + length > 0x7FFFFFFFFFFFFFFF or (length and offset + length > _MAXFILESIZE):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if length and open_.file.locks.held:
        open_.file.locks.check_io(open_, offset, length, write=True)
    if len(open_.file.opens) > 1 or open_.oplock_level:
        # Other opens' read caches (level II oplocks, R leases) are broken to none (Samba 4.17).
        oplock_break.break_for_write(connection.server, open_)
    stream = open_.stream is not None
    if ctx.tree.share.hsm_provider and not stream:  # a placeholder is hydrated before it is written (docs/hsm.md)
        hsm_access.before_write(ctx, open_, request, handle)
    write_time.before_write(open_)  # LastWriteTime moves 2 s later (files/write_time.py)
    if length >= BULK_IO_BYTES and not stream:  # a stream's xattr is rewritten whole, here on the loop's thread
        return _write_in_thread(ctx, open_, request, offset)
    return _finish(ctx, open_, request, open_.handle.write(request.data, offset))


def _write_offset(open_: Open, offset: int) -> int:
    """Where the data goes. Either FILE_WRITE_DATA or FILE_APPEND_DATA allows a write, as on Samba 4.17;
    0xFFFFFFFFFFFFFFFF means the end of the file ([MS-FSA] 2.1.5.4).

    An append-only Windows handle writes at the offset it gives, as Samba does and samba.tests.smb3unix
    test_append expects (Windows would append instead). A POSIX handle without FILE_WRITE_DATA is in append
    mode, like O_APPEND: only the end-of-file offset is accepted, anything else is STATUS_INVALID_PARAMETER
    (Samba's smb2 POSIX handles, the same test)."""
    access = open_.granted_access
    if not access & (FILE_WRITE_DATA | FILE_APPEND_DATA):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if offset == _APPEND_OFFSET:
        return open_.handle.size()
    if open_.posix and not access & FILE_WRITE_DATA:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    return offset


async def _write_in_thread(ctx: RequestContext, open_: Open, request: wire.WriteRequest, offset: int) -> bytes:
    """The page-cache copy of a large WRITE runs in a worker thread (os.pwrite releases the GIL), so the
    event loop meanwhile receives the next request; see transport._is_bulk_write."""
    loop = asyncio.get_running_loop()
    # One disk write per file at a time: concurrent writers of one file contend for its inode lock, which
    # spins and costs more CPU than the writes themselves; the overlap that matters is with the receive.
    lock = open_.write_lock
    if lock is None:
        lock = open_.write_lock = asyncio.Lock()
    # The thread writes through a duplicate of the fd (FileHandle.borrowed_fd): a CLOSE of this open from
    # another channel, or a session or tree teardown, may run while it writes, and must not leave it writing
    # to whatever file reuses the fd number.
    async with lock:
        with open_.handle.borrowed_fd() as fd:
            written = await loop.run_in_executor(None, backend.pwrite_all, fd, request.data, offset)
    return _finish(ctx, open_, request, written)


def _finish(ctx: RequestContext, open_: Open, request: wire.WriteRequest, written: int) -> bytes:
    assert ctx.tree is not None
    if (request.flags & SMB2_WRITEFLAG_WRITE_THROUGH or open_.create_options & FILE_WRITE_THROUGH
            or ctx.tree.share.sync_always):
        open_.handle.sync(data_only=True)
    if not open_.wrote and not open_.posix:
        _mark_archive(open_)
    open_.wrote = True  # its close breaks the directory's leases (commands/oplock_break.py DirectoryChanges)
    # Change notification (files/notify.py): watchers of the directory see the write; identical records of a
    # burst of writes coalesce in each watch's buffer.
    if open_.stream is None:
        ctx.connection.server.files.changes.changed(ctx.tree, open_.path_components, Action.MODIFIED,
                                                    Filter.LAST_WRITE | Filter.SIZE, origin=open_)
    else:
        ctx.connection.server.files.changes.changed(ctx.tree, open_.named_components, Action.MODIFIED_STREAM,
                                                    Filter.STREAM_WRITE | Filter.STREAM_SIZE, origin=open_)
    return wire.encode_write_response(written)


def _mark_archive(open_: Open) -> None:
    """The first write through a Windows handle sets FILE_ATTRIBUTE_ARCHIVE when it is clear, so backup tools
    see the file as changed (Windows; Samba's mark_file_modified). A file with no stored attributes shows
    ARCHIVE already."""
    info = open_.handle.dos_info()
    if info is not None and not info.attributes & fattr.FILE_ATTRIBUTE_ARCHIVE:
        open_.handle.set_dos_info(info.attributes | fattr.FILE_ATTRIBUTE_ARCHIVE, None, info.change_time or None)
