"""Share option materialize_special_files: client-set symlinks, FIFOs and sockets become real objects.

Made the way cifs.ko makes them (CREATE FILE_CREATE with FILE_OPEN_REPARSE_POINT, SET_REPARSE_POINT, then a
QUERY_INFO on the same handle, in one related compound), and checked on the server with lstat. Device nodes
stay blobs unless materialize_device_nodes is set too, and the server still never follows a link: a path
through a client-made link is answered with STATUS_STOPPED_ON_SYMLINK.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer, assert_no_server_bugs, start_server, stop_server
from tests.integration import reparse_helpers as r

FSCTL_SET_REPARSE_POINT = 0x000900A4
FILE_ATTRIBUTE_TAG_INFORMATION = 35
STATUS_IO_REPARSE_TAG_NOT_HANDLED = 0xC0000279
ACCESS = b.FILE_READ_ATTRIBUTES | b.FILE_WRITE_ATTRIBUTES | b.SYNCHRONIZE | b.DELETE


def _start(tmp_path: Path, devices: bool) -> SmbServer:
    share = tmp_path / "share"
    share.mkdir()
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[server]\nstate_dir = "{tmp_path / "state"}"\n[shares.share]\npath = "{share}"\n'
                      f'materialize_special_files = true\n'
                      f'materialize_device_nodes = {"true" if devices else "false"}\n')
    # mknod of a device needs CAP_MKNOD, which a thread acting as an ordinary account does not have: only the
    # device case maps the user to root.
    return start_server(share, tmp_path / "server.log", config=config, as_root=devices)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmbServer]:
    smb = _start(tmp_path, devices=False)
    try:
        yield smb
    finally:
        stop_server(smb.process)
    assert_no_server_bugs(smb)


def _make(client: b.Client, name: str, buffer: bytes, directory: bool = False) -> list[b.Response]:
    """cifs.ko's mknod/symlink compound: CREATE + SET_REPARSE_POINT + QUERY_INFO(attribute tag) + CLOSE."""
    options = (b.FILE_DIRECTORY_FILE if directory else b.FILE_NON_DIRECTORY_FILE) | b.FILE_OPEN_REPARSE_POINT
    related = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
    return client.compound(
        b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=ACCESS, disposition=b.FILE_CREATE,
                                           options=options)),
        b.Req(b.SMB2_IOCTL, b.ioctl_body(related, FSCTL_SET_REPARSE_POINT, buffer, max_output=0), related=True),
        b.Req(b.SMB2_QUERY_INFO, b.query_info_body(related, b.SMB2_0_INFO_FILE, FILE_ATTRIBUTE_TAG_INFORMATION),
              related=True),
        b.Req(b.SMB2_CLOSE, b.close_body(related), related=True))


def _tag_info(response: b.Response) -> tuple[int, int]:
    data = b.output_buffer(response)
    return struct.unpack_from("<II", data, 0)


def test_client_symlink_becomes_a_real_symlink_never_followed(server: SmbServer) -> None:
    (server.share_path / "target.txt").write_bytes(b"data")
    client = b.connect(server.host, server.port, USER, PASSWORD)
    try:
        responses = _make(client, "link", r.symlink_buffer("target.txt"))
        assert [resp.status for resp in responses] == [b.STATUS_SUCCESS] * 4
        attributes, tag = _tag_info(responses[2])
        assert attributes & 0x400 and tag == r.IO_REPARSE_TAG_SYMLINK
        assert os.readlink(server.share_path / "link") == "target.txt"
        # A symlink to a directory, made as cifs.ko does it (an empty directory carrying the tag).
        (server.share_path / "realdir").mkdir()
        (server.share_path / "realdir" / "inner.txt").write_bytes(b"inner")
        responses = _make(client, "dirlink", r.symlink_buffer("realdir"), directory=True)
        assert [resp.status for resp in responses] == [b.STATUS_SUCCESS] * 4
        assert os.readlink(server.share_path / "dirlink") == "realdir"
        # The server never walks through it: the client is told where the link leads.
        response = client.create("dirlink\\inner.txt", desired_access=b.GENERIC_READ)
        assert response.status == b.STATUS_STOPPED_ON_SYMLINK
        # An absolute link out of the share is made, and still never followed.
        responses = _make(client, "out", r.symlink_buffer("/etc/passwd", flags=0))
        assert responses[1].status == b.STATUS_SUCCESS
        assert os.readlink(server.share_path / "out") == "/etc/passwd"
        assert client.create("out", desired_access=b.GENERIC_READ).status == b.STATUS_STOPPED_ON_SYMLINK
    finally:
        client.close()


def test_fifo_and_socket_become_real_but_devices_stay_blobs(server: SmbServer) -> None:
    client = b.connect(server.host, server.port, USER, PASSWORD)
    try:
        for name, buffer, kind in (("fifo", r.nfs_buffer(r.NFS_SPECFILE_FIFO), stat.S_IFIFO),
                                   ("sock", r.nfs_buffer(r.NFS_SPECFILE_SOCK), stat.S_IFSOCK)):
            responses = _make(client, name, buffer)
            assert [resp.status for resp in responses] == [b.STATUS_SUCCESS] * 4, name
            assert stat.S_IFMT(os.lstat(server.share_path / name).st_mode) == kind
            assert _tag_info(responses[2])[1] == r.IO_REPARSE_TAG_NFS
        responses = _make(client, "chr", r.nfs_device_buffer(r.NFS_SPECFILE_CHR, 1, 3))
        assert responses[1].status == b.STATUS_SUCCESS
        assert stat.S_ISREG(os.lstat(server.share_path / "chr").st_mode)  # kept as reparse data
        assert _tag_info(responses[2])[1] == r.IO_REPARSE_TAG_NFS
    finally:
        client.close()


def test_devices_when_explicitly_allowed(tmp_path: Path) -> None:
    server = _start(tmp_path, devices=True)
    try:
        client = b.connect(server.host, server.port, USER, PASSWORD)
        try:
            responses = _make(client, "null", r.nfs_device_buffer(r.NFS_SPECFILE_CHR, 1, 3))
            assert [resp.status for resp in responses] == [b.STATUS_SUCCESS] * 4
            st = os.lstat(server.share_path / "null")
            assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
            # Opening it for data is refused: the server never opens a device node for a client.
            assert client.create("null", desired_access=b.GENERIC_READ).status == (
                STATUS_IO_REPARSE_TAG_NOT_HANDLED)
        finally:
            client.close()
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)
