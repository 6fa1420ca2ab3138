"""What the MxAc and QFid create contexts answer ([MS-SMB2] 2.2.13.2.5/2.2.14.2.5 maximal access,
2.2.13.2.9/2.2.14.2.9 on-disk id), checked field by field against the daemon.

The expected MaximalAccess values are what Samba 4.17 answers in the same setup (a private smbd serving an
ordinary account, files of the same owner and mode): an owner gets WRITE_DAC for its files, and WRITE_OWNER and
DELETE as well for its directories; a file of another owner that the account can only read gives the read rights
plus DELETE (the parent directory is the account's).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import SmbServer

FILE_ALL_ACCESS = 0x001F01FF
# Samba 4.17 for an owner's 0644/0600 file: the generic read/write rights, DELETE, READ_CONTROL, WRITE_DAC,
# SYNCHRONIZE; no FILE_EXECUTE, FILE_DELETE_CHILD or WRITE_OWNER.
OWNER_FILE_ACCESS = 0x0017019F
# Another owner's 0644 file in the account's own directory: FILE_READ_DATA | FILE_READ_EA | FILE_READ_ATTRIBUTES
# | READ_CONTROL | SYNCHRONIZE, and DELETE through the parent.
FOREIGN_READABLE_ACCESS = 0x00130089


def _contexts(*names: bytes) -> bytes:
    """Several request contexts chained with Next ([MS-SMB2] 2.2.13.2), each 8-byte aligned."""
    blob = bytearray()
    for index, name in enumerate(names):
        start = len(blob)
        blob += b.create_context(name, b"")
        if index != len(names) - 1:
            blob += bytes(-len(blob) % 8)
            struct.pack_into("<I", blob, start, len(blob) - start)
    return bytes(blob)


def _response_contexts(body: bytes) -> dict[bytes, bytes]:
    """CreateContextsOffset(4)@80, CreateContextsLength(4)@84 of the CREATE response ([MS-SMB2] 2.2.14)."""
    offset, length = struct.unpack_from("<II", body, 80)
    blob = body[offset - b.HEADER_SIZE:offset - b.HEADER_SIZE + length]
    found: dict[bytes, bytes] = {}
    position = 0
    while True:
        next_, name_offset, name_length, _, data_offset, data_length = struct.unpack_from("<IHHHHI", blob, position)
        name = blob[position + name_offset:position + name_offset + name_length]
        found[name] = blob[position + data_offset:position + data_offset + data_length]
        if not next_:
            return found
        position += next_


def _open_with(client: b.Client, name: str, directory: bool = False, **kwargs: object) -> dict[bytes, bytes]:
    response = client.create(name, contexts=_contexts(b"MxAc", b"QFid"),
                             options=b.FILE_DIRECTORY_FILE if directory else 0, **kwargs)
    assert response.status == b.STATUS_SUCCESS, f"{name!r}: {b.status_name(response.status)}"
    assert client.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
    return _response_contexts(response.body)


def _maximal_access(contexts: dict[bytes, bytes]) -> int:
    query_status, access = struct.unpack("<II", contexts[b"MxAc"])
    assert query_status == b.STATUS_SUCCESS
    return access  # type: ignore[no-any-return]


def test_qfid_is_inode_and_device(smb_server: SmbServer) -> None:
    """DiskFileId = st_ino, VolumeId = st_dev, Reserved zero (Samba 4.17 fills them the same way); the same
    file gives the same id on every open, another file another one."""
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        client.write_file("a.txt", b"a")
        client.write_file("b.txt", b"b")
        for name, directory in (("a.txt", False), ("b.txt", False), ("", True)):
            path = smb_server.share_path / name
            for _ in range(2):
                data = _open_with(client, name, directory, desired_access=b.FILE_READ_ATTRIBUTES)[b"QFid"]
                assert len(data) == 32
                stat = path.stat()
                assert struct.unpack_from("<QQ", data) == (stat.st_ino, stat.st_dev), name
                assert data[16:] == bytes(16)


def test_mxac_for_a_new_file_opened_by_its_creator(smb_server: SmbServer) -> None:
    """A file just created through SMB, answered in the same CREATE: every right (Samba 4.17 answers
    FILE_ALL_ACCESS too)."""
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        contexts = _open_with(client, "new.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                              disposition=b.FILE_CREATE)
        assert _maximal_access(contexts) == FILE_ALL_ACCESS


@pytest.mark.parametrize("mode", [0o644, 0o600])
def test_mxac_for_an_owned_file(smb_server: SmbServer, mode: int) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        client.write_file("mine.txt", b"mine")
        os.chmod(smb_server.share_path / "mine.txt", mode)
        contexts = _open_with(client, "mine.txt", desired_access=b.FILE_READ_ATTRIBUTES)
        assert _maximal_access(contexts) == OWNER_FILE_ACCESS


@pytest.mark.parametrize("name", ["", "subdir"], ids=["share-root", "subdirectory"])
def test_mxac_for_an_owned_directory(smb_server: SmbServer, name: str) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        if name:
            client.close_file(client.open(name, disposition=b.FILE_CREATE, options=b.FILE_DIRECTORY_FILE))
        os.chmod(smb_server.share_path / name, 0o755)
        contexts = _open_with(client, name, directory=True, desired_access=b.FILE_READ_ATTRIBUTES)
        assert _maximal_access(contexts) == FILE_ALL_ACCESS


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a file of another owner (the server runs unprivileged)")
def test_mxac_for_another_owners_readable_file(smb_server: SmbServer) -> None:
    foreign: Path = smb_server.share_path / "foreign.txt"
    foreign.write_bytes(b"root's")  # created by root after the server started: root-owned, 0644
    os.chown(foreign, 0, 0)
    os.chmod(foreign, 0o644)
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        contexts = _open_with(client, "foreign.txt", desired_access=b.FILE_READ_ATTRIBUTES)
        assert _maximal_access(contexts) == FOREIGN_READABLE_ACCESS
