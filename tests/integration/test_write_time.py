"""Delayed LastWriteTime updates (files/write_time.py, Samba 4.17's rules): a handle's first WRITE leaves the
time every open shows alone for 2 seconds, then it becomes the moment the update fell due; later writes wait
for the close; FLUSH updates at once; a time set with FileBasicInformation sticks. Raw requests, times compared
exactly (smbtorture smb2.timestamps.delayed-* check the same)."""

from __future__ import annotations

import os
import struct
import time

from tests import builders as b
from tests.conftest import SmbServer

FILE_DIRECTORY_INFORMATION = 0x01
SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB = 0x0001


def _created_write_time(response: b.Response) -> int:
    return struct.unpack_from("<Q", response.body, 24)[0]  # CREATE response LastWriteTime ([MS-SMB2] 2.2.14)


def _write_time(client: b.Client, file_id: tuple[int, int]) -> int:
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION)
    assert response.status == b.STATUS_SUCCESS
    return struct.unpack_from("<Q", b.output_buffer(response), 16)[0]  # [MS-FSCC] 2.4.7 LastWriteTime


def _listed_write_time(client: b.Client, directory: tuple[int, int], name: str) -> int:
    response = client.request(b.SMB2_QUERY_DIRECTORY, b.query_directory_body(
        directory, name, FILE_DIRECTORY_INFORMATION, flags=0x01))  # SMB2_RESTART_SCANS
    assert response.status == b.STATUS_SUCCESS
    return struct.unpack_from("<Q", b.output_buffer(response), 24)[0]  # [MS-FSCC] 2.4.10 LastWriteTime


def _close_write_time(client: b.Client, file_id: tuple[int, int]) -> int:
    response = client.request(b.SMB2_CLOSE, b.close_body(file_id, SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB))
    assert response.status == b.STATUS_SUCCESS
    return struct.unpack_from("<Q", response.body, 24)[0]  # [MS-SMB2] 2.2.16 LastWriteTime


def _disk_write_time(path: os.PathLike[str]) -> int:
    return os.stat(path).st_mtime_ns // 100 + 116444736000000000


def test_first_write_updates_two_seconds_later(smb_server: SmbServer) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        created = client.create("wt.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                disposition=b.FILE_CREATE)
        assert created.status == b.STATUS_SUCCESS
        writer, frozen = b.create_file_id(created.body), _created_write_time(created)
        root = client.open("", desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
        time.sleep(0.2)
        started = time.time()
        assert client.write(writer, 0, b"first").status == b.STATUS_SUCCESS
        other = client.open("wt.bin", desired_access=b.FILE_READ_ATTRIBUTES)
        # Not yet: every open and the listing show the time from before the write.
        assert _write_time(client, writer) == frozen
        assert _write_time(client, other) == frozen
        assert _listed_write_time(client, root, "wt.bin") == frozen
        time.sleep(max(0.0, started + 2.3 - time.time()))
        updated = _write_time(client, other)
        assert updated > frozen
        assert _listed_write_time(client, root, "wt.bin") == updated
        # A second write of the same handle changes nothing until the close.
        assert client.write(writer, 5, b"second").status == b.STATUS_SUCCESS
        assert _write_time(client, writer) == updated
        assert _close_write_time(client, other) == updated
        before_close = (time.time_ns() // 100) + 116444736000000000
        closed = _close_write_time(client, writer)
        assert closed >= before_close - 10 and closed > updated
        assert client.close_file(root) == b.STATUS_SUCCESS
    assert _disk_write_time(smb_server.share_path / "wt.bin") == closed


def test_flush_and_a_set_time_update_at_once(smb_server: SmbServer) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        created = client.create("flush.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                disposition=b.FILE_CREATE)
        writer, frozen = b.create_file_id(created.body), _created_write_time(created)
        time.sleep(0.2)
        assert client.write(writer, 0, b"data").status == b.STATUS_SUCCESS
        assert _write_time(client, writer) == frozen
        assert client.request(b.SMB2_FLUSH, b.flush_body(writer)).status == b.STATUS_SUCCESS
        flushed = _write_time(client, writer)
        assert flushed > frozen
        # Another handle sets a time: it shows at once for every open, and survives the writer's close.
        setter = client.open("flush.bin", desired_access=b.FILE_WRITE_ATTRIBUTES)
        chosen = 132000000000000000  # 2019-04-15
        basic = struct.pack("<QQQQI4x", 0, 0, chosen, 0, 0)
        assert client.set_info(setter, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION, basic).status \
            == b.STATUS_SUCCESS
        assert _write_time(client, writer) == chosen
        assert _close_write_time(client, setter) == chosen
        assert _close_write_time(client, writer) == chosen
    assert _disk_write_time(smb_server.share_path / "flush.bin") == chosen


def test_stopped_updates_keep_the_time(smb_server: SmbServer) -> None:
    """LastWriteTime -1 stops the handle's writes from moving the time ([MS-FSA] 2.1.5.15.2), also at its close;
    -2 lets them move it again."""
    stop = struct.pack("<qqqqI4x", 0, 0, -1, 0, 0)
    resume = struct.pack("<qqqqI4x", 0, 0, -2, 0, 0)
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        created = client.create("frozen.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                disposition=b.FILE_CREATE)
        writer, original = b.create_file_id(created.body), _created_write_time(created)
        assert client.set_info(writer, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION, stop).status \
            == b.STATUS_SUCCESS
        time.sleep(0.2)
        assert client.write(writer, 0, b"kept").status == b.STATUS_SUCCESS
        assert client.request(b.SMB2_FLUSH, b.flush_body(writer)).status == b.STATUS_SUCCESS
        assert _write_time(client, writer) == original
        assert _close_write_time(client, writer) == original
        assert _disk_write_time(smb_server.share_path / "frozen.bin") == original
        writer = client.open("frozen.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
        assert client.set_info(writer, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION, stop).status \
            == b.STATUS_SUCCESS
        assert client.set_info(writer, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION, resume).status \
            == b.STATUS_SUCCESS
        assert client.write(writer, 0, b"moves").status == b.STATUS_SUCCESS
        assert client.request(b.SMB2_FLUSH, b.flush_body(writer)).status == b.STATUS_SUCCESS
        assert _write_time(client, writer) > original
        assert client.close_file(writer) == b.STATUS_SUCCESS
