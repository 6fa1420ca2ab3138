"""OPLOCK_BREAK ([MS-SMB2] 2.2.23-2.2.25): break notifications, acknowledgments and their responses, and the
lease create context ([MS-SMB2] 2.2.13.2.8, 2.2.13.2.10, 2.2.14.2.10, 2.2.14.2.11)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.wire.header import HEADER_SIZE
from smbsrv.wire.status import NtStatus

_OPLOCK_BREAK = struct.Struct("<HBBIQQ")  # notification, acknowledgment and response alike (24)
_LEASE_NOTIFICATION = struct.Struct("<HHI16sIIIII")  # 44
_LEASE_ACK = struct.Struct("<HHI16sIQ")  # acknowledgment and response (36)
_LEASE_V1 = struct.Struct("<16sIIQ")  # 32
_LEASE_V2 = struct.Struct("<16sIIQ16sHH")  # 52


@dataclass(frozen=True, slots=True)
class OplockBreakAck:
    oplock_level: int
    file_id: tuple[int, int]


@dataclass(frozen=True, slots=True)
class LeaseBreakAck:
    lease_key: bytes
    lease_state: int


def decode_ack(element: memoryview) -> OplockBreakAck | LeaseBreakAck:
    """The StructureSize tells an oplock acknowledgment (24) from a lease acknowledgment (36)."""
    if len(element) < HEADER_SIZE + 2:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    size = int.from_bytes(element[HEADER_SIZE:HEADER_SIZE + 2], "little")
    if size == _OPLOCK_BREAK.size and len(element) >= HEADER_SIZE + _OPLOCK_BREAK.size:
        _, level, _, _, persistent, volatile = _OPLOCK_BREAK.unpack_from(element, HEADER_SIZE)
        return OplockBreakAck(level, (persistent, volatile))
    if size == _LEASE_ACK.size and len(element) >= HEADER_SIZE + _LEASE_ACK.size:
        _, _, _, key, state, _ = _LEASE_ACK.unpack_from(element, HEADER_SIZE)
        return LeaseBreakAck(key, state)
    raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)


def encode_oplock_break(oplock_level: int, file_id: tuple[int, int]) -> bytes:
    """An oplock break notification, or the response to its acknowledgment (the same layout)."""
    return _OPLOCK_BREAK.pack(24, oplock_level, 0, 0, file_id[0], file_id[1])


def encode_lease_break_notification(new_epoch: int, flags: int, lease_key: bytes, current_state: int,
                                    new_state: int) -> bytes:
    # BreakReason, AccessMaskHint and ShareMaskHint MUST be 0.
    return _LEASE_NOTIFICATION.pack(44, new_epoch, flags, lease_key, current_state, new_state, 0, 0, 0)


def encode_lease_break_response(lease_key: bytes, lease_state: int) -> bytes:
    return _LEASE_ACK.pack(36, 0, 0, lease_key, lease_state, 0)


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    """SMB2_CREATE_REQUEST_LEASE (v1, 32 bytes) or SMB2_CREATE_REQUEST_LEASE_V2 (52 bytes)."""

    lease_key: bytes
    lease_state: int
    flags: int
    version: int
    parent_lease_key: bytes = bytes(16)
    epoch: int = 0


def decode_lease_request(data: bytes) -> LeaseRequest:
    if len(data) == _LEASE_V1.size:
        key, state, flags, _ = _LEASE_V1.unpack(data)
        return LeaseRequest(key, state, flags, 1)
    if len(data) == _LEASE_V2.size:
        key, state, flags, _, parent, epoch, _ = _LEASE_V2.unpack(data)
        return LeaseRequest(key, state, flags, 2, parent, epoch)
    raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)


def encode_lease_response(version: int, lease_key: bytes, lease_state: int, flags: int,
                          parent_lease_key: bytes, epoch: int) -> bytes:
    if version == 1:
        return _LEASE_V1.pack(lease_key, lease_state, flags, 0)
    return _LEASE_V2.pack(lease_key, lease_state, flags, 0, parent_lease_key, epoch & 0xFFFF, 0)
