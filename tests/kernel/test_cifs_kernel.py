"""The Linux SMB client (cifs.ko, Debian's 6.1 kernel in a qemu guest) against the server under test.

One guest boot per dialect runs guest/cifs_suite.sh, which mounts the share with cache=strict and then with
cache=none and runs the same file-system steps on each mount (see that script for what each step checks).
The 3.1.1 boot also checks that a wrong password and a missing share make mount fail. Tests here only read
the PASS/FAIL lines and the kernel log of those boots.

Run: `pytest -m kernel tests/kernel` (root; SMBSRV_KERNEL_TARGET=samba to run against Samba instead).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.kernel.kernel_log import assert_no_kernel_errors
from tests.kernel.servers import RunningServer
from tests.kernel.vm import GuestResult

pytestmark = pytest.mark.kernel

DIALECTS = ("3.1.1", "3.0", "2.1")
CACHE_MODES = ("strict", "none")
NEGATIVE_DIALECT = "3.1.1"

# Every step guest/cifs_suite.sh runs per mount, in order; a step that never reported counts as failed.
MOUNT_STEPS = (
    "mount",
    "df",
    "mkdir_work",
    "ls_bigdir",
    "touch_stat",
    "write_read_1m",
    "append",
    "overwrite_middle",
    "write_read_64m",
    "truncate",
    "mkdir_rmdir",
    "rename",
    "rename_over",
    "unlink_open",
    "hardlink",
    "chmod",
    "utimes",
    "fcntl_locks",
    "flock",
    "locks_two_clients",
    "coherency_two_clients",
    "cp_tree",
    "find",
    "remount",
    "persisted",
    "cleanup",
    "umount",
)
NEGATIVE_STEPS = ("wrong_password", "missing_share")

GuestSuiteRun = Callable[..., GuestResult]


def _run_for(guest_suite_run: GuestSuiteRun, vers: str) -> GuestResult:
    return guest_suite_run(vers, negative=vers == NEGATIVE_DIALECT)


def _describe(result: GuestResult, prefix: str, expected: tuple[str, ...], server: RunningServer) -> str | None:
    """None if every expected step under prefix passed; otherwise a report naming the failed steps."""
    reported = {name[len(prefix):]: passed for name, passed in result.steps.items() if name.startswith(prefix)}
    failed = [name for name in expected if reported.get(name) is False]
    missing = [name for name in expected if name not in reported]
    unexpected = sorted(set(reported) - set(expected))
    if not failed and not missing and not unexpected:
        return None
    parts = [f"{server.kind}: {prefix}"]
    if failed:
        parts.append(f"failed steps: {', '.join(failed)}")
        for name in failed:
            for line in result.failure_logs.get(prefix + name, []):
                parts.append(f"  {name}: {line}")
    if missing:
        parts.append(f"steps that never reported (guest stopped early?): {', '.join(missing)}")
    if unexpected:
        parts.append(f"steps this test does not know (update MOUNT_STEPS): {', '.join(unexpected)}")
    if result.timed_out:
        parts.append("the guest timed out")
    parts.append("server log tail:\n" + server.log_tail(2000))
    return "\n".join(parts)


@pytest.mark.parametrize("cache", CACHE_MODES)
@pytest.mark.parametrize("vers", DIALECTS)
def test_cifs_mount_suite(guest_suite_run: GuestSuiteRun, kernel_server: RunningServer, vers: str,
                          cache: str) -> None:
    result = _run_for(guest_suite_run, vers)
    report = _describe(result, f"{vers}/{cache}/", MOUNT_STEPS, kernel_server)
    assert report is None, report


def test_failing_mounts(guest_suite_run: GuestSuiteRun, kernel_server: RunningServer) -> None:
    result = _run_for(guest_suite_run, NEGATIVE_DIALECT)
    report = _describe(result, "negative/", NEGATIVE_STEPS, kernel_server)
    assert report is None, report


@pytest.mark.parametrize("vers", DIALECTS)
def test_guest_finished(guest_suite_run: GuestSuiteRun, vers: str) -> None:
    result = _run_for(guest_suite_run, vers)
    result.assert_finished()
    assert result.dmesg, "guest printed no kernel log"
    assert result.exit_code == 0 or result.failed_steps, f"suite exit code {result.exit_code} without failed steps"


@pytest.mark.parametrize("vers", DIALECTS)
def test_no_cifs_errors_in_kernel_log(guest_suite_run: GuestSuiteRun, kernel_server: RunningServer,
                                      vers: str) -> None:
    result = _run_for(guest_suite_run, vers)
    assert_no_kernel_errors(result.dmesg, kernel_server.kind)
