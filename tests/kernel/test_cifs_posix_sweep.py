"""Does a `vers=3.1.1,posix` mount of smbsrv behave like a local Unix file system? One boot of Debian unstable's
kernel runs tests/kernel/posixcheck.c (a sweep of what pjdfstest and the xfstests generic tests check that one
unprivileged user can do) twice, in a directory of the guest's tmpfs and in one of the cifs mount, both as the
uid and gid the server acts as (guest/posix_sweep.sh). Each check is one test: smbsrv's result must equal
tmpfs's, except for the differences below, each of which names what causes it and pins what the mount shows.
guest/posix_sweep.sh says why the mount runs without leases and with actimeo=0, uid= and gid=. Samba 4.17, the
project's yardstick, cannot be swept: it has no SMB3 POSIX extensions (the posix mount fails with EOPNOTSUPP).
The boot takes about 11 s of wall time here (the sweep itself 6 s on the mount, 0.2 s on tmpfs).

Run: `pytest -m kernel tests/kernel/test_cifs_posix_sweep.py` (root; the first run downloads the kernel).
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import serving_account
from tests.kernel.conftest import CONSOLE_LOG_DIR
from tests.kernel.image import SID, build_image
from tests.kernel.kernel_log import assert_no_kernel_errors
from tests.kernel.servers import smbsrv_available, smbsrv_server
from tests.kernel.vm import GuestResult, run_guest

pytestmark = pytest.mark.kernel

GUEST_SCRIPT = Path(__file__).resolve().parent / "guest" / "posix_sweep.sh"
GUEST_TIMEOUT_S = 420.0
STEPS = ("sweep/tmpfs", "sweep/mount", "sweep/cifs", "sweep/umount")

# Every check posixcheck.c makes; a check added there is added here too.
_CHECK_NAMES = """
uid open_excl_existing open_excl_existing_dir open_excl_new open_trunc open_append append_two_fds open_directory_on_file
open_directory_on_dir open_dir_for_write open_creat_on_dir open_missing open_below_file
open_creat_in_missing_dir stat_file_trailing_slash stat_dir_trailing_slash creat_readonly_mode_write
open_readonly_file_for_write open_0200_for_read open_0200_for_write open_tmpfile pread_after_write
pread_past_eof pwrite_past_eof mkdir_umask_022 creat_umask_022 mkdir_umask_077 creat_umask_077
mkdir_umask_000 creat_umask_000 mkdir_umask_027 creat_umask_027 creat_mode_0755 mkdir_mode_0700
mkdir_mode_1777 chmod_file_0000 chmod_file_0400 chmod_file_0777 chmod_file_0640 chmod_file_4755
chmod_file_2755 chmod_file_1644 chmod_file_6777 chmod_dir_0700 chmod_dir_1777 chmod_dir_2755 chmod_dir_3775
chmod_dir_0555 chmod_dir_0000 setgid_dir_subdir setgid_dir_file write_clears_setuid fchmod_then_write
access_000_F_OK access_000_R_OK access_000_W_OK access_000_X_OK open_000_for_read access_0400_R_OK
access_0400_W_OK access_0644_X_OK access_0755_X_OK creat_in_0555_dir unlink_in_0555_dir stat_in_0644_dir
rename_0444_file unlink_0444_file truncate_0444_file link_0444_file unlink_0444_file_with_two_links
write_after_chmod_0444_to_0644 creat_0444_then_unlink_while_open rmdir_000_dir rename_0555_dir rmdir_0555_dir write_in_0555_dir write_past_5gib
mkdir_in_0555_dir link_into_0555_dir symlink_in_0555_dir rename_into_0555_dir rename_out_of_0555_dir
opendir_0311_dir open_known_name_in_0311_dir chmod_in_0000_dir stat_0000_dir_itself chown_self chown_other_uid chown_other_gid mkdir_existing mkdir_over_file rmdir_nonempty rmdir_file
rmdir_missing rmdir_dot unlink_dir unlink_missing dir_nlink_empty dir_nlink_two_subdirs dir_nlink_after_rmdir
rmdir_open_dir mkdir_after_rmdir_open readdir_after_churn readdir_d_type_fifo readdir_d_type_link
readdir_d_type_dir readdir_d_type_file rewinddir_sees_new_entry readdir_while_unlinking
rmdir_after_unlinking_all rename_file_over_file
rename_dir_over_empty_dir rename_dir_over_nonempty_dir rename_file_over_dir rename_dir_over_file
rename_dir_into_own_subdir rename_file_to_itself rename_dir_to_itself rename_missing rename_into_missing_dir
rename_file_below_file rename_hardlink_onto_itself rename_noreplace_existing rename_noreplace_new
rename_exchange rename_over_open_file rename_dir_with_open_file rename_open_dir rename_open_then_write rename_keeps_inode rename_across_dirs
rename_dir_across_dirs link_create link_nlink_both link_same_inode link_existing_target link_dir link_missing
link_write_other_name link_unlink_one unlink_open_file unlink_open_fstat unlink_open_io unlink_open_recreate
unlink_open_recreate_content unlink_open_after_close unlink_open_two_fds rename_over_unlinked_open
symlink_create symlink_readlink symlink_lstat symlink_follow symlink_existing symlink_open_nofollow
symlink_readlink_on_file symlink_dangling_stat symlink_dangling_lstat symlink_dangling_creat
symlink_loop_open symlink_loop_stat symlink_to_dir_walk symlink_relative_up symlink_rmdir symlink_unlink
symlink_chmod_follows symlink_long_target symlink_absolute_target symlink_rename symlink_hardlink
ftruncate_grow ftruncate_shrink ftruncate_negative truncate_path truncate_dir ftruncate_readonly_fd
sparse_write sparse_blocks sparse_hole_reads_zeros seek_data seek_hole seek_end fallocate_grow
fallocate_keep_size write_read_1mib utimensat_100ns utimensat_100ns_atime utimensat_100ns_mtime
utimensat_1ns_mtime utimensat_omit_atime utimensat_now_mtime utimensat_pre_epoch utimensat_pre_epoch_mtime
futimens futimens_mtime write_updates_mtime truncate_updates_mtime creat_updates_dir_mtime
unlink_updates_dir_mtime utimensat_0444_own_file utimensat_now_0444_own_file utimensat_symlink_nofollow utimensat_sets_ctime_now name_backslash name_colon
name_star name_question name_quote name_less name_greater name_pipe name_trailing_dot name_trailing_space
name_leading_space name_control_char name_newline name_utf8 name_invalid_utf8 name_dos_device
name_dos_device_ext name_stream_syntax case_distinct_create case_distinct_content case_lookup_other_case
case_lookup_wrong_case case_rename_case_only case_mkdir_other_case name_255_bytes name_256_bytes
stat_256_bytes mkdir_256_bytes name_255_bytes_utf8 name_256_bytes_utf8 deep_path mkfifo mkfifo_existing
mknod_fifo mknod_chr_unprivileged mknod_reg fifo_io fifo_unlink fifo_rename socket_bind socket_unlink
mmap_write_read_other_fd write_seen_in_mmap copy_file_range fsync fdatasync sync_file_range fsync_dir statfs statfs_sane
statfs_namelen xattr_set xattr_get xattr_get_missing xattr_create_existing xattr_replace_missing xattr_case xattr_list xattr_on_dir xattr_on_symlink_nofollow xattr_3000_bytes
xattr_empty_value
xattr_remove xattr_remove_missing fcntl_same_process_two_fds fcntl_child_conflicts fcntl_child_other_range
fcntl_unlock fcntl_close_other_fd_releases fcntl_getlk_own fcntl_read_lock_child_write fcntl_upgrade_read_to_write
fcntl_downgrade_write_to_read fcntl_unlock_middle_splits fcntl_lock_past_eof_and_1gib fcntl_whole_file_lock flock_convert
ofd_lock_two_fds
flock_two_fds flock_shared_two_fds flock_dup_shares_lock flock_after_close fcntl_lock_is_advisory done
"""
CHECKS = tuple(_CHECK_NAMES.split())

# check -> (what the cifs mount of smbsrv shows, why it cannot show what tmpfs does): what SMB cannot express,
# what cifs.ko itself does (with the place in fs/smb/client/ or the server log that shows it), and one server
# policy. Never a server bug. Checked against cifs.ko 7.2 (Debian unstable) on 2026-12-07.
_SET_ID = ("server policy: a POSIX chmod keeps the permission bits, the sticky bit and a directory's setgid, never "
           "setuid or a file's setgid, so a client cannot plant set-id programs on the server (fs/nt_acl.py "
           "_chmod_bits; Samba keeps 0777 only)")
_ATIME = ("cifs.ko: cifs_fattr_to_inode never lets atime be earlier than mtime (\"we do not want atime to be less "
          "than mtime, it broke some apps\"); the server stores and reports the atime that was set")
_LOCKS = ("SMB2 byte-range locks belong to an open, are not re-entrant and are not a process's ([MS-SMB2] "
          "3.3.5.14, [MS-FSA] 2.1.5.7); cifs.ko turns STATUS_LOCK_NOT_GRANTED into EACCES")
_NO_MODE = ("cifs.ko creates special files with ACL_NO_MODE (smb2inode.c smb2_create_reparse_inode), so the mode "
            "asked for never reaches the server, which gives the Windows default 0644")
DIFFERENCES: dict[str, tuple[str, str]] = {
    "chmod_file_4755": ("ok file 0755", _SET_ID),
    "chmod_file_2755": ("ok file 0755", _SET_ID),
    "chmod_file_6777": ("ok file 0777", _SET_ID),
    "chown_self": ("EINVAL", ("cifs.ko refuses chown on a POSIX mount before sending anything (no SET_INFO reaches "
                             "the server, not even for root; protocol-notes 11.4)")),
    "rewinddir_sees_new_entry": ("0", ("cifs.ko readdir.c find_cifs_entry answers a rewind from the listing it "
                                      "holds unless the directory inode was invalidated; no QUERY_DIRECTORY is sent")),
    "rename_exchange": ("EINVAL", ("cifs.ko cifs_rename2: flags other than RENAME_NOREPLACE are EINVAL; SMB has no "
                                  "exchanging rename")),
    "rename_over_open_file": ("ok fd=old name=old",
                              ("cifs.ko serves the next open of the name from the handle it still holds on the "
                              "replaced file: no CREATE reaches the server after the rename (server log), whose "
                              "file under that name holds the new content")),
    "utimensat_100ns_atime": ("1100000000.987654300", _ATIME),
    "utimensat_omit_atime": ("atime=1200000000.000000000 mtime=1200000000.000000000", _ATIME),
    "utimensat_now_mtime": ("atime=now mtime=now", _ATIME),
    "utimensat_1ns_mtime": ("1100000001.000000000", "SMB times are FILETIMEs, 100 ns units ([MS-DTYP] 2.3.3)"),
    "utimensat_symlink_nofollow": ("EOPNOTSUPP", ("cifs.ko sets a symlink's times through an open without "
                                                 "FILE_OPEN_REPARSE_POINT; the server, which never follows a link, "
                                                 "answers STATUS_STOPPED_ON_SYMLINK (server log)")),
    "name_invalid_utf8": ("ok listed=0 content=invalid_utf8",
                          "names travel as UTF-16 ([MS-SMB2] 2.2.13): bytes that are not UTF-8 do not come back"),
    "mknod_fifo": ("ok fifo 0644", _NO_MODE),
    "socket_bind": ("ok socket 0644", _NO_MODE),
    "xattr_create_existing": ("ok", ("SMB sets EAs without create/replace semantics ([MS-FSCC] 2.4.15); cifs.ko "
                                    "drops XATTR_CREATE")),
    "xattr_replace_missing": ("ok", "as xattr_create_existing, for XATTR_REPLACE"),
    "xattr_empty_value": ("ok size=-1", ("an EA whose value is empty is removed ([MS-FSA] 2.1.5.15.5: only an Ea "
                                        "with a non-zero EaValueLength is added)")),
    "fcntl_same_process_two_fds": ("ok EACCES", _LOCKS),
    "ofd_lock_two_fds": ("ok EACCES", _LOCKS),
    "flock_two_fds": ("ok EACCES", _LOCKS),
    "flock_dup_shares_lock": ("EACCES", _LOCKS),
    "fcntl_upgrade_read_to_write": ("ok EACCES child=locked", _LOCKS + "; an exclusive lock conflicts with the "
                                                              "same open's shared one"),
    "flock_convert": ("ok EACCES ok", _LOCKS + "; an exclusive lock conflicts with the same open's shared one"),
    "fcntl_unlock_middle_splits": ("ok head=locked middle=locked tail=locked",
                                   ("SMB2 UNLOCK releases a range only as it was locked ([MS-FSA] 2.1.5.8), so a "
                                   "lock cannot be split; cifs.ko smb2_unlock_range sends only the locks that lie "
                                   "wholly inside the range unlocked, here none")),
}


def parse_checks(output: str, runs: tuple[str, ...]) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """The guest's `RUN CHECK NAME VALUE` lines of the given runs: each run's values by check name, and the
    names in the order they came (also used by test_cifs_sweep_windows_semantics.py)."""
    line = re.compile(rf"^({'|'.join(runs)}) CHECK (\S+) ?(.*)$")
    lines: dict[str, dict[str, str]] = {run: {} for run in runs}
    order: dict[str, list[str]] = {run: [] for run in runs}
    for raw in output.splitlines():
        match = line.match(raw.strip("\r\n\x00 "))
        if match is not None:
            run, name, value = match.groups()
            lines[run][name] = value
            order[run].append(name)
    return lines, order


class SweepRun:
    def __init__(self, result: GuestResult, server_log: str) -> None:
        self.result = result
        self.server_log = server_log
        self.lines, self.order = parse_checks(result.output, ("tmpfs", "cifs"))


@pytest.fixture(scope="module")
def sweep() -> Iterator[SweepRun]:
    if not smbsrv_available():
        pytest.fail("`python -m smbsrv serve --help` fails: the smbsrv server is not usable")
    account = serving_account()
    if account is None:
        pytest.fail("the cifs.ko guest tests need root (network namespaces, a serving account)")
    image = build_image(suite=SID)
    with tempfile.TemporaryDirectory(prefix="smbsrv-kernel-sweep-") as scratch:
        share = Path(scratch) / "share"
        share.mkdir()
        with smbsrv_server(Path(scratch), share) as server:
            env = {**server.guest_env(), "SWEEP_UID": str(account.pw_uid), "SWEEP_GID": str(account.pw_gid)}
            result = run_guest(GUEST_SCRIPT.read_text(), server.port, GUEST_TIMEOUT_S, env=env, image=image)
            server_log = server.log_tail(6000)
    CONSOLE_LOG_DIR.mkdir(parents=True, exist_ok=True)
    (CONSOLE_LOG_DIR / "posix-sweep.log").write_text(result.output)  # both runs' lines, for a side-by-side look
    marks = result.guest_marks_s
    print(f"\n[kernel] {image.kernel_version} posix sweep: wall {result.wall_s:.1f}s, booted at "
          f"{marks.get('BOOTED', -1):.1f}s, steps {result.steps}", file=sys.stderr)
    yield SweepRun(result, server_log)


def test_guest_finished(sweep: SweepRun) -> None:
    result = sweep.result
    result.assert_finished()
    failed = {name: result.failure_logs.get(name) for name in result.failed_steps}
    assert set(result.steps) == set(STEPS) and not failed, (sorted(result.steps), failed, sweep.server_log)


@pytest.mark.parametrize("run", ["tmpfs", "cifs"])
def test_every_check_reported_once(sweep: SweepRun, run: str) -> None:
    # In any order: readdir_d_type_* come in the order the directory lists its entries.
    assert sorted(sweep.order[run]) == sorted(CHECKS), sorted(set(sweep.order[run]) ^ set(CHECKS))


@pytest.mark.parametrize("check", CHECKS)
def test_check_matches_tmpfs(sweep: SweepRun, check: str) -> None:
    tmpfs, cifs = sweep.lines["tmpfs"].get(check), sweep.lines["cifs"].get(check)
    assert tmpfs is not None, f"{check}: no tmpfs result"
    if check in DIFFERENCES:
        expected, reason = DIFFERENCES[check]
        assert cifs == expected, f"{check}: cifs {cifs!r}, expected the known difference {expected!r} ({reason})"
        assert cifs != tmpfs, f"{check} now matches tmpfs ({tmpfs!r}): drop it from DIFFERENCES"
        return
    assert cifs == tmpfs, f"{check}: cifs {cifs!r}, tmpfs {tmpfs!r}"


def test_no_cifs_errors_in_kernel_log(sweep: SweepRun) -> None:
    assert_no_kernel_errors(sweep.result.dmesg, "smbsrv")
