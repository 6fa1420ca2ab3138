"""Escape matrix against the real daemon: no client request reaches anything outside the share.

The server here runs as root and the test user acts as root (the share directory's owner), so a single escape
would hand out /etc. Every name form that could climb out ('..', absolute names, symlinks met in the middle
or at the end of a path, a symlink swapped in for a directory while the client keeps opening through it,
renames and hard links aimed outside, directory listings) must be refused, and no byte of /etc or of the
"outside" directory may ever be returned. Symlinks are reported with STATUS_STOPPED_ON_SYMLINK and the
symbolic link error response ([MS-SMB2] 2.2.2.2.1), never followed by the server (README "Safety").
"""

from __future__ import annotations

import ctypes
import os
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import (
    SmbServer,
    assert_no_server_bugs,
    checked_while,
    serve_as_test_account,
    start_server,
    stop_server,
)

_PASSWD_MARK = b"root:"
_OUTSIDE_SECRET = b"OUTSIDE-SECRET-6d1f"
_SAFE = b"SAFE-INSIDE-CONTENT"
_POSIX_CONTEXT_NAME = b.POSIX_EXTENSIONS_GUID
STATUS_OBJECT_PATH_SYNTAX_BAD = 0xC000003B
STATUS_IO_REPARSE_TAG_NOT_HANDLED = 0xC0000279


@dataclass
class Layout:
    root: Path
    share: Path
    outside: Path


@pytest.fixture(scope="module")
def layout() -> Iterator[Layout]:
    with tempfile.TemporaryDirectory(prefix="smbsrv-escape-") as tmp:
        root = Path(tmp)
        share, outside = root / "share", root / "outside"
        share.mkdir()
        outside.mkdir()
        (outside / "secret.txt").write_bytes(_OUTSIDE_SECRET)
        (share / "plain.txt").write_bytes(_SAFE)
        (share / "sub").mkdir()
        (share / "sub" / "inner.txt").write_bytes(_SAFE)
        os.symlink("/etc", share / "etclink")
        os.symlink("/etc/passwd", share / "passwdlink")
        os.symlink("../" * 12 + "etc", share / "rellink")
        os.symlink(str(outside), share / "outdir")
        os.symlink("../outside", share / "reloutdir")
        os.symlink("/etc", share / "sub" / "etclink")
        yield Layout(root, share, outside)


@pytest.fixture(scope="module")
def escape_server(layout: Layout) -> Iterator[SmbServer]:
    server = start_server(layout.share, layout.root / "server.log")
    try:
        yield server
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


@pytest.fixture
def server(escape_server: SmbServer, layout: Layout) -> Iterator[SmbServer]:
    outside_before = _snapshot(layout.outside)
    root_before = sorted(p.name for p in layout.root.iterdir())
    with checked_while(escape_server) as checked:
        yield checked
        assert _snapshot(layout.outside) == outside_before, "the outside directory changed"
        assert sorted(p.name for p in layout.root.iterdir()) == root_before, \
            "something appeared next to the share"


@pytest.fixture
def client(server: SmbServer) -> Iterator[b.Client]:
    with b.connect(server.host, server.port, server.user, server.password) as connected:
        yield connected


@pytest.fixture
def posix_client(server: SmbServer) -> Iterator[b.Client]:
    client = b.Client(server.host, server.port).connect()
    try:
        contexts = [b.preauth_context(), b.signing_context(), b.posix_context()]
        assert client.negotiate((0x0311,), contexts=contexts).status == b.STATUS_SUCCESS
        assert client.session_setup(server.user, server.password) == b.STATUS_SUCCESS
        assert client.tree_connect("share").status == b.STATUS_SUCCESS
        yield client
    finally:
        client.close()


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(directory.rglob("*"))}


def _status(response: b.Response) -> str:
    return b.status_name(response.status)


