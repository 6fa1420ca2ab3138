"""FLUSH and write-through reach stable storage before the reply, observed in the server's system calls
([MS-SMB2] 3.3.5.11 FLUSH, 3.3.5.13 WRITE with SMB2_WRITEFLAG_WRITE_THROUGH, 2.2.13 FILE_WRITE_THROUGH; the
share option sync_always).

Why not kill the server: test_durability.py stops the daemon with SIGKILL and reads the files back, but SIGKILL
leaves the kernel's page cache alone, so every byte that reached pwrite() reads back whether or not the server
ever called fsync/fdatasync. Those tests prove that nothing waits in the server's memory; they cannot fail if
a sync is deleted. Losing the page cache (a power cut) is what a sync protects against, and it cannot be
simulated on this machine (no dm-log-writes or dm-flakey to replay only what was flushed).

So these tests watch the syscalls instead: strace follows every thread of the running daemon (tests/integration/
syscall_trace.py), `-y` names the file behind each descriptor, and each reply's SMB2 header is read from the
buffer sendmsg() sent. A test passes only when fsync or fdatasync of that very file ran after its last data
write and ended before the reply to the FLUSH or WRITE left the server. Deleting the os.fsync in
smbsrv/commands/flush.py or the os.fdatasync in smbsrv/commands/write.py makes them fail (checked by hand when
this file was written).
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import assert_no_server_bugs, start_server, stop_server
from tests.integration.syscall_trace import SyscallTrace, sync_before_reply

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")

KIB = 1024
SMB2_WRITEFLAG_WRITE_THROUGH = 0x00000001  # [MS-SMB2] 2.2.21
FILE_WRITE_THROUGH = 0x00000002  # CreateOptions, [MS-SMB2] 2.2.13
_WRITE_FLAGS_AT = 44  # Flags within the WRITE request body ([MS-SMB2] 2.2.21)
# A small WRITE runs on the event loop, one of 256 KiB or more in a worker thread (commands/write.py): both.
SIZES = {"small": 4 * KIB + 1, "large": 1024 * KIB}


def _config(tmp: Path, share: Path, sync_always: bool) -> Path:
    config = tmp / "smbsrv.toml"
    config.write_text(f'[server]\nusers_file = "{tmp / "users"}"\n\n[shares.share]\npath = "{share}"\n'
                      f"sync_always = {str(sync_always).lower()}\n")
    return config


def _charge(length: int) -> int:
    return max(1, -(-length // (64 * KIB)))


def _write(client: b.Client, file_id: tuple[int, int], data: bytes, flags: int = 0) -> int:
    """One WRITE at offset 0; returns its MessageId once the server acknowledged it."""
    while client.credits - client.next_message_id < _charge(len(data)):
        assert client.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS
    body = bytearray(b.write_body(file_id, 0, data))
    struct.pack_into("<I", body, _WRITE_FLAGS_AT, flags)
    (message_id,) = client.send(b.Req(b.SMB2_WRITE, bytes(body), credit_charge=_charge(len(data))))
    response = client.receive(message_id)
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
    assert struct.unpack_from("<I", response.body, 4)[0] == len(data)  # Count ([MS-SMB2] 2.2.22)
    return message_id


def _run(tmp_path: Path, sync_always: bool, scenario: object) -> None:
    """Start a server, attach strace, run `scenario(client, trace)` on a logged-on client, stop both."""
    share = tmp_path / "share"
    share.mkdir()
    server = start_server(share, tmp_path / "server.log", config=_config(tmp_path, share, sync_always))
    try:
        with b.connect(server.host, server.port, server.user, server.password) as client, \
                SyscallTrace(server.process.pid, tmp_path / "strace.log") as trace:
            trace.wait_attached(lambda: client.request(b.SMB2_ECHO, b.echo_body()))
            assert callable(scenario)
            scenario(client, trace)
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


@pytest.mark.parametrize("size", SIZES)
def test_flush_fsyncs_the_file_before_replying(tmp_path: Path, size: str) -> None:
    path = (tmp_path / "share" / "flushed.bin").resolve()
    data = bytes(range(256)) * (SIZES[size] // 256) + b"x"

    def scenario(client: b.Client, trace: SyscallTrace) -> None:
        file_id = client.open("flushed.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                              disposition=b.FILE_OVERWRITE_IF)
        _write(client, file_id, data)
        (message_id,) = client.send(b.Req(b.SMB2_FLUSH, b.flush_body(file_id)))
        assert client.receive(message_id).status == b.STATUS_SUCCESS
        trace.stop()
        problem = sync_before_reply(trace.events(), path, b.SMB2_FLUSH, message_id)
        assert problem is None, f"FLUSH acknowledged without making the data stable: {problem}"
        assert path.read_bytes() == data

    _run(tmp_path, False, scenario)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("how", ["write_flag", "create_option", "sync_always"])
def test_write_through_syncs_the_file_before_replying(tmp_path: Path, how: str, size: str) -> None:
    path = (tmp_path / "share" / "through.bin").resolve()
    data = bytes(range(251)) * (SIZES[size] // 251 + 1)

    def scenario(client: b.Client, trace: SyscallTrace) -> None:
        file_id = client.open("through.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                              disposition=b.FILE_OVERWRITE_IF,
                              options=FILE_WRITE_THROUGH if how == "create_option" else 0)
        message_id = _write(client, file_id, data, SMB2_WRITEFLAG_WRITE_THROUGH if how == "write_flag" else 0)
        trace.stop()
        problem = sync_before_reply(trace.events(), path, b.SMB2_WRITE, message_id)
        assert problem is None, f"write-through ({how}) acknowledged before the data was stable: {problem}"
        assert path.read_bytes() == data

    _run(tmp_path, how == "sync_always", scenario)


def test_plain_write_is_not_reported_as_synced(tmp_path: Path) -> None:
    """The check itself can fail: an ordinary WRITE on a share without sync_always has no sync before its
    reply, and sync_before_reply says so."""
    path = (tmp_path / "share" / "plain.bin").resolve()

    def scenario(client: b.Client, trace: SyscallTrace) -> None:
        file_id = client.open("plain.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                              disposition=b.FILE_OVERWRITE_IF)
        message_id = _write(client, file_id, b"not synced")
        trace.stop()
        problem = sync_before_reply(trace.events(), path, b.SMB2_WRITE, message_id)
        assert problem is not None and "no fsync/fdatasync" in problem, problem

    _run(tmp_path, False, scenario)
