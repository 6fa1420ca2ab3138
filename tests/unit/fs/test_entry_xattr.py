"""entry_xattr.get answers what xattr.get_at answers, with getxattrat(2) or without it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from smbsrv.errors import SmbError
from smbsrv.fs import entry_xattr, xattr
from smbsrv.wire.status import NtStatus

NAME = "user.test.entry"


@pytest.fixture(params=["getxattrat", "proc path"])
def directory(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    if request.param == "proc path":
        monkeypatch.setattr(entry_xattr, "_syscall", None)
    (tmp_path / "with").write_bytes(b"")
    os.setxattr(tmp_path / "with", NAME, b"\x00value\xff" * 100)
    (tmp_path / "without").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    os.setxattr(tmp_path / "sub", NAME, b"d")
    os.symlink("with", tmp_path / "link")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def test_values_and_absence_as_get_at(directory: int) -> None:
    for entry in ("with", "without", "sub", "link"):
        assert entry_xattr.get(directory, entry, NAME) == xattr.get_at(directory, entry, NAME)
    assert entry_xattr.get(directory, "with", NAME) == b"\x00value\xff" * 100
    assert entry_xattr.get(directory, "without", NAME) is None
    assert entry_xattr.get(directory, "link", NAME) is None  # the link itself, not its target


def test_a_missing_entry_is_the_error_get_at_raises(directory: int) -> None:
    with pytest.raises(SmbError) as raised:
        entry_xattr.get(directory, "gone", NAME)
    assert raised.value.status == NtStatus.STATUS_OBJECT_NAME_NOT_FOUND


def test_a_value_larger_than_the_buffer_is_read_whole(directory: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entry_xattr, "_VALUE_BYTES", 16)
    monkeypatch.setattr(entry_xattr, "_buffers", entry_xattr._Buffers())  # ERANGE, then xattr.get_at
    assert entry_xattr.get(directory, "with", NAME) == b"\x00value\xff" * 100
