"""fs/streams.py review (helper-41): streams a Samba share left behind, on a real file's xattrs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from smbsrv.fs import streams


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    file = tmp_path / "f"
    file.write_bytes(b"file data")
    yield file


def test_a_stream_spelled_exactly_is_found_before_another_case(path: Path) -> None:
    """A share moved from Samba may hold "t" and "T" (Samba 4.17's stream rename checks existence case-sensitively,
    the named-streams facts): each name opens its own stream, as on Samba (its getxattr takes the exact name);
    another spelling ("t" both ways folded) takes either."""
    os.setxattr(path, "user.DosStream.t:$DATA", b"lower\0")
    os.setxattr(path, "user.DosStream.T:$DATA", b"UPPER\0")
    fd = os.open(path, os.O_PATH)
    try:
        assert streams.find(fd, "t") == "t"
        assert streams.find(fd, "T") == "T"
    finally:
        os.close(fd)
