"""Samba's smbtorture (Debian package samba-testsuite) against the real daemon, held to a committed list.

smbtorture is Samba's protocol conformance suite: each sub-test drives one area of [MS-SMB2] (CREATE 2.2.13,
LOCK 2.2.26, QUERY_DIRECTORY 2.2.33, compounding 3.3.5.2.7, ...) and checks the exact NTSTATUS and fields a
Windows server returns. Many of its tests need features this server does not have yet (oplocks, leases, durable
handles, named streams, change notify, NT ACLs), so a plain pass/fail would always fail. Instead:

* every selected sub-test runs in its own smbtorture process (subunit output, its own timeout, killed by PID when
  it hangs), with the share emptied before it, so one hang or leftover file cannot spoil the next test;
* the server log written while the sub-test ran is read back: a handler traceback ("internal error") counts as a
  failure of that sub-test even when smbtorture itself was satisfied;
* tests/smbtorture/known-failures.txt names every sub-test that fails today, each with the reason, and every
  sub-test smbtorture skips, as `NAME # skip: reason`. A skip is not a pass: smbtorture skips when the server
  lacks what the test needs (or answers a probe wrongly), so an unlisted skip would hide exactly what this file
  is for. A pytest test (one per smbtorture suite) fails when a sub-test fails or skips without being listed as
  such, when a listed sub-test passes, and when a listed one is no longer there, so the list stays true and
  shrinks as the server grows.
* the run uses tests/conftest.py's start_server, so the daemon runs as root and acts as the non-root account
  that owns the share, as deployed. scripts/torture-compare runs the same sub-tests against Samba's smbd in
  that setup, to tell server defects from Samba-only expectations.

Suites that cannot say anything about this server are left out (EXCLUDED names each with its reason). Run one
suite with `pytest tests/integration/test_smbtorture.py -k smb2.lock`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import SmbServer, start_server, stop_server
from tests.smbtorture.runner import (
    EXCLUDED,
    FAILING,
    RUNS,
    SMBSRV_BUG_MARKERS,
    SMBTORTURE,
    Known,
    Outcome,
    Run,
    Target,
    list_subtests,
    parse_known_failures,
    run_id,
    run_subtest,
)


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
        if os.geteuid() == 0 and share.stat().st_uid == 0:
            stop_server(server.process)
            # A root-owned share means the SMB user acts as root: access checks would never be exercised.
            raise AssertionError("the share is root's: tests/conftest.py should hand it to the test account")
        self.servers[run.name] = server
        return server

    def stop(self) -> None:
        for server in self.servers.values():
            stop_server(server.process)


def _run(pool: ServerPool, run: Run, name: str) -> Outcome:
    server = pool.get(run)
    process = server.process
    target = Target(server.host, server.port, server.share, server.user, server.password, server.share_path,
                    alive=lambda: process.poll() is None, log_path=server.log_path, bug_markers=SMBSRV_BUG_MARKERS)
    return run_subtest(target, name, run_id(run, name))


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
def known_failures() -> dict[str, Known]:
    return parse_known_failures()


def test_known_failures_name_selected_subtests(known_failures: dict[str, Known]) -> None:
    """Every listed name lies in a selected suite and not under EXCLUDED, or it could never be checked."""
    orphans = []
    for entry in known_failures:
        run_name, _, name = entry.rpartition(":")
        runs = [run for run in RUNS if run.name == run_name]
        in_suite = any(name == suite or name.startswith(suite + ".") for run in runs for suite in run.suites)
        if not in_suite or any(name.startswith(prefix) for prefix in EXCLUDED):
            orphans.append(entry)
    assert not orphans, "known-failures.txt lists sub-tests that are never run:\n" + "\n".join(orphans)


def _verdict(outcome: Outcome) -> str:
    """fail | skip | pass: what known-failures.txt can say about a sub-test."""
    if outcome.result in FAILING:
        return "fail"
    return "skip" if outcome.result == "skip" else "pass"


def problems_with(outcomes: list[Outcome], known: dict[str, Known], listed: set[str]) -> list[str]:
    """Every outcome that differs from what known-failures.txt expects (unlisted: a pass), and listed names
    that did not run."""
    problems = []
    for outcome in outcomes:
        entry = known.get(outcome.name)
        verdict, expected = _verdict(outcome), entry.kind if entry else "pass"
        if verdict == expected:
            continue
        if verdict == "fail":
            problems.append(f"NEW FAILURE {outcome.name} ({outcome.result}):\n{outcome.detail}")
        elif verdict == "skip":
            listed_as = f" (listed as failing: {entry.reason})" if entry else ""
            problems.append(f"UNEXPLAINED SKIP {outcome.name}{listed_as}: a skip says nothing about the server; "
                            f"make it run, or list it as `{outcome.name} # skip: <reason>`. smbtorture said:\n"
                            f"{outcome.detail}")
        else:
            assert entry is not None
            problems.append(f"NOW PASSES {outcome.name}: listed as {'skipped' if entry.kind == 'skip' else 'failing'}"
                            f", remove it from known-failures.txt (listed reason: {entry.reason})")
    ran = {outcome.name for outcome in outcomes}
    for name in sorted(listed - ran):
        problems.append(f"NOT RUN {name}: smbtorture no longer has it; remove it from known-failures.txt")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize(("run", "suite"), _suite_cases(),
                         ids=[run_id(run, suite) for run, suite in _suite_cases()])
def test_smbtorture_suite(pool: ServerPool, known_failures: dict[str, Known], run: Run, suite: str) -> None:
    names = list_subtests(suite)
    assert names, f"smbtorture --list {suite} found no sub-tests (is samba-testsuite complete?)"
    outcomes = [_run(pool, run, name) for name in names]

    prefix = run_id(run, suite)
    listed = {name for name in known_failures if name == prefix or name.startswith(prefix + ".")}
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    total_s = sum(outcome.seconds for outcome in outcomes)
    print(f"{prefix}: {len(outcomes)} sub-tests in {total_s:.1f} s: "
          + ", ".join(f"{count} {result}" for result, count in sorted(counts.items()))
          + f"; {len(listed)} listed in known-failures.txt")
    problems = problems_with(outcomes, known_failures, listed)
    assert not problems, "\n\n".join(problems)
