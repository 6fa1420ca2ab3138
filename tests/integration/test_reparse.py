"""Reparse points against the real daemon over real sockets ([MS-FSCC] 2.1.2, 2.3.6/2.3.62/2.3.82;
[MS-FSA] 2.1.5.1, 2.1.5.10; [MS-SMB2] 2.2.2.2.1, 2.2.14, 3.3.5.9; protocol-notes sections 6, 7, 8, 12, 13).

What is proven here:
- server-side symlinks are IO_REPARSE_TAG_SYMLINK points: opens through or to them answer
  STATUS_STOPPED_ON_SYMLINK with the Symbolic Link Error Response, byte-exact on every dialect (one error
  context on 3.1.1, bare before), including the [MS-SMB2] 2.2.2.2.1.1 example (UnparsedPathLength 0x2E);
  absolute targets inside the share become relative to the link's directory (smbsrv/reparse/synthesized.py),
  everything else is sent as it is;
- FIFOs, sockets and device nodes are IO_REPARSE_TAG_NFS points (or the LX tags with special_files = "wsl"),
  never opened for data;
- every place that reports attributes shows FILE_ATTRIBUTE_REPARSE_POINT and the tag consistently;
- FSCTL_SET/GET/DELETE_REPARSE_POINT with their exact statuses, 16 KiB buffers on ext4, and no real symlink
  or device ever made on disk;
- client-set points behave like server-side ones; smbclient, smbprotocol and the cifs.ko mknod/symlink
  compounds work.

One daemon serves the whole module (three shares: NFS-style special files, WSL-style, read-only); each test
works in its own directory, and a handler traceback in the log during a test fails that test.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import smbclient
from smbprotocol.connection import Connection

from tests import builders as b
from tests.conftest import SmbServer, start_server, stop_server
from tests.integration import reparse_helpers as r

_BUG_MARKERS = ("internal error", "Traceback (most recent call last)")
DIALECTS = {"2.1": 0x0210, "3.0": 0x0300, "3.0.2": 0x0302, "3.1.1": 0x0311}
ATTRIBUTE_ONLY = b.FILE_READ_ATTRIBUTES | b.SYNCHRONIZE
# A Microsoft tag no filter here knows (bit 31 set, not one of the tags the server interprets).
OPAQUE_MICROSOFT_TAG = 0x80000099
THIRD_PARTY_TAG = 0x00007A11
THIRD_PARTY_GUID = uuid.UUID("6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b").bytes_le


# -- the daemon and the per-test directory -------------------------------------------------------------------

@dataclass
class Shares:
    root: Path
    share: Path  # "share": special_files = "nfs"
    wsl: Path  # "wsl": special_files = "wsl"
    read_only: Path  # "ro": read_only = true
    state: Path


@pytest.fixture(scope="module")
def shares() -> Iterator[Shares]:
    with tempfile.TemporaryDirectory(prefix="smbsrv-reparse-") as tmp:
        root = Path(tmp)
        layout = Shares(root, root / "share", root / "wsl", root / "ro", root / "state")
        for path in (layout.share, layout.wsl, layout.read_only):
            path.mkdir()
        yield layout


@pytest.fixture(scope="module")
def reparse_server(shares: Shares) -> Iterator[SmbServer]:
    config = shares.root / "smbsrv.toml"
    config.write_text(
        "[server]\n"
        f'state_dir = "{shares.state}"\n'
        "[shares.share]\n"
        f'path = "{shares.share}"\n'
        'special_files = "nfs"\n'
        "[shares.wsl]\n"
        f'path = "{shares.wsl}"\n'
        'special_files = "wsl"\n'
        "[shares.ro]\n"
        f'path = "{shares.read_only}"\n'
        "read_only = true\n"
    )
    server = start_server(shares.share, shares.root / "server.log", config=config)
    try:
        yield server
    finally:
        stop_server(server.process)


@pytest.fixture
def server(reparse_server: SmbServer) -> Iterator[SmbServer]:
    """The module's daemon; fails the test that made it log a handler traceback."""
    log_start = len(reparse_server.log_text())
    yield reparse_server
    assert reparse_server.process.poll() is None, "the daemon died"
    new_log = reparse_server.log_text()[log_start:]
    for marker in _BUG_MARKERS:
        assert marker not in new_log, new_log[max(0, new_log.index(marker) - 1500):][:5000]


