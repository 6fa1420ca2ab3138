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
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import smbclient
from smbprotocol.connection import Connection

from tests import builders as b
from tests.conftest import SmbServer, serve_as_test_account, start_server, stop_server
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
        """The client's name of `parts`; what the test made on disk so far is handed to the SMB user's account
        first (the test makes it as root)."""
        serve_as_test_account(self.local)
        return "\\".join((self.name, *parts))


def _work_in(share: Path, request: pytest.FixtureRequest) -> Work:
    name = f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    local = share / name
    local.mkdir()
    serve_as_test_account(local)
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
    for path in paths.values():
        # Every right grantable (rwx is full control), so what a test sees is the reparse handling alone.
        os.chmod(path, 0o777)
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


# -- attributes and tags wherever they are reported --------------------------------------------------------

def _build_objects(client: b.Client, work: Work) -> dict[str, int]:
    """Every kind of reparse point (name -> tag), plus a plain file and directory (tag 0)."""
    (work.local / "plain.txt").write_bytes(b"plain")
    (work.local / "plaindir").mkdir()
    (work.local / "target").mkdir()
    os.symlink("target", work.local / "server_dirlink")
    os.symlink("plain.txt", work.local / "server_link")
    os.mkfifo(work.local / "server_fifo")
    os.mknod(work.local / "server_chr", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    _make_client_reparse(client, work.path("client_link"), r.symlink_buffer("plain.txt"), data=b"own data")
    _make_client_reparse(client, work.path("client_chr"), r.nfs_device_buffer(r.NFS_SPECFILE_CHR, 5, 6))
    _make_client_reparse(client, work.path("client_opaque"), r.reparse_buffer(OPAQUE_MICROSOFT_TAG, b"opaque"))
    _make_client_reparse(client, work.path("client_guid"),
                         r.guid_reparse_buffer(THIRD_PARTY_TAG, THIRD_PARTY_GUID, b"third party"))
    _make_client_reparse(client, work.path("client_dirlink"), r.symlink_buffer("target"), directory=True)
    return {"plain.txt": 0, "plaindir": 0, "server_dirlink": r.IO_REPARSE_TAG_SYMLINK,
            "server_link": r.IO_REPARSE_TAG_SYMLINK, "server_fifo": r.IO_REPARSE_TAG_NFS,
            "server_chr": r.IO_REPARSE_TAG_NFS, "client_link": r.IO_REPARSE_TAG_SYMLINK,
            "client_chr": r.IO_REPARSE_TAG_NFS, "client_opaque": OPAQUE_MICROSOFT_TAG,
            "client_guid": THIRD_PARTY_TAG, "client_dirlink": r.IO_REPARSE_TAG_SYMLINK}


def test_attributes_and_tags_are_consistent_everywhere(client: b.Client, work: Work) -> None:
    """CREATE (FileAttributes, SMB2_CREATE_FLAG_REPARSEPOINT), CLOSE with POSTQUERY, FileBasic, FileAll,
    FileNetworkOpen, FileAttributeTag and every directory class agree; EaSize carries the tag in listings
    ([MS-FSCC] 2.4 EaSize), FileIdExtdDirectoryInformation has its own ReparsePointTag."""
    objects = _build_objects(client, work)
    listings = {info_class: r.directory_entries(client, work.name, info_class)
                for info_class in r.DIRECTORY_CLASSES}
    for name, tag in objects.items():
        response = _open_reparse(client, work.path(name))
        assert response.status == b.STATUS_SUCCESS, (name, _status(response.status))
        flags, attributes = r.create_flags_and_attributes(response)
        file_id = b.create_file_id(response.body)
        info = r.handle_info(client, file_id)
        closed = r.close_postquery_attributes(client, file_id)
        where = f"{name} (attributes 0x{attributes:x})"
        assert (info.basic, info.all, info.network_open, info.attribute_tag, closed) == (attributes,) * 5, where
        assert info.reparse_tag == tag, where
        if tag:
            assert attributes & r.FILE_ATTRIBUTE_REPARSE_POINT, where
            assert not attributes & r.FILE_ATTRIBUTE_NORMAL, where
            assert flags == r.SMB2_CREATE_FLAG_REPARSEPOINT, where
        else:
            assert not attributes & r.FILE_ATTRIBUTE_REPARSE_POINT, where
            assert flags == 0, where
        for info_class, entries in listings.items():
            entry = entries[name]
            assert entry.attributes == attributes, (where, f"class 0x{info_class:02x}", hex(entry.attributes))
            if info_class == r.FILE_ID_EXTD_DIRECTORY_INFORMATION:
                assert entry.reparse_point_tag == tag, (where, hex(entry.reparse_point_tag or 0))
            elif info_class != r.FILE_DIRECTORY_INFORMATION and tag:
                assert entry.ea_size == tag, (where, f"class 0x{info_class:02x}", hex(entry.ea_size or 0))
    for name in ("client_dirlink", "plaindir", "target"):
        assert listings[r.FILE_ID_BOTH_DIRECTORY_INFORMATION][name].attributes & r.FILE_ATTRIBUTE_DIRECTORY


def test_wsl_share_lists_lx_tags(server: SmbServer, wsl_work: Work) -> None:
    _make_special_files(wsl_work.local)
    with _connect(server, "wsl") as client:
        for info_class in (r.FILE_ID_FULL_DIRECTORY_INFORMATION, r.FILE_ID_EXTD_DIRECTORY_INFORMATION):
            entries = r.directory_entries(client, wsl_work.name, info_class)
            for kind in SPECIAL_KINDS:
                entry = entries[kind]
                assert entry.attributes & r.FILE_ATTRIBUTE_REPARSE_POINT, kind
                shown = entry.reparse_point_tag if info_class == r.FILE_ID_EXTD_DIRECTORY_INFORMATION \
                    else entry.ea_size
                assert shown == _WSL_TAGS[kind], (kind, hex(shown or 0))


def test_file_system_supports_reparse_points(client: b.Client) -> None:
    file_id = client.open("", desired_access=ATTRIBUTE_ONLY, options=b.FILE_DIRECTORY_FILE)
    try:
        assert r.fs_attributes(client, file_id) & r.FILE_SUPPORTS_REPARSE_POINTS
    finally:
        client.close_file(file_id)


# -- FSCTL_SET / GET / DELETE_REPARSE_POINT ----------------------------------------------------------------

def _assert_plain(client: b.Client, file_id: tuple[int, int], local: Path) -> None:
    """No reparse point: GET says so, FileAttributeTag has neither the bit nor a tag, the disk object is plain."""
    status, _ = r.get_reparse(client, file_id)
    assert status == r.STATUS_NOT_A_REPARSE_POINT, _status(status)
    info = r.handle_info(client, file_id)
    assert not info.attribute_tag & r.FILE_ATTRIBUTE_REPARSE_POINT and info.reparse_tag == 0
    assert stat.S_ISREG(os.lstat(local).st_mode) or stat.S_ISDIR(os.lstat(local).st_mode)


@pytest.mark.parametrize("kind", ["file", "empty_directory"])
def test_set_get_delete_round_trip(client: b.Client, work: Work, kind: str) -> None:
    directory = kind == "empty_directory"
    name = work.path("obj")
    options = b.FILE_DIRECTORY_FILE if directory else b.FILE_NON_DIRECTORY_FILE
    access = ATTRIBUTE_ONLY | b.FILE_WRITE_ATTRIBUTES
    file_id = client.open(name, desired_access=access, disposition=b.FILE_CREATE,
                          options=options | b.FILE_OPEN_REPARSE_POINT)
    buffer = r.symlink_buffer("\\??\\C:\\Windows", "C:\\Windows", flags=0)
    try:
        _assert_plain(client, file_id, work.local / "obj")
        assert r.set_reparse(client, file_id, buffer) == b.STATUS_SUCCESS
        assert r.get_reparse(client, file_id) == (b.STATUS_SUCCESS, buffer)
        info = r.handle_info(client, file_id)
        assert info.attribute_tag & r.FILE_ATTRIBUTE_REPARSE_POINT
        assert info.reparse_tag == r.IO_REPARSE_TAG_SYMLINK
        assert bool(info.attribute_tag & r.FILE_ATTRIBUTE_DIRECTORY) == directory
    finally:
        client.close_file(file_id)
    # The server keeps an opaque blob: the object on disk stays what it was.
    mode = os.lstat(work.local / "obj").st_mode
    assert stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)
    assert _get_by_name(client, name) == buffer
    response = client.create(name, desired_access=ATTRIBUTE_ONLY, options=0)
    error = r.parse_symlink_error(response, client.dialect)
    assert (error.substitute_name, error.print_name, error.flags) == ("\\??\\C:\\Windows", "C:\\Windows", 0)
    file_id = client.open(name, desired_access=access, options=b.FILE_OPEN_REPARSE_POINT)
    try:
        assert r.delete_reparse(client, file_id, r.delete_header(r.IO_REPARSE_TAG_SYMLINK)) == b.STATUS_SUCCESS
        _assert_plain(client, file_id, work.local / "obj")
    finally:
        client.close_file(file_id)
    file_id = client.open(name, desired_access=ATTRIBUTE_ONLY)  # a plain open works again
    client.close_file(file_id)
    assert r.directory_entries(client, work.name, r.FILE_ID_FULL_DIRECTORY_INFORMATION)["obj"].attributes \
        & r.FILE_ATTRIBUTE_REPARSE_POINT == 0