def _posix_create(client: b.Client, name: str, **kwargs: object) -> b.Response:
    contexts = b.create_context(_POSIX_CONTEXT_NAME, struct.pack("<I", 0o644))
    return client.create(name, contexts=contexts, **kwargs)


def _symlink_error(response: b.Response) -> tuple[int, str, str, int]:
    """(UnparsedPathLength, SubstituteName, PrintName, Flags) of a symbolic link error response
    ([MS-SMB2] 2.2.2.2.1), unwrapping the 3.1.1 error context when there is one."""
    data = response.error_data()
    if response.body[2]:
        data_length, error_id = struct.unpack_from("<II", data, 0)
        assert error_id == 0
        data = data[8:8 + data_length]
    sym_link_length, tag, reparse_tag = struct.unpack_from("<I4sI", data, 0)
    assert tag == b"SYML" and reparse_tag == 0xA000000C
    assert sym_link_length == len(data) - 4
    (_, unparsed, sub_offset, sub_length, print_offset, print_length, flags) = struct.unpack_from(
        "<HHHHHHI", data, 12)
    path_buffer = data[28:]
    substitute = path_buffer[sub_offset:sub_offset + sub_length].decode("utf-16-le")
    print_name = path_buffer[print_offset:print_offset + print_length].decode("utf-16-le")
    return unparsed, substitute, print_name, flags


def _assert_no_foreign_bytes(data: bytes) -> None:
    assert _PASSWD_MARK not in data and _OUTSIDE_SECRET not in data, data[:200]


def _read_all(client: b.Client, file_id: tuple[int, int]) -> bytes:
    response = client.read(file_id, 0, 65536)
    if response.status != b.STATUS_SUCCESS:
        return b""
    return b.read_data(response)


# -- '..' and absolute names ------------------------------------------------------------------------------------

_CLIMBING = ["..", "..\\etc\\passwd", "..\\..\\..\\..\\..\\etc\\passwd", "sub\\..\\..\\etc\\passwd",
             "sub\\..\\..\\outside\\secret.txt", "..\\outside\\secret.txt", "sub/../../etc/passwd",
             "../outside/secret.txt", "sub\\..\\..", "..\\share\\plain.txt"]


@pytest.mark.parametrize("name", _CLIMBING)
def test_dotdot_names_are_refused(client: b.Client, name: str) -> None:
    # Samba answers OBJECT_PATH_SYNTAX_BAD for a '..' that climbs above the share (smbtorture smb2.mkdir).
    for disposition in (b.FILE_OPEN, b.FILE_OPEN_IF):
        response = client.create(name, desired_access=b.GENERIC_READ, disposition=disposition)
        assert response.status == STATUS_OBJECT_PATH_SYNTAX_BAD, (_status(response), disposition)
    response = client.create(name + "\\escape-new", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE)
    assert response.status != b.STATUS_SUCCESS
    response = client.create(name, options=b.FILE_DIRECTORY_FILE)
    assert response.status != b.STATUS_SUCCESS


@pytest.mark.parametrize(("name", "expected"), [
    ("sub\\..\\plain.txt", STATUS_OBJECT_PATH_SYNTAX_BAD),
    ("sub\\..", STATUS_OBJECT_PATH_SYNTAX_BAD),
    ("sub\\.\\inner.txt", b.STATUS_OBJECT_NAME_INVALID),
    (".\\plain.txt", b.STATUS_OBJECT_NAME_INVALID),
    ("sub\\.", b.STATUS_OBJECT_NAME_INVALID),
    (".", b.STATUS_OBJECT_NAME_INVALID),
])
def test_inner_dot_components_are_refused(client: b.Client, name: str, expected: int) -> None:
    """The resolver refuses every '.' and '..' component, even ones that would stay inside (fs/path.py): a
    '..' with OBJECT_PATH_SYNTAX_BAD (Samba's answer for a '..' that climbs out), a '.' with
    OBJECT_NAME_INVALID (Samba's answer for a final '.'). Samba 4.17 differs for the names that stay inside: it
    opens "sub\\..\\plain.txt" and "sub\\..", and answers OBJECT_PATH_NOT_FOUND for "sub\\.\\inner.txt" and
    ".\\plain.txt"; Windows (NTFS) has no '.'/'..' entries to walk either. smbsrv keeps the stricter answer by
    design: no name form that contains a dot component is ever resolved."""
    response = client.create(name)
    assert response.status == expected, _status(response)


