"""Review of the named-streams change (ed633c6, 545af2c, ff1fbcd): sequences where smbsrv loses or corrupts data,
bypasses a share mode, or keeps state it should not. Each test runs the same client sequence on Samba 4.17 with
`vfs objects = streams_xattr` and on smbsrv when Samba is the yardstick (tests/integration/test_named_streams.py's
runner), or on smbsrv alone with the spec reason when Samba has no answer to copy. A test marked xfail(strict)
is a known bug of smbsrv: the mark goes with the fix.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import SmbServer, assert_no_server_bugs, start_server, stop_server
from tests.differential.run import Runner
from tests.integration.hsm_helpers import hsm_cli, hsm_server, is_placeholder, make_file
from tests.integration.posix_helpers import (
    FILE_DISPOSITION_DELETE,
    FILE_DISPOSITION_INFORMATION_EX,
    FILE_DISPOSITION_POSIX_SEMANTICS,
)
from tests.integration.reparse_helpers import set_reparse, symlink_buffer
from tests.integration.test_named_streams import (
    FILE_ATTRIBUTE_ARCHIVE,
    FILE_ATTRIBUTE_HIDDEN,
    FILE_OPEN_IF,
    FILE_SHARE_READ,
    OPLOCK_LEASE,
    RW,
    STATUS_NOT_A_REPARSE_POINT,
    _attributes,
    _both,
    _granted_lease_state,
    _lease_context,
    _make,
    _rename,
    _set,
    _stream_sizes,
    _stream_xattrs,
    _xattr,
)
from tests.integration.test_oplocks import lease_ack, next_break

pytestmark = [
    pytest.mark.skipif(shutil.which("smbd") is None, reason="Samba's smbd is not installed (apt-get install samba)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="both servers run as root serving a non-root account"),
]

FILE_END_OF_FILE_INFORMATION = 20
FILE_OVERWRITE, FILE_OVERWRITE_IF = 4, 5
FILE_CREATE = 2
FILE_ATTRIBUTE_TEMPORARY = 0x100
FSCTL_SET_SPARSE = 0x000900C4


def test_stream_renamed_onto_the_default_stream_keeps_the_file_data(runner: Runner) -> None:
    """FileRenameInformation ":$DATA"/"::$DATA" with ReplaceIfExists through a stream handle of a file that has
    data, while another client holds the file open sharing only read: the file keeps its data ([MS-FSA]
    2.1.5.15.12.1 replaces the default stream only when it is empty; Samba 4.17 answers SUCCESS and changes
    nothing) and its stream stays."""
    for side, client, base in _both(runner):
        other = side.clients[1]
        _make(client, f"{base}\\f", b"base data")
        _make(client, f"{base}\\f:s", b"SSS")
        held = other.open(f"{base}\\f", desired_access=b.GENERIC_READ, share_access=FILE_SHARE_READ)
        _rename(client, f"{base}\\f:s", "::$DATA", replace=True)
        assert other.close_file(held) == b.STATUS_SUCCESS
        assert (side.share_dir / base / "f").read_bytes() == b"base data", side.name
        assert _xattr(side, f"{base}/f", "s") == b"SSS\x00", side.name



def test_set_reparse_point_through_a_stream_leaves_the_file(runner: Runner) -> None:
    """A reparse point belongs to the file, not to one of its named streams: SET_REPARSE_POINT through a stream's
    handle is STATUS_NOT_A_REPARSE_POINT (Samba 4.17, as GET_REPARSE_POINT there) and the file opens as before.
    (With materialize_special_files the same call would replace the empty file, streams and all, by a symlink.)"""
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f")
        _make(client, f"{base}\\f:s", b"SS")
        stream = client.open(f"{base}\\f:s", desired_access=RW | b.FILE_WRITE_ATTRIBUTES)
        status = set_reparse(client, stream, symlink_buffer("target"))
        assert client.close_file(stream) == b.STATUS_SUCCESS
        assert status == STATUS_NOT_A_REPARSE_POINT, (side.name, b.status_name(status))
        file_id = client.open(f"{base}\\f", desired_access=b.GENERIC_READ)
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert _xattr(side, f"{base}/f", "s") == b"SS\x00", side.name



def test_streams_of_a_file_the_user_may_not_write_stay(runner: Runner) -> None:
    """A root-owned 0644 file in the user's own directory: the user may delete the file (DELETE on "f:s" is
    granted, as on Samba) but not write it, so its streams' data stays as it is: renaming "f:s" over ":t" is
    ACCESS_DENIED and a delete of "f:u" leaves it (Samba 4.17 does the xattr calls as the user)."""
    for side, client, base in _both(runner):
        path = side.share_dir / base / "f"
        path.write_bytes(b"root's data")
        for stream in "stu":
            os.setxattr(path, f"user.DosStream.{stream}:$DATA", stream.encode() * 3 + b"\x00")
        path.chmod(0o644)
        before = _stream_xattrs(side, f"{base}/f")
        stream = client.open(f"{base}\\f:s", desired_access=b.DELETE, share_access=7)
        status = _set(client, stream, b.FILE_RENAME_INFORMATION, b.rename_info(":t", True))
        assert client.close_file(stream) == b.STATUS_SUCCESS
        assert status == "STATUS_ACCESS_DENIED", (side.name, status)
        stream = client.open(f"{base}\\f:u", desired_access=b.DELETE, share_access=7)
        _set(client, stream, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
        assert client.close_file(stream) == b.STATUS_SUCCESS
        assert _stream_xattrs(side, f"{base}/f") == before, side.name
        assert [_xattr(side, f"{base}/f", stream) for stream in "stu"] == [b"sss\x00", b"ttt\x00", b"uuu\x00"], side.name



def test_overwrite_of_a_stream_applies_the_file_attribute_rules(runner: Runner) -> None:
    """[MS-FSA] 2.1.5.1.2.1 for an overwrite (FILE_OVERWRITE_IF, FILE_OVERWRITE, FILE_SUPERSEDE) of a stream: the
    attributes asked for are added to the file's (HIDDEN here), and an overwrite that does not keep the file's
    HIDDEN or SYSTEM is ACCESS_DENIED, as for the file's own data (Samba 4.17)."""
    for side, client, base in _both(runner):
        _make(client, f"{base}\\f", b"data")
        _make(client, f"{base}\\f:s", b"SSS")
        response = client.create(f"{base}\\f:s", desired_access=RW, disposition=FILE_OVERWRITE_IF,
                                 file_attributes=FILE_ATTRIBUTE_HIDDEN)
        assert response.status == b.STATUS_SUCCESS, (side.name, b.status_name(response.status))
        assert client.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
        file_id = client.open(f"{base}\\f", desired_access=b.FILE_READ_ATTRIBUTES)
        assert _attributes(client, file_id) == FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_HIDDEN, side.name
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        response = client.create(f"{base}\\f:s", desired_access=RW, disposition=FILE_OVERWRITE, file_attributes=0)
        assert response.status == b.STATUS_ACCESS_DENIED, (side.name, b.status_name(response.status))