@dataclass
class Work:
    """A fresh directory of one test: `local` on disk, `name` as the client spells it from the share root."""

    local: Path
    name: str

    def path(self, *parts: str) -> str:
        return "\\".join((self.name, *parts))


def _work_in(share: Path, request: pytest.FixtureRequest) -> Work:
    name = f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    local = share / name
    local.mkdir()
    return Work(local, name)


@pytest.fixture
def work(shares: Shares, request: pytest.FixtureRequest) -> Work:
    return _work_in(shares.share, request)


@pytest.fixture
def wsl_work(shares: Shares, request: pytest.FixtureRequest) -> Work:
    return _work_in(shares.wsl, request)


def _connect(server: SmbServer, share: str = "share", dialect: int = 0x0311) -> b.Client:
    return b.connect(server.host, server.port, server.user, server.password, share, dialects=(dialect,))


@pytest.fixture
def client(server: SmbServer) -> Iterator[b.Client]:
    with _connect(server) as connected:
        yield connected


def _status(status: int) -> str:
    return r.status_name(status)


def _open_reparse(client: b.Client, name: str, access: int = ATTRIBUTE_ONLY, **kwargs: object) -> b.Response:
    return client.create(name, desired_access=access, options=b.FILE_OPEN_REPARSE_POINT, **kwargs)


def _new_file(client: b.Client, name: str, data: bytes = b"", access: int = b.GENERIC_READ | b.GENERIC_WRITE,
              options: int = b.FILE_NON_DIRECTORY_FILE) -> tuple[int, int]:
    file_id = client.open(name, desired_access=access, disposition=b.FILE_CREATE, options=options)
    if data:
        assert client.write(file_id, 0, data).status == b.STATUS_SUCCESS
    return file_id


def _get_by_name(client: b.Client, name: str) -> bytes:
    file_id = client.open(name, desired_access=ATTRIBUTE_ONLY, options=b.FILE_OPEN_REPARSE_POINT)
    try:
        status, buffer = r.get_reparse(client, file_id)
        assert status == b.STATUS_SUCCESS, _status(status)
        return buffer
    finally:
        client.close_file(file_id)


def _make_client_reparse(client: b.Client, name: str, buffer: bytes, directory: bool = False,
                         data: bytes = b"") -> None:
    """A regular file (or empty directory) carrying `buffer`, made the way clients do it: CREATE, SET."""
    options = b.FILE_DIRECTORY_FILE if directory else b.FILE_NON_DIRECTORY_FILE
    access = ATTRIBUTE_ONLY | b.FILE_WRITE_ATTRIBUTES | (0 if directory else b.FILE_WRITE_DATA)
    file_id = client.open(name, desired_access=access, disposition=b.FILE_CREATE,
                          options=options | b.FILE_OPEN_REPARSE_POINT)
    try:
        if data:
            assert client.write(file_id, 0, data).status == b.STATUS_SUCCESS
        status = r.set_reparse(client, file_id, buffer)
        assert status == b.STATUS_SUCCESS, _status(status)
    finally:
        client.close_file(file_id)


# -- server-side symlinks: the symbolic link error response ------------------------------------------------

