"""The whole request path without sockets, fed hostile requests ([MS-SMB2] 3.3.5.2 and each command's 3.3.5.x).

A real ServerState over a temporary share and a Connection that has negotiated, logged on (NTLMv2 through
pyspnego) and connected a disk share and IPC$ (tests/fuzz/sans_io.py) receive:

- hypothesis-generated requests of every command (tests/fuzz/requests.py): bodies with lying lengths, offsets
  and counts, damaged bytes, compounds with related misuse and NextCommand out of bounds, bogus FileIds,
  SessionIds and TreeIds, credit charges from 0 to 0xFFFF;
- hand-written cases for lying lengths that must be refused before memory is allocated for them, compound
  framing, and the bugs found so far (kept as tests that fail until the server is fixed).

The only acceptable outcomes are SmbError answers and ProtocolViolation (connection dropped): see Finding in
tests/fuzz/sans_io.py for what fails a test.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests import builders as b
from tests.fuzz import requests as hostile
from tests.fuzz.sans_io import Peer, SansIoServer

MIB = 1024 * 1024
# No shrinking: a Finding already names the message in hex, and shrinking a request path costs minutes. The
# examples change from run to run (hypothesis's own random seed); a failing one is kept in the example database
# (.hypothesis/, replayed first on the next run) and printed as a @reproduce_failure blob (print_blob).
_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)


@pytest.fixture(scope="module")
def server() -> Iterator[SansIoServer]:
    instance = SansIoServer()
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def peer(server: SansIoServer) -> Iterator[Peer]:
    connected = server.connect()
    try:
        yield connected
    finally:
        connected.close()


def handles(peer: Peer) -> hostile.Handles:
    return hostile.Handles(peer.file_id, peer.dir_id, peer.pipe_id, peer.session_id, peer.tree_id, peer.ipc_tree_id)


def only(peer: Peer, req: b.Req, **kwargs: object) -> int:
    """Send one request that must be answered (not dropped); return its status."""
    outcome = peer.request(req, **kwargs)  # type: ignore[arg-type]
    assert not outcome.dropped and len(outcome.responses) == 1, outcome
    return outcome.responses[0].status


# -- generated requests ------------------------------------------------------------------------------------------

@settings(max_examples=250, deadline=None, print_blob=True, phases=_PHASES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_requests(server: SansIoServer, data: st.DataObject) -> None:
    src = hostile.HypothesisSource(data)
    dialect = hostile.choice(src, (0x0311, 0x0311, 0x0302, 0x0210, 0x0202))
    with server.connect(dialect) as connected:
        for _ in range(src.integer(1, 3)):
            if connected.dropped:
                break
            # One request in ten is held to a memory bound: a lying length must not become an allocation.
            bound = 48 * MIB if src.integer(0, 9) == 0 else None
            connected.feed(hostile.message(src, handles(connected), connected.builder), max_alloc_bytes=bound)


@settings(max_examples=60, deadline=None, print_blob=True, phases=_PHASES,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_requests_before_logon(server: SansIoServer, data: st.DataObject) -> None:
    """NEGOTIATE and SESSION_SETUP bodies on a connection that has only negotiated (or not even that)."""
    src = hostile.HypothesisSource(data)
    peer = Peer(server)
    try:
        if src.integer(0, 1):
            server.loop.run_until_complete(peer.set_up_negotiate(0x0311))
        for _ in range(src.integer(1, 3)):
            if peer.dropped:
                break
            command = hostile.choice(src, (b.SMB2_NEGOTIATE, b.SMB2_SESSION_SETUP, b.SMB2_SESSION_SETUP,
                                           b.SMB2_ECHO, b.SMB2_TREE_CONNECT))
            req = hostile.element(src, hostile.Handles(), command)
            message, _ = peer.builder.build(req, sign=False)
            peer.feed(message)
    finally:
        peer.close()


@settings(max_examples=80, deadline=None, print_blob=True, phases=_PHASES)
@given(message=st.binary(max_size=400), prefix=st.sampled_from([b"\xfeSMB", b"\xffSMB", b"\xfdSMB", b"\xfcSMB", b""]))
def test_arbitrary_bytes_after_logon(server: SansIoServer, message: bytes, prefix: bytes) -> None:
    with server.connect() as connected:
        connected.feed(prefix + message)


# -- lying lengths are refused before anything is allocated for them ---------------------------------------------

LYING_LENGTHS: list[tuple[str, Callable[[Peer], b.Req]]] = [
    ("READ Length 0xFFFFFFFF", lambda p: b.Req(b.SMB2_READ, b.read_body(p.file_id, 0, 0xFFFFFFFF), credit_charge=256)),
    ("READ Length 0xFFFFFFFF charge 0", lambda p: b.Req(b.SMB2_READ, b.read_body(p.file_id, 0, 0xFFFFFFFF),
                                                         credit_charge=0)),
    ("READ MinimumCount 0xFFFFFFFF", lambda p: b.Req(b.SMB2_READ, b.read_body(p.file_id, 0, 100, minimum=0xFFFFFFFF))),
    ("pipe READ 0xFFFFFFFF", lambda p: b.Req(b.SMB2_READ, b.read_body(p.pipe_id, 0, 0xFFFFFFFF), credit_charge=256,
                                             tree_id=p.ipc_tree_id)),
    ("QUERY_INFO OutputBufferLength 0xFFFFFFFF",
     lambda p: b.Req(b.SMB2_QUERY_INFO, b.query_info_body(p.file_id, 1, 18, output_length=0xFFFFFFFF))),
    ("QUERY_INFO security 0xFFFFFFFF",
     lambda p: b.Req(b.SMB2_QUERY_INFO, b.query_info_body(p.file_id, 3, 0, output_length=0xFFFFFFFF,
                                                         additional_information=7))),
    ("QUERY_DIRECTORY OutputBufferLength 0xFFFFFFFF",
     lambda p: b.Req(b.SMB2_QUERY_DIRECTORY, b.query_directory_body(p.dir_id, output_length=0xFFFFFFFF))),
    ("IOCTL MaxOutputResponse 0xFFFFFFFF",
     lambda p: b.Req(b.SMB2_IOCTL, b.ioctl_body(p.file_id, 0x000900A8, max_output=0xFFFFFFFF) + b"\0")),
    ("pipe TRANSCEIVE MaxOutputResponse 0xFFFFFFFF",
     lambda p: b.Req(b.SMB2_IOCTL, b.ioctl_body(p.pipe_id, 0x0011C017, b"\x05\x00\x0b\x03" + bytes(12),
                                                max_output=0xFFFFFFFF), tree_id=p.ipc_tree_id)),
    ("CHANGE_NOTIFY OutputBufferLength 0xFFFFFFFF",
     lambda p: b.Req(b.SMB2_CHANGE_NOTIFY, struct.pack("<HHI16sII", 32, 0, 0xFFFFFFFF, b.file_id_bytes(p.dir_id),
                                                       0xFFF, 0))),
    ("WRITE Length 0xFFFFFFFF", lambda p: b.Req(b.SMB2_WRITE, _lying_write(p.file_id, 0xFFFFFFFF))),
    ("SET_INFO BufferLength 0xFFFFFFFF", lambda p: b.Req(b.SMB2_SET_INFO, _lying_set_info(p.file_id))),
    ("LOCK LockCount 0xFFFF", lambda p: b.Req(b.SMB2_LOCK, _lying_lock(p.file_id))),
    ("SET_INFO EOF 2^62", lambda p: b.Req(b.SMB2_SET_INFO, b.set_info_body(p.file_id, 1, 20, struct.pack("<Q", 1 << 62)))),
    ("SET_INFO allocation 2^62",
     lambda p: b.Req(b.SMB2_SET_INFO, b.set_info_body(p.file_id, 1, 19, struct.pack("<Q", 1 << 62)))),
    ("QUERY_INFO EA list with lying lengths",
     lambda p: b.Req(b.SMB2_QUERY_INFO, b.query_info_body(p.file_id, 1, 15, output_length=0xFFFFFFFF,
                                                         input_buffer=struct.pack("<IB", 0, 0xFF) + b"x" * 4))),
]


def _lying_write(file_id: tuple[int, int], length: int) -> bytes:
    body = bytearray(b.write_body(file_id, 0, b"abc"))
    struct.pack_into("<I", body, 4, length)
    return bytes(body)


def _lying_set_info(file_id: tuple[int, int]) -> bytes:
    body = bytearray(b.set_info_body(file_id, 1, 20, struct.pack("<Q", 5)))
    struct.pack_into("<I", body, 4, 0xFFFFFFFF)
    return bytes(body)


def _lying_lock(file_id: tuple[int, int]) -> bytes:
    body = bytearray(b.lock_body(file_id, [(0, 1, b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY)]))
    struct.pack_into("<H", body, 2, 0xFFFF)
    return bytes(body)


@pytest.mark.parametrize(("label", "build"), LYING_LENGTHS, ids=[label for label, _ in LYING_LENGTHS])
def test_lying_length_stays_bounded(peer: Peer, label: str, build: Callable[[Peer], b.Req]) -> None:
    # 2 MiB: far below any of the lies, far above what answering a small file or directory needs.
    outcome = peer.request(build(peer), max_alloc_bytes=2 * MIB)
    assert outcome.dropped or len(outcome.responses) == 1


@pytest.mark.parametrize(("body", "charge"), [(0xFFFFFFFF, 256), (0xFFFFFFFF, 0), (8 * MIB + 1, 129)])
def test_read_beyond_max_read_size_is_invalid_parameter(peer: Peer, body: int, charge: int) -> None:
    status = only(peer, b.Req(b.SMB2_READ, b.read_body(peer.file_id, 0, body), credit_charge=charge),
                  max_alloc_bytes=2 * MIB)
    assert status == b.STATUS_INVALID_PARAMETER, b.status_name(status)


def test_write_length_past_the_message_is_invalid_parameter(peer: Peer) -> None:
    for length in (4, 0xFFFF, 0xFFFFFFFF):
        status = only(peer, b.Req(b.SMB2_WRITE, _lying_write(peer.file_id, length)), max_alloc_bytes=2 * MIB)
        assert status == b.STATUS_INVALID_PARAMETER, b.status_name(status)


# -- compound framing --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("next_command", [8, 60, 63, 65, 0xFFFFFFF8, 0x80000000, "past_end", "unaligned"])
def test_bad_next_command_drops_the_connection(peer: Peer, next_command: int | str) -> None:
    message, _ = peer.builder.build(b.Req(b.SMB2_ECHO, b.echo_body()), b.Req(b.SMB2_ECHO, b.echo_body()),
                                    sign=False)
    (first,) = struct.unpack_from("<I", message, 20)
    value = {"past_end": len(message) + 8, "unaligned": first + 4}.get(str(next_command), next_command)
    struct.pack_into("<I", message, 20, value)
    assert peer.feed(message).dropped


def test_next_command_looping_onto_itself_is_impossible(peer: Peer) -> None:
    # NextCommand is relative and unsigned, so a chain cannot point backwards; the largest values wrap nowhere
    # and a last element that says there is more must not make the server read past the message.
    message, _ = peer.builder.build(b.Req(b.SMB2_ECHO, b.echo_body()), sign=False)
    struct.pack_into("<I", message, 20, 72)
    message += bytes(4)
    assert peer.feed(message).dropped


def test_truncated_second_header_drops_the_connection(peer: Peer) -> None:
    message, _ = peer.builder.build(b.Req(b.SMB2_ECHO, b.echo_body()), b.Req(b.SMB2_ECHO, b.echo_body()),
                                    sign=False)
    assert peer.feed(message[:-10]).dropped


def test_long_compound_of_echoes(peer: Peer) -> None:
    """Many small elements: the server answers each one or refuses the compound, within bounded memory."""
    reqs = [b.Req(b.SMB2_ECHO, b.echo_body()) for _ in range(200)]
    outcome = peer.request(*reqs, max_alloc_bytes=4 * MIB)
    assert outcome.dropped or outcome.statuses == [b.STATUS_SUCCESS] * 200


def test_related_chain_with_bogus_ids_uses_the_first_elements_ids(peer: Peer) -> None:
    outcome = peer.request(
        b.Req(b.SMB2_CREATE, b.create_body("data.bin", desired_access=b.GENERIC_READ)),
        b.Req(b.SMB2_READ, b.read_body(b.RELATED_FILE_ID, 0, 4), related=True, tree_id=0xDEAD, session_id=0xBEEF),
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True, tree_id=0, session_id=0))
    assert [b.status_name(s) for s in outcome.statuses] == ["STATUS_SUCCESS"] * 3
    assert b.read_data(outcome.responses[1]) == bytes(range(4))


def test_related_first_element_and_related_after_unrelated(peer: Peer) -> None:
    outcome = peer.request(
        b.Req(b.SMB2_READ, b.read_body(b.RELATED_FILE_ID, 0, 4), related=True),
        b.Req(b.SMB2_ECHO, b.echo_body()),
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True))
    # A related first element inherits no session: STATUS_INVALID_PARAMETER ([MS-SMB2] 3.3.5.2.7.2). The unrelated
    # ECHO starts a new chain and succeeds; the CLOSE related to it inherits its session but no handle, so its
    # all-ones FileId names nothing: STATUS_FILE_CLOSED (Windows and Samba, smbtorture smb2.compound.invalid1).
    assert [b.status_name(s) for s in outcome.statuses] == [
        "STATUS_INVALID_PARAMETER", "STATUS_SUCCESS", "STATUS_FILE_CLOSED"]


def test_message_id_reuse_inside_a_compound_drops_the_connection(peer: Peer) -> None:
    message_id = peer.builder.next_message_id
    outcome = peer.request(b.Req(b.SMB2_ECHO, b.echo_body(), message_id=message_id),
                           b.Req(b.SMB2_ECHO, b.echo_body(), message_id=message_id))
    assert outcome.dropped


# -- bogus ids ---------------------------------------------------------------------------------------------------

FILE_ID_COMMANDS: list[tuple[str, Callable[[tuple[int, int]], b.Req]]] = [
    ("CLOSE", lambda f: b.Req(b.SMB2_CLOSE, b.close_body(f))),
    ("FLUSH", lambda f: b.Req(b.SMB2_FLUSH, b.flush_body(f))),
    ("READ", lambda f: b.Req(b.SMB2_READ, b.read_body(f, 0, 10))),
    ("WRITE", lambda f: b.Req(b.SMB2_WRITE, b.write_body(f, 0, b"x"))),
    ("LOCK", lambda f: b.Req(b.SMB2_LOCK, b.lock_body(f, [(0, 1, 0x12)]))),
    ("QUERY_DIRECTORY", lambda f: b.Req(b.SMB2_QUERY_DIRECTORY, b.query_directory_body(f))),
    ("CHANGE_NOTIFY", lambda f: b.Req(b.SMB2_CHANGE_NOTIFY, struct.pack("<HHI16sII", 32, 0, 4096,
                                                                        b.file_id_bytes(f), 1, 0))),
    ("QUERY_INFO", lambda f: b.Req(b.SMB2_QUERY_INFO, b.query_info_body(f, 1, 5))),
    ("SET_INFO", lambda f: b.Req(b.SMB2_SET_INFO, b.set_info_body(f, 1, 20, bytes(8)))),
    ("IOCTL", lambda f: b.Req(b.SMB2_IOCTL, b.ioctl_body(f, 0x000900A8) + b"\0")),
]


@pytest.mark.parametrize(("command", "build"), FILE_ID_COMMANDS, ids=[name for name, _ in FILE_ID_COMMANDS])
@pytest.mark.parametrize("kind", ["made_up", "wrong_persistent", "related_without_create", "zero"])
def test_bogus_file_id_is_file_closed(peer: Peer, command: str, build: Callable[[tuple[int, int]], b.Req],
                                      kind: str) -> None:
    file_id = {"made_up": (0x1234567, 0x7654321), "wrong_persistent": (peer.file_id[0] + 99, peer.file_id[1]),
               "related_without_create": b.RELATED_FILE_ID, "zero": (0, 0)}[kind]
    status = only(peer, build(file_id))
    assert status == b.STATUS_FILE_CLOSED, b.status_name(status)


def test_file_id_of_the_other_tree_is_file_closed(peer: Peer) -> None:
    status = only(peer, b.Req(b.SMB2_READ, b.read_body(peer.pipe_id, 0, 10)))  # the pipe's id on the disk tree
    assert status == b.STATUS_FILE_CLOSED, b.status_name(status)


@pytest.mark.parametrize("session_id", [0, 0xFFFFFFFFFFFFFFFF, 12345])
def test_bogus_session_id(peer: Peer, session_id: int) -> None:
    status = only(peer, b.Req(b.SMB2_READ, b.read_body(peer.file_id, 0, 1), session_id=session_id))
    assert status == b.STATUS_USER_SESSION_DELETED, b.status_name(status)


@pytest.mark.parametrize("tree_id", [0, 0xFFFFFFFF, 77])
def test_bogus_tree_id(peer: Peer, tree_id: int) -> None:
    status = only(peer, b.Req(b.SMB2_READ, b.read_body(peer.file_id, 0, 1), tree_id=tree_id))
    assert status == b.STATUS_NETWORK_NAME_DELETED, b.status_name(status)


# -- bugs found by the generated requests (they fail until the server is fixed) ----------------------------------

@pytest.mark.parametrize("info_class", [4, 5, 6, 7, 8, 9, 14, 18, 21, 22, 28, 34, 35, 59])
def test_query_info_on_pipe(peer: Peer, info_class: int) -> None:
    status = only(peer, b.Req(b.SMB2_QUERY_INFO, b.query_info_body(peer.pipe_id, 1, info_class),
                              tree_id=peer.ipc_tree_id))
    assert status != 0xC00000E5  # STATUS_INTERNAL_ERROR (and the server must log no internal error)


@pytest.mark.parametrize("offset", [0x7FFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFB, 0x7FFFFFFFFFFFFFF8])
def test_read_offset_plus_length_past_2_63(peer: Peer, offset: int) -> None:
    status = only(peer, b.Req(b.SMB2_READ, b.read_body(peer.file_id, offset, 9)))
    assert status in (b.STATUS_INVALID_PARAMETER, b.STATUS_END_OF_FILE), b.status_name(status)
