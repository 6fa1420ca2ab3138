"""smbsrv against Samba 4.17 over the same random operation sequences (tests/differential), and the regression
tests of what those runs found.

One Samba and one smbsrv serve the same non-root account (conftest's serving_account) for the whole module.
The fixed seeds below must produce no difference outside tests/differential/allowed.py; longer runs:
`python -m tests.differential.run --sequences 5000 --seed N` (as root).
"""

from __future__ import annotations

import os
import shutil
import struct
import time

import pytest

from benchmarks.servers import HOST, SHARE_NAME
from tests import builders as b
from tests.differential import allowed
from tests.differential.run import Runner, Side, run_sequences, summary

pytestmark = [
    pytest.mark.skipif(shutil.which("smbd") is None, reason="Samba's smbd is not installed (apt-get install samba)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="both servers run as root serving a non-root account"),
]
SEEDS = range(1, 2001)


def test_random_sequences_answer_as_samba(runner: Runner) -> None:
    report = run_sequences(runner, SEEDS)
    assert not report.findings, summary(report)
    # The runs must get somewhere: most sequences reach their end without an accepted difference.
    assert sum(report.allowed.values()) < len(SEEDS) * 0.75, summary(report)


STREAM_SEEDS = range(1, 1001)


def test_random_stream_sequences_answer_as_samba(runner: Runner) -> None:
    """The same with named streams in the sequences (tests/differential/ops.py, --streams)."""
    runner.streams = True
    try:
        report = run_sequences(runner, STREAM_SEEDS)
    finally:
        runner.streams = False
    assert not report.findings, summary(report)
    assert sum(report.allowed.values()) < len(STREAM_SEEDS) * 0.75, summary(report)


def test_allowed_entries_say_why() -> None:
    for entry in allowed.ALLOWED:
        assert entry.reason.startswith(("spec: ", "samba: ")), entry
    for entry in allowed.KNOWN:
        assert entry.reason.startswith(("BUG: ", "check: ")), entry


# -- regressions found by the differential runs; each runs on both servers and wants the same answer --------

def _both(runner: Runner) -> list[tuple[Side, b.Client, str]]:
    sides = []
    for side in (runner.samba, runner.smbsrv):
        if not side.clients:
            side.connect()
        runner.counter += 1
        base = f"r{runner.counter}"
        side.fresh_directory(base)
        sides.append((side, side.clients[0], base))
    return sides


def _standard(client: b.Client, file_id: tuple[int, int]) -> tuple[int, int, int]:
    """NumberOfLinks, DeletePending and Directory of FileStandardInformation ([MS-FSCC] 2.4.41)."""
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_STANDARD_INFORMATION)
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
    links, pending, directory = struct.unpack_from("<IBB", b.output_buffer(response), 16)
    return links, pending, directory


def test_directory_has_one_link(runner: Runner) -> None:
    """An empty directory has st_nlink 2 and one with a subdirectory 3; both servers answer 1, as NTFS does."""
    for side, client, base in _both(runner):
        outer = client.open(f"{base}\\outer", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                            options=b.FILE_DIRECTORY_FILE)
        assert _standard(client, outer) == (1, 0, 1), side.name
        inner = client.open(f"{base}\\outer\\inner", desired_access=b.GENERIC_READ | b.DELETE,
                            disposition=b.FILE_CREATE, options=b.FILE_DIRECTORY_FILE)
        assert _standard(client, outer) == (1, 0, 1), side.name
        response = client.set_info(inner, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
        assert response.status == b.STATUS_SUCCESS
        assert _standard(client, inner) == (0, 1, 1), side.name  # the pending delete takes the one link
        assert client.close_file(inner) == b.STATUS_SUCCESS
        assert client.close_file(outer) == b.STATUS_SUCCESS


def test_clearing_disposition_keeps_delete_on_close(runner: Runner) -> None:
    """FILE_DELETE_ON_CLOSE from the CREATE outlives a FileDispositionInformation of 0 through the same handle:
    the close deletes the file (Windows; Samba 4.17). smbsrv kept it."""
    for side, client, base in _both(runner):
        file_id = client.open(f"{base}\\doomed", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                              disposition=b.FILE_CREATE, options=b.FILE_NON_DIRECTORY_FILE | b.FILE_DELETE_ON_CLOSE)
        other = client.open(f"{base}\\doomed", desired_access=b.FILE_READ_ATTRIBUTES)
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION,
                                   b.disposition_info(False))
        assert response.status == b.STATUS_SUCCESS, side.name
        assert _standard(client, other)[1] == 0, side.name  # not delete-pending while the handle is open
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        # Its close made the file delete-pending: the other open still works, a new open is refused.
        assert _standard(client, other)[1] == 1, side.name
        assert client.create(f"{base}\\doomed").status == b.STATUS_DELETE_PENDING, side.name
        assert client.close_file(other) == b.STATUS_SUCCESS
        assert not (side.share_dir / base / "doomed").exists(), side.name


