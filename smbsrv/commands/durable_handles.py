"""The CREATE side of durable handles ([MS-SMB2] 3.3.5.9.6, 3.3.5.9.7, 3.3.5.9.10, 3.3.5.9.12): which durable
contexts a request may combine, the reconnect (DHnC/DH2C) of a disconnected open, the replay of a DH2Q create
(SMB2_FLAGS_REPLAY_OPERATION with the same CreateGuid), and granting DHnQ/DH2Q in the response.

The state is files/durable.py; the rules follow Samba 4.17 (source3/smbd/smb2_create.c, smbXsrv_open.c).
"""

from __future__ import annotations

import logging

from smbsrv.commands import oplock_break
from smbsrv.files.durable import V1_TIMEOUT_MS, Durable, may_be_durable, v2_timeout_ms
from smbsrv.fs.path import SmbPath
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open, Session
from smbsrv.protocol.reply import GoAsync
from smbsrv.wire import create as wire
from smbsrv.wire import create_contexts as contexts_wire
from smbsrv.wire import oplock as oplock_wire
from smbsrv.wire.buffer import decode_utf16
from smbsrv.wire.constants import (
    SMB2_CREATE_DURABLE_HANDLE_RECONNECT,
    SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2,
    SMB2_CREATE_DURABLE_HANDLE_REQUEST,
    SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2,
    SMB2_CREATE_QUERY_ON_DISK_ID,
    SMB2_CREATE_REQUEST_LEASE,
    SMB2_FLAGS_REPLAY_OPERATION,
    SMB2_OPLOCK_LEVEL_BATCH,
    SMB2_OPLOCK_LEVEL_LEASE,
    Command,
)
from smbsrv.wire.create_contexts import CreateContext
from smbsrv.wire.status import NtStatus

log = logging.getLogger(__name__)

_DHNQ, _DHNC = SMB2_CREATE_DURABLE_HANDLE_REQUEST, SMB2_CREATE_DURABLE_HANDLE_RECONNECT
_DH2Q, _DH2C = SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2, SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2


def check_contexts(ctx: RequestContext, request: wire.CreateRequest) -> bool:
    """Refuse combinations the spec forbids; True when the request is a reconnect (Samba's
    smbd_smb2_create_durable_contexts and before_exec checks)."""
    contexts = request.contexts
    dhnq, dhnc, dh2q, dh2c = (contexts.get(name) for name in (_DHNQ, _DHNC, _DH2Q, _DH2C))
    if dhnc is not None and (dh2c is not None or dh2q is not None) or \
            dh2c is not None and (dhnq is not None or dh2q is not None):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)  # 3.3.5.9.7, 3.3.5.9.12
    # Contexts a reconnect may carry beside its own: the lease; and QFid, a query that changes nothing, which
    # cifs.ko sends with every open, its reconnects too. Samba 4.17 refuses any other context (its reading of
    # 3.3.5.9.7, which says nothing about them), and then cifs.ko falls back to opening the file again by
    # name, losing its byte-range locks; smbsrv answers QFid instead (tests/kernel/test_cifs_durable.py).
    allowed = (ctx.connection.dialect >= 0x0210 and SMB2_CREATE_REQUEST_LEASE in contexts) \
        + (SMB2_CREATE_QUERY_ON_DISK_ID in contexts)
    if dhnc is not None:
        contexts_wire.decode_durable_reconnect(dhnc)
        # 3.3.5.9.7: a DHnQ beside it is ignored; any other context fails the reconnect (Samba).
        if len(contexts) != 1 + (dhnq is not None) + allowed:
            raise _refused(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, f"DHnC with other contexts: {sorted(contexts)}")
        return True
    if dh2c is not None:
        contexts_wire.decode_durable_reconnect_v2(dh2c)
        if len(contexts) != 1 + allowed:
            raise _refused(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, f"DH2C with other contexts: {sorted(contexts)}")
        return True
    if dhnq is not None:
        contexts_wire.check_durable_request(dhnq)
        if dh2q is not None:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)  # 3.3.5.9.10
    if dh2q is not None:
        contexts_wire.decode_durable_request_v2(dh2q)
    return False


