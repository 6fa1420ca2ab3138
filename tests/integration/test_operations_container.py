"""The container image (issue 17): Dockerfile, its default config and its entrypoint.

The entrypoint runs here as the image runs it (first start copies the default config, creates the SMB user
from the environment, then execs `smbsrv serve`), with the image's paths moved under a temporary directory,
and smbclient connects to it; the HEALTHCHECK command is run against it. Building the image needs a container
engine and a Debian base image, which CI machines do not have: `SMBSRV_CONTAINER_TESTS=1` builds it with
podman (chroot isolation, host network; the base from a local `debian:bookworm-slim` image or a debootstrap of
bookworm) and runs the same checks inside it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from smbsrv.config import parse_config
from tests.conftest import PASSWORD, REPO, USER, serve_as_test_account
from tests.integration.operations_helpers import unix_account

DOCKERFILE = REPO / "Dockerfile"
IMAGE_CONFIG = REPO / "conf" / "container" / "smbsrv.toml"
ENTRYPOINT = REPO / "conf" / "container" / "entrypoint.sh"
UNIT_CAPABILITIES = ["NET_BIND_SERVICE", "SETUID", "SETGID", "DAC_OVERRIDE", "DAC_READ_SEARCH", "CHOWN", "FOWNER"]


def test_dockerfile_volumes_healthcheck_and_capabilities() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM debian:bookworm-slim$", text, re.MULTILINE)
    volumes = re.search(r"^VOLUME \[(.*)\]$", text, re.MULTILINE)
    assert volumes is not None
    assert [v.strip(' "') for v in volumes.group(1).split(",")] == ["/etc/smbsrv", "/var/lib/smbsrv", "/srv/smb"]
    assert re.search(r'^HEALTHCHECK .* CMD \["smbsrv", "status"', text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["smbsrv-entrypoint"\]$', text, re.MULTILINE)
    # The documented run line adds exactly the unit's capabilities to an empty set.
    assert "--cap-drop ALL" in text
    assert re.findall(r"--cap-add (\w+)", text) == UNIT_CAPABILITIES
    # Everything COPY names exists and is let through .dockerignore.
    ignore = (REPO / ".dockerignore").read_text().split()
    for source in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for item in source.split():
            assert (REPO / item).exists(), item
            assert f"!{item.split('/')[0]}" in ignore or f"!{item.split('/')[0]}/" in ignore or \
                f"!{os.path.dirname(item)}/" in ignore, item


def test_image_default_config() -> None:
    config = parse_config(tomllib.loads(IMAGE_CONFIG.read_text()))
    assert (config.listen, config.port, config.signing) == (("0.0.0.0",), 445, "required")
    assert (config.users_file, config.state_dir) == ("/etc/smbsrv/users", "/var/lib/smbsrv")
    assert config.control_socket_path == "/var/lib/smbsrv/control.sock"
    assert (config.metrics, config.metrics_listen) == (False, "127.0.0.1")
    assert [(share.name, share.path) for share in config.shares] == [("share", "/srv/smb/share")]
    # Each path lies in one of the image's volumes.
    for path in (config.users_file, config.state_dir, config.shares[0].path):
        assert path.startswith(("/etc/smbsrv/", "/var/lib/smbsrv", "/srv/smb/")), path


def _relocated_config(root: Path) -> Path:
    """The image's default config with its volumes under `root`."""
    text = IMAGE_CONFIG.read_text()
    for volume in ("/etc/smbsrv", "/var/lib/smbsrv", "/srv/smb"):
        text = text.replace(f'"{volume}', f'"{root}{volume}')
    default = root / "usr/share/smbsrv/smbsrv.toml"
    default.parent.mkdir(parents=True)
    default.write_text(text)
    for volume in ("etc/smbsrv", "var/lib/smbsrv", "srv/smb/share"):
        (root / volume).mkdir(parents=True)
    serve_as_test_account(root / "srv/smb/share")
    return default


