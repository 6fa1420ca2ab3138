"""LOGOFF ([MS-SMB2] 3.3.5.6). The teardown itself is ServerState.end_session (shared with a failed
re-authentication and PreviousSessionId); connection loss is ServerState.end_connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smbsrv.protocol.context import RequestContext
from smbsrv.wire import session_setup as wire

if TYPE_CHECKING:
    from smbsrv.protocol.connection import Connection
    from smbsrv.protocol.objects import Session


def handle(ctx: RequestContext, request: None) -> bytes:
    assert ctx.session is not None
    ctx.connection.server.end_session(ctx.connection, ctx.session, keep_signer=True)
    return wire.LOGOFF_RESPONSE


def destroy_session(connection: Connection, session: Session, *, keep_signer: bool = False) -> None:
    """End `session` of `connection` with its opens (commands/session_setup.py's name for end_session)."""
    connection.server.end_session(connection, session, keep_signer=keep_signer)
