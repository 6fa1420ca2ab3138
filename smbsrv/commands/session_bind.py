"""Multichannel session binding: SESSION_SETUP with SMB2_SESSION_FLAG_BINDING ([MS-SMB2] 3.3.5.5, 3.3.5.5.2,
3.3.5.5.3; the channel's keys 3.3.4.1.1, 3.3.5.2.4).

A client adds a connection (a channel) to a session it holds on another connection: it negotiates the same
dialect, sends SESSION_SETUP with the BINDING flag and the session's SessionId, signed with the session's
key, and runs a fresh authentication as the same user. The channel then gets its own signing key, derived
from that authentication's session key (and on 3.1.1 from the binding's own preauth hash); requests of the
session are accepted on every bound channel, and encryption keeps the session's keys.

The refusals and their order are Samba 4.17's (source3/smbd/smb2_sesssetup.c, smbd_smb2_session_setup_send)
where the spec leaves them open, because smbtorture smb2.session.bind_negative_* pins them (Windows answers
alike): signing-algorithm mismatches on 3.1.1 first (REQUEST_OUT_OF_SEQUENCE when the session uses AES-GMAC,
NOT_SUPPORTED when the new connection does), a 2.x connection (REQUEST_NOT_ACCEPTED), an unsigned or badly
signed request (INVALID_PARAMETER), another dialect or cipher than the session's (INVALID_PARAMETER), a
connection already bound (REQUEST_NOT_ACCEPTED), a guest or anonymous session (NOT_SUPPORTED); after the
exchange, another user (ACCESS_DENIED) or no session key (NOT_SUPPORTED). The ClientGuid is not compared: the
spec does not ask for it and the *d variants of those tests (another ClientGuid) want the same answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smbsrv.auth.authenticator import AuthError
from smbsrv.crypto import kdf, preauth, signing
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Channel, Session
from smbsrv.protocol.reply import Reply
from smbsrv.wire import session_setup as wire
from smbsrv.wire.constants import (
    SMB2_FLAGS_SIGNED,
    SMB2_SIGNING_AES_CMAC,
    SMB2_SIGNING_AES_GMAC,
    SMB2_SIGNING_HMAC_SHA256,
    Dialect,
)
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.state import ServerState

# Windows allows 32 channels per session; ksmbd the same.
MAX_CHANNELS_PER_SESSION = 32


def signing_algorithm_in_use(connection: Any) -> int:
    """The algorithm the connection signs with ([MS-SMB2] 3.1.4.1): HMAC-SHA256 on 2.x, AES-CMAC on 3.0 and
    3.0.2, and on 3.1.1 what SIGNING_CAPABILITIES chose (AES-CMAC without it)."""
    if connection.dialect < Dialect.SMB3_0:
        return SMB2_SIGNING_HMAC_SHA256
    if connection.dialect >= Dialect.SMB3_1_1 and connection.signing_algorithm is not None:
        return int(connection.signing_algorithm)
    return SMB2_SIGNING_AES_CMAC


def find_session(server: ServerState, session_id: int) -> Session | None:
    """[MS-SMB2] 3.3.1.5 GlobalSessionTable: a session of any connection of this server."""
    for connection in list(server.connections):
        session = connection.sessions.get(session_id)
        if session is not None:
            return session  # type: ignore[no-any-return]
    return None


def handle(ctx: RequestContext, request: wire.SessionSetupRequest) -> bytes | Reply:
    connection = ctx.connection
    channel = _begin(ctx)
    session = ctx.session
    assert session is not None
    if connection.dialect == Dialect.SMB3_1_1 and channel.preauth_hash is not None:
        channel.preauth_hash = preauth.update(channel.preauth_hash, ctx.element)
    try:
        output = channel.exchange.step(request.security_buffer)
    except AuthError as exc:
        connection.log.info("binding of session %x refused: %s", session.session_id, exc)
        session.channels.pop(connection.connection_id, None)
        raise SmbError(exc.status) from None
    if not channel.exchange.complete:
        # The binding's own preauth hash folds this response in (connection.py treats it like a session's).
        ctx.preauth_session = channel  # type: ignore[assignment]
        return Reply(wire.encode_response(0, output), status=NtStatus.STATUS_MORE_PROCESSING_REQUIRED)
    result = channel.exchange.result
    channel.exchange = None
    same_user = (result.user is not None and session.user is not None and not result.is_guest
                 and not result.is_anonymous and result.user.name.lower() == session.user.name.lower())
    if not same_user:
        # Samba compares the user SIDs: another account cannot join the session.
        session.channels.pop(connection.connection_id, None)
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if not result.session_key:
        session.channels.pop(connection.connection_id, None)
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    # [MS-SMB2] 3.3.5.5.3: Channel.SigningKey from this authentication's session key; on 3.1.1 with the
    # binding's preauth hash as context. The connection's own signing algorithm signs with it.
    keys = kdf.derive_session_keys(connection.dialect, result.session_key, channel.preauth_hash,
                                   connection.cipher_id)
    channel.signer = signing.make_signer(connection.dialect, connection.signing_algorithm, keys.signing_key)
    channel.bound = True
    channel.preauth_hash = None
    connection.sessions[session.session_id] = session
    # The successful answer is signed with the new channel's key ([MS-SMB2] 3.3.4.1.1).
    ctx.sign_with = session
    connection.log.info("session %x: bound connection %d (%d channels)", session.session_id,
                        connection.connection_id, len(session.channel_connections()))
    return wire.encode_response(0, output)


def _begin(ctx: RequestContext) -> Channel:
    """The checks before a binding's authentication, in Samba 4.17's order; the channel whose exchange runs."""
    connection = ctx.connection
    server = connection.server
    header = ctx.header
    if header.session_id == 0:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    session = find_session(server, header.session_id)
    if session is None:
        raise SmbError(NtStatus.STATUS_USER_SESSION_DELETED)
    # Errors from here on are signed with Session.SigningKey when the request was signed ([MS-SMB2] 3.3.4.1.1;
    # a client that requires signing does not take an unsigned refusal).
    ctx.session = session
    signed = bool(header.flags & SMB2_FLAGS_SIGNED)
    verified = signed and session.signer is not None and session.signer_for(connection).verify(ctx.element)
    channel = session.channels.get(connection.connection_id)
    if channel is not None and channel.bound and (signed or session.signing_required) and not verified:
        # On a connection that is a channel of the session, the request is checked like any other with the
        # channel's key ([MS-SMB2] 3.3.5.2.4), before the binding rules (Samba alike).
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    session_algorithm = session.signing_algorithm
    connection_algorithm = signing_algorithm_in_use(connection)
    if session_algorithm >= SMB2_SIGNING_AES_GMAC and connection_algorithm != session_algorithm:
        raise SmbError(NtStatus.STATUS_REQUEST_OUT_OF_SEQUENCE)
    if connection_algorithm >= SMB2_SIGNING_AES_GMAC and session_algorithm != connection_algorithm:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    if connection.dialect < Dialect.SMB3_0 or not server.config.multi_channel:
        # [MS-SMB2] 3.3.5.5: binding exists from 3.0 on, and only where IsMultiChannelCapable.
        raise SmbError(NtStatus.STATUS_REQUEST_NOT_ACCEPTED)
    if not verified:
        # [MS-SMB2] 3.3.5.5.2: a binding request must be signed (and verify with Session.SigningKey).
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if session.dialect != connection.dialect or session.cipher_id != connection.cipher_id:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if session.state != "valid":
        raise SmbError(NtStatus.STATUS_REQUEST_NOT_ACCEPTED)
    for key, stale in list(session.channels.items()):
        if stale.connection.closed:
            session.channels.pop(key)  # a binding whose connection went away before it completed
    channel = session.channels.get(connection.connection_id)
    if channel is not None:
        if channel.bound:
            # [MS-SMB2] 3.3.5.5.2: the connection is already a channel of the session.
            raise SmbError(NtStatus.STATUS_REQUEST_NOT_ACCEPTED)
        return channel  # the next leg of a binding in progress
    if session.is_guest or session.is_anonymous or session.signer is None:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    if len(session.channels) >= MAX_CHANNELS_PER_SESSION:
        raise SmbError(NtStatus.STATUS_INSUFFICIENT_RESOURCES)
    channel = Channel(connection, exchange=server.authenticator.new_exchange(),
                      preauth_hash=connection.preauth_hash if connection.dialect == Dialect.SMB3_1_1 else None)
    session.channels[connection.connection_id] = channel
    return channel
