"""Fixtures for the smbsrv.fs tests: a temporary share directory and its ShareRoot."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from smbsrv.fs.resolver import ShareRoot


@pytest.fixture
def share_dir(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    root.mkdir()
    return root


@pytest.fixture
def share(share_dir: Path) -> Iterator[ShareRoot]:
    root = ShareRoot.open(str(share_dir), case_sensitive=False)
    try:
        yield root
    finally:
        root.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the share, with the same shape a client might try to reach through a link."""
    out = tmp_path / "outside"
    (out / "inner").mkdir(parents=True)
    (out / "inner" / "secret").write_text("outside")
    (out / "secret").write_text("outside")
    return out


def fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")
