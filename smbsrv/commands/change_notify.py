"""CHANGE_NOTIFY ([MS-SMB2] 2.2.35/2.2.36, 3.3.5.19; [MS-FSA] 2.1.5.10): a directory open waits for changes.

The watch itself (filter, WATCH_TREE, buffered changes) is per-file state in files/notify.py; this module checks
the request, registers the watch on the open's first request and goes async with an interim response until a
change, CLOSE (STATUS_NOTIFY_CLEANUP), CANCEL (STATUS_CANCELLED) or the end of the session or connection.
A request that would wait while other requests follow it in a compound fails with STATUS_INTERNAL_ERROR
instead, as on Windows, and leaves no watch behind (protocol/connection.py).
"""

from __future__ import annotations

import asyncio

from smbsrv.commands.query_info import max_transact_size
from smbsrv.files.notify import CLEANUP, DELETE_PENDING
from smbsrv.fscc.notify import SMB2_WATCH_TREE
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.credits import check_credit_charge
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.reply import GoAsync, Reply
from smbsrv.wire import query as wire
from smbsrv.wire.constants import FILE_LIST_DIRECTORY
from smbsrv.wire.status import NtStatus


def handle(ctx: RequestContext, request: wire.ChangeNotifyRequest) -> Reply:
    open_ = ctx.open
    assert open_ is not None
    if open_.pipe is not None or not open_.is_directory:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)  # [MS-FSA] 2.1.5.10: directories only
    if not open_.granted_access & FILE_LIST_DIRECTORY:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    length = request.output_buffer_length
    if length > max_transact_size(ctx):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)  # [MS-SMB2] 3.3.5.19 (smb2.notify.valid-req)
    check_credit_charge(ctx, length)
    files = ctx.connection.server.files
    if files.is_delete_pending(open_):
        raise SmbError(NtStatus.STATUS_DELETE_PENDING)  # as Samba; the directory is about to go
    watches = files.watches
    watch = watches.get(open_)
    created = watch is None
    if watch is None:
        # The first request fixes the filter, WATCH_TREE and the buffer kept between requests (Windows and
        # Samba; later requests' values only bound their own response).
        watch = watches.watch(open_, request.completion_filter, bool(request.flags & SMB2_WATCH_TREE), length)
    result = watches.wait(watch, length)
    if not isinstance(result, asyncio.Future):
        return _answer(result)
    # The request joins the watch's queue now, before its interim response goes out: the client may make its
    # change as soon as it sees the interim, and that first change alone answers this request (the ones after
    # it wait in the buffer for the next request; smbtorture smb2.notify.valid-req wants exactly one).
    future = result

    async def completion() -> Reply:
        return _answer(await future)

    def ended() -> None:
        # However the request ended (answered, CANCEL even before its first step, connection loss), it
        # leaves the watch's queue, so that it cannot swallow a later change.
        future.cancel()
        for entry in watch.waiters:
            if entry[0] is future:
                watch.waiters.remove(entry)
                break

    def withdraw() -> None:
        # Refused before it went async (in the middle of a compound, Connection._answer_smb2): the request
        # never existed for the watch, and a watch it made would buffer changes for a request nobody sent.
        ended()
        if created:
            watches.forget(open_)

    raise GoAsync(completion, ended, withdraw=withdraw)


def _answer(result: object) -> Reply:
    if result is CLEANUP:
        raise SmbError(NtStatus.STATUS_NOTIFY_CLEANUP)
    if result is DELETE_PENDING:
        raise SmbError(NtStatus.STATUS_DELETE_PENDING)
    if not result:
        # Overflowed, or the records do not fit in OutputBufferLength ([MS-SMB2] 3.3.5.19).
        raise SmbError(NtStatus.STATUS_NOTIFY_ENUM_DIR)
    assert isinstance(result, bytes)
    return Reply(wire.encode_output_response(result))
