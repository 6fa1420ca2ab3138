"""Samba's smbtorture (Debian package samba-testsuite) against the real daemon, held to a committed list.

smbtorture is Samba's protocol conformance suite: each sub-test drives one area of [MS-SMB2] (CREATE 2.2.13,
LOCK 2.2.26, QUERY_DIRECTORY 2.2.33, compounding 3.3.5.2.7, ...) and checks the exact NTSTATUS and fields a
Windows server returns. Many of its tests need features this server does not have yet (oplocks, leases, durable
handles, named streams, change notify, NT ACLs), so a plain pass/fail would always fail. Instead:

* every selected sub-test runs in its own smbtorture process (subunit output, its own timeout, killed by PID when
  it hangs), with the share emptied before it, so one hang or leftover file cannot spoil the next test;
* the server log written while the sub-test ran is read back: a handler traceback ("internal error") counts as a
  failure of that sub-test even when smbtorture itself was satisfied;
* tests/smbtorture/known-failures.txt names every sub-test that fails today, each with the reason. A pytest test
  (one per smbtorture suite) fails when a sub-test fails that is not listed, and also when a listed sub-test no
  longer fails (or is no longer there), so the list stays true and shrinks as the server grows.

Suites that cannot say anything about this server are left out (EXCLUDED names each with its reason). Run one
suite with `pytest tests/integration/test_smbtorture.py -k smb2.lock`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, REPO, USER, SmbServer, start_server, stop_server

SMBTORTURE = "smbtorture"
KNOWN_FAILURES_PATH = REPO / "tests" / "smbtorture" / "known-failures.txt"


@dataclass(frozen=True)
class Run:
    """One server configuration and the smbtorture suites run against it."""

    name: str  # "" for the default server; otherwise the prefix of its sub-test names ("NAME:smb2.x.y")
    server_args: tuple[str, ...]
    suites: tuple[str, ...]


RUNS = (
    Run("", (), (
        "smb2.connect", "smb2.tcon", "smb2.mkdir", "smb2.getinfo", "smb2.setinfo", "smb2.read", "smb2.rw",
        "smb2.create", "smb2.create_no_streams", "smb2.fileid", "smb2.dir", "smb2.rename",
        "smb2.delete-on-close-perms", "smb2.sharemode", "smb2.deny", "smb2.lock", "smb2.compound",
        "smb2.compound_find", "smb2.compound_async", "smb2.ioctl", "smb2.ioctl-on-stream", "smb2.streams",
        "smb2.credits", "smb2.session", "smb2.session-id", "smb2.dosmode", "smb2.async_dosmode", "smb2.openattr",
        "smb2.winattr", "smb2.sdread", "smb2.maximum_allowed", "smb2.acls", "smb2.acls_non_canonical",
        "smb2.mangle", "smb2.charset", "smb2.timestamps", "smb2.timestamp_resolution", "smb2.samba3misc",
        "smb2.maxfid", "smb2.secleak",
    )),
    # bug15397 checks what a server configured with "signing required" announces; it needs such a server.
    Run("signing-required", ("--signing", "required"), ("smb2.session-require-signing",)),
)

# Sub-tests (name or dotted prefix) inside the selected suites that are not run, with the reason. Whole suites
# left out (durable-open, durable-v2-*, lease, oplock, kernel-oplocks, hold-oplock, replay, multichannel, notify,
# notify-inotify, change_notify_disabled: features not implemented, and their tests mostly wait out break and
# notify timeouts; aio_delay: needs Samba's delay_inject VFS module; twrp: needs snapshots; bench, scan: no
# verdict; hold-sharemode, check-sharemode, set-sparse-ioctl, zero-data-ioctl: manual tools driven by
# --option=torture:...; ea: reads Samba's acl_xattr_name option) are simply not in RUNS.
EXCLUDED = {
    "smb2.create.bench-path-contention-shared": "a 10 s benchmark, no verdict",
    "smb2.lock.replay_": "lock sequence replay needs durable/resilient handles",
    "smb2.lock.ctdb-delrec-deadlock": "exercises Samba's clustered (ctdb) lock database",
    "smb2.ioctl.bug14769": "uses Samba's private FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP",
}

TIMEOUT_S = 30.0
# Sub-tests that need longer (measured on 2 shared cores, with room to spare). A sub-test that hangs (the server
# never answers) is killed at its timeout and reported as "timeout".
TIMEOUTS_S = {
    "smb2.maxfid": 150.0,
    "smb2.secleak": 120.0,
    "smb2.compound_find.compound_find_close": 90.0,
    "smb2.timestamps.delayed-2write": 60.0,
    "smb2.timestamps.delayed-1write": 60.0,
    "smb2.dir.large-files": 60.0,
    "smb2.dir.sorted": 60.0,
}

# smbtorture results that count as "this sub-test fails".
FAILING = {"failure", "error", "timeout", "no-result", "server-bug", "server-died"}
_RESULT = re.compile(r"^(success|successful|failure|fail|error|skip|xfail|uxsuccess): (.+?)( \[)?$")
_BUG_MARKERS = ("internal error", "Traceback (most recent call last)")


@dataclass
class Outcome:
    name: str
    result: str  # success | skip | failure | error | timeout | no-result | server-bug | server-died
    seconds: float
    detail: str = ""


@dataclass
class ServerPool:
    """One daemon per Run, started on first use and restarted if a sub-test kills it."""

    base: Path
    servers: dict[str, SmbServer] = field(default_factory=dict)
    restarts: int = 0

    def get(self, run: Run) -> SmbServer:
        server = self.servers.get(run.name)
        if server is not None and server.process.poll() is None:
            return server
        key = run.name or "default"
        share = self.base / f"share-{key}"
        share.mkdir(exist_ok=True)
        if server is not None:
            self.restarts += 1
        log = self.base / f"server-{key}-{self.restarts}.log"
        server = start_server(share, log, *run.server_args)
        self.servers[run.name] = server
        return server

    def stop(self) -> None:
        for server in self.servers.values():
            stop_server(server.process)


def parse_known_failures(path: Path = KNOWN_FAILURES_PATH) -> dict[str, str]:
    """`NAME  # reason` per line; '#' lines are comments. A name may contain spaces but never ' #'."""
    known: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, reason = line.partition(" #")
        name, reason = name.strip(), reason.strip()
        if not sep or not reason:
            raise ValueError(f"{path.name}:{number}: every known failure needs a reason after ' # ': {raw!r}")
        if name in known:
            raise ValueError(f"{path.name}:{number}: {name} is listed twice")
        known[name] = reason
    return known


def list_subtests(suite: str) -> list[str]:
    """Leaf test names under `suite`, as --fullname reports them.

    `--list` repeats a leaf's last component ("smb2.lock.lock.lock") and matches by string prefix, so
    "smb2.session" also lists "smb2.session-id.session-id"; only names inside the suite itself are kept.
    """
    listing = subprocess.run([SMBTORTURE, "--list", suite], capture_output=True, text=True, timeout=60,
                             check=False)
    names = []
    for line in listing.stdout.splitlines():
        if not line.startswith("smb2."):
            continue
        parts = line.split(".")
        name = ".".join(parts[:-1]) if len(parts) > 2 else line
        if name == suite or name.startswith(suite + "."):
            names.append(name)
    return [name for name in names if not any(name.startswith(prefix) for prefix in EXCLUDED)]


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _failure_text(output: str) -> str:
    """The bracketed detail block of the first failure/error/skip in subunit output, else the output's tail."""
    match = re.search(r"^(?:failure|error|skip): .*? \[\n(.*?)^\]", output, re.MULTILINE | re.DOTALL)
    return match.group(1).strip() if match else output.strip()[-1500:]