def test_set_on_non_empty_directory(client: b.Client, work: Work) -> None:
    (work.local / "full").mkdir()
    (work.local / "full" / "child").write_bytes(b"")
    file_id = client.open(work.path("full"), desired_access=ATTRIBUTE_ONLY | b.FILE_WRITE_ATTRIBUTES,
                          options=b.FILE_DIRECTORY_FILE | b.FILE_OPEN_REPARSE_POINT)
    try:
        status = r.set_reparse(client, file_id, r.symlink_buffer("elsewhere"))
        assert status == b.STATUS_DIRECTORY_NOT_EMPTY, _status(status)
        _assert_plain(client, file_id, work.local / "full")
    finally:
        client.close_file(file_id)


_GOOD_SYMLINK = r.symlink_buffer("target")
_SYMLINK_DATA = _GOOD_SYMLINK[8:]


def _symlink_with(substitute_offset: int, substitute_length: int, print_offset: int, print_length: int) -> bytes:
    data = struct.pack("<HHHHI", substitute_offset, substitute_length, print_offset, print_length, 1)
    return r.reparse_buffer(r.IO_REPARSE_TAG_SYMLINK, data + "target".encode("utf-16-le") * 2)


_INVALID_SET_INPUTS: dict[str, tuple[bytes, int]] = {
    "empty": (b"", r.STATUS_INVALID_BUFFER_SIZE),
    "shorter_than_header": (_GOOD_SYMLINK[:7], r.STATUS_IO_REPARSE_DATA_INVALID),
    "length_one_more": (r.reparse_buffer(r.IO_REPARSE_TAG_SYMLINK, _SYMLINK_DATA, len(_SYMLINK_DATA) + 1),
                        r.STATUS_IO_REPARSE_DATA_INVALID),
    "length_one_less": (r.reparse_buffer(r.IO_REPARSE_TAG_SYMLINK, _SYMLINK_DATA, len(_SYMLINK_DATA) - 1),
                        r.STATUS_IO_REPARSE_DATA_INVALID),
    "opaque_length_one_more": (r.reparse_buffer(OPAQUE_MICROSOFT_TAG, b"abcd", 5), r.STATUS_IO_REPARSE_DATA_INVALID),
    "opaque_length_one_less": (r.reparse_buffer(OPAQUE_MICROSOFT_TAG, b"abcd", 3), r.STATUS_IO_REPARSE_DATA_INVALID),
    "over_16_KiB": (r.reparse_buffer(OPAQUE_MICROSOFT_TAG, bytes(16384 - 8 + 1)), r.STATUS_IO_REPARSE_DATA_INVALID),
    "tag_zero": (r.reparse_buffer(0, b"abcd"), r.STATUS_IO_REPARSE_DATA_INVALID),
    "tag_one": (r.reparse_buffer(1, b"abcd"), r.STATUS_IO_REPARSE_DATA_INVALID),
    "third_party_without_guid": (r.reparse_buffer(THIRD_PARTY_TAG, b"abcd"), r.STATUS_IO_REPARSE_DATA_INVALID),
    "third_party_guid_length_one_more": (
        r.guid_reparse_buffer(THIRD_PARTY_TAG, THIRD_PARTY_GUID, b"abcd", 5), r.STATUS_IO_REPARSE_DATA_INVALID),
    "symlink_no_fields": (r.reparse_buffer(r.IO_REPARSE_TAG_SYMLINK, b""), r.STATUS_IO_REPARSE_DATA_INVALID),
    "symlink_short_fields": (r.reparse_buffer(r.IO_REPARSE_TAG_SYMLINK, _SYMLINK_DATA[:11]),
                             r.STATUS_IO_REPARSE_DATA_INVALID),
    "symlink_substitute_past_end": (_symlink_with(0, 26, 12, 12), r.STATUS_IO_REPARSE_DATA_INVALID),
    "symlink_print_past_end": (_symlink_with(0, 12, 14, 12), r.STATUS_IO_REPARSE_DATA_INVALID),
    "symlink_offset_past_end": (_symlink_with(0xFFF0, 12, 12, 12), r.STATUS_IO_REPARSE_DATA_INVALID),
    "nfs_no_type": (r.reparse_buffer(r.IO_REPARSE_TAG_NFS, b""), r.STATUS_IO_REPARSE_DATA_INVALID),
    "nfs_short_type": (r.reparse_buffer(r.IO_REPARSE_TAG_NFS, b"FIFO"), r.STATUS_IO_REPARSE_DATA_INVALID),
    "nfs_unknown_type": (r.nfs_buffer(0x4F4F4F4F), r.STATUS_IO_REPARSE_DATA_INVALID),
    "nfs_fifo_with_data": (r.nfs_buffer(r.NFS_SPECFILE_FIFO, b"\0\0\0\0"), r.STATUS_IO_REPARSE_DATA_INVALID),
    "nfs_sock_with_data": (r.nfs_buffer(r.NFS_SPECFILE_SOCK, b"x"), r.STATUS_IO_REPARSE_DATA_INVALID),
    "nfs_chr_short": (r.nfs_buffer(r.NFS_SPECFILE_CHR, b"\1\0\0\0"), r.STATUS_IO_REPARSE_DATA_INVALID),
    "nfs_blk_long": (r.nfs_buffer(r.NFS_SPECFILE_BLK, bytes(12)), r.STATUS_IO_REPARSE_DATA_INVALID),
    "nfs_lnk_empty": (r.nfs_buffer(r.NFS_SPECFILE_LNK), r.STATUS_IO_REPARSE_DATA_INVALID),
    "nfs_lnk_odd": (r.nfs_buffer(r.NFS_SPECFILE_LNK, b"abc"), r.STATUS_IO_REPARSE_DATA_INVALID),
}


