"""SESSION_SETUP ([MS-SMB2] 3.3.5.5): authentication legs, key derivation, re-authentication."""

from __future__ import annotations

from smbsrv.auth.authenticator import AuthError
from smbsrv.commands import session_bind
from smbsrv.commands.logoff import destroy_session
from smbsrv.crypto import encryption, kdf, preauth, signing
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Channel, Session
from smbsrv.protocol.reply import Reply
from smbsrv.wire import session_setup as wire
from smbsrv.wire.constants import (
    SMB2_FLAGS_SIGNED,
    SMB2_NEGOTIATE_SIGNING_REQUIRED,
    SMB2_SESSION_FLAG_BINDING,
    SMB2_SESSION_FLAG_ENCRYPT_DATA,
    SMB2_SESSION_FLAG_IS_GUEST,
    SMB2_SESSION_FLAG_IS_NULL,
    Dialect,
)
from smbsrv.wire.status import NtStatus


def handle(ctx: RequestContext, request: wire.SessionSetupRequest) -> bytes | Reply:
    connection = ctx.connection
    if request.flags & SMB2_SESSION_FLAG_BINDING:
        return session_bind.handle(ctx, request)
    session = _session_for(ctx)
    ctx.session = session
    if connection.dialect == Dialect.SMB3_1_1 and session.preauth_hash is not None:
        session.preauth_hash = preauth.update(session.preauth_hash, ctx.element)
    try:
        output = session.exchange.step(request.security_buffer)
    except AuthError as exc:
        connection.log.info("logon failure from %s: %s", connection.peer, exc)
        session.exchange = None
        if session.state == "valid":
            # A failed re-authentication ends the session and its opens, as Samba 4.17 does: the next request
            # gets STATUS_USER_SESSION_DELETED.
            destroy_session(connection, session)
        else:
            connection.sessions.pop(session.session_id, None)
        # LOGON_FAILURE for a refused logon; a malformed token has its own status (INVALID_PARAMETER).
        raise SmbError(exc.status) from None
    if not session.exchange.complete:
        ctx.preauth_session = session
        return Reply(wire.encode_response(0, output), status=NtStatus.STATUS_MORE_PROCESSING_REQUIRED)
    result = session.exchange.result
    session.exchange = None
    if session.state == "valid":
        return _reauthenticated(ctx, session, result, output)
    if request.previous_session_id and request.previous_session_id != session.session_id:
        _expire_previous(ctx, request.previous_session_id, result.user)
    return _complete_logon(ctx, session, request, result, output)


def _session_for(ctx: RequestContext) -> Session:
    connection = ctx.connection
    header = ctx.header
    if header.session_id == 0:
        if len(connection.sessions) >= connection.server.config.max_sessions_per_connection:
            raise SmbError(NtStatus.STATUS_INSUFFICIENT_RESOURCES)
        session = Session(session_id=connection.server.allocate_session_id())
        if connection.dialect == Dialect.SMB3_1_1:
            session.preauth_hash = connection.preauth_hash
        connection.sessions[session.session_id] = session
        header.session_id = session.session_id
    else:
        session = connection.sessions.get(header.session_id)  # type: ignore[assignment]
        if session is None:
            _sign_refusal_of_foreign_session(ctx)
            raise SmbError(NtStatus.STATUS_USER_SESSION_DELETED)
        if session.state == "valid" and session.exchange is None:
            # [MS-SMB2] 3.3.5.2.4 as for every request: a signed re-authentication must verify, an unsigned
            # one is refused only where the session requires signing (Samba 4.17 the same; smbtorture
            # smb2.session.reauth* send it unsigned to a server that only desires signing). On a bound
            # channel the channel's key verifies.
            signer = session.signer_for(connection)
            if signer is not None:
                # The refusal is signed as any answer to a signed request (a client that requires signing
                # drops an unsigned one; smbtorture bind_negative_* re-authenticate on a bound channel).
                ctx.session = session
                if header.flags & SMB2_FLAGS_SIGNED:
                    if not signer.verify(ctx.element):
                        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
                elif session.signing_required:
                    raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
            if connection.dialect == Dialect.SMB3_1_1:
                session.preauth_hash = connection.preauth_hash
    if session.exchange is None:
        session.exchange = connection.server.authenticator.new_exchange(reauthentication=session.state == "valid")
    return session


