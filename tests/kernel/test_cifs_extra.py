"""cifs.ko (Debian's 6.1 kernel) against smbsrv: encryption, signing by default, POSIX mounts, server-side symlinks
and special files. One guest boot runs guest/extra_suite.sh with many mounts; the host prepares the shares before
it and checks the share, the console and a record of the SMB stream after it.

Setup (prepare_extra_shares): one smbsrv started from a TOML config that sets only state_dir and the shares, so
signing and encryption are the server's defaults ("required" and "desired"):

- `share`: the defaults (file type in PosixMode bits 12-15, special files as IO_REPARSE_TAG_NFS); holds owned.txt
  (0640, 4321:8765, two links, fixed times), ownedir, the symlinks rel, absin, out, dang, sub -> realdir, leak,
  leakrel and outdir (the last three point into a directory beside the share whose file holds a random marker),
  and special/ with a FIFO, a socket, a char and a block device;
- `posix61`: the same directory with posix_file_type_bits = false;
- `wsl`: another directory with the same special files, special_files = "wsl", posix_file_type_bits = false.

Between the guest and the server runs SmbStreamRecorder, a TCP relay that parses the SMB2 framing and keeps, per
connection, the negotiated dialect and cipher, which requests were signed and how much went in transform
(encrypted) frames. The seal tests read it: the guest alone cannot see which cipher was used (cifs.ko 6.1 does
not print it even with cifsFYI and dynamic debug on).

What cifs.ko 6.1 cannot do, found in this suite (evidence in brackets), and what the steps assert instead:

- PosixMode with the file type in bits 12-15 (cifs.ko 6.13 "new POSIX type encoding"): 6.1 ORs PosixMode into
  the inode mode, so `vers=3.1.1,posix` on a share with posix_file_type_bits = true (the default) fails with
  ENOTDIR [mount: "Not a directory"; dmesg "init_special_inode: bogus i_mode (50755) for inode cifs:0"]. Step
  posix/typebits_mount_refused asserts exactly that; every other POSIX step uses `posix61`.
- Owner and group from POSIX QUERY_INFO: 6.1 ignores the owner/group SIDs there (smb311_posix_info_to_fattr:
  "TODO: map uid and gid from SID") and shows the mount's uid/gid, so a fresh `stat` of a 4321:8765 file says
  0 0; the POSIX directory listing does map S-1-22-1-<uid> / S-1-22-2-<gid> [`ls -ln`: 4321 8765]. Step
  posix/stat_server_files asserts both.
- POSIX chmod (6.13, S-1-5-88-3 ACE): chmod returns 0, the cached mode falls back to file_mode (0755) and the
  server's mode is unchanged [stat after remount: 644; host: 0644].
- Reserved characters on POSIX mounts: 6.1 still applies the default `mapposix` (SFM) remapping, removed for POSIX
  mounts only in 2025, so ':' '*' '?' reach the server as U+F022, U+F021, U+F025 (round-trip through the client
  works; host sees the private-use characters). With `nomapposix` they are sent and stored as they are. '\\' is
  never remapped.
- Special files on POSIX mounts: 6.1 reports every entry with FILE_ATTRIBUTE_REPARSE_POINT as a symlink, whatever
  the tag (NFS or WSL) [stat: "symbolic link"; readlink: "Operation not supported"].
- IO_REPARSE_TAG_NFS (6.7) on non-POSIX mounts: stat fails with EOPNOTSUPP ["Operation not supported"]; with the
  WSL tags (5.10) FIFO, socket, char and block devices show as p, s, c, b, with device numbers 0, 0 (6.1 does
  not read WSL's $LXDEV EA).
- Symlinks on non-POSIX mounts show as `l---------` (6.1 gives them no permission bits); targets are right.
- Unlink of an open file: the server removes the name at the unlink's close (its listing no longer has it),
  but while the unlinked file is still open in the guest, 6.1 answers a stat of the name from its own dentry
  (no request reaches the server) and a re-create of the name fails with ENOENT; both are shown, not asserted.
  Once the file is closed, the name is reused normally.
- Rename over an open file: the rename succeeds on the server, but while the replaced file is still open in the
  guest, opening the name again is served from that old handle (no CREATE on the wire) and reads the old data;
  the suite shows that read (SHOW rename_over_open_by_name_while_open) without asserting it.
- 6.1 never shows an atime older than the mtime (cifs_fattr_to_inode: "we do not want atime to be less than
  mtime, it broke some apps"), so owned.txt's atime is set later than its mtime to be checkable.
- Right after creating a file 6.1 shows the mount's file_mode (0755) until it asks the server again; the POSIX
  steps drop caches before comparing modes.

Run: `pytest -m kernel tests/kernel/test_cifs_extra.py` (root), or by hand with the console echoed:
`python -m tests.kernel.test_cifs_extra`. Always against smbsrv (the shares use smbsrv-only options).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import secrets
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import pytest

from tests.conftest import serving_account
from tests.kernel.image import VmImage, build_image
from tests.kernel.kernel_log import assert_no_kernel_errors
from tests.kernel.servers import SHARE_NAME, RunningServer, smbsrv_server_with_config
from tests.kernel.vm import GuestResult, run_guest

pytestmark = pytest.mark.kernel

GUEST_SCRIPT = Path(__file__).resolve().parent / "guest" / "extra_suite.sh"
GUEST_TIMEOUT_S = 600.0
POSIX_SHARE = "posix61"
WSL_SHARE = "wsl"
OWNED_MTIME = 981173106  # 2001-02-03 04:05:06 UTC, as guest/extra_suite.sh expects
OWNED_ATIME = 983765106  # 2001-03-05 04:05:06 UTC: later than mtime, see the docstring
OWNER_UID, OWNER_GID = 4321, 8765
SEALED_SIZE = 4 * 1024 * 1024

# Every step guest/extra_suite.sh reports, by group; a step that never reported counts as failed.
SEAL_STEPS = ("mount", "debugdata", "write_read_4m", "ls", "umount")
SYMLINK_STEPS = ("mount", "ls_readlink", "st_size", "follow_inside", "nothing_outside", "umount")
STEP_GROUPS: dict[str, tuple[str, ...]] = {
    "sign": ("sign/plain_mount",),
    "seal": tuple(f"seal/{vers}/{name}" for vers in ("3.1.1", "3.0") for name in SEAL_STEPS),
    "posix": tuple(f"posix/{name}" for name in (
        "typebits_mount_refused", "mount", "stat_server_files", "create_stat", "case_sensitive",
        "names_mapposix", "remount_nomapposix", "names_raw", "chmod_not_supported", "unlink_open",
        "rename_over_open", "umount")),
    "symlinks": tuple(f"symlinks/{mode}/{name}" for mode in ("windows", "posix") for name in SYMLINK_STEPS),
    "special": tuple(f"special/{fmt}/{mode}/{name}" for fmt in ("wsl", "nfs") for mode in ("windows", "posix")
                     for name in ("mount", "types", "umount")),
}

# ---- the shares ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExtraShares:
    base: Path
    share: Path  # SHARE_NAME and POSIX_SHARE
    wsl: Path  # WSL_SHARE
    outside: Path  # beside the share; holds the secret the guest must never read
    marker: str

    def config_toml(self) -> str:
        # Only state_dir and the shares: signing and encryption stay at the server's defaults.
        return (
            "[server]\n"
            f'state_dir = "{self.base / "state"}"\n'
            f"[shares.{SHARE_NAME}]\n"
            f'path = "{self.share}"\n'
            f"[shares.{POSIX_SHARE}]\n"
            f'path = "{self.share}"\n'
            "posix_file_type_bits = false\n"
            f"[shares.{WSL_SHARE}]\n"
            f'path = "{self.wsl}"\n'
            'special_files = "wsl"\n'
            "posix_file_type_bits = false\n"
        )


def _make_special_files(directory: Path) -> None:
    directory.mkdir()
    os.mkfifo(directory / "fifo")
    with socket.socket(socket.AF_UNIX) as unix_socket:
        unix_socket.bind(str(directory / "sock"))
    os.mknod(directory / "chr", stat.S_IFCHR | 0o644, os.makedev(1, 3))
    os.mknod(directory / "blk", stat.S_IFBLK | 0o644, os.makedev(7, 5))
    (directory / "plain").write_text("plain\n")


def prepare_extra_shares(base: Path) -> ExtraShares:
    share, wsl = base / "share", base / "wslshare"
    outside = base / f"outside-{secrets.token_hex(4)}"
    for directory in (share, wsl, outside, base / "state"):
        directory.mkdir()
    marker = f"SECRET-MARKER-{secrets.token_hex(12)}"
    (outside / "secret").write_text(marker + "\n")

    (share / "target.txt").write_text("target-content\n")
    (share / "realdir").mkdir()
    (share / "realdir" / "inner.txt").write_text("inner-content\n")
    os.symlink("target.txt", share / "rel")
    os.symlink(share / "target.txt", share / "absin")  # absolute, inside the share
    os.symlink("/etc/passwd", share / "out")
    os.symlink("nowhere", share / "dang")
    os.symlink("realdir", share / "sub")
    os.symlink(outside / "secret", share / "leak")
    os.symlink(f"../{outside.name}/secret", share / "leakrel")
    os.symlink(outside, share / "outdir")

    owned = share / "owned.txt"
    owned.write_bytes(b"o" * 1234)
    os.link(owned, share / "owned-link.txt")
    os.chown(owned, OWNER_UID, OWNER_GID)
    os.chmod(owned, 0o640)
    os.utime(owned, (OWNED_ATIME, OWNED_MTIME))
    (share / "ownedir" / "child").mkdir(parents=True)
    os.chown(share / "ownedir", OWNER_UID, OWNER_GID)
    os.chmod(share / "ownedir", 0o751)  # others may search it: the share is served as an ordinary account

    _make_special_files(share / "special")
    _make_special_files(wsl / "special")
    return ExtraShares(base=base, share=share, wsl=wsl, outside=outside, marker=marker)


# ---- a relay that records the SMB2 stream ([MS-SMB2] 2.1, 2.2.1, 2.2.4, 2.2.41) --------------------------------

SMB2_PROTOCOL_ID = b"\xfeSMB"
SMB2_TRANSFORM_PROTOCOL_ID = b"\xfdSMB"
SMB2_FLAGS_SERVER_TO_REDIR = 0x00000001
SMB2_FLAGS_SIGNED = 0x00000008
SMB2_NEGOTIATE, SMB2_SESSION_SETUP, SMB2_CREATE, SMB2_READ, SMB2_WRITE = 0x0000, 0x0001, 0x0005, 0x0008, 0x0009
SMB2_GLOBAL_CAP_ENCRYPTION = 0x00000040
SMB2_ENCRYPTION_CAPABILITIES = 0x0002
SMB2_ENCRYPTION_AES128_CCM, SMB2_ENCRYPTION_AES128_GCM = 0x0001, 0x0002
SMB2_HEADER_SIZE = 64


@dataclasses.dataclass
class ConnectionRecord:
    index: int
    dialect: int = 0
    server_capabilities: int = 0
    cipher_id: int = 0  # from the NEGOTIATE response's encryption context (3.1.1 only)
    # Client requests in plain SMB2 frames: command -> [signed, unsigned] (first header of each frame).
    requests: dict[int, list[int]] = dataclasses.field(default_factory=dict)
    plain_bytes: dict[str, int] = dataclasses.field(default_factory=lambda: {"c2s": 0, "s2c": 0})
    transform_bytes: dict[str, int] = dataclasses.field(default_factory=lambda: {"c2s": 0, "s2c": 0})
    # Flags / EncryptionAlgorithm field of the transform headers (1: encrypted; for 3.0 it names AES-128-CCM).
    transform_flags: set[int] = dataclasses.field(default_factory=set)

    @property
    def sealed(self) -> bool:
        return self.transform_bytes["c2s"] > 0 or self.transform_bytes["s2c"] > 0

    def unsigned_after_logon(self) -> dict[int, int]:
        return {command: counts[1] for command, counts in self.requests.items()
                if counts[1] and command not in (SMB2_NEGOTIATE, SMB2_SESSION_SETUP)}

    def describe(self) -> str:
        return (f"connection {self.index}: dialect {self.dialect:#06x} cipher {self.cipher_id} "
                f"caps {self.server_capabilities:#x} plain {self.plain_bytes} transform {self.transform_bytes} "
                f"transform flags {sorted(self.transform_flags)} requests {self.requests}")


class _FrameParser:
    """Splits one direction of a connection into messages (4-byte Direct TCP header, [MS-SMB2] 2.1)."""

    def __init__(self, record: ConnectionRecord, direction: str) -> None:
        self.record = record
        self.direction = direction
        self.pending = bytearray()

    def feed(self, data: bytes) -> None:
        self.pending += data
        while len(self.pending) >= 4:
            length = int.from_bytes(self.pending[1:4], "big")
            if len(self.pending) < 4 + length:
                return
            self._message(bytes(self.pending[4:4 + length]))
            del self.pending[:4 + length]

    def _message(self, message: bytes) -> None:
        record = self.record
        protocol = message[:4]
        if protocol == SMB2_TRANSFORM_PROTOCOL_ID and len(message) >= 52:
            record.transform_bytes[self.direction] += len(message)
            record.transform_flags.add(int.from_bytes(message[42:44], "little"))
            return
        if protocol != SMB2_PROTOCOL_ID or len(message) < SMB2_HEADER_SIZE:
            return
        record.plain_bytes[self.direction] += len(message)
        command = int.from_bytes(message[12:14], "little")
        flags = int.from_bytes(message[16:20], "little")
        if self.direction == "c2s":
            counts = record.requests.setdefault(command, [0, 0])
            counts[0 if flags & SMB2_FLAGS_SIGNED else 1] += 1
        elif command == SMB2_NEGOTIATE and flags & SMB2_FLAGS_SERVER_TO_REDIR:
            self._negotiate_response(message)

    def _negotiate_response(self, message: bytes) -> None:
        body = message[SMB2_HEADER_SIZE:]
        if len(body) < 64:
            return
        record = self.record
        record.dialect = int.from_bytes(body[4:6], "little")
        context_count = int.from_bytes(body[6:8], "little")
        record.server_capabilities = int.from_bytes(body[24:28], "little")
        offset = int.from_bytes(body[60:64], "little")  # from the start of the SMB2 header
        for _ in range(context_count if record.dialect == 0x0311 else 0):
            if offset + 8 > len(message):
                return
            context_type = int.from_bytes(message[offset:offset + 2], "little")
            data_length = int.from_bytes(message[offset + 2:offset + 4], "little")
            data = message[offset + 8:offset + 8 + data_length]
            if context_type == SMB2_ENCRYPTION_CAPABILITIES and len(data) >= 4:
                record.cipher_id = int.from_bytes(data[2:4], "little")
            offset += (8 + data_length + 7) & ~7


class SmbStreamRecorder:
    """Relays 127.0.0.1:port -> 127.0.0.1:server_port and records every connection (ConnectionRecord)."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.records: list[ConnectionRecord] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self._start(self._accept_loop, "recorder-accept")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        for thread in list(self._threads):
            thread.join(timeout=10)

    def _start(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, name=name, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.server_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                record = ConnectionRecord(len(self.records))
                self.records.append(record)
                self._sockets += [client, upstream]
            self._start(self._pump, f"recorder-c2s-{record.index}", client, upstream,
                        _FrameParser(record, "c2s"))
            self._start(self._pump, f"recorder-s2c-{record.index}", upstream, client,
                        _FrameParser(record, "s2c"))

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, parser: _FrameParser) -> None:
        try:
            while data := source.recv(262144):
                sink.sendall(data)
                parser.feed(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


# ---- the boot ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ExtraRun:
    result: GuestResult
    server: RunningServer
    shares: ExtraShares
    records: list[ConnectionRecord]
    share_listing: dict[str, bytes | None]  # name -> content (None for directories) of the POSIX work dir
    share_modes: dict[str, os.stat_result]  # lstat of those names and of a few files in the share root
    sealed_md5: dict[str, str]


def _snapshot(shares: ExtraShares) -> tuple[dict[str, bytes | None], dict[str, os.stat_result], dict[str, str]]:
    listing: dict[str, bytes | None] = {}
    modes: dict[str, os.stat_result] = {}
    work = shares.share / "posix-work"
    if work.is_dir():
        for entry in os.scandir(work):
            st = entry.stat(follow_symlinks=False)
            modes[entry.name] = st
            listing[entry.name] = Path(entry.path).read_bytes() if stat.S_ISREG(st.st_mode) else None
    sealed: dict[str, str] = {}
    for name in ("sealed-3.1.1.bin", "sealed-3.0.bin", "signed-plain.bin"):
        path = shares.share / name
        if path.exists():
            modes[name] = path.stat()
            sealed[name] = hashlib.md5(path.read_bytes()).hexdigest()
    return listing, modes, sealed


@contextlib.contextmanager
def extra_boot(image: VmImage, on_line: Callable[[str], None] | None = None) -> Iterator[ExtraRun]:
    """Prepares the shares, starts smbsrv and the recorder, boots the guest once; everything is removed after."""
    with tempfile.TemporaryDirectory(prefix="smbsrv-kernel-extra-") as scratch:
        shares = prepare_extra_shares(Path(scratch))
        with smbsrv_server_with_config(shares.base, shares.config_toml(), shares.share) as server, \
                SmbStreamRecorder(server.port) as recorder:
            env = {
                **server.guest_env(),
                "POSIX_SHARE": POSIX_SHARE,
                "WSL_SHARE": WSL_SHARE,
                "OUTSIDE_DIR": str(shares.outside),
            }
            result = run_guest(GUEST_SCRIPT.read_text(), recorder.port, GUEST_TIMEOUT_S, env=env, image=image,
                               on_line=on_line)
        listing, modes, sealed = _snapshot(shares)
        yield ExtraRun(result, server, shares, list(recorder.records), listing, modes, sealed)


@pytest.fixture(scope="module")
def extra_run(vm_image: VmImage) -> Iterator[ExtraRun]:
    from tests.kernel.servers import smbsrv_available

    if not smbsrv_available():
        pytest.fail("`python -m smbsrv serve --help` fails: the smbsrv server is not usable")
    with extra_boot(vm_image) as run:
        marks = run.result.guest_marks_s
        print(f"\n[kernel] smbsrv extra suite: wall {run.result.wall_s:.1f}s, booted at "
              f"{marks.get('BOOTED', -1):.1f}s, suite {marks.get('BEGIN', -1):.1f}s-{marks.get('END', -1):.1f}s, "
              f"{sum(run.result.steps.values())}/{len(run.result.steps)} steps passed", file=sys.stderr)
        yield run


def _step_report(run: ExtraRun, expected: tuple[str, ...]) -> str | None:
    steps = run.result.steps
    failed = [name for name in expected if steps.get(name) is False]
    missing = [name for name in expected if name not in steps]
    if not failed and not missing:
        return None
    parts = []
    for name in failed:
        parts.append(f"FAIL {name}")
        parts += [f"  | {line}" for line in run.result.failure_logs.get(name, [])]
    if missing:
        parts.append(f"never reported (guest stopped early?): {', '.join(missing)}")
    parts.append("server log tail:\n" + run.server.log_tail(3000))
    return "\n".join(parts)


# ---- tests ------------------------------------------------------------------------------------------------


def test_guest_finished(extra_run: ExtraRun) -> None:
    result = extra_run.result
    result.assert_finished()
    known = {name for names in STEP_GROUPS.values() for name in names}
    unknown = sorted(set(result.steps) - known)
    assert not unknown, f"steps this module does not know (update STEP_GROUPS): {unknown}"


@pytest.mark.parametrize("group", sorted(STEP_GROUPS))
def test_guest_steps(extra_run: ExtraRun, group: str) -> None:
    report = _step_report(extra_run, STEP_GROUPS[group])
    assert report is None, report


def test_signing_required_by_default_on_the_wire(extra_run: ExtraRun) -> None:
    plain = [record for record in extra_run.records if not record.sealed and record.dialect]
    assert any(record.dialect == 0x0311 and record.requests.get(SMB2_WRITE) for record in plain), (
        "no unencrypted 3.1.1 connection wrote anything:\n" + "\n".join(r.describe() for r in extra_run.records))
    unsigned = [record for record in plain if record.unsigned_after_logon()]
    assert not unsigned, "requests after SESSION_SETUP not signed:\n" + "\n".join(r.describe() for r in unsigned)


@pytest.mark.parametrize(("vers", "dialect"), [("3.1.1", 0x0311), ("3.0", 0x0300)])
def test_seal_encrypts_on_the_wire(extra_run: ExtraRun, vers: str, dialect: int) -> None:
    everything = "\n".join(record.describe() for record in extra_run.records)
    sealed = [record for record in extra_run.records if record.sealed and record.dialect == dialect]
    assert len(sealed) == 1, f"expected one encrypted {vers} connection:\n{everything}"
    record = sealed[0]
    assert record.transform_flags == {1}, record.describe()
    if dialect == 0x0311:
        assert record.cipher_id == SMB2_ENCRYPTION_AES128_GCM, record.describe()
    else:
        # 3.0 has no negotiate contexts: encryption is a capability and the cipher is always AES-128-CCM,
        # named in each transform header's EncryptionAlgorithm field.
        assert record.server_capabilities & SMB2_GLOBAL_CAP_ENCRYPTION, record.describe()
        assert SMB2_ENCRYPTION_AES128_CCM in record.transform_flags, record.describe()
    assert record.transform_bytes["c2s"] > SEALED_SIZE and record.transform_bytes["s2c"] > SEALED_SIZE, (
        f"the 4 MiB write and read did not travel encrypted: {record.describe()}")
    plain_io = {command: record.requests.get(command) for command in (SMB2_CREATE, SMB2_READ, SMB2_WRITE)
                if record.requests.get(command)}
    assert not plain_io, f"unencrypted CREATE/READ/WRITE on the sealed connection: {record.describe()}"


def test_sealed_files_on_server(extra_run: ExtraRun) -> None:
    md5 = extra_run.sealed_md5
    for name in ("sealed-3.1.1.bin", "sealed-3.0.bin"):
        assert name in md5, f"{name} missing in the share"
        assert extra_run.share_modes[name].st_size == SEALED_SIZE, name
    assert md5["sealed-3.1.1.bin"] == md5["sealed-3.0.bin"], "the two sealed copies of one source differ"
    assert extra_run.share_modes["signed-plain.bin"].st_size == 100000


def test_posix_names_on_server(extra_run: ExtraRun) -> None:
    listing = extra_run.share_listing
    assert listing.get("a") == b"lower\n" and listing.get("A") == b"upper\n", sorted(listing)
    # Through nomapposix: stored as the client wrote them.
    raw = {"r-back\\slash": b"back\n", "r-co:lon": b"colon\n", "r-st*ar": b"star\n", "r-q?mark": b"question\n"}
    # Through 6.1's default mapposix: '\\' as is, the others as SFM private-use characters.
    mapped = {"m-back\\slash": b"back\n", "m-co\uf022lon": b"colon\n", "m-st\uf021ar": b"star\n",
              "m-q\uf025mark": b"question\n"}
    for name, content in {**raw, **mapped}.items():
        assert listing.get(name) == content, f"{name!r}: {listing.get(name)!r}; names on the server: {sorted(listing)}"


def test_posix_created_objects_on_server(extra_run: ExtraRun) -> None:
    modes = extra_run.share_modes
    made = modes.get("made")
    assert made is not None, sorted(modes)
    account = serving_account()  # the share's ordinary account made it (root when the tests are not root)
    owner = (account.pw_uid, account.pw_gid) if account is not None else (os.getuid(), os.getgid())
    assert (stat.S_IMODE(made.st_mode), made.st_uid, made.st_gid, made.st_nlink) == (0o644, *owner, 2)
    assert made.st_mtime == OWNED_MTIME, "touch -d through the POSIX mount"
    assert stat.S_IMODE(modes["madedir"].st_mode) == 0o755 and stat.S_ISDIR(modes["madedir"].st_mode)


def test_posix_chmod_on_server(extra_run: ExtraRun) -> None:
    # 6.1 cannot chmod over POSIX: the server keeps the mode the file was created with.
    chmodded = extra_run.share_modes.get("chmodded")
    assert chmodded is not None and stat.S_IMODE(chmodded.st_mode) == 0o644


def test_posix_rename_over_open_on_server(extra_run: ExtraRun) -> None:
    listing = extra_run.share_listing
    assert listing.get("dst") == b"new\n" and "src" not in listing, sorted(listing)


def test_posix_unlink_open_on_server(extra_run: ExtraRun) -> None:
    # The name made again after the unlinked file was closed holds the new data; the close of the unlinked
    # file's last handle removed nothing but that file.
    assert extra_run.share_listing.get("unl") == b"third\n", sorted(extra_run.share_listing)


def test_nothing_outside_the_share_reached_the_guest(extra_run: ExtraRun) -> None:
    output = extra_run.result.output
    assert extra_run.shares.marker not in output, "the guest printed the secret from outside the share"
    shown = [line for line in output.splitlines() if line.startswith("SHOW cat-")]
    assert len(shown) >= 10, f"the escape checks did not run in both modes: {shown}"


def test_no_cifs_errors_in_kernel_log(extra_run: ExtraRun) -> None:
    assert_no_kernel_errors(extra_run.result.dmesg, "smbsrv")


def main() -> int:
    """By hand: one boot with the console echoed, then the PASS/FAIL summary and the recorder's view."""
    with extra_boot(build_image(), on_line=lambda line: print(line, flush=True)) as run:
        result = run.result
        print(f"\n{sum(result.steps.values())}/{len(result.steps)} steps passed; wall {result.wall_s:.1f}s; "
              f"guest marks {result.guest_marks_s}", file=sys.stderr)
        for name in result.failed_steps:
            print(f"FAILED: {name}", file=sys.stderr)
        for record in run.records:
            print(record.describe(), file=sys.stderr)
        print(f"marker in console: {run.shares.marker in result.output}", file=sys.stderr)
        print(f"names in posix-work: {sorted(run.share_listing)}", file=sys.stderr)
        print("server log tail:\n" + run.server.log_tail(2000), file=sys.stderr)
        return 0 if not result.failed_steps and result.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
