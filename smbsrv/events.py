"""What operators see of each request: lifecycle log lines, the audit log and the metrics counters.

`observed(dispatch)` wraps the dispatcher once (dispatch.py's last line); every request passes through
`_observed_dispatch`, which costs a coroutine frame and a set lookup when metrics are off. The outcome of a
request (status, session, tree, open) is complete only after the handler ran, so observing it here needs no line
in any command module:

- one structured INFO line (`event=... key=value ...`, logger smbsrv.events) per session setup, logoff, tree
  connect and disconnect, and authentication failure, with the client's address; a session that ends with its
  connection gets `event=session_end` from the teardown (`session_ended`, called by ServerState);
- with `audit_log` set, one line per create, delete, rename and first WRITE of a handle, per user;
- with `metrics` on, the counters of `metrics.Metrics`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from smbsrv.protocol.errors import ProtocolViolation, SmbError
from smbsrv.protocol.reply import GoAsync, Reply
from smbsrv.wire.constants import FILE_CREATED, FILE_OVERWRITTEN, FILE_SUPERSEDED, Command
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.metrics import Metrics
    from smbsrv.protocol.context import RequestContext
    from smbsrv.protocol.objects import Open

log = logging.getLogger(__name__)
audit_log = logging.getLogger("smbsrv.audit")

_Result = TypeVar("_Result")

_LIFECYCLE = frozenset((Command.SESSION_SETUP, Command.LOGOFF, Command.TREE_CONNECT, Command.TREE_DISCONNECT))
_AUDITED = frozenset((Command.CREATE, Command.SET_INFO, Command.WRITE))  # deletes: deleted(), from files/closing
_CREATE_ACTIONS = {FILE_SUPERSEDED: "supersede", FILE_CREATED: "create", FILE_OVERWRITTEN: "overwrite"}
_SMB2_0_INFO_FILE = 1
_FILE_RENAME_INFORMATION = 10  # [MS-FSCC] 2.4.42
_BODY = 64  # SMB2 header size: request and response bodies start here


class Observer:
    """The process's one observer; `configure` sets what is on."""

    def __init__(self) -> None:
        self.metrics: Metrics | None = None
        self.audit = False
        self.interesting: frozenset[int] = _LIFECYCLE
        self._written: weakref.WeakSet[Open] = weakref.WeakSet()

    def configure(self, metrics: Metrics | None, audit_path: str) -> None:
        self.metrics = metrics
        self.audit = bool(audit_path)
        self.interesting = _LIFECYCLE | _AUDITED if self.audit else _LIFECYCLE

    def before(self, ctx: RequestContext) -> Any:
        """What must be seen before the handler changes it (only for the few requests that need it)."""
        command = ctx.header.command
        if command == Command.SET_INFO and self.audit:
            open_ = _set_info_rename_target(ctx)
            return None if open_ is None else "/".join(open_.named_components)
        if command == Command.SESSION_SETUP:
            session = ctx.connection.sessions.get(ctx.header.session_id)
            return session is not None and session.state == "valid"
        return None

    def done(self, ctx: RequestContext, status: int, elapsed_s: float, result: Any, seen: Any) -> None:
        command = ctx.header.command
        if self.metrics is not None:
            self.metrics.request(ctx, command, status, elapsed_s, result)
        if command in _LIFECYCLE:
            _lifecycle(ctx, command, status, seen)
        elif self.audit and status == NtStatus.STATUS_SUCCESS:
            self._audit(ctx, command, result, seen)

    def _audit(self, ctx: RequestContext, command: int, result: Any, seen: Any) -> None:
        session = ctx.session
        if session is None:
            return
        if command == Command.CREATE:
            body = result.body if isinstance(result, Reply) else result
            action = int.from_bytes(body[4:8], "little")
            open_ = session.opens.get(ctx.created_file_id[1]) if ctx.created_file_id else None
            if action in _CREATE_ACTIONS and open_ is not None:
                _audit_line(ctx, _CREATE_ACTIONS[action], open_)
        elif command == Command.SET_INFO and seen is not None and ctx.open is not None:
            _audit_line(ctx, "rename", ctx.open, f" from={_quote(seen)}")
        elif command == Command.WRITE and ctx.open is not None and ctx.open not in self._written:
            self._written.add(ctx.open)
            _audit_line(ctx, "write", ctx.open)


