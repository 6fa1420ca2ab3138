"""Starting and stopping the two servers under test, and installing the Debian packages the benchmark uses.

Both servers serve one share named "bench" from sibling temporary directories on the same filesystem, listen
on 127.0.0.1 at a free port, and accept one user. Samba gets its own smb.conf and private, lock, state, cache,
pid and ncalrpc directories, so it shares nothing with a system smbd or with other Samba instances on the
machine. Everything is stopped by PID: the server process first, then any descendant that outlived it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import procstat

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARE_NAME = "bench"
HOST = "127.0.0.1"
# Debian package that provides each program we run.
REQUIRED_PROGRAMS = {"smbd": "samba", "smbpasswd": "samba", "smbclient": "smbclient", "iperf3": "iperf3"}


class ServerStartError(RuntimeError):
    """A server could not be started; the message says why and what to try."""


def ensure_packages() -> None:
    """Install with apt-get whatever Debian package a required program is missing from."""
    missing = sorted({pkg for prog, pkg in REQUIRED_PROGRAMS.items() if shutil.which(prog) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServerStartError(f"missing packages {', '.join(missing)}: install them (apt-get install ...)")
    print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, check=False, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        # The package lists may be stale or absent in a fresh container.
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, check=False)
        if subprocess.run(install, check=False, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            raise ServerStartError(f"apt-get could not install {' '.join(missing)}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _start_time(pid: int) -> str | None:
    fields = procstat.stat_fields(pid)
    # proc(5) field 22 is starttime; it tells a reused PID apart from the process we started.
    return None if fields is None else fields[19]


def stop_process_tree(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the process, SIGKILL it after grace_s, then do the same to descendants that are still alive."""
    descendants = [(pid, _start_time(pid)) for pid in procstat.tree_pids(proc.pid)[1:]]
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    leftovers = [
        (pid, start) for pid, start in descendants if start is not None and _start_time(pid) == start
    ]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, start in leftovers:
            if _start_time(pid) == start:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(_start_time(pid) == start for pid, start in leftovers):
            time.sleep(0.05)


def wait_for_port(proc: subprocess.Popen[bytes], port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


@dataclass
class Endpoint:
    """What a client needs to reach one running server, and where its share lives on disk."""

    name: str
    port: int
    username: str
    password: str
    share_dir: Path
    pid: int
    host: str = HOST
    share: str = SHARE_NAME


class Server:
    """A server process under test. Subclasses build the command and know when it is ready."""

    name = "server"

    def __init__(self, workdir: Path, share_dir: Path, username: str, password: str, signing_required: bool):
        self.workdir = workdir
        self.share_dir = share_dir
        self.username = username
        self.password = password
        self.signing_required = signing_required
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"

    @property
    def endpoint(self) -> Endpoint:
        assert self.proc is not None
        return Endpoint(self.name, self.port, self.username, self.password, self.share_dir, self.proc.pid)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_tree(self.proc)
            self.proc = None

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        with open(self.log_path, "ab") as log:
            # A session of its own: smbd signals its whole process group when it exits, which must not
            # reach the benchmark or the shell that started it.
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )


