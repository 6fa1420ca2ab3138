"""FSCTL_CREATE_OR_GET_OBJECT_ID and FSCTL_GET_OBJECT_ID ([MS-FSCC] 2.3.7/2.3.25, reply 2.1.3
FILE_OBJECTID_BUFFER) against the daemon through raw IOCTLs: the id is the file's (inode, device) as Samba 4.17
derives it, so every handle, a renamed file and a later connection see the same 64 bytes."""

from __future__ import annotations

import os
import struct

from tests import builders as b
from tests.conftest import SmbServer

FSCTL_GET_OBJECT_ID = 0x0009009C
FSCTL_CREATE_OR_GET_OBJECT_ID = 0x000900C0


def _object_id(client: b.Client, file_id: tuple[int, int], code: int, max_output: int = 64) -> b.Response:
    return client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, code, b"", max_output=max_output))


def _output(response: b.Response) -> bytes:
    offset, count = struct.unpack_from("<II", response.body, 32)  # OutputOffset, OutputCount ([MS-SMB2] 2.2.32)
    return response.body[offset - b.HEADER_SIZE:offset - b.HEADER_SIZE + count]


def test_object_id_is_stable_per_file(smb_server: SmbServer) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        first = client.open("one.txt", desired_access=b.GENERIC_WRITE | b.DELETE, disposition=b.FILE_CREATE)
        response = _object_id(client, first, FSCTL_CREATE_OR_GET_OBJECT_ID)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        buffer = _output(response)
        assert len(buffer) == 64
        object_id, birth_volume, birth_object, domain = buffer[:16], buffer[16:32], buffer[32:48], buffer[48:]
        assert birth_object == object_id and domain == bytes(16) and birth_volume != bytes(16)
        st = os.stat(smb_server.share_path / "one.txt")
        assert object_id == struct.pack("<QQ", st.st_ino, st.st_dev)
        # A handle with no data access (READ_ATTRIBUTES only) and GET_OBJECT_ID give the same bytes.
        other = client.open("one.txt", desired_access=b.FILE_READ_ATTRIBUTES)
        for code in (FSCTL_GET_OBJECT_ID, FSCTL_CREATE_OR_GET_OBJECT_ID):
            again = _object_id(client, other, code)
            assert again.status == b.STATUS_SUCCESS and _output(again) == buffer, hex(code)
        # [MS-FSA] 2.1.5.10.1/2.1.5.10.13: less room than a FILE_OBJECTID_BUFFER is INVALID_PARAMETER.
        assert _object_id(client, other, FSCTL_GET_OBJECT_ID, 63).status == b.STATUS_INVALID_PARAMETER
        assert _object_id(client, other, FSCTL_CREATE_OR_GET_OBJECT_ID, 0).status == b.STATUS_INVALID_PARAMETER
        assert client.close_file(other) == b.STATUS_SUCCESS
        renamed = client.set_info(first, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION, b.rename_info("two.txt"))
        assert renamed.status == b.STATUS_SUCCESS
        assert client.close_file(first) == b.STATUS_SUCCESS
        directory = client.open("dir", desired_access=b.FILE_READ_ATTRIBUTES, disposition=b.FILE_CREATE,
                                options=b.FILE_DIRECTORY_FILE)
        dir_id = _output(_object_id(client, directory, FSCTL_CREATE_OR_GET_OBJECT_ID))
        assert len(dir_id) == 64 and dir_id[:16] != object_id and dir_id[16:32] == birth_volume
        # The volume's own object id (FileFsObjectIdInformation, [MS-FSCC] 2.5.6) is that BirthVolumeId.
        volume = client.query_info(directory, b.SMB2_0_INFO_FILESYSTEM, 8)
        assert volume.status == b.STATUS_SUCCESS, b.status_name(volume.status)
        assert b.output_buffer(volume)[:16] == birth_volume
        assert client.close_file(directory) == b.STATUS_SUCCESS
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        moved = client.open("two.txt", desired_access=b.FILE_READ_ATTRIBUTES)
        assert _output(_object_id(client, moved, FSCTL_GET_OBJECT_ID)) == buffer
        assert client.close_file(moved) == b.STATUS_SUCCESS
