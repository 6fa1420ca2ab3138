"""FileBasicInformation times over the wire: what a client sets is what it reads back ([MS-FSA] 2.1.5.15.2).

Linux cannot set a ctime, so a client-set ChangeTime is kept by the server and reported while the file stays
as it was; a later write makes ChangeTime follow the real change again, as on Windows.
"""

from __future__ import annotations

import struct
from pathlib import Path

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer

FILE_BASIC_INFORMATION = 4
T = 130_000_000_000_000_000  # 2012-12-13 in NT time


def _basic_times(client: b.Client, file_id: tuple[int, int]) -> tuple[int, int, int, int]:
    response = client.request(b.SMB2_QUERY_INFO,
                              b.query_info_body(file_id, b.SMB2_0_INFO_FILE, FILE_BASIC_INFORMATION))
    assert response.status == b.STATUS_SUCCESS
    return struct.unpack_from("<qqqq", b.output_buffer(response))  # type: ignore[return-value]


def test_all_four_times_round_trip_and_change_time_moves_on_write(smb_server: SmbServer, tmp_path: Path) -> None:
    client = b.connect(smb_server.host, smb_server.port, USER, PASSWORD)
    try:
        file_id = client.open("times.txt", disposition=b.FILE_OPEN_IF,
                              desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
        body = struct.pack("<qqqqII", T, T + 1, T + 2, T + 3, 0, 0)
        response = client.request(b.SMB2_SET_INFO,
                                  b.set_info_body(file_id, b.SMB2_0_INFO_FILE, FILE_BASIC_INFORMATION, body))
        assert response.status == b.STATUS_SUCCESS
        assert _basic_times(client, file_id) == (T, T + 1, T + 2, T + 3)
        # A write moves ChangeTime on; CreationTime stays, and so does the LastWriteTime this handle set
        # ([MS-FSA] 2.1.5.15.2 Open.UserSetModificationTime; Samba's sticky write time, files/write_time.py).
        assert client.write(file_id, 0, b"new data").status == b.STATUS_SUCCESS
        creation, _, write, change = _basic_times(client, file_id)
        assert creation == T and write == T + 2 and change > T + 3
        client.close_file(file_id)
    finally:
        client.close()