def _refused(status: NtStatus, why: str) -> SmbError:
    """A reconnect that fails: the DEBUG log says why (the client sees only the status)."""
    log.debug("durable reconnect refused: %s (%s)", why, status.name)
    return SmbError(status)


def _owner(session: Session) -> tuple[int, str]:
    name = session.user.name.lower() if session.user is not None else (
        "guest" if session.is_guest else "anonymous")
    return session.uid, name


# -- reconnect ------------------------------------------------------------------------------------------------

def reconnect(ctx: RequestContext, request: wire.CreateRequest) -> Open:
    """Give a disconnected durable open to this session ([MS-SMB2] 3.3.5.9.7, 3.3.5.9.12). No path name
    validation and no open execution: the open is the one the client had, with its locks and lease."""
    contexts = request.contexts
    create_guid = None
    if _DHNC in contexts:
        persistent, _ = contexts_wire.decode_durable_reconnect(contexts[_DHNC])
    else:
        ask = contexts_wire.decode_durable_reconnect_v2(contexts[_DH2C])
        persistent, create_guid = ask.file_id[0], ask.create_guid
    record = ctx.connection.server.files.durable.get(persistent)
    if record is None or not record.durable:
        raise _refused(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, "no such durable open")
    # Every field of the request but the name, the reconnect context and the lease key is ignored, the
    # RequestedOplockLevel too (smbtorture smb2.durable-open.reopen2-lease sends 0x78 with its lease).
    data = contexts.get(SMB2_CREATE_REQUEST_LEASE) if ctx.connection.dialect >= 0x0210 else None
    lease = oplock_wire.decode_lease_request(data) if data is not None else None
    _reattach(ctx, request, record, create_guid, lease)
    return record.open_


def _reattach(ctx: RequestContext, request: wire.CreateRequest, record: Durable, create_guid: bytes | None,
              lease: oplock_wire.LeaseRequest | None) -> None:
    open_ = record.open_
    session, tree = ctx.session, ctx.tree
    assert session is not None and tree is not None
    client_guid = ctx.connection.client_guid
    if (lease is not None or open_.lease is not None) and record.client_guid != client_guid:
        raise _refused(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, "another client's lease")  # a lease belongs to its client
    if create_guid is not None and (record.create_guid or bytes(16)) != create_guid:
        raise _refused(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, "another CreateGuid")  # a v1 open has the zero CreateGuid (Samba)
    if _owner(session) != record.owner:
        raise _refused(NtStatus.STATUS_ACCESS_DENIED, "another user")  # 3.3.5.9.7: Open.Session.SecurityContext differs
    if record.disconnected_at is None or tree.is_ipc or tree.share.name.lower() != record.share:
        raise _refused(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, "still connected or another share")  # still connected, or another share
    # Samba's smbd_smb2_create_durable_lease_check: the lease asked for must be the open's.
    if lease is None and open_.lease is not None or lease is not None and open_.lease is None:
        raise _refused(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, "lease asked or not as the open has it")
    if lease is not None:
        if lease.lease_key != open_.lease.key:
            raise _refused(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, "another lease key")
        if not _same_name(ctx, request, open_):
            raise _refused(NtStatus.STATUS_INVALID_PARAMETER, "the lease's file under another name")
    open_.tree = tree
    open_.session = session
    open_.connection = ctx.connection
    session.opens[open_.file_id[1]] = open_
    ctx.connection.server.files.durable.reconnected(record)
    ctx.open = open_
    ctx.created_file_id = open_.file_id
    log.debug("durable open of %s reconnected (file id %d)", "/".join(open_.path_components), open_.file_id[1])


