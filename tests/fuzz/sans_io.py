"""A real ServerState and Connection driven without sockets, for hostile-input tests ([MS-SMB2] 3.3.5).

`SansIoServer` builds the server state over a temporary share the way `smbsrv serve` does, and `connect()`
returns a `Peer`: a Connection that has negotiated, logged on with NTLMv2 (pyspnego's client), connected the
disk share and IPC$, and opened a file, a directory and the srvsvc pipe. `Peer.feed()` then hands any bytes to
`Connection.handle_message` and checks that the request ended in one of the outcomes a hostile request may
have:

- one response per element, each a well-formed SMB2 header (SmbError answers included), or
- ProtocolViolation, after which the connection is torn down as the transport would.

Anything else is a `Finding`: another exception escaping handle_message or connection_lost, an ERROR record
logged by the server ("internal error in ..."), a STATUS_INTERNAL_ERROR answer (but the deliberate one of
refusable_elements), a malformed response, a request that does not finish within `timeout_s`, or (when
`max_alloc_bytes` is set) a request whose handling allocates more memory at its peak than that, which is what a
trusted lying length looks like.

Message building reuses the raw client of tests/builders.py without a socket: `Peer.builder.build()` assigns
message ids, and the body helpers craft each command.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import struct
import tempfile
import tracemalloc
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import spnego

from smbsrv.auth.users import UserDB
from smbsrv.config import ServerConfig, ShareConfig
from smbsrv.crypto import encryption, kdf
from smbsrv.dispatch import HANDLERS
from smbsrv.protocol.connection import Connection
from smbsrv.protocol.errors import ProtocolViolation
from smbsrv.protocol.reply import FileRange
from smbsrv.state import ServerState
from tests import builders as b

USER = "fuzzer"
PASSWORD = "Fuzz-Pass-1"
STATUS_INTERNAL_ERROR = 0xC00000E5
FSCTL_SRV_REQUEST_RESUME_KEY = 0x00140078
FILE_NAME = "data.bin"
STREAM_NAME = FILE_NAME + ":fuzz"  # a named stream (docs/streams.md), made by the set-up's open
DIR_NAME = "dir"
FILE_DATA = bytes(range(256)) * 256  # 64 KiB
_NBSS = struct.Struct(">I")


class Finding(AssertionError):
    """The server did something a hostile request must never make it do."""


class _ErrorRecords(logging.Handler):
    """Collects ERROR (and worse) records of the server's loggers and of asyncio (unretrieved task errors)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Outcome:
    """What one fed message produced: the responses it returned, the ones sent later through the send
    callback, and whether the connection was dropped."""

    responses: list[b.Response] = field(default_factory=list)
    sent_later: list[b.Response] = field(default_factory=list)
    dropped: bool = False
    peak_alloc_bytes: int = 0

    @property
    def statuses(self) -> list[int]:
        return [response.status for response in self.responses]


