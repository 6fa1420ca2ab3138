"""A rename and the opens of the directory it puts the name in (commands/set_info.py _check_target_directory):
the ordinary sharing check of an open for FILE_ADD_FILE (FILE_ADD_SUBDIRECTORY for a directory) that shares
read and write ([MS-FSA] 2.1.5.1.2). Statuses as smbtorture smb2.rename.* (from Windows) and smb2.notify.rec /
mask-change (a CHANGE_NOTIFY handle that shares read and write, not delete) want them."""

from __future__ import annotations

import pytest

from tests import builders as b
from tests.conftest import SmbServer

FILE_ALL_SPECIFIC = 0x1FF  # SEC_FILE_ALL: every file-specific right, no DELETE
SHARE_RW = 0x1 | 0x2
SHARE_ALL = 0x7


def _rename(client: b.Client, file_id: tuple[int, int], target: str) -> int:
    return client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION, b.rename_info(target)).status


@pytest.mark.parametrize(("access", "share", "expected"), [
    (FILE_ALL_SPECIFIC, SHARE_RW, b.STATUS_SUCCESS),  # smb2.notify.mask-change's watch handle
    (FILE_ALL_SPECIFIC | b.DELETE, SHARE_ALL, b.STATUS_SHARING_VIOLATION),  # rename.share_delete_and_delete_access
    (FILE_ALL_SPECIFIC | b.DELETE, 0, b.STATUS_SHARING_VIOLATION),  # no_share_delete_but_delete_access
    (FILE_ALL_SPECIFIC, SHARE_ALL, b.STATUS_SUCCESS),  # share_delete_no_delete_access
    (FILE_ALL_SPECIFIC, 0, b.STATUS_SHARING_VIOLATION),  # no_share_delete_no_delete_access
    (FILE_ALL_SPECIFIC, 0x1, b.STATUS_SHARING_VIOLATION),  # shares read only: adding a name writes
    (b.FILE_READ_ATTRIBUTES, 0, b.STATUS_SUCCESS),  # an attribute-only open takes no part in sharing
])
def test_rename_inside_a_held_directory(smb_server: SmbServer, access: int, share: int, expected: int) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        client.close_file(client.open("held", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                                      options=b.FILE_DIRECTORY_FILE))
        held = client.open("held", desired_access=access, share_access=share, options=b.FILE_DIRECTORY_FILE)
        file_id = client.open("held\\a.txt", desired_access=b.GENERIC_WRITE | b.DELETE,
                              disposition=b.FILE_CREATE)
        assert _rename(client, file_id, "held\\b.txt") == expected
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert client.close_file(held) == b.STATUS_SUCCESS
    names = sorted(path.name for path in (smb_server.share_path / "held").iterdir())
    assert names == (["b.txt"] if expected == b.STATUS_SUCCESS else ["a.txt"])


def test_only_the_target_directory_counts(smb_server: SmbServer) -> None:
    """Moving out of a directory held with no sharing works; moving into it does not (a directory too)."""
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        for name in ("held", "free"):
            client.close_file(client.open(name, desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                                          options=b.FILE_DIRECTORY_FILE))
        out = client.open("held\\out.txt", desired_access=b.GENERIC_WRITE | b.DELETE, disposition=b.FILE_CREATE)
        into = client.open("free\\in.txt", desired_access=b.GENERIC_WRITE | b.DELETE, disposition=b.FILE_CREATE)
        subdir = client.open("free\\sub", desired_access=b.GENERIC_READ | b.DELETE, disposition=b.FILE_CREATE,
                             options=b.FILE_DIRECTORY_FILE)
        held = client.open("held", desired_access=FILE_ALL_SPECIFIC, share_access=0, options=b.FILE_DIRECTORY_FILE)
        assert _rename(client, out, "free\\out.txt") == b.STATUS_SUCCESS
        assert _rename(client, into, "held\\in.txt") == b.STATUS_SHARING_VIOLATION
        assert _rename(client, subdir, "held\\sub") == b.STATUS_SHARING_VIOLATION
        for file_id in (out, into, subdir, held):
            assert client.close_file(file_id) == b.STATUS_SUCCESS
    assert sorted(path.name for path in (smb_server.share_path / "free").iterdir()) == ["in.txt", "out.txt", "sub"]