def _same_name(ctx: RequestContext, request: wire.CreateRequest, open_: Open) -> bool:
    try:
        path = SmbPath.parse(decode_utf16(request.name), posix=open_.posix)
    except SmbError:
        return False
    if open_.posix or ctx.tree is not None and ctx.tree.share.case_sensitive:
        return tuple(path.components) == open_.path_components
    return tuple(c.lower() for c in path.components) == tuple(c.lower() for c in open_.path_components)


# -- replay (3.3.5.9.10) --------------------------------------------------------------------------------------

def replayed(ctx: RequestContext, request: wire.CreateRequest, first_attempt: bool) -> tuple[Open, int] | None:
    """A DH2Q create whose CreateGuid this client used before: the replay of that create returns its open and
    CreateAction (reconnecting it first when it was disconnected); without SMB2_FLAGS_REPLAY_OPERATION it is
    STATUS_DUPLICATE_OBJECTID, as on Samba. While that create still waits for a break, any create with its
    CreateGuid is STATUS_FILE_NOT_AVAILABLE (Samba's replay cache record without an open yet; the client
    retries). None: a new create (or the waiting create's own retry)."""
    data = request.contexts.get(_DH2Q)
    if data is None:
        return None
    ask = contexts_wire.decode_durable_request_v2(data)
    durable = ctx.connection.server.files.durable
    if first_attempt and (ctx.connection.client_guid, ask.create_guid) in durable.pending:
        raise SmbError(NtStatus.STATUS_FILE_NOT_AVAILABLE)
    record = durable.by_create_guid(ctx.connection.client_guid, ask.create_guid)
    if record is None:
        return None
    if not ctx.header.flags & SMB2_FLAGS_REPLAY_OPERATION:
        raise SmbError(NtStatus.STATUS_DUPLICATE_OBJECTID)
    open_ = record.open_
    lease = oplock_break.lease_request(ctx, request.requested_oplock_level, request.contexts)
    if record.disconnected_at is not None:
        if not record.durable:
            return None
        _reattach(ctx, request, record, ask.create_guid, lease)
        return open_, record.create_action
    if open_.session is not ctx.session:
        raise SmbError(NtStatus.STATUS_DUPLICATE_OBJECTID)
    if lease is not None and (open_.lease is None or open_.lease.key != lease.lease_key):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)  # Samba: a replay with a lease needs that same lease
    ctx.open = open_
    ctx.created_file_id = open_.file_id
    return open_, record.create_action


def pending_while(ctx: RequestContext, request: wire.CreateRequest, waiting: GoAsync) -> GoAsync:
    """A DH2Q create that goes async (it waits for a break): its CreateGuid is pending until it is answered,
    however that ends (smbtorture smb2.replay.dhv2-pending*-sane)."""
    data = request.contexts.get(_DH2Q)
    if data is None:
        return waiting
    key = (ctx.connection.client_guid, contexts_wire.decode_durable_request_v2(data).create_guid)
    pending = ctx.connection.server.files.durable.pending
    pending.add(key)

    def ended() -> None:
        # Not a finally clause of the completion: a CANCEL read right behind the CREATE (or a LOGOFF, a lost
        # connection in that turn) cancels its task before the first step, and the completion never starts.
        if waiting.ended is not None:
            waiting.ended()
        pending.discard(key)

    def withdraw() -> None:  # refused before it went async (too many async requests): `ended` never runs
        if waiting.withdraw is not None:
            waiting.withdraw()
        pending.discard(key)

    return GoAsync(waiting.completion, ended, holds_chain=waiting.holds_chain, withdraw=withdraw)


# -- granting (3.3.5.9.6, 3.3.5.9.10) -------------------------------------------------------------------------

