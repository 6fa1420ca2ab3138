"""Server-side copy against the daemon: FSCTL_SRV_REQUEST_RESUME_KEY and FSCTL_SRV_COPYCHUNK(_WRITE)
([MS-SMB2] 2.2.31.1, 2.2.32.1, 3.3.5.15.6), through raw requests (tests/builders.py) with chosen arguments.

The statuses are those Samba 4.17 gives in the same setup (smbtorture smb2.ioctl.copy_chunk_* passes on both);
every error after the limits check carries SRV_COPYCHUNK_RESPONSE with the chunks and bytes copied so far.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import SmbServer, assert_no_server_bugs, start_server, stop_server
from tests.integration.syscall_trace import WRITE_CALLS, SyscallTrace

FSCTL_SRV_REQUEST_RESUME_KEY = 0x00140078
FSCTL_SRV_COPYCHUNK = 0x001440F2
FSCTL_SRV_COPYCHUNK_WRITE = 0x001480F2
STATUS_INVALID_VIEW_SIZE = 0xC000001F
STATUS_FILE_LOCK_CONFLICT = 0xC0000054
SMB2_LOCKFLAG_EXCLUSIVE_LOCK = 0x02
SMB2_LOCKFLAG_FAIL_IMMEDIATELY = 0x10
MIB = 1024 * 1024
LIMITS = (256, MIB, 16 * MIB)  # ChunksPerRequest, ChunkSize, TotalBytes of Windows and Samba


def ioctl_output(response: b.Response) -> bytes:
    """OutputOffset(4)@32, OutputCount(4)@36 of an IOCTL response ([MS-SMB2] 2.2.32)."""
    offset, count = struct.unpack_from("<II", response.body, 32)
    return response.body[offset - b.HEADER_SIZE:offset - b.HEADER_SIZE + count]


def resume_key(client: b.Client, file_id: tuple[int, int]) -> bytes:
    response = client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, FSCTL_SRV_REQUEST_RESUME_KEY, max_output=32))
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
    return ioctl_output(response)[:24]


def copy_input(key: bytes, chunks: list[tuple[int, int, int]], count: int | None = None) -> bytes:
    """SRV_COPYCHUNK_COPY: SourceKey, ChunkCount, Reserved, then (SourceOffset, TargetOffset, Length, Reserved)."""
    head = struct.pack("<24sII", key, len(chunks) if count is None else count, 0)
    return head + b"".join(struct.pack("<QQII", source, target, length, 0) for source, target, length in chunks)


def copychunk(client: b.Client, target: tuple[int, int], key: bytes, chunks: list[tuple[int, int, int]], *,
              code: int = FSCTL_SRV_COPYCHUNK, max_output: int = 12,
              tree_id: int | None = None) -> tuple[int, tuple[int, int, int] | None]:
    """(status, (ChunksWritten, ChunkBytesWritten, TotalBytesWritten) or None when no response structure came)."""
    response = client.request(b.SMB2_IOCTL, b.ioctl_body(target, code, copy_input(key, chunks),
                                                         max_output=max_output), tree_id=tree_id)
    if len(response.body) < 48:  # an ERROR response ([MS-SMB2] 2.2.2)
        return response.status, None
    output = ioctl_output(response)
    assert len(output) == 12, output
    return response.status, struct.unpack("<III", output)


def pattern(size: int, seed: int = 0) -> bytes:
    return bytes((index * 7 + seed) & 0xFF for index in range(256)) * (size // 256) + bytes(size % 256)


def make_file(server: SmbServer, name: str, data: bytes) -> None:
    """A file of the share's account with the mode SMB creates give (0744: the owner may also execute)."""
    path = server.share_path / name
    path.write_bytes(data)
    path.chmod(0o744)
    server.hand_over()


ALL = b.GENERIC_READ | b.GENERIC_WRITE


