"""The 64-byte SMB2 packet header ([MS-SMB2] 2.2.1.1 async form, 2.2.1.2 sync form)."""

import struct
from dataclasses import dataclass

from smbsrv.errors import ProtocolViolation
from smbsrv.wire.constants import SMB2_FLAGS_ASYNC_COMMAND, SMB2_PROTOCOL_ID

HEADER_SIZE = 64

# ProtocolId, StructureSize, CreditCharge, Status/ChannelSequence, Command, CreditRequest, Flags, NextCommand,
# MessageId, then 8 bytes that are Reserved+TreeId (sync) or AsyncId (async), SessionId, Signature.
_HEADER = struct.Struct("<4sHHIHHIIQ8sQ16s")
_SYNC_IDS = struct.Struct("<II")
_ASYNC_ID = struct.Struct("<Q")


@dataclass(slots=True)
class Header:
    credit_charge: int
    channel_sequence: int  # requests: ChannelSequence(2)+Reserved(2); responses: Status
    command: int
    credit_request: int
    flags: int
    next_command: int
    message_id: int
    tree_id: int
    async_id: int
    session_id: int
    signature: bytes

    @property
    def is_async(self) -> bool:
        return self.flags & SMB2_FLAGS_ASYNC_COMMAND != 0


def decode_header(message: memoryview | bytes, offset: int = 0) -> Header:
    """Decode the header at `offset`; the caller has checked that 64 bytes are there."""
    (protocol_id, structure_size, credit_charge, status_or_seq, command, credit_request, flags, next_command,
     message_id, ids, session_id, signature) = _HEADER.unpack_from(message, offset)
    if protocol_id != SMB2_PROTOCOL_ID or structure_size != HEADER_SIZE:
        raise ProtocolViolation("bad SMB2 header")
    if flags & SMB2_FLAGS_ASYNC_COMMAND:
        (async_id,) = _ASYNC_ID.unpack(ids)
        tree_id = 0
    else:
        async_id = 0
        tree_id = _SYNC_IDS.unpack(ids)[1]
    return Header(credit_charge, status_or_seq & 0xFFFF, command, credit_request, flags, next_command,
                  message_id, tree_id, async_id, session_id, signature)


def encode_response_header(buf: bytearray | memoryview, offset: int, *, status: int, command: int,
                           credit_charge: int, credits: int, flags: int, next_command: int, message_id: int,
                           tree_id: int, async_id: int, session_id: int) -> None:
    """Write a response header into `buf` at `offset` (Signature zero; signing fills it later)."""
    if flags & SMB2_FLAGS_ASYNC_COMMAND:
        ids = _ASYNC_ID.pack(async_id)
    else:
        ids = _SYNC_IDS.pack(0xFEFF, tree_id)
    _HEADER.pack_into(buf, offset, SMB2_PROTOCOL_ID, HEADER_SIZE, credit_charge, status, command, credits, flags,
                      next_command, message_id, ids, session_id, bytes(16))


_NEXT_COMMAND = struct.Struct("<I")


def set_next_command(buf: bytearray | memoryview, offset: int, value: int) -> None:
    _NEXT_COMMAND.pack_into(buf, offset + 20, value)