def test_set_refuses_malformed_buffers(client: b.Client, work: Work) -> None:
    """[MS-FSCC] 2.3.82 / [MS-FSA] 2.1.5.10.37 and protocol-notes 8.6; nothing is stored after a refusal."""
    file_id = _new_file(client, work.path("victim"), b"data")
    try:
        for label, (buffer, expected) in _INVALID_SET_INPUTS.items():
            status = r.set_reparse(client, file_id, buffer)
            assert status == expected, (label, _status(status), _status(expected))
            status, _ = r.get_reparse(client, file_id)
            assert status == r.STATUS_NOT_A_REPARSE_POINT, (label, _status(status))
        # The exact lengths are accepted (so the one-more/one-less cases above fail for their length only).
        assert r.set_reparse(client, file_id, r.reparse_buffer(OPAQUE_MICROSOFT_TAG, b"abcd")) == b.STATUS_SUCCESS
    finally:
        client.close_file(file_id)
    assert (work.local / "victim").read_bytes() == b"data"


@pytest.mark.parametrize("buffer", [
    r.nfs_buffer(r.NFS_SPECFILE_FIFO), r.nfs_buffer(r.NFS_SPECFILE_SOCK),
    r.nfs_device_buffer(r.NFS_SPECFILE_CHR, 1, 3), r.nfs_device_buffer(r.NFS_SPECFILE_BLK, 0xFFFFFFFF, 0),
    r.nfs_buffer(r.NFS_SPECFILE_LNK, "../some/target".encode("utf-16-le")),
    r.reparse_buffer(r.IO_REPARSE_TAG_LX_FIFO, b""), r.reparse_buffer(r.IO_REPARSE_TAG_AF_UNIX, b""),
    r.symlink_buffer("print first", "shown", flags=1, print_first=True),
    r.symlink_buffer("", "", flags=1),
    r.reparse_buffer(OPAQUE_MICROSOFT_TAG, b""),
    r.guid_reparse_buffer(THIRD_PARTY_TAG, THIRD_PARTY_GUID, b""),
], ids=["nfs_fifo", "nfs_sock", "nfs_chr", "nfs_blk", "nfs_lnk", "lx_fifo", "af_unix", "symlink_print_first",
        "symlink_empty_names", "opaque_empty", "guid_empty"])
def test_valid_buffers_round_trip_byte_exact(client: b.Client, work: Work, buffer: bytes) -> None:
    name = work.path("f")
    _make_client_reparse(client, name, buffer)
    assert _get_by_name(client, name) == buffer
    assert stat.S_ISREG(os.lstat(work.local / "f").st_mode)


def test_set_tag_mismatch_and_same_tag_overwrite(client: b.Client, work: Work) -> None:
    file_id = _new_file(client, work.path("f"))
    first = r.symlink_buffer("first")
    second = r.symlink_buffer("second, a longer target than the first")
    try:
        assert r.set_reparse(client, file_id, first) == b.STATUS_SUCCESS
        for other in (r.nfs_buffer(r.NFS_SPECFILE_FIFO), r.reparse_buffer(OPAQUE_MICROSOFT_TAG, b"x"),
                      r.guid_reparse_buffer(THIRD_PARTY_TAG, THIRD_PARTY_GUID, b"x")):
            status = r.set_reparse(client, file_id, other)
            assert status == r.STATUS_IO_REPARSE_TAG_MISMATCH, _status(status)
            assert r.get_reparse(client, file_id) == (b.STATUS_SUCCESS, first)
        assert r.set_reparse(client, file_id, second) == b.STATUS_SUCCESS
        assert r.get_reparse(client, file_id) == (b.STATUS_SUCCESS, second)
        assert r.set_reparse(client, file_id, first) == b.STATUS_SUCCESS
        assert r.get_reparse(client, file_id) == (b.STATUS_SUCCESS, first)
    finally:
        client.close_file(file_id)


def test_get_statuses(client: b.Client, work: Work) -> None:
    file_id = _new_file(client, work.path("plain"))
    try:
        status, _ = r.get_reparse(client, file_id)
        assert status == r.STATUS_NOT_A_REPARSE_POINT, _status(status)
        buffer = r.symlink_buffer("a target long enough to be cut")
        assert r.set_reparse(client, file_id, buffer) == b.STATUS_SUCCESS
        for too_small in (0, 1, 7):
            status, _ = r.get_reparse(client, file_id, max_output=too_small)
            assert status == b.STATUS_BUFFER_TOO_SMALL, (too_small, _status(status))
        # [MS-FSA] 2.1.5.10.14: what fits, with STATUS_BUFFER_OVERFLOW.
        status, partial = r.get_reparse(client, file_id, max_output=16)
        assert (status, partial) == (r.STATUS_BUFFER_OVERFLOW, buffer[:16]), _status(status)
        assert r.get_reparse(client, file_id, max_output=len(buffer)) == (b.STATUS_SUCCESS, buffer)
    finally:
        client.close_file(file_id)


def test_get_third_party_needs_room_for_the_guid_header(client: b.Client, work: Work) -> None:
    """[MS-FSA] 2.1.5.10.14 phase 2: the output must hold the header of the buffer kind, REPARSE_GUID_DATA_BUFFER
    (24 bytes) for a non-Microsoft tag; past that, what fits with STATUS_BUFFER_OVERFLOW."""
    buffer = r.guid_reparse_buffer(THIRD_PARTY_TAG, THIRD_PARTY_GUID, b"third-party data")
    file_id = _new_file(client, work.path("f"))
    try:
        assert r.set_reparse(client, file_id, buffer) == b.STATUS_SUCCESS
        for too_small in (8, 16, 23):
            status, _ = r.get_reparse(client, file_id, max_output=too_small)
            assert status == b.STATUS_BUFFER_TOO_SMALL, (too_small, _status(status))
        assert r.get_reparse(client, file_id, max_output=24) == (r.STATUS_BUFFER_OVERFLOW, buffer[:24])
        assert r.get_reparse(client, file_id, max_output=len(buffer)) == (b.STATUS_SUCCESS, buffer)
    finally:
        client.close_file(file_id)


def test_delete_statuses(client: b.Client, work: Work) -> None:
    file_id = _new_file(client, work.path("f"))
    try:
        status = r.delete_reparse(client, file_id, r.delete_header(r.IO_REPARSE_TAG_SYMLINK))
        assert status == r.STATUS_NOT_A_REPARSE_POINT, _status(status)
        buffer = r.symlink_buffer("target")
        assert r.set_reparse(client, file_id, buffer) == b.STATUS_SUCCESS
        with_data = r.reparse_buffer(r.IO_REPARSE_TAG_SYMLINK, b"\0" * 4)
        assert r.delete_reparse(client, file_id, with_data) == r.STATUS_IO_REPARSE_DATA_INVALID
        wrong_tag_with_data = r.reparse_buffer(r.IO_REPARSE_TAG_NFS, b"\0" * 8)
        assert r.delete_reparse(client, file_id, wrong_tag_with_data) == r.STATUS_IO_REPARSE_DATA_INVALID
        status = r.delete_reparse(client, file_id, r.delete_header(r.IO_REPARSE_TAG_NFS))
        assert status == r.STATUS_IO_REPARSE_TAG_MISMATCH, _status(status)
        assert r.get_reparse(client, file_id) == (b.STATUS_SUCCESS, buffer)
        assert r.delete_reparse(client, file_id, r.delete_header(r.IO_REPARSE_TAG_SYMLINK)) == b.STATUS_SUCCESS
        assert r.get_reparse(client, file_id)[0] == r.STATUS_NOT_A_REPARSE_POINT
    finally:
        client.close_file(file_id)


