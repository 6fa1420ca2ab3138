"""SMB3.1.1 POSIX extensions against the real daemon ([POSIX-SMB2], [POSIX-FSCC]; [MS-SMB2] 2.2.3.1, 2.2.13.2,
2.2.37, 2.2.39; [MS-FSCC] 2.4.12, 2.4.42.2, 2.5.1; protocol-notes 3, 6, 10, 11.2-11.4, 12).

What the kernel client test covers and what only these tests cover
------------------------------------------------------------------
The kernel suite (tests/kernel: cifs.ko of Debian's 6.1 kernel in a qemu guest, guest/cifs_suite.sh) mounts
with vers=3.1.1 but without the `posix` mount option, so cifs.ko never offers the POSIX negotiate context
there. From this area it covers only the Windows side: a 3.1.1 mount that negotiates without POSIX, unlink of
an open file with Windows (delete-pending) semantics, rename over an existing name, and chmod mapped to
READONLY.

Everything below is covered only by these raw tests:
- the POSIX negotiate context: echo, 3.1.1 only, bad lengths, unknown values, server and share switches;
- the POSIX create context: mode of new files and directories, share masks, the response fields, bad
  lengths, ignored without POSIX;
- POSIX path syntax ('/' only, '\\' and ':' as name characters, names Windows forbids) and case-sensitive
  lookups, next to Windows opens on the same connection;
- POSIX unlink and rename over open targets, through a POSIX open and through the Ex classes; no symlink
  following;
- FilePosixInformation, the POSIX directory class and the POSIX FS class byte by byte for files, directories,
  symlinks, FIFOs, sockets and devices, with and without type bits, with NFS and WSL tags;
- chmod through S-1-5-88-3, chown/chgrp through S-1-22 SIDs (root and a normal user), the Windows security
  descriptor built from the mode, FileFsAttributeInformation flags, INVALID_INFO_CLASS/INVALID_LEVEL outside POSIX.

A `posix` mount with cifs.ko 6.1 would exercise the negotiate and create contexts, QUERY_INFO 100 (stat), the
0x64 listing (readdir) and the POSIX FS class (statfs), but not the type bits in PosixMode or the S-1-5-88-3
chmod (both 6.13), reparse-point special files (6.7/6.8) or native symlinks on POSIX mounts (6.17), and it
never sends FileRenameInformationEx, FileDispositionInformationEx or ownership SIDs.

Run: `pytest tests/integration/test_posix.py` as root (device nodes, chown, a Unix account for the normal-user
case). Each test works in its own directory of the shares; the servers are per module.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from smbprotocol import Dialects
from smbprotocol.connection import Connection
from smbprotocol.create_contexts import SMB2CreateContextRequest
from smbprotocol.file_info import InfoType
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
    SMB2QueryInfoRequest,
    SMB2QueryInfoResponse,
)
from smbprotocol.security_descriptor import (
    AccessAllowedAce,
    AclPacket,
    SDControl,
    SIDPacket,
    SMB2CreateSDBuffer,
)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

from tests import builders as b
from tests.conftest import (
    REPO,
    SmbServer,
    assert_no_server_bugs,
    serve_as_test_account,
    start_server,
    stop_server,
)
from tests.integration import posix_helpers as p

# Shares of the main server: TOML lines of each share table.
SHARE_OPTIONS = {
    "share": "",
    "noposix": "posix = false\n",
    "masked": "create_mask = 0o640\ndirectory_mask = 0o750\n",
    "notype": "posix_file_type_bits = false\n",
    "wsl": 'special_files = "wsl"\n',
}
STYLES = {"share": p.DEFAULT_STYLE, "notype": p.ShareStyle(file_type_bits=False),
          "wsl": p.ShareStyle(wsl=True)}
KINDS = ("file", "dir", "symlink", "fifo", "socket", "chardev", "blockdev")
SPECIAL_KINDS = ("symlink", "fifo", "socket", "chardev", "blockdev")
# A Unix account (and a second group it belongs to) for the normal-user ownership case.
NORMAL_USER = "smbposix_u"
NORMAL_USER_PASSWORD = "Posix-pass-7"
EXTRA_GROUP = "smbposix_g"
OTHER_GUID = bytes.fromhex("0123456789ABCDEF0123456789ABCDEF")
FILE_CREATED = 2  # CreateAction ([MS-SMB2] 2.2.14)


# -- servers ------------------------------------------------------------------------------------------------

@dataclass
class Env:
    server: SmbServer
    shares: dict[str, Path]
    as_root: bool = False


def _start(tmp: Path, server_table: str, shares: dict[str, str], as_root: bool = False) -> Env:
    paths = {}
    tables = []
    for name, options in shares.items():
        path = tmp / "shares" / name
        path.mkdir(parents=True)
        paths[name] = path
        tables.append(f'[shares.{name}]\npath = "{path}"\n{options}')
    config = tmp / "smbsrv.toml"
    config.write_text(f'[server]\nstate_dir = "{tmp / "state"}"\n{server_table}\n' + "\n".join(tables))
    server = start_server(paths["share"], tmp / "server.log", config=config, as_root=as_root)
    return Env(server, paths, as_root)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    """The main server: POSIX on, and one share per option that changes POSIX behaviour. A short temporary
    path keeps AF_UNIX socket names under their 108-byte limit."""
    tmp = Path(tempfile.mkdtemp(prefix="smbsrv-posix-"))
    try:
        started = _start(tmp, "", SHARE_OPTIONS)
        try:
            yield started
        finally:
            stop_server(started.server.process)
        assert_no_server_bugs(started.server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def env_root() -> Iterator[Env]:
    """A server whose user acts as root, for the tests that need root's powers (chown to any id, a file of a
    foreign owner read as its owner sees it)."""
    tmp = Path(tempfile.mkdtemp(prefix="smbsrv-posix-root-"))
    try:
        started = _start(tmp, "", {"share": ""}, as_root=True)
        try:
            yield started
        finally:
            stop_server(started.server.process)
        assert_no_server_bugs(started.server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def root_work(env_root: Env, request: pytest.FixtureRequest) -> Iterator[tuple[b.Client, Work]]:
    """A POSIX client of the root-mapped server and this test's directory on it."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[-60:] + "-" + uuid.uuid4().hex[:6]
    server = env_root.server
    client = p.connect(server.host, server.port, server.user, server.password, "share", posix=True)
    try:
        yield client, Work(env_root, name)
    finally:
        client.close()


@pytest.fixture(scope="module")
def env_posix_off() -> Iterator[Env]:
    """A server with the server-wide `posix = false`."""
    tmp = Path(tempfile.mkdtemp(prefix="smbsrv-noposix-"))
    try:
        started = _start(tmp, "posix = false\n", {"share": ""})
        try:
            yield started
        finally:
            stop_server(started.server.process)
        assert_no_server_bugs(started.server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Work:
    """This test's own directory, created on the server side in each share the test asks for."""

    env: Env
    name: str
    made: dict[str, Path] = field(default_factory=dict)

    def path(self, share: str = "share") -> Path:
        if share not in self.made:
            directory = self.env.shares[share] / self.name
            directory.mkdir()
            serve_as_test_account(directory)
            self.made[share] = directory
        return self.made[share]

    def posix(self, relative: str) -> str:
        """The share-relative name of `relative` in POSIX syntax."""
        self._hand_over()
        return f"{self.name}/{relative}" if relative else self.name

    def windows(self, relative: str) -> str:
        self._hand_over()
        return f"{self.name}\\{relative}" if relative else self.name

    def _hand_over(self) -> None:
        # What the test made on disk (as root) belongs to the SMB user's account before the client uses it,
        # except on the root-mapped server, whose tests set owners on purpose.
        if not self.env.as_root:
            serve_as_test_account(*self.made.values())


@pytest.fixture
def work(env: Env, request: pytest.FixtureRequest) -> Work:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[-60:] + "-" + uuid.uuid4().hex[:6]
    work = Work(env, name)
    work.path("share")
    return work


PosixClientFactory = Callable[..., b.Client]


@pytest.fixture
def connect_posix(env: Env) -> Iterator[PosixClientFactory]:
    """Opens POSIX-negotiated raw clients on a share of the main server; closes them after the test."""
    clients: list[b.Client] = []

    def connect(share: str = "share", posix: bool = True) -> b.Client:
        server = env.server
        client = p.connect(server.host, server.port, server.user, server.password, share, posix=posix)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def pc(connect_posix: PosixClientFactory) -> b.Client:
    """A client that negotiated POSIX, connected to "share"."""
    return connect_posix()


@pytest.fixture
def wc(connect_posix: PosixClientFactory) -> b.Client:
    """A 3.1.1 client that did not offer the POSIX context, connected to "share"."""
    return connect_posix(posix=False)


def _status(response: b.Response) -> str:
    return b.status_name(response.status)


def _settle(*paths: Path) -> None:
    """Let relatime update the access times now, so the server's stat and ours later see the same atime:
    relatime updates atime only while it is not newer than mtime/ctime, and timestamps are tick-grained."""
    time.sleep(0.03)
    for path in paths:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            os.listdir(path)
        elif stat.S_ISLNK(st.st_mode):
            os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as file:
                file.read(1)


def _make_object(directory: Path, kind: str, name: str | None = None) -> Path:
    """A server-side object of `kind`, with an owner, group and mode no default would give it."""
    path = directory / (name or kind)
    if kind == "file":
        path.write_bytes(b"posix data " * 700)
        # A second name outside the directory makes NumberOfLinks 2 without adding a listed entry.
        os.link(path, directory.parent / f"{directory.name}-{path.name}.link")
        mode = 0o2754
    elif kind == "dir":
        path.mkdir()
        (path / "child").mkdir()
        mode = 0o1750
    elif kind == "symlink":
        os.symlink("some/where/else", path)
        mode = None
    elif kind == "fifo":
        os.mkfifo(path)
        mode = 0o620
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
        mode = 0o751
    elif kind == "chardev":
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
        mode = 0o640
    elif kind == "blockdev":
        os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(7, 3))
        mode = 0o604
    else:
        raise AssertionError(kind)
    os.lchown(path, 1234, 5678)
    if mode is not None:
        os.chmod(path, mode)  # after the chown, which clears setgid
    return path


