"""8.3 short names against the daemon (fs/mangle.py): FileAlternateNameInformation, opening, deleting and
recreating a file by its short name (smbtorture smb2.mangle's steps), the ShortName of directory listings per
the share's mangled_names, and the minimum buffer of FileAlternateNameInformation (smb2.getinfo.
qfile_buffercheck). The short names are the ones Samba 4.17 gives the same files (tests/unit/fs/test_mangle.py).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import SmbServer, assert_no_server_bugs, start_server, stop_server

FILE_ALTERNATE_NAME_INFORMATION = 21
LONG = "LongFileName.txt"
SHORT = "LNHQX6~C.TXT"


def _alternate_name(client: b.Client, name: str, output_length: int = 65536) -> tuple[int, str]:
    response = client.create(name, desired_access=b.FILE_READ_ATTRIBUTES)
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
    file_id = b.create_file_id(response.body)
    query = client.query_info(file_id, b.SMB2_0_INFO_FILE, FILE_ALTERNATE_NAME_INFORMATION,
                              output_length=output_length)
    client.close_file(file_id)
    if query.status not in (b.STATUS_SUCCESS, b.STATUS_BUFFER_OVERFLOW):
        return query.status, ""
    data = b.output_buffer(query)
    (length,) = struct.unpack_from("<I", data)
    return query.status, data[4:4 + length].decode("utf-16-le")


def _short_names_listed(client: b.Client, pattern: str = "*") -> dict[str, str]:
    file_id = client.open("", desired_access=b.FILE_READ_DATA | b.FILE_READ_ATTRIBUTES,
                          options=b.FILE_DIRECTORY_FILE)
    response = client.request(b.SMB2_QUERY_DIRECTORY, b.query_directory_body(file_id, pattern))
    client.close_file(file_id)
    assert response.status == b.STATUS_SUCCESS
    data = b.output_buffer(response)
    found: dict[str, str] = {}
    position = 0
    while True:  # FileIdBothDirectoryInformation ([MS-FSCC] 2.4.21)
        next_offset, name_length = struct.unpack_from("<I", data, position)[0], struct.unpack_from(
            "<I", data, position + 60)[0]
        short_length = data[position + 68]
        name = data[position + 104:position + 104 + name_length].decode("utf-16-le")
        found[name] = data[position + 70:position + 70 + short_length].decode("utf-16-le")
        if not next_offset:
            return found
        position += next_offset


def test_alternate_names_and_opening_by_short_name(smb_server: SmbServer) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        client.write_file(LONG, b"long")
        client.write_file("short.txt", b"8.3")
        assert _alternate_name(client, LONG) == (b.STATUS_SUCCESS, SHORT)
        assert _alternate_name(client, "short.txt") == (b.STATUS_SUCCESS, "short.txt")  # 8.3 names as they are
        assert _alternate_name(client, "") == (b.STATUS_SUCCESS, ".")  # the share root, as Samba
        # Below 8 bytes (FileNameLength and one character) the class does not fit; then what fits.
        assert _alternate_name(client, LONG, 7)[0] == b.STATUS_INFO_LENGTH_MISMATCH
        assert _alternate_name(client, LONG, 8) == (b.STATUS_BUFFER_OVERFLOW, SHORT[:2])
        # A search for the short name finds the long name (Samba matches patterns against both).
        assert list(_short_names_listed(client, SHORT.lower())) == [LONG]
        assert list(_short_names_listed(client, "LNHQX6~?.*")) == [LONG]
        # By its short name, in any case, the file is found; deleted by it, the long name goes.
        file_id = client.open(SHORT.lower(), desired_access=b.FILE_READ_ATTRIBUTES)
        client.close_file(file_id)
        file_id = client.open(SHORT, desired_access=b.DELETE, options=b.FILE_DELETE_ON_CLOSE)
        client.close_file(file_id)
        assert not (smb_server.share_path / LONG).exists()
        # Created by the short name it had, the file gets its long name back (smbtorture smb2.mangle).
        client.close_file(client.open(SHORT, desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
        assert (smb_server.share_path / LONG).exists()
        # A name of that shape that was never handed out and names nothing is just a name.
        client.close_file(client.open("ZZZZZZ~Z.TXT", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
        assert (smb_server.share_path / "ZZZZZZ~Z.TXT").exists()
        # Listings leave ShortName empty by default, as Samba 4.17 ("mangled names = illegal").
        assert set(_short_names_listed(client).values()) == {""}


@pytest.fixture
def server_with_listed_short_names(tmp_path: Path) -> Iterator[SmbServer]:
    share = tmp_path / "share"
    share.mkdir()
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[shares.share]\npath = "{share}"\nmangled_names = "yes"\n')
    server = start_server(share, tmp_path / "server.log", config=config)
    try:
        yield server
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


def test_listings_carry_short_names_when_asked(server_with_listed_short_names: SmbServer) -> None:
    server = server_with_listed_short_names
    with b.connect(server.host, server.port, server.user, server.password) as client:
        client.write_file(LONG, b"long")
        client.write_file("short.txt", b"8.3")
        listed = _short_names_listed(client)
        assert listed[LONG] == SHORT
        assert listed["short.txt"] == "" and listed["."] == "" and listed[".."] == ""


def test_share_without_short_names(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[shares.share]\npath = "{share}"\nmangled_names = "no"\n')
    server = start_server(share, tmp_path / "server.log", config=config)
    try:
        with b.connect(server.host, server.port, server.user, server.password) as client:
            client.write_file(LONG, b"long")
            assert _alternate_name(client, LONG)[0] == b.STATUS_OBJECT_NAME_NOT_FOUND
            assert client.create(SHORT, desired_access=b.FILE_READ_ATTRIBUTES).status \
                == b.STATUS_OBJECT_NAME_NOT_FOUND
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)