def parse_buffers(buffers: list[Any], cipher: Any = None, refusable: Collection[int] = ()) -> list[b.Response]:
    """Join what handle_message (or the send callback) produced and split it into response elements; a
    FileRange is read (which also closes its duplicated fd, as the transport would after sendfile). An
    encrypted answer is opened with `cipher` (the client's side of the session's keys), when there is one.
    `refusable`: MessageIds that may be answered STATUS_INTERNAL_ERROR (refusable_elements)."""
    parts = [buffer.read() if isinstance(buffer, FileRange) else bytes(buffer) for buffer in buffers]
    if not parts or len(parts[0]) != 4:
        raise Finding(f"response does not start with a 4-byte Direct TCP prefix: {parts[:1]!r}")
    (length,) = _NBSS.unpack(parts[0])
    message = b"".join(parts[1:])
    if length != len(message) or length > 0xFFFFFF:
        raise Finding(f"Direct TCP length {length} but {len(message)} bytes follow")
    if message[:4] == b"\xfdSMB":
        if cipher is None:
            return []  # an encrypted answer of a session whose keys the client side does not have
        try:
            _, message = cipher.decrypt(message)
        except Exception as exc:  # noqa: BLE001 - any failure to open the server's transform is the finding
            raise Finding(f"encrypted response does not decrypt: {type(exc).__name__}: {exc}") from None
        if message[:4] != b"\xfeSMB":
            raise Finding(f"encrypted response carries {message[:4].hex()}, not an SMB2 message")
    responses = []
    position = 0
    while True:
        if len(message) - position < b.HEADER_SIZE:
            raise Finding(f"truncated response element at {position}: {message[position:].hex()}")
        try:
            header = b.decode_header(message[position:])
        except AssertionError as exc:
            raise Finding(str(exc)) from None
        if not header.flags & b.SMB2_FLAGS_SERVER_TO_REDIR:
            raise Finding("response without SMB2_FLAGS_SERVER_TO_REDIR")
        end = position + header.next_command if header.next_command else len(message)
        if end > len(message) or (header.next_command and (header.next_command % 8 or end <= position)):
            raise Finding(f"bad NextCommand {header.next_command} in a response")
        raw = message[position:end]
        responses.append(b.Response(header.status, raw[b.HEADER_SIZE:], header, raw))
        if header.status == STATUS_INTERNAL_ERROR and header.message_id not in refusable:
            raise Finding(f"STATUS_INTERNAL_ERROR for command {header.command:#x}")
        if not header.next_command:
            return responses
        position = end


def request_elements(message: bytes) -> list[tuple[int, int]] | None:
    """(Command, MessageId) of each element of an SMB2 request, walked by NextCommand as [MS-SMB2] 3.3.5.2.7
    does; None when the message is not a plain SMB2 message the walk can follow (SMB1, transform, compression,
    or a chain that a server must drop, in which case the connection is torn down and nothing is counted)."""
    elements = []
    position = 0
    while True:
        if len(message) - position < b.HEADER_SIZE or message[position:position + 4] != b"\xfeSMB":
            return None
        command, = struct.unpack_from("<H", message, position + 12)
        next_command, message_id = struct.unpack_from("<IQ", message, position + 20)
        elements.append((command, message_id))
        if not next_command:
            return elements
        if next_command % 8 or position + next_command >= len(message):
            return None
        position += next_command


def refusable_elements(message: bytes) -> set[int]:
    """MessageIds of the CHANGE_NOTIFY and LOCK elements with another element after them: one that would go
    async there is answered STATUS_INTERNAL_ERROR on purpose, as on Windows ([MS-SMB2] 3.3.5.2.7,
    protocol/connection.py). A handler bug there still logs an error, which check_logs finds."""
    elements = request_elements(message) or []
    return {message_id for command, message_id in elements[:-1] if command in (b.SMB2_CHANGE_NOTIFY, b.SMB2_LOCK)}


def check_one_response_per_element(message: bytes, responses: list[b.Response]) -> None:
    """The promise of this module: a request the server did not drop gets one response per element (CANCEL
    gets none, [MS-SMB2] 3.3.5.16). An element that went async may get an interim STATUS_PENDING now and its
    final response later, so interim answers count only towards "at least one"."""
    elements = request_elements(message)
    if elements is None:
        return
    wanted: dict[int, int] = {}
    for command, message_id in elements:
        if command != b.SMB2_CANCEL:
            wanted[message_id] = wanted.get(message_id, 0) + 1
    final: dict[int, int] = {}
    interim: dict[int, int] = {}
    for response in responses:
        counts = interim if response.status == b.STATUS_PENDING and response.header.is_async else final
        counts[response.header.message_id] = counts.get(response.header.message_id, 0) + 1
    # The elements after one that went async holding its chain (a CREATE waiting for an oplock or lease break,
    # protocol/connection.py _continue_after) are answered once it completes, which may be after this check.
    held_from = next((index for index, (_, message_id) in enumerate(elements)
                      if interim.get(message_id) and not final.get(message_id)), len(elements))
    deferred = {message_id for _, message_id in elements[held_from + 1:]}
    for message_id, count in wanted.items():
        finals, interims = final.get(message_id, 0), interim.get(message_id, 0)
        if finals > count:
            raise Finding(f"{finals} final responses to MessageId {message_id}, which {count} element(s) carry")
        if finals + interims < count and message_id not in deferred:
            raise Finding(f"{count} element(s) with MessageId {message_id} got {finals + interims} responses")


