"""A current cifs.ko (Debian unstable's kernel, 7.x) against smbsrv with its default options: what the 6.1 suites
cannot show. One guest boot runs guest/modern_suite.sh; the host then checks the share.

- POSIX mounts work with the file type in PosixMode bits 12-15 (the default, posix_file_type_bits = true):
  server-made FIFOs, sockets and devices show as p, s, c, b with their device numbers; owners and groups come
  from the S-1-22 SIDs; chmod goes through the S-1-5-88-3 ACE.
- Client-made special files and symlinks (mkfifo, mknod, ln -s) are reparse points set by the client
  (FSCTL_SET_REPARSE_POINT on a new file): on the server they stay regular files with the opaque blob in the
  `user.smbsrv.reparse` xattr, never real FIFOs, devices or symlinks, and the server never follows them.
- Without POSIX, IO_REPARSE_TAG_NFS special files and IO_REPARSE_TAG_SYMLINK links read back as the same types
  (reparse=nfs and reparse=wsl mounts, symlink=native); WSL character and block devices read back with their
  device numbers, which travel in the $LXDEV extended attribute that the server keeps byte for byte.

Run: `pytest -m kernel tests/kernel/test_cifs_modern.py` (root; the first run downloads ~125 MB of kernel).
"""

from __future__ import annotations

import os
import stat
import struct
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.image import SID, VmImage, build_image
from tests.kernel.kernel_log import assert_no_kernel_errors
from tests.kernel.servers import smbsrv_available, smbsrv_server_with_config
from tests.kernel.test_cifs_extra import ExtraShares, prepare_extra_shares
from tests.kernel.vm import GuestResult, run_guest

pytestmark = pytest.mark.kernel

GUEST_SCRIPT = Path(__file__).resolve().parent / "guest" / "modern_suite.sh"
GUEST_TIMEOUT_S = 600.0
REPARSE_XATTR = "user.smbsrv.reparse"
EA_XATTR = "user.smbsrv.eas"  # where the server keeps a file's EAs (README: one xattr per file)
STEPS = (
    "posix/mount", "posix/server_objects", "posix/client_objects", "posix/chmod", "posix/umount",
    "nfs/mount", "nfs/server_objects", "nfs/umount",
    "mknod/nfs/create", "mknod/nfs/read_back", "mknod/wsl/create", "mknod/wsl/read_back",
    "escape/not_followed",
)


class ModernRun:
    def __init__(self, result: GuestResult, shares: ExtraShares, server_log: str) -> None:
        self.result = result
        self.shares = shares
        self.server_log = server_log


@pytest.fixture(scope="module")
def modern_run() -> Iterator[ModernRun]:
    if os.geteuid() != 0:
        pytest.fail("the cifs.ko guest tests need root (network namespaces, apt-get)")
    if not smbsrv_available():
        pytest.fail("`python -m smbsrv serve --help` fails: the smbsrv server is not usable")
    image: VmImage = build_image(suite=SID)
    with tempfile.TemporaryDirectory(prefix="smbsrv-kernel-modern-") as scratch:
        shares = prepare_extra_shares(Path(scratch))
        with smbsrv_server_with_config(shares.base, shares.config_toml(), shares.share) as server:
            result = run_guest(GUEST_SCRIPT.read_text(), server.port, GUEST_TIMEOUT_S, env=server.guest_env(),
                               image=image)
            server_log = server.log_tail(3000)
        marks = result.guest_marks_s
        print(f"\n[kernel] {image.kernel_version} modern suite: wall {result.wall_s:.1f}s, booted at "
              f"{marks.get('BOOTED', -1):.1f}s, {sum(result.steps.values())}/{len(result.steps)} steps passed",
              file=sys.stderr)
        yield ModernRun(result, shares, server_log)


def test_guest_finished(modern_run: ModernRun) -> None:
    result = modern_run.result
    assert not result.timed_out, "guest timed out; console tail:\n" + result.output[-3000:]
    assert "SMBTEST-SUITE-DONE" in result.output, "suite did not finish; console tail:\n" + result.output[-3000:]
    assert set(result.steps) == set(STEPS), sorted(set(result.steps) ^ set(STEPS))


@pytest.mark.parametrize("step", STEPS)
def test_guest_step(modern_run: ModernRun, step: str) -> None:
    steps = modern_run.result.steps
    assert step in steps, f"{step} never reported (guest stopped early?)"
    assert steps[step], (f"FAIL {step}\n" + "\n".join(modern_run.result.failure_logs.get(step, []))
                         + "\nserver log tail:\n" + modern_run.server_log)


@pytest.mark.parametrize("directory", ["pwork", "rnfs", "rwsl"])
def test_client_made_objects_stay_opaque_on_the_server(modern_run: ModernRun, directory: str) -> None:
    """The server stores what the client set and makes nothing of it: no real FIFO, device or symlink."""
    base = modern_run.shares.share / directory
    for name in ("fifo", "chr", "blk"):
        st = os.lstat(base / name)
        assert stat.S_ISREG(st.st_mode), f"{directory}/{name} became {stat.filemode(st.st_mode)} on the server"
        assert os.getxattr(base / name, REPARSE_XATTR, follow_symlinks=False), f"{directory}/{name}: no blob"
        # Never 07777 cut down by the share mask: cifs.ko sends ACL_NO_MODE for these creates.
        assert stat.S_IMODE(st.st_mode) & 0o7000 == 0, f"{directory}/{name}: {oct(st.st_mode)}"
    link = base / "link"
    assert not link.is_symlink() and stat.S_ISREG(os.lstat(link).st_mode), f"{directory}/link is a real symlink"


def test_wsl_device_numbers_are_stored_as_eas(modern_run: ModernRun) -> None:
    """The $LXDEV EA that cifs.ko (reparse=wsl) set on each device, major and minor as two little-endian 32-bit
    numbers (WSL keeps them outside the reparse buffer), is in the file's EA xattr."""
    base = modern_run.shares.share / "rwsl"
    for name, (major, minor) in (("chr", (1, 3)), ("blk", (7, 5))):
        stored = os.getxattr(base / name, EA_XATTR, follow_symlinks=False)
        assert b"$LXDEV" in stored and struct.pack("<II", major, minor) in stored, (name, stored.hex())


def test_posix_modes_on_the_server(modern_run: ModernRun) -> None:
    work = modern_run.shares.share / "pwork"
    assert stat.S_IMODE(os.stat(work / "file").st_mode) == 0o604
    assert stat.S_IMODE(os.stat(work / "dir").st_mode) == 0o711


def test_nothing_outside_the_share_reached_the_guest(modern_run: ModernRun) -> None:
    output = modern_run.result.output
    assert modern_run.shares.marker not in output
    shown = [line for line in output.splitlines() if line.startswith("SHOW cat-")]
    assert len(shown) == 4, shown


def test_no_cifs_errors_in_kernel_log(modern_run: ModernRun) -> None:
    assert_no_kernel_errors(modern_run.result.dmesg, "smbsrv")
