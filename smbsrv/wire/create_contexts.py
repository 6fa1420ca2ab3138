"""Create contexts: the chained Next/Name/Data records of CREATE ([MS-SMB2] 2.2.13.2, 2.2.14.2)."""

import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.wire.buffer import pad8
from smbsrv.wire.status import NtStatus

_CONTEXT = struct.Struct("<IHHHHI")
_DURABLE_V2_REQUEST = struct.Struct("<II8s16s")  # Timeout, Flags, Reserved, CreateGuid ([MS-SMB2] 2.2.13.2.11)
_DURABLE_V2_RECONNECT = struct.Struct("<QQ16sI")  # FileId, CreateGuid, Flags ([MS-SMB2] 2.2.13.2.12)
_DURABLE_V2_RESPONSE = struct.Struct("<II")  # Timeout, Flags ([MS-SMB2] 2.2.14.2.12)
_FILE_ID = struct.Struct("<QQ")
SMB2_DHANDLE_FLAG_PERSISTENT = 0x00000002


@dataclass(frozen=True, slots=True)
class CreateContext:
    name: bytes
    data: bytes


def decode_chain(chain: memoryview) -> dict[bytes, bytes]:
    """Decode a request's context chain into name -> data. Duplicate names are invalid ([MS-SMB2] 3.3.5.9)."""
    contexts: dict[bytes, bytes] = {}
    position = 0
    while True:
        if position + _CONTEXT.size > len(chain):
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        next_offset, name_offset, name_length, _, data_offset, data_length = _CONTEXT.unpack_from(chain, position)
        end = len(chain) if next_offset == 0 else position + next_offset
        if next_offset and (next_offset % 8 or end > len(chain)) or end <= position:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        # Names are at least 4 bytes (every defined tag is): shorter is INVALID_PARAMETER, as Windows and Samba's
        # smb2_create_blob_parse answer (smbtorture smb2.create.blob "bad tag length").
        if name_length < 4 or name_offset < _CONTEXT.size or position + name_offset + name_length > end:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        if data_length and (data_offset < name_offset + name_length or position + data_offset + data_length > end):
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        name = bytes(chain[position + name_offset:position + name_offset + name_length])
        data = bytes(chain[position + data_offset:position + data_offset + data_length]) if data_length else b""
        if name in contexts:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        contexts[name] = data
        if next_offset == 0:
            return contexts
        position = end


def encode_chain(contexts: list[CreateContext]) -> bytes:
    """Encode response contexts, each 8-byte aligned, Next = 0 on the last."""
    parts: list[bytes] = []
    for index, context in enumerate(contexts):
        name_offset = _CONTEXT.size
        data_offset = pad8(name_offset + len(context.name)) if context.data else 0
        body_end = (data_offset + len(context.data)) if context.data else name_offset + len(context.name)
        last = index == len(contexts) - 1
        total = body_end if last else pad8(body_end)
        parts.append(_CONTEXT.pack(0 if last else total, name_offset, len(context.name), 0, data_offset,
                                   len(context.data)))
        parts.append(context.name)
        if context.data:
            parts.append(bytes(data_offset - name_offset - len(context.name)))
            parts.append(context.data)
        parts.append(bytes(total - body_end))
    return b"".join(parts)


# -- durable handles ([MS-SMB2] 2.2.13.2.3/4/11/12, 2.2.14.2.3/12) -------------------------------------------------

@dataclass(frozen=True, slots=True)
class DurableRequestV2:
    timeout_ms: int
    flags: int
    create_guid: bytes


@dataclass(frozen=True, slots=True)
class DurableReconnectV2:
    file_id: tuple[int, int]
    create_guid: bytes
    flags: int


def check_durable_request(data: bytes) -> None:
    """DHnQ: 16 reserved bytes, nothing else ([MS-SMB2] 2.2.13.2.3)."""
    if len(data) != 16:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)


def decode_durable_request_v2(data: bytes) -> DurableRequestV2:
    if len(data) != _DURABLE_V2_REQUEST.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    timeout_ms, flags, _, create_guid = _DURABLE_V2_REQUEST.unpack(data)
    return DurableRequestV2(timeout_ms, flags, create_guid)


def decode_durable_reconnect(data: bytes) -> tuple[int, int]:
    """DHnC: the FileId of the open to reestablish ([MS-SMB2] 2.2.13.2.4)."""
    if len(data) != _FILE_ID.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    persistent, volatile = _FILE_ID.unpack(data)
    return persistent, volatile


def decode_durable_reconnect_v2(data: bytes) -> DurableReconnectV2:
    if len(data) != _DURABLE_V2_RECONNECT.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    persistent, volatile, create_guid, flags = _DURABLE_V2_RECONNECT.unpack(data)
    return DurableReconnectV2((persistent, volatile), create_guid, flags)


def encode_durable_response() -> bytes:
    """DHnQ response: 8 reserved bytes ([MS-SMB2] 2.2.14.2.3)."""
    return bytes(8)


def encode_durable_response_v2(timeout_ms: int, flags: int) -> bytes:
    return _DURABLE_V2_RESPONSE.pack(timeout_ms, flags)
