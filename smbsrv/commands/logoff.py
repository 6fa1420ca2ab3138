"""LOGOFF ([MS-SMB2] 3.3.5.6) and the teardown a session shares with connection loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smbsrv.protocol.context import RequestContext
from smbsrv.wire import session_setup as wire

if TYPE_CHECKING:
    from smbsrv.protocol.connection import Connection
    from smbsrv.protocol.objects import Session


def handle(ctx: RequestContext, request: None) -> bytes:
    assert ctx.session is not None
    destroy_session(ctx.connection, ctx.session, keep_signer=True)
    return wire.LOGOFF_RESPONSE


def destroy_session(connection: Connection, session: Session, *, keep_signer: bool = False) -> None:
    """Close every open and tree connect of the session and forget it. The LOGOFF response itself is still
    signed with the session's key, hence `keep_signer`."""
    from smbsrv.commands.close import close_open

    for open_ in list(session.opens.values()):
        close_open(connection.server, open_)
    session.opens.clear()
    session.tree_connects.clear()
    session.state = "expired"
    if not keep_signer:
        session.signer = None
    connection.sessions.pop(session.session_id, None)