@pytest.mark.parametrize(("name", "expected"), [
    ("\\etc\\passwd", "STATUS_INVALID_PARAMETER"),
    ("/etc/passwd", "STATUS_INVALID_PARAMETER"),
    ("\\\\localhost\\share\\plain.txt", "STATUS_INVALID_PARAMETER"),
    ("C:\\etc\\passwd", "STATUS_OBJECT_NAME_INVALID"),
    ("\\??\\C:\\etc\\passwd", "STATUS_INVALID_PARAMETER"),
    ("etc\\passwd", "STATUS_OBJECT_PATH_NOT_FOUND"),
    ("passwd", "STATUS_OBJECT_NAME_NOT_FOUND"),
])
def test_absolute_looking_names(client: b.Client, name: str, expected: str) -> None:
    assert _status(client.create(name)) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("../etc/passwd", STATUS_OBJECT_PATH_SYNTAX_BAD),
    ("sub/../../etc/passwd", STATUS_OBJECT_PATH_SYNTAX_BAD),
    ("../outside/secret.txt", STATUS_OBJECT_PATH_SYNTAX_BAD),
    ("sub/../plain.txt", STATUS_OBJECT_PATH_SYNTAX_BAD),
    ("./plain.txt", b.STATUS_OBJECT_NAME_INVALID),
    ("/etc/passwd", b.STATUS_INVALID_PARAMETER),
    ("//etc/passwd", b.STATUS_INVALID_PARAMETER),
])
def test_posix_opens_cannot_climb(posix_client: b.Client, name: str, expected: int) -> None:
    """A POSIX open ('/' separates components) answers as a Windows one: a '..' component
    OBJECT_PATH_SYNTAX_BAD, a '.' OBJECT_NAME_INVALID, a leading separator INVALID_PARAMETER ([MS-SMB2]
    3.3.5.9: a name must not start with a separator). Samba 4.17 as packaged has no SMB3 POSIX extensions to
    compare with, so these are pinned to the Windows-semantics answers above."""
    response = _posix_create(posix_client, name)
    assert response.status == expected, _status(response)
    response = _posix_create(posix_client, name + "-new", desired_access=b.GENERIC_WRITE,
                             disposition=b.FILE_CREATE)
    assert response.status == expected, _status(response)


# -- symlinks pointing out --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "target", "unparsed"), [
    ("etclink\\passwd", "/etc", "\\passwd"),
    ("etclink\\ssh\\sshd_config", "/etc", "\\ssh\\sshd_config"),
    ("sub\\etclink\\passwd", "/etc", "\\passwd"),
    ("rellink\\passwd", "../" * 12 + "etc", "\\passwd"),
    ("outdir\\secret.txt", None, "\\secret.txt"),
    ("reloutdir\\secret.txt", "../outside", "\\secret.txt"),
    ("etclink", "/etc", ""),
    ("passwdlink", "/etc/passwd", ""),
    ("outdir", None, ""),
])
def test_symlink_is_never_followed(client: b.Client, layout: Layout, name: str, target: str | None,
                                   unparsed: str) -> None:
    target = str(layout.outside) if target is None else target
    for options in (0, b.FILE_NON_DIRECTORY_FILE, b.FILE_DIRECTORY_FILE):
        response = client.create(name, desired_access=b.GENERIC_READ, options=options)
        assert _status(response) == "STATUS_STOPPED_ON_SYMLINK", options
        unparsed_length, substitute, print_name, flags = _symlink_error(response)
        assert unparsed_length == len(unparsed.encode("utf-16-le"))
        assert substitute == target and print_name == target
        assert flags == (0 if target.startswith("/") else 1)  # SYMLINK_FLAG_RELATIVE