OBSERVER = Observer()


def observed(dispatch: Callable[[RequestContext], Coroutine[Any, Any, _Result]]
             ) -> Callable[[RequestContext], Coroutine[Any, Any, _Result]]:
    async def _observed_dispatch(ctx: RequestContext) -> _Result:
        observer = OBSERVER
        timed = observer.metrics is not None
        if ctx.header.command not in observer.interesting and not timed:
            return await dispatch(ctx)
        seen = observer.before(ctx)
        started = time.perf_counter() if timed else 0.0
        try:
            result = await dispatch(ctx)
        except SmbError as exc:
            observer.done(ctx, exc.status, time.perf_counter() - started if timed else 0.0, None, seen)
            raise
        except GoAsync as pending:
            # Seen when it is answered: a CREATE that waited for an oplock break, a rename after a lease break,
            # a WRITE after a hydration get their audit line and their final status (never STATUS_PENDING).
            pending.completion = _observed_completion(pending.completion, ctx, started, seen)
            # Or when it is refused instead (a blocking LOCK or CHANGE_NOTIFY in the middle of a compound,
            # one over the connection's async limit): its completion never runs.
            pending.refused = lambda status: observer.done(ctx, status, _since(started), None, seen)
            raise
        except ProtocolViolation:
            raise
        except Exception:
            observer.done(ctx, NtStatus.STATUS_INTERNAL_ERROR, 0.0, None, seen)
            raise
        status = result.status if isinstance(result, Reply) else NtStatus.STATUS_SUCCESS
        observer.done(ctx, status, time.perf_counter() - started if timed else 0.0, result, seen)
        return result

    return _observed_dispatch


def _observed_completion(completion: Callable[[], Awaitable[bytes | Reply]], ctx: RequestContext, started: float,
                         seen: Any) -> Callable[[], Coroutine[Any, Any, bytes | Reply]]:
    """The completion of a request that went async, observed as _observed_dispatch observes the others. A
    request dropped with its connection is not seen."""
    async def _observed() -> bytes | Reply:
        observer = OBSERVER
        try:
            result = await completion()
        except SmbError as exc:
            observer.done(ctx, exc.status, _since(started), None, seen)
            raise
        except asyncio.CancelledError:
            observer.done(ctx, NtStatus.STATUS_CANCELLED, _since(started), None, seen)
            raise
        status = result.status if isinstance(result, Reply) else NtStatus.STATUS_SUCCESS
        observer.done(ctx, status, _since(started), result, seen)
        return result

    return _observed


def _since(started: float) -> float:
    return time.perf_counter() - started if started else 0.0  # 0.0: not timed (metrics off)