@pytest.mark.parametrize("dialect", DIALECTS.values(), ids=DIALECTS.keys())
def test_symlink_as_last_component_byte_exact(server: SmbServer, work: Work, dialect: int) -> None:
    os.symlink("target.txt", work.local / "link")
    (work.local / "target.txt").write_bytes(b"target data")
    expected = r.error_response_body(
        r.symlink_error_data("target.txt", "target.txt", r.SYMLINK_FLAG_RELATIVE, 0), dialect)
    with _connect(server, dialect=dialect) as client:
        for access in (b.GENERIC_READ, ATTRIBUTE_ONLY, b.GENERIC_READ | b.GENERIC_WRITE):
            response = client.create(work.path("link"), desired_access=access)
            assert response.status == r.STATUS_STOPPED_ON_SYMLINK, _status(response.status)
            assert response.body == expected, (response.body.hex(), expected.hex())


@pytest.mark.parametrize("prefixed", [False, True], ids=["at-root", "below-prefix"])
@pytest.mark.parametrize("dialect", DIALECTS.values(), ids=DIALECTS.keys())
def test_ms_smb2_example_unparsed_path_length(server: SmbServer, shares: Shares, work: Work, dialect: int,
                                              prefixed: bool) -> None:
    """[MS-SMB2] 2.2.2.2.1.1: ProtocolDocs is a symlink; opening ProtocolDocs\\DailyDocs\\[MS-SMB].doc leaves
    `\\DailyDocs\\[MS-SMB].doc` unparsed: 23 UTF-16 characters, UnparsedPathLength 0x2E."""
    base = work.local if prefixed else shares.share
    if not (base / "ProtocolDocs").is_symlink():
        os.symlink("Docs", base / "ProtocolDocs")
    (base / "Docs" / "DailyDocs").mkdir(parents=True, exist_ok=True)
    (base / "Docs" / "DailyDocs" / "[MS-SMB].doc").write_bytes(b"doc")
    name = "ProtocolDocs\\DailyDocs\\[MS-SMB].doc"
    if prefixed:
        name = work.path(name)
    expected = r.error_response_body(r.symlink_error_data("Docs", "Docs", r.SYMLINK_FLAG_RELATIVE, 0x2E), dialect)
    with _connect(server, dialect=dialect) as client:
        response = client.create(name, desired_access=b.GENERIC_READ)
        assert response.status == r.STATUS_STOPPED_ON_SYMLINK, _status(response.status)
        assert response.body == expected, (response.body.hex(), expected.hex())
        error = r.parse_symlink_error(response, dialect)
        assert error.unparsed_path_length == 0x2E == len("\\DailyDocs\\[MS-SMB].doc".encode("utf-16-le"))


@pytest.mark.parametrize("rest", ["x", "a\\b\\c.txt", "\u00e9t\u00e9\\\U0001F600.txt", "sub\\"])
def test_unparsed_path_length_counts_utf16_bytes_of_the_rest(client: b.Client, work: Work, rest: str) -> None:
    os.symlink("elsewhere", work.local / "mid")
    response = client.create(work.path("mid", rest), desired_access=b.GENERIC_READ)
    error = r.parse_symlink_error(response, client.dialect)
    assert error.unparsed_path_length == len(("\\" + rest).encode("utf-16-le"))
    assert (error.substitute_name, error.print_name, error.flags) == ("elsewhere", "elsewhere",
                                                                     r.SYMLINK_FLAG_RELATIVE)


def test_symlink_in_the_middle_ignores_open_reparse_point(client: b.Client, work: Work) -> None:
    """FILE_OPEN_REPARSE_POINT applies to the last component only (protocol-notes 8.7)."""
    (work.local / "real").mkdir()
    (work.local / "real" / "file").write_bytes(b"inside")
    os.symlink("real", work.local / "dirlink")
    for disposition in (b.FILE_OPEN, b.FILE_OPEN_IF, b.FILE_CREATE):
        response = client.create(work.path("dirlink", "file"), desired_access=b.GENERIC_READ,
                                 disposition=disposition, options=b.FILE_OPEN_REPARSE_POINT)
        error = r.parse_symlink_error(response, client.dialect)
        assert error.unparsed_path_length == len("\\file".encode("utf-16-le"))
        assert error.substitute_name == "real"
    response = _open_reparse(client, work.path("dirlink"))
    assert response.status == b.STATUS_SUCCESS, _status(response.status)
    client.close_file(b.create_file_id(response.body))


