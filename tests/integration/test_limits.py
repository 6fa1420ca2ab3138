"""Resource limits of the real daemon: stalled and oversized connections, per-connection and per-session
counts, compound length and the credit window ([MS-SMB2] 2.1, 3.3.5.2, 3.3.5.2.3, 3.3.5.5, 3.3.5.7, 3.3.5.9).

The limits come from smbsrv.config (max_connections, max_sessions_per_connection, max_tree_connects_per_session,
max_opens_per_session, max_opens_per_user, max_compound_requests, max_credits, handshake_timeout_s,
message_timeout_s). Each test
starts its own server from a small TOML file, so one test's connections cannot eat another test's quota, and
stops it again also when the test fails. Every test ends with a well-behaved client being served.
"""

from __future__ import annotations

import os
import resource
import select
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import spnego

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer, assert_no_server_bugs, start_server, stop_server

# [MS-ERREF] 2.3; not in tests/builders.py.
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
STATUS_TOO_MANY_OPENED_FILES = 0xC000011F

KIB = 1024
MIB = 1024 * 1024
STALLED_CONNECTIONS = 200
# What 200 stalled, never-logged-on connections may cost the server on top of its idle size. Before logon a
# client may announce at most 64 KiB, so even with a full receive buffer each this stays near 13 MiB.
RSS_BOUND_BYTES = 50 * MIB
# The largest message a client may announce before it has logged on (NEGOTIATE and SESSION_SETUP only).
HANDSHAKE_MESSAGE_LIMIT = 64 * KIB
# How long a well-behaved client may take for negotiate, logon, tree connect, a 1 MiB write and read-back.
GOOD_CLIENT_SECONDS = 5.0
_SMB2_LOGOFF_BODY = struct.pack("<HH", 4, 0)  # [MS-SMB2] 2.2.7
_SMB2_TREE_DISCONNECT_BODY = struct.pack("<HH", 4, 0)  # [MS-SMB2] 2.2.11
_NBSS = struct.Struct(">I")
_CREDIT_REQUEST_AT = 14  # CreditRequest within the SMB2 header ([MS-SMB2] 2.2.1.2)


# -- servers ------------------------------------------------------------------------------------------------------

@contextmanager
def _server(tmp: Path, users: tuple[tuple[str, str], ...] = ((USER, PASSWORD),), **limits: int) -> Iterator[SmbServer]:
    """A server whose [server] table carries `limits`, serving tmp/share as "share" to `users`."""
    share = tmp / "share"
    share.mkdir(exist_ok=True)
    settings = "".join(f"{key} = {value}\n" for key, value in limits.items())
    config = tmp / "smbsrv.toml"
    config.write_text(f'[server]\nusers_file = "{tmp / "users"}"\n{settings}\n'
                      f'[shares.share]\npath = "{share}"\n')
    server = start_server(share, tmp / "server.log", config=config, users=users)
    try:
        yield server
        assert server.process.poll() is None, "the server process died"
        b.assert_serves_fresh_client(server.host, server.port, server.user, server.password)
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


@pytest.fixture(scope="module")
def small_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmbServer]:
    """Small per-connection and per-session limits; the default credit window (8192)."""
    with _server(tmp_path_factory.mktemp("small-limits"), max_sessions_per_connection=2,
                 max_tree_connects_per_session=3, max_opens_per_session=4, max_compound_requests=4) as server:
        yield server


@pytest.fixture(scope="module")
def short_timeouts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmbServer]:
    with _server(tmp_path_factory.mktemp("short-timeouts"), handshake_timeout_s=2, message_timeout_s=2) as server:
        yield server


@pytest.fixture
def server(small_limits: SmbServer) -> Iterator[SmbServer]:
    """The small-limits server, checked after each test: still alive and serving."""
    yield small_limits
    assert small_limits.process.poll() is None, "the server process died"
    b.assert_serves_fresh_client(small_limits.host, small_limits.port, small_limits.user, small_limits.password)


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KIB
    raise AssertionError("no VmRSS line")


# -- stalled connections ----------------------------------------------------------------------------------------

STALL_KINDS = ("silent", "header_only", "negotiate", "first_logon_leg", "half_body")