def test_delete_third_party_needs_its_guid(client: b.Client, work: Work) -> None:
    file_id = _new_file(client, work.path("f"))
    other_guid = uuid.uuid4().bytes_le
    try:
        assert r.set_reparse(client, file_id,
                             r.guid_reparse_buffer(THIRD_PARTY_TAG, THIRD_PARTY_GUID, b"x")) == b.STATUS_SUCCESS
        status = r.delete_reparse(client, file_id, r.delete_header(THIRD_PARTY_TAG))  # no GUID
        assert status == r.STATUS_IO_REPARSE_DATA_INVALID, _status(status)
        status = r.delete_reparse(client, file_id, r.delete_header(THIRD_PARTY_TAG, other_guid))
        assert status == r.STATUS_REPARSE_ATTRIBUTE_CONFLICT, _status(status)
        status = r.delete_reparse(client, file_id, r.delete_header(THIRD_PARTY_TAG, THIRD_PARTY_GUID))
        assert status == b.STATUS_SUCCESS, _status(status)
    finally:
        client.close_file(file_id)


@pytest.mark.parametrize(("access", "expected"), [
    (ATTRIBUTE_ONLY, b.STATUS_ACCESS_DENIED),
    (b.GENERIC_READ, b.STATUS_ACCESS_DENIED),
    (b.FILE_READ_DATA | b.FILE_READ_ATTRIBUTES | b.FILE_APPEND_DATA | b.DELETE, b.STATUS_ACCESS_DENIED),
    (b.FILE_WRITE_ATTRIBUTES, b.STATUS_SUCCESS),
    (b.FILE_WRITE_DATA, b.STATUS_SUCCESS),
], ids=["attributes_only", "generic_read", "append_and_delete", "write_attributes", "write_data"])
def test_set_and_delete_need_write_data_or_write_attributes(client: b.Client, work: Work, access: int,
                                                            expected: int) -> None:
    (work.local / "f").write_bytes(b"")
    file_id = client.open(work.path("f"), desired_access=access, options=b.FILE_OPEN_REPARSE_POINT)
    try:
        status = r.set_reparse(client, file_id, r.symlink_buffer("target"))
        assert status == expected, _status(status)
    finally:
        client.close_file(file_id)
    if expected == b.STATUS_SUCCESS:
        file_id = client.open(work.path("f"), desired_access=ATTRIBUTE_ONLY | b.DELETE,
                              options=b.FILE_OPEN_REPARSE_POINT)
        try:
            status = r.delete_reparse(client, file_id, r.delete_header(r.IO_REPARSE_TAG_SYMLINK))
            assert status == b.STATUS_ACCESS_DENIED, _status(status)
        finally:
            client.close_file(file_id)


def test_read_only_share_refuses_set_and_delete(server: SmbServer, shares: Shares) -> None:
    (shares.read_only / "ro-file").write_bytes(b"ro")
    os.symlink("ro-file", shares.read_only / "ro-link")
    with _connect(server, "ro") as client:
        for access in (ATTRIBUTE_ONLY, b.MAXIMUM_ALLOWED):
            file_id = client.open("ro-file", desired_access=access, options=b.FILE_OPEN_REPARSE_POINT)
            try:
                status = r.set_reparse(client, file_id, r.symlink_buffer("target"))
                assert status == b.STATUS_ACCESS_DENIED, _status(status)
                # The handle may not write (the share grants read access only), so the access check comes first,
                # as for SET: ACCESS_DENIED, not NOT_A_REPARSE_POINT ([MS-FSA] 2.1.5.10.5/2.1.5.10.37 check
                # FILE_WRITE_DATA/FILE_WRITE_ATTRIBUTES before the tag). Samba 4.17 is no yardstick here: it
                # stores no reparse points and answers NOT_A_REPARSE_POINT to SET, GET and DELETE alike.
                status = r.delete_reparse(client, file_id, r.delete_header(r.IO_REPARSE_TAG_SYMLINK))
                assert status == b.STATUS_ACCESS_DENIED, _status(status)
                assert r.get_reparse(client, file_id)[0] == r.STATUS_NOT_A_REPARSE_POINT
            finally:
                client.close_file(file_id)
        # Reading reparse data still works on a read-only share.
        assert r.parse_symlink_buffer(_get_by_name(client, "ro-link")).substitute_name == "ro-file"
    assert os.listxattr(shares.read_only / "ro-file") == []


@pytest.mark.parametrize("kind", ["opaque_microsoft_tag", "third_party_tag"])
def test_16_KiB_buffers_round_trip_on_ext4(client: b.Client, shares: Shares, work: Work, kind: str) -> None:
    """MAXIMUM_REPARSE_DATA_BUFFER_SIZE (16,384 bytes, header included) of incompressible data must be stored
    although one ext4 xattr holds about 4 KB (protocol-notes 8.6)."""
    if kind == "opaque_microsoft_tag":
        buffer = r.reparse_buffer(OPAQUE_MICROSOFT_TAG, os.urandom(16384 - 8))
    else:
        buffer = r.guid_reparse_buffer(THIRD_PARTY_TAG, THIRD_PARTY_GUID, os.urandom(16384 - 24))
    assert len(buffer) == 16384
    share_before = set(os.listdir(shares.share))
    file_id = _new_file(client, work.path("big"), b"file data")
    try:
        status = r.set_reparse(client, file_id, buffer)
        assert status == b.STATUS_SUCCESS, _status(status)
        assert r.get_reparse(client, file_id) == (b.STATUS_SUCCESS, buffer)
        assert r.handle_info(client, file_id).reparse_tag == struct.unpack_from("<I", buffer)[0]
    finally:
        client.close_file(file_id)
    assert _get_by_name(client, work.path("big")) == buffer
    # A second large buffer (same tag) replaces the first.
    replacement = buffer[:24] + os.urandom(len(buffer) - 24)
    file_id = client.open(work.path("big"), desired_access=ATTRIBUTE_ONLY | b.FILE_WRITE_ATTRIBUTES,
                          options=b.FILE_OPEN_REPARSE_POINT)
    try:
        assert r.set_reparse(client, file_id, replacement) == b.STATUS_SUCCESS
        assert r.get_reparse(client, file_id) == (b.STATUS_SUCCESS, replacement)
    finally:
        client.close_file(file_id)
    assert (work.local / "big").read_bytes() == b"file data"
    assert stat.S_ISREG(os.lstat(work.local / "big").st_mode)
    assert set(os.listdir(shares.share)) == share_before, "the side store must live outside the share"
    assert os.listdir(work.local) == ["big"]


# -- client-set points behave like server-side ones -----------------------------------------------------------