def _absolute_target_cases(share: Path, work: Work) -> list[tuple[str, str, str, int]]:
    """(link name relative to the work directory, readlink text, expected name, expected flags)."""
    real_share = os.path.realpath(share)
    real_work = os.path.join(real_share, work.name)
    outside_sibling = real_share + "-other/x"
    return [
        ("rel", "target.txt", "target.txt", r.SYMLINK_FLAG_RELATIVE),
        ("relup", "../up/there", "../up/there", r.SYMLINK_FLAG_RELATIVE),
        ("dangling", "no/such/thing", "no/such/thing", r.SYMLINK_FLAG_RELATIVE),
        ("abs_same_dir", f"{real_work}/target.txt", "target.txt", r.SYMLINK_FLAG_RELATIVE),
        ("sub/abs_up", f"{real_work}/a/x", "../a/x", r.SYMLINK_FLAG_RELATIVE),
        ("abs_share_root", real_share, "..", r.SYMLINK_FLAG_RELATIVE),
        ("abs_dangling_inside", f"{real_work}/gone", "gone", r.SYMLINK_FLAG_RELATIVE),
        ("abs_outside", "/etc/passwd", "/etc/passwd", 0),
        ("abs_sibling_prefix", outside_sibling, outside_sibling, 0),
        ("abs_climbing_out", f"{real_share}/../outside", f"{real_share}/../outside", 0),
    ]


def test_symlink_targets_as_the_client_sees_them(client: b.Client, shares: Shares, work: Work) -> None:
    """Relative targets unchanged, absolute ones inside the share relative to the link's directory,
    absolute ones outside unchanged, dangling links fine; the error and GET_REPARSE_POINT agree."""
    (work.local / "sub").mkdir()
    (work.local / "a").mkdir()
    (work.local / "a" / "x").write_bytes(b"x")
    (work.local / "target.txt").write_bytes(b"t")
    cases = _absolute_target_cases(shares.share, work)
    for link, target, _expected, _flags in cases:
        os.symlink(target, work.local / link)
    for link, target, expected, flags in cases:
        name = work.path(*link.split("/"))
        response = client.create(name, desired_access=b.GENERIC_READ)
        error = r.parse_symlink_error(response, client.dialect)
        assert (error.substitute_name, error.print_name, error.flags, error.unparsed_path_length) == (
            expected, expected, flags, 0), (link, target)
        link_view = r.parse_symlink_buffer(_get_by_name(client, name))
        assert (link_view.substitute_name, link_view.print_name, link_view.flags) == (expected, expected, flags)
        assert os.readlink(work.local / link) == target  # nothing on disk changed


def test_related_compound_after_stopped_on_symlink(client: b.Client, work: Work) -> None:
    """CREATE + QUERY_INFO + CLOSE, related: the later elements fail with the CREATE's status
    ([MS-SMB2] 3.3.5.2.7.2; protocol-notes 8.7)."""
    os.symlink("target", work.local / "link")
    for name in (work.path("link"), work.path("link", "below")):
        responses = client.compound(
            b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=ATTRIBUTE_ONLY)),
            b.Req(b.SMB2_QUERY_INFO, b.query_info_body(b.RELATED_FILE_ID, b.SMB2_0_INFO_FILE,
                                                       r.FILE_ALL_INFORMATION), related=True),
            b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True),
        )
        assert [_status(response.status) for response in responses] == ["STATUS_STOPPED_ON_SYMLINK"] * 3
        error = r.parse_symlink_error(responses[0], client.dialect)
        assert error.substitute_name == "target"
        for response in responses[1:]:
            assert struct.unpack_from("<I", response.body, 4)[0] == 0, "no symlink data after the CREATE"


