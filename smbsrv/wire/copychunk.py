"""Server-side copy structures: SRV_COPYCHUNK_COPY with its SRV_COPYCHUNK array ([MS-SMB2] 2.2.31.1,
2.2.31.1.1) and SRV_COPYCHUNK_RESPONSE ([MS-SMB2] 2.2.32.1)."""

import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.wire.status import NtStatus

RESUME_KEY_SIZE = 24
_COPY = struct.Struct("<24sII")  # SourceKey, ChunkCount, Reserved
_CHUNK = struct.Struct("<QQII")  # SourceOffset, TargetOffset, Length, Reserved
_RESPONSE = struct.Struct("<III")  # ChunksWritten, ChunkBytesWritten, TotalBytesWritten
RESPONSE_SIZE = _RESPONSE.size


@dataclass(frozen=True, slots=True)
class Chunk:
    source_offset: int
    target_offset: int
    length: int


@dataclass(frozen=True, slots=True)
class CopyChunkCopy:
    source_key: bytes
    chunks: tuple[Chunk, ...]


def decode_copy(data: memoryview | bytes) -> CopyChunkCopy:
    """A buffer shorter than its ChunkCount announces is STATUS_INVALID_PARAMETER (Samba's NDR pull fails the
    same way). Bytes after the last chunk are ignored."""
    if len(data) < _COPY.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    source_key, chunk_count, _ = _COPY.unpack_from(data)
    if len(data) < _COPY.size + chunk_count * _CHUNK.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    chunks = tuple(
        Chunk(*_CHUNK.unpack_from(data, _COPY.size + index * _CHUNK.size)[:3]) for index in range(chunk_count))
    return CopyChunkCopy(bytes(source_key), chunks)


def encode_response(chunks_written: int, chunk_bytes_written: int, total_bytes_written: int) -> bytes:
    return _RESPONSE.pack(chunks_written, chunk_bytes_written, total_bytes_written)
