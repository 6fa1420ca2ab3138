"""Running Samba's smbtorture one sub-test at a time against a server, and reading what it said.

Shared by tests/integration/test_smbtorture.py (smbsrv held to known-failures.txt) and scripts/torture-compare
(the same sub-tests against smbsrv and against Samba's smbd, side by side). Nothing here starts a server: a
caller hands in a Target that says where the server listens and where its share lives on disk.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SMBTORTURE = "smbtorture"
KNOWN_FAILURES_PATH = Path(__file__).resolve().parent / "known-failures.txt"


@dataclass(frozen=True)
class Run:
    """One server configuration and the smbtorture suites run against it."""

    name: str  # "" for the default server; otherwise the prefix of its sub-test names ("NAME:smb2.x.y")
    server_args: tuple[str, ...]  # smbsrv options
    suites: tuple[str, ...]
    signing_required: bool = False  # the same configuration for Samba ("server signing = mandatory")


RUNS = (
    Run("", (), (
        "smb2.connect", "smb2.tcon", "smb2.mkdir", "smb2.getinfo", "smb2.setinfo", "smb2.read", "smb2.rw",
        "smb2.create", "smb2.fileid", "smb2.dir", "smb2.rename",
        "smb2.delete-on-close-perms", "smb2.sharemode", "smb2.deny", "smb2.lock", "smb2.compound",
        "smb2.compound_find", "smb2.compound_async", "smb2.ioctl", "smb2.ioctl-on-stream", "smb2.streams",
        "smb2.credits", "smb2.session", "smb2.session-id", "smb2.dosmode", "smb2.async_dosmode", "smb2.openattr",
        "smb2.winattr", "smb2.sdread", "smb2.maximum_allowed", "smb2.acls", "smb2.acls_non_canonical",
        "smb2.mangle", "smb2.charset", "smb2.timestamps", "smb2.timestamp_resolution", "smb2.samba3misc",
        "smb2.maxfid", "smb2.secleak", "smb2.oplock", "smb2.lease", "smb2.notify", "smb2.multichannel",
        "smb2.durable-open", "smb2.durable-v2-open", "smb2.replay",
    )),
    # create_no_streams wants a share without named streams (Samba's without a streams module).
    Run("no-streams", ("--share-option", "named_streams=false"), ("smb2.create_no_streams",)),
    # bug15397 checks what a server configured with "signing required" announces; it needs such a server.
    Run("signing-required", ("--signing", "required"), ("smb2.session-require-signing",), signing_required=True),
)

# Sub-tests (name or dotted prefix) inside the selected suites that are not run, with the reason. Whole suites
# left out (durable-open, durable-v2-*, kernel-oplocks, hold-oplock, replay, multichannel, notify-inotify,
# change_notify_disabled: features not implemented, Samba-specific or waiting out timeouts; aio_delay: needs Samba's delay_inject VFS module; twrp: needs snapshots; bench, scan: no
# verdict; hold-sharemode, check-sharemode, set-sparse-ioctl, zero-data-ioctl: manual tools driven by
# --option=torture:...; ea: reads Samba's acl_xattr_name option) are simply not in RUNS.
EXCLUDED = {
    "smb2.create.bench-path-contention-shared": "a 10 s benchmark, no verdict",
    "smb2.lock.ctdb-delrec-deadlock": "exercises Samba's clustered (ctdb) lock database",
    "smb2.ioctl.bug14769": "uses Samba's private FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP",
    # Each waits out the 35 s break timeout (Samba's too); tests/integration/test_oplocks.py tests the timeout
    # with a short configured one.
    "smb2.oplock.batch22a": "waits out the 35 s oplock break timeout",
    "smb2.lease.oplock": "waits out the 35 s lease break timeout",
    "smb2.lease.timeout": "waits out the 35 s lease break timeout",
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
    "smb2.notify.mask": 150.0,  # about 80 s of changes and answers
}

# smbtorture results that count as "this sub-test fails".
FAILING = {"failure", "error", "timeout", "no-result", "server-bug", "server-died"}
_RESULT = re.compile(r"^(success|successful|failure|fail|error|skip|xfail|uxsuccess): (.+?)( \[)?$")
# A handler traceback in smbsrv's DEBUG log: a failure of the sub-test even when smbtorture was satisfied.
SMBSRV_BUG_MARKERS = ("internal error", "Traceback (most recent call last)")


@dataclass(frozen=True)
class Target:
    """A running server as smbtorture reaches it."""

    host: str
    port: int
    share: str
    user: str
    password: str
    share_path: Path
    alive: Callable[[], bool]
    log_path: Path | None = None  # read for bug_markers after each sub-test
    bug_markers: tuple[str, ...] = ()


@dataclass
class Outcome:
    name: str
    result: str  # success | skip | failure | error | timeout | no-result | server-bug | server-died
    seconds: float
    detail: str = ""

    @property
    def first_line(self) -> str:
        """The line that says why: smbtorture's first "(file:line): ..." message, else the first line."""
        lines = [line.strip() for line in self.detail.splitlines() if line.strip()]
        for line in lines:
            if line.startswith("(") or "NT_STATUS" in line:
                return line
        return lines[0] if lines else ""