def _stalled_connection(server: SmbServer, kind: str) -> socket.socket:
    """One connection that stops at `kind`:
    silent          connects and sends nothing;
    header_only     sends a NetBIOS header announcing the largest pre-logon message (64 KiB), and no body;
    negotiate       finishes NEGOTIATE, then stays silent;
    first_logon_leg sends the first SESSION_SETUP (NTLM NEGOTIATE), gets MORE_PROCESSING_REQUIRED, stays silent;
    half_body       announces a 64 KiB NEGOTIATE message and sends only its first half.
    """
    client = b.Client(server.host, server.port).connect()
    assert client.sock is not None
    if kind == "header_only":
        client.sock.sendall(_NBSS.pack(HANDSHAKE_MESSAGE_LIMIT))
    elif kind in ("negotiate", "first_logon_leg"):
        assert client.negotiate().status == b.STATUS_SUCCESS
        if kind == "first_logon_leg":
            token = spnego.client(server.user, server.password, protocol="ntlm").step() or b""
            response = client.request(b.SMB2_SESSION_SETUP, b.session_setup_body(token), session_id=0)
            assert response.status == b.STATUS_MORE_PROCESSING_REQUIRED, b.status_name(response.status)
    elif kind == "half_body":
        message, _ = client.build(b.Req(b.SMB2_NEGOTIATE, b.negotiate_body((0x0202, 0x0210))))
        message += bytes(HANDSHAKE_MESSAGE_LIMIT - len(message))
        client.sock.sendall(_NBSS.pack(len(message)) + message[:len(message) // 2])
    else:
        assert kind == "silent", kind
    return client.sock


def _open_stalled(server: SmbServer, count: int) -> list[tuple[str, socket.socket]]:
    stalled: list[tuple[str, socket.socket]] = []
    try:
        for index in range(count):
            kind = STALL_KINDS[index % len(STALL_KINDS)]
            stalled.append((kind, _stalled_connection(server, kind)))
    except BaseException:
        _close_all(stalled)
        raise
    return stalled


def _close_all(stalled: list[tuple[str, socket.socket]]) -> None:
    for _, sock in stalled:
        sock.close()


def _is_open(sock: socket.socket) -> bool:
    """True while the server has neither closed nor reset the connection (nothing is expected to arrive)."""
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))  # data: open, though unexpected
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    finally:
        sock.setblocking(True)


def _wait_all_closed(stalled: list[tuple[str, socket.socket]], deadline: float) -> list[str]:
    """Wait until every connection reads EOF or a reset; the kinds still open at `deadline`."""
    waiting = {sock.fileno(): (kind, sock) for kind, sock in stalled}
    poller = select.poll()
    for fd in waiting:
        poller.register(fd, select.POLLIN)
    while waiting and time.monotonic() < deadline:
        for fd, _ in poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            _, sock = waiting[fd]
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                poller.unregister(fd)
                del waiting[fd]
    return sorted(kind for kind, _ in waiting.values())