def run_subtest(pool: ServerPool, run: Run, name: str) -> Outcome:
    server = pool.get(run)
    _empty(server.share_path)
    log_start = server.log_path.stat().st_size
    argv = [SMBTORTURE, f"//{server.host}/{server.share}", "-p", str(server.port), "-U", f"{USER}%{PASSWORD}",
            "--format=subunit", "--fullname", f"--option=torture:localdir={server.share_path}", name]
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        raw, _ = process.communicate(timeout=TIMEOUTS_S.get(name, TIMEOUT_S))
        timed_out = False
    except subprocess.TimeoutExpired:
        process.kill()  # our own child, by PID
        raw, _ = process.communicate()
        timed_out = True
    seconds = time.monotonic() - started
    output = raw.decode(errors="replace")
    with open(server.log_path, "rb") as log:
        log.seek(log_start)
        log_text = log.read().decode(errors="replace")

    results = {match.group(2): match.group(1) for match in map(_RESULT.match, output.splitlines()) if match}
    result = {"successful": "success", "fail": "failure"}.get(results.get(name, ""), results.get(name, ""))
    detail = _failure_text(output) if result in ("failure", "error", "skip") else ""
    if timed_out:
        result, detail = "timeout", f"no result after {seconds:.0f} s; last output:\n{output.strip()[-800:]}"
    elif not result:
        result, detail = "no-result", f"smbtorture exited {process.returncode}:\n{output.strip()[-1500:]}"
    if server.process.poll() is not None:
        result, detail = "server-died", f"server exited {server.process.returncode}:\n{log_text[-3000:]}"
    elif any(marker in log_text for marker in _BUG_MARKERS):
        marker = next(m for m in _BUG_MARKERS if m in log_text)
        start = max(0, log_text.index(marker) - 300)
        detail = f"(smbtorture said {result or 'nothing'}) server log:\n{log_text[start:start + 3000]}"
        result = "server-bug"
    return Outcome(run_id(run, name), result, seconds, detail)


