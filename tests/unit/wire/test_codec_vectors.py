"""Request codecs against frames captured from real clients (tests/vectors/smb2_*.hex), field by field, then
re-encoded with the independent encoder of tests/builders.py; and the malformed variants of each frame with the
exact NTSTATUS ([MS-SMB2] 2.2, 3.3.5.2.6: a bad StructureSize, offset or length is STATUS_INVALID_PARAMETER).

Each .hex file holds one SMB2 message without the Direct TCP prefix; its first line says where it came from.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smbsrv.protocol.errors import SmbError
from smbsrv.wire import (
    create,
    header,
    ioctl,
    lock,
    negotiate,
    query,
    readwrite,
    session_setup,
    simple,
    tree_connect,
)
from smbsrv.wire.status import NtStatus
from tests import builders as b

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
HEADER_SIZE = 64


def load(name: str) -> bytes:
    lines = (VECTORS / f"smb2_{name}.hex").read_text().splitlines()
    assert lines[0].startswith("# ") and "captured" in lines[0], "the first line must say where the frame came from"
    return bytes.fromhex("".join(line.strip() for line in lines[1:] if not line.startswith("#")))


def decode(decoder: Callable[[memoryview], Any], message: bytes | bytearray) -> Any:
    return decoder(memoryview(bytes(message)))


def assert_status(decoder: Callable[[memoryview], Any], message: bytes | bytearray,
                  status: NtStatus = NtStatus.STATUS_INVALID_PARAMETER) -> None:
    with pytest.raises(SmbError) as raised:
        decode(decoder, message)
    assert raised.value.status == status, raised.value.status.name


def patched(message: bytes | bytearray, body_offset: int, fmt: str, value: int) -> bytearray:
    out = bytearray(message)
    struct.pack_into(fmt, out, HEADER_SIZE + body_offset, value)
    return out


# -- captured frames, field by field ------------------------------------------------------------------------------

def test_header_of_captured_frames() -> None:
    tree_connect_header = header.decode_header(load("tree_connect"))
    assert tree_connect_header.command == 3 and tree_connect_header.message_id == 3
    assert tree_connect_header.session_id == 0x4ED90000000001 and tree_connect_header.tree_id == 0
    assert tree_connect_header.next_command == 0 and not tree_connect_header.is_async
    query_directory_header = header.decode_header(load("query_directory"))
    assert query_directory_header.credit_charge == 128 and query_directory_header.tree_id == 1


def test_negotiate_vector() -> None:
    message = load("negotiate")
    request = decode(negotiate.decode_request, message)
    assert request.dialects == (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
    assert request.security_mode == 1 and request.capabilities == 0x7F
    assert request.client_guid == bytes.fromhex("372dd14d942c93469f02831fa1e4fad8")
    assert [context.context_type for context in request.contexts] == [1, 2, 8, 5]
    preauth = request.contexts[0].data
    assert struct.unpack_from("<HHH", preauth) == (1, 32, 1) and len(preauth) == 38  # SHA-512, 32-byte salt
    assert request.contexts[1].data == struct.pack("<5H", 4, 2, 1, 4, 3)  # GCM-128, CCM-128, GCM-256, CCM-256
    assert request.contexts[2].data == struct.pack("<4H", 3, 2, 1, 0)  # GMAC, CMAC, HMAC-SHA256
    assert request.contexts[3].data.decode("utf-16-le") == "127.0.0.1"  # NETNAME_NEGOTIATE_CONTEXT_ID
    contexts = [b.negotiate_context(c.context_type, c.data) for c in request.contexts]
    assert b.negotiate_body(request.dialects, contexts, security_mode=1, capabilities=0x7F,
                            client_guid=request.client_guid) == message[HEADER_SIZE:]


def test_session_setup_vector() -> None:
    message = load("session_setup")
    request = decode(session_setup.decode_request, message)
    assert (request.flags, request.security_mode, request.capabilities, request.previous_session_id) == (0, 1, 1, 0)
    token = request.security_buffer
    assert len(token) == 74 and token[:2] == b"\x60\x48"  # SPNEGO NegTokenInit ([RFC4178] 4.2.1)
    assert token[token.index(b"NTLMSSP\0"):][8:12] == b"\x01\x00\x00\x00"  # NTLM NEGOTIATE_MESSAGE
    body = bytearray(b.session_setup_body(token, security_mode=1))
    struct.pack_into("<I", body, 4, 1)  # Capabilities: SMB2_GLOBAL_CAP_DFS
    assert bytes(body) == message[HEADER_SIZE:]


def test_tree_connect_vector() -> None:
    message = load("tree_connect")
    request = decode(tree_connect.decode_request, message)
    assert (request.flags, request.path) == (0, "\\\\127.0.0.1\\share")
    assert b.tree_connect_body(request.path) == message[HEADER_SIZE:]


def test_create_vector() -> None:
    message = load("create")
    request = decode(create.decode_request, message)
    assert (request.requested_oplock_level, request.impersonation_level) == (0, 2)
    assert request.desired_access == b.GENERIC_READ | b.GENERIC_WRITE
    assert (request.file_attributes, request.share_access) == (b.FILE_ATTRIBUTE_NORMAL, b.FILE_SHARE_READ)
    assert (request.create_disposition, request.create_options) == (b.FILE_OVERWRITE_IF, b.FILE_NON_DIRECTORY_FILE)
    assert bytes(request.name).decode("utf-16-le") == "lockme.txt"
    assert set(request.contexts) == {b"MxAc", b"QFid"}
    assert len(request.contexts[b"MxAc"]) == 8 and request.contexts[b"QFid"] == b""  # MxAc carries a Timestamp


@pytest.mark.parametrize(("name", "decoder", "file_id"), [
    ("close", create.decode_close, (1, 1)),
    ("flush", readwrite.decode_flush, (22, 22)),
])
def test_close_and_flush_vectors(name: str, decoder: Callable[[memoryview], Any], file_id: tuple[int, int]) -> None:
    message = load(name)
    request = decode(decoder, message)
    if name == "close":
        assert (request.flags, request.file_id) == (0, file_id)
        assert b.close_body(file_id) == message[HEADER_SIZE:]
    else:
        assert request == file_id
        assert b.flush_body(file_id) == message[HEADER_SIZE:]


def test_read_vector() -> None:
    message = load("read")
    request = decode(readwrite.decode_read, message)
    assert (request.length, request.offset, request.file_id) == (12, 0, (4, 4))
    assert (request.flags, request.minimum_count, request.channel) == (0, 0, 0)
    assert b.read_body((4, 4), 0, 12) == message[HEADER_SIZE:]


def test_write_vector() -> None:
    message = load("write")
    request = decode(readwrite.decode_write, message)
    assert (request.offset, request.file_id, request.channel, request.flags) == (0, (3, 3), 0, 0)
    assert bytes(request.data) == b"data for put\n"
    assert b.write_body((3, 3), 0, bytes(request.data)) == message[HEADER_SIZE:]


def test_lock_vector() -> None:
    message = load("lock")
    request = decode(lock.decode_request, message)
    assert (request.lock_sequence, request.file_id) == (0, (22, 22))
    assert request.locks == (lock.LockElement(0, 4, b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY),)
    assert b.lock_body((22, 22), [(0, 4, 0x12)]) == message[HEADER_SIZE:]


def test_ioctl_vector() -> None:
    message = load("ioctl")
    request = decode(ioctl.decode_request, message)
    assert (request.ctl_code, request.file_id) == (0x00144064, (8, 8))  # FSCTL_SRV_ENUMERATE_SNAPSHOTS
    assert bytes(request.input) == b"" and (request.max_input_response, request.max_output_response) == (0, 16)
    assert request.flags == b.SMB2_0_IOCTL_IS_FSCTL
    assert b.ioctl_body((8, 8), 0x00144064, b"", max_output=16) + b"\0" == message[HEADER_SIZE:]


def test_query_directory_vector() -> None:
    message = load("query_directory")
    request = decode(query.decode_query_directory, message)
    assert (request.file_information_class, request.flags, request.file_index) == (0x25, 0, 0)
    assert (request.file_id, bytes(request.file_name), request.output_buffer_length) == ((1, 1), b"*\0", 8 << 20)
    assert b.query_directory_body((1, 1), "*", output_length=8 << 20) == message[HEADER_SIZE:]


def test_change_notify_vector() -> None:
    message = load("change_notify")
    request = decode(query.decode_change_notify, message)
    assert (request.flags, request.output_buffer_length, request.file_id) == (0, 65536, (23, 23))
    assert request.completion_filter == 1  # FILE_NOTIFY_CHANGE_FILE_NAME


def test_query_info_vector() -> None:
    message = load("query_info")
    request = decode(query.decode_query_info, message)
    assert (request.info_type, request.file_info_class, request.output_buffer_length) == (2, 3, 65535)
    assert (bytes(request.input_buffer), request.additional_information, request.flags) == (b"", 0, 0)
    assert request.file_id == (2, 2)
    assert b.query_info_body((2, 2), 2, 3, 65535) == message[HEADER_SIZE:]


def test_set_info_vector() -> None:
    message = load("set_info")
    request = decode(query.decode_set_info, message)
    assert (request.info_type, request.file_info_class, request.file_id) == (1, 10, (9, 9))
    assert bytes(request.buffer) == b.rename_info("up2.txt")
    assert b.set_info_body((9, 9), 1, 10, b.rename_info("up2.txt")) == message[HEADER_SIZE:]


@pytest.mark.parametrize(("name", "decoder"), [("echo", simple.decode_echo),
                                               ("tree_disconnect", tree_connect.decode_disconnect),
                                               ("logoff", session_setup.decode_logoff)])
def test_small_vectors(name: str, decoder: Callable[[memoryview], None]) -> None:
    message = load(name)
    assert len(message) == HEADER_SIZE + 4 and message[HEADER_SIZE:] == struct.pack("<HH", 4, 0)
    decode(decoder, message)


# -- malformed variants -------------------------------------------------------------------------------------------

# name, decoder, StructureSize, size of the fixed part, whether the frame ends inside a variable buffer
CODECS: list[tuple[str, Callable[[memoryview], Any], int, int, bool]] = [
    ("negotiate", negotiate.decode_request, 36, 36, True),
    ("session_setup", session_setup.decode_request, 25, 24, True),
    ("tree_connect", tree_connect.decode_request, 9, 8, True),
    ("create", create.decode_request, 57, 56, True),
    ("close", create.decode_close, 24, 24, False),
    ("flush", readwrite.decode_flush, 24, 24, False),
    ("read", readwrite.decode_read, 49, 48, False),
    ("write", readwrite.decode_write, 49, 48, True),
    ("lock", lock.decode_request, 48, 24, True),
    ("ioctl", ioctl.decode_request, 57, 56, False),
    ("query_directory", query.decode_query_directory, 33, 32, True),
    ("change_notify", query.decode_change_notify, 32, 32, False),
    ("query_info", query.decode_query_info, 41, 40, False),
    ("set_info", query.decode_set_info, 33, 32, True),
    ("echo", simple.decode_echo, 4, 4, False),
    ("tree_disconnect", tree_connect.decode_disconnect, 4, 4, False),
    ("logoff", session_setup.decode_logoff, 4, 4, False),
]
_IDS = [codec[0] for codec in CODECS]


@pytest.mark.parametrize(("name", "decoder", "structure_size", "fixed", "variable_at_end"), CODECS, ids=_IDS)
@pytest.mark.parametrize("delta", [-1, 1, 2, 0x100])
def test_wrong_structure_size(name: str, decoder: Callable[[memoryview], Any], structure_size: int, fixed: int,
                              variable_at_end: bool, delta: int) -> None:
    message = load(name)
    assert_status(decoder, patched(message, 0, "<H", (structure_size + delta) & 0xFFFF))


@pytest.mark.parametrize(("name", "decoder", "structure_size", "fixed", "variable_at_end"), CODECS, ids=_IDS)
def test_truncated(name: str, decoder: Callable[[memoryview], Any], structure_size: int, fixed: int,
                   variable_at_end: bool) -> None:
    message = load(name)
    for cut in sorted({0, 2, HEADER_SIZE, HEADER_SIZE + 1, HEADER_SIZE + 2, HEADER_SIZE + fixed - 1}):
        assert_status(decoder, message[:cut])
    if variable_at_end:
        assert_status(decoder, message[:-1])


# (name, decoder, body offset of the Offset field and its format, of the Length field and its format)
OFFSET_LENGTH = [
    ("session_setup", session_setup.decode_request, 12, "<H", 14, "<H"),
    ("tree_connect", tree_connect.decode_request, 4, "<H", 6, "<H"),
    ("create", create.decode_request, 44, "<H", 46, "<H"),
    ("create_contexts", create.decode_request, 48, "<I", 52, "<I"),
    ("write", readwrite.decode_write, 2, "<H", 4, "<I"),
    ("query_directory", query.decode_query_directory, 24, "<H", 26, "<H"),
    ("set_info", query.decode_set_info, 8, "<H", 4, "<I"),
]


def _frame(name: str) -> bytes:
    return load("create" if name == "create_contexts" else name)


@pytest.mark.parametrize(("name", "decoder", "offset_at", "offset_fmt", "length_at", "length_fmt"), OFFSET_LENGTH,
                         ids=[row[0] for row in OFFSET_LENGTH])
def test_offset_past_the_end(name: str, decoder: Callable[[memoryview], Any], offset_at: int, offset_fmt: str,
                             length_at: int, length_fmt: str) -> None:
    message = _frame(name)
    for offset in (len(message), len(message) - 1, 0xFFFF):
        assert_status(decoder, patched(message, offset_at, offset_fmt, offset))


@pytest.mark.parametrize(("name", "decoder", "offset_at", "offset_fmt", "length_at", "length_fmt"), OFFSET_LENGTH,
                         ids=[row[0] for row in OFFSET_LENGTH])
def test_offset_into_the_fixed_part(name: str, decoder: Callable[[memoryview], Any], offset_at: int,
                                    offset_fmt: str, length_at: int, length_fmt: str) -> None:
    message = _frame(name)
    for offset in (0, 8, HEADER_SIZE, HEADER_SIZE + 2):
        assert_status(decoder, patched(message, offset_at, offset_fmt, offset))


@pytest.mark.parametrize(("name", "decoder", "offset_at", "offset_fmt", "length_at", "length_fmt"), OFFSET_LENGTH,
                         ids=[row[0] for row in OFFSET_LENGTH])
def test_length_that_overflows(name: str, decoder: Callable[[memoryview], Any], offset_at: int, offset_fmt: str,
                               length_at: int, length_fmt: str) -> None:
    message = _frame(name)
    largest = 0xFFFF if length_fmt == "<H" else 0xFFFFFFFF
    (offset,) = struct.unpack_from(offset_fmt, message, HEADER_SIZE + offset_at)
    # One byte past the end of the message, the largest value, and one that wraps a 32-bit offset + length.
    for lie in (len(message) - offset + 1, largest, largest - 7):
        assert_status(decoder, patched(message, length_at, length_fmt, lie))


def test_ioctl_input_past_the_end() -> None:
    message = load("ioctl")
    assert_status(ioctl.decode_request, patched(patched(message, 24, "<I", 120), 28, "<I", 2))
    assert_status(ioctl.decode_request, patched(patched(message, 24, "<I", 0xFFFFFFFF), 28, "<I", 1))
    assert_status(ioctl.decode_request, patched(patched(message, 24, "<I", 64), 28, "<I", 1))
    assert_status(ioctl.decode_request, patched(patched(message, 24, "<I", 120), 28, "<I", 0xFFFFFFFF))


def test_query_info_input_past_the_end() -> None:
    message = load("query_info")
    assert_status(query.decode_query_info, patched(patched(message, 8, "<H", 104), 12, "<I", 2))
    assert_status(query.decode_query_info, patched(patched(message, 8, "<H", 70), 12, "<I", 1))
    assert_status(query.decode_query_info, patched(patched(message, 8, "<H", 104), 12, "<I", 0xFFFFFFFF))


def test_negotiate_lying_counts_and_offsets() -> None:
    message = load("negotiate")
    assert_status(negotiate.decode_request, patched(message, 2, "<H", 0))  # DialectCount 0
    assert_status(negotiate.decode_request, patched(message, 2, "<H", 0xFFFF))  # DialectCount past the end
    assert_status(negotiate.decode_request, patched(message, 28, "<I", len(message)))  # NegotiateContextOffset
    assert_status(negotiate.decode_request, patched(message, 28, "<I", 0xFFFFFFF8))
    assert_status(negotiate.decode_request, patched(message, 28, "<I", HEADER_SIZE))  # into the fixed part
    assert_status(negotiate.decode_request, patched(message, 32, "<H", 5))  # one context more than there are
    assert_status(negotiate.decode_request, patched(message, 32, "<H", 0xFFFF))
    (context_offset,) = struct.unpack_from("<I", message, HEADER_SIZE + 28)
    lying_length = bytearray(message)
    struct.pack_into("<H", lying_length, context_offset + 2, 0xFFFF)  # the first context's DataLength
    assert_status(negotiate.decode_request, lying_length)


def test_lock_lying_count() -> None:
    message = load("lock")
    assert_status(lock.decode_request, patched(message, 2, "<H", 0))
    assert_status(lock.decode_request, patched(message, 2, "<H", 2))
    assert_status(lock.decode_request, patched(message, 2, "<H", 0xFFFF))


def test_create_context_chain_lies() -> None:
    message = load("create")
    (contexts_offset,) = struct.unpack_from("<I", message, HEADER_SIZE + 48)
    # [MS-SMB2] 2.2.13.2: Next, NameOffset(2)@4, NameLength(2)@6, DataOffset(2)@10, DataLength(4)@12.
    for position, fmt, lie in ((0, "<I", 0x1000), (0, "<I", 4), (0, "<I", 0xFFFFFFF8), (4, "<H", 0xFFFF),
                               (4, "<H", 2), (6, "<H", 0), (6, "<H", 0xFFFF), (10, "<H", 0xFFF0),
                               (12, "<I", 0xFFFFFFFF)):
        out = bytearray(message)
        struct.pack_into(fmt, out, contexts_offset + position, lie)
        assert_status(create.decode_request, out)


def test_tree_connect_odd_path_length_is_a_bad_name() -> None:
    message = load("tree_connect")
    (length,) = struct.unpack_from("<H", message, HEADER_SIZE + 6)
    assert_status(tree_connect.decode_request, patched(message, 6, "<H", length - 1),
                  NtStatus.STATUS_OBJECT_NAME_INVALID)