def _lifecycle(ctx: RequestContext, command: int, status: int, seen: Any) -> None:
    connection = ctx.connection
    session = ctx.session
    client = connection.peer
    if command == Command.SESSION_SETUP:
        if status == NtStatus.STATUS_SUCCESS and session is not None:
            keys = "-" if session.signer is None else ("required" if session.signing_required else "client")
            dialect = connection.dialect
            log.info("event=%s client=%s user=%s session=%#x dialect=%d.%d.%d signing=%s encryption=%s",
                     "reauth" if seen else "session_setup", client, user_name(session), session.session_id,
                     dialect >> 8, (dialect >> 4) & 0xF, dialect & 0xF, keys, "required" if session.encrypt_data else
                     ("available" if session.cipher is not None else "off"))
        elif status == NtStatus.STATUS_LOGON_FAILURE:
            log.info("event=auth_failure client=%s session=%#x", client, ctx.header.session_id)
    elif command == Command.LOGOFF and status == NtStatus.STATUS_SUCCESS and session is not None:
        log.info("event=logoff client=%s user=%s session=%#x", client, user_name(session), session.session_id)
    elif command == Command.TREE_CONNECT and session is not None:
        if status == NtStatus.STATUS_SUCCESS and ctx.tree is not None:
            log.info("event=tree_connect client=%s user=%s session=%#x tree=%d share=%s", client,
                     user_name(session), session.session_id, ctx.tree.tree_id, _share(ctx.tree))
        else:
            log.info("event=tree_connect_refused client=%s user=%s session=%#x status=%s", client,
                     user_name(session), session.session_id, _status_name(status))
    elif command == Command.TREE_DISCONNECT and status == NtStatus.STATUS_SUCCESS and session is not None \
            and ctx.tree is not None:
        log.info("event=tree_disconnect client=%s user=%s session=%#x tree=%d share=%s", client,
                 user_name(session), session.session_id, ctx.tree.tree_id, _share(ctx.tree))


def session_ended(connection: Any, session: Any, reason: str, durable_kept: int = 0) -> None:
    """A session ended without a LOGOFF (the connection dropped): the same key=value shape as event=logoff, so
    every session_setup line has a matching end; `durable` counts its opens kept for a reconnect."""
    log.info("event=session_end client=%s user=%s session=%#x reason=%s durable=%d", connection.peer,
             user_name(session), session.session_id, reason, durable_kept)


def deleted(user: str, client: str, tree: Any, components: tuple[str, ...]) -> None:
    """A delete on close carried out (files/closing.py), in the name of the user who asked for it: at that
    user's CLOSE, at another handle's last close, or at a logoff or a dropped connection alike."""
    if OBSERVER.audit:
        audit_log.info("op=delete user=%s client=%s share=%s path=%s", user, client, _share(tree),
                       _quote("/".join(components)))


def _audit_line(ctx: RequestContext, operation: str, open_: Open, extra: str = "") -> None:
    assert ctx.session is not None
    audit_log.info("op=%s user=%s client=%s share=%s path=%s%s", operation, user_name(ctx.session),
                   ctx.connection.peer, _share(open_.tree), _quote("/".join(open_.named_components)), extra)


def _set_info_rename_target(ctx: RequestContext) -> Open | None:
    """The open a SET_INFO FileRenameInformation acts on, looked up as the dispatcher will ([MS-SMB2] 2.2.39:
    InfoType at body offset 2, FileInfoClass at 3, FileId at 16; a related request uses the chain's)."""
    element = ctx.element
    if len(element) < _BODY + 32 or element[_BODY + 2] != _SMB2_0_INFO_FILE \
            or element[_BODY + 3] != _FILE_RENAME_INFORMATION:
        return None
    session = ctx.connection.sessions.get(ctx.header.session_id)
    if session is None:
        return None
    file_id = ctx.created_file_id
    volatile = file_id[1] if file_id else int.from_bytes(element[_BODY + 24:_BODY + 32], "little")
    return session.opens.get(volatile)


def user_name(session: Any) -> str:
    """The user a session acts for, as the log lines, the audit log and `smbsrv status` name it."""
    if session.user is not None:
        return str(session.user.name)
    return "guest" if session.is_guest else "anonymous"


def _share(tree: Any) -> str:
    return "IPC$" if tree.is_ipc else str(tree.share.name)


def _quote(path: str) -> str:
    """Paths in key=value lines: quoted when they hold spaces, quotes or control characters."""
    if path and not any(c in path for c in ' "=\\') and path.isprintable():
        return path
    return json.dumps(path, ensure_ascii=False)


def _status_name(status: int) -> str:
    try:
        return NtStatus(status).name
    except ValueError:
        return f"{status:#010x}"


__all__ = ["OBSERVER", "Observer", "observed", "session_ended"]