def _attributes(client: b.Client, file_id: tuple[int, int]) -> int:
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION)
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
    return struct.unpack_from("<I", b.output_buffer(response), 32)[0]


def test_first_write_sets_archive(runner: Runner) -> None:
    """A write through a handle sets FILE_ATTRIBUTE_ARCHIVE again after a client cleared it (Windows; Samba's
    mark_file_modified); a handle that does not write leaves it clear."""
    for side, client, base in _both(runner):
        file_id = client.open(f"{base}\\f", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                              disposition=b.FILE_CREATE, file_attributes=0x2)
        assert _attributes(client, file_id) == 0x22, side.name  # HIDDEN | ARCHIVE
        basic = bytes(32) + struct.pack("<II", 0x2, 0)
        assert client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION, basic).status == 0
        assert _attributes(client, file_id) == 0x2, side.name
        reader = client.open(f"{base}\\f", desired_access=b.GENERIC_READ)
        assert client.read(reader, 0, 1).status == b.STATUS_END_OF_FILE
        assert _attributes(client, reader) == 0x2, side.name
        assert client.write(file_id, 0, b"data").status == b.STATUS_SUCCESS
        assert _attributes(client, reader) == 0x22, side.name
        assert client.close_file(reader) == b.STATUS_SUCCESS
        assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_directory_renamed_over_a_file_is_a_name_collision(runner: Runner) -> None:
    """A directory renamed over a file with ReplaceIfExists: rename(2) refuses with ENOTDIR, which smbsrv passed
    on as NOT_A_DIRECTORY; Samba 4.17 answers OBJECT_NAME_COLLISION, and both keep the file."""
    for side, client, base in _both(runner):
        client.close_file(client.open(f"{base}\\file", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
        directory = client.open(f"{base}\\dir", desired_access=b.GENERIC_READ | b.DELETE, disposition=b.FILE_CREATE,
                                options=b.FILE_DIRECTORY_FILE)
        response = client.set_info(directory, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                   b.rename_info(f"{base}\\file", replace_if_exists=True))
        assert b.status_name(response.status) == "STATUS_OBJECT_NAME_COLLISION", side.name
        assert client.close_file(directory) == b.STATUS_SUCCESS
        assert (side.share_dir / base / "file").is_file() and (side.share_dir / base / "dir").is_dir(), side.name


def test_overwrite_grants_only_what_was_asked(runner: Runner) -> None:
    """An overwriting CREATE that asks for FILE_READ_DATA only truncates the file, but its handle may not WRITE or
    FLUSH (ACCESS_DENIED), and a later open that shares only reading is not refused for it (Windows' file systems
    add FILE_WRITE_DATA for the sharing check only; Samba 4.17). smbsrv granted the handle FILE_WRITE_DATA."""
    for side, client, base in _both(runner):
        client.write_file(f"{base}\\f", b"data")
        file_id = client.open(f"{base}\\f", desired_access=b.FILE_READ_DATA, disposition=b.FILE_OVERWRITE,
                              share_access=b.FILE_SHARE_READ)
        assert (side.share_dir / base / "f").stat().st_size == 0, side.name
        assert b.status_name(client.write(file_id, 0, b"x").status) == "STATUS_ACCESS_DENIED", side.name
        flushed = client.request(b.SMB2_FLUSH, b.flush_body(file_id))
        assert b.status_name(flushed.status) == "STATUS_ACCESS_DENIED", side.name
        reader = client.create(f"{base}\\f", desired_access=b.FILE_READ_DATA, share_access=b.FILE_SHARE_READ)
        assert b.status_name(reader.status) == "STATUS_SUCCESS", side.name
        assert client.close_file(b.create_file_id(reader.body)) == b.STATUS_SUCCESS
        assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_create_of_a_file_over_a_directory_is_file_is_a_directory(runner: Runner) -> None:
    """FILE_CREATE with FILE_NON_DIRECTORY_FILE where a directory has the name: FILE_IS_A_DIRECTORY comes before
    OBJECT_NAME_COLLISION (Windows' fastfat checks the type first; Samba 4.17). smbsrv answered the collision."""
    for side, client, base in _both(runner):
        client.close_file(client.open(f"{base}\\d", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                                      options=b.FILE_DIRECTORY_FILE))
        response = client.create(f"{base}\\d", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                                  options=b.FILE_NON_DIRECTORY_FILE)
        assert b.status_name(response.status) == "STATUS_FILE_IS_A_DIRECTORY", side.name
        response = client.create(f"{base}\\d", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE)
        assert b.status_name(response.status) == "STATUS_OBJECT_NAME_COLLISION", side.name


def test_other_spelling_in_a_directory_the_user_may_not_list(runner: Runner) -> None:
    """A name in another case, in a directory the user may traverse but not list: finding it is listing the
    directory, so an open is ACCESS_DENIED even when the name exists, and a create in a drop box (0733) makes the
    name as spelled (Samba 4.17's filename.c, UCF_PREP_CREATEFILE). smbsrv failed with STATUS_INTERNAL_ERROR (the
    name index's listing raised EACCES), or found the file through an index another user had built."""
    for side, owner, base in _both(runner):
        stranger = side.clients[3]  # the third user, in no group of the owner's
        directory = side.share_dir / base / "d"
        owner.close_file(owner.open(f"{base}\\d", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                                    options=b.FILE_DIRECTORY_FILE))
        owner.close_file(owner.open(f"{base}\\d\\x", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
        # The owner's case-insensitive open builds smbsrv's index of d.
        owner.close_file(owner.open(f"{base}\\D\\X", desired_access=b.FILE_READ_ATTRIBUTES))
        directory.chmod(0o711)
        # The owner may still list it: smbsrv's index of d is built again, by someone who may read it.
        owner.close_file(owner.open(f"{base}\\D\\X", desired_access=b.FILE_READ_ATTRIBUTES))
        for name, disposition in (("X", b.FILE_OPEN), ("X", b.FILE_OPEN_IF), ("y", b.FILE_OPEN)):
            response = stranger.create(f"{base}\\d\\{name}", desired_access=b.FILE_READ_ATTRIBUTES,
                                       disposition=disposition)
            assert b.status_name(response.status) == "STATUS_ACCESS_DENIED", (side.name, name, disposition)
        exact = stranger.create(f"{base}\\d\\x", desired_access=b.FILE_READ_ATTRIBUTES)
        assert b.status_name(exact.status) == "STATUS_SUCCESS", side.name
        assert stranger.close_file(b.create_file_id(exact.body)) == b.STATUS_SUCCESS
        directory.chmod(0o733)
        response = stranger.create(f"{base}\\d\\X", desired_access=b.FILE_READ_ATTRIBUTES, disposition=b.FILE_OPEN)
        assert b.status_name(response.status) == "STATUS_ACCESS_DENIED", side.name
        response = stranger.create(f"{base}\\d\\X", desired_access=b.GENERIC_WRITE, disposition=b.FILE_OPEN_IF)
        assert b.status_name(response.status) == "STATUS_SUCCESS", side.name
        assert struct.unpack_from("<I", response.body, 4)[0] == 2, side.name  # FILE_CREATED
        assert stranger.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
        assert sorted(path.name for path in directory.iterdir()) == ["X", "x"], side.name


def test_link_over_its_own_name_keeps_the_file(runner: Runner) -> None:
    """FileLinkInformation with ReplaceIfExists naming the file's own name, or another link of it: the name to
    replace belongs to a file that is open (this handle), so nothing is replaced ([MS-FSA] 2.1.5.15.6 as
    2.1.5.15.11; Samba 4.17 refuses too, with SHARING_VIOLATION). smbsrv unlinked the name first and then failed
    to link the file it had just removed: OBJECT_NAME_NOT_FOUND, and the file was gone."""
    for side, client, base in _both(runner):
        file_id = client.open(f"{base}\\f", desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=b.FILE_CREATE)
        assert client.write(file_id, 0, b"kept").status == b.STATUS_SUCCESS
        for name in ("f", "F"):
            response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION,
                                       b.rename_info(f"{base}\\{name}", replace_if_exists=True))
            assert b.status_name(response.status) in ("STATUS_ACCESS_DENIED", "STATUS_SHARING_VIOLATION"), side.name
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION,
                                   b.rename_info(f"{base}\\g", replace_if_exists=False))
        assert b.status_name(response.status) == "STATUS_SUCCESS", side.name
        assert _standard(client, file_id)[0] == 2, side.name
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION,
                                   b.rename_info(f"{base}\\g", replace_if_exists=True))
        assert b.status_name(response.status) in ("STATUS_ACCESS_DENIED", "STATUS_SHARING_VIOLATION"), side.name
        # A READONLY name that no one has open is not replaced either (Windows: ACCESS_DENIED; Samba 4.17:
        # CANNOT_DELETE); smbsrv replaced it.
        client.close_file(client.open(f"{base}\\r", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE,
                                      file_attributes=b.FILE_ATTRIBUTE_READONLY))
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION,
                                   b.rename_info(f"{base}\\r", replace_if_exists=True))
        assert b.status_name(response.status) in ("STATUS_ACCESS_DENIED", "STATUS_CANNOT_DELETE"), side.name
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        for name in ("f", "g"):
            path = side.share_dir / base / name
            assert path.read_bytes() == b"kept" and path.stat().st_nlink == 2, (side.name, name)
        assert (side.share_dir / base / "r").stat().st_nlink == 1, side.name


