"""One client connection: from a received message to the buffers to send, with no I/O of its own.

The transport feeds whole messages (the 4-byte Direct TCP prefix removed) to `Connection.handle_message` and
sends what it returns. Everything between lives here: SMB1 upgrade, compound splitting ([MS-SMB2] 3.3.5.2.7),
message-id and credit checks (3.3.5.2.3), signature checks (3.3.5.2.4), related-operation inheritance, preauth
hashing (3.3.5.4, 3.3.5.5) and response assembly. Interim and final responses of async requests leave through
the `send` callback the transport provides.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import itertools
import logging
import struct
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smbsrv.crypto import preauth
from smbsrv.crypto.encryption import parse_transform_header
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.credits import CreditWindow
from smbsrv.protocol.errors import ProtocolViolation, SmbError
from smbsrv.protocol.reply import FileRange, GoAsync, Reply
from smbsrv.wire import error as error_wire
from smbsrv.wire.constants import (
    SMB1_PROTOCOL_ID,
    SMB2_FLAGS_ASYNC_COMMAND,
    SMB2_FLAGS_RELATED_OPERATIONS,
    SMB2_FLAGS_SERVER_TO_REDIR,
    SMB2_FLAGS_SIGNED,
    SMB2_PROTOCOL_ID,
    SMB2_TRANSFORM_PROTOCOL_ID,
    Command,
)
from smbsrv.wire.header import HEADER_SIZE, Header, decode_header, encode_response_header
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.crypto.signing import RunningSignature, Signer
    from smbsrv.protocol.objects import Session
    from smbsrv.state import ServerState

log = logging.getLogger(__name__)

Buffers = list[bytes | bytearray | memoryview | FileRange]
_NBSS = struct.Struct(">I")



@dataclass(frozen=True, slots=True)
class Handlers:
    """What the protocol core calls into, passed in by the edge (dispatch.HANDLERS) so that protocol/ imports no
    command module: the dispatcher for SMB2 requests, and the SMB1 NEGOTIATE that may open a connection;
    `end_of_message` runs once every request of a message has been dispatched (the dispatcher's requests keep
    their user's identity until then)."""

    dispatch: Callable[[RequestContext], Awaitable[Any]]
    smb1_negotiate: Callable[[Connection, memoryview], bytes]
    end_of_message: Callable[[], None] = lambda: None
    # Runs an async request's completion (GoAsync) with each of its steps as the session's user, as the
    # dispatcher runs a handler's coroutine: the event loop itself runs as the server.
    acting_as: Callable[[Coroutine[Any, Any, Any], Session], Awaitable[Any]] = lambda coroutine, _session: coroutine


@dataclass(slots=True)
class _Pending:
    """A response built but not yet chained, signed and hashed."""

    response: bytearray
    payload: memoryview | bytes | bytearray | None
    signer: Any
    hash_into_connection: bool
    hash_session: Session | None


class Connection:
    """Per-connection protocol state ([MS-SMB2] 3.3.1.7)."""

    _ids = itertools.count(1)

    def __init__(self, server: ServerState, peer: str, send: Callable[[Buffers], None], handlers: Handlers) -> None:
        self.server = server
        self.handlers = handlers
        self.peer = peer
        self.local_address: tuple[str, int] | None = None  # (host, port) of our end; set by the transport
        self.send = send
        self.connection_id = next(self._ids)
        self.log = logging.LoggerAdapter(log, {"conn": self.connection_id})
        self.credits = CreditWindow(server.config.max_credits)
        self.negotiated = False
        self.dialect = 0
        self.client_guid = b""
        self.client_capabilities = 0
        self.client_security_mode = 0
        self.client_dialects: tuple[int, ...] = ()
        self.server_security_mode = 0
        self.server_capabilities = 0
        self.signing_algorithm: int | None = None
        self.cipher_id = 0
        self.posix_extensions = False
        self.supports_multi_credit = False
        self.preauth_hash: bytes | None = None
        self.sessions: dict[int, Session] = {}
        self.async_requests: dict[int, asyncio.Task[Any]] = {}
        self._async_ids = itertools.count(1)
        self._answering: set[asyncio.Task[Any]] = set()  # strong references: the loop keeps only weak ones
        self.closed = False

    # -- message level -------------------------------------------------------------------------------------

    async def handle_message(self, message: bytearray | memoryview,
                             streamed_signature: tuple[Signer, bytes] | None = None) -> Buffers | None:
        """Process one transport message; return the framed buffers to send (None: nothing to send).

        `streamed_signature` is what begin_streamed_signature() worked out while the message arrived.
        Raises ProtocolViolation when the connection must be dropped.
        """
        view = memoryview(message)
        protocol_id = bytes(view[:4])
        if protocol_id == SMB2_PROTOCOL_ID:
            return await self._handle_smb2(view, streamed_signature=streamed_signature)
        if protocol_id == SMB1_PROTOCOL_ID and not self.negotiated:
            return self._frame([self.handlers.smb1_negotiate(self, view)])
        if protocol_id == SMB2_TRANSFORM_PROTOCOL_ID:
            return await self._handle_transform(view)
        raise ProtocolViolation(f"unknown protocol id {protocol_id.hex()}")

    def begin_streamed_signature(self, header: memoryview) -> tuple[Signer, RunningSignature] | None:
        """For a large message of which only the 64-byte header has arrived: if it is a single signed request
        of a session with a signing key, start its signature so the transport can feed the rest as it comes in.
        Nothing is decided here: the request is checked as usual once it is complete."""
        if header[:4] != SMB2_PROTOCOL_ID:
            return None
        try:
            fields = decode_header(header)
        except ProtocolViolation:
            return None  # refused once the message is complete
        if fields.next_command or not fields.flags & SMB2_FLAGS_SIGNED:
            return None
        session = self.sessions.get(fields.session_id)
        signer = session.signer_for(self) if session is not None else None
        if signer is None:
            return None
        return signer, signer.begin(header)

    async def _handle_transform(self, view: memoryview) -> Buffers | None:
        """[MS-SMB2] 3.3.5.2.1.1: decrypt with the session's key; the answer goes back in one transform."""
        if not self.negotiated or self.dialect < 0x0300 or len(view) < 52:
            raise ProtocolViolation("unexpected transform message")
        session = self.sessions.get(parse_transform_header(view).session_id)
        if session is None or session.cipher is None:
            raise ProtocolViolation("transform for a session without keys")
        _, plaintext = session.cipher.decrypt(view)
        if plaintext[:4] != SMB2_PROTOCOL_ID:
            raise ProtocolViolation("transform does not carry an SMB2 message")
        return await self._handle_smb2(memoryview(plaintext), encrypted_by=session)

    def _encrypt(self, session: Session, buffers: Buffers) -> Buffers:
        message = b"".join(buffers[1:])
        transform = session.cipher.encrypt(session.session_id, message)
        return [_NBSS.pack(len(transform)), transform]

    async def _handle_smb2(self, view: memoryview, encrypted_by: Session | None = None,
                           streamed_signature: tuple[Signer, bytes] | None = None,
                           previous: RequestContext | None = None,
                           create_error: NtStatus | None = None) -> Buffers | None:
        try:
            return await self._answer_smb2(view, encrypted_by, streamed_signature, previous, create_error)
        finally:
            self.handlers.end_of_message()

    async def _answer_smb2(self, view: memoryview, encrypted_by: Session | None,
                           streamed_signature: tuple[Signer, bytes] | None, previous: RequestContext | None,
                           create_error: NtStatus | None) -> Buffers | None:
        """`previous` and `create_error` carry a compound's state into the rest of its chain when a CREATE in
        it went async (see _continue_after)."""
        dispatch = self.handlers.dispatch
        responses: list[_Pending] = []
        position = 0
        elements = 0
        # A failed CREATE fails the rest of its related chain with its status: they have no FileId to act on
        # (Samba's compound_create_err; Windows behaves alike). Other failures do not cascade.
        while True:
            if len(view) - position < HEADER_SIZE:
                raise ProtocolViolation("truncated SMB2 header")
            header = decode_header(view, position)
            elements += 1
            if elements > self.server.config.max_compound_requests:
                raise ProtocolViolation("compound too long")
            next_command = header.next_command
            if next_command:
                if next_command % 8 or next_command < HEADER_SIZE or position + next_command > len(view):
                    raise ProtocolViolation("bad NextCommand")
                element = view[position:position + next_command]
            else:
                element = view[position:]
            related = bool(header.flags & SMB2_FLAGS_RELATED_OPERATIONS)
            if header.command != Command.CANCEL:
                self._check_message_id(header)
            if header.command == Command.CANCEL:
                self._handle_cancel(header)
                if not next_command:
                    break
                position += next_command
                continue
            ctx = RequestContext(self, header, element, encrypted=encrypted_by is not None)
            if not next_command and position == 0:
                ctx.streamed_signature = streamed_signature
            if related:
                self._inherit(ctx, previous)
            else:
                create_error = None
            body: bytes | Reply
            status: NtStatus
            held = False  # went async, and the related requests after it wait for its answer
            try:
                if related and not self._live_session(ctx.header.session_id):
                    # [MS-SMB2] 3.3.5.2.7.2: a related request whose inherited session is unusable (it starts
                    # the message, or the request before it named no session that exists) fails with
                    # STATUS_INVALID_PARAMETER; an unrelated request after it starts a new chain
                    # (smbtorture smb2.compound.invalid1/invalid2, Windows and Samba alike).
                    raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
                if related and create_error is not None:
                    raise SmbError(create_error, b"", wrap_in_context=False)
                body = await dispatch(ctx)
                status = body.status if isinstance(body, Reply) else NtStatus.STATUS_SUCCESS
            except SmbError as exc:
                status = exc.status
                body = error_wire.encode_error_response(exc.error_data, dialect=self.dialect,
                                                        wrap_in_context=exc.wrap_in_context)
            except GoAsync as pending:
                if next_command and not pending.holds_chain:
                    # [MS-SMB2] 3.3.5.2.7: "The server MAY<262> fail requests in a compound chain which require
                    # asynchronous processing." <262>: "In Windows Vista and later, and Windows Server 2008 and
                    # later, when an operation in a compound request requires asynchronous processing,
                    # Windows-based servers fail them with STATUS_INTERNAL_ERROR except for the following two
                    # cases: when a create request in the compound request triggers an oplock break, or when
                    # the operation is last in the compound request." A CHANGE_NOTIFY or a blocking LOCK
                    # followed by any request (related or not: Samba 4.17 tests the same, "req->in.vector_count
                    # > req->current_idx + SMBD_SMB2_NUM_IOV_PER_REQ") would hold the compound until a change
                    # or an unlock that may never come: it fails at once, with nothing left behind, and the
                    # rest of the chain runs as usual (smbtorture smb2.compound.interim2). Samba 4.17 cancels
                    # such a request instead (a CHANGE_NOTIFY answers STATUS_CANCELLED). Exempt
                    # (GoAsync.holds_chain): a wait with an end in sight, on an oplock or lease break (a
                    # CREATE; a rename, which Windows completes in the middle of a compound too, smbtorture
                    # smb2.compound_async.rename_middle of Samba 4.22) or on a placeholder's hydration (cifs.ko
                    # compounds CREATE + SET_INFO(EndOfFile) + CLOSE for truncate(2) of a path, macOS CREATE +
                    # READ + CLOSE: they must not fail because the data is with a provider, docs/hsm.md).
                    status, body = self._refused(pending, NtStatus.STATUS_INTERNAL_ERROR)
                else:
                    try:
                        body = self._start_async(ctx, pending)
                        status = NtStatus.STATUS_PENDING
                        held = pending.holds_chain
                    except SmbError as exc:
                        status, body = self._refused(pending, exc.status)
            except ProtocolViolation:
                raise
            except Exception as exc:  # noqa: BLE001 - a handler bug (logged): answer it, never drop the connection
                status = _unexpected(self.log, exc, _command_name(header.command))
                body = error_wire.encode_error_response(b"", dialect=self.dialect, wrap_in_context=False)
            responses.append(self._build_response(ctx, status, body))
            if log.isEnabledFor(logging.DEBUG):
                self.log.debug("%s mid=%d charge=%d req=%d -> %s", _command_name(header.command),
                               header.message_id, header.credit_charge, header.credit_request, status.name)
            if header.command == Command.CREATE:
                create_error = None if status == NtStatus.STATUS_SUCCESS else status
            previous = ctx
            if not next_command:
                break
            position += next_command
            if held and decode_header(view, position).flags & SMB2_FLAGS_RELATED_OPERATIONS:
                # A request waiting for a break or a hydration inside a compound (see above): the related
                # requests after it act on its handle, so they run once it is answered (Samba does so for a
                # CREATE; [MS-SMB2] 3.3.5.2.7, <262>). Unrelated ones go on at once.
                self._continue_after(ctx, bytes(view[position:]), encrypted_by)
                break
        if not responses:
            return None
        if encrypted_by is not None:
            return self._encrypt(encrypted_by, self._assemble(responses, encrypting=True))
        return self._assemble(responses)

    # -- checks --------------------------------------------------------------------------------------------

    def _check_message_id(self, header: Header) -> None:
        charge = header.credit_charge
        if self.dialect in (0, 0x0202) or not self.supports_multi_credit:
            charge = 1
        self.credits.consume(header.message_id, charge)

    def _inherit(self, ctx: RequestContext, previous: RequestContext | None) -> None:
        """[MS-SMB2] 3.3.5.2.7.2: a related request takes the session, tree and file of the one before it,
        whatever its own header and FileId say (the carried values are ignored, as by Windows and Samba).

        A session id the previous request could not use is not passed on: the chain inherits no session
        (Samba's last_session_id becomes 0), and neither does a related request that starts the message."""
        header = ctx.header
        if previous is None:
            header.session_id = 0
            return
        header.session_id = previous.header.session_id if self._live_session(previous.header.session_id) else 0
        header.tree_id = previous.header.tree_id
        # Also for the answer of a request that never reaches dispatch (a failed CREATE before it): its
        # response is signed like the others of the chain.
        ctx.session = previous.session
        # The handle the chain acts on: the one CREATE made, else the one the previous request used; the
        # dispatcher substitutes it for any FileId the request carries.
        ctx.created_file_id = previous.created_file_id or (
            previous.open.file_id if previous.open is not None else None)

    def _live_session(self, session_id: int) -> bool:
        """Whether a session of this id exists and is usable or expired (an expired one answers
        STATUS_NETWORK_SESSION_EXPIRED, as for an unrelated request)."""
        session = self.sessions.get(session_id)
        return session is not None and session.state in ("valid", "expired")

    def cancel_creates(self, session: Session, tree: Any = None) -> None:
        """The session (or its tree connect `tree`) ends: its CREATEs still waiting (for a break) on this
        connection end first, with STATUS_CANCELLED, before the opens of [MS-SMB2] 3.3.5.6 and 3.3.5.8 are
        closed, as Samba 4.17's LOGOFF and TREE_DISCONNECT cancel their pending requests
        (smbXsrv_session.c smb2srv_session_shutdown_send, smb2_tcon.c smbd_smb2_tdis_send). Otherwise such a
        CREATE completes afterwards into an open of a session or tree that is gone, which nothing ever closes:
        its descriptor and its share mode stay for the server's lifetime. A pending LOCK or CHANGE_NOTIFY
        needs nothing here: it ends with its handle (STATUS_RANGE_NOT_LOCKED, STATUS_NOTIFY_CLEANUP, Samba's
        answers too)."""
        for task in list(self.async_requests.values()):
            if getattr(task, "smb_command", None) == Command.CREATE and \
                    getattr(task, "smb_session", None) is session and \
                    (tree is None or getattr(task, "smb_tree", None) is tree):
                task.cancel()

    def _handle_cancel(self, header: Header) -> None:
        """CANCEL has no response of its own; the cancelled request answers STATUS_CANCELLED."""
        key = header.async_id if header.is_async else None
        for async_id, task in list(self.async_requests.items()):
            if key is None and getattr(task, "smb_message_id", None) == header.message_id or key == async_id:
                task.cancel()

    # -- async ---------------------------------------------------------------------------------------------

    def _continue_after(self, ctx: RequestContext, rest: bytes, encrypted_by: Session | None) -> None:
        """Process the rest of a compound (`rest`, copied out of the receive buffer) once `ctx`'s async
        request has sent its final response; their responses go out together."""
        answer = ctx.async_answer
        assert answer is not None

        async def go_on() -> None:
            try:
                status = await answer
            except BaseException:  # noqa: BLE001 - cancelled with the connection
                return
            if self.closed:
                return
            # Only a failed CREATE fails the related requests after it (_answer_smb2).
            failed = status != NtStatus.STATUS_SUCCESS and ctx.header.command == Command.CREATE
            try:
                buffers = await self._handle_smb2(memoryview(rest), encrypted_by, previous=ctx,
                                                  create_error=status if failed else None)
            except ProtocolViolation as exc:
                self.log.warning("rest of an async compound refused: %s", exc)
                return
            if buffers:
                self.send(buffers)

        task = asyncio.get_running_loop().create_task(go_on())
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    def _refused(self, pending: GoAsync, status: NtStatus) -> tuple[NtStatus, bytes]:
        """A request that may not go async is answered `status` now; what its handler set up for the wait (a
        watch, a queued waiter) is undone, as its completion never runs."""
        if pending.withdraw is not None:
            pending.withdraw()
        if pending.refused is not None:
            pending.refused(status)
        return status, error_wire.encode_error_response(b"", dialect=self.dialect, wrap_in_context=False)

    def _start_async(self, ctx: RequestContext, pending: GoAsync) -> bytes:
        if len(self.async_requests) >= self.server.config.max_async_requests_per_connection:
            raise SmbError(NtStatus.STATUS_INSUFFICIENT_RESOURCES)
        async_id = next(self._async_ids)
        ctx.header.async_id = async_id
        ctx.header.flags |= SMB2_FLAGS_ASYNC_COMMAND
        loop = asyncio.get_running_loop()
        # CANCEL cancels `work`, and a separate task answers: a CANCEL read in the same turn as the request
        # (both in one segment) cancels `work` before its first step, and a coroutine cancelled before it
        # starts never reaches its own except clauses; awaiting the cancelled task does raise, here.
        work = loop.create_task(self._as_requester(ctx.session, pending.completion))
        if pending.ended is not None:
            ended = pending.ended
            work.add_done_callback(lambda _work: ended())

        async def answer() -> NtStatus:
            body: bytes | Reply
            try:
                body = await work
                status = body.status if isinstance(body, Reply) else NtStatus.STATUS_SUCCESS
            except SmbError as exc:
                status, body = exc.status, error_wire.encode_error_response(
                    exc.error_data, dialect=self.dialect, wrap_in_context=exc.wrap_in_context)
            except asyncio.CancelledError:
                status = NtStatus.STATUS_CANCELLED
                body = error_wire.encode_error_response(b"", dialect=self.dialect, wrap_in_context=False)
            except Exception as exc:  # noqa: BLE001 - a handler bug, logged by _unexpected
                status = _unexpected(self.log, exc, f"async {_command_name(ctx.header.command)}")
                body = error_wire.encode_error_response(b"", dialect=self.dialect, wrap_in_context=False)
            finally:
                self.async_requests.pop(async_id, None)
            if not self.closed:
                encrypting = ctx.encrypted and ctx.session is not None and ctx.session.cipher is not None
                buffers = self._assemble([self._build_response(ctx, status, body)], encrypting=encrypting)
                if encrypting:
                    buffers = self._encrypt(ctx.session, buffers)
                self.send(buffers)
            return status

        work.smb_message_id = ctx.header.message_id  # type: ignore[attr-defined]
        work.smb_session = ctx.session  # type: ignore[attr-defined]
        work.smb_tree = ctx.tree  # type: ignore[attr-defined]
        work.smb_command = ctx.header.command  # type: ignore[attr-defined]
        self.async_requests[async_id] = work
        self._answering.add(answer_task := loop.create_task(answer()))
        answer_task.add_done_callback(self._answering.discard)
        ctx.async_answer = answer_task
        return error_wire.encode_error_response(b"", dialect=self.dialect, wrap_in_context=False)

    async def _as_requester(self, session: Session | None,
                            completion: Callable[[], Awaitable[bytes | Reply]]) -> bytes | Reply:
        """An async request's completion, each step as the user whose request it answers, whatever the
        command: none has to remember to switch. It is made here, inside the task, so that a request cancelled
        before the task's first step leaves no coroutine that was never awaited."""
        work = completion()
        if session is not None and inspect.iscoroutine(work):
            work = self.handlers.acting_as(work, session)
        return await work

    # -- responses -----------------------------------------------------------------------------------------

    def _build_response(self, ctx: RequestContext, status: NtStatus, body: bytes | Reply) -> _Pending:
        header = ctx.header
        payload = None
        if isinstance(body, Reply):
            payload = body.payload
            body = body.body
        flags = SMB2_FLAGS_SERVER_TO_REDIR | (header.flags & (SMB2_FLAGS_RELATED_OPERATIONS |
                                                             SMB2_FLAGS_ASYNC_COMMAND))
        if status == NtStatus.STATUS_USER_SESSION_DELETED:
            # No key to sign with, but the SIGNED flag of a signed request is echoed, as Samba does (it echoes
            # every request flag): a client that requires signing (Samba's smbXcli) takes this status unsigned
            # only with the flag set; a request naming another connection's session (multichannel) gets it.
            flags |= header.flags & SMB2_FLAGS_SIGNED
        # The final response of an async request grants nothing: the interim one did ([MS-SMB2] 3.3.4.2).
        final_async = header.is_async and status != NtStatus.STATUS_PENDING
        granted = 0 if final_async else self.credits.grant(header.credit_charge, header.credit_request)
        response = bytearray(HEADER_SIZE + len(body))
        encode_response_header(response, 0, status=status, command=header.command,
                               credit_charge=header.credit_charge, credits=granted, flags=flags,
                               next_command=0, message_id=header.message_id, tree_id=header.tree_id,
                               async_id=header.async_id, session_id=header.session_id)
        response[HEADER_SIZE:] = body
        signer = self.response_signer(ctx, status)
        hash_session = ctx.preauth_session if status == NtStatus.STATUS_MORE_PROCESSING_REQUIRED else None
        return _Pending(response, payload, signer, header.command == Command.NEGOTIATE, hash_session)

    # -- signing -------------------------------------------------------------------------------------------

    def message_signer(self, session: Session | None, *, request_signed: bool = False, logged_on: bool = False,
                       encrypted: bool = False, interim: bool = False) -> Signer | None:
        """The one answer to "is this message signed, and with which key" for everything this connection sends
        (responses, the READ handler's choice between sendfile and memory, unsolicited breaks); None: unsigned.

        - Encrypted messages are not signed: the transform's AEAD tag covers them ([MS-SMB2] 3.3.4.1.1).
        - Interim responses (STATUS_PENDING) are not signed (Windows and Samba).
        - The SESSION_SETUP response that completes a 3.x or signing-required logon is signed with the new
          session's key (`logged_on`, [MS-SMB2] 3.3.5.5.3).
        - Otherwise a message is signed when the request was, or when the session requires signing.
        The key is this connection's channel's (Session.signer_for)."""
        if encrypted or interim or session is None or session.signer is None:
            return None
        if logged_on or request_signed or session.signing_required:
            return session.signer_for(self)  # type: ignore[no-any-return]
        return None

    def response_signer(self, ctx: RequestContext, status: NtStatus = NtStatus.STATUS_SUCCESS) -> Signer | None:
        """message_signer() for the response to `ctx` with `status`."""
        return self.message_signer(ctx.sign_with or ctx.session,
                                   request_signed=bool(ctx.header.flags & SMB2_FLAGS_SIGNED),
                                   logged_on=ctx.sign_with is not None, encrypted=ctx.encrypted,
                                   interim=status == NtStatus.STATUS_PENDING)

    def _assemble(self, responses: list[_Pending], encrypting: bool = False) -> Buffers:
        """Chain the responses of one message: pad each to 8 bytes, set NextCommand, then sign (the signature
        covers NextCommand and the padding) and fold preauth hashes over the final bytes. The last response of
        a compound is padded too, as Samba pads it (smbtorture smb2.compound.compound-padding: a 3-byte READ
        last in a compound answers with a 24-byte body); a single response is not."""
        buffers: Buffers = []
        total = 0
        last = len(responses) - 1
        compound = last > 0
        for index, pending in enumerate(responses):
            response, payload = pending.response, pending.payload
            if isinstance(payload, FileRange) and (pending.signer is not None or compound or encrypting):
                payload = payload.read()  # data that must be signed or encrypted passes through memory
            if payload is not None and (compound or encrypting):
                response += payload
                payload = None
            if compound:
                response += bytes(-len(response) % 8)
            if index != last:
                struct.pack_into("<I", response, 20, len(response))
            if pending.signer is not None:
                pending.signer.sign(response, payload)
            if pending.hash_into_connection and self.preauth_hash is not None:
                self.preauth_hash = preauth.update(self.preauth_hash, response)
            if pending.hash_session is not None and pending.hash_session.preauth_hash is not None:
                pending.hash_session.preauth_hash = preauth.update(pending.hash_session.preauth_hash, response)
            buffers.append(response)
            total += len(response)
            if payload is not None:
                buffers.append(payload)
                total += len(payload)
        buffers.insert(0, _NBSS.pack(total))
        return buffers

    def _frame(self, bodies: list[bytes]) -> Buffers:
        data = b"".join(bodies)
        return [_NBSS.pack(len(data)), data]

    # -- server-initiated messages ---------------------------------------------------------------------------

    def send_unsolicited(self, command: int, body: bytes, session: Session | None = None) -> None:
        """Send a message the client did not ask for (an oplock or lease break, [MS-SMB2] 3.3.4.6, 3.3.4.7):
        MessageId 0xFFFFFFFFFFFFFFFF, no credits, SessionId of `session` (0 for lease breaks). It is encrypted
        when that session (for a lease break: any session of the connection) encrypts, else signed when the
        session requires signing."""
        if self.closed:
            return
        response = bytearray(HEADER_SIZE + len(body))
        encode_response_header(response, 0, status=NtStatus.STATUS_SUCCESS, command=command, credit_charge=0,
                               credits=0, flags=SMB2_FLAGS_SERVER_TO_REDIR, next_command=0,
                               message_id=0xFFFFFFFFFFFFFFFF, tree_id=0, async_id=0,
                               session_id=session.session_id if session is not None else 0)
        response[HEADER_SIZE:] = body
        candidates = [session] if session is not None else list(self.sessions.values())
        sealing = next((s for s in candidates if s.cipher is not None and s.state == "valid" and (
            s.encrypt_data or any(tree.encrypt_data for tree in s.tree_connects.values()))), None)
        if sealing is not None:
            self.send(self._encrypt(sealing, [_NBSS.pack(len(response)), response]))
            return
        signer = self.message_signer(session)
        if signer is not None:
            signer.sign(response, None)
        self.send([_NBSS.pack(len(response)), response])

    # -- lifecycle -----------------------------------------------------------------------------------------

    def has_valid_session(self) -> bool:
        return any(session.state == "valid" for session in self.sessions.values())

    def connection_lost(self) -> None:
        """Tear down everything this connection owns: async requests, opens, tree connects, sessions. An async
        request of a session that lives on through another channel runs on until that session ends (Samba
        4.17; Session.keep_request): a replay of its CREATE on another channel must still find it pending
        (smbtorture smb2.replay.dhv2-pending2*)."""
        if self.closed:
            return
        self.closed = True
        for task in list(self.async_requests.values()):
            session = getattr(task, "smb_session", None)
            if session is not None and session.state == "valid" and session.live_connection(besides=self):
                session.keep_request(task)
            else:
                task.cancel()
        self.server.end_connection(self)


def _unexpected(log: logging.LoggerAdapter[logging.Logger], exc: Exception, what: str) -> NtStatus:
    """The answer to an exception a handler did not turn into an SmbError: a bug (logged with its traceback,
    STATUS_INTERNAL_ERROR), except running out of file descriptors. One client's opens can use up the
    process's table (RLIMIT_NOFILE), and then any step that makes a descriptor fails (a dup, a pipe, the first
    import of a module): that is the server's state, not a bug, and the client gets Samba's answer to EMFILE
    and ENFILE (source3/lib/errmap_unix.c), STATUS_TOO_MANY_OPENED_FILES, as for a failed open."""
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        log.warning("%s: %s", what, exc)
        return NtStatus.STATUS_TOO_MANY_OPENED_FILES
    log.error("internal error in %s", what, exc_info=exc)
    return NtStatus.STATUS_INTERNAL_ERROR


def _command_name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"0x{command:02x}"

