"""Building the Dockerfile with podman and running it with buildah, where no image registry can be reached
(test_operations_container.py, opt-in with SMBSRV_CONTAINER_TESTS=1).

- The base `debian:bookworm-slim` comes from local storage, or from a debootstrap of bookworm imported as it.
- RUN steps use chroot isolation and the host's network: nested in a container, crun can neither set up
  cgroups (hybrid mode) nor raise rlimits, so neither `podman run` nor the default isolation works there.
- A TLS-intercepting network needs the host's CA bundle inside the build: it is bind-mounted for the RUN steps
  with a pip.conf naming it, so nothing of it stays in the image.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import PASSWORD, REPO, USER

BASE = "docker.io/library/debian:bookworm-slim"
IMAGE = "localhost/smbsrv:test"
_HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def _run(*argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def build_image(tmp: Path) -> str:
    if subprocess.run(["podman", "image", "exists", BASE], check=False).returncode != 0:
        rootfs = tmp / "rootfs"
        _run("debootstrap", "--variant=minbase", "bookworm", str(rootfs), "http://deb.debian.org/debian")
        _run("sh", "-c", f"tar -C {rootfs} -c . | podman import - {BASE}")
    mounts: list[str] = []
    if _HOST_CA.exists():
        pip_conf = tmp / "pip.conf"
        # Beside the image's own bundle, not over it: the ca-certificates package rewrites that one.
        pip_conf.write_text("[global]\ncert = /run/host-ca.crt\n")
        mounts = ["-v", f"{_HOST_CA}:/run/host-ca.crt:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro"]
    _run("podman", "build", "--format", "docker", "--isolation=chroot", "--pull=never", "--network=host", *mounts,
         "-t", IMAGE, "-f", str(REPO / "Dockerfile"), str(REPO))
    return IMAGE


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def run_in_image(image: str, tmp: Path, port: int = 0) -> Iterator[tuple[Callable[[], subprocess.CompletedProcess[str]], int]]:
    """The image's entrypoint (first start: default config, SMB user from the environment) serving on
    127.0.0.1:port; yields the HEALTHCHECK command as a callable, and the port."""
    port = port or _free_port()
    container = _run("buildah", "from", image).stdout.strip()
    log = tmp / "container.log"
    try:
        with open(log, "wb") as out:
            process = subprocess.Popen(
                ["buildah", "run", "--isolation=chroot", "--network=host", "-e", f"SMBSRV_USER={USER}",
                 "-e", f"SMBSRV_PASSWORD={PASSWORD}", container, "--", "smbsrv-entrypoint", "--listen",
                 "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while "listening on" not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "listening on" in log.read_text(), log.read_text()

        def status() -> subprocess.CompletedProcess[str]:
            return subprocess.run(["buildah", "run", "--isolation=chroot", container, "--", "smbsrv", "status"],
                                  capture_output=True, text=True, timeout=60, check=False)

        first = status()
        match = re.search(r"smbsrv pid (\d+)", first.stdout)
        assert match, first.stdout + first.stderr
        try:
            yield status, port
        finally:
            # Chroot isolation shares the pid namespace: the pid status reports is the server's here.
            os.kill(int(match.group(1)), signal.SIGTERM)
            process.wait(timeout=30)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
