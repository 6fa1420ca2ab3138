"""Block cloning against the daemon: FSCTL_DUPLICATE_EXTENTS_TO_FILE(_EX) ([MS-FSCC] 2.3.7-2.3.10) and the
FILE_SUPPORTS_BLOCK_REFCOUNTING attribute ([MS-FSCC] 2.5.1), on a share backed by a loop-mounted XFS image made
with reflink (the clone must share extents: FIEMAP says so) next to a share on the test's own file system
(ext4 here), which cannot clone. Needs root, mkfs.xfs (xfsprogs) and loop devices; skipped otherwise.

The checks and their statuses are Samba 4.17's fsctl_dup_extents_send; smbtorture smb2.ioctl.dup_extents_*
passes against smbsrv on the XFS share (Samba 4.17 skips them: it advertises block refcounting only with
vfs_btrfs).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import SmbServer, assert_no_server_bugs, start_server, stop_server
from tests.loop_mount import loop_mounted

FSCTL_DUPLICATE_EXTENTS_TO_FILE = 0x00098344
FSCTL_DUPLICATE_EXTENTS_TO_FILE_EX = 0x000983E8
FSCTL_SET_SPARSE = 0x000900C4
FILE_FS_ATTRIBUTE_INFORMATION = 5
FILE_SUPPORTS_BLOCK_REFCOUNTING = 0x08000000
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_INVALID_HANDLE = 0xC0000008
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_SHARED = 0x2000
MIB = 1024 * 1024
ALL = b.GENERIC_READ | b.GENERIC_WRITE

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mkfs.xfs") is None,
                                reason="needs root and mkfs.xfs to make an XFS share")


@pytest.fixture(scope="module")
def shares(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmbServer]:
    """One server: "share" on a fresh 320 MiB XFS image (reflink), "plain" on the test's file system."""
    base = tmp_path_factory.mktemp("clone")
    plain = base / "plain"
    plain.mkdir()
    with loop_mounted(base / "xfs.img", base / "xfs", 320 * MIB, ("mkfs.xfs", "-q", "-m", "reflink=1")) as mount:
        share = mount / "share"
        share.mkdir()
        server = start_server(share, base / "server.log", extra_shares={"plain": plain})
        try:
            yield server
        finally:
            stop_server(server.process)
        assert_no_server_bugs(server)


def fs_attributes(client: b.Client) -> int:
    root = client.open("", desired_access=b.FILE_READ_ATTRIBUTES, options=b.FILE_DIRECTORY_FILE)
    response = client.query_info(root, b.SMB2_0_INFO_FILESYSTEM, FILE_FS_ATTRIBUTE_INFORMATION)
    assert response.status == b.STATUS_SUCCESS
    assert client.close_file(root) == b.STATUS_SUCCESS
    return struct.unpack_from("<I", b.output_buffer(response))[0]


def duplicate(client: b.Client, target: tuple[int, int], source: tuple[int, int], source_offset: int,
              target_offset: int, count: int, *, ex: bool = False, structure_size: int = 0x30) -> int:
    if ex:
        data = struct.pack("<QQQqqqII", structure_size, *source, source_offset, target_offset, count, 0, 0)
        code = FSCTL_DUPLICATE_EXTENTS_TO_FILE_EX
    else:
        data = struct.pack("<QQqqq", *source, source_offset, target_offset, count)
        code = FSCTL_DUPLICATE_EXTENTS_TO_FILE
    return client.request(b.SMB2_IOCTL, b.ioctl_body(target, code, data, max_output=0)).status


def shared_extents(path: Path) -> bool:
    """Whether the file's first extent is shared with another file (FIEMAP, synced first)."""
    request = struct.pack("=QQIIII", 0, 2**64 - 1, FIEMAP_FLAG_SYNC, 0, 1, 0) + bytes(56)
    with open(path, "rb") as handle:
        answer = fcntl.ioctl(handle.fileno(), FS_IOC_FIEMAP, request)
    mapped = struct.unpack_from("=I", answer, 20)[0]
    flags = struct.unpack_from("=I", answer, 32 + 40)[0]
    return mapped == 1 and bool(flags & FIEMAP_EXTENT_SHARED)


def make_file(server: SmbServer, name: str, data: bytes) -> None:
    path = server.share_path / name
    path.write_bytes(data)
    path.chmod(0o744)
    server.hand_over()