def test_stream_names_of_a_file_the_user_may_not_read_stay_hidden(runner: Runner) -> None:
    """A root-owned 0600 file: a user in no group of the owner opens it for FILE_READ_ATTRIBUTES (granted) and asks
    FileStreamInformation: the streams it may not read are not listed (Samba 4.17: "::$DATA" only)."""
    for side, _, base in _both(runner):
        stranger = side.clients[3]
        path = side.share_dir / base / "f"
        path.write_bytes(b"secret")
        os.setxattr(path, "user.DosStream.hidden:$DATA", b"SECRET STREAM\x00")
        path.chmod(0o600)
        assert _stream_sizes(stranger, f"{base}\\f", side.name) == {"::$DATA": 6}, side.name



def test_set_sparse_through_a_stream_leaves_the_file_attributes(runner: Runner) -> None:
    """Sparseness is a stream's own ([MS-FSA] 2.1.1.5 IsSparse): FSCTL_SET_SPARSE through "x:s" does not mark the
    file x, nor a directory (which can never be sparse), whatever it answers (Samba 4.17: ACCESS_DENIED)."""
    for side, client, base in _both(runner):
        client.close_file(client.open(f"{base}\\d", desired_access=b.GENERIC_READ, disposition=FILE_CREATE,
                                      options=b.FILE_DIRECTORY_FILE))
        _make(client, f"{base}\\f", b"data")
        for name in ("d", "f"):
            stream = client.open(f"{base}\\{name}:s", desired_access=RW | b.FILE_WRITE_ATTRIBUTES,
                                 disposition=FILE_OPEN_IF)
            file_id = client.open(f"{base}\\{name}", desired_access=b.FILE_READ_ATTRIBUTES)
            before = _attributes(client, file_id)
            client.request(b.SMB2_IOCTL, b.ioctl_body(stream, FSCTL_SET_SPARSE, b"", max_output=0))
            assert _attributes(client, file_id) == before, (side.name, name)
            assert client.close_file(file_id) == b.STATUS_SUCCESS
            assert client.close_file(stream) == b.STATUS_SUCCESS



