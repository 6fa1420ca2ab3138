"""AllocationSize against the daemon: what a file reports, what FileAllocationInformation ([MS-FSCC] 2.4.4,
[MS-FSA] 2.1.5.15.1) and the "AlSi" create context ([MS-SMB2] 2.2.13.2.6) reserve, and the create contexts
checked next to it (a TWrp token, names shorter than 4 bytes). Raw requests (tests/builders.py), values pinned.

AllocationSize counts data blocks only, as NTFS counts a stream's clusters: ext4's block of extended attributes
(where our DOS attributes and a client's EAs go when the inode has no room) is no part of it. Growing the
allocation reserves blocks beyond the end of file, as Windows does; Samba 4.17 without "strict allocate" only
checks the free space and keeps reporting what the data uses (source3/smbd/vfs.c vfs_allocate_file_space).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer, start_server, stop_server
from tests.loop_mount import loop_mounted

FILE_FULL_EA_INFORMATION = 15
FILE_ALLOCATION_INFORMATION = 19
STATUS_DISK_FULL = 0xC000007F
KIB = 1024
MIB = 1024 * KIB


def _standard(client: b.Client, file_id: tuple[int, int]) -> tuple[int, int]:
    """(AllocationSize, EndOfFile) of FileStandardInformation ([MS-FSCC] 2.4.47)."""
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_STANDARD_INFORMATION)
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
    return struct.unpack_from("<qq", b.output_buffer(response))


def _set_allocation(client: b.Client, file_id: tuple[int, int], allocation: int) -> int:
    return client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_ALLOCATION_INFORMATION,
                           struct.pack("<q", allocation)).status


def _ea(name: bytes, value: bytes) -> bytes:
    """One FILE_FULL_EA_INFORMATION entry ([MS-FSCC] 2.4.15), built by hand."""
    return struct.pack("<IBBH", 0, 0, len(name), len(value)) + name + b"\x00" + value


def _created_allocation(response: b.Response) -> tuple[int, int]:
    """(AllocationSize, EndofFile) of a CREATE response ([MS-SMB2] 2.2.14: at 40 and 48 of the body)."""
    return struct.unpack_from("<qq", response.body, 40)


def test_empty_file_with_eas_reports_no_allocation(smb_server: SmbServer) -> None:
    """An empty file whose EAs fill a block of their own (ext4: st_blocks 8) reports AllocationSize 0, and
    exactly the reserved 4096 after FileAllocationInformation 4096 (smbtorture smb2.setinfo's steps)."""
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        file_id = client.open("eas.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                              disposition=b.FILE_OVERWRITE_IF)
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION,
                                   _ea(b"BIGEA", b"v" * 1500))
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert _standard(client, file_id) == (0, 0)
        assert _set_allocation(client, file_id, 0) == b.STATUS_SUCCESS
        assert _standard(client, file_id) == (0, 0)
        assert _set_allocation(client, file_id, 4096) == b.STATUS_SUCCESS
        assert _standard(client, file_id) == (4096, 0)
        assert _set_allocation(client, file_id, 0) == b.STATUS_SUCCESS
        assert _standard(client, file_id) == (0, 0)
        assert client.close_file(file_id) == b.STATUS_SUCCESS
    on_disk = smb_server.share_path / "eas.bin"
    assert on_disk.stat().st_size == 0


def test_allocation_grows_and_shrinks_beyond_the_end_of_file(smb_server: SmbServer) -> None:
    """Above the end of file the allocation is reserved (block-aligned) and the end of file stays; a smaller one
    above the end of file gives the surplus back; one below it cuts the file ([MS-FSA] 2.1.5.15.1)."""
    data = bytes(range(256)) * 20  # 5,120 bytes
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        file_id = client.open("grow.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                              disposition=b.FILE_OVERWRITE_IF)
        assert client.write(file_id, 0, data).status == b.STATUS_SUCCESS
        assert _standard(client, file_id) == (8192, len(data))
        for allocation, expected in ((MIB, (MIB, len(data))), (20000, (20480, len(data))),
                                     (len(data), (8192, len(data))), (3000, (4096, 3000))):
            assert _set_allocation(client, file_id, allocation) == b.STATUS_SUCCESS, allocation
            assert _standard(client, file_id) == expected, allocation
        read = client.read(file_id, 0, 8192)
        assert read.status == b.STATUS_SUCCESS and b.read_data(read) == data[:3000]
        assert client.close_file(file_id) == b.STATUS_SUCCESS
    assert (smb_server.share_path / "grow.bin").stat().st_blocks * 512 == 4096


def test_allocation_context_reserves_on_create_and_overwrite(smb_server: SmbServer) -> None:
    """"AlSi" on a create or an overwrite: the reply and the file show the reserved 1 MiB (smbtorture
    smb2.create.blob); on a plain open of an existing file it changes nothing; on a directory it is ignored
    (AllocationSize 0, smb2.create.dir-alloc-size)."""
    alsi = b.create_context(b"AlSi", struct.pack("<Q", MIB))
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        for disposition in (b.FILE_CREATE, b.FILE_OVERWRITE_IF):
            response = client.create("alsi.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                     disposition=disposition, contexts=alsi)
            assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
            assert _created_allocation(response) == (MIB, 0)
            file_id = b.create_file_id(response.body)
            assert _standard(client, file_id) == (MIB, 0)
            assert _set_allocation(client, file_id, 0) == b.STATUS_SUCCESS
            assert client.close_file(file_id) == b.STATUS_SUCCESS
        response = client.create("alsi.bin", desired_access=b.GENERIC_READ, disposition=b.FILE_OPEN,
                                 contexts=alsi)
        assert response.status == b.STATUS_SUCCESS and _created_allocation(response) == (0, 0)
        assert client.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
        response = client.create("alsi.dir", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                                 options=b.FILE_DIRECTORY_FILE, contexts=alsi)
        assert response.status == b.STATUS_SUCCESS and _created_allocation(response) == (0, 0)
        assert client.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
    assert (smb_server.share_path / "alsi.bin").stat().st_blocks == 0


def test_create_context_checks(smb_server: SmbServer) -> None:
    """AlSi data that is not 8 bytes, and a TWrp that is not 8 bytes: INVALID_PARAMETER (Samba). A TWrp naming
    any time: OBJECT_NAME_NOT_FOUND, as no previous version exists here. A context name of 1-3 bytes:
    INVALID_PARAMETER, 4 and more (unknown ones) are ignored (Windows and Samba; smb2.create.blob)."""
    cases = [
        (b.create_context(b"AlSi", b"\x00" * 4), b.STATUS_INVALID_PARAMETER),
        (b.create_context(b"AlSi", struct.pack("<Q", 1 << 63)), b.STATUS_INVALID_PARAMETER),
        (b.create_context(b"TWrp", struct.pack("<Q", 10000)), b.STATUS_OBJECT_NAME_NOT_FOUND),
        (b.create_context(b"TWrp", b"\x00" * 7), b.STATUS_INVALID_PARAMETER),
        (b.create_context(b"x", b""), b.STATUS_INVALID_PARAMETER),
        (b.create_context(b"xxx", b""), b.STATUS_INVALID_PARAMETER),
        (b.create_context(b"xxxx", b""), b.STATUS_SUCCESS),
        (b.create_context(b"xxxxxxxxxxxxxxxxx", b""), b.STATUS_SUCCESS),
    ]
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        for context, expected in cases:
            response = client.create("ctx.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                     disposition=b.FILE_OVERWRITE_IF, contexts=context)
            assert response.status == expected, (context, b.status_name(response.status))
            if response.status == b.STATUS_SUCCESS:
                assert client.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS


def test_an_allocation_past_the_free_space_is_disk_full_and_takes_nothing(tmp_path: Path) -> None:
    """A FileAllocationInformation of 1 TiB on a share whose 32 MiB file system cannot hold it: STATUS_DISK_FULL,
    and the file system's free space is what it was (before df0d8ba/80bfd58, ext4 kept every block the failed
    fallocate had reserved, for every user of the file system). The free-space check before fallocate is Samba
    4.17's (source3/smbd/vfs.c vfs_allocate_file_space, read, not run against here)."""
    if os.geteuid() != 0:
        pytest.skip("a loop mount needs root")
    with loop_mounted(tmp_path / "fs.img", tmp_path / "mnt", 32 * MIB, ("mkfs.ext4", "-q", "-F")) as mount:
        share = mount / "share"
        share.mkdir()
        server = start_server(share, tmp_path / "server.log")
        try:
            with b.connect(server.host, server.port, USER, PASSWORD) as client:
                file_id = client.open("big", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                      disposition=b.FILE_CREATE)
                statvfs = os.statvfs(mount)
                free = statvfs.f_bavail * statvfs.f_frsize
                assert _set_allocation(client, file_id, 1 << 40) == STATUS_DISK_FULL
                statvfs = os.statvfs(mount)
                assert statvfs.f_bavail * statvfs.f_frsize == free
                assert _standard(client, file_id) == (0, 0)
                assert client.close_file(file_id) == b.STATUS_SUCCESS
        finally:
            stop_server(server.process)
