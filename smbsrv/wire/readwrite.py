"""READ, WRITE and FLUSH ([MS-SMB2] 2.2.17-2.2.22)."""

import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.wire.buffer import check_structure_size
from smbsrv.wire.header import HEADER_SIZE
from smbsrv.wire.status import NtStatus

_READ_REQUEST = struct.Struct("<HBBIQQQIIIHH")
_READ_RESPONSE = struct.Struct("<HBBIII")
_WRITE_REQUEST = struct.Struct("<HHIQQQIIHHI")
_WRITE_RESPONSE = struct.Struct("<HHIIHH")
_FLUSH_REQUEST = struct.Struct("<HHIQQ")

READ_RESPONSE_HEADER_SIZE = 16
FLUSH_RESPONSE = struct.pack("<HH", 4, 0)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    flags: int
    length: int
    offset: int
    file_id: tuple[int, int]
    minimum_count: int
    channel: int


def decode_read(element: memoryview) -> ReadRequest:
    check_structure_size(element, 49)
    (_, _, flags, length, offset, persistent, volatile, minimum_count, channel, _, _,
     _) = _READ_REQUEST.unpack_from(element, HEADER_SIZE)
    return ReadRequest(flags, length, offset, (persistent, volatile), minimum_count, channel)


def encode_read_response_header(data_length: int) -> bytes:
    """The fixed part of a READ response; the data follows at DataOffset 0x50 ([MS-SMB2] 2.2.20)."""
    return _READ_RESPONSE.pack(17, HEADER_SIZE + READ_RESPONSE_HEADER_SIZE, 0, data_length, 0, 0)


@dataclass(frozen=True, slots=True)
class WriteRequest:
    offset: int
    file_id: tuple[int, int]
    channel: int
    flags: int
    data: memoryview


def decode_write(element: memoryview) -> WriteRequest:
    check_structure_size(element, 49)
    (_, data_offset, length, offset, persistent, volatile, channel, _, _, _,
     flags) = _WRITE_REQUEST.unpack_from(element, HEADER_SIZE)
    if length == 0:
        data = element[0:0]
    elif data_offset < HEADER_SIZE + 48 or data_offset + length > len(element):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    else:
        data = element[data_offset:data_offset + length]
    return WriteRequest(offset, (persistent, volatile), channel, flags, data)


def encode_write_response(count: int) -> bytes:
    return _WRITE_RESPONSE.pack(17, 0, count, 0, 0, 0)


def decode_flush(element: memoryview) -> tuple[int, int]:
    check_structure_size(element, 24)
    _, _, _, persistent, volatile = _FLUSH_REQUEST.unpack_from(element, HEADER_SIZE)
    return (persistent, volatile)