def _open_options(kind: str) -> int:
    # Special objects are reparse points: only FILE_OPEN_REPARSE_POINT reaches the object itself.
    return b.FILE_OPEN_REPARSE_POINT if kind in SPECIAL_KINDS else 0


def _query_posix(client: b.Client, file_id: tuple[int, int]) -> bytes:
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, p.FILE_POSIX_INFORMATION)
    assert _status(response) == "STATUS_SUCCESS"
    return b.output_buffer(response)


def _read_all(client: b.Client, file_id: tuple[int, int]) -> bytes:
    response = client.read(file_id, 0, 65536)
    if response.status == b.STATUS_END_OF_FILE:
        return b""
    assert _status(response) == "STATUS_SUCCESS"
    return b.read_data(response)


# -- NEGOTIATE: the POSIX context ([POSIX-SMB2]; protocol-notes 3) -------------------------------------------

def _negotiate(server: SmbServer, dialects: tuple[int, ...], posix_data: bytes | None) -> b.Response:
    contexts = [b.preauth_context(), b.signing_context()]
    if posix_data is not None:
        contexts.append(p.posix_negotiate_context(posix_data))
    with b.Client(server.host, server.port) as client:
        return client.negotiate(dialects, contexts=contexts)


def _posix_answers(response: b.Response) -> list[bytes]:
    return [data for context_type, data in p.negotiate_contexts(response)
            if context_type == b.SMB2_POSIX_EXTENSIONS_AVAILABLE]


def test_negotiate_echoes_the_posix_context(env: Env) -> None:
    response = _negotiate(env.server, b.DIALECTS_ALL, b.POSIX_EXTENSIONS_GUID)
    assert _status(response) == "STATUS_SUCCESS"
    assert struct.unpack_from("<H", response.body, 4)[0] == 0x0311
    assert _posix_answers(response) == [b.POSIX_EXTENSIONS_GUID]


def test_negotiate_picks_the_known_version_among_several(env: Env) -> None:
    # DataLength may hold several 16-byte versions; the answer is the one value the server speaks.
    response = _negotiate(env.server, (0x0311,), OTHER_GUID + b.POSIX_EXTENSIONS_GUID)
    assert _status(response) == "STATUS_SUCCESS"
    assert _posix_answers(response) == [b.POSIX_EXTENSIONS_GUID]


@pytest.mark.parametrize("length", [1, 8, 15, 17, 24, 31])
def test_negotiate_posix_length_not_a_multiple_of_16(env: Env, length: int) -> None:
    data = (b.POSIX_EXTENSIONS_GUID * 2)[:length]
    response = _negotiate(env.server, (0x0311,), data)
    assert _status(response) == "STATUS_INVALID_PARAMETER"


@pytest.mark.parametrize("data", [OTHER_GUID, b.POSIX_EXTENSIONS_GUID[::-1], b""],
                         ids=["other", "reversed", "empty"])
def test_negotiate_unknown_posix_value_is_not_answered(env: Env, data: bytes) -> None:
    server = env.server
    with b.Client(server.host, server.port) as client:
        contexts = [b.preauth_context(), p.posix_negotiate_context(data)]
        response = client.negotiate((0x0311,), contexts=contexts)
        assert _status(response) == "STATUS_SUCCESS"
        assert _posix_answers(response) == []
        # The connection has no POSIX: the create context is ignored and the POSIX class refused.
        assert client.session_setup(server.user, server.password) == b.STATUS_SUCCESS
        assert _status(client.tree_connect("share")) == "STATUS_SUCCESS"
        _assert_no_posix_on_connection(client, env.shares["share"])


def _assert_no_posix_on_connection(client: b.Client, share_path: Path) -> None:
    name = f"no-posix-{uuid.uuid4().hex[:8]}"
    response = p.posix_create(client, name, 0o600, desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                              disposition=b.FILE_CREATE)
    assert _status(response) == "STATUS_SUCCESS"
    assert p.SMB2_CREATE_POSIX_CONTEXT not in p.create_response_contexts(response)
    assert os.stat(share_path / name).st_mode & 0o7777 != 0o600
    file_id = b.create_file_id(response.body)
    assert _status(client.query_info(file_id, b.SMB2_0_INFO_FILE, p.FILE_POSIX_INFORMATION)) == \
        "STATUS_INVALID_INFO_CLASS"
    assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_negotiate_posix_only_on_3_1_1(env: Env) -> None:
    # Before 3.1.1 there are no negotiate contexts: the same bytes sent with 3.0.2 as the best dialect are not
    # looked at, and the response carries no context.
    server = env.server
    with b.Client(server.host, server.port) as client:
        response = client.negotiate((0x0202, 0x0210, 0x0300, 0x0302), contexts=[p.posix_negotiate_context()])
        assert _status(response) == "STATUS_SUCCESS"
        dialect, context_count = struct.unpack_from("<HH", response.body, 4)
        assert dialect == 0x0302
        assert context_count == 0
        assert struct.unpack_from("<I", response.body, 60)[0] == 0
        assert client.session_setup(server.user, server.password) == b.STATUS_SUCCESS
        assert _status(client.tree_connect("share")) == "STATUS_SUCCESS"
        _assert_no_posix_on_connection(client, env.shares["share"])


def test_server_option_posix_off(env_posix_off: Env) -> None:
    server = env_posix_off.server
    response = _negotiate(server, (0x0311,), b.POSIX_EXTENSIONS_GUID)
    assert _status(response) == "STATUS_SUCCESS"
    assert _posix_answers(response) == []
    with p.connect(server.host, server.port, server.user, server.password, "share") as client:
        _assert_no_posix_on_connection(client, env_posix_off.shares["share"])
        root = client.open("", options=b.FILE_DIRECTORY_FILE)
        response = client.query_directory(root, "*", info_class=p.SMB2_FIND_POSIX_INFORMATION)
        assert _status(response) == "STATUS_INVALID_INFO_CLASS"
        response = client.query_info(root, b.SMB2_0_INFO_FILESYSTEM, p.FILE_FS_POSIX_INFORMATION)
        assert _status(response) == "STATUS_INVALID_INFO_CLASS"
        client.close_file(root)


# -- CREATE: the POSIX create context (protocol-notes 6, 12.8) -----------------------------------------------

def _posix_create_new(client: b.Client, name: str, mode: int, directory: bool) -> b.Response:
    return p.posix_create(client, name, mode, desired_access=b.GENERIC_READ | b.GENERIC_WRITE if not directory
                          else b.GENERIC_READ, disposition=b.FILE_CREATE,
                          options=b.FILE_DIRECTORY_FILE if directory else b.FILE_NON_DIRECTORY_FILE)


def _check_created(client: b.Client, response: b.Response, path: Path, directory: bool, mode: int,
                   style: p.ShareStyle = p.DEFAULT_STYLE) -> None:
    assert _status(response) == "STATUS_SUCCESS"
    assert struct.unpack_from("<I", response.body, 4)[0] == FILE_CREATED
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode) == directory
    assert oct(st.st_mode & 0o7777) == oct(mode)
    contexts = p.create_response_contexts(response)
    assert p.SMB2_CREATE_POSIX_CONTEXT in contexts, "no POSIX create context in the response"
    actual = contexts[p.SMB2_CREATE_POSIX_CONTEXT]
    expected = p.expected_create_response(path, style)
    assert actual == expected, (actual.hex(), expected.hex())
    client.close_file(b.create_file_id(response.body))


@pytest.mark.parametrize(("directory", "mode"), [
    (False, 0o600), (False, 0o666), (False, 0o751), (False, 0o1644), (False, 0o000),
    (True, 0o700), (True, 0o777), (True, 0o1777), (True, 0o555),
], ids=lambda v: oct(v) if isinstance(v, int) and not isinstance(v, bool) else ("dir" if v else "file"))
def test_create_mode_is_the_mode_of_the_new_object(pc: b.Client, work: Work, directory: bool,
                                                   mode: int) -> None:
    # The mode is taken as given: the client already applied its umask, the server's own umask must not apply.
    response = _posix_create_new(pc, work.posix("new"), mode, directory)
    _check_created(pc, response, work.path() / "new", directory, mode)


