"""One table from SMB2 command to handler, and the preconditions checked once for every request.

Each entry says what the handler needs (a valid session, a tree connect, an open), in the order of
[MS-SMB2] 3.3.5.2: session lookup (3.3.5.2.9), signature check (3.3.5.2.4), tree connect lookup (3.3.5.2.11),
then the open named by the request's FileId (or the one a related compound carries forward).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smbsrv.commands import (
    change_notify,
    close,
    create,
    durable_handles,
    echo,
    flush,
    ioctl,
    lock,
    logoff,
    negotiate,
    oplock_break,
    query_directory,
    query_info,
    read,
    session_setup,
    set_info,
    tree_connect,
    write,
)
from smbsrv.events import observed
from smbsrv.fs import identity
from smbsrv.protocol.connection import Handlers
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import ProtocolViolation, SmbError
from smbsrv.protocol.reply import Reply
from smbsrv.wire import create as create_wire
from smbsrv.wire import ioctl as ioctl_wire
from smbsrv.wire import lock as lock_wire
from smbsrv.wire import oplock as oplock_wire
from smbsrv.wire import query as query_wire
from smbsrv.wire import readwrite as readwrite_wire
from smbsrv.wire import session_setup as session_wire
from smbsrv.wire import simple as simple_wire
from smbsrv.wire import tree_connect as tree_wire
from smbsrv.wire.constants import SMB2_FLAGS_SIGNED, Command
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.protocol.objects import Session


@dataclass(frozen=True)
class Entry:
    decode: Callable[[memoryview], Any]
    handle: Callable[[RequestContext, Any], Any]
    needs_session: bool = True
    needs_tree: bool = True
    needs_open: bool = True


def _file_id_of(request: Any) -> tuple[int, int]:
    return request if isinstance(request, tuple) else request.file_id


TABLE: dict[int, Entry] = {
    Command.SESSION_SETUP: Entry(session_wire.decode_request, session_setup.handle, needs_session=False,
                                 needs_tree=False, needs_open=False),
    Command.LOGOFF: Entry(session_wire.decode_logoff, logoff.handle, needs_tree=False, needs_open=False),
    Command.TREE_CONNECT: Entry(tree_wire.decode_request, tree_connect.handle, needs_tree=False, needs_open=False),
    Command.TREE_DISCONNECT: Entry(tree_wire.decode_disconnect, tree_connect.handle_disconnect, needs_open=False),
    Command.CREATE: Entry(create_wire.decode_request, create.handle, needs_open=False),
    Command.CLOSE: Entry(create_wire.decode_close, close.handle),
    Command.FLUSH: Entry(readwrite_wire.decode_flush, flush.handle),
    Command.READ: Entry(readwrite_wire.decode_read, read.handle),
    Command.WRITE: Entry(readwrite_wire.decode_write, write.handle),
    Command.LOCK: Entry(lock_wire.decode_request, lock.handle),
    Command.IOCTL: Entry(ioctl_wire.decode_request, ioctl.handle, needs_open=False),
    Command.ECHO: Entry(simple_wire.decode_echo, echo.handle, needs_session=False, needs_tree=False,
                        needs_open=False),
    Command.QUERY_DIRECTORY: Entry(query_wire.decode_query_directory, query_directory.handle),
    Command.CHANGE_NOTIFY: Entry(query_wire.decode_change_notify, change_notify.handle),
    Command.QUERY_INFO: Entry(query_wire.decode_query_info, query_info.handle),
    Command.SET_INFO: Entry(query_wire.decode_set_info, set_info.handle),
    # The oplock acknowledgment names its open itself; the lease acknowledgment names a lease key.
    Command.OPLOCK_BREAK: Entry(oplock_wire.decode_ack, oplock_break.handle, needs_open=False),
}


async def dispatch(ctx: RequestContext) -> bytes | Reply:
    connection = ctx.connection
    header = ctx.header
    command = header.command
    if command == Command.NEGOTIATE:
        if connection.negotiated:
            # [MS-SMB2] 3.3.5.3.1: a second NEGOTIATE on a connection ends it.
            raise ProtocolViolation("second NEGOTIATE")
        identity.become_root()
        return negotiate.handle(ctx)
    if not connection.negotiated:
        raise ProtocolViolation("request before NEGOTIATE")
    entry = TABLE.get(command)
    if entry is None:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if entry.needs_session:
        _find_session(ctx)
    elif header.session_id and command != Command.SESSION_SETUP and not ctx.encrypted:
        # [MS-SMB2] 3.3.5.2.4: a signed request is verified whatever its command (ECHO too).
        session = connection.sessions.get(header.session_id)
        if session is not None and session.state == "valid":
            ctx.session = session
            verify_signature(ctx)
    request = entry.decode(ctx.element)
    if entry.needs_tree:
        _find_tree(ctx)
    if entry.needs_open:
        _find_open(ctx, _file_id_of(request))
    session = ctx.session
    if session is None:
        identity.become_root()  # an earlier request of the same message may have left its user's identity
        result = entry.handle(ctx, request)
    else:
        # The user's identity stays on when the handler returns: the next request of a compound (cifs.ko's
        # CREATE + QUERY_INFO + CLOSE) is usually the same user's, and a switch there and back costs ~11 us.
        # The connection goes back to the server's identity once the message is answered
        # (Handlers.end_of_message), before the event loop runs anything else.
        identity.become(session.uid, session.gid, session.groups)
        result = entry.handle(ctx, request)
    # Most handlers answer at once (checked first: cheaper than isawaitable); the few that wait (locks, large
    # writes, pipes) return an awaitable, which gives the event loop turns: those run as the server.
    if type(result) is bytes or type(result) is Reply or not inspect.isawaitable(result):
        return result  # type: ignore[no-any-return]
    if session is not None and inspect.iscoroutine(result):
        return await _StepsActingAs(result, session)  # type: ignore[no-any-return]
    identity.become_root()
    return await result  # type: ignore[no-any-return]


class _StepsActingAs:
    """Awaits a handler's coroutine, or an async request's completion (Handlers.acting_as), one step at a time,
    each step as the session's user: between two steps the event loop serves other connections, and it does
    that as the server (fs/identity.py)."""

    __slots__ = ("_coroutine", "_session")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], session: Session) -> None:
        self._coroutine = coroutine
        self._session = session

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine = self._coroutine
        value: Any = None
        error: BaseException | None = None
        while True:
            with _acting_as(self._session):
                try:
                    yielded = coroutine.send(value) if error is None else coroutine.throw(error)
                except StopIteration as done:
                    return done.value
            value, error = None, None
            try:
                value = yield yielded
            except GeneratorExit:
                with _acting_as(self._session):
                    coroutine.close()
                raise
            except BaseException as exc:  # noqa: BLE001  (cancellation or an error sent in: the coroutine handles it)
                error = exc


def _acting_as(session: Session) -> identity.acting_as:
    return identity.acting_as(session.uid, session.gid, session.groups)


def _find_session(ctx: RequestContext) -> None:
    connection = ctx.connection
    session = connection.sessions.get(ctx.header.session_id)
    if session is None:
        raise SmbError(NtStatus.STATUS_USER_SESSION_DELETED)
    if session.state == "expired":
        raise SmbError(NtStatus.STATUS_NETWORK_SESSION_EXPIRED)
    if session.state != "valid":
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    ctx.session = session
    if ctx.encrypted:
        return  # the transform's tag authenticated the request
    if session.encrypt_data:
        # [MS-SMB2] 3.3.5.2.9: a session that must be encrypted refuses plaintext requests.
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    verify_signature(ctx)


def verify_signature(ctx: RequestContext) -> None:
    """[MS-SMB2] 3.3.5.2.4: a signed request must verify; an unsigned one is refused where signing is required."""
    session = ctx.session
    if session is None or session.signer is None:
        return
    if ctx.header.flags & SMB2_FLAGS_SIGNED:
        # The key of this connection's channel ([MS-SMB2] 3.3.5.2.4).
        signer = session.signer_for(ctx.connection)
        streamed = ctx.streamed_signature
        computed = streamed[1] if streamed is not None and streamed[0] is signer else None
        if not signer.verify(ctx.element, computed):
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    elif session.signing_required:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)


def _find_tree(ctx: RequestContext) -> None:
    assert ctx.session is not None
    tree = ctx.session.tree_connects.get(ctx.header.tree_id)
    if tree is None:
        raise SmbError(NtStatus.STATUS_NETWORK_NAME_DELETED)
    if tree.encrypt_data and not ctx.encrypted:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    ctx.tree = tree


def _find_open(ctx: RequestContext, file_id: tuple[int, int]) -> None:
    assert ctx.session is not None
    if ctx.created_file_id is not None:
        # A related request acts on the chain's handle whatever FileId it carries ([MS-SMB2] 3.3.5.2.7.2;
        # Windows and Samba ignore the carried value).
        file_id = ctx.created_file_id
    open_ = ctx.session.opens.get(file_id[1])
    if open_ is None or open_.file_id != file_id or open_.tree is not ctx.tree or open_.closed:
        raise SmbError(NtStatus.STATUS_FILE_CLOSED)
    ctx.open = open_
    durable_handles.request_on(ctx, open_)  # ChannelSequence; the CREATE is no longer replayable


# Operators' view of every request (events.py): lifecycle log lines, audit log, metrics; one wrapper call each.
dispatch = observed(dispatch)  # type: ignore[assignment]

# What a Connection calls into (protocol/connection.py Handlers): passed in by the transport, never imported by
# protocol/.
HANDLERS = Handlers(dispatch, negotiate.handle_smb1_negotiate, identity.become_root, _StepsActingAs)
