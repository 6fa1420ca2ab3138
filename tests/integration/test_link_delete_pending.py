"""Delete-pending belongs to a name of a file, not to the file ([MS-FSA] 2.1.5.5 and 2.1.5.14.3:
Open.Link.IsDeleted; Samba 4.17 keeps the delete token with the name hash). After a hard link, a
FileDispositionInformation or a FILE_DELETE_ON_CLOSE through one name leaves the file's other names alone: opens
through them succeed and see DeletePending 0, and the marked name goes at the last close of an open made through
that name, while opens through the other names stay. smbsrv kept it per file (tests/differential found it).

Each test runs the same client on Samba 4.17 and on smbsrv (the differential runner's pair) and wants the same
answers from both.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import PASSWORD, USER
from tests.differential.run import Runner, Side
from tests.integration.operations_helpers import ops_server
from tests.integration.test_differential import _both, _standard

pytestmark = [
    pytest.mark.skipif(shutil.which("smbd") is None, reason="Samba's smbd is not installed (apt-get install samba)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="both servers run as root serving a non-root account"),
]

_ALL = b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE
_SHARE_ALL = b.FILE_SHARE_READ | b.FILE_SHARE_WRITE | b.FILE_SHARE_DELETE


def _linked(client: b.Client, base: str, **kwargs: object) -> tuple[int, int]:
    """`base`\\a created and open (returned), with a second name `base`\\b made through that handle."""
    file_id = client.open(f"{base}\\a", desired_access=_ALL, disposition=b.FILE_CREATE, share_access=_SHARE_ALL,
                          **kwargs)
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION, b.rename_info(f"{base}\\b"))
    assert b.status_name(response.status) == "STATUS_SUCCESS"
    return file_id


def _open(client: b.Client, name: str) -> tuple[int, int]:
    return client.open(name, desired_access=_ALL, share_access=_SHARE_ALL)


def _mark(client: b.Client, file_id: tuple[int, int], pending: bool = True) -> None:
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION,
                               b.disposition_info(pending))
    assert b.status_name(response.status) == "STATUS_SUCCESS"


def _status(client: b.Client, name: str) -> str:
    """What a new open of `name` answers (closed again when it succeeds)."""
    response = client.create(name, desired_access=b.FILE_READ_ATTRIBUTES, share_access=_SHARE_ALL)
    if response.status == b.STATUS_SUCCESS:
        assert client.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
    return b.status_name(response.status)


def _names(side: Side, base: str) -> set[str]:
    return {entry.name for entry in (side.share_dir / base).iterdir()}


def test_other_name_opens_after_disposition(runner: Runner) -> None:
    """A disposition through a: a new open of a is DELETE_PENDING, one of b succeeds; DeletePending is 1
    through a and 0 through b, and NumberOfLinks leaves out the doomed name only where it is seen as doomed."""
    for side, client, base in _both(runner):
        through_a = _linked(client, base)
        through_b = _open(client, f"{base}\\b")
        _mark(client, through_a)
        assert _status(client, f"{base}\\a") == "STATUS_DELETE_PENDING", side.name
        assert _status(client, f"{base.upper()}\\A") == "STATUS_DELETE_PENDING", side.name  # the same name
        assert _status(client, f"{base}\\b") == "STATUS_SUCCESS", side.name
        assert _standard(client, through_a) == (1, 1, 0), side.name
        assert _standard(client, through_b) == (2, 0, 0), side.name
        assert client.close_file(through_b) == b.STATUS_SUCCESS
        assert client.close_file(through_a) == b.STATUS_SUCCESS
        assert _names(side, base) == {"b"}, side.name


def test_marked_name_goes_at_its_last_close(runner: Runner) -> None:
    """a goes when the last open made through a closes, while an open through b is still there; that open
    goes on working and sees one link, not delete-pending."""
    for side, client, base in _both(runner):
        through_a = _linked(client, base)
        second_a = _open(client, f"{base}\\a")
        through_b = _open(client, f"{base}\\b")
        _mark(client, through_a)
        assert client.close_file(through_a) == b.STATUS_SUCCESS
        assert _names(side, base) == {"a", "b"}, side.name  # second_a still holds a
        assert _status(client, f"{base}\\a") == "STATUS_DELETE_PENDING", side.name
        assert _standard(client, second_a)[1] == 1, side.name
        assert client.close_file(second_a) == b.STATUS_SUCCESS
        assert _names(side, base) == {"b"}, side.name
        assert _status(client, f"{base}\\a") == "STATUS_OBJECT_NAME_NOT_FOUND", side.name
        assert _standard(client, through_b) == (1, 0, 0), side.name
        assert b.status_name(client.write(through_b, 0, b"still here").status) == "STATUS_SUCCESS", side.name
        assert client.close_file(through_b) == b.STATUS_SUCCESS
        assert (side.share_dir / base / "b").read_bytes() == b"still here", side.name


def test_delete_on_close_takes_only_its_name(runner: Runner) -> None:
    """An open with FILE_DELETE_ON_CLOSE through a, closed while an open through b stays: a goes at once, b and
    its open are untouched; b's own delete on close later takes b."""
    for side, client, base in _both(runner):
        through_a = _linked(client, base, options=b.FILE_NON_DIRECTORY_FILE | b.FILE_DELETE_ON_CLOSE)
        through_b = _open(client, f"{base}\\b")
        assert client.close_file(through_a) == b.STATUS_SUCCESS
        assert _names(side, base) == {"b"}, side.name
        assert _standard(client, through_b) == (1, 0, 0), side.name
        _mark(client, through_b)
        assert _standard(client, through_b) == (0, 1, 0), side.name
        assert client.close_file(through_b) == b.STATUS_SUCCESS
        assert _names(side, base) == set(), side.name


