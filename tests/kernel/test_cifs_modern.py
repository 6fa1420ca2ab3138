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
- copy_file_range(2) of a 64 MiB file is a server-side copy: no READ or WRITE reaches the server for it (counted
  in its DEBUG log), only FSCTL_SRV_COPYCHUNK_WRITE; a punched hole frees the blocks on the server and
  SEEK_DATA/SEEK_HOLE report it; FICLONE works on a share backed by a loop-mounted XFS with reflink (the blocks
  are shared on the server) and fails with EOPNOTSUPP on the ext4-backed share.

Run: `pytest -m kernel tests/kernel/test_cifs_modern.py` (root; the first run downloads ~125 MB of kernel).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import struct
import subprocess
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
    "copy/server_side", "holes/punch_and_seek", "reflink/xfs", "reflink/ext4_refused",
)
COPY_BYTES = 64 * 1024 * 1024
MIB = 1024 * 1024


class ModernRun:
    def __init__(self, result: GuestResult, shares: ExtraShares, server_log: str, full_log: str,
                 xfs_share: Path) -> None:
        self.result = result
        self.shares = shares
        self.server_log = server_log
        self.full_log = full_log  # the whole DEBUG log of the server
        self.xfs_share = xfs_share


@contextlib.contextmanager
def xfs_share(base: Path) -> Iterator[Path]:
    """A share directory on a fresh loop-mounted XFS (320 MiB image, reflink on), unmounted afterwards."""
    image, mount = base / "xfs.img", base / "xfs"
    mount.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(320 * MIB)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True, capture_output=True)
    try:
        share = mount / "share"
        share.mkdir()
        yield share
    finally:
        subprocess.run(["umount", str(mount)], check=False, capture_output=True)


def copy_shares_config(shares: ExtraShares, xfs: Path) -> str:
    """The extra shares' config with a DEBUG log (one line per request), the "copies" share (the default
    share's directory under another name, for a tree of its own) and the "xfs" share."""
    config = shares.config_toml().replace("[server]\n", '[server]\nlog_level = "DEBUG"\n', 1)
    return config + f'[shares.copies]\npath = "{shares.share}"\n[shares.xfs]\npath = "{xfs}"\n'


def prepare_copy_files(shares: ExtraShares, xfs: Path) -> None:
    (shares.share / "copysrc.bin").write_bytes(os.urandom(COPY_BYTES))
    for directory in (shares.share, xfs):
        (directory / "ref.bin").write_bytes(os.urandom(4 * MIB))


@pytest.fixture(scope="module")
def modern_run() -> Iterator[ModernRun]:
    if os.geteuid() != 0:
        pytest.fail("the cifs.ko guest tests need root (network namespaces, apt-get)")
    if not smbsrv_available():
        pytest.fail("`python -m smbsrv serve --help` fails: the smbsrv server is not usable")
    image: VmImage = build_image(suite=SID)
    with tempfile.TemporaryDirectory(prefix="smbsrv-kernel-modern-") as scratch:
        shares = prepare_extra_shares(Path(scratch))
        with xfs_share(Path(scratch)) as xfs:
            prepare_copy_files(shares, xfs)
            with smbsrv_server_with_config(shares.base, copy_shares_config(shares, xfs), shares.share) as server:
                result = run_guest(GUEST_SCRIPT.read_text(), server.port, GUEST_TIMEOUT_S,
                                   env=server.guest_env(), image=image)
                server_log = server.log_tail(3000)
                full_log = server.log_path.read_text(errors="replace")
            run = ModernRun(result, shares, server_log, full_log, xfs)
            _print_summary(image, result)
            yield run


def _print_summary(image: VmImage, result: GuestResult) -> None:
    marks = result.guest_marks_s
    print(f"\n[kernel] {image.kernel_version} modern suite: wall {result.wall_s:.1f}s, booted at "
          f"{marks.get('BOOTED', -1):.1f}s, {sum(result.steps.values())}/{len(result.steps)} steps passed",
          file=sys.stderr)


def test_guest_finished(modern_run: ModernRun) -> None:
    result = modern_run.result
    result.assert_finished()
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


# -- server-side copy, holes, clones ----------------------------------------------------------------------------

_TREE_EVENT = re.compile(r"event=tree_(?:connect|disconnect) .*share=(\S+)")
_REQUEST = re.compile(r"DEBUG smbsrv\.protocol\.connection: (\w+) mid=")


def _requests_on_share(log: str, share: str) -> list[str]:
    """The command of every request logged from the tree connect of `share` to the next tree event."""
    commands: list[str] = []
    inside = False
    for line in log.splitlines():
        tree = _TREE_EVENT.search(line)
        if tree is not None:
            if inside:
                break
            inside = "event=tree_connect " in line and tree.group(1) == share
            continue
        request = _REQUEST.search(line)
        if inside and request is not None:
            commands.append(request.group(1))
    return commands


def test_copy_file_range_is_a_server_side_copy(modern_run: ModernRun) -> None:
    """While the guest copied 64 MiB on the "copies" share, the server saw COPYCHUNK IOCTLs (16 MiB each, plus
    the resume key) and not one READ or WRITE; the copy holds the same bytes."""
    commands = _requests_on_share(modern_run.full_log, "copies")
    assert "CREATE" in commands, f"no requests logged for the copies share: {commands}"
    assert commands.count("READ") == 0 and commands.count("WRITE") == 0, commands
    assert commands.count("IOCTL") >= 1 + COPY_BYTES // (16 * MIB), commands
    share = modern_run.shares.share
    assert (share / "copydst.bin").read_bytes() == (share / "copysrc.bin").read_bytes()


def test_punched_hole_is_freed_on_the_server(modern_run: ModernRun) -> None:
    path = modern_run.shares.share / "holes.bin"
    st = os.stat(path)
    assert st.st_size == 4 * MIB
    assert st.st_blocks * 512 <= 2 * MIB + 64 * 1024, st.st_blocks  # 2 MiB of data left (plus metadata)
    with open(path, "rb") as handle:
        assert os.lseek(handle.fileno(), MIB, os.SEEK_DATA) == 3 * MIB


def test_reflink_shares_blocks_on_the_server(modern_run: ModernRun) -> None:
    """The clone made through FICLONE shares its extents with the original (FIEMAP_EXTENT_SHARED)."""
    clone = modern_run.xfs_share / "ref-clone.bin"
    assert clone.read_bytes() == (modern_run.xfs_share / "ref.bin").read_bytes()
    request = struct.pack("=QQIIII", 0, 2**64 - 1, 1, 0, 1, 0) + bytes(56)  # FIEMAP_FLAG_SYNC, one extent
    with open(clone, "rb") as handle:
        answer = fcntl.ioctl(handle.fileno(), 0xC020660B, request)  # FS_IOC_FIEMAP
    assert struct.unpack_from("=I", answer, 20)[0] == 1
    assert struct.unpack_from("=I", answer, 32 + 40)[0] & 0x2000  # FIEMAP_EXTENT_SHARED