def _good_client_round_trip(server: SmbServer) -> float:
    """Seconds a fresh client needs to log on, write 1 MiB in 64 KiB pieces, read it back and disconnect."""
    payload = os.urandom(MIB)
    start = time.monotonic()
    with b.connect(server.host, server.port, server.user, server.password, sign=True) as client:
        file_id = client.open("good-client.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                              disposition=b.FILE_OVERWRITE_IF, options=b.FILE_DELETE_ON_CLOSE)
        for offset in range(0, MIB, 64 * KIB):
            response = client.write(file_id, offset, payload[offset:offset + 64 * KIB])
            assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        received = b"".join(b.read_data(client.read(file_id, offset, 64 * KIB)) for offset in range(0, MIB, 64 * KIB))
        assert received == payload
        assert client.close_file(file_id) == b.STATUS_SUCCESS
    return time.monotonic() - start


def test_stalled_connections_do_not_starve_a_good_client(tmp_path: Path) -> None:
    # Long timeouts, so that every stalled connection is still held while the good client runs.
    with _server(tmp_path, handshake_timeout_s=120, message_timeout_s=120) as server:
        _good_client_round_trip(server)  # warm-up: lazy imports and thread pools count in the baseline
        baseline = _rss_bytes(server.process.pid)
        stalled = _open_stalled(server, STALLED_CONNECTIONS)
        try:
            elapsed = _good_client_round_trip(server)
            rss = _rss_bytes(server.process.pid)
            still_open = [kind for kind, sock in stalled if _is_open(sock)]
        finally:
            _close_all(stalled)
    assert elapsed < GOOD_CLIENT_SECONDS, f"good client took {elapsed:.1f} s beside {STALLED_CONNECTIONS} stalled ones"
    assert rss <= baseline + RSS_BOUND_BYTES, f"RSS grew from {baseline // MIB} MiB to {rss // MIB} MiB"
    # Otherwise the good client was not competing with them at all.
    assert len(still_open) == STALLED_CONNECTIONS, f"closed early: {STALLED_CONNECTIONS - len(still_open)}"


def test_stalled_connections_are_closed_within_the_timeouts(short_timeouts: SmbServer) -> None:
    server = short_timeouts
    start = time.monotonic()
    stalled = _open_stalled(server, STALLED_CONNECTIONS)
    try:
        # handshake_timeout_s (2) runs from the connection's start; message_timeout_s (2) from the header of a
        # message whose body does not come. Both have passed 4 s after the last connection opened; 3 s more
        # are slack for two busy cores.
        still_open = _wait_all_closed(stalled, deadline=time.monotonic() + 2 + 2 + 3)
        closed_after = time.monotonic() - start
    finally:
        _close_all(stalled)
    assert not still_open, f"{len(still_open)} stalled connections still open after {closed_after:.1f} s: " \
                           f"{sorted(set(still_open))}"
    assert "too slow" in server.log_text()


def test_handshake_timeout_spares_logged_on_clients(short_timeouts: SmbServer) -> None:
    # The handshake deadline is for getting logged on: a client that is idle after logon, or that logs off and
    # logs on again on the same connection later, must keep its connection ([MS-SMB2] 3.3.5.5, 3.3.5.6).
    server = short_timeouts
    with b.connect(server.host, server.port, server.user, server.password, share=None) as client:
        time.sleep(3)
        assert client.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS
        assert client.request(b.SMB2_LOGOFF, _SMB2_LOGOFF_BODY).status == b.STATUS_SUCCESS
        try:
            status = client.session_setup(server.user, server.password)
        except b.ConnectionDropped:
            pytest.fail("SESSION_SETUP after LOGOFF dropped the connection (handshake deadline long past)")
        assert status == b.STATUS_SUCCESS, b.status_name(status)


# -- message size -----------------------------------------------------------------------------------------------

def _dropped_at_once(client: b.Client, announced: int) -> bool:
    """Send only a NetBIOS header announcing `announced` bytes: True when the server closes within 2 s."""
    assert client.sock is not None
    client.sock.sendall(_NBSS.pack(announced))
    return client.is_dropped(wait_s=2.0)


def test_oversized_frame_after_logon_closes_before_any_body(server: SmbServer) -> None:
    with b.connect(server.host, server.port, server.user, server.password) as client:
        negotiate = client.negotiate_response
        assert negotiate is not None
        max_transact_size, max_read_size, max_write_size = struct.unpack_from("<III", negotiate.body, 28)
        largest = max(max_transact_size, max_read_size, max_write_size)
        # One MiB beyond the largest payload is far more than any header, compound or padding needs.
        assert largest + MIB <= 0xFFFFFF, "the test needs a length the 24-bit NetBIOS field can carry"
        assert _dropped_at_once(client, largest + MIB)
    with b.connect(server.host, server.port, server.user, server.password) as client:
        assert _dropped_at_once(client, 0xFFFFFF)


def test_oversized_frame_before_logon_closes_before_any_body(server: SmbServer) -> None:
    with b.Client(server.host, server.port) as client:
        assert _dropped_at_once(client, HANDSHAKE_MESSAGE_LIMIT + 1)
    with b.Client(server.host, server.port) as client:
        assert client.negotiate().status == b.STATUS_SUCCESS
        assert _dropped_at_once(client, HANDSHAKE_MESSAGE_LIMIT + 1)
    # At the limit the server waits for the body: the boundary is where the test says it is.
    with b.Client(server.host, server.port) as client:
        assert not _dropped_at_once(client, HANDSHAKE_MESSAGE_LIMIT)


# -- counts -------------------------------------------------------------------------------------------------------

def test_max_connections(tmp_path: Path) -> None:
    with _server(tmp_path, max_connections=5) as server:
        held = [b.Client(server.host, server.port).connect() for _ in range(5)]
        try:
            for client in held:
                assert client.negotiate().status == b.STATUS_SUCCESS
            with b.Client(server.host, server.port) as sixth:
                start = time.monotonic()
                assert sixth.is_dropped(wait_s=3.0), "a 6th connection was kept"
                assert time.monotonic() - start < 1.0, "the 6th connection was not closed at once"
            held.pop().close()
            # The server notices the close asynchronously: a new connection gets in once it has.
            deadline = time.monotonic() + 5
            while True:
                try:
                    with b.connect(server.host, server.port, server.user, server.password) as client:
                        assert client.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS
                    break
                except (b.ConnectionDropped, OSError):
                    assert time.monotonic() < deadline, "no connection accepted after one of five was closed"
                    time.sleep(0.1)
        finally:
            for client in held:
                client.close()


def test_max_sessions_per_connection(server: SmbServer) -> None:
    with b.connect(server.host, server.port, server.user, server.password, share=None) as client:
        first = client.session_id
        assert client.session_setup(server.user, server.password) == b.STATUS_SUCCESS
        second = client.session_id
        assert client.session_setup(server.user, server.password) == STATUS_INSUFFICIENT_RESOURCES
        # A session that is gone frees its place.
        response = client.request(b.SMB2_LOGOFF, _SMB2_LOGOFF_BODY, session_id=second)
        assert response.status == b.STATUS_SUCCESS
        assert client.session_setup(server.user, server.password) == b.STATUS_SUCCESS
        assert client.session_id not in (first, second)


def test_unfinished_logons_count_as_sessions(server: SmbServer) -> None:
    # A first SESSION_SETUP leg creates server state; leaving many half-done must be refused like sessions.
    with b.Client(server.host, server.port) as client:
        assert client.negotiate().status == b.STATUS_SUCCESS
        statuses = []
        for _ in range(3):
            token = spnego.client(server.user, server.password, protocol="ntlm").step() or b""
            statuses.append(client.request(b.SMB2_SESSION_SETUP, b.session_setup_body(token), session_id=0).status)
    assert statuses == [b.STATUS_MORE_PROCESSING_REQUIRED] * 2 + [STATUS_INSUFFICIENT_RESOURCES], \
        [b.status_name(status) for status in statuses]


def test_max_tree_connects_per_session(server: SmbServer) -> None:
    with b.connect(server.host, server.port, server.user, server.password) as client:
        trees = [client.tree_id]
        for _ in range(2):
            response = client.tree_connect("share")
            assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
            trees.append(client.tree_id)
        assert client.tree_connect("share").status == STATUS_INSUFFICIENT_RESOURCES
        response = client.request(b.SMB2_TREE_DISCONNECT, _SMB2_TREE_DISCONNECT_BODY, tree_id=trees[1])
        assert response.status == b.STATUS_SUCCESS
        assert client.tree_connect("share").status == b.STATUS_SUCCESS


def test_max_opens_per_session(server: SmbServer) -> None:
    share = server.share_path
    with b.connect(server.host, server.port, server.user, server.password) as client:
        first_tree = client.tree_id
        file_ids = [client.open(f"open-{index}.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                                disposition=b.FILE_OPEN_IF, options=b.FILE_DELETE_ON_CLOSE) for index in range(2)]
        # Opens on another tree of the same session count against the same limit.
        assert client.tree_connect("share").status == b.STATUS_SUCCESS
        file_ids += [client.open(f"open-{index}.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                                 disposition=b.FILE_OPEN_IF, options=b.FILE_DELETE_ON_CLOSE) for index in (2, 3)]
        response = client.create("open-4.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                 disposition=b.FILE_CREATE)
        assert response.status == STATUS_TOO_MANY_OPENED_FILES, b.status_name(response.status)
        assert not (share / "open-4.txt").exists(), "a refused CREATE created its file"
        assert client.close_file(file_ids.pop()) == b.STATUS_SUCCESS
        file_id = client.open("open-4.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                              disposition=b.FILE_CREATE, options=b.FILE_DELETE_ON_CLOSE)
        file_ids.append(file_id)
        for index, file_id in enumerate(file_ids):
            tree = first_tree if index < 2 else client.tree_id
            assert client.request(b.SMB2_CLOSE, b.close_body(file_id), tree_id=tree).status == b.STATUS_SUCCESS


def test_max_opens_per_user(tmp_path: Path, second_account: str | None) -> None:
    """One user's opens over all its connections stop at max_opens_per_user with STATUS_TOO_MANY_OPENED_FILES
    (all clients share the daemon's descriptor table); another user still opens, and a close or a dropped
    connection gives the user room again."""
    second = second_account or "bob"  # not root: both users act as the server's own account
    share = tmp_path / "share"
    share.mkdir()
    for index in range(4):
        (share / f"f{index}").write_bytes(b"x")
        os.chmod(share / f"f{index}", 0o644)

    def full(client: b.Client) -> bool:
        status = client.create("f3").status
        assert status in (b.STATUS_SUCCESS, STATUS_TOO_MANY_OPENED_FILES), b.status_name(status)
        return status == STATUS_TOO_MANY_OPENED_FILES

    with _server(tmp_path, users=((USER, PASSWORD), (second, "second-secret")), max_opens_per_user=3) as server:
        first = b.connect(server.host, server.port, USER, PASSWORD)
        with b.connect(server.host, server.port, USER, PASSWORD) as other, \
                b.connect(server.host, server.port, second, "second-secret") as stranger:
            held = [first.open("f0"), first.open("f1"), other.open("f2")]  # two connections, one user
            assert full(first) and full(other)
            # Another user is not refused while the first holds all it may, and has a limit of its own.
            theirs = [stranger.open(f"f{index}") for index in range(3)]
            assert full(stranger)
            assert other.close_file(held.pop()) == b.STATUS_SUCCESS
            held.append(other.open("f3"))
            assert full(other)
            # A connection that drops closes its opens, and their count goes with them (once the server has
            # seen the drop: until then the CREATE is refused).
            first.close()
            deadline = time.monotonic() + GOOD_CLIENT_SECONDS
            while full(other) and time.monotonic() < deadline:
                time.sleep(0.02)
            other.open("f1")
            assert full(other)
            for file_id in theirs:
                assert stranger.close_file(file_id) == b.STATUS_SUCCESS


def test_max_compound_requests(server: SmbServer) -> None:
    with b.connect(server.host, server.port, server.user, server.password) as client:
        responses = client.compound(*[b.Req(b.SMB2_ECHO, b.echo_body()) for _ in range(4)])
        assert [response.status for response in responses] == [b.STATUS_SUCCESS] * 4
        client.send(*[b.Req(b.SMB2_ECHO, b.echo_body()) for _ in range(5)])
        assert client.is_dropped(), "a compound of 5 (limit 4) was answered"


# -- credits ------------------------------------------------------------------------------------------------------

def _echo_asking(client: b.Client, credit_request: int, count: int) -> None:
    """Pipeline `count` ECHOs each asking for `credit_request` credits, then take every answer."""
    ids = []
    for _ in range(count):
        message, (message_id,) = client.build(b.Req(b.SMB2_ECHO, b.echo_body()))
        struct.pack_into("<H", message, _CREDIT_REQUEST_AT, credit_request)
        client.send_raw(bytes(message))
        ids.append(message_id)
    for message_id in ids:
        assert client.receive(message_id).status == b.STATUS_SUCCESS


def _window(client: b.Client) -> int:
    """Message ids granted and not yet used: the client's credits (1 for NEGOTIATE plus every grant) minus the
    ids it has sent ([MS-SMB2] 3.3.1.1). Exact once every request sent has been answered."""
    return client.credits - client.next_message_id


def test_credit_window_never_exceeds_max_credits(server: SmbServer) -> None:
    max_credits = 8192  # smbsrv.config.ServerConfig.max_credits default; the small-limits server keeps it
    with b.connect(server.host, server.port, server.user, server.password) as client:
        windows = []
        for _ in range(6):
            _echo_asking(client, 0xFFFF, count=min(64, _window(client)))
            windows.append(_window(client))
        assert max(windows) <= max_credits, windows
        # The grants reach the cap (this server gives what is asked within it), so the cap was tested.
        assert windows[-1] == max_credits, windows
        # The window is real: its last id works, the one above it ends the connection ([MS-SMB2] 3.3.5.2.3).
        top = client.credits - 1
        assert client.request(b.SMB2_ECHO, b.echo_body(), message_id=top).status == b.STATUS_SUCCESS
        client.send(b.Req(b.SMB2_ECHO, b.echo_body(), message_id=client.credits))
        assert client.is_dropped(), "a message id above the granted window was accepted"


# -- descriptors --------------------------------------------------------------------------------------------------

def test_descriptor_exhaustion_does_not_stop_accepting(tmp_path: Path) -> None:
    # A flood that uses up the server's file descriptors makes accept() fail with EMFILE for a while; once the
    # flood is gone the server must accept again.
    with _server(tmp_path) as server:
        pid = server.process.pid
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 32, in_use + 32))
        flood: list[socket.socket] = []
        try:
            for _ in range(64):
                flood.append(socket.create_connection((server.host, server.port), timeout=5))
            time.sleep(1)
        finally:
            for sock in flood:
                sock.close()
        time.sleep(1)
        deadline = time.monotonic() + 5
        while not _negotiates(server):
            assert time.monotonic() < deadline, "the server no longer accepts connections after EMFILE"
            time.sleep(0.5)


def _negotiates(server: SmbServer) -> bool:
    """True when a new connection gets a NEGOTIATE answer within 2 s."""
    try:
        with b.Client(server.host, server.port, timeout_s=2.0) as client:
            return client.negotiate().status == b.STATUS_SUCCESS
    except (b.ConnectionDropped, OSError):
        return False