def test_open_reparse_point_gets_the_link_itself(client: b.Client, work: Work) -> None:
    (work.local / "target.txt").write_bytes(b"never read through the link")
    os.symlink("target.txt", work.local / "link")
    response = _open_reparse(client, work.path("link"))
    assert response.status == b.STATUS_SUCCESS, _status(response.status)
    file_id = b.create_file_id(response.body)
    try:
        flags, attributes = r.create_flags_and_attributes(response)
        assert flags & r.SMB2_CREATE_FLAG_REPARSEPOINT
        assert attributes & r.FILE_ATTRIBUTE_REPARSE_POINT
        status, buffer = r.get_reparse(client, file_id)
        assert status == b.STATUS_SUCCESS
        assert buffer == r.symlink_buffer("target.txt")
    finally:
        client.close_file(file_id)


# -- server-side FIFOs, sockets and devices ----------------------------------------------------------------

_DEVICE_NUMBERS = {"chr": (1, 3), "blk": (8, 1), "blk_big": (4095, 1048575)}


def _make_special_files(directory: Path) -> dict[str, Path]:
    """One of each kind, made as root with the real system calls."""
    paths = {kind: directory / kind for kind in ("fifo", "sock", "chr", "blk", "blk_big")}
    os.mkfifo(paths["fifo"])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(paths["sock"]))
    os.mknod(paths["chr"], stat.S_IFCHR | 0o600, os.makedev(*_DEVICE_NUMBERS["chr"]))
    os.mknod(paths["blk"], stat.S_IFBLK | 0o600, os.makedev(*_DEVICE_NUMBERS["blk"]))
    os.mknod(paths["blk_big"], stat.S_IFBLK | 0o600, os.makedev(*_DEVICE_NUMBERS["blk_big"]))
    return paths


def _expected_nfs(kind: str) -> bytes:
    if kind == "fifo":
        return r.nfs_buffer(r.NFS_SPECFILE_FIFO)
    if kind == "sock":
        return r.nfs_buffer(r.NFS_SPECFILE_SOCK)
    nfs_type = r.NFS_SPECFILE_CHR if kind == "chr" else r.NFS_SPECFILE_BLK
    return r.nfs_device_buffer(nfs_type, *_DEVICE_NUMBERS[kind])


_WSL_TAGS = {"fifo": r.IO_REPARSE_TAG_LX_FIFO, "sock": r.IO_REPARSE_TAG_AF_UNIX, "chr": r.IO_REPARSE_TAG_LX_CHR,
             "blk": r.IO_REPARSE_TAG_LX_BLK, "blk_big": r.IO_REPARSE_TAG_LX_BLK}
SPECIAL_KINDS = ("fifo", "sock", "chr", "blk", "blk_big")


def _expected_special(kind: str, style: str) -> bytes:
    return _expected_nfs(kind) if style == "nfs" else r.reparse_buffer(_WSL_TAGS[kind], b"")


@pytest.mark.parametrize("style", ["nfs", "wsl"])
def test_special_files_are_reparse_points_byte_exact(server: SmbServer, work: Work, wsl_work: Work,
                                                     style: str) -> None:
    """NFS_SPECFILE_* with major/minor ([MS-FSCC] 2.1.2.6), or the zero-length LX tags on a "wsl" share."""
    where = work if style == "nfs" else wsl_work
    _make_special_files(where.local)
    with _connect(server, "share" if style == "nfs" else "wsl") as client:
        for kind in SPECIAL_KINDS:
            expected = _expected_special(kind, style)
            tag = struct.unpack_from("<I", expected)[0]
            response = _open_reparse(client, where.path(kind))
            assert response.status == b.STATUS_SUCCESS, (kind, _status(response.status))
            flags, attributes = r.create_flags_and_attributes(response)
            assert flags == r.SMB2_CREATE_FLAG_REPARSEPOINT, kind
            assert attributes & r.FILE_ATTRIBUTE_REPARSE_POINT, kind
            file_id = b.create_file_id(response.body)
            try:
                status, buffer = r.get_reparse(client, file_id)
                assert status == b.STATUS_SUCCESS, (kind, _status(status))
                assert buffer == expected, (kind, buffer.hex(), expected.hex())
                assert r.handle_info(client, file_id).reparse_tag == tag, kind
            finally:
                client.close_file(file_id)