@dataclass(frozen=True)
class Known:
    """One known-failures.txt entry: the sub-test is expected to fail, or (kind "skip") to be skipped."""

    kind: str  # "fail" | "skip"
    reason: str


def parse_known_failures(path: Path = KNOWN_FAILURES_PATH) -> dict[str, Known]:
    """`NAME  # reason` per line, `NAME  # skip: reason` for an expected skip; '#' lines are comments.
    A name may contain spaces but never ' #'."""
    known: dict[str, Known] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, reason = line.partition(" #")
        name, reason = name.strip(), reason.strip()
        kind = "fail"
        if reason.lower().startswith("skip:"):
            kind, reason = "skip", reason[len("skip:"):].strip()
        if not sep or not reason:
            raise ValueError(f"{path.name}:{number}: every known failure needs a reason after ' # ': {raw!r}")
        if name in known:
            raise ValueError(f"{path.name}:{number}: {name} is listed twice")
        known[name] = Known(kind, reason)
    return known


@cache
def _listing(suite: str) -> tuple[str, ...]:
    listing = subprocess.run([SMBTORTURE, "--list", suite], capture_output=True, text=True, timeout=60,
                             check=False)
    return tuple(listing.stdout.splitlines())


def list_subtests(suite: str) -> list[str]:
    """Leaf test names under `suite`, as --fullname reports them, without the EXCLUDED ones.

    `--list` repeats a leaf's last component ("smb2.lock.lock.lock") and matches by string prefix, so
    "smb2.session" also lists "smb2.session-id.session-id"; only names inside the suite itself are kept.
    """
    names = []
    for line in _listing(suite):
        if not line.startswith("smb2."):
            continue
        parts = line.split(".")
        name = ".".join(parts[:-1]) if len(parts) > 2 else line
        if name == suite or name.startswith(suite + "."):
            names.append(name)
    return [name for name in names if not any(name.startswith(prefix) for prefix in EXCLUDED)]


def run_id(run: Run, name: str) -> str:
    return f"{run.name}:{name}" if run.name else name


def empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _failure_text(output: str) -> str:
    """The bracketed detail block of the first failure/error/skip in subunit output, else the output's tail."""
    match = re.search(r"^(?:failure|error|skip): .*? \[\n(.*?)^\]", output, re.MULTILINE | re.DOTALL)
    return match.group(1).strip() if match else output.strip()[-1500:]


def run_subtest(target: Target, name: str, label: str | None = None) -> Outcome:
    """Empty the share, run sub-test `name` in its own smbtorture process, and classify what happened."""
    empty(target.share_path)
    log_start = target.log_path.stat().st_size if target.log_path else 0
    argv = [SMBTORTURE, f"//{target.host}/{target.share}", "-p", str(target.port),
            "-U", f"{target.user}%{target.password}", "--format=subunit", "--fullname",
            f"--option=torture:localdir={target.share_path}", name]
    started = time.monotonic()
    # smbtorture makes an "smbtortureXXXXXX" directory in its working directory and leaves it behind when it
    # is killed or fails: give it one of its own, removed whatever happened.
    with tempfile.TemporaryDirectory(prefix="smbtorture-cwd-") as cwd:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            raw, _ = process.communicate(timeout=TIMEOUTS_S.get(name, TIMEOUT_S))
            timed_out = False
        except subprocess.TimeoutExpired:
            process.kill()  # our own child, by PID
            raw, _ = process.communicate()
            timed_out = True
    seconds = time.monotonic() - started
    output = raw.decode(errors="replace")
    log_text = ""
    if target.log_path:
        with open(target.log_path, "rb") as log:
            log.seek(log_start)
            log_text = log.read().decode(errors="replace")

    results = {match.group(2): match.group(1) for match in map(_RESULT.match, output.splitlines()) if match}
    result = {"successful": "success", "fail": "failure"}.get(results.get(name, ""), results.get(name, ""))
    detail = _failure_text(output) if result in ("failure", "error", "skip") else ""
    if timed_out:
        result, detail = "timeout", f"no result after {seconds:.0f} s; last output:\n{output.strip()[-800:]}"
    elif not result:
        result, detail = "no-result", f"smbtorture exited {process.returncode}:\n{output.strip()[-1500:]}"
    if not target.alive():
        result, detail = "server-died", f"server exited:\n{log_text[-3000:]}"
    elif any(marker in log_text for marker in target.bug_markers):
        marker = next(m for m in target.bug_markers if m in log_text)
        start = max(0, log_text.index(marker) - 300)
        detail = f"(smbtorture said {result or 'nothing'}) server log:\n{log_text[start:start + 3000]}"
        result = "server-bug"
    return Outcome(label or name, result, seconds, detail)