def test_delete_on_close_of_one_user_done_at_another_users_close(runner: Runner) -> None:
    """A file the first user opened with FILE_DELETE_ON_CLOSE goes when a third user, who may not delete in the
    directory, closes the last handle: the delete is the first user's (Samba 4.17's delete token; Windows deletes
    whoever closes last). smbsrv unlinked as the closing user, the kernel refused, and the file stayed."""
    for side, owner, base in _both(runner):
        stranger = side.clients[3]
        file_id = owner.open(f"{base}\\f", desired_access=b.GENERIC_READ | b.DELETE, disposition=b.FILE_CREATE,
                             options=b.FILE_DELETE_ON_CLOSE)
        other = stranger.open(f"{base}\\f", desired_access=b.FILE_READ_ATTRIBUTES)
        assert owner.close_file(file_id) == b.STATUS_SUCCESS
        assert (side.share_dir / base / "f").exists(), side.name
        assert stranger.close_file(other) == b.STATUS_SUCCESS
        assert not (side.share_dir / base / "f").exists(), side.name


def test_disposition_through_one_link_removes_that_name(runner: Runner) -> None:
    """A disposition set through a handle of the hard link "c" removes "c", not the name "b" of the handle that
    closes last ([MS-FSA] 2.1.5.5 Phase 1, Open.Link.IsDeleted; Samba 4.17). smbsrv unlinked the name of the last
    handle: "b" went and "c" stayed."""
    for side, client, base in _both(runner):
        first = client.open(f"{base}\\b", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                            disposition=b.FILE_CREATE)
        response = client.set_info(first, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION, b.rename_info(f"{base}\\c"))
        assert b.status_name(response.status) == "STATUS_SUCCESS", side.name
        second = client.open(f"{base}\\c", desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES)
        response = client.set_info(second, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
        assert b.status_name(response.status) == "STATUS_SUCCESS", side.name
        assert client.close_file(second) == b.STATUS_SUCCESS
        assert client.close_file(first) == b.STATUS_SUCCESS
        assert sorted(path.name for path in (side.share_dir / base).iterdir()) == ["b"], side.name


def test_rwx_of_a_file_grants_no_delete_in_a_directory_the_user_may_not_write(runner: Runner) -> None:
    """SECURITY. A member of the file's group holds rwx on the file (0770) but may not write the directory
    (0755, the owner's): no DELETE (Samba 4.17 grants 0x1E01FF, DELETE only from the directory). smbsrv granted
    DELETE with rwx, so FILE_DELETE_ON_CLOSE was accepted, and when the member's connection dropped, the
    teardown (running as the server) removed the owner's file."""
    for side, owner, base in _both(runner):
        member = b.connect(HOST, side.port, side.users[1], side.password, SHARE_NAME, sign=True)
        try:
            owner.close_file(owner.open(f"{base}\\f", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
            (side.share_dir / base / "f").chmod(0o770)
            granted = member.open(f"{base}\\f", desired_access=b.MAXIMUM_ALLOWED)
            access = member.query_info(granted, b.SMB2_0_INFO_FILE, 8)  # FileAccessInformation
            assert struct.unpack_from("<I", b.output_buffer(access), 0)[0] == 0x1E01FF, side.name
            assert member.close_file(granted) == b.STATUS_SUCCESS
            for options in (0, b.FILE_DELETE_ON_CLOSE):
                response = member.create(f"{base}\\f", desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                                         options=options)
                assert b.status_name(response.status) == "STATUS_ACCESS_DENIED", (side.name, options)
        finally:
            member.close()  # a dropped connection: its opens end in the server's teardown
        time.sleep(0.2)
        assert (side.share_dir / base / "f").exists(), side.name


def test_delete_on_close_at_teardown_is_done_as_its_user(runner: Runner) -> None:
    """SECURITY. A delete on close that a dropped connection's teardown carries out runs as the user who asked
    for it, not as the server: the user's DELETE was granted at the open, but a chmod of the directory since then
    took the permission away, and the file stays (as on Samba 4.17, which deletes with the user's token)."""
    for side, owner, base in _both(runner):
        member = b.connect(HOST, side.port, side.users[1], side.password, SHARE_NAME, sign=True)
        directory = side.share_dir / base
        try:
            directory.chmod(0o777)
            owner.close_file(owner.open(f"{base}\\f", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
            response = member.create(f"{base}\\f", desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                                     options=b.FILE_DELETE_ON_CLOSE)
            assert b.status_name(response.status) == "STATUS_SUCCESS", side.name
            directory.chmod(0o755)
        finally:
            member.close()
        time.sleep(0.2)
        assert (directory / "f").exists(), side.name


def test_overwrite_by_a_user_who_may_not_write_is_access_denied(runner: Runner) -> None:
    """An overwrite by a user who may not write the file, while another open shares no writing: the overwrite's
    implied FILE_WRITE_DATA fails the access check before the sharing check ([MS-FSA] 2.1.5.1.2.1 before
    2.1.5.1.2.2; Samba 4.17). smbsrv answered SHARING_VIOLATION, telling a stranger the file was open."""
    for side, owner, base in _both(runner):
        stranger = side.clients[3]
        file_id = owner.open(f"{base}\\f", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                             share_access=b.FILE_SHARE_READ)
        for disposition in (b.FILE_OVERWRITE, b.FILE_OVERWRITE_IF, b.FILE_SUPERSEDE):
            response = stranger.create(f"{base}\\f", desired_access=b.READ_CONTROL, disposition=disposition)
            assert b.status_name(response.status) == "STATUS_ACCESS_DENIED", (side.name, disposition)
        assert owner.close_file(file_id) == b.STATUS_SUCCESS


def test_other_spelling_after_the_directory_became_unlistable(runner: Runner) -> None:
    """A user who could list a directory, which a chmod then made a drop box (0733) for them: another spelling of
    a name is ACCESS_DENIED from then on, also right after their own create there (Samba 4.17). smbsrv's name
    index of before the chmod, stamped valid again by that create, still found the name."""
    for side, owner, base in _both(runner):
        member = side.clients[2]  # the second user, in the owner's group
        directory = side.share_dir / base
        directory.chmod(0o777)
        member.close_file(member.open(f"{base}\\b", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
        directory.chmod(0o733)
        member.close_file(member.open(f"{base}\\c", desired_access=b.GENERIC_WRITE, disposition=b.FILE_OPEN_IF))
        response = member.create(f"{base}\\B", desired_access=b.FILE_READ_ATTRIBUTES)
        assert b.status_name(response.status) == "STATUS_ACCESS_DENIED", side.name


def test_write_bit_of_a_directory_grants_delete_child(runner: Runner) -> None:
    """MAXIMUM_ALLOWED on the owner's rw- (0644) directory: `w` of a directory maps to FILE_GENERIC_WRITE and
    FILE_DELETE_CHILD (Samba 4.17's mapping of the mode); smbsrv left FILE_DELETE_CHILD out."""
    for side, owner, base in _both(runner):
        owner.close_file(owner.open(f"{base}\\d", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                                    options=b.FILE_DIRECTORY_FILE))
        (side.share_dir / base / "d").chmod(0o644)
        handle = owner.open(f"{base}\\d", desired_access=b.MAXIMUM_ALLOWED)
        access = owner.query_info(handle, b.SMB2_0_INFO_FILE, 8)  # FileAccessInformation
        assert struct.unpack_from("<I", b.output_buffer(access), 0)[0] == 0x1701DF, side.name
        assert owner.close_file(handle) == b.STATUS_SUCCESS


def test_failed_replacing_link_keeps_the_target(runner: Runner) -> None:
    """A link with ReplaceIfExists of another user's file, which the kernel refuses (protected_hardlinks: the
    user neither owns it nor may write it): ACCESS_DENIED on both servers, and the target name must stay. smbsrv
    (and Samba 4.17, whose loss this test records) removed the target first, so it was gone."""
    for side, owner, base in _both(runner):
        stranger = side.clients[3]
        (side.share_dir / base).chmod(0o777)
        stranger.close_file(stranger.open(f"{base}\\b", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
        owner.write_file(f"{base}\\d", b"keep")
        file_id = owner.open(f"{base}\\b", desired_access=b.GENERIC_READ)
        response = owner.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION,
                                  b.rename_info(f"{base}\\d", replace_if_exists=True))
        assert b.status_name(response.status) == "STATUS_ACCESS_DENIED", side.name
        assert owner.close_file(file_id) == b.STATUS_SUCCESS
        kept = (side.share_dir / base / "d").exists()
        assert kept == (side.name == "smbsrv"), side.name  # Samba 4.17 loses it (allowed.py)
        assert sorted(p.name for p in (side.share_dir / base).iterdir() if p.name.startswith(".smbsrv")) == []


def test_rename_onto_another_link_of_the_same_file(runner: Runner) -> None:
    """A rename onto another hard link of the same file is refused, as onto any name that is taken (without
    ReplaceIfExists: OBJECT_NAME_COLLISION) or of a file that is open (with it: ACCESS_DENIED); Samba 4.17 the
    same. smbsrv renamed "b" to "A" beside the link "a", so two names differing only in case named one file."""
    for side, client, base in _both(runner):
        file_id = client.open(f"{base}\\b", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                              disposition=b.FILE_CREATE)
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION, b.rename_info(f"{base}\\a"))
        assert b.status_name(response.status) == "STATUS_SUCCESS", side.name
        for name, replace, expected in (("A", True, "STATUS_ACCESS_DENIED"), ("a", False, "STATUS_OBJECT_NAME_COLLISION")):
            response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                       b.rename_info(f"{base}\\{name}", replace))
            assert b.status_name(response.status) == expected, (side.name, name)
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION, b.rename_info(f"{base}\\B"))
        assert b.status_name(response.status) == "STATUS_SUCCESS", side.name  # its own name in another case
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert sorted(p.name for p in (side.share_dir / base).iterdir()) == ["B", "a"], side.name


def test_overwrite_applies_the_ea_context(runner: Runner) -> None:
    """An overwriting CREATE with an ExtA context sets those EAs on the file, beside the ones it had (Samba
    4.17's set_ea on FILE_WAS_OVERWRITTEN; [MS-SMB2] 2.2.13.2.1). smbsrv applied ExtA to new files only."""
    for side, client, base in _both(runner):
        contexts = b.create_context(b"ExtA", b.full_ea_list(((b"First", b"1"),)))
        client.close_file(b.create_file_id(client.request(b.SMB2_CREATE, b.create_body(
            f"{base}\\f", desired_access=b.GENERIC_WRITE | 0x10, disposition=b.FILE_CREATE, contexts=contexts)).body))
        contexts = b.create_context(b"ExtA", b.full_ea_list(((b"Second", b"2"),)))
        response = client.request(b.SMB2_CREATE, b.create_body(
            f"{base}\\f", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | 0x10, disposition=b.FILE_OVERWRITE,
            contexts=contexts))
        assert b.status_name(response.status) == "STATUS_SUCCESS", side.name
        file_id = b.create_file_id(response.body)
        listed = client.query_info(file_id, b.SMB2_0_INFO_FILE, 15)  # FileFullEaInformation
        assert b.status_name(listed.status) == "STATUS_SUCCESS", side.name
        assert b"Second" in b.output_buffer(listed), side.name
        assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_rename_into_an_open_directory_the_user_may_not_write_is_access_denied(runner: Runner) -> None:
    """A rename into a directory the user may not add names to, while another user has that directory open with
    DELETE: the open of the target directory checks access before sharing ([MS-FSA] 2.1.5.1.2.1 before the
    sharing check of 2.1.5.1.2), so ACCESS_DENIED, as when nobody has it open (Samba 4.17's
    check_parent_access_fsp). smbsrv answered SHARING_VIOLATION, telling the user the directory was open."""
    for side, owner, base in _both(runner):
        member = side.clients[2]  # the second user, in the owner's group
        (side.share_dir / base).chmod(0o775)
        for options in (0, b.FILE_DIRECTORY_FILE):
            name = "dir" if options else "file"
            moved = member.open(f"{base}\\{name}", desired_access=b.GENERIC_READ | b.DELETE,
                                disposition=b.FILE_CREATE, options=options)
            target = owner.open(f"{base}\\d{name}", desired_access=b.GENERIC_READ | b.DELETE,
                                disposition=b.FILE_CREATE, options=b.FILE_DIRECTORY_FILE)  # 0755, the owner's
            response = member.set_info(moved, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                       b.rename_info(f"{base}\\d{name}\\x"))
            assert b.status_name(response.status) == "STATUS_ACCESS_DENIED", (side.name, name)
            assert owner.close_file(target) == b.STATUS_SUCCESS
            response = member.set_info(moved, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                       b.rename_info(f"{base}\\d{name}\\x"))
            assert b.status_name(response.status) == "STATUS_ACCESS_DENIED", (side.name, name)
            assert member.close_file(moved) == b.STATUS_SUCCESS


def test_directory_with_write_and_search_but_no_read_grants_no_listing(runner: Runner) -> None:
    """SECURITY. A group member of a 0733 directory (-wx) asks for MAXIMUM_ALLOWED: smbsrv grants what the mode
    maps to (0x1201F6: add file, add subdirectory, traverse, attributes; never FILE_LIST_DIRECTORY) and refuses a
    listing through that handle; FILE_LIST_DIRECTORY itself is ACCESS_DENIED on both servers. Samba 4.17 refuses
    the MAXIMUM_ALLOWED open (it reopens the directory O_RDONLY, allowed.py)."""
    for side, owner, base in _both(runner):
        member = side.clients[2]  # the second user, in the owner's group
        owner.close_file(owner.open(f"{base}\\d", desired_access=b.GENERIC_READ, disposition=b.FILE_CREATE,
                                    options=b.FILE_DIRECTORY_FILE))
        (side.share_dir / base / "d").chmod(0o733)
        response = member.create(f"{base}\\d", desired_access=b.FILE_READ_DATA, options=b.FILE_DIRECTORY_FILE)
        assert b.status_name(response.status) == "STATUS_ACCESS_DENIED", side.name
        response = member.create(f"{base}\\d", desired_access=b.MAXIMUM_ALLOWED, options=b.FILE_DIRECTORY_FILE)
        if side is runner.samba:
            assert b.status_name(response.status) == "STATUS_ACCESS_DENIED", side.name
            continue
        assert b.status_name(response.status) == "STATUS_SUCCESS", side.name
        file_id = b.create_file_id(response.body)
        access = member.query_info(file_id, b.SMB2_0_INFO_FILE, 8)  # FileAccessInformation
        assert struct.unpack_from("<I", b.output_buffer(access), 0)[0] == 0x1201F6, side.name
        listing = member.query_directory(file_id)
        assert b.status_name(listing.status) == "STATUS_ACCESS_DENIED", side.name
        assert member.close_file(file_id) == b.STATUS_SUCCESS


def test_delete_on_close_without_delete_is_invalid_parameter(runner: Runner) -> None:
    """FILE_DELETE_ON_CLOSE in a request without DELETE: STATUS_INVALID_PARAMETER for an existing file and a new
    one (Samba 4.17, bug 13358: Windows' answer); smbsrv answered ACCESS_DENIED. Nothing is created."""
    for side, client, base in _both(runner):
        client.close_file(client.open(f"{base}\\f", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
        for name, disposition in (("f", b.FILE_OPEN), ("new", b.FILE_CREATE)):
            response = client.create(f"{base}\\{name}", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                     disposition=disposition, options=b.FILE_DELETE_ON_CLOSE)
            assert b.status_name(response.status) == "STATUS_INVALID_PARAMETER", (side.name, name)
        assert not (side.share_dir / base / "new").exists(), side.name


# -- named streams (python -m tests.differential.run --streams) ----------------------------------------------

def test_delete_on_close_of_a_stream_of_a_read_only_file_is_cannot_delete(runner: Runner) -> None:
    """FILE_DELETE_ON_CLOSE on "f:s" when f is READONLY: CANNOT_DELETE, as for f itself ([MS-FSA] 2.1.5.1.2.1
    checks File.FileAttributes; Samba 4.17); a create of "g:s" with READONLY, making g READONLY, the same
    ([MS-FSA] 2.1.5.1.1). smbsrv opened both (differential seeds 2892, 1298 of --streams)."""
    for side, client, base in _both(runner):
        client.close_file(client.open(f"{base}\\f:s", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE,
                                      file_attributes=b.FILE_ATTRIBUTE_READONLY))
        response = client.create(f"{base}\\f:s", desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                                 disposition=b.FILE_OPEN, options=b.FILE_DELETE_ON_CLOSE)
        assert b.status_name(response.status) == "STATUS_CANNOT_DELETE", side.name
        response = client.create(f"{base}\\g:s", desired_access=b.DELETE | b.GENERIC_WRITE,
                                 disposition=b.FILE_CREATE, options=b.FILE_DELETE_ON_CLOSE,
                                 file_attributes=b.FILE_ATTRIBUTE_READONLY)
        assert b.status_name(response.status) == "STATUS_CANNOT_DELETE", side.name


def test_data_stream_name_with_directory_file_is_not_a_directory(runner: Runner) -> None:
    """"f::$DATA" names f's data stream, never a directory: with FILE_DIRECTORY_FILE it is NOT_A_DIRECTORY for
    FILE_OPEN and FILE_CREATE alike (Samba 4.17); smbsrv answered FILE_CREATE with the name collision
    (differential seed 298 of --streams)."""
    for side, client, base in _both(runner):
        client.close_file(client.open(f"{base}\\f", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
        for disposition in (b.FILE_OPEN, b.FILE_CREATE):
            response = client.create(f"{base}\\f::$DATA", desired_access=b.FILE_READ_ATTRIBUTES,
                                     disposition=disposition, options=b.FILE_DIRECTORY_FILE)
            assert b.status_name(response.status) == "STATUS_NOT_A_DIRECTORY", (side.name, disposition)


def test_stream_renamed_to_a_path(runner: Runner) -> None:
    """A stream's rename target that is a path ("dir\\f:v"): Samba 4.17 renames the stream (and would move it to
    another file g for "dir\\g:v"); smbsrv answers SHARING_VIOLATION, Windows' answer for a path with a stream in
    it (smbtorture smb2.streams.rename2), and INVALID_PARAMETER for one without ([MS-FSA] 2.1.5.15.12: a
    stream's new name begins with ':'). docs/streams.md lists the difference (differential seed 220 of
    --streams)."""
    expected = {"samba": ("STATUS_SUCCESS", "STATUS_INVALID_PARAMETER"),
                "smbsrv": ("STATUS_SHARING_VIOLATION", "STATUS_INVALID_PARAMETER")}
    for side, client, base in _both(runner):
        file_id = client.open(f"{base}\\f:s", desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                              disposition=b.FILE_CREATE)
        answers = tuple(b.status_name(client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                                      b.rename_info(target)).status)
                        for target in (f"{base}\\f:v", f"{base}\\g"))
        assert answers == expected[side.name], side.name
        assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_link_over_a_file_whose_stream_is_open_keeps_it(runner: Runner) -> None:
    """A stream's open is an open of its file: FileLinkInformation with ReplaceIfExists onto "d" while "d:s" is
    open (another connection, sharing all) is refused and d keeps its stream ([MS-FSA] 2.1.5.15.6: ACCESS_DENIED,
    which smbsrv answers for an open file; Samba 4.17: COLLISION, after removing d). smbsrv replaced d
    (differential seed 101776 of --streams)."""
    for side, client, base in _both(runner):
        other = side.clients[1]
        stream = other.open(f"{base}\\d:s", desired_access=b.GENERIC_WRITE | b.DELETE, disposition=b.FILE_CREATE)
        assert other.write(stream, 0, b"kept").status == b.STATUS_SUCCESS
        file_id = client.open(f"{base}\\a", desired_access=b.FILE_APPEND_DATA, disposition=b.FILE_CREATE)
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION,
                                   b.rename_info(f"{base}\\d", True))
        assert b.status_name(response.status) != "STATUS_SUCCESS", side.name
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert other.close_file(stream) == b.STATUS_SUCCESS
        if side is runner.smbsrv:  # Samba 4.17 removes the target before it gives up (allowed.py, links)
            assert os.getxattr(side.share_dir / base / "d", "user.DosStream.s:$DATA") == b"kept\0"


def test_attribute_only_stream_open_does_not_block_delete_of_its_file(runner: Runner) -> None:
    """An open with neither data nor DELETE access (FILE_READ_ATTRIBUTES, READ_CONTROL) takes no part in sharing
    ([MS-FSA] 2.1.5.1.2.2), also when it is a stream's: with "d:s" open so, sharing nothing, an open of d with
    DELETE succeeds (Samba 4.17). smbsrv answered SHARING_VIOLATION (differential seeds 104625, 200729 of
    --streams)."""
    for side, client, base in _both(runner):
        for access in (b.FILE_READ_ATTRIBUTES | b.FILE_WRITE_ATTRIBUTES, b.READ_CONTROL):
            stream = client.open(f"{base}\\d:s", desired_access=access, disposition=b.FILE_OPEN_IF, share_access=0)
            response = client.create(f"{base}\\d", desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                                     share_access=b.FILE_SHARE_ALL)
            assert b.status_name(response.status) == "STATUS_SUCCESS", (side.name, hex(access))
            assert client.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
            assert client.close_file(stream) == b.STATUS_SUCCESS


def test_delete_pending_stream_is_delete_pending_before_access(runner: Runner) -> None:
    """A delete-pending stream refuses opens with DELETE_PENDING before any access check, as a delete-pending
    file does (allowed.py: fastfat tests the pending delete first; smbsrv does for files): another user who may
    not write the file overwrites "a:s" (MAXIMUM_ALLOWED, FILE_OVERWRITE_IF) after its owner made it
    delete-pending: Samba 4.17 DELETE_PENDING (with GENERIC_WRITE asked it checks the access first). smbsrv
    answered ACCESS_DENIED (differential seeds 502865, 604020 of --streams)."""
    for side, client, base in _both(runner):
        stranger = side.clients[3]  # ops.USERS[3]: the user in no group of the owner's
        stream = client.open(f"{base}\\a:s", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                             disposition=b.FILE_CREATE)
        response = client.set_info(stream, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
        assert response.status == b.STATUS_SUCCESS, side.name
        response = stranger.create(f"{base}\\a:s", desired_access=b.MAXIMUM_ALLOWED, disposition=b.FILE_OVERWRITE_IF)
        assert b.status_name(response.status) == "STATUS_DELETE_PENDING", side.name
        assert client.close_file(stream) == b.STATUS_SUCCESS


def test_stream_locks_do_not_conflict_with_the_files(runner: Runner) -> None:
    """Byte-range locks belong to a stream ([MS-FSA] 2.1.5.7: Open.Stream's ByteRangeLockList; docs/streams.md):
    an exclusive lock on "a:s" [2, 7) leaves the same range of a itself free, through "a" and "a::$DATA" alike
    (Samba 4.17). smbsrv answered LOCK_NOT_GRANTED (differential seeds 1104108, 1504268 of --streams)."""
    flags = b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
    for side, client, base in _both(runner):
        stream = client.open(f"{base}\\a:s", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                             disposition=b.FILE_CREATE)
        assert client.request(b.SMB2_LOCK, b.lock_body(stream, [(2, 5, flags)])).status == b.STATUS_SUCCESS
        for name in ("a", "a::$DATA"):
            file_id = client.open(f"{base}\\{name}", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
            response = client.request(b.SMB2_LOCK, b.lock_body(file_id, [(2, 5, flags)]))
            assert b.status_name(response.status) == "STATUS_SUCCESS", (side.name, name)
            assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert client.close_file(stream) == b.STATUS_SUCCESS


def test_file_create_of_a_delete_pending_stream_is_a_collision(runner: Runner) -> None:
    """FILE_CREATE of a name that exists is OBJECT_NAME_COLLISION also while it is delete-pending (both servers
    for a file; Samba 4.17 for a stream), and a FILE_OPEN of it DELETE_PENDING. smbsrv answered FILE_CREATE of
    the stream with DELETE_PENDING (differential seed 1700799 of --streams)."""
    for side, client, base in _both(runner):
        stream = client.open(f"{base}\\a:s", desired_access=b.GENERIC_ALL, disposition=b.FILE_OPEN_IF)
        response = client.set_info(stream, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
        assert response.status == b.STATUS_SUCCESS, side.name
        for disposition, expected in ((b.FILE_CREATE, "STATUS_OBJECT_NAME_COLLISION"),
                                      (b.FILE_OPEN, "STATUS_DELETE_PENDING")):
            response = client.create(f"{base}\\a:s", desired_access=b.FILE_READ_DATA, disposition=disposition)
            assert b.status_name(response.status) == expected, (side.name, disposition)
        assert client.close_file(stream) == b.STATUS_SUCCESS