@pytest.mark.parametrize(("directory", "mode", "expected"), [
    (False, 0o4755, 0o755), (False, 0o6777, 0o777), (True, 0o2775, 0o775), (True, 0o7777, 0o1777),
    # Type bits in Mode are not used: the disposition and options decide what is created.
    (False, 0o100640, 0o640), (False, 0o040640, 0o640), (True, 0o040750, 0o750), (True, 0o100750, 0o750),
    # cifs.ko's ACL_NO_MODE ((umode_t)-1, its mknod/symlink creates): no mode given, the Windows defaults.
    (False, 0xFFFF, 0o644), (True, 0xFFFF, 0o755), (False, 0xFFFFFFFF, 0o644),
])
def test_create_mode_default_masks_drop_setuid_setgid(pc: b.Client, work: Work, directory: bool, mode: int,
                                                      expected: int) -> None:
    response = _posix_create_new(pc, work.posix("new"), mode, directory)
    _check_created(pc, response, work.path() / "new", directory, expected)


@pytest.mark.parametrize(("directory", "mode", "expected"), [
    (False, 0o666, 0o640), (False, 0o604, 0o600), (False, 0o1777, 0o640),
    (True, 0o777, 0o750), (True, 0o705, 0o700),
])
def test_create_mode_within_share_masks(connect_posix: PosixClientFactory, work: Work, directory: bool,
                                        mode: int, expected: int) -> None:
    client = connect_posix("masked")
    directory_path = work.path("masked")
    response = _posix_create_new(client, work.posix("new"), mode, directory)
    _check_created(client, response, directory_path / "new", directory, expected)


@pytest.mark.parametrize(("directory", "expected"), [(True, 0o2750), (False, 0o640)], ids=["dir", "file"])
def test_create_in_a_setgid_directory_keeps_linux_inheritance(pc: b.Client, work: Work, directory: bool,
                                                              expected: int) -> None:
    # mkdir(2) in a setgid directory makes a setgid directory whatever the mode asked for; a file only takes
    # the group. The exact mode of the POSIX create must not clear the inherited bit (cifs.ko posix sweep).
    parent = work.path() / "shared"
    parent.mkdir()
    serve_as_test_account(parent)
    os.chmod(parent, 0o2775)
    response = _posix_create_new(pc, work.posix("shared/new"), 0o750 if directory else 0o640, directory)
    _check_created(pc, response, parent / "new", directory, expected)
    assert os.stat(parent / "new").st_gid == os.stat(parent).st_gid


def test_posix_create_does_not_store_readonly(pc: b.Client, work: Work) -> None:
    # cifs.ko sends FILE_ATTRIBUTE_READONLY with a mode that has no write bits; the mode says it already, and a
    # stored READONLY would outlive a chmod to 0644 (posix sweep: write_after_chmod_0444_to_0644).
    response = p.posix_create(pc, work.posix("ro"), 0o444, desired_access=b.GENERIC_WRITE,
                              disposition=b.FILE_CREATE, file_attributes=b.FILE_ATTRIBUTE_READONLY)
    assert _status(response) == "STATUS_SUCCESS"
    assert struct.unpack_from("<I", response.body, 56)[0] & b.FILE_ATTRIBUTE_READONLY == 0
    pc.close_file(b.create_file_id(response.body))
    os.chmod(work.path() / "ro", 0o644)
    writer = pc.open(work.windows("ro"), desired_access=b.GENERIC_WRITE)  # a Windows client may write it now
    pc.close_file(writer)


@pytest.mark.parametrize("posix", [True, False], ids=["posix", "windows"])
def test_holes_of_a_file_never_marked_sparse(pc: b.Client, work: Work, posix: bool) -> None:
    # On Linux every file may have holes and SEEK_DATA/SEEK_HOLE find them; cifs.ko asks for the allocated
    # ranges only of a file whose attributes say SPARSE (smb3_llseek). A Windows open keeps [MS-FSA]
    # 2.1.5.10.22: a file not marked sparse is allocated over the whole range, and not SPARSE.
    path = work.path() / "holey"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"E", 8 << 20)
    finally:
        os.close(fd)
    serve_as_test_account(path)
    file_id = b.create_file_id(_create_as(pc, work, "holey", posix, desired_access=b.GENERIC_READ).body)
    response = pc.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_ALL_INFORMATION)
    sparse = struct.unpack_from("<I", b.output_buffer(response), 32)[0] & 0x200  # FILE_ATTRIBUTE_SPARSE_FILE
    assert bool(sparse) == posix
    if posix:
        posix_info = p.describe_posix_information(_query_posix(pc, file_id))
        assert int(str(posix_info["FileAttributes"]), 16) & 0x200
    request = b.ioctl_body(file_id, 0x000940CF, struct.pack("<qq", 0, (8 << 20) + 1), max_output=4096)
    response = pc.request(b.SMB2_IOCTL, request)  # FSCTL_QUERY_ALLOCATED_RANGES
    assert _status(response) == "STATUS_SUCCESS"
    out_offset, out_count = struct.unpack_from("<II", response.body, 32)
    ranges = [struct.unpack_from("<qq", response.raw, out_offset + index) for index in range(0, out_count, 16)]
    assert ranges == ([(8 << 20, 1)] if posix else [(0, (8 << 20) + 1)]), ranges
    pc.close_file(file_id)


def _readonly_file(pc: b.Client, work: Work, name: str) -> Path:
    """A 0644 file of the serving account that carries FILE_ATTRIBUTE_READONLY (set by a Windows client)."""
    response = pc.create(work.windows(name), desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE,
                         file_attributes=b.FILE_ATTRIBUTE_READONLY)
    assert _status(response) == "STATUS_SUCCESS"
    pc.close_file(b.create_file_id(response.body))
    path = work.path() / name
    os.chmod(path, 0o644)
    return path


def _create_as(pc: b.Client, work: Work, name: str, posix: bool, **kwargs: object) -> b.Response:
    if posix:
        return p.posix_create(pc, work.posix(name), **kwargs)
    return pc.create(work.windows(name), **kwargs)


@pytest.mark.parametrize("posix", [True, False], ids=["posix", "windows"])
def test_readonly_attribute_and_posix_opens(pc: b.Client, work: Work, posix: bool) -> None:
    # [MS-FSA] 2.1.5.1.2.1 and 2.1.5.15.3: READONLY refuses writes and deletion; a POSIX open follows the mode,
    # as open(2) and unlink(2) do on Linux.
    path = _readonly_file(pc, work, "ro")
    response = _create_as(pc, work, "ro", posix, desired_access=b.GENERIC_WRITE)
    assert _status(response) == ("STATUS_SUCCESS" if posix else "STATUS_ACCESS_DENIED")
    deleter = b.create_file_id(_create_as(pc, work, "ro", posix, desired_access=b.DELETE).body)
    response = pc.set_info(deleter, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
    assert _status(response) == ("STATUS_SUCCESS" if posix else "STATUS_CANNOT_DELETE")
    pc.close_file(deleter)
    assert path.exists() != posix
    path = _readonly_file(pc, work, "ro2")
    response = _create_as(pc, work, "ro2", posix, desired_access=b.DELETE, options=b.FILE_DELETE_ON_CLOSE)
    assert _status(response) == ("STATUS_SUCCESS" if posix else "STATUS_CANNOT_DELETE")
    if posix:
        pc.close_file(b.create_file_id(response.body))
    assert path.exists() != posix


@pytest.mark.parametrize("posix", [True, False], ids=["posix", "windows"])
def test_owner_sets_times_of_a_read_only_file_on_posix_opens(pc: b.Client, work: Work, posix: bool) -> None:
    # utimensat(2) lets the owner set a 0444 file's times; tar and cp -p do it after setting the mode.
    path = work.path() / "ro"
    path.write_bytes(b"ro")
    serve_as_test_account(path)
    os.chmod(path, 0o444)
    response = _create_as(pc, work, "ro", posix, desired_access=b.FILE_WRITE_ATTRIBUTES | b.FILE_READ_ATTRIBUTES)
    assert _status(response) == ("STATUS_SUCCESS" if posix else "STATUS_ACCESS_DENIED")
    if not posix:
        return
    file_id = b.create_file_id(response.body)
    mtime = 116444736000000000 + 1234567890 * 10_000_000  # 2009-02-13 23:31:30 as a FILETIME
    basic = struct.pack("<QQQQII", 0, 0, mtime, 0, 0, 0)
    assert _status(pc.set_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_BASIC_INFORMATION, basic)) == "STATUS_SUCCESS"
    pc.close_file(file_id)
    assert os.stat(path).st_mtime == 1234567890


@pytest.mark.parametrize("disposition", [b.FILE_OPEN, b.FILE_OPEN_IF, b.FILE_OVERWRITE_IF],
                         ids=["open", "open-if", "overwrite-if"])
