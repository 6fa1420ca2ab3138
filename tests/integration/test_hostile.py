"""Adversarial input against the real daemon over raw sockets ([MS-SMB2] 2.1, 3.3.5.2, 3.3.5.4, 3.3.5.5).

What test_errors.py and test_protocol_edges.py do not already cover: Direct TCP frames that lie about their
length or type, garbage SPNEGO/NTLM tokens, negotiate contexts with lying counts and lengths, compound
NextCommand values out of bounds, credit abuse, out-of-range READ/WRITE offsets and lengths, IOCTL input offsets
that point nowhere, FileIds used after a compound closed them, and LOGOFF / TREE_DISCONNECT while a blocking
LOCK is pending. After each case a fresh client must still be served and the server log must show no internal
error.
"""

from __future__ import annotations

import os
import socket
import struct
import time
import uuid
from collections.abc import Iterator

import pytest

from tests import builders as b
from tests.conftest import SmbServer

_EXCLUSIVE_NOW = b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY


@pytest.fixture
def client(server: SmbServer) -> Iterator[b.Client]:
    with b.connect(server.host, server.port, server.user, server.password, sign=True) as connected:
        yield connected


@pytest.fixture
def name() -> str:
    return f"h-{uuid.uuid4().hex[:10]}"


def _status(response: b.Response) -> str:
    return b.status_name(response.status)


