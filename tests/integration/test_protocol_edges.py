"""Protocol edges of the real daemon: credits and message ids, multi-credit requests, size limits, compound
framing, CANCEL, negotiate contexts and signing algorithms ([MS-SMB2] 3.3.5.2, 3.3.5.4, 3.3.4.1).

Companion of test_errors.py (which covers each command's error statuses); here the subject is the framing and
bookkeeping around the commands. Every test ends with a fresh client being served.
"""

from __future__ import annotations

import struct
import uuid

import pytest

from tests import builders as b
from tests.conftest import SmbServer

KIB = 1024


@pytest.fixture
def name() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def _status(response: b.Response) -> str:
    return b.status_name(response.status)


def _negotiate_field(response: b.Response, fmt: str, offset: int) -> int:
    return int(struct.unpack_from(fmt, response.body, offset)[0])


# -- credits and message ids -------------------------------------------------------------------------------------

def test_every_response_grants_a_credit(client: b.Client, name: str) -> None:
    responses = [client.request(b.SMB2_ECHO, b.echo_body()), client.create(name),
                 client.create(name, disposition=b.FILE_CREATE, desired_access=b.GENERIC_WRITE)]
    responses += client.compound(b.Req(b.SMB2_ECHO, b.echo_body()), b.Req(b.SMB2_ECHO, b.echo_body()))
    for response in responses:
        assert response.header.credits >= 1, _status(response)
    client.close_file(b.create_file_id(responses[2].body))


def test_credit_charge_zero_counts_as_one(client: b.Client) -> None:
    first = client.request(b.SMB2_ECHO, b.echo_body(), credit_charge=0)
    assert _status(first) == "STATUS_SUCCESS"
    # The id after it is the next one: nothing was skipped and nothing reused.
    assert _status(client.request(b.SMB2_ECHO, b.echo_body())) == "STATUS_SUCCESS"


def test_multi_credit_request_consumes_its_ids(client: b.Client) -> None:
    start = client.next_message_id
    assert _status(client.request(b.SMB2_ECHO, b.echo_body(), credit_charge=3)) == "STATUS_SUCCESS"
    assert client.next_message_id == start + 3
    assert _status(client.request(b.SMB2_ECHO, b.echo_body())) == "STATUS_SUCCESS"
    # start + 1 lies inside the range the 3-credit request used: reusing it ends the connection.
    client.send(b.Req(b.SMB2_ECHO, b.echo_body(), message_id=start + 1))
    assert client.is_dropped()


def test_out_of_order_message_ids(client: b.Client) -> None:
    base = client.next_message_id
    client.next_message_id += 3
    ids = client.send(b.Req(b.SMB2_ECHO, b.echo_body(), message_id=base + 2))
    ids += client.send(b.Req(b.SMB2_ECHO, b.echo_body(), message_id=base))
    ids += client.send(b.Req(b.SMB2_ECHO, b.echo_body(), message_id=base + 1))
    assert [_status(client.receive(i)) for i in ids] == ["STATUS_SUCCESS"] * 3
    client.send(b.Req(b.SMB2_ECHO, b.echo_body(), message_id=base + 2))
    assert client.is_dropped()


def test_cancel_consumes_no_message_id(client: b.Client) -> None:
    # A CANCEL for a request that is not pending gets no answer at all ([MS-SMB2] 3.3.5.16).
    client.send(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=client.next_message_id + 50))
    client.send(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=0, async_id=0xDEADBEEF))
    response = client.request(b.SMB2_ECHO, b.echo_body())
    assert _status(response) == "STATUS_SUCCESS"
    assert not client._stash, "CANCEL must not be answered"


# -- size limits ----------------------------------------------------------------------------------------------

def _big_file(client: b.Client, name: str, size: int) -> tuple[int, int]:
    file_id = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=b.FILE_CREATE)
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_END_OF_FILE_INFORMATION, struct.pack("<Q", size))
    assert _status(response) == "STATUS_SUCCESS"
    return file_id