_DATA_ACCESS = {"read": b.FILE_READ_DATA, "write": b.FILE_WRITE_DATA, "append": b.FILE_APPEND_DATA,
                "execute": b.FILE_EXECUTE, "generic_read": b.GENERIC_READ, "generic_all": b.GENERIC_ALL}


def test_special_files_open_semantics(client: b.Client, work: Work) -> None:
    """Without FILE_OPEN_REPARSE_POINT: STATUS_IO_REPARSE_TAG_NOT_HANDLED; with it, attribute and control
    access succeeds and any data access is STATUS_IO_REPARSE_TAG_NOT_HANDLED (protocol-notes 8.7)."""
    _make_special_files(work.local)
    for kind in SPECIAL_KINDS:
        for access in (ATTRIBUTE_ONLY, b.GENERIC_READ, b.GENERIC_WRITE, b.READ_CONTROL):
            response = client.create(work.path(kind), desired_access=access)
            assert response.status == r.STATUS_IO_REPARSE_TAG_NOT_HANDLED, (kind, hex(access),
                                                                           _status(response.status))
        for label, access in _DATA_ACCESS.items():
            response = _open_reparse(client, work.path(kind), access=access | b.FILE_READ_ATTRIBUTES)
            assert response.status == r.STATUS_IO_REPARSE_TAG_NOT_HANDLED, (kind, label,
                                                                           _status(response.status))
        for access in (ATTRIBUTE_ONLY, b.READ_CONTROL | b.FILE_READ_ATTRIBUTES, b.DELETE | b.FILE_READ_ATTRIBUTES,
                       b.FILE_READ_EA | b.FILE_READ_ATTRIBUTES):
            response = _open_reparse(client, work.path(kind), access=access)
            assert response.status == b.STATUS_SUCCESS, (kind, hex(access), _status(response.status))
            client.close_file(b.create_file_id(response.body))
        assert stat.S_IFMT(os.lstat(work.local / kind).st_mode) != stat.S_IFREG


def _fifo_has_no_reader(path: Path) -> bool:
    """Opening a FIFO for writing without blocking fails with ENXIO exactly when nobody holds it for reading."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        return exc.errno == errno.ENXIO
    os.close(descriptor)
    return False


def test_fifo_is_never_opened_by_the_server(client: b.Client, work: Work) -> None:
    """An attribute-only open of a FIFO completes (a server that opened it for reading would block until a
    writer came) and leaves no reader attached while the handle is open."""
    fifo = work.local / "fifo"
    os.mkfifo(fifo)
    response = client.create(work.path("fifo"), desired_access=b.GENERIC_READ)
    assert response.status == r.STATUS_IO_REPARSE_TAG_NOT_HANDLED, _status(response.status)
    response = _open_reparse(client, work.path("fifo"))
    assert response.status == b.STATUS_SUCCESS, _status(response.status)
    file_id = b.create_file_id(response.body)
    try:
        assert _fifo_has_no_reader(fifo)
        info = r.handle_info(client, file_id)
        assert info.reparse_tag == r.IO_REPARSE_TAG_NFS
        status, buffer = r.get_reparse(client, file_id)
        assert status == b.STATUS_SUCCESS and buffer == r.nfs_buffer(r.NFS_SPECFILE_FIFO)
        read = client.read(file_id, 0, 16)
        assert read.status != b.STATUS_SUCCESS, "READ on an attribute-only handle"
        assert _fifo_has_no_reader(fifo)
    finally:
        assert r.close_postquery_attributes(client, file_id) & r.FILE_ATTRIBUTE_REPARSE_POINT
    assert _fifo_has_no_reader(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