def test_stream_of_a_file_the_user_may_not_read_cannot_be_opened_for_attributes(runner: Runner) -> None:
    """The stream a listing hides (test_stream_names_of_a_file_the_user_may_not_read_stay_hidden) is not found by
    name either: its existence and size stay hidden (Samba 4.17 answers OBJECT_NAME_NOT_FOUND, as for a stream that
    does not exist)."""
    for side, _, base in _both(runner):
        stranger = side.clients[3]
        path = side.share_dir / base / "f"
        path.write_bytes(b"secret")
        os.setxattr(path, "user.DosStream.hidden:$DATA", b"SECRET STREAM\x00")
        path.chmod(0o600)
        response = stranger.create(f"{base}\\f:hidden", desired_access=b.FILE_READ_ATTRIBUTES)
        if response.status == b.STATUS_SUCCESS:
            stranger.close_file(b.create_file_id(response.body))
        assert response.status == b.STATUS_OBJECT_NAME_NOT_FOUND, (side.name, b.status_name(response.status))



def test_basic_information_through_a_directory_stream_keeps_the_directory_rules(runner: Runner) -> None:
    """The attributes set through "d:s" are the directory's ([MS-FSA] 2.1.5.15.2): FILE_ATTRIBUTE_TEMPORARY, which
    a directory may not have, is INVALID_PARAMETER as through the directory's own handle, and nothing changes."""
    for side, client, base in _both(runner):
        client.close_file(client.open(f"{base}\\d", desired_access=b.GENERIC_READ, disposition=FILE_CREATE,
                                      options=b.FILE_DIRECTORY_FILE))
        stream = client.open(f"{base}\\d:s", desired_access=RW | b.FILE_WRITE_ATTRIBUTES, disposition=FILE_OPEN_IF)
        status = _set(client, stream, b.FILE_BASIC_INFORMATION, bytes(32) + struct.pack("<II", FILE_ATTRIBUTE_TEMPORARY, 0))
        assert client.close_file(stream) == b.STATUS_SUCCESS
        assert status == "STATUS_INVALID_PARAMETER", (side.name, status)
        file_id = client.open(f"{base}\\d", desired_access=b.FILE_READ_ATTRIBUTES)
        assert not _attributes(client, file_id) & FILE_ATTRIBUTE_TEMPORARY, side.name
        assert client.close_file(file_id) == b.STATUS_SUCCESS


# -- HSM placeholders (docs/hsm.md): a stream is not the file's data ---------------------------------------------

