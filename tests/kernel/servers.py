"""Servers the cifs.ko guest tests run against: smbsrv itself, or Debian's Samba as a reference.

Both listen on 127.0.0.1 only, on a port picked here, with one share backed by a temporary directory and one
user. The share is prepared the same way for both (see prepare_share), so the guest scripts cannot tell them
apart except by behaviour.

- smbsrv: `python -m smbsrv serve --share share=PATH --user USER:PASS --listen 127.0.0.1 --port PORT`; ready
  when it prints a line containing "listening" on stderr.
- Samba: `smbd --foreground --no-process-group --debug-stdout -s CONF` with a throw-away smb.conf whose
  private, lock, state, cache and pid directories all live in the temporary directory. A username map sends the
  test user to the Unix account below, and the tdbsam database (also temporary) holds its SMB password.

Both serve the SMB user as the suite's ordinary, non-root Unix account (tests/conftest.py serving_account), as
deployments do: the share roots belong to it (smbsrv's --user acts as the owner of the first share), while what
the suites prepare inside keeps the owners they give it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.conftest import serving_account
from tests.kernel.image import REPO_ROOT, ensure_host_tools

SHARE_NAME = "share"
TEST_USER = "smbtest"
TEST_PASSWORD = "Kernel-Test-1"
BIGDIR_NAME = "bigdir"
BIGDIR_COUNT = 2000
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclasses.dataclass
class RunningServer:
    kind: str
    port: int
    share_path: Path
    log_path: Path
    user: str = TEST_USER
    password: str = TEST_PASSWORD
    share_name: str = SHARE_NAME

    def guest_env(self) -> dict[str, str]:
        """The variables the guest scripts read (see guest/cifs_suite.sh)."""
        return {
            "SMB_SHARE": self.share_name,
            "SMB_USER": self.user,
            "SMB_PASS": self.password,
            "BIGDIR_NAME": BIGDIR_NAME,
            "BIGDIR_COUNT": str(BIGDIR_COUNT),
        }

    def log_tail(self, max_chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-max_chars:]
        return ""


def bigdir_entry_name(index: int) -> str:
    # Long enough that 2,000 entries need several QUERY_DIRECTORY responses; guest/cifs_suite.sh regenerates
    # the same list with awk, so keep the two in sync.
    return f"entry-{index:04d}-with-a-longer-name-to-fill-directory-buffers.dat"


def prepare_share(share_path: Path) -> None:
    """Creates the server-side fixtures the guest scripts expect."""
    bigdir = share_path / BIGDIR_NAME
    bigdir.mkdir(parents=True)
    for index in range(BIGDIR_COUNT):
        (bigdir / bigdir_entry_name(index)).write_bytes(b"%d\n" % index)


def hand_share_roots_to_account(*share_paths: Path) -> str:
    """The share directories themselves (not what is inside) go to the serving account, reachable through
    their parents; returns the account's name ("root" when the tests do not run as root)."""
    account = serving_account()
    if account is None:
        return "root"
    for share_path in share_paths:
        for ancestor in share_path.resolve().parents:
            mode = ancestor.stat().st_mode
            if not mode & 0o001:
                os.chmod(ancestor, (mode & 0o7777) | 0o001)
        os.chown(share_path, account.pw_uid, account.pw_gid)
    return account.pw_name


def _share_paths(share_args: list[str]) -> list[Path]:
    if share_args[0] == "--share":
        return [Path(share_args[1].partition("=")[2])]
    shares = tomllib.loads(Path(share_args[1]).read_text()).get("shares", {})
    return [Path(table["path"]) for table in shares.values()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not listening on 127.0.0.1:{port} after {timeout_s}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; only ever the PID we started."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


SAMBA_CONF = """\
[global]
    server role = standalone server
    netbios name = SMBTEST
    workgroup = WORKGROUP
    smb ports = {port}
    interfaces = 127.0.0.1
    bind interfaces only = yes
    disable netbios = yes
    server min protocol = SMB2_02
    passdb backend = tdbsam:{base}/private/passdb.tdb
    username map = {base}/usermap
    map to guest = never
    private dir = {base}/private
    lock directory = {base}/lock
    state directory = {base}/state
    cache directory = {base}/cache
    pid directory = {base}/pid
    ncalrpc dir = {base}/ncalrpc
    log level = 1
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes

[{share}]
    path = {share_path}
    read only = no
    browseable = yes
"""


@contextlib.contextmanager
def samba_server(base: Path, share_path: Path, *, users: Sequence[tuple[str, str]] | None = None,
                 share_options: str = "") -> Iterator[RunningServer]:
    """users: (Unix account, password) pairs, each its own SMB user of the same name, instead of TEST_USER as
    the serving account; share_options: smb.conf lines added to the share's section."""
    ensure_host_tools({"smbd": "samba", "pdbedit": "samba-common-bin"})
    port = free_port()
    for directory in ("private", "lock", "state", "cache", "pid", "ncalrpc"):
        (base / directory).mkdir()
    account = hand_share_roots_to_account(share_path)
    (base / "usermap").write_text("" if users else f"{account} = {TEST_USER}\n")
    conf = base / "smb.conf"
    conf.write_text(SAMBA_CONF.format(port=port, base=base, share=SHARE_NAME, share_path=share_path)
                    + "".join(f"    {line}\n" for line in share_options.splitlines()))
    for name, password in users or [(account, TEST_PASSWORD)]:
        subprocess.run(
            ["pdbedit", "-s", str(conf), "-a", "-t", "-u", name],
            input=f"{password}\n{password}\n", text=True, capture_output=True, check=True,
        )
    log_path = base / "smbd.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["smbd", "--foreground", "--no-process-group", "--debug-stdout", "-s", str(conf)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            # smbd signals its whole process group when it shuts down; give it its own.
            start_new_session=True,
        )
    server = RunningServer("samba", port, share_path, log_path)
    try:
        _wait_for_port(port, process, READY_TIMEOUT_S)
        yield server
    finally:
        _stop(process)


