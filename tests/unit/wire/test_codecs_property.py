"""Property tests of every SMB2 codec in smbsrv/wire/ against hostile bytes ([MS-SMB2] 2.2).

For each request decoder:
- arbitrary bytes, and arbitrary bytes behind the right StructureSize, either decode or raise SmbError /
  ProtocolViolation, nothing else; the only statuses are STATUS_INVALID_PARAMETER (and
  STATUS_OBJECT_NAME_INVALID where a UTF-16 name is decoded on the spot);
- valid requests built by tests/builders.py (an independent encoder) decode to the fields they were built from;
- those valid requests with flipped bytes, overwritten lengths/offsets/counts, truncation or extension follow the
  first rule, and whatever still decodes never hands out a buffer shorter than the length the request declares
  or one that starts inside the fixed part.

Encoders are checked by decoding their output with a parser written here from the spec, and
create_contexts.encode_chain/decode_chain round-trip.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smbsrv.protocol.errors import ProtocolViolation, SmbError
from smbsrv.wire import create as create_wire
from smbsrv.wire import (
    create_contexts,
    error,
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

# No example database: the runs stay independent of what earlier runs left in the working tree.
SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
HEADER_SIZE = 64
_INVALID = {NtStatus.STATUS_INVALID_PARAMETER}
_INVALID_OR_NAME = _INVALID | {NtStatus.STATUS_OBJECT_NAME_INVALID}


def request_header(command: int = 0) -> bytes:
    """A sync request header ([MS-SMB2] 2.2.1.2); the body decoders ignore its contents."""
    return struct.pack("<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 1, 0, command, 1, 0, 0, 0, 0, 1, 1, bytes(16))


def element(body: bytes, command: int = 0) -> memoryview:
    return memoryview(request_header(command) + body)


# Each decoder with its StructureSize and the statuses it may raise.
DECODERS: dict[str, tuple[Callable[[memoryview], Any], int, set[NtStatus]]] = {
    "negotiate": (negotiate.decode_request, 36, _INVALID),
    "session_setup": (session_setup.decode_request, 25, _INVALID),
    "logoff": (session_setup.decode_logoff, 4, _INVALID),
    "tree_connect": (tree_connect.decode_request, 9, _INVALID_OR_NAME),
    "tree_disconnect": (tree_connect.decode_disconnect, 4, _INVALID),
    "create": (create_wire.decode_request, 57, _INVALID),
    "close": (create_wire.decode_close, 24, _INVALID),
    "flush": (readwrite.decode_flush, 24, _INVALID),
    "read": (readwrite.decode_read, 49, _INVALID),
    "write": (readwrite.decode_write, 49, _INVALID),
    "lock": (lock.decode_request, 48, _INVALID),
    "ioctl": (ioctl.decode_request, 57, _INVALID),
    "echo": (simple.decode_echo, 4, _INVALID),
    "query_directory": (query.decode_query_directory, 33, _INVALID),
    "change_notify": (query.decode_change_notify, 32, _INVALID),
    "query_info": (query.decode_query_info, 41, _INVALID),
    "set_info": (query.decode_set_info, 33, _INVALID),
}


def decode_or_refuse(name: str, data: memoryview) -> Any:
    """Run a decoder; an SmbError must carry one of its statuses. Returns the request, or None if refused."""
    decode, _, statuses = DECODERS[name]
    try:
        return decode(data)
    except SmbError as exc:
        assert exc.status in statuses, f"{name}: unexpected {exc.status.name}"
        return None


# -- arbitrary bytes -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DECODERS))
@SETTINGS
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes(name: str, data: bytes) -> None:
    decode_or_refuse(name, memoryview(data))


@pytest.mark.parametrize("name", sorted(DECODERS))
@SETTINGS
@given(body=st.binary(max_size=300))
def test_arbitrary_body_behind_structure_size(name: str, body: bytes) -> None:
    structure_size = DECODERS[name][1]
    decode_or_refuse(name, element(struct.pack("<H", structure_size) + body))


@SETTINGS
@given(data=st.binary(min_size=64, max_size=200), offset=st.integers(0, 8))
def test_header_decode_raises_only_protocol_violation(data: bytes, offset: int) -> None:
    # decode_header's contract: the caller has checked that 64 bytes are there (connection.py does).
    message = bytes(offset) + data
    try:
        decoded = header.decode_header(message, offset)
    except ProtocolViolation:
        assert data[:4] != b"\xfeSMB" or data[4:6] != b"\x40\x00"
        return
    assert data[:4] == b"\xfeSMB"
    assert decoded.next_command == struct.unpack_from("<I", data, 20)[0]
    assert decoded.message_id == struct.unpack_from("<Q", data, 24)[0]


# -- valid requests, field by field, and their mutations -------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
file_ids = st.tuples(u64, u64)


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, Any]]:
    """(decoder name, body, the fields it was built from)."""
    name = draw(st.sampled_from(sorted(DECODERS)))
    fid = draw(file_ids)
    if name == "negotiate":
        dialects = tuple(draw(st.lists(u16, min_size=1, max_size=6)))
        guid = uuid.UUID(int=draw(st.integers(0, 2**128 - 1))).bytes
        negotiate_contexts = [b.negotiate_context(draw(u16), draw(st.binary(max_size=40)))
                              for _ in range(draw(st.integers(0, 3)))]
        if negotiate_contexts:
            dialects += (0x0311,)
        body = b.negotiate_body(dialects, negotiate_contexts, security_mode=draw(u16), capabilities=draw(u32), client_guid=guid)
        return name, body, {"dialects": dialects, "client_guid": guid, "contexts": len(negotiate_contexts)}
    if name == "session_setup":
        token = draw(st.binary(max_size=100))
        previous = draw(u64)
        body = b.session_setup_body(token, security_mode=draw(u8), flags=draw(u8), previous_session_id=previous)
        return name, body, {"security_buffer": token, "previous_session_id": previous}
    if name == "tree_connect":
        path = draw(st.text(st.characters(exclude_categories=["Cs"]), max_size=40))
        return name, b.tree_connect_body(path), {"path": path}
    if name == "create":
        raw_name = draw(st.binary(max_size=60))
        access, disposition, options = draw(u32), draw(u32), draw(u32)
        context_data = draw(st.binary(max_size=30))
        contexts = b.create_context(b"MxAc", context_data) if draw(st.booleans()) else b""
        body = b.create_body(raw_name, desired_access=access, disposition=disposition, options=options,
                             contexts=contexts)
        expected_contexts = {b"MxAc": context_data} if contexts else {}
        return name, body, {"name": raw_name, "desired_access": access, "create_disposition": disposition,
                            "create_options": options, "contexts": expected_contexts}
    if name == "close":
        flags = draw(u16)
        return name, b.close_body(fid, flags), {"file_id": fid, "flags": flags}
    if name == "flush":
        return name, b.flush_body(fid), {"file_id": fid}
    if name == "read":
        offset, length, minimum = draw(u64), draw(u32), draw(u32)
        return name, b.read_body(fid, offset, length, minimum), {"file_id": fid, "offset": offset, "length": length,
                                                               "minimum_count": minimum}
    if name == "write":
        offset, data = draw(u64), draw(st.binary(max_size=100))
        return name, b.write_body(fid, offset, data), {"file_id": fid, "offset": offset, "data": data}
    if name == "lock":
        locks = draw(st.lists(st.tuples(u64, u64, u32), min_size=1, max_size=4))
        sequence = draw(u32)
        return name, b.lock_body(fid, locks, sequence), {"file_id": fid, "lock_sequence": sequence, "locks": locks}
    if name == "ioctl":
        ctl_code, data, max_output = draw(u32), draw(st.binary(max_size=60)), draw(u32)
        body = b.ioctl_body(fid, ctl_code, data, max_output=max_output, flags=1) + (b"" if data else b"\0")
        return name, body, {"file_id": fid, "ctl_code": ctl_code, "input": data, "max_output_response": max_output}
    if name == "query_directory":
        pattern = draw(st.text(st.characters(exclude_categories=["Cs"]), max_size=20))
        info_class, length = draw(u8), draw(u32)
        body = b.query_directory_body(fid, pattern, info_class=info_class, output_length=length)
        return name, body, {"file_id": fid, "file_information_class": info_class, "output_buffer_length": length,
                            "file_name": pattern.encode("utf-16-le")}
    if name == "change_notify":
        flags, length, completion_filter = draw(u16), draw(u32), draw(u32)
        body = struct.pack("<HHI16sII", 32, flags, length, b.file_id_bytes(fid), completion_filter, 0)
        return name, body, {"file_id": fid, "flags": flags, "output_buffer_length": length,
                            "completion_filter": completion_filter}
    if name == "query_info":
        info_type, info_class, length, data = draw(u8), draw(u8), draw(u32), draw(st.binary(max_size=40))
        body = b.query_info_body(fid, info_type, info_class, length, input_buffer=data)
        return name, body, {"file_id": fid, "info_type": info_type, "file_info_class": info_class,
                            "output_buffer_length": length, "input_buffer": data}
    if name == "set_info":
        info_type, info_class, data = draw(u8), draw(u8), draw(st.binary(min_size=1, max_size=60))
        body = b.set_info_body(fid, info_type, info_class, data)
        return name, body, {"file_id": fid, "info_type": info_type, "file_info_class": info_class, "buffer": data}
    return name, struct.pack("<HH", 4, draw(u16)), {}


def _as_comparable(value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, tuple) and value and isinstance(value[0], lock.LockElement):
        return [(item.offset, item.length, item.flags) for item in value]
    return value


@SETTINGS
@given(request=valid_requests())
def test_valid_requests_decode_field_by_field(request: tuple[str, bytes, dict[str, Any]]) -> None:
    name, body, fields = request
    decoded = DECODERS[name][0](element(body))
    if name == "flush":
        assert decoded == fields["file_id"]  # FLUSH decodes to the bare FileId
        return
    if name == "negotiate":
        assert decoded.dialects == fields["dialects"]
        assert decoded.client_guid == fields["client_guid"]
        assert len(decoded.contexts) == fields["contexts"]
        return
    for key, expected in fields.items():
        actual = _as_comparable(getattr(decoded, key, None))
        if name == "session_setup" and key == "security_buffer":
            actual = bytes(actual)
        assert actual == expected, f"{name}.{key}"


# (offset in the body, width in bytes) of every length, offset and count a request carries ([MS-SMB2] 2.2).
LENGTH_FIELDS: dict[str, list[tuple[int, int]]] = {
    "negotiate": [(2, 2), (28, 4), (32, 2)],
    "session_setup": [(12, 2), (14, 2)],
    "tree_connect": [(4, 2), (6, 2)],
    "create": [(44, 2), (46, 2), (48, 4), (52, 4)],
    "read": [(4, 4), (36, 4), (44, 2), (46, 2)],
    "write": [(2, 2), (4, 4), (36, 4), (40, 2), (42, 2)],
    "lock": [(2, 2)],
    "ioctl": [(24, 4), (28, 4), (32, 4), (36, 4), (40, 4), (44, 4)],
    "query_directory": [(24, 2), (26, 2), (28, 4)],
    "query_info": [(4, 4), (8, 2), (12, 4)],
    "set_info": [(4, 4), (8, 2)],
}
_LIES = st.sampled_from([0, 1, 2, 7, 8, 63, 64, 65, 120, 127, 128, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
                         0x80000000, 0xFFFFFFF8, 0xFFFFFFFF]) | u32


@st.composite
def mutations(draw: st.DrawFn, body: bytes, name: str) -> bytes:
    out = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 4))
        if kind == 0 and name in LENGTH_FIELDS:
            position, width = draw(st.sampled_from(LENGTH_FIELDS[name]))
            if position + width <= len(out):
                lie = draw(_LIES) & ((1 << (8 * width)) - 1)
                out[position:position + width] = lie.to_bytes(width, "little")
        elif kind == 1 and out:
            position = draw(st.integers(0, len(out) - 1))
            out[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == 2 and out:
            del out[draw(st.integers(0, len(out) - 1)):]
        elif kind == 3:
            out += draw(st.binary(max_size=40))
        elif len(out) >= 4:
            position = draw(st.integers(0, len(out) - 4))
            out[position:position + 4] = draw(_LIES).to_bytes(4, "little")
    return bytes(out)


# Buffers a decoded request hands out: (attribute, Offset position and format, Length position and format).
_BUFFERS: dict[str, list[tuple[str, int, str, int, str]]] = {
    "session_setup": [("security_buffer", 12, "<H", 14, "<H")],
    "create": [("name", 44, "<H", 46, "<H")],
    "ioctl": [("input", 24, "<I", 28, "<I")],
    "query_directory": [("file_name", 24, "<H", 26, "<H")],
    "query_info": [("input_buffer", 8, "<H", 12, "<I")],
    "set_info": [("buffer", 8, "<H", 4, "<I")],
    "write": [("data", 2, "<H", 4, "<I")],
}
# Where each command's variable part starts, counted from the header (64 + the fixed body).
_FIXED_END = {"session_setup": 88, "create": 120, "ioctl": 120, "query_directory": 96, "query_info": 104,
              "set_info": 96, "write": 112}


@SETTINGS
@given(data=st.data())
def test_mutated_requests(data: st.DataObject) -> None:
    name, body, _ = data.draw(valid_requests())
    mutated = data.draw(mutations(body, name))
    whole = element(mutated)
    decoded = decode_or_refuse(name, whole)
    if decoded is None:
        return
    for attribute, offset_at, offset_fmt, length_at, length_fmt in _BUFFERS.get(name, []):
        (offset,) = struct.unpack_from(offset_fmt, mutated, offset_at)
        (length,) = struct.unpack_from(length_fmt, mutated, length_at)
        buffer = getattr(decoded, attribute)
        assert len(buffer) == length, f"{name}.{attribute}: {len(buffer)} bytes handed out, {length} declared"
        if length:
            assert offset >= _FIXED_END[name], f"{name}.{attribute} starts inside the fixed part"
            assert bytes(buffer) == bytes(whole[offset:offset + length])


@SETTINGS
@given(count=st.integers(0, 0xFFFF), tail=st.binary(max_size=100))
def test_lock_count_is_checked_before_looping(count: int, tail: bytes) -> None:
    body = struct.pack("<HHI16s", 48, count, 0, bytes(16)) + tail
    decoded = decode_or_refuse("lock", element(body))
    if decoded is not None:
        assert 0 < count and len(decoded.locks) == count and count * 24 <= len(tail)


# -- negotiate contexts -----------------------------------------------------------------------------------------

@SETTINGS
@given(contexts=st.lists(st.tuples(u16, st.binary(max_size=50)), min_size=1, max_size=6),
       lie=st.sampled_from(["none", "count", "offset", "length"]), lie_value=_LIES)
def test_negotiate_contexts_with_lying_fields(contexts: list[tuple[int, bytes]], lie: str, lie_value: int) -> None:
    body = bytearray(b.negotiate_body((0x0311,), [b.negotiate_context(t, d) for t, d in contexts]))
    if lie == "count":
        struct.pack_into("<H", body, 32, lie_value & 0xFFFF)
    elif lie == "offset":
        struct.pack_into("<I", body, 28, lie_value)
    elif lie == "length":
        (context_offset,) = struct.unpack_from("<I", body, 28)
        struct.pack_into("<H", body, context_offset - HEADER_SIZE + 2, lie_value & 0xFFFF)
    decoded = decode_or_refuse("negotiate", element(bytes(body)))
    if lie == "none":
        assert decoded is not None
        assert [(c.context_type, c.data) for c in decoded.contexts] == contexts
    if decoded is not None:
        for context in decoded.contexts:
            assert len(context.data) <= len(body)


# -- create contexts ---------------------------------------------------------------------------------------------

# Names are at least 4 bytes: shorter ones are INVALID_PARAMETER (wire/create_contexts.py, as Windows and Samba).
context_lists = st.lists(st.tuples(st.binary(min_size=4, max_size=20), st.binary(max_size=40)), max_size=6,
                         unique_by=lambda pair: pair[0])


@SETTINGS
@given(contexts=context_lists.filter(bool))
def test_create_context_chain_round_trip(contexts: list[tuple[bytes, bytes]]) -> None:
    encoded = create_contexts.encode_chain([create_contexts.CreateContext(n, d) for n, d in contexts])
    assert create_contexts.decode_chain(memoryview(encoded)) == dict(contexts)
    # [MS-SMB2] 2.2.14.2: every context but the last starts 8-byte aligned and Next points at the following one.
    position = 0
    for _ in contexts[:-1]:
        (next_offset,) = struct.unpack_from("<I", encoded, position)
        assert next_offset % 8 == 0 and next_offset > 0
        position += next_offset
    assert struct.unpack_from("<I", encoded, position)[0] == 0


@SETTINGS
@given(contexts=context_lists.filter(bool), data=st.data())
def test_create_context_chain_mutated(contexts: list[tuple[bytes, bytes]], data: st.DataObject) -> None:
    encoded = bytearray(create_contexts.encode_chain([create_contexts.CreateContext(n, d) for n, d in contexts]))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, max(0, len(encoded) - 4)))
        if data.draw(st.booleans()):
            encoded[position:position + 2] = (data.draw(_LIES) & 0xFFFF).to_bytes(2, "little")
        else:
            encoded[position:position + 4] = data.draw(_LIES).to_bytes(4, "little")
    if data.draw(st.booleans()):
        del encoded[data.draw(st.integers(0, len(encoded))):]
    try:
        decoded = create_contexts.decode_chain(memoryview(bytes(encoded)))
    except SmbError as exc:
        assert exc.status == NtStatus.STATUS_INVALID_PARAMETER
        return
    assert sum(len(n) + len(d) for n, d in decoded.items()) <= len(encoded)


@SETTINGS
@given(chain=st.binary(max_size=200))
def test_create_context_chain_arbitrary(chain: bytes) -> None:
    try:
        create_contexts.decode_chain(memoryview(chain))
    except SmbError as exc:
        assert exc.status == NtStatus.STATUS_INVALID_PARAMETER


# -- encoders, read back with the spec's layout -------------------------------------------------------------------

def _parse_negotiate_response(body: bytes) -> dict[str, Any]:
    """[MS-SMB2] 2.2.4, parsed here independently of the codec."""
    (structure_size, security_mode, dialect, context_count, guid, capabilities, max_transact, max_read, max_write,
     system_time, start_time, buffer_offset, buffer_length, context_offset) = struct.unpack_from(
        "<HHHH16sIIIIQQHHI", body)
    security_buffer = body[buffer_offset - HEADER_SIZE:buffer_offset - HEADER_SIZE + buffer_length]
    contexts = []
    position = context_offset - HEADER_SIZE
    for index in range(context_count):
        assert (position + HEADER_SIZE) % 8 == 0, "negotiate contexts are 8-byte aligned"
        context_type, length = struct.unpack_from("<HH", body, position)
        contexts.append((context_type, body[position + 8:position + 8 + length]))
        position += 8 + length
        position += -position % 8
    return {"structure_size": structure_size, "security_mode": security_mode, "dialect": dialect, "guid": guid,
            "capabilities": capabilities, "sizes": (max_transact, max_read, max_write),
            "times": (system_time, start_time), "security_buffer": security_buffer, "contexts": contexts,
            "buffer_offset": buffer_offset}


@SETTINGS
@given(dialect=st.sampled_from([0x0202, 0x0210, 0x0300, 0x0302, 0x0311]), security_mode=u16, capabilities=u32,
       sizes=st.tuples(u32, u32, u32), times=st.tuples(u64, u64), token=st.binary(max_size=80),
       contexts=st.lists(st.tuples(u16, st.binary(max_size=40)), max_size=4))
def test_negotiate_response_encodes_its_fields(dialect: int, security_mode: int, capabilities: int,
                                               sizes: tuple[int, int, int], times: tuple[int, int], token: bytes,
                                               contexts: list[tuple[int, bytes]]) -> None:
    guid = uuid.uuid4().bytes
    response = negotiate.NegotiateResponse(
        security_mode=security_mode, dialect_revision=dialect, server_guid=guid, capabilities=capabilities,
        max_transact_size=sizes[0], max_read_size=sizes[1], max_write_size=sizes[2], system_time=times[0],
        server_start_time=times[1], security_buffer=token,
        contexts=[negotiate.NegotiateContext(t, d) for t, d in contexts])
    parsed = _parse_negotiate_response(response.encode())
    assert parsed["structure_size"] == 65
    assert (parsed["security_mode"], parsed["dialect"], parsed["guid"]) == (security_mode, dialect, guid)
    assert (parsed["capabilities"], parsed["sizes"], parsed["times"]) == (capabilities, sizes, times)
    assert parsed["security_buffer"] == token and parsed["buffer_offset"] % 8 == 0
    assert parsed["contexts"] == contexts


@SETTINGS
@given(error_data=st.binary(max_size=60), dialect=st.sampled_from([0x0202, 0x0300, 0x0311]),
       wrap=st.booleans())
def test_error_response_layout(error_data: bytes, dialect: int, wrap: bool) -> None:
    body = error.encode_error_response(error_data, dialect=dialect, wrap_in_context=wrap)
    structure_size, context_count, _, byte_count = struct.unpack_from("<HBBI", body)
    assert structure_size == 9 and len(body) >= 9  # one byte of ErrorData even when empty ([MS-SMB2] 2.2.2)
    assert byte_count == len(body) - 8 or (byte_count == 0 and len(body) == 9)
    if context_count:
        # [MS-SMB2] 2.2.2.1: one SMB2_ERROR_ID_DEFAULT context; padding is only owed between contexts.
        assert dialect == 0x0311 and wrap
        data_length, error_id = struct.unpack_from("<II", body, 8)
        assert error_id == 0 and data_length == len(error_data) and body[16:16 + data_length] == error_data
        assert byte_count in (8 + len(error_data), 8 + len(error_data) + (-len(error_data) % 8))
    elif error_data:
        assert body[8:] == error_data


@SETTINGS
@given(output=st.binary(max_size=100))
def test_output_response_layout(output: bytes) -> None:
    body = query.encode_output_response(output)
    structure_size, offset, length = struct.unpack_from("<HHI", body)
    assert structure_size == 9 and length == len(output)
    if output:
        assert body[offset - HEADER_SIZE:offset - HEADER_SIZE + length] == output


@SETTINGS
@given(ctl_code=u32, fid=file_ids, output=st.binary(max_size=100))
def test_ioctl_response_layout(ctl_code: int, fid: tuple[int, int], output: bytes) -> None:
    body = ioctl.encode_response(ctl_code, fid, output)
    (structure_size, _, code, persistent, volatile, _, input_count, output_offset,
     output_count) = struct.unpack_from("<HHIQQIIII", body)
    assert (structure_size, code, (persistent, volatile), input_count) == (49, ctl_code, fid, 0)
    assert body[output_offset - HEADER_SIZE:output_offset - HEADER_SIZE + output_count] == output


@SETTINGS
@given(flags=u16, token=st.binary(max_size=100))
def test_session_setup_response_layout(flags: int, token: bytes) -> None:
    body = session_setup.encode_response(flags, token)
    structure_size, session_flags, offset, length = struct.unpack_from("<HHHH", body)
    assert (structure_size, session_flags, length) == (9, flags, len(token))
    if token:
        assert body[offset - HEADER_SIZE:offset - HEADER_SIZE + length] == token


@SETTINGS
@given(fid=file_ids, values=st.tuples(u64, u64, u64, u64, u64, u64), attributes=u32,
       contexts=st.lists(st.tuples(st.binary(min_size=4, max_size=8), st.binary(max_size=20)), max_size=3,
                         unique_by=lambda pair: pair[0]))
def test_create_response_layout(fid: tuple[int, int], values: tuple[int, ...], attributes: int,
                                contexts: list[tuple[bytes, bytes]]) -> None:
    chain = create_contexts.encode_chain([create_contexts.CreateContext(n, d) for n, d in contexts])
    body = create_wire.encode_response(oplock_level=0, flags=0, create_action=1, creation_time=values[0],
                                       last_access_time=values[1], last_write_time=values[2],
                                       change_time=values[3], allocation_size=values[4], end_of_file=values[5],
                                       file_attributes=attributes, file_id=fid, contexts=chain)
    fields = struct.unpack_from("<HBBIQQQQQQIIQQII", body)
    assert fields[0] == 89 and fields[4:10] == values and fields[10] == attributes
    assert (fields[12], fields[13]) == fid
    offset, length = fields[14], fields[15]
    assert length == len(chain)
    if chain:
        assert offset % 8 == 0
        assert create_contexts.decode_chain(memoryview(body[offset - HEADER_SIZE:offset - HEADER_SIZE + length])) \
            == dict(contexts)


@example(count=0)
@SETTINGS
@given(count=u32)
def test_read_and_write_response_layout(count: int) -> None:
    read_body = readwrite.encode_read_response_header(count)
    structure_size, data_offset, _, data_length = struct.unpack_from("<HBBI", read_body)
    assert (structure_size, data_offset, data_length, len(read_body)) == (17, 80, count, 16)
    write_body = readwrite.encode_write_response(count)
    assert struct.unpack_from("<HHI", write_body) == (17, 0, count)
