"""Fixtures that start the real daemon on 127.0.0.1 and stop it again, also when a test fails."""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import builders as b

REPO = Path(__file__).resolve().parent.parent
USER = "alice"
PASSWORD = "Secret-123"
_LISTENING = re.compile(r"listening on (\S+) port (\d+)")
# A line like this in the server log means a handler bug: every test run fails on it (issue 7).
_BUG_MARKERS = ("internal error", "Traceback (most recent call last)")
# The ordinary Unix account the SMB user acts as (issue 11): real deployments run the daemon as root and map
# each SMB user to a normal account, so that is what the suite tests. Created on first use, removed at exit;
# one per pytest process, so that runs side by side never remove each other's account.
TEST_ACCOUNT = f"smbsrv_t{os.getpid()}"
_OWN_BASETEMP = pytest.StashKey[str]()


@functools.cache
def serving_account() -> pwd.struct_passwd | None:
    """The non-root account shares are served as, created with useradd if missing; None when not root (the
    server then runs as, and acts as, the invoking user)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(TEST_ACCOUNT)
    except KeyError:
        pass
    _remove_accounts_of_dead_runs()
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_ACCOUNT],
                   check=True, capture_output=True)
    return pwd.getpwnam(TEST_ACCOUNT)


def _remove_accounts_of_dead_runs() -> None:
    """Accounts left by pytest runs that were killed before pytest_unconfigure (their pid is gone)."""
    for entry in pwd.getpwall():
        match = re.fullmatch(r"smbsrv_t(\d+)", entry.pw_name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            subprocess.run(["userdel", entry.pw_name], capture_output=True, check=False)
        except PermissionError:
            pass  # a live process of someone else


def remove_test_account() -> None:
    if os.geteuid() == 0 and serving_account.cache_info().currsize:
        subprocess.run(["userdel", TEST_ACCOUNT], capture_output=True, check=False)
        serving_account.cache_clear()


def pytest_configure(config: pytest.Config) -> None:
    # Shares live in pytest's temporary directories, which the test account must be able to traverse. pytest
    # takes the search bit away from its shared /tmp/pytest-of-USER whenever another run starts, so each run
    # gets a base directory of its own (removed again at the end).
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="smbsrv-pytest-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


def pytest_unconfigure(config: pytest.Config) -> None:
    remove_test_account()
    own = config.stash.get(_OWN_BASETEMP, None)
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)


def serve_as_test_account(*paths: Path) -> None:
    """Give `paths` (recursively) to the test account and let it reach them: every ancestor gets the
    search bit for others (pytest makes its temporary directories 0700)."""
    account = serving_account()
    if account is None:
        return
    for path in paths:
        for ancestor in path.resolve().parents:
            mode = ancestor.stat().st_mode
            if not mode & 0o001:
                os.chmod(ancestor, (mode & 0o7777) | 0o001)
        owner = (account.pw_uid, account.pw_gid)
        names = [str(path)]
        for root, dirs, files in os.walk(path):
            names += (os.path.join(root, entry) for entry in dirs + files)
        for name in names:
            st = os.lstat(name)
            if (st.st_uid, st.st_gid) != owner:  # a chown moves ctime even when it changes nothing
                os.lchown(name, *owner)


@dataclass
class SmbServer:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    share_path: Path
    log_path: Path
    share: str = "share"
    user: str = USER
    password: str = PASSWORD
    extra_shares: dict[str, Path] = field(default_factory=dict)
    as_root: bool = False

    @property
    def unc(self) -> str:
        return f"//{self.host}/{self.share}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def hand_over(self) -> None:
        """What the test made in the share as root belongs to the SMB user's account from now on (a root-mapped
        server keeps the owners the test chose)."""
        if not self.as_root:
            serve_as_test_account(self.share_path, *self.extra_shares.values())

    def smbclient(self, commands: str, *extra: str, share: str | None = None, user: str | None = None,
                  timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run Debian's smbclient against this server with `-c commands`."""
        self.hand_over()
        credentials = user or f"{self.user}%{self.password}"
        argv = ["smbclient", f"//{self.host}/{share or self.share}", "-p", str(self.port), "-U", credentials,
                *extra, "-c", commands]
        result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"smbclient failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result


def _config_share_paths(config: Path | None) -> list[Path]:
    if config is None:
        return []
    shares = tomllib.loads(config.read_text()).get("shares", {})
    return [Path(share["path"]) for share in shares.values() if Path(share["path"]).is_dir()]