def run_id(run: Run, name: str) -> str:
    return f"{run.name}:{name}" if run.name else name


def _suite_cases() -> list[tuple[Run, str]]:
    return [(run, suite) for run in RUNS for suite in run.suites]


@pytest.fixture(scope="module")
def pool() -> Iterator[ServerPool]:
    if shutil.which(SMBTORTURE) is None:
        pytest.fail("smbtorture is not installed: scripts/test installs it (Debian package samba-testsuite)")
    with tempfile.TemporaryDirectory(prefix="smbsrv-torture-") as tmp:
        servers = ServerPool(Path(tmp))
        try:
            yield servers
        finally:
            servers.stop()


@pytest.fixture(scope="module")
def known_failures() -> dict[str, str]:
    return parse_known_failures()


def test_known_failures_name_selected_subtests(known_failures: dict[str, str]) -> None:
    """Every listed name lies in a selected suite and not under EXCLUDED, or it could never be checked."""
    orphans = []
    for entry in known_failures:
        run_name, _, name = entry.rpartition(":")
        runs = [run for run in RUNS if run.name == run_name]
        in_suite = any(name == suite or name.startswith(suite + ".") for run in runs for suite in run.suites)
        if not in_suite or any(name.startswith(prefix) for prefix in EXCLUDED):
            orphans.append(entry)
    assert not orphans, "known-failures.txt lists sub-tests that are never run:\n" + "\n".join(orphans)


@pytest.mark.slow
@pytest.mark.parametrize(("run", "suite"), _suite_cases(),
                         ids=[run_id(run, suite) for run, suite in _suite_cases()])
def test_smbtorture_suite(pool: ServerPool, known_failures: dict[str, str], run: Run, suite: str) -> None:
    names = list_subtests(suite)
    assert names, f"smbtorture --list {suite} found no sub-tests (is samba-testsuite complete?)"
    outcomes = [run_subtest(pool, run, name) for name in names]

    prefix = run_id(run, suite)
    listed = {name for name in known_failures if name == prefix or name.startswith(prefix + ".")}
    ran = {outcome.name for outcome in outcomes}
    unexpected = [o for o in outcomes if o.result in FAILING and o.name not in known_failures]
    now_passing = [o for o in outcomes if o.result not in FAILING and o.name in known_failures]
    vanished = sorted(listed - ran)

    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    total_s = sum(outcome.seconds for outcome in outcomes)
    print(f"{prefix}: {len(outcomes)} sub-tests in {total_s:.1f} s: "
          + ", ".join(f"{count} {result}" for result, count in sorted(counts.items()))
          + f"; {len(listed)} known failures")

    problems = []
    for outcome in unexpected:
        problems.append(f"NEW FAILURE {outcome.name} ({outcome.result}):\n{outcome.detail}")
    for outcome in now_passing:
        problems.append(f"NOW PASSES {outcome.name} ({outcome.result}): remove it from known-failures.txt "
                        f"(listed reason: {known_failures[outcome.name]})")
    for name in vanished:
        problems.append(f"NOT RUN {name}: smbtorture no longer has it; remove it from known-failures.txt")
    assert not problems, "\n\n".join(problems)