class _ClientCipher:
    """A client's transform cipher: seals with the client-to-server key, opens with the server-to-client one;
    `decrypt_as_server` opens what it sealed itself (to count the elements of a sealed request)."""

    def __init__(self, cipher_id: int, server_to_client: bytes, client_to_server: bytes) -> None:
        self._client = encryption.make_cipher(cipher_id, client_to_server, server_to_client)
        self._server = encryption.make_cipher(cipher_id, server_to_client, client_to_server)

    def encrypt(self, session_id: int, message: bytes) -> bytearray:
        return self._client.encrypt(session_id, message)

    def decrypt(self, transform: bytes) -> tuple[int, bytes]:
        return self._client.decrypt(transform)

    def decrypt_as_server(self, transform: bytes) -> bytes:
        return self._server.decrypt(transform)[1]


class SansIoServer:
    """Server state over a temporary share; one asyncio loop that every Peer of this server runs on."""

    def __init__(self, root: Path | None = None, *, max_io_size: int = 8 * 1024 * 1024) -> None:
        self._tmp = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="smbsrv-fuzz-")
            root = Path(self._tmp.name)
        self.root = root
        self.share_path = root / "share"
        self.share_path.mkdir(exist_ok=True)
        (root / "state").mkdir(exist_ok=True)
        (root / "trash").mkdir(exist_ok=True)
        self.restore_share()
        # Signing "desired" (not the default "required"): the requests here are unsigned, so that damaged
        # bytes reach the handlers instead of stopping at the signature check.
        config = ServerConfig(listen=("127.0.0.1",), port=0, server_name="FUZZSRV", max_io_size=max_io_size,
                              signing="desired", encryption="desired",
                              state_dir=str(root / "state"),
                              shares=(ShareConfig(name="share", path=str(self.share_path)),))
        users = UserDB.from_pairs([])
        # The user acts as the Unix account running the tests: identity.become() then never changes the
        # file-system identity of the test process itself.
        users.add(USER, PASSWORD, pwd.getpwuid(os.geteuid()).pw_name)
        self.state = ServerState(config, users)
        self.loop = asyncio.new_event_loop()
        self.errors = _ErrorRecords()
        for name in ("smbsrv", "asyncio"):
            logging.getLogger(name).addHandler(self.errors)

    def restore_share(self) -> None:
        """Recreate what the set-up opens: hostile requests may have renamed, truncated, deleted it or set its
        DOS attributes (READONLY would make the next set-up's CREATE fail). Whatever else the last input made
        goes too, so that each input starts from the same share (and a finding replays alone)."""
        for name in os.listdir(self.share_path):
            # Out of the share (same file system): the share root stays small for QUERY_DIRECTORY.
            os.rename(self.share_path / name, self.root / "trash" / os.urandom(8).hex())
        # And gone: a hostile FileAllocationInformation or WRITE far out gives a file real blocks (gigabytes
        # each), and a long run keeps hundreds of thousands of them (55 GB filled the disk in 15 minutes).
        for entry in os.scandir(self.root / "trash"):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        (self.share_path / FILE_NAME).write_bytes(FILE_DATA)
        directory = self.share_path / DIR_NAME
        directory.mkdir()
        for index in range(3):
            (directory / f"entry{index}.txt").write_bytes(b"x" * index)

    def close(self) -> None:
        for name in ("smbsrv", "asyncio"):
            logging.getLogger(name).removeHandler(self.errors)
        self.loop.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def connect(self, dialect: int = 0x0311) -> Peer:
        """A fresh connection that is logged on, with both trees connected and three handles open."""
        self.restore_share()
        peer = Peer(self)
        self.loop.run_until_complete(peer.set_up(dialect))
        return peer

    def check_released(self) -> None:
        """Once every connection is gone (and the durable opens it left have timed out), the server holds
        nothing of them: no open in the FileTable, no lease, no durable or replay record, no connection, and no
        open in any user's max_opens_per_user count. An open that outlives its session (a CREATE completing
        after LOGOFF) keeps a descriptor and a share mode for the server's lifetime; a count that outlives its
        open refuses the user's opens for good once enough of them leaked."""
        state = self.state
        state.scavenge(state.clock() + 1e9)
        files = state.files
        opens = [open_ for key in list(files._files) for open_ in files.opens(key)]
        left = {"opens": len(opens), "leases": len(files.leases), "durable": len(files.durable),
                "pending durable creates": len(files.durable.pending), "connections": len(state.connections),
                "counted opens": sum(files._held.values())}
        if any(left.values()):
            names = sorted({"/".join(open_.path_components) for open_ in opens})
            for open_ in opens:  # the next input starts clean
                state.close_open(open_)
            files.leases.clear()
            files._held.clear()
            state.connections.clear()
            raise Finding(f"left after the connection ended: {left}, opens of {names}")

    def descriptors(self) -> dict[int, str]:
        """The process's open descriptors and what each names (/proc/self/fd)."""
        named = {}
        for entry in os.listdir("/proc/self/fd"):
            try:
                named[int(entry)] = os.readlink(f"/proc/self/fd/{entry}")
            except OSError:  # the directory's own descriptor, closed by now
                pass
        return named

    def check_descriptors(self, before: dict[int, str]) -> None:
        """Once every connection is gone, no descriptor opened since `before` names a file or directory of the
        share (or one moved out of it): an open's descriptor outliving the open keeps the file busy and, one
        leak per request, runs the process out of descriptors. The share root and the state directory are the
        server's own (opened lazily, once)."""
        places = (f"{self.share_path}/", f"{self.root / 'trash'}/")
        left = {fd: target for fd, target in self.descriptors().items()
                if before.get(fd) != target and target.startswith(places)}
        if left:
            for fd in left:  # the next input starts clean
                os.close(fd)
            raise Finding(f"descriptors left after the connection ended: {sorted(left.values())}")

    def check_contained(self) -> None:
        """Nothing a request did landed next to the share: the share's parent holds what the set-up made
        ([MS-FSA] 2.1.5.1: a name resolves below the share root, or the request fails)."""
        left = sorted(set(os.listdir(self.root)) - {"share", "state", "trash"})
        if left:
            for name in left:  # the next input starts clean
                path = self.root / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink()
            raise Finding(f"created outside the share: {left}")

    def check_logs(self) -> None:
        if self.errors.records:
            record = self.errors.records[0]
            self.errors.records.clear()
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f": {record.exc_info[0].__name__}: {record.exc_info[1]}"  # type: ignore[union-attr]
            raise Finding(f"server logged {record.levelname} from {record.name}: {text}")