def test_stored_symlink_is_reported_never_followed(server: SmbServer, work: Work) -> None:
    """A plain open of a file carrying a client-set symlink stops with exactly the stored names; the server
    neither follows the target (inside or outside the share) nor turns the blob into a real symlink."""
    (work.local / "secret.txt").write_bytes(b"SECRET TARGET DATA")
    targets = {
        "abs_outside": ("/etc/passwd", "/etc/passwd", 0),
        "windows_abs": ("\\??\\C:\\Users\\x", "C:\\Users\\x", 0),
        "relative_inside": ("secret.txt", "secret.txt", r.SYMLINK_FLAG_RELATIVE),
        "relative_up": ("..\\..\\..\\etc\\passwd", "..\\..\\..\\etc\\passwd", r.SYMLINK_FLAG_RELATIVE),
        "absolute_share_path": (os.path.realpath(work.local / "secret.txt"), "shown differently", 0),
    }
    for dialect in (0x0210, 0x0311):
        with _connect(server, dialect=dialect) as other:
            for label, (substitute, print_name, flags) in targets.items():
                name = f"{label}-{dialect:x}"
                _make_client_reparse(other, work.path(name), r.symlink_buffer(substitute, print_name, flags),
                                     data=b"link's own data")
                for access in (b.GENERIC_READ, ATTRIBUTE_ONLY, b.GENERIC_WRITE | b.DELETE):
                    response = other.create(work.path(name), desired_access=access)
                    error = r.parse_symlink_error(response, dialect)
                    # The stored names come back as stored: absolute names are not rewritten for client blobs.
                    assert (error.substitute_name, error.print_name, error.flags) == (substitute, print_name,
                                                                                      flags), label
                    assert error.unparsed_path_length == 0
                    assert response.body == r.error_response_body(
                        r.symlink_error_data(substitute, print_name, flags, 0), dialect), label
                file_id = other.open(work.path(name), desired_access=b.GENERIC_READ,
                                     options=b.FILE_OPEN_REPARSE_POINT)
                try:
                    read = other.read(file_id, 0, 4096)
                    assert read.status == b.STATUS_SUCCESS and b.read_data(read) == b"link's own data", label
                finally:
                    other.close_file(file_id)
                assert stat.S_ISREG(os.lstat(work.local / name).st_mode), label
    assert (work.local / "secret.txt").read_bytes() == b"SECRET TARGET DATA"


@pytest.mark.parametrize("label", ["nfs_chr", "nfs_fifo", "opaque", "third_party", "lx_sock"])
def test_other_stored_tags_are_not_handled(client: b.Client, work: Work, label: str) -> None:
    buffer = {
        "nfs_chr": r.nfs_device_buffer(r.NFS_SPECFILE_CHR, 1, 3),
        "nfs_fifo": r.nfs_buffer(r.NFS_SPECFILE_FIFO),
        "opaque": r.reparse_buffer(OPAQUE_MICROSOFT_TAG, b"opaque"),
        "third_party": r.guid_reparse_buffer(THIRD_PARTY_TAG, THIRD_PARTY_GUID, b"x"),
        "lx_sock": r.reparse_buffer(r.IO_REPARSE_TAG_AF_UNIX, b""),
    }[label]
    _make_client_reparse(client, work.path("f"), buffer, data=b"payload")
    for access in (ATTRIBUTE_ONLY, b.GENERIC_READ, b.GENERIC_ALL):
        response = client.create(work.path("f"), desired_access=access)
        assert response.status == r.STATUS_IO_REPARSE_TAG_NOT_HANDLED, _status(response.status)
    assert stat.S_ISREG(os.lstat(work.local / "f").st_mode)
    assert (work.local / "f").read_bytes() == b"payload"


@pytest.mark.parametrize("buffer", [r.symlink_buffer("t"), r.nfs_buffer(r.NFS_SPECFILE_FIFO)], ids=["symlink", "nfs"])
def test_open_reparse_point_handle_reads_writes_truncates(client: b.Client, work: Work, buffer: bytes) -> None:
    """[MS-FSA]: FILE_OPEN_REPARSE_POINT opens the file itself; its data stream works as for any file, and
    the reparse point stays (Samba test_write_reparse)."""
    _make_client_reparse(client, work.path("f"), buffer, data=b"0123456789")
    file_id = client.open(work.path("f"), desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                          options=b.FILE_OPEN_REPARSE_POINT)
    try:
        read = client.read(file_id, 0, 100)
        assert read.status == b.STATUS_SUCCESS and b.read_data(read) == b"0123456789"
        assert client.write(file_id, 5, b"abcdefghij").status == b.STATUS_SUCCESS
        read = client.read(file_id, 0, 100)
        assert b.read_data(read) == b"01234abcdefghij"
        truncate = client.set_info(file_id, b.SMB2_0_INFO_FILE, r.FILE_END_OF_FILE_INFORMATION,
                                   struct.pack("<Q", 3))
        assert truncate.status == b.STATUS_SUCCESS, _status(truncate.status)
        assert b.read_data(client.read(file_id, 0, 100)) == b"012"
        assert r.get_reparse(client, file_id) == (b.STATUS_SUCCESS, buffer)
        assert r.handle_info(client, file_id).attribute_tag & r.FILE_ATTRIBUTE_REPARSE_POINT
    finally:
        client.close_file(file_id)
    assert (work.local / "f").read_bytes() == b"012"
    assert _get_by_name(client, work.path("f")) == buffer


def test_open_reparse_point_handles_obey_share_modes(server: SmbServer, client: b.Client, work: Work) -> None:
    _make_client_reparse(client, work.path("f"), r.symlink_buffer("t"), data=b"data")
    first = client.open(work.path("f"), desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                        share_access=b.FILE_SHARE_READ | b.FILE_SHARE_WRITE, options=b.FILE_OPEN_REPARSE_POINT)
    try:
        with _connect(server) as other:
            # The first open writes: a second open that does not share writing conflicts, whatever it asks for.
            for access in (b.GENERIC_READ, b.FILE_READ_DATA):
                response = other.create(work.path("f"), desired_access=access, share_access=b.FILE_SHARE_READ,
                                        options=b.FILE_OPEN_REPARSE_POINT)
                assert response.status == b.STATUS_SHARING_VIOLATION, _status(response.status)
            # The first open does not share DELETE.
            response = other.create(work.path("f"), desired_access=b.DELETE, options=b.FILE_OPEN_REPARSE_POINT)
            assert response.status == b.STATUS_SHARING_VIOLATION, _status(response.status)
            # Sharing what the first holds works; attribute-only opens never conflict.
            second = other.open(work.path("f"), desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                share_access=b.FILE_SHARE_ALL, options=b.FILE_OPEN_REPARSE_POINT)
            other.close_file(second)
            third = other.open(work.path("f"), desired_access=ATTRIBUTE_ONLY, share_access=0,
                               options=b.FILE_OPEN_REPARSE_POINT)
            other.close_file(third)
    finally:
        client.close_file(first)


def test_open_reparse_point_delete_on_close(client: b.Client, work: Work) -> None:
    for name, buffer, directory in (("file", r.symlink_buffer("t"), False),
                                    ("fifo", r.nfs_buffer(r.NFS_SPECFILE_FIFO), False),
                                    ("dirlink", r.symlink_buffer("t"), True)):
        _make_client_reparse(client, work.path(name), buffer, directory=directory)
        file_id = client.open(work.path(name), desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                              share_access=b.FILE_SHARE_DELETE,
                              options=b.FILE_OPEN_REPARSE_POINT | b.FILE_DELETE_ON_CLOSE)
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert not os.path.lexists(work.local / name), name
    # Server-side ones too: only the link or node goes, never its target.
    (work.local / "kept.txt").write_bytes(b"kept")
    os.symlink("kept.txt", work.local / "server_link")
    os.mkfifo(work.local / "server_fifo")
    for name in ("server_link", "server_fifo"):
        file_id = client.open(work.path(name), desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                              options=b.FILE_OPEN_REPARSE_POINT | b.FILE_DELETE_ON_CLOSE)
        assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert not os.path.lexists(work.local / name), name
    assert (work.local / "kept.txt").read_bytes() == b"kept"