def _raw_socket(server: SmbServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=10)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes (EOF or reset) within `seconds` without sending anything."""
    sock.settimeout(seconds)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _file(client: b.Client, name: str, data: bytes = b"0123456789") -> tuple[int, int]:
    file_id = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                          disposition=b.FILE_CREATE, options=b.FILE_DELETE_ON_CLOSE)
    assert client.write(file_id, 0, data).status == b.STATUS_SUCCESS
    return file_id


# -- Direct TCP framing ([MS-SMB2] 2.1) ------------------------------------------------------------------------------

def test_huge_length_before_logon_closes_before_the_body(server: SmbServer) -> None:
    with _raw_socket(server) as sock:
        started = time.monotonic()
        sock.sendall(b"\x00\xff\xff\xff")  # 16 MiB announced, nothing follows
        assert _closed_within(sock, 5.0)
        assert time.monotonic() - started < 5.0


def test_huge_length_after_logon_closes_before_the_body(client: b.Client) -> None:
    # 0xFFFFFF is more than MaxTransactSize (8 MiB) plus headers: refused without waiting for 16 MiB.
    assert client.sock is not None
    client.sock.sendall(b"\x00\xff\xff\xff")
    assert _closed_within(client.sock, 5.0)


@pytest.mark.parametrize("prefix", [b"\x81\x00\x00\x44", b"\x82\x00\x00\x00", b"\x00\x00\x00\x00",
                                    b"\x00\x00\x00\x03"])
def test_bad_frame_type_or_tiny_length_closes(server: SmbServer, prefix: bytes) -> None:
    with _raw_socket(server) as sock:
        sock.sendall(prefix + bytes(0x44))
        assert _closed_within(sock, 5.0)


def test_keepalives_are_ignored(server: SmbServer) -> None:
    with b.Client(server.host, server.port) as raw:
        assert raw.sock is not None
        raw.sock.sendall(b"\x85\x00\x00\x00" * 3)
        assert _status(raw.negotiate()) == "STATUS_SUCCESS"


@pytest.mark.parametrize("size", [4, 10, 63])
def test_message_shorter_than_a_header_drops(server: SmbServer, size: int) -> None:
    with b.Client(server.host, server.port) as raw:
        raw.send_raw(b"\xfeSMB" + bytes(size - 4))
        assert raw.is_dropped()


def test_frame_truncated_by_the_client_leaves_the_server_serving(server: SmbServer) -> None:
    with _raw_socket(server) as sock:
        sock.sendall(struct.pack(">I", 1000) + b"\xfeSMB" + bytes(100))  # 1000 announced, 104 sent, then EOF
        sock.shutdown(socket.SHUT_WR)
        assert _closed_within(sock, 5.0)


def test_truncated_body_after_logon(client: b.Client) -> None:
    message, _ = client.build(b.Req(b.SMB2_READ, b.read_body((1, 1), 0, 10)), sign=False)
    client.send_raw(bytes(message[:b.HEADER_SIZE + 20]))
    response = client.receive_message()[0]
    assert _status(response) == "STATUS_INVALID_PARAMETER"


# -- garbage authentication tokens ([MS-SMB2] 3.3.5.5) ---------------------------------------------------------------

GARBAGE_TOKENS = {
    "random": os.urandom(64),
    "ntlm_bad_type": b"NTLMSSP\x00" + struct.pack("<I", 9) + bytes(32),
    "ntlm_truncated": b"NTLMSSP\x00\x01\x00",
    "spnego_lying_length": b"\x60\x84\xff\xff\xff\xff\x06\x06\x2b\x06\x01\x05\x05\x02",
    "spnego_deep_nesting": b"\x60\x80" * 200,
    "ntlm_negotiate_lying_fields": b"NTLMSSP\x00\x01\x00\x00\x00\x15\x82\x08\x62" + struct.pack(
        "<HHIHHI", 0xFFFF, 0xFFFF, 0xFFFFFFF0, 0x100, 0x100, 0x7FFFFFFF),
}


@pytest.mark.parametrize("token", list(GARBAGE_TOKENS.values()), ids=list(GARBAGE_TOKENS))
def test_garbage_first_token(server: SmbServer, token: bytes) -> None:
    with b.Client(server.host, server.port) as raw:
        assert _status(raw.negotiate()) == "STATUS_SUCCESS"
        response = raw.request(b.SMB2_SESSION_SETUP, b.session_setup_body(token), session_id=0)
        allowed = {"STATUS_LOGON_FAILURE", "STATUS_INVALID_PARAMETER"}
        if token == GARBAGE_TOKENS["ntlm_negotiate_lying_fields"]:
            # The flags do not announce the domain and workstation fields ([MS-NLMP] 2.2.1.1), so a server may
            # ignore what they say and answer with a CHALLENGE.
            allowed.add("STATUS_MORE_PROCESSING_REQUIRED")
        assert _status(response) in allowed
        assert _status(raw.request(b.SMB2_ECHO, b.echo_body(), session_id=0)) == "STATUS_SUCCESS"


@pytest.mark.parametrize("kind", ["random", "truncated_authenticate", "authenticate_lying_offsets"])
def test_garbage_second_token(server: SmbServer, kind: str) -> None:
    import spnego

    with b.Client(server.host, server.port) as raw:
        assert _status(raw.negotiate()) == "STATUS_SUCCESS"
        auth = spnego.client(server.user, server.password, protocol="ntlm")
        first = raw.request(b.SMB2_SESSION_SETUP, b.session_setup_body(auth.step() or b""), session_id=0)
        assert _status(first) == "STATUS_MORE_PROCESSING_REQUIRED"
        session_id = first.header.session_id
        offset, length = struct.unpack_from("<HH", first.body, 4)
        authenticate = auth.step(first.body[offset - 64:offset - 64 + length]) or b""
        start = authenticate.find(b"NTLMSSP\x00")
        if kind == "random":
            token = os.urandom(200)
        elif kind == "truncated_authenticate":
            token = authenticate[:start + 40]
        else:  # every Len/MaxLen/Offset triple of the AUTHENTICATE_MESSAGE ([MS-NLMP] 2.2.1.3) points far away
            lying = bytearray(authenticate)
            for field in range(6):
                struct.pack_into("<HHI", lying, start + 12 + 8 * field, 0xFFFF, 0xFFFF, 0xFFFFFF00)
            token = bytes(lying)
        response = raw.request(b.SMB2_SESSION_SETUP, b.session_setup_body(token), session_id=session_id)
        assert _status(response) in ("STATUS_LOGON_FAILURE", "STATUS_INVALID_PARAMETER")


# -- negotiate contexts that lie ([MS-SMB2] 2.2.3.1, 3.3.5.4) ----------------------------------------------------

def _negotiate_with(server: SmbServer, body: bytes) -> str:
    with b.Client(server.host, server.port) as raw:
        response = raw.request(b.SMB2_NEGOTIATE, body)
        return _status(response)


@pytest.mark.parametrize("lie", ["count_too_high", "count_huge", "data_length_past_end", "offset_into_dialects",
                                 "offset_unaligned_past_end"])
def test_negotiate_context_framing_lies(server: SmbServer, lie: str) -> None:
    body = bytearray(b.negotiate_body((0x0311,), [b.preauth_context(), b.signing_context()]))
    (context_offset,) = struct.unpack_from("<I", body, 28)
    if lie == "count_too_high":
        struct.pack_into("<H", body, 32, 3)
    elif lie == "count_huge":
        struct.pack_into("<H", body, 32, 0xFFFF)
    elif lie == "data_length_past_end":
        struct.pack_into("<H", body, context_offset - 64 + 2, 0xFFFF)
    elif lie == "offset_into_dialects":
        struct.pack_into("<I", body, 28, 64 + 36)
    else:
        struct.pack_into("<I", body, 28, 0xFFFFFFFF)
    assert _negotiate_with(server, bytes(body)) == "STATUS_INVALID_PARAMETER"


@pytest.mark.parametrize("data", [
    struct.pack("<HH", 0xFFFF, 32) + struct.pack("<H", 1) + bytes(32),  # HashAlgorithmCount past the data
    struct.pack("<HH", 1, 0xFFFF) + struct.pack("<H", 1) + bytes(32),  # SaltLength past the data
    struct.pack("<HH", 0, 0),  # no algorithm at all
    b"\x01",  # shorter than its own header
], ids=["hash_count", "salt_length", "no_algorithm", "one_byte"])
def test_preauth_context_with_lying_fields(server: SmbServer, data: bytes) -> None:
    body = b.negotiate_body((0x0311,), [b.negotiate_context(b.SMB2_PREAUTH_INTEGRITY_CAPABILITIES, data)])
    assert _negotiate_with(server, body) == "STATUS_INVALID_PARAMETER"


@pytest.mark.parametrize("context_type", [b.SMB2_ENCRYPTION_CAPABILITIES, b.SMB2_SIGNING_CAPABILITIES])
@pytest.mark.parametrize("data", [struct.pack("<H", 0xFFFF) + b"\x01\x00", b"\x05", struct.pack("<H", 0)],
                         ids=["count_past_data", "one_byte", "count_zero"])
def test_cipher_and_signing_contexts_with_lying_counts(server: SmbServer, context_type: int, data: bytes) -> None:
    body = b.negotiate_body((0x0311,), [b.preauth_context(), b.negotiate_context(context_type, data)])
    assert _negotiate_with(server, body) == "STATUS_INVALID_PARAMETER"


# -- compounds and credits ([MS-SMB2] 3.3.5.2.3, 3.3.5.2.7) -------------------------------------------------------

@pytest.mark.parametrize("next_command", [4, 60, 0x44, 0xFFFFFFF8], ids=["tiny", "short_of_header", "unaligned",
                                                                           "wraps"])
def test_compound_next_command_out_of_bounds_drops(client: b.Client, next_command: int) -> None:
    message, _ = client.build(b.Req(b.SMB2_ECHO, b.echo_body()), b.Req(b.SMB2_ECHO, b.echo_body()), sign=False)
    struct.pack_into("<I", message, 20, next_command)
    client.send_raw(bytes(message))
    assert client.is_dropped()


def test_last_element_claiming_a_successor_drops(client: b.Client) -> None:
    message, _ = client.build(b.Req(b.SMB2_ECHO, b.echo_body()), sign=False)
    struct.pack_into("<I", message, 20, 72)  # "the next element is 72 bytes on": there is none
    client.send_raw(bytes(message + bytes(4)))
    assert client.is_dropped()


def test_message_id_reused_inside_one_compound_drops(client: b.Client) -> None:
    message_id = client.next_message_id
    client.next_message_id += 1
    client.send(b.Req(b.SMB2_ECHO, b.echo_body(), message_id=message_id),
                b.Req(b.SMB2_ECHO, b.echo_body(), message_id=message_id), sign=False)
    assert client.is_dropped()


def test_credit_charge_zero_with_a_large_read(client: b.Client, name: str) -> None:
    file_id = _file(client, name)
    written = client.request(b.SMB2_WRITE, b.write_body(file_id, 0, b"z" * 200_000), credit_charge=4)
    assert _status(written) == "STATUS_SUCCESS"
    response = client.request(b.SMB2_READ, b.read_body(file_id, 0, 200_000), credit_charge=0)
    assert _status(response) == "STATUS_INVALID_PARAMETER"
    assert _status(client.read(file_id, 0, 10)) == "STATUS_SUCCESS"


# -- out-of-range READ/WRITE and IOCTL input ([MS-SMB2] 3.3.5.12, 3.3.5.13, 3.3.5.15) ----------------------------

@pytest.mark.parametrize(("offset", "expected"), [
    # Signed-positive offsets whose 9-byte range would end past 2^63 - 1, and signed-negative ones (bit 63 set),
    # are INVALID_PARAMETER; a range that ends below 2^63 is merely past the end of the file. Samba 4.17
    # answers each of these raw READs the same.
    (0x7FFFFFFFFFFFFFFF, "STATUS_INVALID_PARAMETER"),
    (0x7FFFFFFFFFFFFFF8, "STATUS_INVALID_PARAMETER"),
    (0x7FFFFFFFFFFFFFF0, "STATUS_END_OF_FILE"),
    (0x8000000000000000, "STATUS_INVALID_PARAMETER"),
    (0xFFFFFFFFFFFFFFFE, "STATUS_INVALID_PARAMETER"),
    (0xFFFFFFFFFFFFFFFF, "STATUS_INVALID_PARAMETER"),
])
def test_read_at_offsets_near_2_63(client: b.Client, name: str, offset: int, expected: str) -> None:
    file_id = _file(client, name)
    response = client.request(b.SMB2_READ, b.read_body(file_id, offset, 9))
    assert _status(response) == expected


@pytest.mark.parametrize("length", [0xFFFFFFFF, 8 * 1024 * 1024 + 1])
def test_read_length_beyond_max_read_size(client: b.Client, name: str, length: int) -> None:
    file_id = _file(client, name)
    response = client.request(b.SMB2_READ, b.read_body(file_id, 0, length), credit_charge=256)
    assert _status(response) == "STATUS_INVALID_PARAMETER"


@pytest.mark.parametrize("offset", [0x8000000000000000, 0x7FFFFFFFFFFFFFFF])
def test_write_at_offsets_past_2_63(client: b.Client, name: str, offset: int) -> None:
    file_id = _file(client, name)
    response = client.request(b.SMB2_WRITE, b.write_body(file_id, offset, b"abcdefgh"))
    assert _status(response) == "STATUS_INVALID_PARAMETER"  # Samba 4.17 the same, for 0x7FFFFFFFFFFFFFF8 too


def test_write_beyond_max_write_size(client: b.Client, name: str) -> None:
    """MaxWriteSize (4 MiB by default) is smaller than MaxReadSize (8 MiB); a larger WRITE is refused, the
    largest allowed one lands ([MS-SMB2] 3.3.5.13)."""
    assert client.negotiate_response is not None
    max_read, max_write = struct.unpack_from("<II", client.negotiate_response.body, 32)
    assert (max_read, max_write) == (8 * 1024 * 1024, 4 * 1024 * 1024)
    file_id = _file(client, name)
    response = client.request(b.SMB2_WRITE, b.write_body(file_id, 0, bytes(max_write + 1)), credit_charge=65)
    assert _status(response) == "STATUS_INVALID_PARAMETER"
    response = client.request(b.SMB2_WRITE, b.write_body(file_id, 0, bytes(max_write)), credit_charge=64)
    assert _status(response) == "STATUS_SUCCESS"


@pytest.mark.parametrize(("data_offset", "length"), [(0xFFFF, 8), (64, 8), (112, 0xFFFFFFFF), (112, 9)],
                         ids=["offset_past_end", "offset_into_header", "length_huge", "length_one_past"])
def test_write_data_offset_and_length_lies(client: b.Client, name: str, data_offset: int, length: int) -> None:
    file_id = _file(client, name)
    body = bytearray(b.write_body(file_id, 0, b"abcdefgh"))
    struct.pack_into("<HI", body, 2, data_offset, length)
    assert _status(client.request(b.SMB2_WRITE, bytes(body))) == "STATUS_INVALID_PARAMETER"


@pytest.mark.parametrize(("input_offset", "input_count"), [(0xFFFFFFFF, 4), (64, 4), (120, 0xFFFFFFFF), (120, 33)],
                         ids=["offset_past_end", "offset_into_header", "count_huge", "count_one_past"])
def test_ioctl_input_offset_lies(client: b.Client, name: str, input_offset: int, input_count: int) -> None:
    file_id = _file(client, name)
    body = bytearray(b.ioctl_body(file_id, 0x000900A4, bytes(32)))  # FSCTL_SET_REPARSE_POINT
    struct.pack_into("<II", body, 24, input_offset, input_count)
    assert _status(client.request(b.SMB2_IOCTL, bytes(body))) == "STATUS_INVALID_PARAMETER"


def test_reparse_buffer_with_lying_data_length(client: b.Client, name: str) -> None:
    file_id = _file(client, name)
    reparse = struct.pack("<IHH", 0x80000023, 0xFFFF, 0) + bytes(8)  # ReparseDataLength past the buffer
    response = client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, 0x000900A4, reparse))
    assert response.status != b.STATUS_SUCCESS
    assert _status(response) in ("STATUS_INVALID_PARAMETER", "STATUS_IO_REPARSE_DATA_INVALID", "0xC0000278",
                                 "STATUS_INVALID_BUFFER_SIZE", "0xC0000206")


# -- handles closed under the client's feet -------------------------------------------------------------------------

def test_file_id_used_after_a_compound_closed_it(client: b.Client, name: str) -> None:
    file_id = _file(client, name)
    responses = client.compound(b.Req(b.SMB2_CLOSE, b.close_body(file_id)),
                                b.Req(b.SMB2_READ, b.read_body(file_id, 0, 4)),
                                b.Req(b.SMB2_WRITE, b.write_body(file_id, 0, b"x")))
    assert [_status(r) for r in responses] == ["STATUS_SUCCESS", "STATUS_FILE_CLOSED", "STATUS_FILE_CLOSED"]


def test_pipe_file_id_on_the_disk_tree(server: SmbServer, client: b.Client) -> None:
    disk_tree = client.tree_id
    assert client.tree_connect("IPC$").status == b.STATUS_SUCCESS
    pipe = client.open("srvsvc", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
    response = client.request(b.SMB2_READ, b.read_body(pipe, 0, 10), tree_id=disk_tree)
    assert _status(response) == "STATUS_FILE_CLOSED"
    response = client.request(b.SMB2_QUERY_INFO, b.query_info_body(pipe, b.SMB2_0_INFO_FILE,
                                                                   b.FILE_STANDARD_INFORMATION))
    assert response.status != 0xC00000E5  # STATUS_INTERNAL_ERROR


# -- LOGOFF and TREE_DISCONNECT with a blocking lock pending ([MS-SMB2] 3.3.5.6, 3.3.5.8) --------------------------

def _pending_lock(client: b.Client, name: str) -> int:
    holder = _file(client, name, b"L" * 100)
    waiter = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
    response = client.request(b.SMB2_LOCK, b.lock_body(holder, [(0, 10, _EXCLUSIVE_NOW)]))
    assert _status(response) == "STATUS_SUCCESS"
    (lock_id,) = client.send(b.Req(b.SMB2_LOCK, b.lock_body(waiter, [(0, 10, b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK)])))
    assert _status(client.receive(lock_id, skip_pending=False)) == "STATUS_PENDING"
    return lock_id


@pytest.mark.parametrize("command", ["LOGOFF", "TREE_DISCONNECT"])
def test_teardown_with_a_blocking_lock_pending(client: b.Client, name: str, command: str) -> None:
    lock_id = _pending_lock(client, name)
    code = b.SMB2_LOGOFF if command == "LOGOFF" else b.SMB2_TREE_DISCONNECT
    (teardown_id,) = client.send(b.Req(code, struct.pack("<HH", 4, 0)))
    # Both answers arrive, in either order: the teardown succeeds and the waiting lock ends without being granted.
    teardown = client.receive(teardown_id)
    assert _status(teardown) == "STATUS_SUCCESS"
    final = client.receive(lock_id, skip_pending=False)
    assert final.status not in (b.STATUS_SUCCESS, b.STATUS_PENDING), _status(final)
    echo = client.request(b.SMB2_ECHO, b.echo_body(), sign=False, session_id=0)
    assert _status(echo) == "STATUS_SUCCESS"


def test_connection_drop_with_a_blocking_lock_pending(server: SmbServer, name: str) -> None:
    client = b.connect(server.host, server.port, server.user, server.password, sign=True)
    _pending_lock(client, name)
    client.close()  # the server must cancel the waiter and close both handles (delete-on-close included)
    deadline = time.monotonic() + 5
    while (server.share_path / name).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (server.share_path / name).exists()