def start_server(share_path: Path, log_path: Path, *args: str, extra_shares: dict[str, Path] | None = None,
                 users: tuple[tuple[str, str], ...] = ((USER, PASSWORD),), config: Path | None = None,
                 env: dict[str, str] | None = None, signing: str | None = "desired",
                 as_root: bool = False, python: tuple[str, ...] = (sys.executable,)) -> SmbServer:
    """Start the daemon. Most tests drive raw requests that sign only when asked, so the server is started
    with signing "desired" unless the arguments say otherwise; `signing=None` keeps the server's own default
    (required), which tests/integration/test_defaults.py checks.

    The shares are handed to TEST_ACCOUNT first, so `--user` users (which act as the owner of the first share)
    are an ordinary account; `as_root=True` leaves them root's, for the few tests that need root's powers.
    `python` is the command that runs the interpreter (tests/integration/test_real_users.py wraps it)."""
    if not as_root:
        serve_as_test_account(share_path, *(extra_shares or {}).values(), *_config_share_paths(config))
    argv = [*python, "-m", "smbsrv", "serve", "--listen", "127.0.0.1", "--port", "0",
            "--log-level", "DEBUG"]
    if signing is not None and "--signing" not in args:
        argv += ["--signing", signing]
    if config is not None:
        argv += ["-c", str(config)]
    else:
        argv += ["--share", f"share={share_path}"]
        for name, path in (extra_shares or {}).items():
            argv += ["--share", f"{name}={path}"]
    for name, password in users:
        argv += ["--user", f"{name}:{password}"]
    argv += list(args)
    with open(log_path, "wb") as log_file:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO,
                                   env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = _LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            return SmbServer(process, match.group(1), int(match.group(2)), share_path, log_path,
                             extra_shares=dict(extra_shares or {}), as_root=as_root)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop_server(process)
    raise RuntimeError(f"server did not start:\n{log_path.read_text(errors='replace')}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def checked_while(server: SmbServer) -> Iterator[SmbServer]:
    """One test on a daemon that several tests share: afterwards the daemon must still run, serve a fresh
    client, and must not have logged a handler bug while the test ran."""
    log_start = len(server.log_text())
    yield server
    assert server.process.poll() is None, "the server process died"
    b.assert_serves_fresh_client(server.host, server.port, server.user, server.password)
    new_log = server.log_text()[log_start:]
    for marker in _BUG_MARKERS:
        assert marker not in new_log, new_log[new_log.index(marker) - 1500:][:5000]


def assert_no_server_bugs(server: SmbServer) -> None:
    text = server.log_text()
    for marker in _BUG_MARKERS:
        assert marker not in text, f"server logged a handler bug:\n{text[text.index(marker) - 2000:][:6000]}"


@pytest.fixture
def second_account() -> Iterator[str | None]:
    """A second ordinary Unix account, removed afterwards; None when the tests do not run as root."""
    if serving_account() is None:
        yield None
        return
    name = f"smbsrv_s{os.getpid()}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


@pytest.fixture
def share_dir(tmp_path: Path) -> Path:
    path = tmp_path / "share"
    path.mkdir()
    return path


@pytest.fixture
def smb_server(share_dir: Path, tmp_path: Path) -> Iterator[SmbServer]:
    server = start_server(share_dir, tmp_path / "server.log")
    try:
        yield server
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


@pytest.fixture(scope="module")
def module_server() -> Iterator[SmbServer]:
    """One server for a whole module, for tests that only read or clean up after themselves."""
    with tempfile.TemporaryDirectory(prefix="smbsrv-test-") as tmp:
        share = Path(tmp) / "share"
        share.mkdir()
        server = start_server(share, Path(tmp) / "server.log")
        try:
            yield server
        finally:
            stop_server(server.process)
        assert_no_server_bugs(server)


@pytest.fixture
def server(module_server: SmbServer) -> Iterator[SmbServer]:
    """The module's server for one test, checked afterwards (checked_while); a module may define its own."""
    with checked_while(module_server) as checked:
        yield checked


@pytest.fixture
def client(server: SmbServer) -> Iterator[b.Client]:
    """A logged-on, tree-connected raw client (tests/builders.py) of the test's `server`."""
    with b.connect(server.host, server.port, server.user, server.password) as connected:
        yield connected