class Peer:
    """One Connection of a SansIoServer, seen from the client side."""

    def __init__(self, server: SansIoServer) -> None:
        self.server = server
        self.later: list[list[Any]] = []
        self.connection = Connection(server.state, "127.0.0.1:fuzz", self.later.append, HANDLERS)
        server.state.connections.add(self.connection)
        self.builder = b.Client("127.0.0.1", 0)
        self.dropped = False
        self.dialect = 0
        self.session_id = 0
        self.tree_id = 0
        self.ipc_tree_id = 0
        self.file_id = (0, 0)
        self.dir_id = (0, 0)
        self.pipe_id = (0, 0)
        self.stream_id = (0, 0)  # "data.bin:fuzz", a named stream of file_id's file
        self.resume_key = bytes(24)  # FSCTL_SRV_REQUEST_RESUME_KEY of file_id ([MS-SMB2] 3.3.5.15.5)
        # The client's side of the session's transform keys ([MS-SMB2] 3.2.5.3.1): it seals with the key the
        # server decrypts with and opens with the one the server encrypts with. None when no cipher was agreed.
        self.cipher: Any = None
        self.refusable: set[int] = set()  # refusable_elements of every message fed so far

    def seal(self, message: bytes, session_id: int | None = None) -> bytes:
        """`message` inside a transform of this peer's session ([MS-SMB2] 2.2.41), as a client encrypts."""
        assert self.cipher is not None
        return bytes(self.cipher.encrypt(self.session_id if session_id is None else session_id, message))

    def opened(self, message: bytes) -> bytes:
        """The SMB2 message inside a transform this peer sealed (the message itself when it is not one, or
        when it does not open: the server drops such a connection and nothing is counted)."""
        if message[:4] != b"\xfdSMB" or self.cipher is None:
            return message
        try:
            return bytes(self.cipher.decrypt_as_server(message))
        except Exception:  # noqa: BLE001 - damaged on purpose
            return message

    # -- feeding -----------------------------------------------------------------------------------------

    async def _feed(self, message: bytes, timeout_s: float) -> Outcome:
        outcome = Outcome()
        if self.dropped:
            raise Finding("fed a connection that was already dropped")
        try:
            buffers = await asyncio.wait_for(self.connection.handle_message(bytearray(message)), timeout_s)
        except ProtocolViolation:
            outcome.dropped = True
            self._drop()
            buffers = None
        except TimeoutError:
            raise Finding(f"request did not finish within {timeout_s} s") from None
        except Exception as exc:
            raise Finding(f"{type(exc).__name__} escaped handle_message: {exc}") from exc
        # Let async completions that are already due (and tasks they start) run before looking at the logs.
        for _ in range(3):
            await asyncio.sleep(0)
        # The server's log names the exception, so it is checked before the responses are.
        self.server.check_logs()
        self.refusable |= refusable_elements(self.opened(message))
        if buffers:
            outcome.responses = parse_buffers(buffers, self.cipher, self.refusable)
        outcome.sent_later = self._take_later()
        # parse_buffers answers nothing for an encrypted reply it cannot open, which then cannot be counted.
        encrypted = bool(buffers) and not outcome.responses
        if not outcome.dropped and not encrypted:
            check_one_response_per_element(self.opened(message), outcome.responses + outcome.sent_later)
        return outcome

    def _take_later(self) -> list[b.Response]:
        responses = []
        while self.later:
            responses += parse_buffers(self.later.pop(0), self.cipher, self.refusable)
        return responses

    def _drop(self) -> None:
        self.dropped = True
        try:
            self.connection.connection_lost()
        except Exception as exc:
            raise Finding(f"{type(exc).__name__} escaped connection_lost: {exc}") from exc
        self.server.state.connections.discard(self.connection)

    def feed(self, message: bytes | bytearray, *, timeout_s: float = 10.0,
             max_alloc_bytes: int | None = None) -> Outcome:
        """Hand one message (no Direct TCP prefix) to the connection and check the outcome. A Finding names
        the message in hex, so that it can be replayed after the same set-up."""
        try:
            return self._checked_feed(bytes(message), timeout_s, max_alloc_bytes)
        except Finding as finding:
            raise Finding(f"{finding}\n  message: {bytes(message).hex()}") from finding.__cause__

    def _checked_feed(self, message: bytes, timeout_s: float, max_alloc_bytes: int | None) -> Outcome:
        if max_alloc_bytes is None:
            return self.server.loop.run_until_complete(self._feed(message, timeout_s))
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            baseline = tracemalloc.get_traced_memory()[0]
            outcome = self.server.loop.run_until_complete(self._feed(message, timeout_s))
            outcome.peak_alloc_bytes = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            tracemalloc.stop()
        if outcome.peak_alloc_bytes > max_alloc_bytes:
            raise Finding(f"handling the request allocated {outcome.peak_alloc_bytes} bytes at its peak "
                          f"(limit {max_alloc_bytes})")
        return outcome

    def request(self, *reqs: b.Req, **kwargs: Any) -> Outcome:
        message, _ = self.builder.build(*reqs, sign=False)
        return self.feed(message, **kwargs)

    def close(self) -> None:
        """Tear the connection down as the transport does when the socket goes away, and let cancelled async
        requests finish."""
        if not self.dropped:
            self._drop()

        async def settle() -> None:
            for _ in range(5):
                await asyncio.sleep(0)
            pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            if pending:
                _, still = await asyncio.wait(pending, timeout=5)
                if still:
                    raise Finding(f"{len(still)} async request(s) did not end after the connection was lost")

        self.server.loop.run_until_complete(settle())
        self.later.clear()
        self.server.check_logs()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- set-up ------------------------------------------------------------------------------------------

    async def _one(self, req: b.Req) -> b.Response:
        message, _ = self.builder.build(req, sign=False)
        outcome = await self._feed(bytes(message), 10.0)
        assert len(outcome.responses) == 1, outcome
        return outcome.responses[0]

    async def set_up_negotiate(self, dialect: int) -> None:
        # An encryption cipher too (AES-128-GCM on 3.1.1, the ENCRYPTION capability's AES-128-CCM on 3.0.x), so
        # that hostile requests can also arrive inside transforms ([MS-SMB2] 2.2.3.1.2, 3.3.5.4).
        contexts = [b.preauth_context(), b.signing_context((1,)),
                    b.negotiate_context(2, struct.pack("<HH", 1, 2))] if dialect == 0x0311 else None
        capabilities = 0x40 if dialect in (0x0300, 0x0302) else 0
        response = await self._one(b.Req(b.SMB2_NEGOTIATE, b.negotiate_body((dialect,), contexts,
                                                                           capabilities=capabilities)))
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        self.dialect = dialect

    async def set_up(self, dialect: int) -> None:
        await self.set_up_negotiate(dialect)
        auth = spnego.client(USER, PASSWORD, protocol="ntlm")
        token = auth.step() or b""
        while True:
            response = await self._one(b.Req(b.SMB2_SESSION_SETUP, b.session_setup_body(token),
                                             session_id=self.session_id))
            self.session_id = self.builder.session_id = response.header.session_id
            if response.status != b.STATUS_MORE_PROCESSING_REQUIRED:
                break
            offset, length = struct.unpack_from("<HH", response.body, 4)
            token = auth.step(response.body[offset - b.HEADER_SIZE:offset - b.HEADER_SIZE + length]) or b""
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        self.cipher = self._client_cipher()
        response = await self._one(b.Req(b.SMB2_TREE_CONNECT, b.tree_connect_body("\\\\fuzz\\IPC$"), tree_id=0))
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        self.ipc_tree_id = response.header.tree_id
        self.pipe_id = await self._open("srvsvc", self.ipc_tree_id,
                                        desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
        response = await self._one(b.Req(b.SMB2_TREE_CONNECT, b.tree_connect_body("\\\\fuzz\\share"), tree_id=0))
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        self.tree_id = self.builder.tree_id = response.header.tree_id
        self.file_id = await self._open(FILE_NAME, self.tree_id,
                                        desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE)
        self.dir_id = await self._open(DIR_NAME, self.tree_id, desired_access=b.GENERIC_READ,
                                       options=b.FILE_DIRECTORY_FILE)
        self.stream_id = await self._open(STREAM_NAME, self.tree_id, disposition=b.FILE_OPEN_IF,
                                          desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE)
        response = await self._one(b.Req(b.SMB2_IOCTL, b.ioctl_body(self.file_id, FSCTL_SRV_REQUEST_RESUME_KEY,
                                                                    max_output=32)))
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        output_offset, output_count = struct.unpack_from("<II", response.body, 32)  # [MS-SMB2] 2.2.32
        assert output_count >= 24, output_count
        self.resume_key = response.body[output_offset - b.HEADER_SIZE:][:24]

    def _client_cipher(self) -> Any:
        """The session's keys as the client derives them ([MS-SMB2] 3.2.5.3.1), from the session key and the
        preauth hash the logon ended with, with the two directions swapped."""
        session = self.connection.sessions[self.session_id]
        if not self.connection.cipher_id or session.session_key is None:
            return None
        keys = kdf.derive_session_keys(self.dialect, session.session_key,
                                       session.preauth_hash if self.dialect == 0x0311 else None,
                                       self.connection.cipher_id)
        return _ClientCipher(self.connection.cipher_id, keys.encryption_key, keys.decryption_key)

    async def _open(self, name: str, tree_id: int, **kwargs: Any) -> tuple[int, int]:
        response = await self._one(b.Req(b.SMB2_CREATE, b.create_body(name, **kwargs), tree_id=tree_id))
        assert response.status == b.STATUS_SUCCESS, f"CREATE {name}: {b.status_name(response.status)}"
        return b.create_file_id(response.body)
