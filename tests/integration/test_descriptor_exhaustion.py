"""A server out of file descriptors answers, and starts with as many as it may have.

One client's opens can use up the process's descriptor table (every open, watch and connection holds one).
Then every request that needs a descriptor must fail the way a failed open does, STATUS_TOO_MANY_OPENED_FILES
(Samba's answer to EMFILE/ENFILE, source3/lib/errmap_unix.c), not STATUS_INTERNAL_ERROR with a traceback: the
open of a name at the share root (the resolver's dup of the root), of a directory, of a named pipe (whose
module is imported on the first IPC open), and the others; and once the opens are closed everything works
again. Samba 4.17 out of descriptors the same way (prlimit on the smbd of a connection; benchmarks/servers.py
SambaServer) answers 0xC000011F to the same opens, of the root and of a new directory alike.

The daemon raises its soft RLIMIT_NOFILE to the hard limit at start, as smbd does (source3/smbd/files.c,
file_init_global), so that the 1024 of a daemon started without systemd's LimitNOFILE is not the limit.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer, assert_no_server_bugs, start_server, stop_server

STATUS_TOO_MANY_OPENED_FILES = 0xC000011F


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmbServer]:
    share = tmp_path / "share"
    share.mkdir()
    (share / "d").mkdir()
    (share / "d" / "inside.txt").write_bytes(b"inside")
    # A soft limit below the hard one, as a daemon started by hand or by a plain init script gets.
    started = start_server(share, tmp_path / "server.log",
                           python=("prlimit", "--nofile=256:8192", sys.executable))
    try:
        yield started
    finally:
        stop_server(started.process)
    assert_no_server_bugs(started)


def _nofile_limits(pid: int) -> tuple[int, int]:
    line = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
                if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def test_the_daemon_raises_its_soft_descriptor_limit(server: SmbServer) -> None:
    assert _nofile_limits(server.process.pid) == (8192, 8192)


def test_out_of_descriptors_is_too_many_opened_files(server: SmbServer) -> None:
    server.hand_over()
    with b.connect(server.host, server.port, server.user, server.password) as client:
        ipc = client.request(b.SMB2_TREE_CONNECT, b.tree_connect_body(f"\\\\{server.host}\\IPC$"), tree_id=0)
        assert ipc.status == b.STATUS_SUCCESS
        directory = client.open("d", options=b.FILE_DIRECTORY_FILE)
        pid = server.process.pid
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 16, 8192))
        held = []
        for index in range(64):
            response = client.create(f"f{index}", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                     disposition=b.FILE_OPEN_IF)
            if response.status != b.STATUS_SUCCESS:
                assert b.status_name(response.status) == "0xC000011F", b.status_name(response.status)
                break
            held.append(b.create_file_id(response.body))
        else:
            pytest.fail("64 opens fit into 16 descriptors")
        # Every kind of open now fails alike, the connection stays, and nothing is logged as a bug.
        assert client.create("f0").status == STATUS_TOO_MANY_OPENED_FILES  # one name at the root: a dup
        assert client.create("").status == STATUS_TOO_MANY_OPENED_FILES  # the root itself
        assert client.create("d\\inside.txt").status == STATUS_TOO_MANY_OPENED_FILES
        assert client.create("newdir", disposition=b.FILE_CREATE,
                             options=b.FILE_DIRECTORY_FILE).status == STATUS_TOO_MANY_OPENED_FILES
        pipe = client.request(b.SMB2_CREATE, b.create_body("srvsvc", desired_access=b.GENERIC_READ | b.GENERIC_WRITE),
                              tree_id=ipc.header.tree_id)
        assert pipe.status == STATUS_TOO_MANY_OPENED_FILES
        assert client.query_directory(directory).status == STATUS_TOO_MANY_OPENED_FILES
        assert client.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS
        for file_id in held:
            assert client.close_file(file_id) == b.STATUS_SUCCESS
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (8192, 8192))
        client.close_file(client.open("f0"))
        pipe = client.request(b.SMB2_CREATE, b.create_body("srvsvc", desired_access=b.GENERIC_READ | b.GENERIC_WRITE),
                              tree_id=ipc.header.tree_id)
        assert pipe.status == b.STATUS_SUCCESS
        names = client.list_directory("d")
        assert "inside.txt" in names
    b.assert_serves_fresh_client(server.host, server.port, USER, PASSWORD)