def test_truncating_a_stream_of_a_placeholder_keeps_the_file(tmp_path: Path) -> None:
    """A stream's data is an xattr: truncating it touches neither the file's data nor its placeholder mark, and
    reading the file afterwards still fetches the released content."""
    share, cold = tmp_path / "share", tmp_path / "cold"
    share.mkdir()
    cold.mkdir()
    data = make_file(share / "p.bin", 100000)
    with hsm_server(tmp_path, share, hsm_provider="directory", hsm_directory=str(cold)) as (server, config):
        hsm_cli(config, "release", str(share / "p.bin"))
        assert is_placeholder(share / "p.bin")
        with b.connect(server.host, server.port, server.user, server.password) as client:
            stream = client.open("p.bin:s", desired_access=RW, disposition=FILE_OPEN_IF)
            assert client.write(stream, 0, b"stream data").status == b.STATUS_SUCCESS
            status = client.set_info(stream, b.SMB2_0_INFO_FILE, FILE_END_OF_FILE_INFORMATION, struct.pack("<q", 0))
            assert status.status == b.STATUS_SUCCESS, b.status_name(status.status)
            assert client.close_file(stream) == b.STATUS_SUCCESS
            assert os.stat(share / "p.bin").st_size == len(data)
            assert is_placeholder(share / "p.bin")
            file_id = client.open("p.bin", desired_access=b.GENERIC_READ)
            response = client.read(file_id, 0, 65536)  # one credit's worth: the raw client charges one
            assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
            assert b.read_data(response) == data[:65536]
            assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert os.getxattr(share / "p.bin", "user.DosStream.s:$DATA") == b"\x00"
        assert_no_server_bugs(server)


# -- smbsrv alone -----------------------------------------------------------------------------------------------

def test_posix_delete_of_a_stream_keeps_the_file_name(server: SmbServer) -> None:
    """FileDispositionInformationEx with FILE_DISPOSITION_POSIX_SEMANTICS on a stream handle removes the stream
    now ([MS-FSCC] 2.4.12); the file and its name stay, in any case."""
    with b.connect(server.host, server.port, server.user, server.password) as client:
        client.close_file(client.open("Cased", desired_access=RW, disposition=FILE_OPEN_IF))
        client.close_file(client.open("Cased:s", desired_access=RW, disposition=FILE_OPEN_IF))
        client.close_file(client.open("cased", desired_access=b.GENERIC_READ))  # the directory's name index is built
        stream = client.open("Cased:s", desired_access=b.DELETE, share_access=7)
        flags = FILE_DISPOSITION_DELETE | FILE_DISPOSITION_POSIX_SEMANTICS
        response = client.set_info(stream, b.SMB2_0_INFO_FILE, FILE_DISPOSITION_INFORMATION_EX, struct.pack("<I", flags))
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert client.close_file(stream) == b.STATUS_SUCCESS
        assert "user.DosStream.s:$DATA" not in os.listxattr(server.share_path / "Cased")
        response = client.create("cased", desired_access=b.GENERIC_READ)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert client.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS


def test_a_create_waiting_for_a_renamed_streams_lease_goes_on_at_the_ack(tmp_path: Path) -> None:
    """A RWH lease on "f:s", renamed to ":t" through its handle; another client's CREATE of "f:t" breaks the
    lease; the holder acknowledges at once: the CREATE completes then ([MS-SMB2] 3.3.4.7), not at the timeout
    (8 s here, so that the failing test is short)."""
    share = tmp_path / "share"
    share.mkdir()
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[server]\noplock_break_timeout_s = 8\n\n[shares.share]\npath = "{share}"\n')
    server = start_server(share, tmp_path / "server.log", config=config)
    try:
        _renamed_lease_break(server)
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