@pytest.mark.parametrize("name", ["etclink\\evil-new", "outdir\\evil-new", "sub\\etclink\\evil-new",
                                  "reloutdir\\evil-new"])
def test_create_through_symlink(client: b.Client, name: str) -> None:
    for options in (0, b.FILE_DIRECTORY_FILE):
        response = client.create(name, desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE, options=options)
        assert _status(response) == "STATUS_STOPPED_ON_SYMLINK"
    assert not Path("/etc/evil-new").exists()


def _ioctl_output(response: b.Response) -> bytes:
    """OutputOffset(4)@32, OutputCount(4)@36 of an IOCTL response ([MS-SMB2] 2.2.32)."""
    offset, count = struct.unpack_from("<II", response.body, 32)
    return response.body[offset - b.HEADER_SIZE:offset - b.HEADER_SIZE + count]


@pytest.mark.parametrize(("name", "target"), [("passwdlink", "/etc/passwd"), ("etclink", "/etc"),
                                              ("outdir", None), ("rellink", "../" * 12 + "etc")])
def test_open_reparse_point_never_yields_target_data(client: b.Client, layout: Layout, name: str,
                                                     target: str | None) -> None:
    """With FILE_OPEN_REPARSE_POINT the client gets the link itself (its target text, through
    FSCTL_GET_REPARSE_POINT where implemented), never the content of what it points to."""
    response = client.create(name, desired_access=b.FILE_READ_ATTRIBUTES | b.READ_CONTROL | b.SYNCHRONIZE,
                             options=b.FILE_OPEN_REPARSE_POINT)
    assert _status(response) == "STATUS_SUCCESS"
    file_id = b.create_file_id(response.body)
    reparse = client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, b.FSCTL_GET_REPARSE_POINT))
    assert _status(reparse) == "STATUS_SUCCESS"
    _assert_no_foreign_bytes(reparse.body)
    # [MS-FSCC] 2.1.2.4: the symlink buffer names the target as text; SubstituteName @8/@10 into PathBuffer @20.
    buffer = _ioctl_output(reparse)
    tag, _, _, sub_offset, sub_length = struct.unpack_from("<IHHHH", buffer, 0)
    assert tag == 0xA000000C
    substitute = buffer[20 + sub_offset:20 + sub_offset + sub_length].decode("utf-16-le")
    assert substitute == (str(layout.outside) if target is None else target)
    listing = client.query_directory(file_id, "*")
    assert listing.status != b.STATUS_SUCCESS
    _assert_no_foreign_bytes(listing.body)
    _assert_no_foreign_bytes(_read_all(client, file_id))
    client.close_file(file_id)
    # Asking for data on the link: either refused, or the link's own (empty) data, never the target's.
    response = client.create(name, desired_access=b.GENERIC_READ, options=b.FILE_OPEN_REPARSE_POINT)
    if response.status == b.STATUS_SUCCESS:
        file_id = b.create_file_id(response.body)
        _assert_no_foreign_bytes(_read_all(client, file_id))
        listing = client.query_directory(file_id, "*")
        if listing.status == b.STATUS_SUCCESS:
            names = b.directory_names(b.output_buffer(listing))
            assert "passwd" not in names and "secret.txt" not in names, names
        client.close_file(file_id)
    else:
        assert response.status == STATUS_IO_REPARSE_TAG_NOT_HANDLED, _status(response)


def test_overwrite_through_final_symlink(client: b.Client, layout: Layout) -> None:
    before = Path("/etc/passwd").read_bytes()
    for disposition in (b.FILE_OVERWRITE, b.FILE_OVERWRITE_IF, b.FILE_SUPERSEDE):
        response = client.create("passwdlink", desired_access=b.GENERIC_WRITE, disposition=disposition)
        assert _status(response) == "STATUS_STOPPED_ON_SYMLINK"
        response = client.create("outdir\\secret.txt", desired_access=b.GENERIC_WRITE, disposition=disposition)
        assert _status(response) == "STATUS_STOPPED_ON_SYMLINK"
    assert Path("/etc/passwd").read_bytes() == before
    assert os.path.islink(layout.share / "passwdlink")


