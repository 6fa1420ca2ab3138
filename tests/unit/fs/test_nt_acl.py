"""fs/posix_acl.py (xattr codec, the kernel's ACL check) and fs/nt_acl.py (Samba's DACL <-> POSIX ACL mapping).

The mapping is checked against the kernel where it matters: every ACL built here is stored on a real file and
read back (the kernel refuses a malformed or misordered one with EINVAL).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from smbsrv.errors import SmbError
from smbsrv.fs import nt_acl, posix_acl
from smbsrv.fs.posix_acl import GROUP, GROUP_OBJ, MASK, OTHER, USER, USER_OBJ, Entry
from smbsrv.fscc.security import (
    ACCESS_ALLOWED_ACE_TYPE,
    ACCESS_DENIED_ACE_TYPE,
    SID_EVERYONE,
    SYSTEM_AUDIT_ACE_TYPE,
    Ace,
    Acl,
    Sid,
    unix_group_sid,
    unix_user_sid,
)
from smbsrv.wire.status import NtStatus

READ = 0x120089
FULL = 0x1F01FF
OI_CI = 0x3
IO = 0x8


def _allow(sid: Sid, mask: int, flags: int = 0) -> Ace:
    return Ace(ACCESS_ALLOWED_ACE_TYPE, flags, mask, sid)


def _stored(path: Path) -> tuple[Entry, ...] | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        return posix_acl.read(fd)
    finally:
        os.close(fd)


def _set(path: Path, dacl: Acl | None) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        nt_acl.set_dacl(fd, os.stat(path), dacl)
    finally:
        os.close(fd)


def _dacl(path: Path) -> list[tuple[int, int, str]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return [(a.ace_flags, a.mask, str(a.sid)) for a in nt_acl.dacl_of(fd, os.stat(path)).aces]
    finally:
        os.close(fd)


def _supports_acls(path: Path) -> bool:
    probe = path / ".probe"
    probe.write_bytes(b"")
    fd = os.open(probe, os.O_RDONLY)
    try:
        return posix_acl.write(fd, posix_acl.from_mode(0o644))
    finally:
        os.close(fd)
        probe.unlink()


@pytest.fixture
def acl_dir(tmp_path: Path) -> Path:
    if not _supports_acls(tmp_path):
        pytest.skip("the test directory's file system keeps no POSIX ACLs")
    return tmp_path


def test_codec_round_trip_and_kernel_order() -> None:
    entries = (Entry(OTHER, 0), Entry(GROUP, 5, 20), Entry(USER, 4, 1000), Entry(MASK, 7), Entry(USER_OBJ, 6),
               Entry(GROUP_OBJ, 4), Entry(USER, 6, 7))
    data = posix_acl.encode(entries)
    assert data[:4] == struct.pack("<I", 2)
    assert [struct.unpack_from("<HHI", data, 4 + 8 * i)[0] for i in range(7)] == [1, 2, 2, 4, 8, 16, 32]
    assert struct.unpack_from("<HHI", data, 12) == (USER, 6, 7)  # named users by ascending id
    assert struct.unpack_from("<HHI", data, 4) == (USER_OBJ, 6, 0xFFFFFFFF)
    assert sorted(posix_acl.decode(data), key=repr) == sorted(entries, key=repr)


@pytest.mark.parametrize("data", [b"", b"\x02\x00\x00", struct.pack("<I", 1), struct.pack("<IHHI", 2, 0x40, 7, 0),
                                  struct.pack("<IHHI", 2, 1, 8, 0), struct.pack("<IHH", 2, 1, 7)])
def test_codec_refuses_malformed_values(data: bytes) -> None:
    with pytest.raises(ValueError):
        posix_acl.decode(data)


def test_permitted_bits_follow_the_kernels_check() -> None:
    acl = (Entry(USER_OBJ, 4), Entry(USER, 6, 1001), Entry(GROUP_OBJ, 5), Entry(GROUP, 2, 30), Entry(MASK, 6),
           Entry(OTHER, 1))
    assert posix_acl.permitted_bits(acl, 1000, 20, 1000, 20, []) == 4  # the owner: its own entry, no mask
    assert posix_acl.permitted_bits(acl, 1000, 20, 1001, 99, []) == 6  # a named user, masked
    assert posix_acl.permitted_bits(acl, 1000, 20, 1002, 20, [30]) == 6  # both groups, united, masked (5|2)&6
    assert posix_acl.permitted_bits(acl, 1000, 20, 1002, 30, []) == 2
    assert posix_acl.permitted_bits(acl, 1000, 20, 1003, 99, [98]) == 1  # nobody matched: other


def test_owner_read_only_dacl_becomes_samba_s_extended_acl(acl_dir: Path) -> None:
    """smb2.acls.MXAC-NOT-GRANTED's DACL: one ACE, the owner, FILE_READ_DATA. Samba 4.17 stores user::r--,
    the owner again as a named user, group::--- and the group again, mask rwx, other::---."""
    path = acl_dir / "f"
    path.write_bytes(b"")
    st = os.stat(path)
    _set(path, Acl((_allow(unix_user_sid(st.st_uid), 0x1),)))
    assert set(_stored(path) or ()) == {Entry(USER_OBJ, 4), Entry(USER, 4, st.st_uid), Entry(GROUP_OBJ, 0),
                                        Entry(GROUP, 0, st.st_gid), Entry(MASK, 7), Entry(OTHER, 0)}
    assert os.stat(path).st_mode & 0o777 == 0o470  # the kernel shows the mask as the group bits
    owner, group = str(unix_user_sid(st.st_uid)), str(unix_group_sid(st.st_gid))
    # Read back in Samba's order: owner first, entries without rights next, other last; owner and owning group
    # appear twice (as the file's owner/group and as the named entries), as Samba shows them.
    assert _dacl(path) == [(0, READ, owner), (0, 0, group), (0, 0, group), (0, READ, owner), (0, 0, "S-1-1-0")]


def test_everyone_and_generic_rights(acl_dir: Path) -> None:
    path = acl_dir / "f"
    path.write_bytes(b"")
    st = os.stat(path)
    _set(path, Acl((_allow(unix_user_sid(st.st_uid), 0x10000000), _allow(SID_EVERYONE, 0x80000000))))
    stored = set(_stored(path) or ())
    assert {Entry(USER_OBJ, 7), Entry(OTHER, 4), Entry(GROUP_OBJ, 4)} <= stored  # group from Everyone


def test_unmappable_sid_and_foreign_ace_types_are_refused(acl_dir: Path) -> None:
    path = acl_dir / "f"
    path.write_bytes(b"")
    before = os.stat(path).st_mode
    for dacl in (Acl((_allow(Sid(5, (21, 1, 2, 3, 1000)), FULL),)),
                 Acl((Ace(SYSTEM_AUDIT_ACE_TYPE, 0, FULL, SID_EVERYONE),)),
                 Acl((_allow(SID_EVERYONE, READ), Ace(ACCESS_DENIED_ACE_TYPE, 0, READ, SID_EVERYONE)))):
        with pytest.raises(SmbError) as caught:
            _set(path, dacl)
        assert caught.value.status == NtStatus.STATUS_ACCESS_DENIED
    assert os.stat(path).st_mode == before and _stored(path) is None


def test_builtin_and_nt_authority_sids_are_left_out(acl_dir: Path) -> None:
    path = acl_dir / "f"
    path.write_bytes(b"")
    st = os.stat(path)
    _set(path, Acl((_allow(Sid(5, (18,)), FULL), _allow(Sid(5, (32, 544)), FULL),
                    _allow(unix_user_sid(st.st_uid), FULL))))
    assert Entry(USER_OBJ, 7) in set(_stored(path) or ())


def test_deny_masks_the_same_users_allow(acl_dir: Path) -> None:
    path = acl_dir / "f"
    path.write_bytes(b"")
    st = os.stat(path)
    _set(path, Acl((Ace(ACCESS_DENIED_ACE_TYPE, 0, 0x2, SID_EVERYONE), _allow(SID_EVERYONE, FULL),
                    _allow(unix_user_sid(st.st_uid), FULL))))
    stored = set(_stored(path) or ())
    assert Entry(OTHER, 5) in stored and Entry(USER_OBJ, 7) in stored


def test_null_dacl_gives_everyone_full_access(acl_dir: Path) -> None:
    path = acl_dir / "f"
    path.write_bytes(b"")
    _set(path, None)
    assert os.stat(path).st_mode & 0o777 == 0o777


def test_directory_inheritable_aces_become_the_default_acl(acl_dir: Path) -> None:
    path = acl_dir / "d"
    path.mkdir()
    st = os.stat(path)
    owner = unix_user_sid(st.st_uid)
    _set(path, Acl((_allow(owner, FULL, OI_CI), _allow(nt_acl.SID_CREATOR_OWNER, FULL, OI_CI | IO),
                    _allow(SID_EVERYONE, READ | 0x20, OI_CI))))
    fd = os.open(path, os.O_RDONLY)
    try:
        default = set(posix_acl.read(fd, posix_acl.DEFAULT) or ())
    finally:
        os.close(fd)
    assert {Entry(USER_OBJ, 7), Entry(OTHER, 5)} <= default
    child = path / "child"
    child.write_bytes(b"")  # the kernel applies the default ACL to what is created inside
    assert Entry(OTHER, 4) in set(_stored(child) or ()) or os.stat(child).st_mode & 0o7 == 4
    dacl = _dacl(path)
    # The owner's and Everyone's access ACEs equal their inheritable ones: shown once, with OI|CI.
    assert (OI_CI, FULL, str(owner)) in dacl and (OI_CI, READ | 0x20, "S-1-1-0") in dacl
    assert (OI_CI | IO, FULL, "S-1-3-0") in dacl
    # A DACL of inherit-only ACEs on a directory changes nothing (Windows 2000 traversing a tree).
    _set(path, Acl((_allow(nt_acl.SID_CREATOR_OWNER, READ, OI_CI | IO),)))
    assert _dacl(path) == dacl
    # Without inheritable ACEs the default ACL goes.
    _set(path, Acl((_allow(owner, FULL),)))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert posix_acl.read(fd, posix_acl.DEFAULT) is None
    finally:
        os.close(fd)


def test_mode_only_files_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    os.chmod(path, 0o640)
    st = os.stat(path)
    assert _dacl(path) == [(0, READ | 0x116, str(unix_user_sid(st.st_uid))),
                           (0, READ, str(unix_group_sid(st.st_gid))), (0, 0, "S-1-1-0")]


def test_full_control_of_a_file_leaves_delete_to_the_directory(tmp_path: Path) -> None:
    """Samba 4.17 ("acl map full control"): a file's rwx shows as 0x1E01FF, a directory's as 0x1F01FF."""
    path = tmp_path / "f"
    path.write_bytes(b"")
    os.chmod(path, 0o744)
    assert _dacl(path)[0][1] == 0x1E01FF
    directory = tmp_path / "d"
    directory.mkdir()
    os.chmod(directory, 0o755)
    assert _dacl(directory)[0][1] == 0x1F01FF


def test_a_symlink_keeps_no_acl(tmp_path: Path) -> None:
    os.symlink("target", tmp_path / "link")
    fd = os.open(tmp_path / "link", os.O_PATH | os.O_NOFOLLOW)
    try:
        with pytest.raises(SmbError) as caught:
            nt_acl.set_dacl(fd, os.lstat(tmp_path / "link"), Acl((_allow(SID_EVERYONE, FULL),)))
        assert caught.value.status == NtStatus.STATUS_ACCESS_DENIED
    finally:
        os.close(fd)