def _renamed_lease_break(server: SmbServer) -> None:
    with b.connect(server.host, server.port, server.user, server.password) as holder, \
            b.connect(server.host, server.port, server.user, server.password) as other:
        key = bytes(range(16))
        response = holder.create("f:s", desired_access=RW | b.DELETE, disposition=FILE_OPEN_IF, share_access=7,
                                 oplock=OPLOCK_LEASE, contexts=_lease_context(key, 7))
        assert response.status == b.STATUS_SUCCESS and _granted_lease_state(response) == 7
        stream = b.create_file_id(response.body)
        assert _set(holder, stream, b.FILE_RENAME_INFORMATION, b.rename_info(":t")) == "STATUS_SUCCESS"
        (message_id,) = other.send(b.Req(b.SMB2_CREATE, b.create_body("f:t", desired_access=RW, share_access=7)))
        notification = next_break(holder, 5.0)
        (new_state,) = struct.unpack_from("<I", notification.body, 28)
        assert lease_ack(holder, key, new_state).status == b.STATUS_SUCCESS
        acked = time.monotonic()
        other.sock.settimeout(60.0)
        response = other.receive(message_id)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert time.monotonic() - acked < 5.0
        assert other.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
        assert holder.close_file(stream) == b.STATUS_SUCCESS


def test_materializing_a_file_with_streams_keeps_them(tmp_path: Path) -> None:
    """With materialize_special_files, a symlink reparse point set on an empty file becomes a real symlink; a file
    that has named streams cannot be one (a symlink carries no user xattrs), so its reparse point is kept stored
    and the file, with its streams, stays (a reparse point never removes data streams, [MS-FSA] 2.1.5.10.37)."""
    share = tmp_path / "share"
    share.mkdir()
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[server]\nstate_dir = "{tmp_path / "state"}"\n[shares.share]\npath = "{share}"\n'
                      'materialize_special_files = true\n')
    server = start_server(share, tmp_path / "server.log", config=config)
    try:
        with b.connect(server.host, server.port, server.user, server.password) as client:
            client.close_file(client.open("f", desired_access=RW, disposition=FILE_OPEN_IF))
            stream = client.open("f:s", desired_access=RW, disposition=FILE_OPEN_IF, share_access=7)
            assert client.write(stream, 0, b"SS").status == b.STATUS_SUCCESS
            file_id = client.open("f", desired_access=b.FILE_READ_ATTRIBUTES | b.FILE_WRITE_ATTRIBUTES,
                                  options=b.FILE_OPEN_REPARSE_POINT, share_access=7)
            assert set_reparse(client, file_id, symlink_buffer("target")) == b.STATUS_SUCCESS
            assert client.close_file(file_id) == b.STATUS_SUCCESS
            assert client.close_file(stream) == b.STATUS_SUCCESS
        assert not (share / "f").is_symlink()
        assert os.getxattr(share / "f", "user.DosStream.s:$DATA") == b"SS\x00"
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


def test_rename_over_a_stream_of_another_case_replaces_it(server: SmbServer) -> None:
    """[MS-FSA] 2.1.5.15.12.1: the target stream is found case-insensitively; with ReplaceIfExists it is replaced,
    and the renamed data is what the name then opens. (Samba 4.17 also leaves both xattrs: its existence check is
    case-sensitive, the named-streams facts; smbsrv's stream names are case-insensitive everywhere else.)"""
    with b.connect(server.host, server.port, server.user, server.password) as client:
        client.close_file(client.open("g", desired_access=RW, disposition=FILE_OPEN_IF))
        for name, data in (("g:t", b"TT"), ("g:s", b"SSS")):
            file_id = client.open(name, desired_access=RW, disposition=FILE_OPEN_IF)
            assert client.write(file_id, 0, data).status == b.STATUS_SUCCESS
            assert client.close_file(file_id) == b.STATUS_SUCCESS
        file_id = client.open("g:s", desired_access=b.DELETE, share_access=7)
        assert _set(client, file_id, b.FILE_RENAME_INFORMATION, b.rename_info(":T", True)) == "STATUS_SUCCESS"
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        names = sorted(n for n in os.listxattr(server.share_path / "g") if n.startswith("user.DosStream."))
        assert len(names) == 1, names
        for name in ("g:T", "g:t"):
            file_id = client.open(name, desired_access=b.GENERIC_READ)
            assert b.read_data(client.read(file_id, 0, 100)) == b"SSS", name
            assert client.close_file(file_id) == b.STATUS_SUCCESS
