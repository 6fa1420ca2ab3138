"""Byte-range locks mirrored to the kernel (files/locks.py): an SMB lock is an open-file-description fcntl lock
on the server's fd, as Samba's "posix locking" does, so a local process and an SMB client see each other's
locks (smbtorture smb2.samba3misc.localposixlock1). The local side here is this test process's own fcntl
locks on the share's file."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time

import pytest

from tests import builders as b
from tests.conftest import SmbServer

EXCLUSIVE_NOW = b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
SHARED_NOW = b.SMB2_LOCKFLAG_SHARED_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
_FLOCK = struct.Struct("@hhqqi4x")


def _lock(client: b.Client, file_id: tuple[int, int], offset: int, length: int, flags: int) -> int:
    return client.request(b.SMB2_LOCK, b.lock_body(file_id, [(offset, length, flags)])).status


def _local(fd: int, kind: int, offset: int, length: int) -> bool:
    """A classic POSIX lock of this process; False when another holder's lock is in the way."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETLK, _FLOCK.pack(kind, os.SEEK_SET, offset, length, 0))
    except OSError as exc:
        assert exc.errno in (errno.EAGAIN, errno.EACCES)
        return False
    return True


def _holder(fd: int, kind: int, offset: int, length: int) -> tuple[int, int]:
    """F_GETLK: (type, pid) of the lock that would refuse this one; an OFD lock reports pid -1."""
    answer = fcntl.fcntl(fd, fcntl.F_GETLK, _FLOCK.pack(kind, os.SEEK_SET, offset, length, 0))
    kind_found, _, _, _, pid = _FLOCK.unpack(answer)
    return kind_found, pid


@pytest.fixture
def shared_file(smb_server: SmbServer):  # type: ignore[no-untyped-def]
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        file_id = client.open("locked.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                               disposition=b.FILE_OVERWRITE_IF)
        assert client.write(file_id, 0, bytes(100)).status == b.STATUS_SUCCESS
        fd = os.open(smb_server.share_path / "locked.bin", os.O_RDWR)
        try:
            yield client, file_id, fd
        finally:
            os.close(fd)
            client.close_file(file_id)


def test_a_local_lock_refuses_the_smb_lock(shared_file) -> None:  # type: ignore[no-untyped-def]
    client, file_id, fd = shared_file
    assert _local(fd, fcntl.F_WRLCK, 0, 1)
    assert _lock(client, file_id, 0, 1, EXCLUSIVE_NOW) == b.STATUS_LOCK_NOT_GRANTED
    assert _lock(client, file_id, 0, 10, SHARED_NOW) == b.STATUS_LOCK_NOT_GRANTED
    assert _lock(client, file_id, 1, 10, EXCLUSIVE_NOW) == b.STATUS_SUCCESS  # next to it: free
    # A blocking request waits (STATUS_PENDING) and is granted soon after the local unlock.
    (message_id,) = client.send(b.Req(b.SMB2_LOCK, b.lock_body(file_id, [(0, 1, b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK)])))
    assert client.receive(message_id, skip_pending=False).status == b.STATUS_PENDING
    time.sleep(0.3)
    assert _local(fd, fcntl.F_UNLCK, 0, 1)
    started = time.monotonic()
    assert client.receive(message_id).status == b.STATUS_SUCCESS
    assert time.monotonic() - started < 3.0


def test_smb_locks_are_seen_locally(shared_file) -> None:  # type: ignore[no-untyped-def]
    client, file_id, fd = shared_file
    assert _lock(client, file_id, 10, 10, EXCLUSIVE_NOW) == b.STATUS_SUCCESS
    assert _holder(fd, fcntl.F_RDLCK, 15, 1) == (fcntl.F_WRLCK, -1)
    assert not _local(fd, fcntl.F_RDLCK, 15, 1)
    assert _local(fd, fcntl.F_WRLCK, 20, 5)  # the range ends at 20
    assert _local(fd, fcntl.F_UNLCK, 20, 5)
    assert _lock(client, file_id, 30, 10, SHARED_NOW) == b.STATUS_SUCCESS
    assert _local(fd, fcntl.F_RDLCK, 30, 10) and _local(fd, fcntl.F_UNLCK, 30, 10)  # readers share it
    assert not _local(fd, fcntl.F_WRLCK, 35, 1)
    # A shared lock stacked on the handle's own exclusive one leaves the range write-locked; unlocking the
    # shared one keeps the exclusive one's mirror.
    assert _lock(client, file_id, 12, 2, SHARED_NOW) == b.STATUS_SUCCESS
    assert _holder(fd, fcntl.F_RDLCK, 12, 2) == (fcntl.F_WRLCK, -1)
    assert _lock(client, file_id, 12, 2, b.SMB2_LOCKFLAG_UNLOCK) == b.STATUS_SUCCESS
    assert _holder(fd, fcntl.F_RDLCK, 12, 2) == (fcntl.F_WRLCK, -1)
    assert _lock(client, file_id, 10, 10, b.SMB2_LOCKFLAG_UNLOCK) == b.STATUS_SUCCESS
    assert _holder(fd, fcntl.F_WRLCK, 10, 10)[0] == fcntl.F_UNLCK
    assert _local(fd, fcntl.F_WRLCK, 10, 10) and _local(fd, fcntl.F_UNLCK, 10, 10)
    # Closing the handle drops what it still held (the shared lock at 30).
    assert client.close_file(file_id) == b.STATUS_SUCCESS
    assert _local(fd, fcntl.F_WRLCK, 0, 0)


@pytest.mark.parametrize(("offset", "length"), [(0, 0xFFFFFFFFFFFFFFFF), (0, 1 << 63), (1 << 62, (1 << 64) - (1 << 62) - 1),
                                                ((1 << 63) - 1, 1)])
def test_a_range_reaching_the_largest_offset_is_mirrored_to_the_end(  # type: ignore[no-untyped-def]
        shared_file, offset: int, length: int) -> None:
    """Offset 0 and length 2^64-1 is how clients lock a whole file (cifs.ko, smbtorture): the mirror is the
    kernel's lock to the end (l_len 0), not a length one past the largest off_t (which was INTERNAL_ERROR)."""
    client, file_id, fd = shared_file
    assert _lock(client, file_id, offset, length, EXCLUSIVE_NOW) == b.STATUS_SUCCESS
    assert _holder(fd, fcntl.F_RDLCK, (1 << 63) - 1, 1) == (fcntl.F_WRLCK, -1)
    if offset:
        assert _local(fd, fcntl.F_WRLCK, 0, offset) and _local(fd, fcntl.F_UNLCK, 0, offset)
    assert _lock(client, file_id, offset, length, b.SMB2_LOCKFLAG_UNLOCK) == b.STATUS_SUCCESS
    assert _local(fd, fcntl.F_WRLCK, 0, 0) and _local(fd, fcntl.F_UNLCK, 0, 0)