def test_large_read_needs_enough_credit_charge(client: b.Client, name: str) -> None:
    # [MS-SMB2] 3.3.5.2.5: with LARGE_MTU, CreditCharge must cover ceil(max(request, response) / 64 KiB).
    file_id = _big_file(client, name, 300 * KIB)
    pattern = bytes(range(251)) * (300 * KIB // 251 + 1)  # 251: a period that no 4 KiB page repeats
    while client.credits - client.next_message_id < 5:
        client.request(b.SMB2_ECHO, b.echo_body())
    written = client.request(b.SMB2_WRITE, b.write_body(file_id, 0, pattern[:300 * KIB]), credit_charge=5)
    assert _status(written) == "STATUS_SUCCESS"
    response = client.request(b.SMB2_READ, b.read_body(file_id, KIB, 256 * KIB), credit_charge=1)
    assert _status(response) == "STATUS_INVALID_PARAMETER"
    response = client.request(b.SMB2_READ, b.read_body(file_id, KIB, 256 * KIB), credit_charge=4)
    assert _status(response) == "STATUS_SUCCESS"
    assert b.read_data(response) == pattern[KIB:KIB + 256 * KIB]
    client.close_file(file_id)


def test_large_write_needs_enough_credit_charge(client: b.Client, name: str) -> None:
    file_id = _big_file(client, name, 0)
    payload = bytes(range(256)) * 512  # 128 KiB
    response = client.request(b.SMB2_WRITE, b.write_body(file_id, 0, payload), credit_charge=1)
    assert _status(response) == "STATUS_INVALID_PARAMETER"
    response = client.request(b.SMB2_WRITE, b.write_body(file_id, 0, payload), credit_charge=2)
    assert _status(response) == "STATUS_SUCCESS"
    assert struct.unpack_from("<I", response.body, 4)[0] == len(payload)
    response = client.request(b.SMB2_READ, b.read_body(file_id, 0, len(payload)), credit_charge=2)
    assert _status(response) == "STATUS_SUCCESS" and b.read_data(response) == payload
    client.close_file(file_id)


def test_read_beyond_max_read_size(client: b.Client, name: str) -> None:
    negotiate = client.negotiate_response
    assert negotiate is not None
    max_read = _negotiate_field(negotiate, "<I", 32)
    file_id = _big_file(client, name, 0)
    charge = (max_read + 1 + 65535) // 65536
    # Collect enough credits for the charge first.
    while client.credits - client.next_message_id < charge:
        client.request(b.SMB2_ECHO, b.echo_body())
    response = client.request(b.SMB2_READ, b.read_body(file_id, 0, max_read + 1), credit_charge=charge)
    # [MS-SMB2] 3.3.5.12: Length greater than Connection.MaxReadSize MUST fail with STATUS_INVALID_PARAMETER.
    assert _status(response) == "STATUS_INVALID_PARAMETER"
    client.close_file(file_id)


def test_smb202_limits(server: SmbServer, name: str) -> None:
    with b.connect(server.host, server.port, server.user, server.password, dialects=(0x0202,)) as client:
        negotiate = client.negotiate_response
        assert negotiate is not None
        assert _negotiate_field(negotiate, "<H", 4) == 0x0202
        assert _negotiate_field(negotiate, "<I", 32) == 65536
        file_id = _big_file(client, name, 128 * KIB)
        pattern = bytes(range(253)) * 260  # 65,780 bytes
        assert _status(client.write(file_id, 100, pattern[:65536])) == "STATUS_SUCCESS"
        response = client.read(file_id, 0, 65536)
        assert _status(response) == "STATUS_SUCCESS"
        assert b.read_data(response) == bytes(100) + pattern[:65436]  # the extended part reads as zeros
        assert _status(client.read(file_id, 0, 65537)) == "STATUS_INVALID_PARAMETER"
        assert _status(client.write(file_id, 0, bytes(65537))) == "STATUS_INVALID_PARAMETER"
        client.close_file(file_id)


# -- compound framing -------------------------------------------------------------------------------------------

def test_compound_responses_are_aligned_and_signed(server: SmbServer, name: str) -> None:
    with b.connect(server.host, server.port, server.user, server.password, sign=True) as client:
        ids = client.send(
            b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                               disposition=b.FILE_CREATE)),
            b.Req(b.SMB2_WRITE, b.write_body(b.RELATED_FILE_ID, 0, b"abc"), related=True),
            b.Req(b.SMB2_QUERY_INFO, b.query_info_body(b.RELATED_FILE_ID, 1, b.FILE_STANDARD_INFORMATION),
                  related=True),
            b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True))
        raw = client.recv_raw()
        responses = client._split(raw)  # verifies each element's signature
        assert [r.header.message_id for r in responses] == ids
        assert [_status(r) for r in responses] == ["STATUS_SUCCESS"] * 4
        for response in responses[:-1]:
            assert response.header.next_command % 8 == 0 and response.header.next_command >= 64
        assert all(r.header.flags & b.SMB2_FLAGS_SIGNED for r in responses)
        end_of_file = struct.unpack_from("<Q", b.output_buffer(responses[2]), 8)[0]
        assert end_of_file == 3


def test_unrelated_compound_with_separate_handles(client: b.Client, name: str) -> None:
    client.write_file(name, b"first")
    client.write_file(name + "-2", b"second")
    one = client.open(name)
    two = client.open(name + "-2")
    responses = client.compound(b.Req(b.SMB2_READ, b.read_body(one, 0, 10)),
                                b.Req(b.SMB2_READ, b.read_body(two, 0, 10)),
                                b.Req(b.SMB2_CLOSE, b.close_body(one)),
                                b.Req(b.SMB2_CLOSE, b.close_body(two)))
    assert [_status(r) for r in responses] == ["STATUS_SUCCESS"] * 4
    assert [b.read_data(r) for r in responses[:2]] == [b"first", b"second"]


