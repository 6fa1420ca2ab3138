"""Server-side copy: FSCTL_SRV_REQUEST_RESUME_KEY and FSCTL_SRV_COPYCHUNK / FSCTL_SRV_COPYCHUNK_WRITE
([MS-SMB2] 2.2.31.1, 2.2.32.1, 2.2.32.3, 3.3.5.15.5, 3.3.5.15.6).

cifs.ko turns copy_file_range(2) (`cp` on a mount) into these, and Windows Explorer copies with them. The data
moves with copy_file_range(2) between the two fds (fs/backend.copy_range): it never passes through this
process, and btrfs or XFS share the extents instead of copying them. The checks follow Samba 4.17
(vfswrap_offload_write_send, vfs_offload_token_check_handles) in the same order, so each bad request gets the
status Samba and Windows give it; smbtorture smb2.ioctl.copy_chunk_* exercises them.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from smbsrv.commands.ioctl import resume_keys
from smbsrv.fs import backend
from smbsrv.hsm import access as hsm_access
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.protocol.reply import Reply
from smbsrv.wire import copychunk as wire
from smbsrv.wire import ioctl as ioctl_wire
from smbsrv.wire.constants import (
    FILE_APPEND_DATA,
    FILE_EXECUTE,
    FILE_READ_DATA,
    FILE_WRITE_DATA,
    FILE_WRITE_THROUGH,
    FSCTL_SRV_COPYCHUNK,
)
from smbsrv.wire.status import NtStatus

# ServerSideCopyMaxNumberofChunks, ServerSideCopyMaxChunkSize, ServerSideCopyMaxDataSize: the values of Windows
# and Samba, which clients (cifs.ko, Windows) size their requests by after one refusal.
MAX_CHUNKS = 256
MAX_CHUNK_SIZE = 1 << 20
MAX_TOTAL_BYTES = 16 << 20
_MAX_OFFSET = 0x7FFFFFFFFFFFFFFF
_MAXFILESIZE = 0xFFFFFFF0000  # [MS-FSA] 2.1.5.3: no byte is written at or past it (as WRITE)
# Requests that copy less than this run on the event loop; larger ones copy in a worker thread, chunk by chunk.
_THREAD_BYTES = 1 << 20


def request_resume_key(ctx: RequestContext, open_: Open, request: ioctl_wire.IoctlRequest) -> bytes:
    """[MS-SMB2] 2.2.32.3: ResumeKey, ContextLength 0 and the 4 bytes of Context Windows and Samba send along."""
    return resume_keys.key_for(open_) + struct.pack("<II", 0, 0)


def copy_chunk(ctx: RequestContext, open_: Open,
               request: ioctl_wire.IoctlRequest) -> bytes | Reply | Coroutine[Any, Any, bytes | Reply]:
    if request.max_output_response < wire.RESPONSE_SIZE:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)  # no room for the answer, so none is given
    copy = wire.decode_copy(request.input)
    if _exceeds_limits(copy.chunks):
        # [MS-SMB2] 3.3.5.15.6: the server's limits go back in the response, for the client to retry within.
        return Reply(wire.encode_response(MAX_CHUNKS, MAX_CHUNK_SIZE, MAX_TOTAL_BYTES),
                     status=NtStatus.STATUS_INVALID_PARAMETER)
    job = _CopyJob(ctx, open_, request.ctl_code, copy.source_key)
    if ctx.tree is not None and ctx.tree.share.hsm_provider:  # placeholders hydrate first (docs/hsm.md)
        hsm_access.before_copy(ctx, open_, resume_keys.source_open(copy.source_key),
                               lambda: job.run_in_threads(copy.chunks))
    if sum(chunk.length for chunk in copy.chunks) < _THREAD_BYTES:
        return job.run(copy.chunks)
    return job.run_in_threads(copy.chunks)


def _exceeds_limits(chunks: tuple[wire.Chunk, ...]) -> bool:
    """ChunkCount over the maximum, a chunk of 0 bytes or over the chunk size, or more bytes than the total.
    No chunks at all is a valid request that copies nothing (Windows and Samba answer SUCCESS)."""
    if len(chunks) > MAX_CHUNKS:
        return True
    if any(chunk.length == 0 or chunk.length > MAX_CHUNK_SIZE for chunk in chunks):
        return True
    return sum(chunk.length for chunk in chunks) > MAX_TOTAL_BYTES


@dataclass(slots=True)
class _Step:
    """One chunk checked and ready to copy."""

    source: Open
    chunk: wire.Chunk
    same_file: bool  # source and target are one file: later chunks may read what this one writes
    overlapping: bool  # ... and the two ranges overlap, which copy_file_range refuses (EINVAL)


@dataclass(slots=True)
class _Copied:
    chunks: int = 0
    bytes: int = 0
    failure: NtStatus | None = None


class _CopyJob:
    """One request's chunks, copied in order. Every failure after the limits check answers the response
    structure with the chunks and bytes copied so far (Windows, Samba; smbtorture copy_chunk_src_exceed_multi).

    Chunks are checked in order and copied in batches: as long as the source is another file, copying cannot
    change what a later chunk's checks see, so the checked chunks go to the kernel together (one worker thread
    hop per request, and contiguous chunks as one copy_file_range call). A chunk whose source is the target
    file ends its batch."""

    def __init__(self, ctx: RequestContext, target: Open, ctl_code: int, source_key: bytes) -> None:
        self.ctx = ctx
        self.target = target
        self.ctl_code = ctl_code
        self.source_key = source_key
        self.done = _Copied()

    def run(self, chunks: tuple[wire.Chunk, ...]) -> bytes | Reply:
        index = 0
        while index < len(chunks):
            batch, index, failure = self._prepare_batch(chunks, index)
            if batch and (batch[0].source.stream is not None or self.target.stream is not None):
                self._add(_copy_through_handles(batch, self.target))
            elif batch:
                self._add(_copy_batch(batch[0].source.handle.fd, self.target.handle.fd, batch))
            if failure is not None or self.done.failure is not None:
                return self._failed(failure)
        return self._finish()

    async def run_in_threads(self, chunks: tuple[wire.Chunk, ...]) -> bytes | Reply:
        loop = asyncio.get_running_loop()
        server = self.ctx.connection.server
        index = 0
        while index < len(chunks):
            batch, index, failure = self._prepare_batch(chunks, index)
            if batch and (batch[0].source.stream is not None or self.target.stream is not None):
                self._add(_copy_through_handles(batch, self.target))
            elif batch:
                with batch[0].source.handle.borrowed_fd() as source_fd, \
                        self.target.handle.borrowed_fd() as target_fd:
                    self._add(await loop.run_in_executor(None, _copy_batch_as, server, self.target.session,
                                                         source_fd, target_fd, batch))
            if failure is not None or self.done.failure is not None:
                return self._failed(failure)
        return self._finish()

    def _prepare_batch(self, chunks: tuple[wire.Chunk, ...],
                       index: int) -> tuple[list[_Step], int, NtStatus | None]:
        """Check chunks from `index` on: the batch to copy now, where the next batch starts, and the status of
        the chunk that failed its checks (the batch before it is still copied)."""
        batch: list[_Step] = []
        while index < len(chunks):
            try:
                step = self._prepare(chunks[index])
            except SmbError as exc:
                return batch, index, exc.status
            batch.append(step)
            index += 1
            if step.same_file:
                break
        return batch, index, None

    def _prepare(self, chunk: wire.Chunk) -> _Step:
        """The checks of one chunk, in Samba's order (its offload write runs them per chunk, so a later chunk
        sees what an earlier one wrote)."""
        if chunk.source_offset > _MAX_OFFSET - chunk.length or chunk.target_offset > _MAX_OFFSET - chunk.length:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        if chunk.target_offset + chunk.length > _MAXFILESIZE:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        source = resume_keys.source_open(self.source_key)
        if source is None:
            raise SmbError(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND)
        _check_handles(self.ctl_code, source, self.target)
        if source.handle.size() < chunk.source_offset + chunk.length:
            # [MS-SMB2] 3.3.5.15.6 says STATUS_END_OF_FILE; Windows (<240>) and Samba answer INVALID_VIEW_SIZE.
            raise SmbError(NtStatus.STATUS_INVALID_VIEW_SIZE)
        check_locks(self.ctx, source, chunk.source_offset, chunk.length, write=False)
        check_locks(self.ctx, self.target, chunk.target_offset, chunk.length, write=True)
        one_file = same_file(source, self.target)
        overlapping = one_file and (chunk.source_offset < chunk.target_offset + chunk.length
                                    and chunk.target_offset < chunk.source_offset + chunk.length)
        return _Step(source, chunk, one_file, overlapping)

    def _add(self, copied: _Copied) -> None:
        self.done.chunks += copied.chunks
        self.done.bytes += copied.bytes
        self.done.failure = copied.failure

    def _finish(self) -> bytes:
        share = self.target.tree.share
        if share.sync_always or self.target.create_options & FILE_WRITE_THROUGH:
            self.target.handle.sync(data_only=True)
        return wire.encode_response(self.done.chunks, 0, self.done.bytes)

    def _failed(self, status: NtStatus | None) -> Reply:
        failure = self.done.failure or status
        assert failure is not None
        return Reply(wire.encode_response(self.done.chunks, 0, self.done.bytes), status=failure)


def _check_handles(ctl_code: int, source: Open, target: Open) -> None:
    """[MS-SMB2] 3.3.5.15.6: both handles of one session, files not directories; the target writable, and for
    FSCTL_SRV_COPYCHUNK also readable (COPYCHUNK_WRITE exists for write-only targets); the source readable
    (FILE_EXECUTE counts, as for READ)."""
    if source.session is not target.session or source.is_directory or target.is_directory:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if not target.granted_access & (FILE_WRITE_DATA | FILE_APPEND_DATA):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if ctl_code == FSCTL_SRV_COPYCHUNK and not target.granted_access & FILE_READ_DATA:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if not source.granted_access & (FILE_READ_DATA | FILE_EXECUTE):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)


# -- per-file state: the two places that ask about other opens of a file (see issue 12) ------------------------

def check_locks(ctx: RequestContext, open_: Open, offset: int, length: int, *, write: bool) -> None:
    """Another handle's byte-range lock refuses the copy as it would a READ or WRITE of the range
    (STATUS_FILE_LOCK_CONFLICT; Windows since 2012 and Samba: smbtorture copy_chunk_src_lock/dest_lock)."""
    if length:
        open_.file.locks.check_io(open_, offset, length, write=write)


def same_file(one: Open, other: Open) -> bool:
    return one.handle.key == other.handle.key


# -- the copy itself ---------------------------------------------------------------------------------------------

def _copy_batch(source_fd: int, target_fd: int, batch: list[_Step]) -> _Copied:
    """Copy the chunks in order; chunks that continue each other on both sides go to the kernel as one range.
    A failure stops the batch: the chunks of the failed run count as not written."""
    done = _Copied()
    index = 0
    while index < len(batch):
        first = batch[index].chunk
        length, end = first.length, index + 1
        while end < len(batch) and not batch[index].overlapping and not batch[end].overlapping and (
                batch[end].chunk.source_offset == first.source_offset + length
                and batch[end].chunk.target_offset == first.target_offset + length):
            length += batch[end].chunk.length
            end += 1
        try:
            if batch[index].overlapping:
                # A chunk (at most 1 MiB) is read whole before it is written: the result is what a copy through
                # a buffer gives, as on Windows (smbtorture copy_chunk_src_is_dest_overlap).
                copied = backend.copy_range_buffered(source_fd, first.source_offset, target_fd,
                                                     first.target_offset, length, buffer_size=MAX_CHUNK_SIZE)
            else:
                copied = backend.copy_range(source_fd, first.source_offset, target_fd, first.target_offset, length)
        except SmbError as exc:
            done.failure = exc.status
            return done
        done.chunks += end - index
        done.bytes += copied
        index = end
    return done


def _copy_through_handles(batch: list[_Step], target: Open) -> _Copied:
    """Chunks from or to a named stream, whose data is an xattr value (fs/streams.py): read and written through
    the handles, on the event loop's thread like every stream write (a stream holds at most 64 KiB)."""
    done = _Copied()
    for step in batch:
        chunk = step.chunk
        try:
            data = step.source.handle.read(chunk.length, chunk.source_offset)
            target.handle.write(data, chunk.target_offset)
        except SmbError as exc:
            done.failure = exc.status
            return done
        done.chunks += 1
        done.bytes += len(data)
    return done


def _copy_batch_as(server: Any, session: Any, source_fd: int, target_fd: int, batch: list[_Step]) -> _Copied:
    # A worker thread has no identity of its own: the copy runs as the session's user, like the request.
    with server.acting_as(session):
        return _copy_batch(source_fd, target_fd, batch)