def test_stored_directory_symlink_in_the_middle_stops(client: b.Client, work: Work) -> None:
    """A directory carrying a client-set symlink is a link like any other: a path through it stops with
    UnparsedPathLength of the rest ([MS-FSA] 2.1.5.1: a reparse point met before the last component ends the
    open; FILE_OPEN_REPARSE_POINT applies to the last component only), and nothing is created inside it."""
    (work.local / "real").mkdir()
    _make_client_reparse(client, work.path("dirlink"), r.symlink_buffer("real"), directory=True)
    outcomes = {}
    for disposition, options in ((b.FILE_OPEN, 0), (b.FILE_CREATE, 0), (b.FILE_OPEN_IF, b.FILE_OPEN_REPARSE_POINT),
                                 (b.FILE_CREATE, b.FILE_DIRECTORY_FILE)):
        response = client.create(work.path("dirlink", f"child{disposition}{options:x}"),
                                 desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=disposition,
                                 options=options)
        if response.status == b.STATUS_SUCCESS:
            client.close_file(b.create_file_id(response.body))
        outcomes[(disposition, options)] = _status(response.status)
        if response.status == r.STATUS_STOPPED_ON_SYMLINK:
            error = r.parse_symlink_error(response, client.dialect)
            assert error.unparsed_path_length == len(f"\\child{disposition}{options:x}".encode("utf-16-le"))
            assert error.substitute_name == "real"
    assert set(outcomes.values()) == {"STATUS_STOPPED_ON_SYMLINK"}, outcomes
    assert os.listdir(work.local / "dirlink") == []
    assert os.listdir(work.local / "real") == []


def test_stored_directory_reparse_point_in_the_middle_is_not_handled(client: b.Client, work: Work) -> None:
    """Any other tag on a directory: opening or creating below it is STATUS_IO_REPARSE_TAG_NOT_HANDLED, as
    Windows answers (protocol-notes 8.6)."""
    _make_client_reparse(client, work.path("tagged"), r.reparse_buffer(OPAQUE_MICROSOFT_TAG, b"x"), directory=True)
    outcomes = {}
    for disposition in (b.FILE_OPEN, b.FILE_CREATE, b.FILE_OPEN_IF):
        response = client.create(work.path("tagged", f"child{disposition}"), desired_access=b.GENERIC_WRITE,
                                  disposition=disposition, options=b.FILE_OPEN_REPARSE_POINT)
        if response.status == b.STATUS_SUCCESS:
            client.close_file(b.create_file_id(response.body))
        outcomes[disposition] = _status(response.status)
    assert set(outcomes.values()) == {"STATUS_IO_REPARSE_TAG_NOT_HANDLED"}, outcomes
    assert os.listdir(work.local / "tagged") == []


# -- real clients ----------------------------------------------------------------------------------------------

def test_smbclient_symlink_and_allinfo(server: SmbServer, client: b.Client, work: Work) -> None:
    """smbclient 4.17: `symlink` creates the file and sends FSCTL_SET_REPARSE_POINT; `allinfo` reads the
    reparse data back with FSCTL_GET_REPARSE_POINT and prints it; `get` through a link stops on it (4.17 does
    not follow). Its `readlink` needs SMB1 UNIX extensions and sends nothing over SMB2."""
    (work.local / "target.txt").write_bytes(b"target data")
    os.symlink("target.txt", work.local / "server_link")
    # smbclient 4.17 creates the link relative to the share root whatever the current directory is.
    result = server.smbclient(f"symlink target.txt {work.name}\\client_link; cd {work.name}; allinfo client_link; "
                              "allinfo server_link; readlink client_link; allinfo target.txt")
    out = result.stdout
    assert out.count("symlink: subst=[target.txt], print=[target.txt], flags=1") == 2, out
    assert "NT_STATUS" not in out + result.stderr, out + result.stderr
    assert stat.S_ISREG(os.lstat(work.local / "client_link").st_mode)
    assert os.path.getsize(work.local / "client_link") == 0
    link = r.parse_symlink_buffer(_get_by_name(client, work.path("client_link")))
    assert (link.substitute_name, link.flags) == ("target.txt", r.SYMLINK_FLAG_RELATIVE)
    result = server.smbclient(f"cd {work.name}; get client_link -; get server_link -", check=False)
    assert result.stdout.count("NT_STATUS_STOPPED_ON_SYMLINK") == 2, result.stdout + result.stderr
    assert "target data" not in result.stdout
    listing = server.smbclient(f"cd {work.name}; ls").stdout
    assert "client_link" in listing and "server_link" in listing


def test_smbprotocol_symlinks(server: SmbServer, client: b.Client, work: Work) -> None:
    """smbprotocol 1.17's os-like API: symlink() (CREATE + SET_REPARSE_POINT), readlink() (GET, resolved
    against the link's UNC path), lstat()/stat(follow_symlinks), path.islink(), and open_file()/listdir()
    following STATUS_STOPPED_ON_SYMLINK through the symbolic link error response (UnparsedPathLength)."""
    (work.local / "target.txt").write_bytes(b"target data")
    (work.local / "realdir").mkdir()
    (work.local / "realdir" / "f.txt").write_bytes(b"inner data")
    os.symlink("target.txt", work.local / "server_link")
    os.symlink("realdir", work.local / "server_dirlink")
    os.symlink(os.path.realpath(work.local / "realdir" / "f.txt"), work.local / "server_abslink")
    cache: dict[str, Connection] = {}
    options = {"port": server.port, "connection_cache": cache}
    root = f"\\\\{server.host}\\{server.share}\\{work.name}"
    try:
        smbclient.register_session(server.host, server.user, server.password, **options)
        smbclient.symlink("target.txt", f"{root}\\client_link", **options)
        smbclient.symlink(f"{root}\\realdir", f"{root}\\client_dirlink", **options)  # absolute, to a directory
        assert stat.S_ISREG(os.lstat(work.local / "client_link").st_mode)
        assert stat.S_ISDIR(os.lstat(work.local / "client_dirlink").st_mode)
        assert os.listdir(work.local / "client_dirlink") == []

        for name in ("client_link", "server_link"):
            assert smbclient.readlink(f"{root}\\{name}", **options) == f"{root}\\target.txt"
            assert smbclient.path.islink(f"{root}\\{name}", **options)
            link_stat = smbclient.lstat(f"{root}\\{name}", **options)
            assert stat.S_ISLNK(link_stat.st_mode) and link_stat.st_reparse_tag == r.IO_REPARSE_TAG_SYMLINK
            assert link_stat.st_file_attributes & r.FILE_ATTRIBUTE_REPARSE_POINT
            assert smbclient.stat(f"{root}\\{name}", **options).st_size == len(b"target data")
            with smbclient.open_file(f"{root}\\{name}", mode="rb", **options) as file:
                assert file.read() == b"target data"
        assert smbclient.readlink(f"{root}\\client_dirlink", **options) == f"{root}\\realdir"
        assert smbclient.readlink(f"{root}\\server_abslink", **options) == f"{root}\\realdir\\f.txt"
        assert not smbclient.path.islink(f"{root}\\target.txt", **options)
        with smbclient.open_file(f"{root}\\server_abslink", mode="rb", **options) as file:
            assert file.read() == b"inner data"
        for name in ("server_dirlink", "client_dirlink"):
            with smbclient.open_file(f"{root}\\{name}\\f.txt", mode="rb", **options) as file:
                assert file.read() == b"inner data", name
            assert smbclient.listdir(f"{root}\\{name}", **options) == ["f.txt"], name
    finally:
        smbclient.reset_connection_cache(fail_on_error=False, connection_cache=cache)
    link = r.parse_symlink_buffer(_get_by_name(client, work.path("client_dirlink")))
    assert link.flags == 0 and link.substitute_name == f"\\??\\UNC{root[1:]}\\realdir"


# -- cifs.ko's compounds ([MS-SMB2] 3.3.5.2.7.2; protocol-notes 12 item 6, 13) ----------------------------------

_CIFS_CREATE_ACCESS = b.SYNCHRONIZE | b.DELETE | b.FILE_READ_ATTRIBUTES | b.FILE_WRITE_ATTRIBUTES