def test_delete_of_symlink_removes_only_the_link(client: b.Client, layout: Layout) -> None:
    os.symlink(str(layout.outside / "secret.txt"), layout.share / "victimlink")
    response = client.create("victimlink", desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                             options=b.FILE_OPEN_REPARSE_POINT | b.FILE_DELETE_ON_CLOSE)
    assert _status(response) == "STATUS_SUCCESS"
    client.close_file(b.create_file_id(response.body))
    assert not os.path.lexists(layout.share / "victimlink")
    assert (layout.outside / "secret.txt").read_bytes() == _OUTSIDE_SECRET


# -- a symlink swapped in while the client walks through it ------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(first: Path, second: Path) -> None:
    """renameat2(RENAME_EXCHANGE): swap two names atomically, so the path never goes missing."""
    if _libc.renameat2(_AT_FDCWD, bytes(first), _AT_FDCWD, bytes(second), _RENAME_EXCHANGE) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


class _Swapper(threading.Thread):
    """Flips `name` between a real directory (holding a harmless `passwd`) and a symlink to /etc."""

    def __init__(self, share: Path, name: str, link_target: str) -> None:
        super().__init__(daemon=True)
        self.path = share / name
        self.alternate = share / f".{name}-alternate"
        self.path.mkdir()
        (self.path / "passwd").write_bytes(_SAFE)
        (self.path / "secret.txt").write_bytes(_SAFE)
        os.symlink(link_target, self.alternate)
        self.stop = threading.Event()
        self.swaps = 0
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                _exchange(self.path, self.alternate)
                self.swaps += 1
                if self.swaps % 64 == 0:
                    time.sleep(0)  # let the server threads run on a busy machine
        except OSError as exc:  # reported by the test thread
            self.error = exc

    def finish(self) -> None:
        self.stop.set()
        self.join(10)
        if os.path.islink(self.path):
            _exchange(self.path, self.alternate)