def test_copy_of_chunks_in_the_kernel(smb_server: SmbServer, tmp_path: Path) -> None:
    """Three 1 MiB chunks (one at a new offset) copy exactly those bytes; the server writes none of them
    itself (no pwrite of the target under strace: copy_file_range(2) moved them)."""
    data = pattern(3 * MIB)
    make_file(smb_server, "src.bin", data)
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        source = client.open("src.bin", desired_access=b.GENERIC_READ)
        target = client.open("dst.bin", desired_access=ALL, disposition=b.FILE_OVERWRITE_IF)
        key = resume_key(client, source)
        chunks = [(0, 0, MIB), (MIB, MIB, MIB), (2 * MIB, 5 * MIB, MIB)]
        with SyscallTrace(smb_server.process.pid, tmp_path / "strace.log") as trace:
            trace.wait_attached(lambda: client.request(b.SMB2_ECHO, b.echo_body()))
            status, result = copychunk(client, target, key, chunks)
        assert status == b.STATUS_SUCCESS, b.status_name(status)
        assert result == (3, 0, 3 * MIB)
        written = [event for event in trace.events() if event.name in WRITE_CALLS and "dst.bin" in event.path]
        assert written == []
        for handle in (source, target):
            assert client.close_file(handle) == b.STATUS_SUCCESS
    copied = (smb_server.share_path / "dst.bin").read_bytes()
    assert len(copied) == 6 * MIB
    assert copied[:2 * MIB] == data[:2 * MIB] and copied[5 * MIB:] == data[2 * MIB:]
    assert copied[2 * MIB:5 * MIB] == bytes(3 * MIB)


@pytest.mark.parametrize(("chunks", "count"), [
    ([(0, 0, 4096)] * 257, None),  # more chunks than ChunksPerRequest
    ([(0, 0, MIB + 1)], None),  # a chunk over ChunkSize
    ([(0, 0, 0)], None),  # a chunk of no bytes
    ([(0, index * MIB, MIB) for index in range(17)], None),  # more than TotalBytes in all
], ids=["chunks", "chunk-size", "zero-length", "total"])
def test_limits_answered_with_the_limits(smb_server: SmbServer, chunks: list[tuple[int, int, int]],
                                         count: int | None) -> None:
    """[MS-SMB2] 3.3.5.15.6: STATUS_INVALID_PARAMETER, and the response holds the server's limits instead of
    progress; nothing was written."""
    make_file(smb_server, "src.bin", pattern(MIB))
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        source = client.open("src.bin", desired_access=b.GENERIC_READ)
        target = client.open("dst.bin", desired_access=ALL, disposition=b.FILE_OVERWRITE_IF)
        status, result = copychunk(client, target, resume_key(client, source), chunks)
        assert status == b.STATUS_INVALID_PARAMETER and result == LIMITS
    assert (smb_server.share_path / "dst.bin").stat().st_size == 0


def test_malformed_requests(smb_server: SmbServer) -> None:
    """No room for the 12-byte response, a buffer shorter than its ChunkCount announces, or shorter than the
    header: STATUS_INVALID_PARAMETER as an error response, without the structure (Samba the same). No chunks at
    all copy nothing and succeed (Windows, Samba)."""
    make_file(smb_server, "src.bin", pattern(8192))
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        source = client.open("src.bin", desired_access=b.GENERIC_READ)
        target = client.open("dst.bin", desired_access=ALL, disposition=b.FILE_OVERWRITE_IF)
        key = resume_key(client, source)
        assert copychunk(client, target, key, [(0, 0, 4096)], max_output=11) == (b.STATUS_INVALID_PARAMETER, None)
        for data in (copy_input(key, [(0, 0, 4096)], count=2), copy_input(key, [])[:30]):
            response = client.request(b.SMB2_IOCTL, b.ioctl_body(target, FSCTL_SRV_COPYCHUNK, data, max_output=12))
            assert response.status == b.STATUS_INVALID_PARAMETER and len(response.body) < 48
        assert copychunk(client, target, key, []) == (b.STATUS_SUCCESS, (0, 0, 0))
        assert copychunk(client, target, b"x" * 24, []) == (b.STATUS_SUCCESS, (0, 0, 0))