def test_name_marked_through_b_waits_for_b(runner: Runner) -> None:
    """A disposition through b: closing the open through a takes nothing; the close through b takes b only.
    Clearing the disposition again keeps both names."""
    for side, client, base in _both(runner):
        through_a = _linked(client, base)
        through_b = _open(client, f"{base}\\b")
        _mark(client, through_b)
        _mark(client, through_b, False)
        assert _status(client, f"{base}\\b") == "STATUS_SUCCESS", side.name
        _mark(client, through_b)
        assert _standard(client, through_a) == (2, 0, 0), side.name
        assert client.close_file(through_a) == b.STATUS_SUCCESS
        assert _names(side, base) == {"a", "b"}, side.name
        assert _status(client, f"{base}\\a") == "STATUS_SUCCESS", side.name
        assert client.close_file(through_b) == b.STATUS_SUCCESS
        assert _names(side, base) == {"a"}, side.name


def test_rename_moves_only_the_opens_of_its_name(runner: Runner) -> None:
    """A rename through an open of a moves a to c; an open made through b keeps the name b (a rename of b
    through it later renames b, not c)."""
    for side, client, base in _both(runner):
        through_a = _linked(client, base)
        through_b = _open(client, f"{base}\\b")
        response = client.set_info(through_a, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                   b.rename_info(f"{base}\\c"))
        assert b.status_name(response.status) == "STATUS_SUCCESS", side.name
        response = client.set_info(through_b, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                   b.rename_info(f"{base}\\d"))
        assert b.status_name(response.status) == "STATUS_SUCCESS", side.name
        assert _names(side, base) == {"c", "d"}, side.name
        name = client.query_info(through_b, b.SMB2_0_INFO_FILE, 9)  # FileNameInformation
        assert b.status_name(name.status) == "STATUS_SUCCESS", side.name
        length = struct.unpack_from("<I", b.output_buffer(name), 0)[0]
        assert b.output_buffer(name)[4:4 + length].decode("utf-16-le").endswith("\\d"), side.name
        assert client.close_file(through_a) == b.STATUS_SUCCESS
        assert client.close_file(through_b) == b.STATUS_SUCCESS


def test_delete_pending_name_holds_across_a_reload(tmp_path: Path) -> None:
    """A configuration reload that changes a share gives the tree connects after it a new share root of the same
    directory (state.reload): a name delete-pending before is still DELETE_PENDING to an open made through the
    new tree connect (Samba hashes the share's canonical path with the name), and goes at its last close."""
    share = tmp_path / "share"
    with ops_server(tmp_path, shares={"share": share}) as ops:
        server = ops.server
        with b.connect(server.host, server.port, USER, PASSWORD, share="share", sign=True) as client:
            doomed = client.open("f", desired_access=_ALL, disposition=b.FILE_CREATE, share_access=_SHARE_ALL)
            _mark(client, doomed)
            alias = tmp_path / "alias"
            alias.symlink_to(share)
            ops.rewrite({"share": alias})  # the same directory by another path: a changed share
            ops.smbsrv("reload", "-c", str(ops.config), check=True)
            ops.wait_log(r"reloaded: 1 share\(s\), 1 user\(s\); added -, removed -, changed share")
            with b.connect(server.host, server.port, USER, PASSWORD, share="share", sign=True) as later:
                assert _status(later, "f") == "STATUS_DELETE_PENDING"
            assert client.close_file(doomed) == b.STATUS_SUCCESS
        assert not (share / "f").exists()
