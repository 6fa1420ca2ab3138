"""8.3 short names (fs/mangle.py) and finding a file by one (fs/resolver.py).

The expected short names are what a private Samba 4.17.12 smbd answered for FileAlternateNameInformation of
the same names (scratch comparison, every one identical), so smbsrv and Samba give a file the same short name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smbsrv.errors import SmbError
from smbsrv.fs import mangle
from smbsrv.fs.path import SmbPath
from smbsrv.fs.resolver import ShareRoot
from smbsrv.wire.status import NtStatus

SAMBA_4_17 = {
    "foo.txt": "foo.txt",
    "UPPER.TXT": "UPPER.TXT",
    "$dollar$.$$$": "$dollar$.$$$",
    "A~B": "A~B",
    "LongFileName.txt": "LNHQX6~C.TXT",
    "Long File Name.html": "LC2TKM~X",  # a 4-character extension is hashed with the rest
    ".bashrc": "_J265M~E",
    "con": "CSHOFG~F",  # DOS device names are always mangled
    "con.txt": "CSHOFG~F.TXT",
    "a.b.c.d": "A40DID~R.D",
    "ABCDEFGHI": "AV0X4T~Y",
    "x" * 200: "XS4XY5~X",
    "héllo wörld.doc": "H05Y4B~S.DOC",
    "abc.": "AZIJUG~F",
    "ab cd": "AMLNXK~L",
    "a+b.txt": "A0QZKZ~5.TXT",
    "Ünïcode": "_QBVYA~Z",
    "mixed.Case.Jpeg": "MC9X06~K",
    "1234567890.12": "14JB5N~M.12",
    "dot..dot": "DUZIB7~O.DOT",
    "..hidden": "_3KUQ4~D",
    "a[b].c": "AMHX3Y~M.C",
}


@pytest.mark.parametrize(("name", "expected"), SAMBA_4_17.items(), ids=[n[:20] for n in SAMBA_4_17])
def test_short_names_are_samba_s(name: str, expected: str) -> None:
    assert mangle.short_name(name) == expected


def test_short_name_ignores_case() -> None:
    assert mangle.short_name("longfilename.TXT") == mangle.short_name("LongFileName.txt")


@pytest.mark.parametrize("name", [".", "..", "a", "12345678", "12345678.123", ".abc", "a-b_c$~.x"])
def test_8_3_names(name: str) -> None:
    assert mangle.is_8_3(name)


@pytest.mark.parametrize("name", ["123456789", "a.1234", "a.b.c", "a b", "a+b", "a,b", "a[b]", "a=b", "é",
                                  "a*b", "a?b", "", "a.", "a\x01"])
def test_not_8_3_names(name: str) -> None:
    assert not (name and mangle.is_8_3(name))


def test_looks_mangled_only_for_the_shape() -> None:
    for name in ("LNHQX6~C.TXT", "lnhqx6~c.txt", "_J265M~E", "A40DID~R.D"):
        assert mangle.looks_mangled(name)
    for name in ("LNHQX6~C.TXTX", "LNHQX6-C", "LNHQ~6~C", "LN.QX6~C", "LNHQX6~", "A~B", "LNHQX6~C.T T"):
        assert not mangle.looks_mangled(name)


@pytest.fixture
def share(tmp_path: Path) -> ShareRoot:
    root = ShareRoot.open(str(tmp_path), case_sensitive=False, mangled_names=True)
    yield root  # type: ignore[misc]
    root.close()


def _resolve(share: ShareRoot, name: str, ci: bool = True) -> tuple[str, ...] | None:
    with share.resolve(SmbPath.parse(name, posix=False), case_insensitive=ci) as res:
        return res.components if res.exists else None


def test_open_by_short_name_scans_once_then_remembers(share: ShareRoot, tmp_path: Path) -> None:
    (tmp_path / "Long Directory Name").mkdir()
    (tmp_path / "Long Directory Name" / "LongFileName.txt").write_text("x")
    assert share.short_names is not None
    assert _resolve(share, "LONGDI~1") is None  # the shape of a Windows short name, not one of ours
    scans = share.short_names.scans
    short_dir = mangle.short_name("Long Directory Name")
    assert _resolve(share, f"{short_dir.lower()}\\lnhqx6~c.txt") == ("Long Directory Name", "LongFileName.txt")
    assert share.short_names.scans == scans + 2  # neither was handed out before: one scan per directory
    # Handed out (a listing or FileAlternateNameInformation), a short name needs no scan.
    assert share.short_names.short_name("Long Directory Name") == short_dir
    assert _resolve(share, short_dir) == ("Long Directory Name",)
    assert share.short_names.scans == scans + 2
    # Existing names and names without the shape never cost a scan.
    assert _resolve(share, "long directory name") == ("Long Directory Name",)
    assert _resolve(share, "no-such-file.txt") is None
    assert share.short_names.scans == scans + 2


def test_create_by_a_remembered_short_name_gets_the_long_name(share: ShareRoot, tmp_path: Path) -> None:
    """smbtorture smb2.mangle: delete by short name, create by short name, delete by long name."""
    (tmp_path / "LongFileName.txt").write_text("x")
    assert share.short_names is not None
    short = share.short_names.short_name("LongFileName.txt")
    (tmp_path / "LongFileName.txt").unlink()
    with share.resolve(SmbPath.parse(short, posix=False), case_insensitive=True) as res:
        assert not res.exists and res.name == "LongFileName.txt"


def test_posix_lookups_and_shares_without_short_names_do_not_map(tmp_path: Path) -> None:
    (tmp_path / "LongFileName.txt").write_text("x")
    with ShareRoot.open(str(tmp_path), case_sensitive=False, mangled_names=True) as root:
        assert _resolve(root, "LNHQX6~C.TXT", ci=False) is None
    with ShareRoot.open(str(tmp_path), case_sensitive=False) as root:
        assert root.short_names is None
        assert _resolve(root, "LNHQX6~C.TXT") is None


def test_intermediate_short_name_that_is_a_file(share: ShareRoot, tmp_path: Path) -> None:
    (tmp_path / "LongFileName.txt").write_text("x")
    with pytest.raises(SmbError) as caught:
        _resolve(share, "LNHQX6~C.TXT\\inner")
    assert caught.value.status == NtStatus.STATUS_OBJECT_PATH_NOT_FOUND


def test_remembered_names_are_bounded() -> None:
    names = mangle.ShortNames(limit=3)
    for index in range(10):
        names.short_name(f"a long file name {index}.txt")
    assert len(names._names) == 3


def test_symlink_met_through_a_short_name(share: ShareRoot, tmp_path: Path) -> None:
    (tmp_path / "Long Directory Name").mkdir()
    os.symlink("Long Directory Name", tmp_path / "Long Link Name")
    with pytest.raises(Exception) as caught:
        _resolve(share, mangle.short_name("Long Link Name") + "\\x")
    assert type(caught.value).__name__ == "SymlinkMet"


def test_mangled_names_setting_is_checked(tmp_path: Path) -> None:
    from smbsrv.config import ConfigError, load_config

    path = tmp_path / "smbsrv.toml"
    for value in ("yes", "no", "illegal"):
        path.write_text(f'[shares.s]\npath = "{tmp_path}"\nmangled_names = "{value}"\n')
        assert load_config(str(path)).shares[0].mangled_names == value
    path.write_text(f'[shares.s]\npath = "{tmp_path}"\nmangled_names = "maybe"\n')
    with pytest.raises(ConfigError, match="mangled_names"):
        load_config(str(path))