def test_resume_keys_name_one_open_of_one_session(smb_server: SmbServer) -> None:
    """A key never handed out, or of a closed open, is STATUS_OBJECT_NAME_NOT_FOUND; a key of another session's
    open is STATUS_ACCESS_DENIED (Samba's vfs_offload_token_check_handles); both with an empty response
    structure."""
    make_file(smb_server, "src.bin", pattern(8192))
    server = (smb_server.host, smb_server.port, smb_server.user, smb_server.password)
    with b.connect(*server) as client, b.connect(*server) as other:
        target = client.open("dst.bin", desired_access=ALL, disposition=b.FILE_OVERWRITE_IF)
        assert copychunk(client, target, bytes(24), [(0, 0, 4096)]) == (b.STATUS_OBJECT_NAME_NOT_FOUND, (0, 0, 0))
        closed = client.open("src.bin", desired_access=b.GENERIC_READ)
        key = resume_key(client, closed)
        assert client.close_file(closed) == b.STATUS_SUCCESS
        assert copychunk(client, target, key, [(0, 0, 4096)]) == (b.STATUS_OBJECT_NAME_NOT_FOUND, (0, 0, 0))
        foreign = other.open("src.bin", desired_access=b.GENERIC_READ)
        assert copychunk(client, target, resume_key(other, foreign), [(0, 0, 4096)]) == (
            b.STATUS_ACCESS_DENIED, (0, 0, 0))


@pytest.mark.parametrize(("source_access", "target_access", "code", "status"), [
    (b.FILE_READ_DATA, ALL, FSCTL_SRV_COPYCHUNK, b.STATUS_SUCCESS),
    (b.FILE_EXECUTE, ALL, FSCTL_SRV_COPYCHUNK, b.STATUS_SUCCESS),  # execute reads, as for READ
    (b.FILE_READ_ATTRIBUTES, ALL, FSCTL_SRV_COPYCHUNK, b.STATUS_ACCESS_DENIED),
    (b.GENERIC_READ, b.FILE_WRITE_DATA, FSCTL_SRV_COPYCHUNK, b.STATUS_ACCESS_DENIED),  # COPYCHUNK reads target
    (b.GENERIC_READ, b.FILE_WRITE_DATA, FSCTL_SRV_COPYCHUNK_WRITE, b.STATUS_SUCCESS),
    (b.GENERIC_READ, b.FILE_APPEND_DATA, FSCTL_SRV_COPYCHUNK_WRITE, b.STATUS_SUCCESS),
    (b.GENERIC_READ, b.GENERIC_READ, FSCTL_SRV_COPYCHUNK_WRITE, b.STATUS_ACCESS_DENIED),
], ids=["read", "execute", "no-read", "copychunk-write-only", "write-only", "append-only", "read-only-target"])
def test_access_rights(smb_server: SmbServer, source_access: int, target_access: int, code: int,
                       status: int) -> None:
    make_file(smb_server, "src.bin", pattern(4096))
    make_file(smb_server, "dst.bin", b"")
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        source = client.open("src.bin", desired_access=source_access | b.FILE_READ_ATTRIBUTES)
        target = client.open("dst.bin", desired_access=target_access | b.FILE_READ_ATTRIBUTES)
        got, result = copychunk(client, target, resume_key(client, source), [(0, 0, 4096)], code=code)
        assert got == status, b.status_name(got)
        assert result == ((1, 0, 4096) if status == b.STATUS_SUCCESS else (0, 0, 0))
    expected = pattern(4096) if status == b.STATUS_SUCCESS else b""
    assert (smb_server.share_path / "dst.bin").read_bytes() == expected