def _cifs_create_reparse(client: b.Client, name: str, buffer: bytes, directory: bool) -> list[b.Response]:
    """smb2_create_reparse_inode: CREATE + IOCTL SET_REPARSE_POINT + QUERY_INFO + CLOSE, related."""
    options = (b.FILE_DIRECTORY_FILE if directory else b.FILE_NON_DIRECTORY_FILE) | b.FILE_OPEN_REPARSE_POINT
    return client.compound(
        b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=_CIFS_CREATE_ACCESS, disposition=b.FILE_CREATE,
                                           options=options)),
        b.Req(b.SMB2_IOCTL, b.ioctl_body(b.RELATED_FILE_ID, r.FSCTL_SET_REPARSE_POINT, buffer, max_output=0),
              related=True),
        b.Req(b.SMB2_QUERY_INFO, b.query_info_body(b.RELATED_FILE_ID, b.SMB2_0_INFO_FILE, r.FILE_ALL_INFORMATION),
              related=True),
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True),
    )


_MKNOD_BUFFERS = {
    "fifo": r.nfs_buffer(r.NFS_SPECFILE_FIFO),
    "sock": r.nfs_buffer(r.NFS_SPECFILE_SOCK),
    "chr": r.nfs_device_buffer(r.NFS_SPECFILE_CHR, 1, 3),
    "blk": r.nfs_device_buffer(r.NFS_SPECFILE_BLK, 259, 65536),
}


@pytest.mark.parametrize("dialect", [0x0210, 0x0311], ids=["2.1", "3.1.1"])
def test_cifs_mknod_compound(server: SmbServer, work: Work, dialect: int) -> None:
    with _connect(server, dialect=dialect) as client:
        for kind, buffer in _MKNOD_BUFFERS.items():
            responses = _cifs_create_reparse(client, work.path(kind), buffer, directory=False)
            assert [_status(response.status) for response in responses] == ["STATUS_SUCCESS"] * 4, kind
            flags, attributes = r.create_flags_and_attributes(responses[0])
            assert not attributes & r.FILE_ATTRIBUTE_REPARSE_POINT and flags == 0  # nothing was set yet
            all_attributes = struct.unpack_from("<I", b.output_buffer(responses[2]), 32)[0]
            assert all_attributes & r.FILE_ATTRIBUTE_REPARSE_POINT, (kind, hex(all_attributes))
            assert stat.S_ISREG(os.lstat(work.local / kind).st_mode), kind
            assert _get_by_name(client, work.path(kind)) == buffer, kind
            response = client.create(work.path(kind), desired_access=ATTRIBUTE_ONLY)
            assert response.status == r.STATUS_IO_REPARSE_TAG_NOT_HANDLED, (kind, _status(response.status))
        entries = r.directory_entries(client, work.name, r.FILE_ID_FULL_DIRECTORY_INFORMATION)
        for kind in _MKNOD_BUFFERS:
            assert entries[kind].attributes & r.FILE_ATTRIBUTE_REPARSE_POINT, kind
            assert entries[kind].ea_size == r.IO_REPARSE_TAG_NFS, kind


def test_cifs_mknod_compound_with_a_bad_buffer(client: b.Client, work: Work) -> None:
    """When SET fails inside the chain the CREATE stands; the IOCTL's status tells the client to remove the
    empty object again (cifs.ko does that with DELETE_ON_CLOSE)."""
    bad = r.nfs_buffer(r.NFS_SPECFILE_CHR, b"\1\0\0\0")
    responses = _cifs_create_reparse(client, work.path("bad"), bad, directory=False)
    assert responses[0].status == b.STATUS_SUCCESS
    assert responses[1].status == r.STATUS_IO_REPARSE_DATA_INVALID, _status(responses[1].status)
    assert responses[3].status == b.STATUS_SUCCESS, _status(responses[3].status)
    file_id = client.open(work.path("bad"), desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                          options=b.FILE_OPEN_REPARSE_POINT | b.FILE_DELETE_ON_CLOSE)
    assert r.get_reparse(client, file_id)[0] == r.STATUS_NOT_A_REPARSE_POINT
    assert client.close_file(file_id) == b.STATUS_SUCCESS
    assert os.listdir(work.local) == []


def test_cifs_directory_symlink(client: b.Client, work: Work) -> None:
    """`ln -s existing_dir link` from cifs.ko 6.12+: an empty directory carrying IO_REPARSE_TAG_SYMLINK."""
    (work.local / "realdir").mkdir()
    (work.local / "realdir" / "f.txt").write_bytes(b"inner")
    buffer = r.symlink_buffer("realdir")
    responses = _cifs_create_reparse(client, work.path("dirlink"), buffer, directory=True)
    assert [_status(response.status) for response in responses] == ["STATUS_SUCCESS"] * 4
    all_info = b.output_buffer(responses[2])
    all_attributes = struct.unpack_from("<I", all_info, 32)[0]
    assert all_attributes & r.FILE_ATTRIBUTE_REPARSE_POINT and all_attributes & r.FILE_ATTRIBUTE_DIRECTORY
    assert all_info[40 + 21] == 1  # FileStandardInformation.Directory
    assert stat.S_ISDIR(os.lstat(work.local / "dirlink").st_mode)
    assert _get_by_name(client, work.path("dirlink")) == buffer
    for options in (0, b.FILE_DIRECTORY_FILE):
        response = client.create(work.path("dirlink"), desired_access=ATTRIBUTE_ONLY, options=options)
        error = r.parse_symlink_error(response, client.dialect)
        assert (error.substitute_name, error.flags, error.unparsed_path_length) == ("realdir", 1, 0)
    for info_class in (r.FILE_ID_FULL_DIRECTORY_INFORMATION, r.FILE_ID_BOTH_DIRECTORY_INFORMATION):
        entry = r.directory_entries(client, work.name, info_class)["dirlink"]
        assert entry.attributes & (r.FILE_ATTRIBUTE_DIRECTORY | r.FILE_ATTRIBUTE_REPARSE_POINT) == \
            r.FILE_ATTRIBUTE_DIRECTORY | r.FILE_ATTRIBUTE_REPARSE_POINT
        assert entry.ea_size == r.IO_REPARSE_TAG_SYMLINK
    # unlink as cifs.ko does it: CREATE(DELETE, DELETE_ON_CLOSE | OPEN_REPARSE_POINT) + CLOSE.
    responses = client.compound(
        b.Req(b.SMB2_CREATE, b.create_body(work.path("dirlink"), desired_access=b.DELETE | b.FILE_READ_ATTRIBUTES,
                                           share_access=b.FILE_SHARE_DELETE,
                                           options=b.FILE_DELETE_ON_CLOSE | b.FILE_OPEN_REPARSE_POINT)),
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True),
    )
    assert [_status(response.status) for response in responses] == ["STATUS_SUCCESS"] * 2
    assert sorted(os.listdir(work.local)) == ["realdir"]
    assert os.listdir(work.local / "realdir") == ["f.txt"]


# -- SMB3 POSIX extensions (protocol-notes 12) ------------------------------------------------------------------

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


def _posix_create(client: b.Client, name: str, **kwargs: object) -> b.Response:
    contexts = b.create_context(b.POSIX_EXTENSIONS_GUID, struct.pack("<I", 0o644))
    return client.create(name, contexts=contexts, **kwargs)


