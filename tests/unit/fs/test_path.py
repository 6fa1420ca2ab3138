"""SmbPath.parse and the name decoder it relies on: the statuses documented in smbsrv/fs/path.py."""

import pytest

from smbsrv.fs.path import SmbPath
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.buffer import decode_utf16 as decode_utf16_name
from smbsrv.wire.status import NtStatus

INVALID = NtStatus.STATUS_OBJECT_NAME_INVALID
SYNTAX_BAD = NtStatus.STATUS_OBJECT_PATH_SYNTAX_BAD
PARAM = NtStatus.STATUS_INVALID_PARAMETER


def status_of(name: str, *, posix: bool = False) -> NtStatus:
    with pytest.raises(SmbError) as info:
        SmbPath.parse(name, posix=posix)
    return info.value.status


@pytest.mark.parametrize(
    ("name", "components", "stream", "trailing"),
    [
        ("", (), None, False),
        ("a", ("a",), None, False),
        ("a\\b\\c.txt", ("a", "b", "c.txt"), None, False),
        ("a/b", ("a", "b"), None, False),  # '/' is a separator on non-POSIX opens, as in Samba
        ("dir\\", ("dir",), None, True),
        ("f:s", ("f",), "s", False),
        ("f:s:$DATA", ("f",), "s", False),
        ("f:s:$data", ("f",), "s", False),
        ("f::$DATA", ("f",), None, False),
        ("f:$DATA", ("f",), "$DATA", False),  # a stream named "$DATA" (Samba streams_xattr)
        ("d\\f:a*b", ("d", "f"), "a*b", False),  # stream names may hold wildcards
        ("...", ("...",), None, False),
        (" x ", (" x ",), None, False),
        ("é\\日本", ("é", "日本"), None, False),
        ("a" * 255, ("a" * 255,), None, False),
        ("\U0001f600" * 127, ("\U0001f600" * 127,), None, False),  # 254 UTF-16 units
    ],
)
def test_valid_windows_names(
    name: str, components: tuple[str, ...], stream: str | None, trailing: bool
) -> None:
    path = SmbPath.parse(name, posix=False)
    assert path.components == components
    assert path.stream == stream
    assert path.has_trailing_separator is trailing


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("..", SYNTAX_BAD),
        ("..\\x", SYNTAX_BAD),
        ("a\\..\\b", SYNTAX_BAD),
        ("a\\..", SYNTAX_BAD),
        ("a/../../etc/passwd", SYNTAX_BAD),
        ("\\a", PARAM),
        ("/a", PARAM),
        ("\\", PARAM),
        ("\\\\server\\share\\x", PARAM),
        (".", INVALID),
        ("a\\.\\b", INVALID),
        ("a\\\\b", INVALID),
        ("a\\\\", INVALID),
        ("a\x00b", INVALID),
        ("a\\b\x00", INVALID),
        ("x*y", INVALID),
        ("x?y", INVALID),
        ("x<y", INVALID),
        ("x>y", INVALID),
        ("x|y", INVALID),
        ('x"y', INVALID),
        ("x\x01y", INVALID),
        ("x\x1fy", INVALID),
        ("a" * 256, INVALID),
        ("\U0001f600" * 128, INVALID),  # 128 code points, 256 UTF-16 units
        ("d:s\\f", INVALID),  # a stream part before a separator
        ("f:s\\", INVALID),
        ("f:", INVALID),
        ("f:s:", INVALID),
        ("f::", INVALID),
        ("f:a:b:$DATA", INVALID),
        (":s", INVALID),
        ("f:s:$FOO", PARAM),
        ("f::$INDEX_ALLOCATION", PARAM),
        ("f:" + "s" * 256, INVALID),
        ("a\ud800b", INVALID),  # a lone surrogate from a lenient decoder
    ],
)
def test_invalid_windows_names(name: str, status: NtStatus) -> None:
    assert status_of(name) == status


def test_whole_path_limit() -> None:
    ok = "\\".join(["a" * 200] * 163)  # 32,762 units
    assert len(SmbPath.parse(ok, posix=False).components) == 163
    assert status_of(ok + "\\abcdef") == INVALID


@pytest.mark.parametrize(
    ("name", "components", "trailing"),
    [
        ("a/b", ("a", "b"), False),
        ("a\\b", ("a\\b",), False),  # '\\' is an ordinary character
        ("f:s", ("f:s",), False),  # no stream syntax
        ('x*?<>|"y', ('x*?<>|"y',), False),
        ("x\x01y", ("x\x01y",), False),
        ("d/", ("d",), True),
    ],
)
def test_valid_posix_names(name: str, components: tuple[str, ...], trailing: bool) -> None:
    path = SmbPath.parse(name, posix=True)
    assert path.components == components
    assert path.stream is None
    assert path.has_trailing_separator is trailing


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("..", SYNTAX_BAD),
        ("a/../b", SYNTAX_BAD),
        ("/etc/passwd", PARAM),
        ("a\x00", INVALID),
        ("a//b", INVALID),
        ("./a", INVALID),
        ("a" * 256, INVALID),
    ],
)
def test_invalid_posix_names(name: str, status: NtStatus) -> None:
    assert status_of(name, posix=True) == status


def test_dotdot_with_backslash_is_plain_name_on_posix() -> None:
    assert SmbPath.parse("..\\x", posix=True).components == ("..\\x",)


def test_helpers() -> None:
    path = SmbPath.parse("a\\b:s", posix=False)
    assert path.name == "b"
    assert path.parent().components == ("a",)
    assert str(path) == "a\\b:s"
    assert SmbPath.parse("", posix=False).is_root
    assert path.parent().child("c").components == ("a", "c")
    with pytest.raises(SmbError):
        path.parent().child("..")
    with pytest.raises(SmbError):
        path.parent().child("x\\y")


def test_decode_utf16_name() -> None:
    assert decode_utf16_name("dir\\é😀".encode("utf-16-le")) == "dir\\é😀"
    assert decode_utf16_name(b"") == ""
    for raw in (b"a\x00b", b"\x00\xd8", b"\x00\xdca\x00", b"a\x00\x00\xd8"):
        with pytest.raises(SmbError) as info:
            decode_utf16_name(raw)
        assert info.value.status == INVALID