@pytest.mark.parametrize("link_target", ["/etc", "outside"])
def test_symlink_swapped_in_for_a_directory(client: b.Client, layout: Layout, link_target: str) -> None:
    name = f"swap-{uuid.uuid4().hex[:6]}"
    target = str(layout.outside) if link_target == "outside" else link_target
    leaf = "secret.txt" if link_target == "outside" else "passwd"
    swapper = _Swapper(layout.share, name, target)
    statuses: dict[str, int] = {}
    safe_reads = 0
    swapper.start()
    try:
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            responses = client.compound(
                b.Req(b.SMB2_CREATE, b.create_body(f"{name}\\{leaf}", desired_access=b.GENERIC_READ)),
                b.Req(b.SMB2_READ, b.read_body(b.RELATED_FILE_ID, 0, 4096), related=True),
                b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True))
            key = _status(responses[0])
            statuses[key] = statuses.get(key, 0) + 1
            if responses[1].status == b.STATUS_SUCCESS:
                data = b.read_data(responses[1])
                _assert_no_foreign_bytes(data)
                assert data == _SAFE
                safe_reads += 1
            for response in responses:
                _assert_no_foreign_bytes(response.body)
            # Listing through the swapped name must not show the target's entries either.
            listing = client.create(name, desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
            if listing.status == b.STATUS_SUCCESS:
                dir_id = b.create_file_id(listing.body)
                found = client.query_directory(dir_id, "*")
                if found.status == b.STATUS_SUCCESS:
                    names = set(b.directory_names(b.output_buffer(found)))
                    assert names <= {".", "..", "passwd", "secret.txt"}, names
                client.close_file(dir_id)
    finally:
        swapper.finish()
    assert swapper.error is None, swapper.error
    assert swapper.swaps > 100, swapper.swaps
    allowed = {"STATUS_SUCCESS", "STATUS_STOPPED_ON_SYMLINK", "STATUS_OBJECT_PATH_NOT_FOUND",
               "STATUS_OBJECT_NAME_NOT_FOUND"}
    assert set(statuses) <= allowed, statuses
    # Both states were seen, or the race was not exercised.
    assert safe_reads > 0 and statuses.get("STATUS_STOPPED_ON_SYMLINK", 0) > 0, statuses


def test_symlink_swapped_in_for_the_final_file(client: b.Client, layout: Layout) -> None:
    name = f"fswap-{uuid.uuid4().hex[:6]}"
    path, alternate = layout.share / name, layout.share / f".{name}-alternate"
    path.write_bytes(_SAFE)
    os.symlink("/etc/passwd", alternate)
    stop = threading.Event()
    swaps = 0

    def flip() -> None:
        nonlocal swaps
        while not stop.is_set():
            _exchange(path, alternate)
            swaps += 1

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    statuses: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            for options in (0, b.FILE_OPEN_REPARSE_POINT):
                responses = client.compound(
                    b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_READ, options=options)),
                    b.Req(b.SMB2_READ, b.read_body(b.RELATED_FILE_ID, 0, 4096), related=True),
                    b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True))
                key = _status(responses[0])
                statuses[key] = statuses.get(key, 0) + 1
                for response in responses:
                    _assert_no_foreign_bytes(response.body)
                if responses[1].status == b.STATUS_SUCCESS:
                    assert b.read_data(responses[1]) in (_SAFE, b"")
    finally:
        stop.set()
        thread.join(10)
    assert swaps > 100
    assert "STATUS_SUCCESS" in statuses, statuses


# -- renames and hard links aimed outside ------------------------------------------------------------------------

_OUTSIDE_TARGETS = ["..\\moved", "..\\outside\\moved", "\\..\\moved", "sub\\..\\..\\moved", "/tmp/moved",
                    "\\etc\\moved", "etclink\\moved", "outdir\\moved", "reloutdir\\moved", "sub\\etclink\\moved",
                    "..", "C:\\moved"]


@pytest.mark.parametrize("target", _OUTSIDE_TARGETS)
def test_rename_outside_is_refused(client: b.Client, layout: Layout, target: str) -> None:
    name = f"ren-{uuid.uuid4().hex[:6]}.txt"
    (layout.share / name).write_bytes(_SAFE)
    file_id = client.open(name, desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES)
    for replace in (False, True):
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                   b.rename_info(target, replace_if_exists=replace))
        assert response.status != b.STATUS_SUCCESS, target
    client.close_file(file_id)
    assert (layout.share / name).read_bytes() == _SAFE
    assert not Path("/etc/moved").exists() and not Path("/tmp/moved").exists()


def test_rename_and_link_inside_work(client: b.Client, layout: Layout) -> None:
    """The positive control for the refusals above: the same requests with an inside target succeed."""
    name = f"ctl-{uuid.uuid4().hex[:6]}.txt"
    (layout.share / name).write_bytes(_SAFE)
    serve_as_test_account(layout.share / name)  # linking needs the owner (fs.protected_hardlinks)
    file_id = client.open(name, desired_access=b.DELETE | b.GENERIC_READ | b.FILE_WRITE_ATTRIBUTES)
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION, b.rename_info(f"sub\\{name}"))
    assert _status(response) == "STATUS_SUCCESS"
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION, b.rename_info(name + "-2"))
    assert _status(response) == "STATUS_SUCCESS"
    client.close_file(file_id)
    assert (layout.share / (name + "-2")).read_bytes() == _SAFE
    assert os.path.samefile(layout.share / (name + "-2"), layout.share / "sub" / name)
    os.unlink(layout.share / "sub" / name)