def test_create_mode_leaves_existing_objects_alone(pc: b.Client, work: Work, disposition: int) -> None:
    # Mode is the mode of a *newly created* object; opening (or overwriting) an existing one keeps its mode.
    path = work.path() / "existing"
    path.write_bytes(b"keep")
    os.chmod(path, 0o604)
    serve_as_test_account(path)
    response = p.posix_create(pc, work.posix("existing"), 0o777,
                              desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=disposition)
    assert _status(response) == "STATUS_SUCCESS"
    assert oct(os.stat(path).st_mode & 0o7777) == oct(0o604)
    context = p.create_response_contexts(response)[p.SMB2_CREATE_POSIX_CONTEXT]
    assert context == p.expected_create_response(path)
    pc.close_file(b.create_file_id(response.body))


@pytest.mark.parametrize("data", [b"", b"\xa4\x01\x00", b"\xa4\x01\x00\x00\x00", struct.pack("<Q", 0o644)],
                         ids=["0-bytes", "3-bytes", "5-bytes", "8-bytes"])
def test_posix_context_of_the_wrong_size(pc: b.Client, work: Work, data: bytes) -> None:
    response = p.posix_create(pc, work.posix("never"), data, desired_access=b.GENERIC_WRITE,
                              disposition=b.FILE_CREATE)
    assert _status(response) == "STATUS_INVALID_PARAMETER"
    assert not os.path.lexists(work.path() / "never")


def test_posix_context_ignored_without_posix_negotiated(wc: b.Client, work: Work) -> None:
    (work.path() / "Mixed.txt").write_bytes(b"mixed")
    for name, data in (("new", struct.pack("<I", 0o600)), ("bad-size", b"\x00\x01\x02")):
        response = p.posix_create(wc, work.windows(name), data, desired_access=b.GENERIC_WRITE,
                                  disposition=b.FILE_CREATE)
        assert _status(response) == "STATUS_SUCCESS", name
        assert p.create_response_contexts(response) == {}, name
        wc.close_file(b.create_file_id(response.body))
    # New files of Windows opens get the server's default mode, not the context's.
    assert os.stat(work.path() / "new").st_mode & 0o7777 == 0o744  # as Samba 4.17 (docs/access.md)
    # Windows semantics stay: the lookup is case-insensitive.
    response = p.posix_create(wc, work.windows("MIXED.TXT"))
    assert _status(response) == "STATUS_SUCCESS"
    assert p.create_response_contexts(response) == {}
    wc.close_file(b.create_file_id(response.body))


def test_posix_context_ignored_by_a_client_without_posix(env: Env, work: Work) -> None:
    """smbprotocol cannot offer the POSIX negotiate context, so its connections are the "not negotiated" case;
    it sends the create context through its generic create-context API."""
    server = env.server
    connection = Connection(uuid.uuid4(), server.host, server.port, require_signing=False)
    connection.connect(dialect=Dialects.SMB_3_1_1, timeout=30)
    try:
        session = Session(connection, server.user, server.password, require_encryption=False,
                          auth_protocol="ntlm")
        session.connect()
        tree = TreeConnect(session, f"\\\\{server.host}\\share")
        tree.connect()
        context = SMB2CreateContextRequest()
        context["buffer_name"] = p.SMB2_CREATE_POSIX_CONTEXT
        context["buffer_data"] = struct.pack("<I", 0o600)
        handle = Open(tree, work.windows("from-smbprotocol"))
        access = FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE
        answered = handle.create(ImpersonationLevel.Impersonation, access,
                                 0, ShareAccess.FILE_SHARE_READ, CreateDisposition.FILE_CREATE,
                                 CreateOptions.FILE_NON_DIRECTORY_FILE, create_contexts=[context])
        assert answered is None, f"response contexts: {answered!r}"
        handle.close()
        assert os.stat(work.path() / "from-smbprotocol").st_mode & 0o7777 == 0o744
        session.disconnect()
    finally:
        connection.disconnect(True)


def test_posix_context_ignored_on_a_share_without_posix(connect_posix: PosixClientFactory,
                                                        work: Work) -> None:
    client = connect_posix("noposix")
    directory = work.path("noposix")
    (directory / "Mixed.txt").write_bytes(b"mixed")
    for name, data in (("new", struct.pack("<I", 0o600)), ("bad-size", b"\x00\x01\x02")):
        response = p.posix_create(client, work.windows(name), data, desired_access=b.GENERIC_WRITE,
                                  disposition=b.FILE_CREATE)
        assert _status(response) == "STATUS_SUCCESS", name
        assert p.create_response_contexts(response) == {}, name
        client.close_file(b.create_file_id(response.body))
    assert os.stat(directory / "new").st_mode & 0o7777 == 0o744
    # Windows path rules: case-insensitive, wildcard characters refused, '\\' separates.
    response = p.posix_create(client, work.posix("MIXED.TXT"))
    assert _status(response) == "STATUS_SUCCESS"
    client.close_file(b.create_file_id(response.body))
    response = p.posix_create(client, work.posix("star*"), desired_access=b.GENERIC_WRITE,
                              disposition=b.FILE_CREATE)
    assert _status(response) == "STATUS_OBJECT_NAME_INVALID"
    response = p.posix_create(client, work.posix("no\\such"), desired_access=b.GENERIC_WRITE,
                              disposition=b.FILE_CREATE)
    assert _status(response) == "STATUS_OBJECT_PATH_NOT_FOUND"


# -- POSIX semantics of a POSIX open (protocol-notes 12.2-12.5) ----------------------------------------------

def test_slash_is_the_only_separator(pc: b.Client, work: Work) -> None:
    (work.path() / "sub").mkdir()
    serve_as_test_account(work.path())
    file_id = p.posix_open(pc, work.posix("sub/inner"), desired_access=b.GENERIC_WRITE,
                           disposition=b.FILE_CREATE)
    pc.close_file(file_id)
    assert (work.path() / "sub" / "inner").is_file()
    # '\\' is part of the name: this creates "sub\\inner2" next to "sub", not "inner2" inside it.
    file_id = p.posix_open(pc, work.posix("sub\\inner2"), desired_access=b.GENERIC_WRITE,
                           disposition=b.FILE_CREATE)
    pc.close_file(file_id)
    assert (work.path() / "sub\\inner2").is_file()
    assert not (work.path() / "sub" / "inner2").exists()


@pytest.mark.parametrize("name", ["back\\slash", "co:lon", "file:stream:$DATA", "data::$DATA", "\\lead"])
def test_backslash_and_colon_are_name_characters(pc: b.Client, wc: b.Client, work: Work, name: str) -> None:
    file_id = p.posix_open(pc, work.posix(name), desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                           disposition=b.FILE_CREATE)
    assert _status(pc.write(file_id, 0, b"named")) == "STATUS_SUCCESS"
    pc.close_file(file_id)
    assert os.listdir(work.path()) == [name]
    assert (work.path() / name).read_bytes() == b"named"
    file_id = p.posix_open(pc, work.posix(""), options=b.FILE_DIRECTORY_FILE)
    names = [entry.name for entry in p.list_posix(pc, file_id)]
    pc.close_file(file_id)
    assert sorted(names) == sorted([".", "..", name])
    if ":" in name:
        # A Windows open on the same connection reads ':' as a stream separator and never reaches this file.
        assert wc.create(work.windows(name)).status != b.STATUS_SUCCESS