class SambaServer(Server):
    """Debian's smbd with default settings, except what isolation needs and optionally mandatory signing.
    `share_lines` are added to the share's section as given (e.g. "vfs objects = streams_xattr")."""

    name = "samba"

    def __init__(self, workdir: Path, share_dir: Path, username: str, password: str, signing_required: bool,
                 share_lines: tuple[str, ...] = ()):
        super().__init__(workdir, share_dir, username, password, signing_required)
        self.share_lines = share_lines

    def _write_config(self) -> Path:
        dirs = {
            key: self.workdir / key for key in ("private", "lock", "state", "cache", "pid", "ncalrpc", "log")
        }
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        signing = "  server signing = mandatory\n" if self.signing_required else ""
        conf = self.workdir / "smb.conf"
        conf.write_text(
            "[global]\n"
            "  server role = standalone server\n"
            "  netbios name = SMBBENCH\n"
            "  workgroup = WORKGROUP\n"
            "  security = user\n"
            "  map to guest = never\n"
            f"  passdb backend = tdbsam:{dirs['private']}/passdb.tdb\n"
            f"  private dir = {dirs['private']}\n"
            f"  lock directory = {dirs['lock']}\n"
            f"  state directory = {dirs['state']}\n"
            f"  cache directory = {dirs['cache']}\n"
            f"  pid directory = {dirs['pid']}\n"
            f"  ncalrpc dir = {dirs['ncalrpc']}\n"
            f"  log file = {dirs['log']}/log.%m\n"
            "  max log size = 0\n"
            "  log level = 0\n"
            f"  interfaces = {HOST}\n"
            "  bind interfaces only = yes\n"
            f"  smb ports = {self.port}\n"
            "  disable netbios = yes\n"
            "  load printers = no\n"
            "  printing = bsd\n"
            "  printcap name = /dev/null\n"
            "  disable spoolss = yes\n"
            f"{signing}"
            f"[{SHARE_NAME}]\n"
            f"  path = {self.share_dir}\n"
            "  read only = no\n"
            + "".join(f"  {line}\n" for line in self.share_lines)
        )
        return conf

    def start(self) -> None:
        conf = self._write_config()
        secret = f"{self.password}\n{self.password}\n".encode()
        added = subprocess.run(
            ["smbpasswd", "-a", "-s", "-c", str(conf), self.username],
            check=False,
            input=secret,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        if added.returncode != 0:
            raise ServerStartError(f"smbpasswd -a failed: {added.stdout.decode(errors='replace').strip()}")
        self._spawn(["smbd", "--foreground", "--no-process-group", "-s", str(conf)])
        assert self.proc is not None
        if not wait_for_port(self.proc, self.port, timeout_s=30.0):
            code = self.proc.poll()
            self.stop()
            raise ServerStartError(
                f"smbd did not accept connections on {HOST}:{self.port} (exit code {code}); log:\n"
                + log_tail(self.log_path)
            )


class SmbsrvServer(Server):
    """`python -m smbsrv serve ...` from this checkout; ready when it prints a line containing "listening"."""

    name = "smbsrv"
    START_TIMEOUT_S = 30.0

    def __init__(
        self,
        workdir: Path,
        share_dir: Path,
        username: str,
        password: str,
        signing_required: bool,
        server_args: str = "",
        signing_args: str = "--signing required",
    ):
        super().__init__(workdir, share_dir, username, password, signing_required)
        self.server_args = server_args
        self.signing_args = signing_args

    def command(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "smbsrv",
            "serve",
            "--share",
            f"{SHARE_NAME}={self.share_dir}",
            "--user",
            f"{self.username}:{self.password}",
            "--listen",
            HOST,
            "--port",
            str(self.port),
        ]
        argv += shlex.split(self.server_args)
        if self.signing_required:
            argv += shlex.split(self.signing_args)
        return argv

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.log_path.write_bytes(b"")
        self._spawn(self.command(), env=env, cwd=REPO_ROOT)
        assert self.proc is not None
        deadline = time.monotonic() + self.START_TIMEOUT_S
        reason = f"no line containing 'listening' within {self.START_TIMEOUT_S:.0f} s"
        while time.monotonic() < deadline:
            if b"listening" in self.log_path.read_bytes():
                if wait_for_port(self.proc, self.port, timeout_s=5.0):
                    return
                reason = f"said it was listening, but {HOST}:{self.port} does not accept connections"
                break
            if self.proc.poll() is not None:
                reason = f"exited with code {self.proc.returncode}"
                break
            time.sleep(0.05)
        self.stop()
        shown = " ".join(shlex.quote(a) for a in self.command()).replace(self.password, "***")
        raise ServerStartError(
            f"smbsrv did not start: {reason}.\n  command: {shown}\n  log:\n{log_tail(self.log_path)}\n"
            "  Use --servers samba to benchmark Samba alone."
        )
