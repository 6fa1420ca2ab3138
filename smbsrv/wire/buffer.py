"""Bounds-checked access to the variable parts of an SMB2 message.

Every Offset/Length pair in a request goes through `field()`: offsets count from the start of the SMB2 header
([MS-SMB2] 2.2.1), and a pair that points outside the element or into the fixed part is a malformed request.
"""

import struct

from smbsrv.errors import SmbError
from smbsrv.wire.header import HEADER_SIZE
from smbsrv.wire.status import NtStatus

_U16 = struct.Struct("<H")


def check_structure_size(element: memoryview, expected: int) -> None:
    """The body must be there in full and announce the StructureSize of this command ([MS-SMB2] 3.3.5.2.6)."""
    fixed = expected & ~1  # an odd StructureSize counts one byte of the variable part
    if len(element) < HEADER_SIZE + fixed or _U16.unpack_from(element, HEADER_SIZE)[0] != expected:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)


def field(element: memoryview, offset: int, length: int, *, fixed_end: int) -> memoryview:
    """The `length` bytes at header-relative `offset`, which must lie after the fixed part and inside the element.

    A zero length yields an empty view whatever the offset, as clients send offset 0 for absent buffers.
    """
    if length == 0:
        return element[0:0]
    if offset < fixed_end or offset + length > len(element):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    return element[offset:offset + length]


def decode_utf16(raw: memoryview | bytes) -> str:
    """A UTF-16LE name from the wire; odd lengths and lone surrogates are invalid names."""
    if len(raw) % 2:
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_INVALID)
    try:
        return bytes(raw).decode("utf-16-le")
    except UnicodeDecodeError:
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_INVALID) from None


def pad8(length: int) -> int:
    return (length + 7) & ~7
