"""Fuzz harness (b): the whole request path, bytes in and responses out, without sockets ([MS-SMB2] 3.3.5).

Each input gets a fresh logged-on connection of tests/fuzz/sans_io.py (the same set-up as
tests/unit/protocol/test_request_path_property.py) and is turned into one to three messages: either hostile
requests of tests/fuzz/requests.py, whose choices the fuzzer's bytes make, or raw bytes behind a header whose
message, session and tree ids are made valid so that the bytes reach the command handlers; or sequences that
need state: a srvsvc bind and requests (pipe_chain), a CREATE with related elements (related_chain), a pending
request and its CANCEL (async_chain), a second logon with a damaged AUTHENTICATE (logon_attempt), a channel
binding (bind_attempt). A Finding (an exception other than ProtocolViolation, an internal error logged,
STATUS_INTERNAL_ERROR, a malformed response, a request that does not finish; once the connection is gone an
open, a descriptor of a share file or anything next to the share left behind) ends the run.

Run with atheris (`python -m tests.fuzz.fuzz_request_path -max_total_time=20`) or through
`python -m tests.fuzz.run`, which falls back to a seeded random loop when atheris cannot be imported.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import resource
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

try:
    import atheris  # type: ignore[import-untyped]
except ImportError:  # the plain random loop of tests/fuzz/run.py needs none of it
    atheris = None

import spnego

from tests import builders as b

if atheris is not None:
    with atheris.instrument_imports(include=["smbsrv"]):
        from tests.fuzz import payloads
        from tests.fuzz import requests as hostile
        from tests.fuzz.sans_io import PASSWORD, USER, Peer, SansIoServer
else:
    from tests.fuzz import payloads
    from tests.fuzz import requests as hostile
    from tests.fuzz.sans_io import PASSWORD, USER, Peer, SansIoServer

# The runner points this at a directory it removes afterwards (libFuzzer may end the process with _exit).
WORKDIR_ENV = "SMBSRV_FUZZ_DIR"
_server: SansIoServer | None = None


def server() -> SansIoServer:
    global _server
    if _server is None:
        workdir = os.environ.get(WORKDIR_ENV)
        _server = SansIoServer(Path(workdir) if workdir else None)
        atexit.register(_server.close)
    return _server


def close_server() -> None:
    global _server
    if _server is not None:
        atexit.unregister(_server.close)
        _server.close()
        _server = None


def source_for(data: bytes) -> hostile.Source:
    if atheris is not None:
        return hostile.ProviderSource(atheris.FuzzedDataProvider(data))
    return hostile.RandomSource(random.Random(data))


def raw_message(src: hostile.Source, peer: Peer) -> bytes:
    """Fuzzer bytes behind a header with ids the connection accepts ([MS-SMB2] 2.2.1.2)."""
    data = bytearray(src.raw(600))
    data += bytes(max(0, 64 - len(data)))
    message_id = peer.builder.next_message_id
    peer.builder.next_message_id += 1
    tree_id = peer.ipc_tree_id if data[12] & 0x80 else peer.tree_id
    struct.pack_into("<4sHH", data, 0, b"\xfeSMB", 64, 1)
    struct.pack_into("<HHII", data, 12, data[12] % 0x13, 64, struct.unpack_from("<I", data, 16)[0] & ~0x2, 0)
    struct.pack_into("<QIIQ", data, 24, message_id, 0, tree_id, peer.session_id)
    return bytes(data)


def bind_attempt(src: hostile.Source, peer: Peer) -> None:
    """A second connection binds to the peer's session ([MS-SMB2] 3.3.5.5.2): SESSION_SETUP with the BINDING
    flag (or not), signed with the session's key (or not, or damaged), carrying a real NTLM exchange or
    hostile tokens, on the same dialect or another; then hostile requests of that session on the new
    connection, bound or not."""
    binder = Peer(server())
    try:
        dialect = hostile.choice(src, (peer.dialect, peer.dialect, 0x0311, 0x0302, 0x0210))
        server().loop.run_until_complete(binder.set_up_negotiate(dialect))
        binder.builder.session_id = peer.session_id
        session = peer.connection.sessions.get(peer.session_id)
        auth = spnego.client(USER, PASSWORD, protocol="ntlm")
        token = auth.step() or b""
        for _ in range(src.integer(1, 3)):
            if binder.dropped:
                return
            body = b.session_setup_body(token if src.integer(0, 3) else src.raw(120),
                                        flags=hostile.choice(src, (1, 1, 0, hostile.value(src, 8))),
                                        previous_session_id=hostile.choice(src, (0, peer.session_id)))
            message, _ = binder.builder.build(b.Req(b.SMB2_SESSION_SETUP, body, flags=b.SMB2_FLAGS_SIGNED),
                                              sign=False)
            if session is not None and session.signer is not None and src.integer(0, 3):
                session.signer.sign(message)
                if src.integer(0, 5) == 0:
                    message[48 + src.integer(0, 15)] ^= 1
            outcome = binder.feed(message)
            if outcome.dropped or not outcome.responses:
                return
            response = outcome.responses[0]
            if response.status != b.STATUS_MORE_PROCESSING_REQUIRED:
                break
            offset, length = struct.unpack_from("<HH", response.body, 4)
            try:
                token = auth.step(response.body[offset - 64:offset - 64 + length]) or b""
            except Exception:  # noqa: BLE001 - the server's challenge may be what the input damaged
                token = src.raw(60)
        handles = hostile.Handles(peer.file_id, peer.dir_id, peer.pipe_id, peer.session_id, peer.tree_id,
                                  peer.ipc_tree_id, stream_id=peer.stream_id)
        for _ in range(src.integer(0, 2)):
            if binder.dropped:
                return
            binder.feed(hostile.message(src, handles, binder.builder))
    finally:
        # Dropped, not settled: requests of the session that went async on this channel live on while the
        # session has another channel (Connection.connection_lost), and the peer's own pending requests are
        # no business of this connection; the peer's close settles them all.
        if not binder.dropped:
            binder._drop()
        binder.later.clear()
        server().check_logs()


def logon_attempt(src: hostile.Source, peer: Peer) -> None:
    """A second session on the peer's connection ([MS-SMB2] 3.3.5.5.1): a real NTLM NEGOTIATE, the server's
    CHALLENGE, then the client's real AUTHENTICATE with one kind of damage (payloads.damage_ntlm_authenticate),
    raw or in a SPNEGO wrapper whose DER lengths may lie; or the right one, for the logon to succeed. Then a
    hostile request of that session."""
    auth = spnego.client(USER, hostile.choice(src, (PASSWORD, PASSWORD, "wrong")), protocol="ntlm")
    token = auth.step() or b""
    session_id = 0
    for step in range(2):
        if step and src.integer(0, 3):
            token = payloads.damage_ntlm_authenticate(src, token)
        if src.integer(0, 3) == 0:
            token = payloads.spnego_response(src, token)
        body = b.session_setup_body(token, previous_session_id=hostile.choice(src, (0, 0, peer.session_id)))
        outcome = peer.feed(peer.builder.build(b.Req(b.SMB2_SESSION_SETUP, body, session_id=session_id),
                                               sign=False)[0])
        if outcome.dropped or not outcome.responses:
            return
        response = outcome.responses[0]
        session_id = response.header.session_id
        if response.status != b.STATUS_MORE_PROCESSING_REQUIRED:
            break
        offset, length = struct.unpack_from("<HH", response.body, 4)
        try:
            token = auth.step(response.body[offset - 64:offset - 64 + length]) or b""
        except Exception:  # noqa: BLE001 - the challenge may be refused by the client library: damage on
            token = src.raw(200)
    if session_id and not peer.dropped:
        handles = hostile.Handles(peer.file_id, peer.dir_id, peer.pipe_id, session_id, peer.tree_id,
                                  peer.ipc_tree_id, peer.resume_key, stream_id=peer.stream_id)
        request = hostile.element(src, handles)
        request.session_id = session_id
        peer.feed(peer.builder.build(request, sign=False)[0])


def one_input(data: bytes) -> None:
    src = source_for(data)
    dialect = hostile.choice(src, (0x0311, 0x0311, 0x0302, 0x0210, 0x0202))
    descriptors = server().descriptors()
    with server().connect(dialect) as peer:
        handles = hostile.Handles(peer.file_id, peer.dir_id, peer.pipe_id, peer.session_id, peer.tree_id,
                                  peer.ipc_tree_id, peer.resume_key, stream_id=peer.stream_id)
        for _ in range(src.integer(1, 3)):
            if peer.dropped:
                break
            kind = src.integer(0, 11)
            if kind == 8:
                bind_attempt(src, peer)
                continue
            if kind == 11:
                logon_attempt(src, peer)
                continue
            if kind <= 1:
                messages = [raw_message(src, peer)]
            elif kind == 2:
                messages = hostile.async_chain(src, handles, peer.builder)
            elif kind == 9:
                messages = hostile.pipe_chain(src, handles, peer.builder)
            elif kind == 10:
                messages = hostile.related_chain(src, handles, peer.builder)
            else:
                messages = [hostile.message(src, handles, peer.builder)]
            # Now and then inside transforms of the session's keys ([MS-SMB2] 3.3.5.2.1.1), damaged or not.
            sealed = peer.cipher is not None and src.integer(0, 3) == 0
            # And now and then with the process out of descriptors but for a few: every step that makes one
            # must answer (STATUS_TOO_MANY_OPENED_FILES) and leave nothing behind (check_released).
            with tight_descriptors(src.integer(0, 4) if src.integer(0, 7) == 0 else None):
                for message in messages:
                    if peer.dropped:
                        break
                    peer.feed(hostile.seal(src, message, peer.seal, peer.session_id) if sealed else message)
    server().check_released()
    server().check_descriptors(descriptors)
    server().check_contained()


@contextlib.contextmanager
def tight_descriptors(spare: int | None) -> Iterator[None]:
    """RLIMIT_NOFILE lowered to the descriptors in use plus `spare` (None: unchanged) while the block runs."""
    if spare is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + spare, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def main() -> None:
    assert atheris is not None, "atheris is not installed: use python -m tests.fuzz.run"
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
