"""IOCTL ([MS-SMB2] 2.2.31, 2.2.32)."""

import struct
from dataclasses import dataclass

from smbsrv.wire.buffer import check_structure_size, field
from smbsrv.wire.header import HEADER_SIZE

_REQUEST = struct.Struct("<HHIQQIIIIIIII")
_RESPONSE = struct.Struct("<HHIQQIIIIII")


@dataclass(frozen=True, slots=True)
class IoctlRequest:
    ctl_code: int
    file_id: tuple[int, int]
    input: memoryview
    max_input_response: int
    max_output_response: int
    flags: int


def decode_request(element: memoryview) -> IoctlRequest:
    check_structure_size(element, 57)
    (_, _, ctl_code, persistent, volatile, input_offset, input_count, max_input, _, _, max_output, flags,
     _) = _REQUEST.unpack_from(element, HEADER_SIZE)
    data = field(element, input_offset, input_count, fixed_end=HEADER_SIZE + 56)
    return IoctlRequest(ctl_code, (persistent, volatile), data, max_input, max_output, flags)


def encode_response(ctl_code: int, file_id: tuple[int, int], output: bytes) -> bytes:
    # Input is never echoed back (Windows sends InputCount 0 for the FSCTLs implemented here).
    offset = HEADER_SIZE + 48
    return _RESPONSE.pack(49, 0, ctl_code, file_id[0], file_id[1], offset, 0, offset, len(output), 0,
                          0) + output
