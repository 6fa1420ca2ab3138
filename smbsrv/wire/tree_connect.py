"""TREE_CONNECT and TREE_DISCONNECT ([MS-SMB2] 2.2.9, 2.2.10, 2.2.11, 2.2.12)."""

import struct
from dataclasses import dataclass

from smbsrv.wire.buffer import check_structure_size, decode_utf16, field
from smbsrv.wire.header import HEADER_SIZE

_REQUEST = struct.Struct("<HHHH")
_RESPONSE = struct.Struct("<HBBIII")


@dataclass(frozen=True, slots=True)
class TreeConnectRequest:
    flags: int
    path: str


def decode_request(element: memoryview) -> TreeConnectRequest:
    check_structure_size(element, 9)
    _, flags, offset, length = _REQUEST.unpack_from(element, HEADER_SIZE)
    # With SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT (3.1.1) the extension precedes the name in Buffer, and
    # PathOffset/PathLength still locate the name itself; the tree connect contexts are not used.
    path = decode_utf16(field(element, offset, length, fixed_end=HEADER_SIZE + 8))
    return TreeConnectRequest(flags, path)


def encode_response(share_type: int, share_flags: int, capabilities: int, maximal_access: int) -> bytes:
    return _RESPONSE.pack(16, share_type, 0, share_flags, capabilities, maximal_access)


def decode_disconnect(element: memoryview) -> None:
    check_structure_size(element, 4)


TREE_DISCONNECT_RESPONSE = struct.pack("<HH", 4, 0)
