"""Fixtures for the cifs.ko tests: the guest image, the server under test and cached guest runs.

Selecting the server: SMBSRV_KERNEL_TARGET=smbsrv (default), samba, or a comma-separated list such as
"smbsrv,samba"; each target becomes a parameter of the `kernel_server` fixture, so test ids read
`test_cifs_mount_suite[smbsrv-3.1.1-strict]`.

The kernel tests are slow (three guest boots, about two minutes in all) and need root for the network
namespace, so they run only when asked for: `pytest -m kernel tests/kernel` or SMBSRV_KERNEL_TESTS=1.
Otherwise they are reported as skipped with that hint.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.kernel.image import DEFAULT_CACHE_DIR, VmImage, build_image
from tests.kernel.servers import RunningServer, smbsrv_available, start_server_for_kernel_tests
from tests.kernel.vm import GuestResult, run_guest

TARGETS = ("smbsrv", "samba")
GUEST_SUITE = Path(__file__).resolve().parent / "guest" / "cifs_suite.sh"
GUEST_TIMEOUT_S = 600.0
CONSOLE_LOG_DIR = DEFAULT_CACHE_DIR / "logs"


def _selected_targets() -> list[str]:
    names = [name.strip() for name in os.environ.get("SMBSRV_KERNEL_TARGET", "smbsrv").split(",") if name]
    unknown = [name for name in names if name not in TARGETS]
    if unknown or not names:
        raise pytest.UsageError(f"SMBSRV_KERNEL_TARGET: unknown target(s) {unknown}; use {', '.join(TARGETS)}")
    return names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = "kernel" in (config.getoption("markexpr", default="") or "")
    if asked or os.environ.get("SMBSRV_KERNEL_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="cifs.ko guest tests are opt-in: pytest -m kernel (or SMBSRV_KERNEL_TESTS=1)")
    for item in items:
        if item.get_closest_marker("kernel") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def vm_image() -> VmImage:
    if os.geteuid() != 0:
        pytest.fail("the cifs.ko guest tests need root (network namespaces, apt-get)")
    return build_image()


@pytest.fixture(scope="session", params=_selected_targets())
def kernel_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    target: str = request.param
    if target == "smbsrv" and not smbsrv_available():
        pytest.fail("`python -m smbsrv serve --help` fails: the smbsrv server is not usable yet "
                    "(run against Samba with SMBSRV_KERNEL_TARGET=samba)")
    with start_server_for_kernel_tests(target) as server:
        yield server


@pytest.fixture(scope="session")
def guest_suite_run(vm_image: VmImage, kernel_server: RunningServer) -> Callable[..., GuestResult]:
    """Returns run(versions, negative) -> GuestResult; each distinct run boots the guest once per target."""
    cache: dict[tuple[str, bool], GuestResult] = {}

    def run(versions: str, negative: bool = False) -> GuestResult:
        key = (versions, negative)
        if key not in cache:
            env = {
                **kernel_server.guest_env(),
                "SMB_VERSIONS": versions,
                "SMB_CACHES": "strict none",
                "NEGATIVE_TESTS": "1" if negative else "0",
            }
            result = run_guest(GUEST_SUITE.read_text(), kernel_server.port, GUEST_TIMEOUT_S, env=env,
                               image=vm_image)
            CONSOLE_LOG_DIR.mkdir(parents=True, exist_ok=True)
            log = CONSOLE_LOG_DIR / f"{kernel_server.kind}-{versions.replace(' ', '_')}.log"
            log.write_text(result.output)
            marks = result.guest_marks_s
            print(
                f"\n[kernel] {kernel_server.kind} vers={versions}: wall {result.wall_s:.1f}s, "
                f"booted at {marks.get('BOOTED', -1):.1f}s, suite {marks.get('BEGIN', -1):.1f}s-"
                f"{marks.get('END', -1):.1f}s, {sum(result.steps.values())}/{len(result.steps)} steps passed, "
                f"console log {log}",
                file=sys.stderr,
            )
            cache[key] = result
        return cache[key]

    return run