def test_posix_opens_report_tags_and_types(posix_client: b.Client, work: Work) -> None:
    """The POSIX create context response, FilePosixInformation and the POSIX directory class carry the tag and
    the type from the reparse data (SYMLINK -> 2, NFS CHR/BLK/FIFO/SOCK -> 3/4/5/6, other tags -> regular)."""
    client = posix_client
    (work.local / "plain").write_bytes(b"")
    (work.local / "dir").mkdir()
    os.symlink("plain", work.local / "server_link")
    _make_special_files(work.local)
    _make_client_reparse(client, work.path("client_link"), r.symlink_buffer("plain"))
    _make_client_reparse(client, work.path("client_chr"), r.nfs_device_buffer(r.NFS_SPECFILE_CHR, 1, 3))
    _make_client_reparse(client, work.path("client_fifo"), r.nfs_buffer(r.NFS_SPECFILE_FIFO))
    _make_client_reparse(client, work.path("client_opaque"), r.reparse_buffer(OPAQUE_MICROSOFT_TAG, b"x"))
    expected = {
        "plain": (0, r.POSIX_TYPE_REGULAR), "dir": (0, r.POSIX_TYPE_DIRECTORY),
        "server_link": (r.IO_REPARSE_TAG_SYMLINK, r.POSIX_TYPE_SYMLINK),
        "fifo": (r.IO_REPARSE_TAG_NFS, r.POSIX_TYPE_FIFO), "sock": (r.IO_REPARSE_TAG_NFS, r.POSIX_TYPE_SOCKET),
        "chr": (r.IO_REPARSE_TAG_NFS, r.POSIX_TYPE_CHARDEV), "blk": (r.IO_REPARSE_TAG_NFS, r.POSIX_TYPE_BLOCKDEV),
        "client_link": (r.IO_REPARSE_TAG_SYMLINK, r.POSIX_TYPE_SYMLINK),
        "client_chr": (r.IO_REPARSE_TAG_NFS, r.POSIX_TYPE_CHARDEV),
        "client_fifo": (r.IO_REPARSE_TAG_NFS, r.POSIX_TYPE_FIFO),
        "client_opaque": (OPAQUE_MICROSOFT_TAG, r.POSIX_TYPE_REGULAR),
    }
    listing = r.posix_directory_entries(client, work.name)
    for name, (tag, posix_type) in expected.items():
        response = _posix_create(client, f"{work.name}/{name}", desired_access=ATTRIBUTE_ONLY,
                                 options=b.FILE_OPEN_REPARSE_POINT)
        assert response.status == b.STATUS_SUCCESS, (name, _status(response.status))
        file_id = b.create_file_id(response.body)
        try:
            created = r.posix_create_view(r.create_contexts(response)[b.POSIX_EXTENSIONS_GUID])
            assert (created.reparse_tag, created.posix_type) == (tag, posix_type), name
            info = r.posix_info_view(r.query_file_info(client, file_id, r.FILE_POSIX_INFORMATION))
            assert (info.reparse_tag, info.posix_type) == (tag, posix_type), name
            assert info.attributes is not None
            assert bool(info.attributes & r.FILE_ATTRIBUTE_REPARSE_POINT) == bool(tag), name
        finally:
            client.close_file(file_id)
        assert (listing[name].reparse_tag, listing[name].posix_type) == (tag, posix_type), name


def test_posix_open_through_symlink_counts_slash_separated_rest(posix_client: b.Client, work: Work) -> None:
    """POSIX opens use '/' as separator (protocol-notes 12 item 3); the server still never follows a link."""
    (work.local / "real").mkdir()
    (work.local / "real" / "inner").write_bytes(b"inner")
    os.symlink("real", work.local / "link")
    for rest in ("inner", "a\\b/c"):
        response = _posix_create(posix_client, f"{work.name}/link/{rest}", desired_access=b.GENERIC_READ)
        error = r.parse_symlink_error(response, 0x0311)
        assert error.unparsed_path_length == len(f"/{rest}".encode("utf-16-le")), rest
        assert error.substitute_name == "real"
    response = _posix_create(posix_client, f"{work.name}/link", desired_access=b.GENERIC_READ)
    assert r.parse_symlink_error(response, 0x0311).unparsed_path_length == 0


# -- what else a client does with a reparse point: rename, symlinks to directories ----------------------------

def test_rename_moves_the_link_not_the_target(client: b.Client, work: Work) -> None:
    (work.local / "target.txt").write_bytes(b"target")
    os.symlink("target.txt", work.local / "server_link")
    os.mkfifo(work.local / "server_fifo")
    _make_client_reparse(client, work.path("client_link"), r.symlink_buffer("target.txt"), data=b"own")
    for name in ("server_link", "server_fifo", "client_link"):
        file_id = client.open(work.path(name), desired_access=b.DELETE | ATTRIBUTE_ONLY,
                              options=b.FILE_OPEN_REPARSE_POINT)
        try:
            response = client.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                                       b.rename_info(work.path(f"{name}.renamed")))
            assert response.status == b.STATUS_SUCCESS, (name, _status(response.status))
        finally:
            client.close_file(file_id)
        assert not os.path.lexists(work.local / name)
    assert os.readlink(work.local / "server_link.renamed") == "target.txt"
    assert stat.S_ISFIFO(os.lstat(work.local / "server_fifo.renamed").st_mode)
    assert (work.local / "client_link.renamed").read_bytes() == b"own"
    assert r.parse_symlink_buffer(_get_by_name(client, work.path("client_link.renamed"))).substitute_name == \
        "target.txt"
    assert (work.local / "target.txt").read_bytes() == b"target"


def test_server_symlink_to_directory_stops_for_any_create_options(client: b.Client, work: Work) -> None:
    (work.local / "realdir").mkdir()
    os.symlink("realdir", work.local / "dirlink")
    for options in (0, b.FILE_DIRECTORY_FILE, b.FILE_NON_DIRECTORY_FILE):
        response = client.create(work.path("dirlink"), desired_access=b.GENERIC_READ, options=options)
        error = r.parse_symlink_error(response, client.dialect)
        assert (error.substitute_name, error.unparsed_path_length) == ("realdir", 0), hex(options)


@pytest.mark.parametrize("dialect", [0x0210, 0x0300, 0x0311], ids=["2.1", "3.0", "3.1.1"])
def test_signed_sessions_get_signed_reparse_answers(server: SmbServer, work: Work, dialect: int) -> None:
    """Error answers are signed like any other on a signed session ([MS-SMB2] 3.3.4.1.1), the symlink error,
    the reparse FSCTL errors and the failed elements of a compound included; builders verifies each one."""
    os.symlink("target", work.local / "link")
    with b.connect(server.host, server.port, server.user, server.password, dialects=(dialect,),
                   sign=True) as client:
        responses = [client.create(work.path("link"), desired_access=b.GENERIC_READ),
                     client.create(work.path("link", "rest"), desired_access=b.GENERIC_READ)]
        file_id = _new_file(client, work.path("f"))
        responses.append(r.ioctl(client, file_id, r.FSCTL_GET_REPARSE_POINT))
        responses.append(r.ioctl(client, file_id, r.FSCTL_SET_REPARSE_POINT, b"\0" * 7, max_output=0))
        client.close_file(file_id)
        responses += client.compound(
            b.Req(b.SMB2_CREATE, b.create_body(work.path("link"), desired_access=ATTRIBUTE_ONLY)),
            b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True),
        )
    expected = ["STATUS_STOPPED_ON_SYMLINK", "STATUS_STOPPED_ON_SYMLINK", "STATUS_NOT_A_REPARSE_POINT",
                "STATUS_IO_REPARSE_DATA_INVALID", "STATUS_STOPPED_ON_SYMLINK", "STATUS_STOPPED_ON_SYMLINK"]
    assert [_status(response.status) for response in responses] == expected
    for response in responses:
        assert response.header.flags & b.SMB2_FLAGS_SIGNED, _status(response.status)
