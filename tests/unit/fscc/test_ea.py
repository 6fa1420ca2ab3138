"""EA lists ([MS-FSCC] 2.4.15 FILE_FULL_EA_INFORMATION, 2.4.15.1 FILE_GET_EA_INFORMATION)."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smbprotocol import file_info as sp

from smbsrv.fscc import ea
from smbsrv.fscc.ea import EaEntry
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus


def test_encode_full_list_by_hand() -> None:
    data = ea.encode_full_ea_list(
        [EaEntry(b"$LXUID", b"\xe8\x03\x00\x00"), EaEntry(b"B", b"", ea.FILE_NEED_EA)]
    )
    # First entry: 8 header + 6 name + NUL + 4 value = 19, padded to 20.
    assert data[:8] == struct.pack("<IBBH", 20, 0, 6, 4)
    assert data[8:19] == b"$LXUID\x00\xe8\x03\x00\x00" and data[19:20] == b"\x00"
    assert data[20:] == struct.pack("<IBBH", 0, 0x80, 1, 0) + b"B\x00"
    assert ea.decode_full_ea_list(data) == [EaEntry(b"$LXUID", b"\xe8\x03\x00\x00"), EaEntry(b"B", b"", 0x80)]
    assert ea.encode_full_ea_list([]) == b""


def test_full_list_matches_smbprotocol() -> None:
    data = ea.encode_full_ea_list([EaEntry(b"USER.X", b"hello")])
    parsed = sp.FileFullEaInformation()
    parsed.unpack(data)
    assert parsed["ea_name"].get_value() == b"USER.X" and parsed["ea_value"].get_value() == b"hello"


def test_get_ea_list() -> None:
    data = ea.encode_get_ea_list([b"$LXUID", b"$LXGID", b"A"])
    assert data[:4] == struct.pack("<I", 12) and data[4] == 6 and data[5:12] == b"$LXUID\x00"
    assert ea.decode_get_ea_list(data) == [b"$LXUID", b"$LXGID", b"A"]
    request = sp.FileGetEaInformation()
    request["ea_name"] = b"NAME"
    assert ea.decode_get_ea_list(request.pack()) == [b"NAME"]
    # The trailing NUL is optional.
    assert ea.decode_get_ea_list(struct.pack("<IB", 0, 2) + b"AB") == [b"AB"]


def _status(function: object, data: bytes) -> NtStatus:
    with pytest.raises(SmbError) as excinfo:
        function(data)  # type: ignore[operator]
    return excinfo.value.status


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("<IBBH", 0, 0, 5, 0) + b"ABCD",  # name runs past the buffer (no NUL room)
        struct.pack("<IBBH", 0, 0, 1, 10) + b"A\x00" + b"short",  # value past the buffer
        struct.pack("<IBBH", 0, 0, 1, 1) + b"AXv",  # no NUL after the name
        struct.pack("<IBBH", 6, 0, 1, 0) + b"A\x00" + bytes(8),  # NextEntryOffset not a multiple of 4
        struct.pack("<IBBH", 8, 0, 1, 0) + b"A\x00" + bytes(8),  # NextEntryOffset inside the entry
        struct.pack("<IBBH", 12, 0, 1, 0) + b"A\x00\x00\x00",  # NextEntryOffset at the end of the buffer
        struct.pack("<IBBH", 0x7FFFFFFC, 0, 1, 0) + b"A\x00\x00\x00",
        struct.pack("<IBBH", 12, 0, 1, 0) + b"A\x00\x00\x00" + bytes(5),  # second entry truncated
    ],
)
def test_full_list_malformed(data: bytes) -> None:
    assert _status(ea.decode_full_ea_list, data) == NtStatus.STATUS_EA_LIST_INCONSISTENT


def test_short_buffers() -> None:
    assert _status(ea.decode_full_ea_list, bytes(7)) == NtStatus.STATUS_INFO_LENGTH_MISMATCH
    assert _status(ea.decode_get_ea_list, bytes(4)) == NtStatus.STATUS_INFO_LENGTH_MISMATCH
    assert (
        _status(ea.decode_get_ea_list, struct.pack("<IB", 0, 3) + b"AB") == NtStatus.STATUS_EA_LIST_INCONSISTENT
    )
    assert _status(ea.decode_get_ea_list, struct.pack("<IB", 4, 0) + b"") == NtStatus.STATUS_EA_LIST_INCONSISTENT


def test_value_too_large() -> None:
    with pytest.raises(SmbError) as excinfo:
        ea.encode_full_ea_list([EaEntry(b"A", bytes(0x10000))])
    assert excinfo.value.status == NtStatus.STATUS_EA_TOO_LARGE


names = st.binary(min_size=1, max_size=20).filter(lambda b: b"\x00" not in b)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(names, st.binary(max_size=40), st.sampled_from([0, 0x80])), max_size=6))
def test_full_list_round_trip(items: list[tuple[bytes, bytes, int]]) -> None:
    entries = [EaEntry(name, value, flags) for name, value, flags in items]
    data = ea.encode_full_ea_list(entries)
    if entries:
        assert ea.decode_full_ea_list(data) == entries


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_decoders_only_raise_smb_error(data: bytes) -> None:
    for function in (ea.decode_full_ea_list, ea.decode_get_ea_list):
        try:
            function(data)
        except SmbError:
            pass


def _hand_built_list(count: int, value: bytes = b"v") -> bytes:
    """FILE_FULL_EA_INFORMATION entries NAMEnnnnnn=value, built here (not by the codec under test)."""
    out = bytearray()
    for index in range(count):
        name = b"NAME%06d" % index
        entry = struct.pack("<IBBH", 0, 0, len(name), len(value)) + name + b"\x00" + value
        if index != count - 1:
            entry += bytes(-len(entry) % 4)
            entry = struct.pack("<I", len(entry)) + entry[4:]
        out += entry
    return bytes(out)


def test_list_to_set_is_bounded_by_what_a_file_may_hold() -> None:
    """[MS-FSA] 2.1.5.15.5: 64 KiB - 5 bytes per file; a longer list to set is refused before it is parsed."""
    assert ea.MAX_EA_LIST_SIZE == 65531
    fits = _hand_built_list(3276)  # 20 bytes per entry
    assert len(fits) == 65520
    assert len(ea.decode_ea_list_to_set(fits)) == 3276
    too_long = _hand_built_list(3277)
    assert len(too_long) == 65540
    assert _status(ea.decode_ea_list_to_set, too_long) == NtStatus.STATUS_EA_TOO_LARGE
    # Removals only (empty values) are refused the same way: parsing them is the cost being bounded.
    assert _status(ea.decode_ea_list_to_set, _hand_built_list(5000, value=b"")) == NtStatus.STATUS_EA_TOO_LARGE
