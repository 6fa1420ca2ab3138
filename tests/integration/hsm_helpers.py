"""Shared setup of the placeholder (HSM) tests: a share with a provider, files released with the real CLI.

Provider requests are counted from the daemon's log: every request a provider makes is one `hsm request` line
(smbsrv/hsm/providers/__init__.py), written before the request is sent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import REPO, SmbServer, serving_account, start_server, stop_server

MARK_XATTR = "trusted.smbsrv.hsm"
FILE_ATTRIBUTE_OFFLINE = 0x00001000
FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS = 0x00400000
FILE_SUPPORTS_REMOTE_STORAGE = 0x00000100
FILE_OPEN_NO_RECALL = 0x00400000
# [MS-ERREF] 2.3.1
STATUS_CLOUD_FILE_PROVIDER_NOT_RUNNING = 0xC000CF01
STATUS_CLOUD_FILE_UNSUCCESSFUL = 0xC000CF12
_REQUEST = re.compile(r"hsm request provider=(\S+) op=(\S+) key=(\S+) offset=(\d+) length=(-?\d+)")


def write_config(tmp: Path, share: Path, **share_keys: object) -> Path:
    lines = ["[server]", f'state_dir = "{tmp / "state"}"', "", "[shares.share]", f'path = "{share}"']
    for key, value in share_keys.items():
        lines.append(f"{key} = {json.dumps(value)}")
    config = tmp / "smbsrv.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def requests(server: SmbServer, op: str | None = None) -> list[tuple[str, str, str, int, int]]:
    found = [(m[1], m[2], m[3], int(m[4]), int(m[5])) for m in _REQUEST.finditer(server.log_text())]
    return [r for r in found if op is None or r[1] == op]


def hsm_cli(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "smbsrv", "hsm", *args, "-c", str(config)], check=False,
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"smbsrv hsm {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def make_file(path: Path, size: int, seed: int = 1) -> bytes:
    """Content that differs in every 4 KiB block (a hole or a shifted block cannot pass for it)."""
    block = bytearray()
    counter = 0
    while len(block) < size:
        block += f"{seed:08x}:{counter:016x}\n".encode() * 16
        counter += 1
    data = bytes(block[:size])
    path.write_bytes(data)
    account = serving_account()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    return data


def has_no_data(path: Path) -> bool:
    """No data blocks at all (SEEK_DATA finds none; st_blocks may still count an external xattr block)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 0, os.SEEK_DATA)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def is_placeholder(path: Path) -> bool:
    try:
        return bool(os.getxattr(path, MARK_XATTR))
    except OSError:
        return False


@contextmanager
def hsm_server(tmp: Path, share: Path, **share_keys: object) -> Iterator[tuple[SmbServer, Path]]:
    config = write_config(tmp, share, **share_keys)
    server = start_server(share, tmp / "server.log", config=config)
    try:
        yield server, config
    finally:
        stop_server(server.process)
