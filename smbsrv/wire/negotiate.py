"""NEGOTIATE request and response ([MS-SMB2] 2.2.3, 2.2.3.1, 2.2.4)."""

import struct
from dataclasses import dataclass
from dataclasses import field as dc_field

from smbsrv.errors import SmbError
from smbsrv.wire.buffer import check_structure_size, pad8
from smbsrv.wire.header import HEADER_SIZE
from smbsrv.wire.status import NtStatus

_REQUEST = struct.Struct("<HHHHI16sIHH")
_CONTEXT_HEADER = struct.Struct("<HHI")
_RESPONSE = struct.Struct("<HHHH16sIIIIQQHHI")
_U16 = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class NegotiateContext:
    context_type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class NegotiateRequest:
    security_mode: int
    capabilities: int
    client_guid: bytes
    dialects: tuple[int, ...]
    contexts: tuple[NegotiateContext, ...]


def decode_request(element: memoryview) -> NegotiateRequest:
    check_structure_size(element, 36)
    (_, dialect_count, security_mode, _, capabilities, client_guid, context_offset, context_count,
     _) = _REQUEST.unpack_from(element, HEADER_SIZE)
    dialects_start = HEADER_SIZE + 36
    if dialect_count == 0 or dialects_start + 2 * dialect_count > len(element):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    dialects = tuple(_U16.unpack_from(element, dialects_start + 2 * i)[0] for i in range(dialect_count))
    contexts: list[NegotiateContext] = []
    if 0x0311 in dialects and context_count:
        position = context_offset
        if position < dialects_start + 2 * dialect_count:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        for index in range(context_count):
            if index:
                position = pad8(position)
            if position + 8 > len(element):
                raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
            context_type, data_length, _ = _CONTEXT_HEADER.unpack_from(element, position)
            data_start = position + 8
            if data_start + data_length > len(element):
                raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
            contexts.append(NegotiateContext(context_type, bytes(element[data_start:data_start + data_length])))
            position = data_start + data_length
    return NegotiateRequest(security_mode, capabilities, bytes(client_guid), dialects, tuple(contexts))


@dataclass(slots=True)
class NegotiateResponse:
    security_mode: int
    dialect_revision: int
    server_guid: bytes
    capabilities: int
    max_transact_size: int
    max_read_size: int
    max_write_size: int
    system_time: int
    server_start_time: int
    security_buffer: bytes
    contexts: list[NegotiateContext] = dc_field(default_factory=list)

    def encode(self) -> bytes:
        buffer_offset = HEADER_SIZE + 64
        # StructureSize 65 counts one byte of Buffer, which must be present even when empty.
        security = self.security_buffer or b"\0"
        contexts_offset = pad8(buffer_offset + len(security)) if self.contexts else 0
        fixed = _RESPONSE.pack(
            65, self.security_mode, self.dialect_revision, len(self.contexts), self.server_guid,
            self.capabilities, self.max_transact_size, self.max_read_size, self.max_write_size, self.system_time,
            self.server_start_time, buffer_offset, len(self.security_buffer), contexts_offset)
        parts = [fixed, security]
        if self.contexts:
            length = buffer_offset + len(security)
            for context in self.contexts:
                padding = pad8(length) - length
                parts.append(bytes(padding))
                parts.append(_CONTEXT_HEADER.pack(context.context_type, len(context.data), 0))
                parts.append(context.data)
                length += padding + 8 + len(context.data)
        return b"".join(parts)
