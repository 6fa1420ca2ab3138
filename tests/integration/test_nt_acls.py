"""Security descriptors kept as POSIX ACLs (fs/nt_acl.py, docs/access.md), against the daemon serving a non-root
account as deployed: a DACL set through SMB limits access as Samba 4.17 limits it with default settings, lands
on disk as the ACL Samba writes, and an ACL set on disk shows in QUERY_INFO.

smbtorture smb2.acls.MXAC-NOT-GRANTED and OVERWRITE_READ_ONLY_FILE in raw requests: the owner's DACL granting
only FILE_READ_DATA refuses FILE_WRITE_DATA (also next to MAXIMUM_ALLOWED) and every overwriting disposition.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from impacket.ldap import ldaptypes
from impacket.smb3structs import SMB2_DIALECT_21
from impacket.smbconnection import SMBConnection

from smbsrv.fs import posix_acl
from smbsrv.fs.posix_acl import GROUP, GROUP_OBJ, MASK, OTHER, USER, USER_OBJ, Entry
from smbsrv.fscc.security import (
    ACCESS_ALLOWED_ACE_TYPE,
    SE_DACL_PRESENT,
    SE_SELF_RELATIVE,
    Ace,
    Acl,
    SecurityDescriptor,
    encode_descriptor,
    parse_descriptor,
    unix_user_sid,
)
from tests import builders as b
from tests.conftest import SmbServer
from tests.impacket_sd import ALLOWED, impacket_descriptor
from tests.integration.test_create_contexts import _contexts, _maximal_access, _response_contexts

WRITE_DAC = 0x00040000
WRITE_OWNER = 0x00080000
OWNER = 0x1
DACL = 0x4
# The owner of a file whose ACL gives it read only: FILE_GENERIC_READ, plus READ_CONTROL and WRITE_DAC (the
# owner's implicit rights) and DELETE through its writable directory. Samba 4.17 answers the same.
OWNER_READ_ONLY_ACCESS = 0x001F0089 & ~0x00080000


def _supports_acls(path: Path) -> bool:
    probe = path / ".acl-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, posix_acl.ACCESS, posix_acl.encode(posix_acl.from_mode(0o644)))
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


@pytest.fixture
def server(smb_server: SmbServer) -> SmbServer:
    if not _supports_acls(smb_server.share_path):
        pytest.skip("the share's file system keeps no POSIX ACLs")
    return smb_server


def _query_sd(client: b.Client, file_id: tuple[int, int], parts: int) -> SecurityDescriptor:
    response = client.query_info(file_id, b.SMB2_0_INFO_SECURITY, 0, additional_information=parts)
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
    return parse_descriptor(b.output_buffer(response))


def _set_dacl(client: b.Client, file_id: tuple[int, int], dacl: Acl) -> int:
    descriptor = encode_descriptor(SecurityDescriptor(SE_SELF_RELATIVE | SE_DACL_PRESENT, None, None, None, dacl))
    return client.set_info(file_id, b.SMB2_0_INFO_SECURITY, 0, descriptor, additional_information=DACL).status


def _create_status(client: b.Client, name: str, access: int, disposition: int = b.FILE_OPEN) -> int:
    response = client.create(name, desired_access=access, disposition=disposition)
    if response.status == b.STATUS_SUCCESS:
        client.close_file(b.create_file_id(response.body))
    return response.status


def test_owner_read_only_dacl_refuses_writes(server: SmbServer) -> None:
    name = "read-only-by-acl.txt"
    with b.connect(server.host, server.port, server.user, server.password) as client:
        client.write_file(name, b"keep me")
        handle = client.open(name, desired_access=b.READ_CONTROL | WRITE_DAC | WRITE_OWNER)
        original = _query_sd(client, handle, OWNER | DACL)
        assert original.owner is not None and original.dacl is not None
        owner = original.owner
        assert _set_dacl(client, handle, Acl((Ace(ACCESS_ALLOWED_ACE_TYPE, 0, b.FILE_READ_DATA, owner),))) \
            == b.STATUS_SUCCESS

        st = os.stat(server.share_path / name)
        assert owner == unix_user_sid(st.st_uid)
        # On disk: Samba's mapping (posix_acls.c), the owner and owning group also named, mask rwx.
        stored = set(posix_acl.decode(os.getxattr(server.share_path / name, posix_acl.ACCESS)))
        assert stored == {Entry(USER_OBJ, 4), Entry(USER, 4, st.st_uid), Entry(GROUP_OBJ, 0),
                          Entry(GROUP, 0, st.st_gid), Entry(MASK, 7), Entry(OTHER, 0)}
        if shutil.which("getfacl"):  # the acl package's view of the same xattr, where it is installed
            shown_on_disk = subprocess.run(["getfacl", "-n", "--omit-header", str(server.share_path / name)],
                                           capture_output=True, text=True, check=True).stdout.split()
            assert shown_on_disk == ["user::r--", f"user:{st.st_uid}:r--", "group::---", f"group:{st.st_gid}:---",
                                     "mask::rwx", "other::---"]

        response = client.create(name, desired_access=b.FILE_READ_ATTRIBUTES, contexts=_contexts(b"MxAc"))
        assert response.status == b.STATUS_SUCCESS
        client.close_file(b.create_file_id(response.body))
        assert _maximal_access(_response_contexts(response.body)) == OWNER_READ_ONLY_ACCESS

        assert _create_status(client, name, b.MAXIMUM_ALLOWED | b.FILE_WRITE_DATA) == b.STATUS_ACCESS_DENIED
        assert _create_status(client, name, b.FILE_WRITE_DATA) == b.STATUS_ACCESS_DENIED
        assert _create_status(client, name, b.FILE_READ_DATA) == b.STATUS_SUCCESS
        for disposition in (b.FILE_SUPERSEDE, b.FILE_OVERWRITE, b.FILE_OVERWRITE_IF):
            assert _create_status(client, name, b.FILE_READ_DATA, disposition) == b.STATUS_ACCESS_DENIED
        assert (server.share_path / name).read_bytes() == b"keep me"

        # The DACL read back: the owner's ACE grants FILE_GENERIC_READ, the rest nothing.
        shown = _query_sd(client, handle, DACL).dacl
        assert shown is not None
        assert {(str(a.sid), a.mask) for a in shown.aces if a.mask} == {(str(owner), 0x120089)}

        # Putting the original DACL back gives the owner full control again (smbtorture's restore_sd_orig).
        assert _set_dacl(client, handle, original.dacl) == b.STATUS_SUCCESS
        assert _create_status(client, name, b.FILE_WRITE_DATA) == b.STATUS_SUCCESS
        client.close_file(handle)


def test_acl_set_on_disk_shows_in_the_descriptor(server: SmbServer) -> None:
    name = "named.txt"
    with b.connect(server.host, server.port, server.user, server.password) as client:
        client.write_file(name, b"x")
        path = server.share_path / name
        st = os.stat(path)
        if shutil.which("setfacl"):  # as an administrator would, where the acl package is installed
            subprocess.run(["setfacl", "-m", "u::rw-,u:65534:r--,g::r--,g:65533:rw-,m::r--,o::---", str(path)],
                           check=True)
        else:
            os.setxattr(path, posix_acl.ACCESS, posix_acl.encode(
                (Entry(USER_OBJ, 6), Entry(USER, 4, 65534), Entry(GROUP_OBJ, 4), Entry(GROUP, 6, 65533),
                 Entry(MASK, 4), Entry(OTHER, 0))))
        handle = client.open(name, desired_access=b.READ_CONTROL)
        dacl = _query_sd(client, handle, DACL).dacl
        client.close_file(handle)
        assert dacl is not None
        shown = [(str(a.sid), a.mask) for a in dacl.aces]
        # Samba's order: owner first, everyone last; the mask bounds the named group's rw to r.
        assert shown[0] == (f"S-1-22-1-{st.st_uid}", 0x12019F)
        assert shown[-1] == ("S-1-1-0", 0)
        assert set(shown[1:-1]) == {("S-1-22-1-65534", 0x120089), (f"S-1-22-2-{st.st_gid}", 0x120089),
                                    ("S-1-22-2-65533", 0x120089)}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a file of another owner")
def test_named_user_entry_grants_a_non_owner(server: SmbServer) -> None:
    """Another owner's 0600 file whose ACL names the account with rw: MxAc and a write open follow the ACL
    (the kernel enforces the same entry for the account's fsuid)."""
    name = "granted.txt"
    path = server.share_path / name
    path.write_bytes(b"root's")
    os.chown(path, 0, 0)
    account_uid = os.stat(server.share_path).st_uid
    os.setxattr(path, posix_acl.ACCESS, posix_acl.encode(
        (Entry(USER_OBJ, 6), Entry(USER, 6, account_uid), Entry(GROUP_OBJ, 0), Entry(MASK, 6), Entry(OTHER, 0))))
    with b.connect(server.host, server.port, server.user, server.password) as client:
        response = client.create(name, desired_access=b.FILE_READ_ATTRIBUTES, contexts=_contexts(b"MxAc"))
        assert response.status == b.STATUS_SUCCESS
        client.close_file(b.create_file_id(response.body))
        access = _maximal_access(_response_contexts(response.body))
        assert access & b.FILE_WRITE_DATA and access & b.FILE_READ_DATA and not access & WRITE_DAC
        handle = client.open(name, desired_access=b.FILE_WRITE_DATA)
        assert client.write(handle, 0, b"ROOT").status == b.STATUS_SUCCESS
        client.close_file(handle)
        # The same account through a mask of r only: no write.
        os.setxattr(path, posix_acl.ACCESS, posix_acl.encode(
            (Entry(USER_OBJ, 6), Entry(USER, 6, account_uid), Entry(GROUP_OBJ, 0), Entry(MASK, 4),
             Entry(OTHER, 0))))
        assert _create_status(client, name, b.FILE_WRITE_DATA) == b.STATUS_ACCESS_DENIED
    assert path.read_bytes() == b"ROOT's"


def test_descriptor_control_and_sacl_access(server: SmbServer) -> None:
    """As Samba 4.17 answers the same opens: DACL_PROTECTED whenever owner, group or DACL is asked for; a SACL
    needs ACCESS_SYSTEM_SECURITY on the handle; asking for nothing gives the bare self-relative header."""
    with b.connect(server.host, server.port, server.user, server.password) as client:
        client.write_file("control.txt", b"x")
        handle = client.open("control.txt", desired_access=b.READ_CONTROL)
        for parts, control in ((OWNER, 0x9000), (0x2, 0x9000), (DACL, 0x9004), (0x7, 0x9004), (0, 0x8000)):
            response = client.query_info(handle, b.SMB2_0_INFO_SECURITY, 0, additional_information=parts)
            assert response.status == b.STATUS_SUCCESS
            assert struct.unpack_from("<H", b.output_buffer(response), 2)[0] == control, parts
        response = client.query_info(handle, b.SMB2_0_INFO_SECURITY, 0, additional_information=0x8)
        assert response.status == b.STATUS_ACCESS_DENIED
        client.close_file(handle)


def _impacket_dacl_descriptor(aces: list[tuple[int, str]]) -> bytes:
    """A DACL-only descriptor of allow ACEs ((mask, SID text)), built by impacket's codec, not by smbsrv's."""
    return impacket_descriptor([(ALLOWED, mask, sid) for mask, sid in aces])


def test_impacket_sets_and_reads_a_dacl(server: SmbServer) -> None:
    """impacket's SMB3 engine and SD codec: the owner read/write and Everyone read become user::rw-,
    other::r-- on disk, impacket parses the descriptor read back, and a write open still works."""
    # SMB 2.1: impacket 0.12's directory-lease bookkeeping (3.x) fails on files in the share root.
    connection = SMBConnection(server.host, server.host, sess_port=server.port, timeout=30,
                               preferredDialect=SMB2_DIALECT_21)
    connection.login(server.user, server.password)
    try:
        tree = connection.connectTree(server.share)
        fid = connection.openFile(tree, "impacket.txt", desiredAccess=b.READ_CONTROL | WRITE_DAC | b.FILE_WRITE_DATA,
                                  creationDisposition=b.FILE_CREATE)
        engine = connection.getSMBServer()
        raw = engine.queryInfo(tree, fid, infoType=b.SMB2_0_INFO_SECURITY, fileInfoClass=0,
                               additionalInformation=OWNER | DACL)
        owner = ldaptypes.SR_SECURITY_DESCRIPTOR(data=raw)["OwnerSid"].formatCanonical()
        st = os.stat(server.share_path / "impacket.txt")
        assert owner == f"S-1-22-1-{st.st_uid}"
        engine.setInfo(tree, fid, inputBlob=_impacket_dacl_descriptor([(0x12019F, owner), (0x120089, "S-1-1-0")]),
                       infoType=b.SMB2_0_INFO_SECURITY, fileInfoClass=0, additionalInformation=DACL)
        stored = set(posix_acl.decode(os.getxattr(server.share_path / "impacket.txt", posix_acl.ACCESS)))
        assert {Entry(USER_OBJ, 6), Entry(OTHER, 4), Entry(GROUP_OBJ, 4)} <= stored
        shown = ldaptypes.SR_SECURITY_DESCRIPTOR(data=engine.queryInfo(
            tree, fid, infoType=b.SMB2_0_INFO_SECURITY, fileInfoClass=0, additionalInformation=DACL))
        aces = [(ace["Ace"]["Sid"].formatCanonical(), ace["Ace"]["Mask"]["Mask"]) for ace in shown["Dacl"].aces]
        assert aces[0] == (owner, 0x12019F) and aces[-1] == ("S-1-1-0", 0x120089)
        connection.closeFile(tree, fid)
        again = connection.openFile(tree, "impacket.txt", desiredAccess=b.FILE_WRITE_DATA,
                                    creationDisposition=b.FILE_OPEN)
        connection.closeFile(tree, again)
    finally:
        connection.close()


def test_descriptor_given_at_create_is_kept(server: SmbServer) -> None:
    """[MS-SMB2] 3.3.5.9.2: the SD create context ("SecD") of a CREATE that makes the file is applied, as Samba
    4.17 keeps it (owner read only: user::r-- and no access for others). Built with impacket's SD codec. The
    creating handle keeps its access; the next opens get what the DACL gives; an existing file's open ignores
    the context; a malformed descriptor is INVALID_PARAMETER and leaves no file."""
    owner_uid = os.stat(server.share_path).st_uid  # the share belongs to the account the SMB user acts as
    descriptor = _impacket_dacl_descriptor([(0x120089, f"S-1-22-1-{owner_uid}")])
    with b.connect(server.host, server.port, server.user, server.password) as client:
        for name, directory in (("secd.txt", False), ("secd-dir", True)):
            response = client.create(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=b.FILE_CREATE,
                                     options=b.FILE_DIRECTORY_FILE if directory else b.FILE_NON_DIRECTORY_FILE,
                                     contexts=b.create_context(b"SecD", descriptor))
            assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
            file_id = b.create_file_id(response.body)
            path = server.share_path / name
            if not directory:
                assert client.write(file_id, 0, b"written by its creator").status == b.STATUS_SUCCESS
            assert client.close_file(file_id) == b.STATUS_SUCCESS
            stored = set(posix_acl.decode(os.getxattr(path, posix_acl.ACCESS)))
            # A directory's owner keeps rwx whatever its ACE says, as in Samba (fs/nt_acl.py); others lose all.
            owner_perm = 7 if directory else 4
            assert Entry(USER_OBJ, owner_perm) in stored and Entry(OTHER, 0) in stored, (name, stored)
            assert os.stat(path).st_mode & 0o707 == owner_perm << 6  # the group bits show the ACL's mask
            if not directory:
                assert _create_status(client, name, b.FILE_WRITE_DATA) == b.STATUS_ACCESS_DENIED
                assert _create_status(client, name, b.FILE_READ_DATA) == b.STATUS_SUCCESS
        # Opening an existing file: the context is not applied (and the DACL above stays).
        response = client.create("secd.txt", desired_access=b.FILE_READ_DATA, disposition=b.FILE_OPEN_IF,
                                 contexts=b.create_context(b"SecD", _impacket_dacl_descriptor(
                                     [(0x1F01FF, f"S-1-22-1-{owner_uid}")])))
        assert response.status == b.STATUS_SUCCESS
        client.close_file(b.create_file_id(response.body))
        assert Entry(USER_OBJ, 4) in set(posix_acl.decode(os.getxattr(server.share_path / "secd.txt", posix_acl.ACCESS)))
        response = client.create("bad-secd.txt", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE,
                                 contexts=b.create_context(b"SecD", b"\x01\x00\x04\x80" + bytes(4)))
        assert response.status == b.STATUS_INVALID_PARAMETER
        assert not (server.share_path / "bad-secd.txt").exists()


def test_an_owner_that_is_no_unix_account_is_invalid_owner(server: SmbServer) -> None:
    """Only S-1-22-1-uid SIDs name an owner here: Everyone as owner is STATUS_INVALID_OWNER, as Samba 4.17
    answers (smbtorture smb2.acls.SDFLAGSVSCHOWN, acls.c:1749), through SET_INFO and through a CREATE's SD
    context, which then leaves no file behind."""
    everyone_owns = impacket_descriptor([(ALLOWED, 0x1F01FF, "S-1-1-0")], owner="S-1-1-0")
    with b.connect(server.host, server.port, server.user, server.password) as client:
        handle = client.open("owned.txt", desired_access=b.READ_CONTROL | WRITE_OWNER, disposition=b.FILE_CREATE)
        response = client.set_info(handle, b.SMB2_0_INFO_SECURITY, 0, everyone_owns, additional_information=OWNER)
        assert response.status == 0xC000005A, b.status_name(response.status)  # STATUS_INVALID_OWNER
        client.close_file(handle)
        response = client.create("never.txt", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE,
                                 contexts=b.create_context(b"SecD", everyone_owns))
        assert response.status == 0xC000005A, b.status_name(response.status)
        assert not (server.share_path / "never.txt").exists()
