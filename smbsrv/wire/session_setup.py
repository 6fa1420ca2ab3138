"""SESSION_SETUP and LOGOFF ([MS-SMB2] 2.2.5, 2.2.6, 2.2.7, 2.2.8)."""

import struct
from dataclasses import dataclass

from smbsrv.wire.buffer import check_structure_size, field
from smbsrv.wire.header import HEADER_SIZE

_REQUEST = struct.Struct("<HBBIIHHQ")
_RESPONSE = struct.Struct("<HHHH")


@dataclass(frozen=True, slots=True)
class SessionSetupRequest:
    flags: int
    security_mode: int
    capabilities: int
    previous_session_id: int
    security_buffer: bytes


def decode_request(element: memoryview) -> SessionSetupRequest:
    check_structure_size(element, 25)
    _, flags, security_mode, capabilities, _, offset, length, previous = _REQUEST.unpack_from(element, HEADER_SIZE)
    token = field(element, offset, length, fixed_end=HEADER_SIZE + 24)
    return SessionSetupRequest(flags, security_mode, capabilities, previous, bytes(token))


def encode_response(session_flags: int, security_buffer: bytes) -> bytes:
    fixed = _RESPONSE.pack(9, session_flags, HEADER_SIZE + 8 if security_buffer else 0, len(security_buffer))
    return fixed + (security_buffer or b"\0")


def decode_logoff(element: memoryview) -> None:
    check_structure_size(element, 4)


LOGOFF_RESPONSE = struct.pack("<HH", 4, 0)