def reply_contexts(ctx: RequestContext, request: wire.CreateRequest, open_: Open,
                   action: int) -> list[CreateContext]:
    """Grant what the request asks (a batch oplock or an H lease on a regular file; persistent never) and
    return the response contexts: DHnQ's 8 reserved bytes, DH2Q's Timeout and Flags."""
    contexts = request.contexts
    durable = ctx.connection.server.files.durable
    record = durable.of(open_)
    if _DHNC in contexts or _DH2C in contexts:
        # Samba answers a DHnQ that came with DHnC (3.3.5.9.7 ignores it otherwise); DH2C gets no context.
        if _DHNQ in contexts and record is not None and record.durable:
            return [CreateContext(_DHNQ, contexts_wire.encode_durable_response())]
        return []
    session, tree = ctx.session, ctx.tree
    assert session is not None and tree is not None
    v2 = contexts.get(_DH2Q)
    if v2 is not None:
        if record is None:  # a new open (a replay finds its record)
            ask = contexts_wire.decode_durable_request_v2(v2)
            # Every DH2Q create is remembered for replays, durable or not ([MS-SMB2] Open.IsReplayEligible).
            record = Durable(open_, ctx.connection.client_guid, ask.create_guid, _owner(session),
                             tree.share.name.lower(), action, durable=may_be_durable(open_),
                             timeout_ms=v2_timeout_ms(ask.timeout_ms))
            durable.remember(record)
        # A replay answers DH2Q by what the replayed request could have been granted (BATCH or a lease), not
        # by the open's state (Samba 4.17; smbtorture smb2.replay.replay-dhv2-oplock2).
        replay = record.open_ is open_ and bool(ctx.header.flags & SMB2_FLAGS_REPLAY_OPERATION)
        if record.durable and (not replay or request.requested_oplock_level in (SMB2_OPLOCK_LEVEL_BATCH,
                                                                                SMB2_OPLOCK_LEVEL_LEASE)):
            return [CreateContext(_DH2Q, contexts_wire.encode_durable_response_v2(record.timeout_ms, 0))]
        return []
    if _DHNQ in contexts and record is None and may_be_durable(open_):
        durable.remember(Durable(open_, ctx.connection.client_guid, None, _owner(session), tree.share.name.lower(),
                                 action, durable=True, timeout_ms=V1_TIMEOUT_MS))
        return [CreateContext(_DHNQ, contexts_wire.encode_durable_response())]
    return []


# -- ChannelSequence ([MS-SMB2] 3.3.5.2.10) -------------------------------------------------------------------

_MODIFYING = frozenset((Command.WRITE, Command.SET_INFO, Command.IOCTL))


def request_on(ctx: RequestContext, open_: Open) -> None:
    """Every request that acts on an open (the dispatcher's and IOCTL's lookups): its ChannelSequence is
    checked, and the open's CREATE can no longer be replayed (Samba's SMBXSRV_OPEN_NEED_REPLAY_CACHE;
    smbtorture smb2.replay.replay6)."""
    connection = ctx.connection
    # The sequence is nearly always the open's own: only a change needs the full check.
    if connection.dialect >= 0x0300 and ctx.header.channel_sequence & 0xFFFF != open_.channel_sequence:
        check_channel_sequence(ctx, open_)
    durable = connection.server.files.durable
    if durable.replayable:
        durable.used(open_)


def check_channel_sequence(ctx: RequestContext, open_: Open) -> None:
    """A request on `open_` from a 3.x client: a newer ChannelSequence (16-bit, wrapping) becomes the open's;
    an older one fails WRITE, SET_INFO and IOCTL with STATUS_FILE_NOT_AVAILABLE, so that a request replayed
    on another channel after a failover cannot overwrite a later one. As Samba 4.17's
    smbd_smb2_request_dispatch_update_counts, without its count of requests still in flight on an older
    sequence (every request here is answered before the next on the same open is looked at, except the few
    that go async)."""
    sequence = ctx.header.channel_sequence & 0xFFFF
    difference = (sequence - open_.channel_sequence) & 0xFFFF
    if difference == 0:
        return
    if difference <= 0x7FFF:
        open_.channel_sequence = sequence
    elif ctx.header.command in _MODIFYING:
        raise SmbError(NtStatus.STATUS_FILE_NOT_AVAILABLE)