def _start_entrypoint(root: Path, log: Path, password: str) -> tuple[subprocess.Popen[bytes], int]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "SMBSRV_CONFIG": str(root / "etc/smbsrv/smbsrv.toml"),
           "SMBSRV_DEFAULT_CONFIG": str(root / "usr/share/smbsrv/smbsrv.toml"),
           "SMBSRV_USER": USER, "SMBSRV_PASSWORD": password, "SMBSRV_UNIX_USER": unix_account()}
    with open(log, "wb") as out:
        process = subprocess.Popen([str(ENTRYPOINT), "--listen", "127.0.0.1", "--port", "0"], stdout=out,
                                   stderr=subprocess.STDOUT, env=env, cwd=root)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"listening on 127\.0\.0\.1 port (\d+)", log.read_text())
        if match:
            return process, int(match.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError(f"entrypoint did not start the server:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def _smbclient(port: int, password: str, commands: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["smbclient", "//127.0.0.1/share", "-p", str(port), "-U", f"{USER}%{password}",
                           "-c", commands], capture_output=True, text=True, timeout=60, check=False)


def test_entrypoint_first_start_and_restart(tmp_path: Path) -> None:
    root = tmp_path / "image"
    _relocated_config(root)
    process, port = _start_entrypoint(root, tmp_path / "first.log", PASSWORD)
    try:
        # The entrypoint exec'd the server: same pid, and the password is not in its environment.
        assert b"SMBSRV_PASSWORD" not in Path(f"/proc/{process.pid}/environ").read_bytes()
        assert "smbsrv serve" in Path(f"/proc/{process.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        result = _smbclient(port, PASSWORD, "put /etc/hostname from-client.txt; ls")
        assert result.returncode == 0, result.stdout + result.stderr
        assert (root / "srv/smb/share/from-client.txt").stat().st_uid == os.stat(root / "srv/smb/share").st_uid
        # The image's HEALTHCHECK command, with the image's environment.
        health = subprocess.run([sys.executable, "-m", "smbsrv", "status", "--json"], capture_output=True,
                                text=True, timeout=30, check=False,
                                env={**os.environ, "SMBSRV_CONFIG": str(root / "etc/smbsrv/smbsrv.toml")})
        assert health.returncode == 0, health.stderr
    finally:
        assert _stop(process) == 0
    log = (tmp_path / "first.log").read_text()
    assert "created " + str(root / "etc/smbsrv/smbsrv.toml") in log
    assert f"added user {USER} (Unix account {unix_account()})" in log
    assert (root / "etc/smbsrv/users").stat().st_mode & 0o777 == 0o600
    # A restart keeps the edited config and sets the user's new password.
    config = root / "etc/smbsrv/smbsrv.toml"
    config.write_text(config.read_text().replace('server_name = "SMBSRV"', 'server_name = "EDITED"'))
    process, port = _start_entrypoint(root, tmp_path / "second.log", "Changed-789")
    try:
        assert _smbclient(port, PASSWORD, "ls").returncode != 0
        assert _smbclient(port, "Changed-789", "ls").returncode == 0
    finally:
        assert _stop(process) == 0
    assert "created" not in (tmp_path / "second.log").read_text()
    assert 'server_name = "EDITED"' in config.read_text()


def test_entrypoint_refuses_a_bad_config_with_its_error(tmp_path: Path) -> None:
    root = tmp_path / "image"
    default = _relocated_config(root)
    default.write_text(default.read_text() + "\n[server.oops]\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "SMBSRV_CONFIG": str(root / "etc/smbsrv/smbsrv.toml"), "SMBSRV_DEFAULT_CONFIG": str(default)}
    result = subprocess.run([str(ENTRYPOINT)], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "smbsrv: server.oops: unknown key"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SMBSRV_CONTAINER_TESTS") != "1",
                    reason="builds the image with podman: set SMBSRV_CONTAINER_TESTS=1 (needs podman and network)")
def test_image_builds_and_serves(tmp_path: Path) -> None:
    from tests.integration.container_build import build_image, run_in_image

    image = build_image(tmp_path)
    with run_in_image(image, tmp_path, port=4459) as (status, port):
        result = _smbclient(port, PASSWORD, "put /etc/hostname in-image.txt; ls")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "in-image.txt" in result.stdout
        assert status().returncode == 0
    assert shutil.which("podman")
