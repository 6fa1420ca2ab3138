"""Local access to placeholders through fanotify FAN_PRE_ACCESS (this machine's kernel is 6.18).

The share lives on its own small ext4 file system (a loop mount made by the test): the daemon's mark covers
a whole file system, and this keeps every other process of the machine out of it. A local `cat` of a
placeholder hydrates it (one provider fetch) and prints the content; with the provider gone it fails with EIO
and the file stays a placeholder. Where pre-content events cannot be had, the server refuses to start.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import assert_no_server_bugs, start_server
from tests.integration.hsm_helpers import (
    has_no_data,
    hsm_cli,
    hsm_server,
    is_placeholder,
    make_file,
    requests,
)
from tests.loop_mount import loop_mounted

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loop mounts and fanotify need root")


@pytest.fixture
def loop_fs(tmp_path: Path) -> Iterator[Path]:
    with loop_mounted(tmp_path / "fs.img", tmp_path / "mnt", 256 * 1024 * 1024, ("mkfs.ext4", "-q", "-F")) as mount:
        yield mount


def test_local_cat_hydrates_through_fanotify(tmp_path: Path, loop_fs: Path) -> None:
    share = loop_fs / "share"
    share.mkdir()
    cold = tmp_path / "cold"
    cold.mkdir()
    data = make_file(share / "local.bin", 20 * 1024 * 1024 + 11)
    make_file(share / "gone.bin", 70000, seed=5)
    make_file(share / "plain.bin", 1000, seed=6)
    with hsm_server(tmp_path, share, hsm_provider="directory", hsm_directory=str(cold),
                    hsm_fanotify=True) as (server, config):
        hsm_cli(config, "release", str(share / "local.bin"), str(share / "gone.bin"))
        assert is_placeholder(share / "local.bin") and has_no_data(share / "local.bin")
        assert requests(server) == []
        # A plain file reads as ever; the listener answered its events without asking the provider.
        assert subprocess.run(["cat", str(share / "plain.bin")], capture_output=True, check=True,
                              timeout=30).stdout == (share / "plain.bin").read_bytes()
        result = subprocess.run(["cat", str(share / "local.bin")], capture_output=True, check=True, timeout=60)
        assert result.stdout == data
        assert [r[1] for r in requests(server)] == ["get"]
        assert not is_placeholder(share / "local.bin")
        assert "hsm local access by pid" in server.log_text()
        # Provider gone: the reader gets EIO, the file stays a placeholder with no data.
        cold.rename(tmp_path / "cold-gone")
        result = subprocess.run(["cat", str(share / "gone.bin")], capture_output=True, check=False, timeout=60)
        assert result.returncode != 0 and b"Input/output error" in result.stderr, result.stderr
        assert is_placeholder(share / "gone.bin") and has_no_data(share / "gone.bin")
        (tmp_path / "cold-gone").rename(cold)
        # And the SMB side still sees the hydrated file whole.
        server.smbclient(f"get local.bin {tmp_path / 'smb.bin'}")
        assert (tmp_path / "smb.bin").read_bytes() == data
        assert [r[4] for r in requests(server, "get")] == [len(data), 70000]  # the failed attempt counts too
        assert_no_server_bugs(server)


def test_fanotify_refused_where_pre_content_events_are_missing(tmp_path: Path) -> None:
    """tmpfs keeps trusted.* xattrs but does not offer pre-content events: the option is refused at start."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm")
    share = Path(os.path.join(shm, f"smbsrv-hsm-{os.getpid()}"))
    share.mkdir()
    try:
        from tests.integration.hsm_helpers import write_config

        config = write_config(tmp_path, share, hsm_provider="directory", hsm_directory=str(tmp_path / "cold"),
                              hsm_fanotify=True)
        with pytest.raises(RuntimeError) as failure:
            start_server(share, tmp_path / "server.log", config=config)
        assert "smbsrv: hsm_fanotify:" in str(failure.value)
        assert "does not support pre-content events" in str(failure.value)
    finally:
        share.rmdir()