def test_rename_of_directory_into_itself_and_out(client: b.Client, layout: Layout) -> None:
    name = f"rdir-{uuid.uuid4().hex[:6]}"
    (layout.share / name).mkdir()
    dir_id = client.open(name, desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES, options=b.FILE_DIRECTORY_FILE)
    for target in (f"{name}\\inside", "..\\escaped-dir", "outdir\\escaped-dir"):
        response = client.set_info(dir_id, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION, b.rename_info(target))
        assert response.status != b.STATUS_SUCCESS, target
    client.close_file(dir_id)
    assert (layout.share / name).is_dir()


@pytest.mark.parametrize("target", _OUTSIDE_TARGETS)
def test_hard_link_outside_is_refused(client: b.Client, layout: Layout, target: str) -> None:
    name = f"hl-{uuid.uuid4().hex[:6]}.txt"
    (layout.share / name).write_bytes(_SAFE)
    serve_as_test_account(layout.share / name)  # linking needs the owner (fs.protected_hardlinks)
    file_id = client.open(name, desired_access=b.GENERIC_READ | b.FILE_WRITE_ATTRIBUTES)
    for replace in (False, True):
        response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION,
                                   b.rename_info(target, replace_if_exists=replace))
        assert response.status != b.STATUS_SUCCESS, target
    client.close_file(file_id)
    assert os.stat(layout.share / name).st_nlink == 1


def test_hard_link_to_symlinked_file_is_not_a_way_out(client: b.Client, layout: Layout) -> None:
    # Linking the symlink itself only makes another symlink: still never followed, still no /etc bytes.
    response = client.create("passwdlink", desired_access=b.FILE_READ_ATTRIBUTES | b.FILE_WRITE_ATTRIBUTES,
                             options=b.FILE_OPEN_REPARSE_POINT)
    assert _status(response) == "STATUS_SUCCESS"
    file_id = b.create_file_id(response.body)
    link_name = f"hl-passwd-{uuid.uuid4().hex[:6]}"
    client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_LINK_INFORMATION, b.rename_info(link_name))
    client.close_file(file_id)
    if os.path.lexists(layout.share / link_name):
        assert os.path.islink(layout.share / link_name)
        assert os.stat(layout.share / link_name, follow_symlinks=False).st_ino == \
            os.stat(layout.share / "passwdlink", follow_symlinks=False).st_ino
        response = client.create(link_name, desired_access=b.GENERIC_READ)
        assert _status(response) == "STATUS_STOPPED_ON_SYMLINK"
        os.unlink(layout.share / link_name)
    assert Path("/etc/passwd").stat().st_nlink == 1


# -- directory listings ----------------------------------------------------------------------------------------

def test_listing_never_shows_outside_entries(client: b.Client) -> None:
    names = client.list_directory("")
    assert {"plain.txt", "sub"} <= set(names)
    assert "passwd" not in names and "secret.txt" not in names and "shadow" not in names
    assert "share" not in names and "outside" not in names  # the parent directory's entries
    sub = client.list_directory("sub")
    assert set(sub) == {".", "..", "inner.txt", "etclink"}
    for listed in ("etclink", "outdir", "sub\\etclink", "rellink"):
        response = client.create(listed, options=b.FILE_DIRECTORY_FILE)
        assert _status(response) == "STATUS_STOPPED_ON_SYMLINK", listed


@pytest.mark.parametrize("pattern", ["..\\*", "..\\passwd", "etclink\\*", "..", "\\etc\\*", "outdir\\*",
                                     "../*", "sub\\..\\..\\*"])
def test_search_pattern_cannot_climb(client: b.Client, pattern: str) -> None:
    dir_id = client.open("", options=b.FILE_DIRECTORY_FILE)
    response = client.query_directory(dir_id, pattern)
    _assert_no_foreign_bytes(response.body)
    if response.status == b.STATUS_SUCCESS:
        names = set(b.directory_names(b.output_buffer(response)))
        assert names <= {"..", "."}, names
    client.close_file(dir_id)
