"""The POSIX semantics sweep on a default `vers=3.1.1` mount (no posix), smbsrv against Samba 4.17.

Most Linux users mount without `posix`; for that mode Samba 4.17 is the yardstick. One boot of Debian unstable's
kernel runs tests/kernel/posixcheck.c three times (guest/windows_sweep.sh): in a directory of the guest's tmpfs,
on a mount of smbsrv and on a mount of Samba 4.17, with the options of the posix sweep minus `posix` (no leases,
actimeo=0, uid=/gid=), both servers serving the same non-root account from the same kind of share directory.
Each check is one test: smbsrv's line must equal Samba's, except for the differences below; for each of them
the test also pins whether smbsrv's line is tmpfs's (where it is, smbsrv is closer to Linux than Samba).
What both servers show alike but tmpfs does not (72 checks: modes from cifs.ko's file_mode/dir_mode, no chmod,
case-insensitive names, SMB lock semantics, Windows rename and delete rules, ...) is only checked to stay alike.

The boot takes about 33 s of wall time here with the two cores shared (load 4): sweeps smbsrv 16 s, Samba 11 s,
tmpfs 0.5 s; the first 3 s are the boot. Run at once on two guest CPUs they took longer (46 s).
Run: `pytest -m kernel tests/kernel/test_cifs_sweep_windows_semantics.py` (root; the first run downloads the
kernel).
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
from tests.kernel.kernel_log import check_kernel_log, format_lines
from tests.kernel.netns import TcpRelay
from tests.kernel.servers import samba_server, smbsrv_available, smbsrv_server
from tests.kernel.test_cifs_posix_sweep import CHECKS, parse_checks
from tests.kernel.vm import GuestResult, run_guest

pytestmark = pytest.mark.kernel

GUEST_SCRIPT = Path(__file__).resolve().parent / "guest" / "windows_sweep.sh"
GUEST_TIMEOUT_S = 420.0
STEPS = ("sweep/tmpfs", "sweep/mount-smbsrv", "sweep/smbsrv", "sweep/mount-samba", "sweep/samba")
RUNS = ("tmpfs", "smbsrv", "samba")

# Printed alike for both servers during the sweep: cifs.ko found a directory inode that still has a dentry
# under another name (inode.c cifs_find_inode marks CIFS_FATTR_INO_COLLISION for a directory with aliases) and
# stops using server inode numbers on that mount.
_INODE_COLLISION = re.compile(
    r"CIFS: VFS: (Inode number collision detected|Autodisabling the use of server inode numbers on \S+|"
    r"The server doesn't seem to support them properly or the files might be on different servers \(DFS\)|"
    r"Hardlinks will not be recognized on this mount\. Consider mounting with the \"noserverino\" option to "
    r"silence this message\.)$"
)

_NO_REPARSE = ("Samba 4.17 stores no reparse points (source3/modules/util_reparse.c fsctl_set_reparse_point "
               "answers NT_STATUS_NOT_A_REPARSE_POINT), so cifs.ko's symlink(2)/mknod(2), which set one, fail "
               "with EOPNOTSUPP and what uses the object finds nothing; smbsrv keeps them")
_NO_REPARSE_MODE = (_NO_REPARSE + "; the mode is cifs.ko's file_mode (0755) on a non-POSIX mount, as for every "
                    "file, not tmpfs's")
# check -> (smbsrv's line, Samba's line, why they differ). None: no line (the object does not exist).
DIFFERENCES: dict[str, tuple[str | None, str | None, str]] = {
    "readdir_d_type_fifo": ("0", None, _NO_REPARSE + "; smbsrv lists the FIFO with the reparse tag cifs.ko gave "
                            "it (fscc/directory.py _ea_size_field, [MS-FSCC] 2.4.17), and for the NFS tag cifs.ko "
                            "needs the reparse data to know the type (readdir.c cifs_fill_common_info): DT_UNKNOWN"),
    "readdir_d_type_link": ("10", None, _NO_REPARSE),
    "symlink_create": ("ok", "EOPNOTSUPP", _NO_REPARSE),
    "symlink_readlink": ("ok s_target", "ENOENT", _NO_REPARSE),
    "symlink_lstat": ("symlink 0755 size=8", "ENOENT size=-1", _NO_REPARSE_MODE),
    "symlink_follow": ("pointed", "ENOENT", _NO_REPARSE),
    "symlink_existing": ("EEXIST", "EOPNOTSUPP", _NO_REPARSE),
    "symlink_open_nofollow": ("ELOOP", "ENOENT", _NO_REPARSE),
    "symlink_dangling_lstat": ("symlink 0755", "ENOENT", _NO_REPARSE_MODE),
    "symlink_dangling_creat": ("ok target=exists", "ok target=ENOENT", _NO_REPARSE),
    "symlink_loop_open": ("ELOOP", "ENOENT", _NO_REPARSE),
    "symlink_loop_stat": ("ELOOP", "ENOENT", _NO_REPARSE),
    "symlink_to_dir_walk": ("inner", "ENOENT", _NO_REPARSE),
    "symlink_relative_up": ("pointed", "ENOENT", _NO_REPARSE),
    "symlink_rmdir": ("ENOTDIR", "ENOENT", _NO_REPARSE),
    "symlink_unlink": ("ok target=exists", "ENOENT target=exists", _NO_REPARSE),
    "symlink_chmod_follows": ("ok dir 0755", "ENOENT dir 0755",
                              _NO_REPARSE + "; chmod sends no mode on a non-POSIX mount (dir_mode 0755)"),
    "symlink_long_target": ("ok 1023", "ENOENT -1", _NO_REPARSE),
    "utimensat_symlink_nofollow": ("EOPNOTSUPP", "ENOENT",
                                   _NO_REPARSE + "; smbsrv: as on the posix mount (test_cifs_posix_sweep.py)"),
    "xattr_on_symlink_nofollow": ("EPERM", "ENOENT", _NO_REPARSE),
    "mkfifo": ("ok fifo 0755", "EOPNOTSUPP ENOENT", _NO_REPARSE_MODE),
    "mkfifo_existing": ("EEXIST", "EOPNOTSUPP", _NO_REPARSE),
    "mknod_fifo": ("ok fifo 0755", "EOPNOTSUPP ENOENT", _NO_REPARSE_MODE),
    "fifo_io": ("ok pipe", "ENOENT", _NO_REPARSE),
    "fifo_unlink": ("ok", "ENOENT", _NO_REPARSE),
    "fifo_rename": ("ok fifo 0755", "ENOENT ENOENT", _NO_REPARSE_MODE),
    "socket_bind": ("ok socket 0755", "EOPNOTSUPP ENOENT", _NO_REPARSE),
    "socket_unlink": ("ok", "ENOENT", _NO_REPARSE),
    "utimensat_sets_ctime_now": ("now", "1400000000.000000000",
                                 ("Samba 4.17 reports the last write time as ChangeTime (source3/smbd/dosmode.c "
                                  "get_change_timespec); smbsrv reports st_ctime, which utimensat sets to now")),
    "name_dos_device": ("ok listed=1 content=dos_device", "ok listed=0 content=dos_device",
                        ("Samba's \"mangled names = illegal\" lists a reserved DOS device name only by a mangled "
                         "8.3 name (mangle_hash2.c must_mangle, is_reserved_name; smbclient ls of CON and aux.txt "
                         "shows CSHOFG~F and AHY9U3~9.TXT); smbsrv lists the name, as tmpfs does")),
    "name_dos_device_ext": ("ok listed=1 content=dos_device_ext", "ok listed=0 content=dos_device_ext",
                            "as name_dos_device, for aux.txt"),
}
# The differences where smbsrv's line is tmpfs's; in the others neither server's is.
SMBSRV_AS_TMPFS = frozenset(DIFFERENCES) - {
    "readdir_d_type_fifo", "symlink_lstat", "symlink_dangling_lstat", "symlink_chmod_follows",
    "utimensat_symlink_nofollow", "mkfifo", "mknod_fifo", "fifo_rename",
}


class SweepRun:
    def __init__(self, result: GuestResult) -> None:
        self.result = result
        self.lines, self.order = parse_checks(result.output, RUNS)


@pytest.fixture(scope="module")
def sweep() -> Iterator[SweepRun]:
    if not smbsrv_available():
        pytest.fail("`python -m smbsrv serve --help` fails: the smbsrv server is not usable")
    account = serving_account()
    if account is None:
        pytest.fail("the cifs.ko guest tests need root (network namespaces, a serving account)")
    image = build_image(suite=SID)
    relays: list[TcpRelay] = []
    with tempfile.TemporaryDirectory(prefix="smbsrv-kernel-wsweep-") as scratch:
        bases = {kind: Path(scratch) / kind for kind in ("smbsrv", "samba")}
        for base in bases.values():
            (base / "share").mkdir(parents=True)
        with smbsrv_server(bases["smbsrv"], bases["smbsrv"] / "share") as server, \
                samba_server(bases["samba"], bases["samba"] / "share") as samba:

            def relay_samba_too(relay: TcpRelay) -> None:
                # run_guest relays only SERVER_PORT into the guest's namespace; Samba's port goes the same way.
                extra = TcpRelay(relay.namespace, samba.port, samba.port)
                relays.append(extra)
                extra.start()

            env = {**server.guest_env(), "SAMBA_PORT": str(samba.port), "SWEEP_UID": str(account.pw_uid),
                   "SWEEP_GID": str(account.pw_gid)}
            try:
                result = run_guest(GUEST_SCRIPT.read_text(), server.port, GUEST_TIMEOUT_S, env=env, image=image,
                                   on_relay=relay_samba_too)
            finally:
                for relay in relays:
                    relay.stop()
    CONSOLE_LOG_DIR.mkdir(parents=True, exist_ok=True)
    (CONSOLE_LOG_DIR / "windows-sweep.log").write_text(result.output)
    marks = result.guest_marks_s
    print(f"\n[kernel] {image.kernel_version} windows-semantics sweep: wall {result.wall_s:.1f}s, booted at "
          f"{marks.get('BOOTED', -1):.1f}s, steps {result.steps}", file=sys.stderr)
    yield SweepRun(result)


def test_guest_finished(sweep: SweepRun) -> None:
    result = sweep.result
    result.assert_finished()
    failed = {name: result.failure_logs.get(name) for name in result.failed_steps}
    assert set(result.steps) == set(STEPS) and not failed, (sorted(result.steps), failed)


@pytest.mark.parametrize("run", RUNS)
def test_every_check_reported_once(sweep: SweepRun, run: str) -> None:
    expected = sorted(CHECKS)
    if run == "samba":  # no symlink or FIFO to list (see DIFFERENCES)
        expected = sorted(set(CHECKS) - {"readdir_d_type_fifo", "readdir_d_type_link"})
    assert sorted(sweep.order[run]) == expected, sorted(set(sweep.order[run]) ^ set(expected))


@pytest.mark.parametrize("check", CHECKS)
def test_check_matches_samba(sweep: SweepRun, check: str) -> None:
    tmpfs, ours, samba = (sweep.lines[run].get(check) for run in RUNS)
    assert tmpfs is not None, f"{check}: no tmpfs result"
    if check in DIFFERENCES:
        expected_ours, expected_samba, reason = DIFFERENCES[check]
        assert (ours, samba) == (expected_ours, expected_samba), (
            f"{check}: smbsrv {ours!r}, Samba {samba!r}; expected the known difference "
            f"{expected_ours!r} vs {expected_samba!r} ({reason})")
        assert (ours == tmpfs) == (check in SMBSRV_AS_TMPFS), f"{check}: smbsrv {ours!r}, tmpfs {tmpfs!r}"
        return
    assert ours == samba, f"{check}: smbsrv {ours!r}, Samba {samba!r} (tmpfs {tmpfs!r})"


def test_no_cifs_errors_in_kernel_log(sweep: SweepRun) -> None:
    assert sweep.result.dmesg, "guest printed no kernel log"
    problems, _ = check_kernel_log(sweep.result.dmesg, "smbsrv")
    unexpected = [entry for entry in problems if not _INODE_COLLISION.search(entry.line)]
    assert not unexpected, "cifs.ko errors:\n" + format_lines(unexpected)
