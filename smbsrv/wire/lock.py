"""LOCK ([MS-SMB2] 2.2.26, 2.2.27)."""

import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.wire.buffer import check_structure_size
from smbsrv.wire.header import HEADER_SIZE
from smbsrv.wire.status import NtStatus

_REQUEST = struct.Struct("<HHIQQ")
_ELEMENT = struct.Struct("<QQII")
LOCK_RESPONSE = struct.pack("<HH", 4, 0)


@dataclass(frozen=True, slots=True)
class LockElement:
    offset: int
    length: int
    flags: int


@dataclass(frozen=True, slots=True)
class LockRequest:
    lock_sequence: int
    file_id: tuple[int, int]
    locks: tuple[LockElement, ...]


def decode_request(element: memoryview) -> LockRequest:
    check_structure_size(element, 48)
    _, count, sequence, persistent, volatile = _REQUEST.unpack_from(element, HEADER_SIZE)
    start = HEADER_SIZE + 24
    if count == 0 or start + count * _ELEMENT.size > len(element):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    locks = []
    for index in range(count):
        offset, length, flags, _ = _ELEMENT.unpack_from(element, start + index * _ELEMENT.size)
        locks.append(LockElement(offset, length, flags))
    return LockRequest(sequence, (persistent, volatile), tuple(locks))
