"""FILE_NOTIFY_INFORMATION ([MS-FSCC] 2.7.1): the records of a CHANGE_NOTIFY response, and the
CompletionFilter bits and actions of [MS-SMB2] 2.2.35 / [MS-FSCC] 2.7.1."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import IntEnum, IntFlag


class Action(IntEnum):
    ADDED = 0x00000001
    REMOVED = 0x00000002
    MODIFIED = 0x00000003
    RENAMED_OLD_NAME = 0x00000004
    RENAMED_NEW_NAME = 0x00000005
    ADDED_STREAM = 0x00000006
    REMOVED_STREAM = 0x00000007
    MODIFIED_STREAM = 0x00000008


class Filter(IntFlag):
    FILE_NAME = 0x00000001
    DIR_NAME = 0x00000002
    ATTRIBUTES = 0x00000004
    SIZE = 0x00000008
    LAST_WRITE = 0x00000010
    LAST_ACCESS = 0x00000020
    CREATION = 0x00000040
    EA = 0x00000080
    SECURITY = 0x00000100
    STREAM_NAME = 0x00000200
    STREAM_SIZE = 0x00000400
    STREAM_WRITE = 0x00000800


ALL_FILTERS = 0x00000FFF
SMB2_WATCH_TREE = 0x0001  # [MS-SMB2] 2.2.35 Flags

_RECORD = struct.Struct("<III")


def record_size(name: str) -> int:
    """Bytes one record takes in the response, padded to 4 as when it is not the last one."""
    return (12 + len(name.encode("utf-16-le", "surrogatepass")) + 3) & ~3


def encode(records: Iterable[tuple[int, str]], limit: int) -> bytes | None:
    """The records, each NextEntryOffset-chained and 4-byte aligned (the last one unpadded, as Windows and
    Samba send it); None when they do not fit in `limit` bytes (the caller answers STATUS_NOTIFY_ENUM_DIR)."""
    out = bytearray()
    previous = -1
    for action, name in records:
        if previous >= 0:
            out += bytes(-len(out) % 4)
            struct.pack_into("<I", out, previous, len(out) - previous)
        encoded = name.encode("utf-16-le", "surrogatepass")
        previous = len(out)
        out += _RECORD.pack(0, action, len(encoded))
        out += encoded
        if len(out) > limit:
            return None
    return bytes(out)


def decode(data: bytes | memoryview) -> list[tuple[int, str]]:
    """The records of a response (tests and tools)."""
    records = []
    offset = 0
    while True:
        next_offset, action, length = _RECORD.unpack_from(data, offset)
        name = bytes(data[offset + 12:offset + 12 + length]).decode("utf-16-le", "surrogatepass")
        records.append((action, name))
        if not next_offset:
            return records
        offset += next_offset