def test_errors_report_the_progress_so_far(smb_server: SmbServer) -> None:
    """The first chunk is copied; the second meets another handle's lock on the target
    (STATUS_FILE_LOCK_CONFLICT), or reads past the source's end (STATUS_INVALID_VIEW_SIZE, Windows' and
    Samba's answer where [MS-SMB2] says END_OF_FILE): the response says one chunk, 4096 bytes."""
    make_file(smb_server, "src.bin", pattern(8192))
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        source = client.open("src.bin", desired_access=b.GENERIC_READ, share_access=7)
        target = client.open("dst.bin", desired_access=ALL, disposition=b.FILE_OVERWRITE_IF, share_access=7)
        locker = client.open("dst.bin", desired_access=ALL, share_access=7)
        lock = b.lock_body(locker, [(4096, 4096, SMB2_LOCKFLAG_EXCLUSIVE_LOCK | SMB2_LOCKFLAG_FAIL_IMMEDIATELY)])
        assert client.request(b.SMB2_LOCK, lock).status == b.STATUS_SUCCESS
        key = resume_key(client, source)
        assert copychunk(client, target, key, [(0, 0, 4096), (4096, 4096, 4096)]) == (
            STATUS_FILE_LOCK_CONFLICT, (1, 0, 4096))
        assert copychunk(client, target, key, [(0, 0, 4096), (4096, 8192, 8192)]) == (
            STATUS_INVALID_VIEW_SIZE, (1, 0, 4096))
        # A lock of the source blocks reading it through another handle, as a READ would be.
        source_lock = b.lock_body(source, [(0, 4096, SMB2_LOCKFLAG_EXCLUSIVE_LOCK | SMB2_LOCKFLAG_FAIL_IMMEDIATELY)])
        assert client.request(b.SMB2_LOCK, source_lock).status == b.STATUS_SUCCESS
        other_source = client.open("src.bin", desired_access=b.GENERIC_READ, share_access=7)
        assert copychunk(client, target, resume_key(client, other_source), [(0, 0, 4096)]) == (
            STATUS_FILE_LOCK_CONFLICT, (0, 0, 0))


def test_overlapping_ranges_of_one_file(smb_server: SmbServer) -> None:
    """Source and target are one file and the ranges overlap: each chunk is read whole before it is written,
    as Windows does (smbtorture copy_chunk_src_is_dest_overlap); non-overlapping ranges copy in the kernel."""
    data = pattern(MIB, seed=3)
    make_file(smb_server, "one.bin", data)
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        handle = client.open("one.bin", desired_access=ALL)
        key = resume_key(client, handle)
        assert copychunk(client, handle, key, [(0, 4096, MIB - 8192)]) == (b.STATUS_SUCCESS, (1, 0, MIB - 8192))
        assert copychunk(client, handle, key, [(0, MIB, 4096)]) == (b.STATUS_SUCCESS, (1, 0, 4096))
    result = (smb_server.share_path / "one.bin").read_bytes()
    assert result == data[:4096] + data[:MIB - 8192] + data[MIB - 4096:] + data[:4096]


def test_copy_across_shares(tmp_path: Path) -> None:
    """The source open may be on another share of the same session ([MS-SMB2] 3.3.5.15.6; smbtorture
    copy_chunk_across_shares): a share on another file system gets the same bytes (copy_file_range falls back
    where the kernel cannot copy across file systems)."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    data = pattern(2 * MIB, seed=5)
    (one / "src.bin").write_bytes(data)
    server = start_server(one, tmp_path / "server.log", extra_shares={"two": two})
    try:
        with b.connect(server.host, server.port, server.user, server.password) as client:
            first_tree = client.tree_id
            source = client.open("src.bin", desired_access=b.GENERIC_READ)
            key = resume_key(client, source)
            response = client.tree_connect("two")
            assert response.status == b.STATUS_SUCCESS
            target = client.open("dst.bin", desired_access=ALL, disposition=b.FILE_OVERWRITE_IF)
            assert copychunk(client, target, key, [(0, 0, MIB), (MIB, MIB, MIB)]) == (
                b.STATUS_SUCCESS, (2, 0, 2 * MIB))
            assert client.close_file(target) == b.STATUS_SUCCESS
            client.tree_id = first_tree
            assert client.close_file(source) == b.STATUS_SUCCESS
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)
    assert (two / "dst.bin").read_bytes() == data
    assert os.stat(two / "dst.bin").st_uid == os.stat(two).st_uid  # written as the share's account