@pytest.mark.parametrize("name", ["co:lon", "file:stream:$DATA", "data::$DATA"])
def test_windows_open_of_a_colon_name(pc: b.Client, wc: b.Client, work: Work, name: str) -> None:
    """The file exists under that very name (made by a POSIX open); a Windows open of the name parses a
    stream of another file (docs/streams.md), which does not exist: the POSIX name is never reached."""
    pc.close_file(p.posix_open(pc, work.posix(name), desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
    assert _status(wc.create(work.windows(name))) == "STATUS_OBJECT_NAME_NOT_FOUND"


def test_lookups_are_case_sensitive(pc: b.Client, work: Work) -> None:
    for name in ("Name", "name", "NAME"):
        file_id = p.posix_open(pc, work.posix(name), desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                               disposition=b.FILE_CREATE)
        assert _status(pc.write(file_id, 0, name.encode())) == "STATUS_SUCCESS"
        pc.close_file(file_id)
    assert sorted(os.listdir(work.path())) == ["NAME", "Name", "name"]
    for name in ("Name", "name", "NAME"):
        file_id = p.posix_open(pc, work.posix(name))
        assert _read_all(pc, file_id) == name.encode()
        pc.close_file(file_id)
    assert _status(p.posix_create(pc, work.posix("nAME"))) == "STATUS_OBJECT_NAME_NOT_FOUND"


def test_windows_opens_on_the_same_connection_stay_case_insensitive(pc: b.Client, work: Work) -> None:
    (work.path() / "Mixed.txt").write_bytes(b"mixed")
    assert _status(p.posix_create(pc, work.posix("MIXED.TXT"))) == "STATUS_OBJECT_NAME_NOT_FOUND"
    response = pc.create(work.windows("MIXED.TXT"))
    assert _status(response) == "STATUS_SUCCESS"
    assert _read_all(pc, b.create_file_id(response.body)) == b"mixed"
    pc.close_file(b.create_file_id(response.body))
    response = pc.create(work.windows("mixed.TXT"), desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE)
    assert _status(response) == "STATUS_OBJECT_NAME_COLLISION"
    # The POSIX open may add the other spelling next to it.
    pc.close_file(p.posix_open(pc, work.posix("mixed.TXT"), desired_access=b.GENERIC_WRITE,
                               disposition=b.FILE_CREATE))
    assert sorted(os.listdir(work.path())) == ["Mixed.txt", "mixed.TXT"]


def test_posix_listing_pattern_is_case_sensitive(pc: b.Client, work: Work) -> None:
    for name in ("Apple", "apple", "APPLE", "banana"):
        (work.path() / name).write_bytes(b"")
    directory = p.posix_open(pc, work.posix(""), options=b.FILE_DIRECTORY_FILE)
    assert sorted(e.name for e in p.list_posix(pc, directory, "A*")) == ["APPLE", "Apple"]
    pc.close_file(directory)
    # A Windows handle on the same connection matches without regard to case.
    assert sorted(pc.list_directory(work.windows(""), "a*")) == ["APPLE", "Apple", "apple"]


@pytest.mark.parametrize("name", ["star*", "question?", "less<", "greater>", "pipe|", 'quote"', "dot.",
                                  "space ", "dots...", "ctrl\x01"])
def test_names_windows_forbids(pc: b.Client, wc: b.Client, work: Work, name: str) -> None:
    file_id = p.posix_open(pc, work.posix(name), desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                           disposition=b.FILE_CREATE)
    assert _status(pc.write(file_id, 0, b"odd name")) == "STATUS_SUCCESS"
    pc.close_file(file_id)
    assert os.listdir(work.path()) == [name]
    file_id = p.posix_open(pc, work.posix(name))
    assert _read_all(pc, file_id) == b"odd name"
    pc.close_file(file_id)
    if any(c in name for c in '*?<>|"\x01'):
        response = wc.create(work.windows(name + "2"), desired_access=b.GENERIC_WRITE,
                             disposition=b.FILE_CREATE)
        assert _status(response) == "STATUS_OBJECT_NAME_INVALID"


def _open_holder(client: b.Client, name: str, posix: bool) -> tuple[int, int]:
    access = b.GENERIC_READ | b.GENERIC_WRITE
    if posix:
        return p.posix_open(client, name, desired_access=access)
    return client.open(name, desired_access=access)


@pytest.mark.parametrize("how", ["posix-open", "disposition-ex"])
def test_posix_unlink_removes_the_name_at_once(pc: b.Client, work: Work, how: str) -> None:
    path = work.path() / "victim"
    path.write_bytes(b"old contents")
    serve_as_test_account(path)
    holder = _open_holder(pc, work.posix("victim"), posix=True)
    if how == "posix-open":
        deleter = p.posix_open(pc, work.posix("victim"), desired_access=b.DELETE)
        response = pc.set_info(deleter, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION,
                               b.disposition_info())
    else:
        deleter = pc.open(work.windows("victim"), desired_access=b.DELETE)
        flags = p.FILE_DISPOSITION_DELETE | p.FILE_DISPOSITION_POSIX_SEMANTICS
        response = pc.set_info(deleter, b.SMB2_0_INFO_FILE, p.FILE_DISPOSITION_INFORMATION_EX,
                               p.disposition_info_ex(flags))
    assert _status(response) == "STATUS_SUCCESS"
    assert not os.path.lexists(path), "the name is still there while handles are open"
    assert os.listdir(work.path()) == []
    # The other handle keeps reading and writing the unlinked file.
    assert _read_all(pc, holder) == b"old contents"
    assert _status(pc.write(holder, 0, b"NEW")) == "STATUS_SUCCESS"
    assert _read_all(pc, holder) == b"NEW contents"
    # The name is free at once.
    fresh = p.posix_open(pc, work.posix("victim"), desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                         disposition=b.FILE_CREATE)
    assert _read_all(pc, fresh) == b""
    for file_id in (fresh, deleter, holder):
        assert pc.close_file(file_id) == b.STATUS_SUCCESS
    assert path.read_bytes() == b""


def test_posix_unlink_of_an_open_directory(pc: b.Client, work: Work) -> None:
    path = work.path() / "emptied"
    path.mkdir()
    holder = p.posix_open(pc, work.posix("emptied"), desired_access=b.GENERIC_READ,
                          options=b.FILE_DIRECTORY_FILE)
    deleter = p.posix_open(pc, work.posix("emptied"), desired_access=b.DELETE, options=b.FILE_DIRECTORY_FILE)
    response = pc.set_info(deleter, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
    assert _status(response) == "STATUS_SUCCESS"
    assert not os.path.lexists(path)
    # The name can be taken again at once, by a directory or a file.
    pc.close_file(p.posix_open(pc, work.posix("emptied"), desired_access=b.GENERIC_WRITE,
                               disposition=b.FILE_CREATE))
    assert path.is_file()
    assert pc.close_file(deleter) == b.STATUS_SUCCESS
    assert pc.close_file(holder) == b.STATUS_SUCCESS
    assert path.is_file()


def test_windows_unlink_waits_for_the_last_close(pc: b.Client, work: Work) -> None:
    path = work.path() / "victim"
    path.write_bytes(b"old contents")
    serve_as_test_account(path)
    holder = _open_holder(pc, work.windows("victim"), posix=False)
    deleter = pc.open(work.windows("victim"), desired_access=b.DELETE)
    response = pc.set_info(deleter, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
    assert _status(response) == "STATUS_SUCCESS"
    assert path.exists()
    response = pc.create(work.windows("victim"), desired_access=b.GENERIC_WRITE, disposition=b.FILE_OPEN_IF)
    assert _status(response) == "STATUS_DELETE_PENDING"
    pc.close_file(deleter)
    pc.close_file(holder)
    assert not os.path.lexists(path)


@pytest.mark.parametrize("how", ["posix-open", "rename-ex"])
def test_posix_rename_over_an_open_target(pc: b.Client, work: Work, how: str) -> None:
    (work.path() / "source").write_bytes(b"new data")
    (work.path() / "target").write_bytes(b"old data")
    serve_as_test_account(work.path())
    holder = p.posix_open(pc, work.posix("target"), desired_access=b.GENERIC_READ)
    if how == "posix-open":
        mover = p.posix_open(pc, work.posix("source"), desired_access=b.DELETE)
        response = pc.set_info(mover, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                               b.rename_info(work.posix("target"), replace_if_exists=True))
    else:
        mover = pc.open(work.windows("source"), desired_access=b.DELETE)
        flags = p.FILE_RENAME_REPLACE_IF_EXISTS | p.FILE_RENAME_POSIX_SEMANTICS
        response = pc.set_info(mover, b.SMB2_0_INFO_FILE, p.FILE_RENAME_INFORMATION_EX,
                               p.rename_info_ex(work.windows("target"), flags))
    assert _status(response) == "STATUS_SUCCESS"
    assert os.listdir(work.path()) == ["target"]
    assert (work.path() / "target").read_bytes() == b"new data"
    # The handle on the replaced file still reads the old data.
    assert _read_all(pc, holder) == b"old data"
    assert pc.close_file(mover) == b.STATUS_SUCCESS
    assert pc.close_file(holder) == b.STATUS_SUCCESS
    assert (work.path() / "target").read_bytes() == b"new data"


@pytest.mark.parametrize(("posix", "target_entry", "expected"), [
    (True, None, "STATUS_SUCCESS"),
    (True, "left", "STATUS_DIRECTORY_NOT_EMPTY"),
    (False, None, "STATUS_ACCESS_DENIED"),
], ids=["posix-empty", "posix-not-empty", "windows"])
def test_rename_of_a_directory_over_a_directory(pc: b.Client, work: Work, posix: bool, target_entry: str | None,
                                                expected: str) -> None:
    # rename(2) replaces an empty directory in one step (cifs.ko otherwise falls back to rmdir, then rename);
    # Windows never replaces a directory ([MS-FSA] 2.1.5.14.11).
    (work.path() / "source").mkdir()
    (work.path() / "source" / "inner").write_bytes(b"moved")
    (work.path() / "target").mkdir()
    if target_entry is not None:
        (work.path() / "target" / target_entry).write_bytes(b"stays")
    serve_as_test_account(work.path())
    if posix:
        mover = p.posix_open(pc, work.posix("source"), desired_access=b.DELETE, options=b.FILE_DIRECTORY_FILE)
    else:
        mover = pc.open(work.windows("source"), desired_access=b.DELETE, options=b.FILE_DIRECTORY_FILE)
    response = pc.set_info(mover, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                           b.rename_info(work.posix("target") if posix else work.windows("target"),
                                         replace_if_exists=True))
    assert _status(response) == expected
    pc.close_file(mover)
    if expected == "STATUS_SUCCESS":
        assert sorted(os.listdir(work.path())) == ["target"]
        assert (work.path() / "target" / "inner").read_bytes() == b"moved"
    else:
        assert sorted(os.listdir(work.path() / "target")) == ([target_entry] if target_entry else [])


@pytest.mark.parametrize("posix", [True, False], ids=["posix", "windows"])
def test_rename_of_a_directory_with_an_open_file_inside(pc: b.Client, work: Work, posix: bool) -> None:
    # rename(2) moves a directory whose files are open and their descriptors follow (an editor keeps a file of
    # a project directory open while it is renamed); Windows refuses.
    (work.path() / "project").mkdir()
    (work.path() / "project" / "file").write_bytes(b"old")
    serve_as_test_account(work.path())
    inner = p.posix_open(pc, work.posix("project/file"), desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
    mover = _create_as(pc, work, "project", posix, desired_access=b.DELETE, options=b.FILE_DIRECTORY_FILE)
    target = work.posix("renamed") if posix else work.windows("renamed")
    response = pc.set_info(b.create_file_id(mover.body), b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                           b.rename_info(target))
    assert _status(response) == ("STATUS_SUCCESS" if posix else "STATUS_ACCESS_DENIED")
    pc.close_file(b.create_file_id(mover.body))
    if not posix:
        assert (work.path() / "project" / "file").exists()
        pc.close_file(inner)
        return
    assert _status(pc.write(inner, 0, b"new")) == "STATUS_SUCCESS"
    assert (work.path() / "renamed" / "file").read_bytes() == b"new"
    # The open's path followed: the directory can be moved again only with it counted inside, and its name
    # is the new one (FILE_ALL_INFORMATION ends with FileNameLength and the name).
    response = pc.query_info(inner, b.SMB2_0_INFO_FILE, b.FILE_ALL_INFORMATION)
    name = b.output_buffer(response)[100:].decode("utf-16-le")
    assert name.replace("\\", "/").endswith("renamed/file"), name
    pc.close_file(inner)


def test_posix_rename_target_is_a_posix_name(pc: b.Client, work: Work) -> None:
    # The target of a rename on a POSIX open is in POSIX syntax: '/' separates, '\\' and ':' are characters.
    (work.path() / "sub").mkdir()
    (work.path() / "source").write_bytes(b"moved")
    serve_as_test_account(work.path())
    mover = p.posix_open(pc, work.posix("source"), desired_access=b.DELETE)
    for target in ("sub/a\\b", "sub/c:d", "sub/Case"):
        response = pc.set_info(mover, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                               b.rename_info(work.posix(target)))
        assert _status(response) == "STATUS_SUCCESS", target
        assert os.listdir(work.path() / "sub") == [target.split("/")[1]]
    pc.close_file(mover)
    assert (work.path() / "sub" / "Case").read_bytes() == b"moved"


def test_windows_rename_over_an_open_target_is_refused(pc: b.Client, work: Work) -> None:
    (work.path() / "source").write_bytes(b"new data")
    (work.path() / "target").write_bytes(b"old data")
    serve_as_test_account(work.path())
    holder = pc.open(work.windows("target"), desired_access=b.GENERIC_READ)
    mover = pc.open(work.windows("source"), desired_access=b.DELETE)
    response = pc.set_info(mover, b.SMB2_0_INFO_FILE, b.FILE_RENAME_INFORMATION,
                           b.rename_info(work.windows("target"), replace_if_exists=True))
    assert _status(response) == "STATUS_ACCESS_DENIED"
    pc.close_file(mover)
    pc.close_file(holder)
    assert (work.path() / "target").read_bytes() == b"old data"


def test_symlinks_are_never_followed(pc: b.Client, work: Work) -> None:
    real = work.path() / "real"
    real.mkdir()
    (real / "inner.txt").write_bytes(b"inner")
    os.symlink("real/inner.txt", work.path() / "file-link")
    os.symlink("real", work.path() / "dir-link")
    for name, disposition in (("file-link", b.FILE_OPEN), ("dir-link/inner.txt", b.FILE_OPEN),
                              ("dir-link/new.txt", b.FILE_CREATE), ("file-link", b.FILE_OVERWRITE_IF)):
        response = p.posix_create(pc, work.posix(name), desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                  disposition=disposition)
        assert _status(response) == "STATUS_STOPPED_ON_SYMLINK", name
    assert sorted(os.listdir(real)) == ["inner.txt"]
    assert (real / "inner.txt").read_bytes() == b"inner"
    # FILE_OPEN_REPARSE_POINT opens the link itself: its POSIX info says symlink, and a POSIX unlink removes
    # the link, not what it points to.
    response = p.posix_create(pc, work.posix("file-link"), desired_access=b.FILE_READ_ATTRIBUTES | b.DELETE,
                              options=b.FILE_OPEN_REPARSE_POINT)
    assert _status(response) == "STATUS_SUCCESS"
    link_id = b.create_file_id(response.body)
    assert p.create_response_contexts(response)[p.SMB2_CREATE_POSIX_CONTEXT] == \
        p.expected_create_response(work.path() / "file-link")
    posix_mode = struct.unpack_from("<I", _query_posix(pc, link_id), 76)[0]
    assert posix_mode >> 12 == p.POSIX_TYPE[stat.S_IFLNK]
    response = pc.set_info(link_id, b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION, b.disposition_info())
    assert _status(response) == "STATUS_SUCCESS"
    pc.close_file(link_id)
    assert not os.path.lexists(work.path() / "file-link")
    assert (real / "inner.txt").read_bytes() == b"inner"


# -- POSIX information classes, byte by byte (protocol-notes 11.2, 11.3) -------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("share", list(STYLES))
def test_file_posix_information(connect_posix: PosixClientFactory, work: Work, share: str, kind: str) -> None:
    style = STYLES[share]
    path = _make_object(work.path(share), kind)
    _settle(path, path.parent)
    client = connect_posix(share)
    response = p.posix_create(client, work.posix(kind), desired_access=b.FILE_READ_ATTRIBUTES,
                              options=_open_options(kind))
    assert _status(response) == "STATUS_SUCCESS"
    file_id = b.create_file_id(response.body)
    actual = _query_posix(client, file_id)
    p.assert_posix_information(actual, p.expected_posix_information(path, style), f"{kind} on {share}")
    context = p.create_response_contexts(response).get(p.SMB2_CREATE_POSIX_CONTEXT)
    assert context == p.expected_create_response(path, style), "POSIX create context response"
    assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_stat_compound_create_query_posix_close(pc: b.Client, work: Work) -> None:
    """The related compound cifs.ko sends for stat() on a POSIX mount: CREATE with the POSIX context,
    QUERY_INFO class 100 and CLOSE on the FileId carried forward ([MS-SMB2] 3.3.5.2.7.2)."""
    path = _make_object(work.path(), "file")
    _settle(path)
    create = b.create_body(work.posix("file"), desired_access=b.FILE_READ_ATTRIBUTES,
                           contexts=p.posix_create_context(0))
    query = b.query_info_body(b.RELATED_FILE_ID, b.SMB2_0_INFO_FILE, p.FILE_POSIX_INFORMATION)
    responses = pc.compound(b.Req(b.SMB2_CREATE, create), b.Req(b.SMB2_QUERY_INFO, query, related=True),
                            b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True))
    assert [_status(response) for response in responses] == ["STATUS_SUCCESS"] * 3
    assert p.create_response_contexts(responses[0])[p.SMB2_CREATE_POSIX_CONTEXT] == \
        p.expected_create_response(path)
    p.assert_posix_information(b.output_buffer(responses[1]), p.expected_posix_information(path), "compound")


def test_file_posix_information_of_the_share_root(pc: b.Client, env: Env) -> None:
    root = env.shares["share"]
    _settle(root)
    file_id = p.posix_open(pc, "", desired_access=b.FILE_READ_ATTRIBUTES, options=b.FILE_DIRECTORY_FILE)
    p.assert_posix_information(_query_posix(pc, file_id), p.expected_posix_information(root), "share root")
    pc.close_file(file_id)


def test_file_posix_information_of_a_file_written_over_smb(pc: b.Client, work: Work) -> None:
    # A file created over SMB carries the server's DOS xattr: creation time and attributes come from there.
    file_id = p.posix_open(pc, work.posix("written"), 0o640, desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                           disposition=b.FILE_CREATE)
    assert _status(pc.write(file_id, 0, b"x" * 10000)) == "STATUS_SUCCESS"
    assert pc.request(b.SMB2_FLUSH, b.flush_body(file_id)).status == b.STATUS_SUCCESS
    path = work.path() / "written"
    _settle(path)
    p.assert_posix_information(_query_posix(pc, file_id), p.expected_posix_information(path), "written file")
    pc.close_file(file_id)


@pytest.mark.parametrize("share", list(STYLES))
def test_posix_directory_listing(connect_posix: PosixClientFactory, work: Work, share: str) -> None:
    style = STYLES[share]
    client = connect_posix(share)
    work_path = work.path(share)
    # The listed directory is made over SMB (so "." carries the DOS xattr), its entries on the server side.
    response = _posix_create_new(client, work.posix("listing"), 0o750, directory=True)
    assert _status(response) == "STATUS_SUCCESS"
    client.close_file(b.create_file_id(response.body))
    listing = work_path / "listing"
    for kind in KINDS:
        _make_object(listing, kind)
    file_id = p.posix_open(client, work.posix("listing/smb-file"), 0o600, desired_access=b.GENERIC_WRITE,
                           disposition=b.FILE_CREATE)
    client.close_file(file_id)
    _settle(listing, listing.parent, *listing.iterdir())
    directory = p.posix_open(client, work.posix("listing"), desired_access=b.GENERIC_READ,
                             options=b.FILE_DIRECTORY_FILE)
    entries = p.list_posix(client, directory)
    client.close_file(directory)
    assert sorted(e.name for e in entries) == sorted([".", "..", *KINDS, "smb-file"])
    failures = []
    for entry in entries:
        path = {".": listing, "..": listing.parent}.get(entry.name, listing / entry.name)
        # FileIndex is not checked: [MS-FSCC] 2.4 says clients MUST ignore it where positions are not fixed.
        try:
            p.assert_posix_information(entry.body, p.expected_posix_information(path, style),
                                       f"entry {entry.name!r} on {share}")
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


def test_posix_listing_of_the_share_root(pc: b.Client, env: Env) -> None:
    # ".." of the share root describes the root itself: nothing outside the share is shown.
    root = env.shares["share"]
    _settle(root)
    directory = p.posix_open(pc, "", desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
    entries = {entry.name: entry for entry in p.list_posix(pc, directory)}
    pc.close_file(directory)
    for name in (".", ".."):
        p.assert_posix_information(entries[name].body, p.expected_posix_information(root), f"root {name!r}")


def test_fs_posix_information(pc: b.Client, env: Env) -> None:
    root_path = env.shares["share"]
    root = p.posix_open(pc, "", desired_access=b.FILE_READ_ATTRIBUTES, options=b.FILE_DIRECTORY_FILE)
    # Free counts move while other processes write to the same disk: compare when statvfs is stable around
    # the query, else check the counts lie between the two samples.
    for _ in range(10):
        before = os.statvfs(root_path)
        response = pc.query_info(root, b.SMB2_0_INFO_FILESYSTEM, p.FILE_FS_POSIX_INFORMATION)
        after = os.statvfs(root_path)
        assert _status(response) == "STATUS_SUCCESS"
        data = b.output_buffer(response)
        assert len(data) == p.FS_POSIX.size
        if before == after:
            assert data == p.expected_fs_posix_information(before), (data.hex(),
                                                                       p.expected_fs_posix_information(before).hex())
            break
    else:
        got = p.FS_POSIX.unpack(data)
        low, high = p.FS_POSIX.unpack(p.expected_fs_posix_information(before)), \
            p.FS_POSIX.unpack(p.expected_fs_posix_information(after))
        for index, value in enumerate(got):
            bounds = sorted((low[index], high[index]))
            assert bounds[0] <= value <= bounds[1], (index, got, low, high)
    pc.close_file(root)


@pytest.mark.parametrize("posix", [True, False], ids=["posix", "windows"])
def test_fs_attribute_information_advertises_posix_and_reparse(connect_posix: PosixClientFactory,
                                                               posix: bool) -> None:
    client = connect_posix(posix=posix)
    root = client.open("", desired_access=b.FILE_READ_ATTRIBUTES, options=b.FILE_DIRECTORY_FILE)
    response = client.query_info(root, b.SMB2_0_INFO_FILESYSTEM, p.FILE_FS_ATTRIBUTE_INFORMATION)
    assert _status(response) == "STATUS_SUCCESS"
    attributes, _max_component, name_length = struct.unpack_from("<III", b.output_buffer(response))
    assert attributes & p.FILE_SUPPORTS_POSIX_UNLINK_RENAME, hex(attributes)
    assert attributes & p.FILE_SUPPORTS_REPARSE_POINTS, hex(attributes)
    assert name_length > 0
    client.close_file(root)


# -- chmod, chown and the Windows view of the mode (protocol-notes 11.4) -------------------------------------

def test_chmod_descriptor_matches_smbprotocol() -> None:
    """Our chmod descriptor is what smbprotocol's security descriptor API builds for the same DACL."""
    mode_sid = SIDPacket()
    mode_sid.from_string("S-1-5-88-3-420")
    ace = AccessAllowedAce()
    ace["mask"] = 0
    ace["sid"] = mode_sid
    acl = AclPacket()
    acl["aces"] = [ace]
    descriptor = SMB2CreateSDBuffer()
    descriptor["control"].set_flag(SDControl.SELF_RELATIVE)
    descriptor["control"].set_flag(SDControl.DACL_PRESENT)
    descriptor.set_dacl(acl)
    assert descriptor.pack() == p.chmod_descriptor(0o644)


@pytest.mark.parametrize(("kind", "mode", "expected"), [
    ("file", 0o640, 0o640), ("file", 0o000, 0o000), ("file", 0o777, 0o777), ("file", 0o4755, 0o755),
    ("file", 0o2755, 0o755), ("file", 0o1704, 0o1704), ("dir", 0o750, 0o750), ("dir", 0o3777, 0o3777),
    ("dir", 0o1777, 0o1777), ("dir", 0o4755, 0o755),
])
def test_posix_chmod(pc: b.Client, work: Work, kind: str, mode: int, expected: int) -> None:
    path = work.path() / kind
    if kind == "dir":
        path.mkdir(mode=0o700)
    else:
        path.write_bytes(b"chmod")
    os.chmod(path, 0o600 if kind == "file" else 0o700)
    serve_as_test_account(path)
    access = b.READ_CONTROL | p.WRITE_DAC | b.FILE_READ_ATTRIBUTES
    file_id = p.posix_open(pc, work.posix(kind), desired_access=access,
                           options=b.FILE_DIRECTORY_FILE if kind == "dir" else 0)
    response = pc.set_info(file_id, b.SMB2_0_INFO_SECURITY, 0, p.chmod_descriptor(mode),
                           additional_information=b.DACL_SECURITY_INFORMATION)
    assert _status(response) == "STATUS_SUCCESS"
    assert oct(os.stat(path).st_mode & 0o7777) == oct(expected)
    assert struct.unpack_from("<I", _query_posix(pc, file_id), 76)[0] & 0o7777 == expected
    pc.close_file(file_id)


def _set_owner(client: b.Client, file_id: tuple[int, int], owner: bytes | None,
               group: bytes | None) -> b.Response:
    additional = (b.OWNER_SECURITY_INFORMATION if owner is not None else 0) | \
        (b.GROUP_SECURITY_INFORMATION if group is not None else 0)
    descriptor = p.security_descriptor(owner=owner, group=group)
    return client.set_info(file_id, b.SMB2_0_INFO_SECURITY, 0, descriptor, additional_information=additional)


def test_chown_and_chgrp_as_root(root_work: tuple[b.Client, Work]) -> None:
    pc, work = root_work
    path = work.path() / "owned"
    path.write_bytes(b"owned")
    file_id = p.posix_open(pc, work.posix("owned"),
                           desired_access=b.READ_CONTROL | p.WRITE_OWNER | b.FILE_READ_ATTRIBUTES)
    assert _status(_set_owner(pc, file_id, p.unix_user_sid(4321), None)) == "STATUS_SUCCESS"
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == (4321, 0)
    assert _status(_set_owner(pc, file_id, None, p.unix_group_sid(8765))) == "STATUS_SUCCESS"
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == (4321, 8765)
    assert _status(_set_owner(pc, file_id, p.unix_user_sid(1111), p.unix_group_sid(2222))) == "STATUS_SUCCESS"
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == (1111, 2222)
    info = _query_posix(pc, file_id)
    assert info[80:] == p.unix_user_sid(1111) + p.unix_group_sid(2222)
    pc.close_file(file_id)


@dataclass
class Identity:
    server: SmbServer
    share: Path
    uid: int
    gid: int
    extra_gid: int


def _remove_account() -> None:
    subprocess.run(["userdel", NORMAL_USER], capture_output=True, check=False)
    for group in (NORMAL_USER, EXTRA_GROUP):
        try:
            grp.getgrnam(group)
        except KeyError:
            continue
        subprocess.run(["groupdel", group], capture_output=True, check=False)


@pytest.fixture(scope="module")
def identity() -> Iterator[Identity]:
    """A server whose only user maps to a freshly created Unix account (member of one extra group)."""
    if os.geteuid() != 0:
        pytest.fail("the normal-user case needs root: it creates a Unix account")
    _remove_account()  # left over from an interrupted run
    tmp = Path(tempfile.mkdtemp(prefix="smbsrv-posix-id-"))
    try:
        subprocess.run(["groupadd", EXTRA_GROUP], check=True, capture_output=True)
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", EXTRA_GROUP,
                        NORMAL_USER], check=True, capture_output=True)
        account = pwd.getpwnam(NORMAL_USER)
        os.chmod(tmp, 0o755)
        share = tmp / "share"
        share.mkdir()
        os.chmod(share, 0o1777)
        users_file = tmp / "users"
        result = subprocess.run(
            [sys.executable, "-m", "smbsrv", "user", "add", NORMAL_USER, "--unix-user", NORMAL_USER,
             "--users-file", str(users_file), "--password-stdin"],
            input=NORMAL_USER_PASSWORD + "\n", capture_output=True, text=True, cwd=REPO, timeout=60,
            check=False)
        assert result.returncode == 0, result.stderr
        config = tmp / "smbsrv.toml"
        config.write_text(f'[server]\nusers_file = "{users_file}"\nstate_dir = "{tmp / "state"}"\n\n'
                          f'[shares.share]\npath = "{share}"\n')
        server = start_server(share, tmp / "server.log", config=config, users=(), as_root=True)
        try:
            yield Identity(server, share, account.pw_uid, account.pw_gid, grp.getgrnam(EXTRA_GROUP).gr_gid)
        finally:
            stop_server(server.process)
        assert_no_server_bugs(server)
    finally:
        _remove_account()
        shutil.rmtree(tmp, ignore_errors=True)


def test_chown_and_chgrp_as_a_normal_user(identity: Identity) -> None:
    server = identity.server
    name = f"mine-{uuid.uuid4().hex[:8]}"
    path = identity.share / name
    with p.connect(server.host, server.port, NORMAL_USER, NORMAL_USER_PASSWORD) as client:
        access = b.READ_CONTROL | p.WRITE_DAC | p.WRITE_OWNER | b.GENERIC_WRITE
        response = p.posix_create(client, name, 0o644, disposition=b.FILE_CREATE, desired_access=access)
        assert _status(response) == "STATUS_SUCCESS"
        file_id = b.create_file_id(response.body)
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (identity.uid, identity.gid)
        # Giving the file away, or to a group the user is not in, is for root only.
        assert _status(_set_owner(client, file_id, p.unix_user_sid(0), None)) == "STATUS_ACCESS_DENIED"
        assert _status(_set_owner(client, file_id, None, p.unix_group_sid(0))) == "STATUS_ACCESS_DENIED"
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (identity.uid, identity.gid)
        # What Unix allows the owner goes through: chgrp to one of the user's groups, and chmod.
        response = _set_owner(client, file_id, None, p.unix_group_sid(identity.extra_gid))
        assert _status(response) == "STATUS_SUCCESS"
        assert os.stat(path).st_gid == identity.extra_gid
        response = client.set_info(file_id, b.SMB2_0_INFO_SECURITY, 0, p.chmod_descriptor(0o600),
                                   additional_information=b.DACL_SECURITY_INFORMATION)
        assert _status(response) == "STATUS_SUCCESS"
        assert os.stat(path).st_mode & 0o7777 == 0o600
        client.close_file(file_id)
    # Root's file cannot be chmodded by the user either.
    os.chown(path, 0, 0)
    with p.connect(server.host, server.port, NORMAL_USER, NORMAL_USER_PASSWORD) as client:
        response = p.posix_create(client, name, desired_access=b.READ_CONTROL | p.WRITE_DAC)
        if response.status == b.STATUS_SUCCESS:
            file_id = b.create_file_id(response.body)
            response = client.set_info(file_id, b.SMB2_0_INFO_SECURITY, 0, p.chmod_descriptor(0o666),
                                       additional_information=b.DACL_SECURITY_INFORMATION)
            client.close_file(file_id)
        assert _status(response) == "STATUS_ACCESS_DENIED"
    assert os.stat(path).st_mode & 0o7777 == 0o600


def _query_security_smbprotocol(env: Env, name: str) -> SMB2CreateSDBuffer:
    """OWNER|GROUP|DACL of `name` through smbprotocol's API (a client that never negotiates POSIX)."""
    server = env.server
    connection = Connection(uuid.uuid4(), server.host, server.port, require_signing=False)
    connection.connect(dialect=Dialects.SMB_3_1_1, timeout=30)
    try:
        session = Session(connection, server.user, server.password, require_encryption=False,
                          auth_protocol="ntlm")
        session.connect()
        tree = TreeConnect(session, f"\\\\{server.host}\\share")
        tree.connect()
        handle = Open(tree, name)
        handle.create(ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.READ_CONTROL, 0,
                      ShareAccess.FILE_SHARE_READ, CreateDisposition.FILE_OPEN, 0)
        request = SMB2QueryInfoRequest()
        request["info_type"] = InfoType.SMB2_0_INFO_SECURITY
        request["output_buffer_length"] = 4096
        request["additional_information"] = 0x7  # OWNER | GROUP | DACL
        request["file_id"] = handle.file_id
        sent = connection.send(request, session.session_id, tree.tree_connect_id)
        response = SMB2QueryInfoResponse()
        response.unpack(connection.receive(sent)["data"].get_value())
        descriptor = SMB2CreateSDBuffer()
        descriptor.unpack(response["buffer"].get_value())
        handle.close()
        session.disconnect()
        return descriptor
    finally:
        connection.disconnect(True)


def _effective_masks(descriptor: SMB2CreateSDBuffer) -> dict[str, int]:
    allowed: dict[str, int] = {}
    denied: dict[str, int] = {}
    for ace in descriptor.get_dacl()["aces"].get_value():
        assert not isinstance(ace, bytes), f"unexpected ACE type {ace[0]}"
        target = allowed if ace["ace_type"].get_value() == 0 else denied
        sid_text = str(ace["sid"])
        target[sid_text] = target.get(sid_text, 0) | ace["mask"].get_value()
    return {sid_text: mask & ~denied.get(sid_text, 0) for sid_text, mask in allowed.items()}


def test_windows_security_descriptor_follows_owner_group_and_mode(root_work: tuple[b.Client, Work]) -> None:
    env = root_work[1].env
    work = root_work[1]
    path = work.path() / "described"
    path.write_bytes(b"described")
    os.chown(path, 1234, 5678)
    read, write, execute = 0x1, 0x2, 0x20  # FILE_READ_DATA, FILE_WRITE_DATA, FILE_EXECUTE
    cases = ((0o640, read | write, read, 0), (0o751, read | write | execute, read | execute, execute))
    for mode, owner_bits, group_bits, world_bits in cases:
        os.chmod(path, mode)
        descriptor = _query_security_smbprotocol(env, work.windows("described"))
        assert str(descriptor.get_owner()) == "S-1-22-1-1234"
        assert str(descriptor.get_group()) == "S-1-22-2-5678"
        masks = _effective_masks(descriptor)
        wanted_bits = {"S-1-22-1-1234": owner_bits, "S-1-22-2-5678": group_bits, "S-1-1-0": world_bits}
        for sid_text, wanted in wanted_bits.items():
            assert masks.get(sid_text, 0) & (read | write | execute) == wanted, (oct(mode), sid_text, masks)


# -- POSIX information classes where POSIX is not in force ---------------------------------------------------

_LEVELS = ["query-info-100", "query-directory-0x64", "fs-info-100"]


def _ask_posix_level(client: b.Client, level: str, posix_open: bool = False) -> b.Response:
    if posix_open:
        root = p.posix_open(client, "", desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
    else:
        root = client.open("", desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
    try:
        if level == "query-info-100":
            return client.query_info(root, b.SMB2_0_INFO_FILE, p.FILE_POSIX_INFORMATION)
        if level == "query-directory-0x64":
            return client.query_directory(root, "*", info_class=p.SMB2_FIND_POSIX_INFORMATION)
        return client.query_info(root, b.SMB2_0_INFO_FILESYSTEM, p.FILE_FS_POSIX_INFORMATION)
    finally:
        client.close_file(root)


# Samba 4.17 answers the same raw requests alike: without the extensions on the connection every POSIX class is
# STATUS_INVALID_INFO_CLASS (samba.tests.smb3unix test_posix_fs_info); with them, a Windows open (or a share
# without POSIX) gets INVALID_LEVEL for the directory level (smbd checks posix_open) and INVALID_INFO_CLASS
# for the file and file-system levels.
_REFUSED_ON_A_WINDOWS_OPEN = {"query-info-100": "STATUS_INVALID_INFO_CLASS",
                              "query-directory-0x64": "STATUS_INVALID_LEVEL",
                              "fs-info-100": "STATUS_INVALID_INFO_CLASS"}


@pytest.mark.parametrize("level", _LEVELS)
def test_posix_levels_without_posix_negotiated(wc: b.Client, level: str) -> None:
    assert _status(_ask_posix_level(wc, level)) == "STATUS_INVALID_INFO_CLASS"


@pytest.mark.parametrize("level", _LEVELS)
def test_posix_levels_on_a_share_without_posix(connect_posix: PosixClientFactory, level: str) -> None:
    # The context is ignored there, so even an open that carries it is a Windows open.
    client = connect_posix("noposix")
    assert _status(_ask_posix_level(client, level)) == _REFUSED_ON_A_WINDOWS_OPEN[level]
    assert _status(_ask_posix_level(client, level, posix_open=True)) == _REFUSED_ON_A_WINDOWS_OPEN[level]
    # The same user and server answer them on a POSIX open of a POSIX share.
    assert _status(_ask_posix_level(connect_posix("share"), level, posix_open=True)) == "STATUS_SUCCESS"


@pytest.mark.parametrize("level", ["query-info-100", "fs-info-100"])
def test_posix_levels_on_a_windows_open(pc: b.Client, level: str) -> None:
    """POSIX semantics belong to the open: Samba answers QUERY_INFO 100 and the POSIX FS class only on handles
    opened with the POSIX context (smb2_trans2.c checks fsp_flags.posix_open), even on a connection that
    negotiated POSIX; what it answers otherwise is _REFUSED_ON_A_WINDOWS_OPEN."""
    assert _status(_ask_posix_level(pc, level)) == _REFUSED_ON_A_WINDOWS_OPEN[level]