def test_block_refcounting_only_where_clones_work(shares: SmbServer) -> None:
    with b.connect(shares.host, shares.port, shares.user, shares.password) as client:
        assert fs_attributes(client) & FILE_SUPPORTS_BLOCK_REFCOUNTING
    with b.connect(shares.host, shares.port, shares.user, shares.password, share="plain") as client:
        assert not fs_attributes(client) & FILE_SUPPORTS_BLOCK_REFCOUNTING
        (shares.extra_shares["plain"] / "src.bin").write_bytes(bytes(65536))
        shares.hand_over()
        source = client.open("src.bin", desired_access=ALL)
        target = client.open("dst.bin", desired_access=ALL, disposition=b.FILE_OVERWRITE_IF)
        # Samba's answer where the share does not advertise block refcounting (Windows on NTFS alike).
        assert duplicate(client, target, source, 0, 0, 65536) == b.STATUS_INVALID_DEVICE_REQUEST


@pytest.mark.parametrize("ex", [False, True], ids=["plain", "ex"])
def test_clone_shares_extents(shares: SmbServer, ex: bool) -> None:
    """The target is extended first (as cifs.ko does); the clone then shares the blocks of the source."""
    data = bytes(range(256)) * (4 * MIB // 256)
    make_file(shares, "src.bin", data)
    with b.connect(shares.host, shares.port, shares.user, shares.password) as client:
        source = client.open("src.bin", desired_access=b.GENERIC_READ)
        target = client.open("dst.bin", desired_access=ALL, disposition=b.FILE_OVERWRITE_IF)
        response = client.set_info(target, b.SMB2_0_INFO_FILE, 20, struct.pack("<q", 4 * MIB))  # EndOfFile
        assert response.status == b.STATUS_SUCCESS
        assert duplicate(client, target, source, 0, 0, 4 * MIB, ex=ex) == b.STATUS_SUCCESS
        for handle in (source, target):
            assert client.close_file(handle) == b.STATUS_SUCCESS
    assert (shares.share_path / "dst.bin").read_bytes() == data
    assert shared_extents(shares.share_path / "dst.bin")


def test_clone_checks(shares: SmbServer) -> None:
    """Samba 4.17's rules: ByteCount 0 does nothing; a range past the source's end is NOT_SUPPORTED; one past
    the target's end is cut there (the target never grows); overlapping ranges of one file and a sparse source
    into a non-sparse target are NOT_SUPPORTED; an unknown source handle is INVALID_HANDLE; an _EX
    StructureSize other than 0x30 and a short buffer are INVALID_PARAMETER; a target without write access is
    ACCESS_DENIED."""
    make_file(shares, "src.bin", b"s" * 65536)
    make_file(shares, "dst.bin", b"d" * 8192)
    with b.connect(shares.host, shares.port, shares.user, shares.password) as client:
        source = client.open("src.bin", desired_access=ALL)
        target = client.open("dst.bin", desired_access=ALL)
        assert duplicate(client, target, source, 0, 0, 0) == b.STATUS_SUCCESS
        assert duplicate(client, target, source, 4096, 0, 65536) == STATUS_NOT_SUPPORTED
        assert duplicate(client, target, source, 0, 4096, 65536) == b.STATUS_SUCCESS
        assert (shares.share_path / "dst.bin").read_bytes() == b"d" * 4096 + b"s" * 4096
        assert duplicate(client, source, source, 0, 4096, 8192) == STATUS_NOT_SUPPORTED
        assert duplicate(client, source, source, 0, 16384, 8192) == b.STATUS_SUCCESS
        assert duplicate(client, target, (123, 456), 0, 0, 4096) == STATUS_INVALID_HANDLE
        assert duplicate(client, target, source, 0, 0, 4096, ex=True, structure_size=56) == (
            b.STATUS_INVALID_PARAMETER)
        response = client.request(b.SMB2_IOCTL, b.ioctl_body(target, FSCTL_DUPLICATE_EXTENTS_TO_FILE, bytes(32),
                                                             max_output=0))
        assert response.status == b.STATUS_INVALID_PARAMETER
        sparse = client.request(b.SMB2_IOCTL, b.ioctl_body(source, FSCTL_SET_SPARSE, b"", max_output=0))
        assert sparse.status == b.STATUS_SUCCESS
        assert duplicate(client, target, source, 0, 0, 4096) == STATUS_NOT_SUPPORTED
        reader = client.open("dst.bin", desired_access=b.GENERIC_READ)
        other = client.open("src2.bin", desired_access=ALL, disposition=b.FILE_OVERWRITE_IF)
        assert duplicate(client, reader, other, 0, 0, 0) == b.STATUS_SUCCESS  # nothing to clone, no check
        assert client.write(other, 0, b"o" * 4096).status == b.STATUS_SUCCESS
        assert duplicate(client, reader, other, 0, 0, 4096) == b.STATUS_ACCESS_DENIED
