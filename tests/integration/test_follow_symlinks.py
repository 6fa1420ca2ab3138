"""Share option follow_symlinks: Windows-semantics opens follow links that stay inside the share.

Links leaving the share (absolute elsewhere, or `..` above the root) are never followed: the client gets
STATUS_STOPPED_ON_SYMLINK as without the option. Without the option nothing is followed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import SmbServer, assert_no_server_bugs, start_server, stop_server


def _server(tmp_path: Path, share: Path, follow: bool) -> SmbServer:
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[server]\nstate_dir = "{tmp_path / "state"}"\n'
                      f'[shares.share]\npath = "{share}"\nfollow_symlinks = {"true" if follow else "false"}\n')
    return start_server(share, tmp_path / "server.log", config=config)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    share = tmp_path / "share"
    (share / "real").mkdir(parents=True)
    (share / "real" / "inner.txt").write_text("inside\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("must never be served\n")
    os.symlink("real", share / "dirlink")
    os.symlink("real/inner.txt", share / "filelink")
    os.symlink(str(share / "real" / "inner.txt"), share / "abslink")
    os.symlink(str(outside / "secret.txt"), share / "outlink")
    os.symlink("../outside/secret.txt", share / "uplink")
    return share


@pytest.mark.parametrize("follow", [True, False])
def test_follow_symlinks_inside_the_share_only(tmp_path: Path, tree: Path, follow: bool) -> None:
    server = _server(tmp_path, tree, follow)
    try:
        for name in ("filelink", "abslink", "dirlink\\inner.txt"):
            local = tmp_path / "got.txt"
            local.unlink(missing_ok=True)
            result = server.smbclient(f'get {name} "{local}"', check=False)
            if follow:
                assert local.read_text() == "inside\n", result.stdout + result.stderr
            else:
                assert "NT_STATUS_STOPPED_ON_SYMLINK" in result.stdout + result.stderr
                assert not local.exists()
        for name in ("outlink", "uplink"):
            local = tmp_path / "secret-copy.txt"
            result = server.smbclient(f'get {name} "{local}"', check=False)
            assert "NT_STATUS_STOPPED_ON_SYMLINK" in result.stdout + result.stderr
            assert not local.exists()
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)
