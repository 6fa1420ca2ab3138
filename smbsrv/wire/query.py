"""QUERY_DIRECTORY, QUERY_INFO, SET_INFO and CHANGE_NOTIFY ([MS-SMB2] 2.2.33-2.2.40, 2.2.35)."""

import struct
from dataclasses import dataclass

from smbsrv.wire.buffer import check_structure_size, field
from smbsrv.wire.header import HEADER_SIZE

_QUERY_DIRECTORY = struct.Struct("<HBBIQQHHI")
_QUERY_INFO = struct.Struct("<HBBIHHIIIQQ")
_SET_INFO = struct.Struct("<HBBIHHIQQ")
_CHANGE_NOTIFY = struct.Struct("<HHIQQII")
_OUTPUT_RESPONSE = struct.Struct("<HHI")
SET_INFO_RESPONSE = struct.pack("<H", 2)


@dataclass(frozen=True, slots=True)
class QueryDirectoryRequest:
    file_information_class: int
    flags: int
    file_index: int
    file_id: tuple[int, int]
    file_name: memoryview
    output_buffer_length: int


def decode_query_directory(element: memoryview) -> QueryDirectoryRequest:
    check_structure_size(element, 33)
    (_, info_class, flags, file_index, persistent, volatile, name_offset, name_length,
     output_length) = _QUERY_DIRECTORY.unpack_from(element, HEADER_SIZE)
    name = field(element, name_offset, name_length, fixed_end=HEADER_SIZE + 32)
    return QueryDirectoryRequest(info_class, flags, file_index, (persistent, volatile), name, output_length)


@dataclass(frozen=True, slots=True)
class QueryInfoRequest:
    info_type: int
    file_info_class: int
    output_buffer_length: int
    input_buffer: memoryview
    additional_information: int
    flags: int
    file_id: tuple[int, int]


def decode_query_info(element: memoryview) -> QueryInfoRequest:
    check_structure_size(element, 41)
    (_, info_type, info_class, output_length, input_offset, _, input_length, additional, flags, persistent,
     volatile) = _QUERY_INFO.unpack_from(element, HEADER_SIZE)
    data = field(element, input_offset, input_length, fixed_end=HEADER_SIZE + 40)
    return QueryInfoRequest(info_type, info_class, output_length, data, additional, flags, (persistent, volatile))


@dataclass(frozen=True, slots=True)
class SetInfoRequest:
    info_type: int
    file_info_class: int
    buffer: memoryview
    additional_information: int
    file_id: tuple[int, int]


def decode_set_info(element: memoryview) -> SetInfoRequest:
    check_structure_size(element, 33)
    (_, info_type, info_class, length, offset, _, additional, persistent,
     volatile) = _SET_INFO.unpack_from(element, HEADER_SIZE)
    data = field(element, offset, length, fixed_end=HEADER_SIZE + 32)
    return SetInfoRequest(info_type, info_class, data, additional, (persistent, volatile))


@dataclass(frozen=True, slots=True)
class ChangeNotifyRequest:
    flags: int
    output_buffer_length: int
    file_id: tuple[int, int]
    completion_filter: int


def decode_change_notify(element: memoryview) -> ChangeNotifyRequest:
    check_structure_size(element, 32)
    _, flags, output_length, persistent, volatile, completion_filter, _ = _CHANGE_NOTIFY.unpack_from(
        element, HEADER_SIZE)
    return ChangeNotifyRequest(flags, output_length, (persistent, volatile), completion_filter)


def encode_output_response(output: bytes | bytearray | memoryview) -> bytes:
    """QUERY_DIRECTORY, QUERY_INFO and CHANGE_NOTIFY responses share this shape (StructureSize 9)."""
    offset = HEADER_SIZE + 8 if output else 0
    return _OUTPUT_RESPONSE.pack(9, offset, len(output)) + (bytes(output) if output else b"\0")
