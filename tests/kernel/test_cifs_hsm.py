"""cifs.ko against placeholder files, in both guests (Debian stable's kernel and sid's): a listing and stat
show the real size without any provider request; cat reads the content, fetched once.

One boot per guest runs guest/hsm_suite.sh against smbsrv with a `directory` provider; the host released the
files with `smbsrv hsm release` before the boot and reads the server's log after it (every provider request is
one `hsm request` line).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kernel.image import SID, STABLE, build_image
from tests.kernel.kernel_log import assert_no_kernel_errors
from tests.kernel.servers import REPO_ROOT, SHARE_NAME, smbsrv_server_with_config
from tests.kernel.vm import run_guest

pytestmark = pytest.mark.kernel

GUEST_SCRIPT = Path(__file__).resolve().parent / "guest" / "hsm_suite.sh"
_REQUEST = re.compile(r"hsm request provider=\S+ op=(\S+) key=([0-9a-f]+)")


@pytest.mark.parametrize("suite", [STABLE, SID])
def test_cifs_lists_without_fetching_and_reads_once(tmp_path: Path, suite: str) -> None:
    image = build_image(suite=suite)
    share, cold = tmp_path / "share", tmp_path / "cold"
    share.mkdir()
    cold.mkdir()
    listed = os.urandom(3 * 1024 * 1024 + 5)
    read = os.urandom(5 * 1024 * 1024 + 7)
    (share / "listed.bin").write_bytes(listed)
    (share / "read.bin").write_bytes(read)
    config = (f'[server]\nstate_dir = "{tmp_path / "state"}"\nlog_level = "DEBUG"\n'
              f'[shares.{SHARE_NAME}]\npath = "{share}"\nhsm_provider = "directory"\nhsm_directory = "{cold}"\n')
    with smbsrv_server_with_config(tmp_path, config, share) as server:
        subprocess.run([sys.executable, "-m", "smbsrv", "hsm", "release", "-c", str(tmp_path / "smbsrv.toml"),
                        str(share / "listed.bin"), str(share / "read.bin")], cwd=REPO_ROOT, check=True,
                       capture_output=True)
        env = {**server.guest_env(), "LISTED_SIZE": str(len(listed)), "READ_SIZE": str(len(read)),
               "READ_MD5": hashlib.md5(read).hexdigest()}
        result = run_guest(GUEST_SCRIPT.read_text(), server.port, 300, env=env, image=image)
    log = server.log_path.read_text(errors="replace")  # complete once the server stopped (copied from stderr)
    assert not result.timed_out and result.exit_code == 0, result.output[-4000:]
    assert result.steps == {"mount": True, "listing": True, "read": True, "umount": True}, result.failure_logs
    requests = _REQUEST.findall(log)
    read_key = hashlib.sha256(read).hexdigest()
    assert requests == [("get", read_key)], requests  # listed.bin never fetched, read.bin once
    assert os.getxattr(share / "listed.bin", "trusted.smbsrv.hsm")
    assert (share / "read.bin").read_bytes() == read
    assert_no_kernel_errors(result.dmesg, "smbsrv")