def smbsrv_available() -> bool:
    result = subprocess.run([sys.executable, "-m", "smbsrv", "serve", "--help"], cwd=REPO_ROOT,
                            capture_output=True, check=False)
    return result.returncode == 0


@contextlib.contextmanager
def smbsrv_server(base: Path, share_path: Path) -> Iterator[RunningServer]:
    with _smbsrv(base, share_path, ["--share", f"{SHARE_NAME}={share_path}"]) as server:
        yield server


@contextlib.contextmanager
def smbsrv_server_with_config(base: Path, config_toml: str, share_path: Path,
                              users: Sequence[tuple[str, str]] = ((TEST_USER, TEST_PASSWORD),)
                              ) -> Iterator[RunningServer]:
    """smbsrv started from a TOML config (written to base/smbsrv.toml) instead of --share flags.

    The config supplies the shares and any option the flags do not cover (special_files, posix_file_type_bits,
    ...); the listening address, port and the test user still come from the command line, so the config must
    not set [server] listen, port or users_file. share_path is the share RunningServer reports (the one named
    SHARE_NAME in the config). users: the --user NAME:PASSWORD pairs (a NAME that is a Unix account acts as it).
    """
    config_path = base / "smbsrv.toml"
    config_path.write_text(config_toml)
    with _smbsrv(base, share_path, ["--config", str(config_path)], users) as server:
        yield server


@contextlib.contextmanager
def _smbsrv(base: Path, share_path: Path, share_args: list[str],
            users: Sequence[tuple[str, str]] = ((TEST_USER, TEST_PASSWORD),)) -> Iterator[RunningServer]:
    """`smbsrv serve` with `share_args` (--share or --config), the users, on a free port of 127.0.0.1."""
    hand_share_roots_to_account(*_share_paths(share_args))
    port = free_port()
    log_path = base / "smbsrv.log"
    argv = [
        sys.executable, "-m", "smbsrv", "serve", *share_args,
        *[flag for name, password in users for flag in ("--user", f"{name}:{password}")],
        "--listen", "127.0.0.1",
        "--port", str(port),
    ]
    process = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    server = RunningServer("smbsrv", port, share_path, log_path)
    try:
        _await_listening(process, log_path)
        _wait_for_port(port, process, READY_TIMEOUT_S)
        yield server
    finally:
        _stop(process)


def _await_listening(process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Copies stderr to log_path (from a thread once ready) and returns when a line says "listening"."""
    assert process.stderr is not None
    stderr = process.stderr
    log = log_path.open("ab")
    deadline = time.monotonic() + READY_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(stderr, selectors.EVENT_READ)
        pending = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.close()
                raise RuntimeError(f"smbsrv did not print 'listening' within {READY_TIMEOUT_S}s")
            if not selector.select(timeout=remaining):
                continue
            chunk = os.read(stderr.fileno(), 65536)
            if not chunk:
                log.close()
                raise RuntimeError(f"smbsrv exited before listening: {log_path.read_text(errors='replace')}")
            log.write(chunk)
            log.flush()
            pending += chunk
            if b"listening" in pending:
                break
            pending = pending[-256:]

    def drain() -> None:
        # Keep reading so the server never blocks on a full pipe.
        with log:
            shutil.copyfileobj(stderr, log, 4096)

    threading.Thread(target=drain, name="smbsrv-stderr", daemon=True).start()


@contextlib.contextmanager
def start_server_for_kernel_tests(kind: str) -> Iterator[RunningServer]:
    """A server of the given kind ("samba" or "smbsrv") with a prepared share, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"smbsrv-kernel-{kind}-") as scratch:
        base = Path(scratch)
        share_path = base / "share"
        share_path.mkdir()
        prepare_share(share_path)
        if kind == "samba":
            starter = samba_server
        elif kind == "smbsrv":
            starter = smbsrv_server
        else:
            raise ValueError(f"unknown server kind {kind!r}")
        with starter(base, share_path) as server:
            yield server