def _complete_logon(ctx: RequestContext, session: Session, request: wire.SessionSetupRequest, result,
                    output: bytes) -> bytes:
    connection = ctx.connection
    server = connection.server
    config = server.config
    session_flags = 0
    if result.is_anonymous:
        session_flags = SMB2_SESSION_FLAG_IS_NULL
    elif result.is_guest:
        session_flags = SMB2_SESSION_FLAG_IS_GUEST
    if session_flags and (config.signing == "required" or config.encryption == "required"):
        # A guest or anonymous session has no key to sign with, so it cannot meet a signing requirement.
        connection.sessions.pop(session.session_id, None)
        raise SmbError(NtStatus.STATUS_LOGON_FAILURE)
    _take_identity(session, result, server)
    session.dialect = connection.dialect
    session.signing_algorithm = session_bind.signing_algorithm_in_use(connection)
    session.cipher_id = connection.cipher_id
    session.channels = {connection.connection_id: Channel(connection, bound=True)}
    if result.session_key and not session_flags:
        keys = kdf.derive_session_keys(connection.dialect, result.session_key, session.preauth_hash,
                                       connection.cipher_id)
        session.session_key = result.session_key
        session.application_key = keys.application_key
        session.signer = signing.make_signer(connection.dialect, connection.signing_algorithm, keys.signing_key)
        if connection.cipher_id and keys.encryption_key and keys.decryption_key:
            session.cipher = encryption.make_cipher(connection.cipher_id, keys.encryption_key,
                                                    keys.decryption_key)
        if config.encryption == "required":
            if session.cipher is None:
                connection.sessions.pop(session.session_id, None)
                raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
            session.encrypt_data = True
            session_flags |= SMB2_SESSION_FLAG_ENCRYPT_DATA
        session.signing_required = (config.signing == "required"
                                    or bool(request.security_mode & SMB2_NEGOTIATE_SIGNING_REQUIRED))
        if connection.dialect >= Dialect.SMB3_0 or session.signing_required:
            ctx.sign_with = session
    session.state = "valid"
    connection.log.info("session %x: %s logged on%s", session.session_id,
                        result.user.name if result.user else "anonymous",
                        " as guest" if session.is_guest else "")
    return wire.encode_response(session_flags, output)


def _take_identity(session: Session, result, server) -> None:
    session.user = result.user
    session.is_guest = result.is_guest
    session.is_anonymous = result.is_anonymous
    if result.user is not None and not (result.is_guest or result.is_anonymous):
        session.uid, session.gid, session.groups = result.user.uid, result.user.gid, tuple(result.user.groups)
    else:
        session.uid, session.gid = server.guest_identity
        session.groups = ()


def _reauthenticated(ctx: RequestContext, session: Session, result, output: bytes) -> bytes:
    """[MS-SMB2] 3.3.5.5.3 on a session that is already valid: the keys, SessionId, tree connects and opens
    stay. The spec does not tie re-authentication to the first user, and Samba 4.17
    (smbd_smb2_reauth_generic_return) takes whatever identity the new exchange proved, anonymous included:
    smbtorture smb2.session.reauth2/3 re-authenticate as anonymous, use their open handle, and re-authenticate
    as the first user again. The session then acts as the new identity for every later request; handles
    keep the access they were granted when opened ([MS-SMB2] 3.3.5.9: access is checked at open time). The
    response carries no SessionFlags, as Samba's."""
    previous = session.user.name if session.user is not None else "anonymous"
    _take_identity(session, result, ctx.connection.server)
    now = result.user.name if result.user is not None and not result.is_anonymous else "anonymous"
    if now != previous:
        ctx.connection.log.info("session %x: re-authenticated as %s (was %s)", session.session_id, now, previous)
    return wire.encode_response(0, output)


def _sign_refusal_of_foreign_session(ctx: RequestContext) -> None:
    """A SESSION_SETUP without BINDING names a session of another connection: STATUS_USER_SESSION_DELETED
    ([MS-SMB2] 3.3.5.5). When the request is signed with that session's key, the answer is signed too, as
    Samba's is (a client that requires signing drops an unsigned answer; smbtorture bind_negative_*)."""
    if not ctx.header.flags & SMB2_FLAGS_SIGNED:
        return
    session = session_bind.find_session(ctx.connection.server, ctx.header.session_id)
    if session is not None and session.signer is not None and session.signer.verify(ctx.element):
        ctx.session = session


def _expire_previous(ctx: RequestContext, previous_id: int, user) -> None:
    """[MS-SMB2] 3.3.5.5.3: PreviousSessionId names a session of the same user that is now dead (a client that
    reconnected); close it and its opens."""
    for other in list(ctx.connection.server.connections):
        old = other.sessions.get(previous_id)
        if old is None or old.user is None or user is None:
            continue
        if old.user.name.lower() == user.name.lower():
            destroy_session(other, old)