def test_related_compound_inherits_tree_and_session(client: b.Client, name: str) -> None:
    # Related requests take SessionId and TreeId from the previous one, whatever their own header says.
    responses = client.compound(
        b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE)),
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True, tree_id=0xBAD, session_id=0xBAD))
    assert [_status(r) for r in responses] == ["STATUS_SUCCESS", "STATUS_SUCCESS"]


def test_compound_with_bad_next_command_drops_connection(client: b.Client) -> None:
    message, _ = client.build(b.Req(b.SMB2_ECHO, b.echo_body()), b.Req(b.SMB2_ECHO, b.echo_body()))
    struct.pack_into("<I", message, 20, 4096)  # points past the end of the message
    client.send_raw(bytes(message))
    assert client.is_dropped()


# -- negotiate contexts and signing algorithms -----------------------------------------------------------------------

def test_negotiate_response_fields(server: SmbServer) -> None:
    with b.Client(server.host, server.port) as client:
        response = client.negotiate()
        assert _status(response) == "STATUS_SUCCESS"
        assert _negotiate_field(response, "<H", 0) == 65
        assert _negotiate_field(response, "<H", 4) == 0x0311
        assert _negotiate_field(response, "<H", 2) & b.SMB2_NEGOTIATE_SIGNING_ENABLED
        assert _negotiate_field(response, "<I", 28) >= 65536  # MaxTransactSize
        security_offset = _negotiate_field(response, "<H", 56)
        assert security_offset % 8 == 0 and security_offset >= 128
        assert _negotiate_field(response, "<I", 60) % 8 == 0  # NegotiateContextOffset
        assert client.signing_algorithm == 1  # AES-CMAC, the only one offered


@pytest.mark.parametrize(("offered", "expected"), [((2, 1, 0), 2), ((0,), 0), ((1, 0), 1)])
def test_signing_algorithms(server: SmbServer, offered: tuple[int, ...], expected: int) -> None:
    with b.Client(server.host, server.port) as client:
        response = client.negotiate((0x0311,), contexts=[b.preauth_context(), b.signing_context(offered)])
        assert _status(response) == "STATUS_SUCCESS"
        assert client.signing_algorithm == expected
        assert client.session_setup(server.user, server.password) == b.STATUS_SUCCESS
        client.sign_requests = True
        assert client.tree_connect("share").status == b.STATUS_SUCCESS
        response = client.create("", options=b.FILE_DIRECTORY_FILE)
        assert _status(response) == "STATUS_SUCCESS" and response.header.flags & b.SMB2_FLAGS_SIGNED


def test_duplicate_preauth_context(server: SmbServer) -> None:
    # [MS-SMB2] 3.3.5.4: more than one SMB2_PREAUTH_INTEGRITY_CAPABILITIES MUST fail with STATUS_INVALID_PARAMETER.
    with b.Client(server.host, server.port) as client:
        response = client.negotiate((0x0311,), contexts=[b.preauth_context(), b.preauth_context()])
        assert _status(response) == "STATUS_INVALID_PARAMETER"


def test_negotiate_context_offset_past_end(server: SmbServer) -> None:
    with b.Client(server.host, server.port) as client:
        body = bytearray(b.negotiate_body((0x0311,), [b.preauth_context()]))
        struct.pack_into("<I", body, 28, 4096)
        response = client.request(b.SMB2_NEGOTIATE, bytes(body))
        assert _status(response) == "STATUS_INVALID_PARAMETER"


def test_posix_context_is_echoed(server: SmbServer) -> None:
    with b.Client(server.host, server.port) as client:
        response = client.negotiate((0x0311,), contexts=[b.preauth_context(), b.posix_context()])
        assert _status(response) == "STATUS_SUCCESS"
        count = _negotiate_field(response, "<H", 6)
        position = _negotiate_field(response, "<I", 60) - 64
        found = []
        for _ in range(count):
            context_type, length = struct.unpack_from("<HH", response.body, position)
            found.append((context_type, response.body[position + 8:position + 8 + length]))
            position += 8 + length
            position += -position % 8
        assert (b.SMB2_POSIX_EXTENSIONS_AVAILABLE, b.POSIX_EXTENSIONS_GUID) in found
        assert any(t == b.SMB2_PREAUTH_INTEGRITY_CAPABILITIES and d[:2] == b"\x01\x00" and d[4:6] == b"\x01\x00"
                   for t, d in found)


def test_logoff_ends_the_session(client: b.Client, name: str) -> None:
    file_id = client.open(name, desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE)
    assert _status(client.request(b.SMB2_LOGOFF, struct.pack("<HH", 4, 0))) == "STATUS_SUCCESS"
    assert _status(client.read(file_id, 0, 1)) == "STATUS_USER_SESSION_DELETED"
    assert _status(client.request(b.SMB2_ECHO, b.echo_body())) == "STATUS_SUCCESS"
