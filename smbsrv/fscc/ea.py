"""Extended-attribute lists.

[MS-FSCC] 2.4.15 FILE_FULL_EA_INFORMATION (QUERY_INFO/SET_INFO FileFullEaInformation, the "ExtA" create
context) and 2.4.15.1 FILE_GET_EA_INFORMATION (the QUERY_INFO input buffer naming the EAs wanted).
"""

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.wire.status import NtStatus

FILE_NEED_EA = 0x80
# [MS-FSA] 2.1.5.15.5: a file's EA list may not grow past 64 KiB - 5 bytes (STATUS_EA_TOO_LARGE, Windows).
MAX_EA_LIST_SIZE = 65536 - 5

_FULL_EA_HEADER = struct.Struct("<IBBH")  # NextEntryOffset, Flags, EaNameLength, EaValueLength
_GET_EA_HEADER = struct.Struct("<IB")  # NextEntryOffset, EaNameLength
_NEXT_ENTRY_OFFSET = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class EaEntry:
    """One extended attribute: an ASCII name (without the terminating NUL) and an opaque value."""

    name: bytes
    value: bytes
    flags: int = 0


def _bad_list() -> SmbError:
    return SmbError(NtStatus.STATUS_EA_LIST_INCONSISTENT)


def encode_full_ea_list(entries: Iterable[EaEntry]) -> bytes:
    """FILE_FULL_EA_INFORMATION list: entries 4-byte aligned, last NextEntryOffset 0, no padding after it."""
    out = bytearray()
    previous = -1
    for entry in entries:
        if len(entry.name) > 255 or len(entry.value) > 0xFFFF:
            raise SmbError(NtStatus.STATUS_EA_TOO_LARGE)
        if previous >= 0:
            out += bytes(-len(out) % 4)
            _NEXT_ENTRY_OFFSET.pack_into(out, previous, len(out) - previous)
        previous = len(out)
        out += _FULL_EA_HEADER.pack(0, entry.flags, len(entry.name), len(entry.value))
        out += entry.name
        out += b"\x00"
        out += entry.value
    return bytes(out)


def decode_full_ea_list(data: bytes | memoryview) -> list[EaEntry]:
    """Parse a FILE_FULL_EA_INFORMATION list. Each entry must fit the buffer, its name must be followed by
    NUL, and NextEntryOffset must be 0 (last) or a 4-byte multiple that covers the whole entry."""
    entries: list[EaEntry] = []
    if len(data) < _FULL_EA_HEADER.size:
        raise SmbError(NtStatus.STATUS_INFO_LENGTH_MISMATCH)
    pos = 0
    end = len(data)
    while True:
        if pos + _FULL_EA_HEADER.size > end:
            raise _bad_list()
        next_offset, flags, name_len, value_len = _FULL_EA_HEADER.unpack_from(data, pos)
        name_start = pos + _FULL_EA_HEADER.size
        value_start = name_start + name_len + 1
        entry_end = value_start + value_len
        if entry_end > end or data[name_start + name_len] != 0:
            raise _bad_list()
        if next_offset and (next_offset % 4 or pos + next_offset < entry_end or pos + next_offset >= end):
            raise _bad_list()
        entries.append(
            EaEntry(
                bytes(data[name_start : name_start + name_len]), bytes(data[value_start:entry_end]), flags
            )
        )
        if next_offset == 0:
            return entries
        pos += next_offset


def decode_ea_list_to_set(data: bytes | memoryview) -> list[EaEntry]:
    """A list a client sends to set (SET_INFO FileFullEaInformation, the ExtA create context). Larger than a
    file's whole EA list may be, it is STATUS_EA_TOO_LARGE before it is parsed: without removals such a list
    could never be stored, and parsing one of up to MaxTransactSize (8 MiB, ~500,000 entries) costs the
    server most of a second. Deviation: Windows parses it (no client sends one; cifs.ko sets one EA per
    request and Windows copies a file's EAs, which NTFS caps at the same size, in one list)."""
    if len(data) > MAX_EA_LIST_SIZE:
        raise SmbError(NtStatus.STATUS_EA_TOO_LARGE)
    return decode_full_ea_list(data)


def decode_get_ea_list(data: bytes | memoryview) -> list[bytes]:
    """Parse FILE_GET_EA_INFORMATION entries into EA names (the trailing NUL is not required: cifs.ko and
    Windows send it, but it carries no information)."""
    names: list[bytes] = []
    if len(data) < _GET_EA_HEADER.size:
        raise SmbError(NtStatus.STATUS_INFO_LENGTH_MISMATCH)
    pos = 0
    end = len(data)
    while True:
        if pos + _GET_EA_HEADER.size > end:
            raise _bad_list()
        next_offset, name_len = _GET_EA_HEADER.unpack_from(data, pos)
        name_start = pos + _GET_EA_HEADER.size
        entry_end = name_start + name_len
        if entry_end > end:
            raise _bad_list()
        if next_offset and (next_offset % 4 or pos + next_offset < entry_end or pos + next_offset >= end):
            raise _bad_list()
        names.append(bytes(data[name_start:entry_end]))
        if next_offset == 0:
            return names
        pos += next_offset


def encode_get_ea_list(names: Iterable[bytes]) -> bytes:
    """FILE_GET_EA_INFORMATION list (for tests and the client-side of round trips)."""
    out = bytearray()
    previous = -1
    for name in names:
        if previous >= 0:
            out += bytes(-len(out) % 4)
            _NEXT_ENTRY_OFFSET.pack_into(out, previous, len(out) - previous)
        previous = len(out)
        out += _GET_EA_HEADER.pack(0, len(name)) + name + b"\x00"
    return bytes(out)
