"""Nothing acknowledged is lost: WRITE, FLUSH and write-through against a server that is killed or whose
clients vanish mid-transfer ([MS-SMB2] 3.3.5.11 FLUSH, 3.3.5.13 WRITE and SMB2_WRITEFLAG_WRITE_THROUGH, 2.2.21).

The server is stopped with SIGKILL (no orderly shutdown, no chance to write anything late) and a new server is
started on the same share directory; every byte a response acknowledged must read back, over SMB and from the
disk. SIGKILL leaves the kernel's page cache alone, so these tests prove that the server answers only after the
data has reached the kernel and that nothing waits in the server's own memory. A power loss (page cache gone,
FLUSH and fdatasync really needed) cannot be simulated here, so none of these tests fails if a sync is deleted;
test_durability_syncs.py observes the fsync/fdatasync calls themselves (strace) before each reply.
"""

from __future__ import annotations

import random
import re
import signal
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import SmbServer, assert_no_server_bugs, start_server, stop_server

KIB = 1024
MIB = 1024 * 1024
CREDIT_UNIT = 64 * KIB  # one credit per 64 KiB of payload ([MS-SMB2] 3.3.5.2.5)
SMB2_WRITEFLAG_WRITE_THROUGH = 0x00000001
FILE_WRITE_THROUGH = 0x00000002  # CreateOptions ([MS-SMB2] 2.2.13)
_WRITE_FLAGS_AT = 44  # Flags within the WRITE request body ([MS-SMB2] 2.2.21)
_NBSS = struct.Struct(">I")
_CONNECTION_FROM = re.compile(r"connection (\d+) from")
_CONNECTION_CLOSED = re.compile(r"connection (\d+) closed")


def _payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# -- servers ------------------------------------------------------------------------------------------------------

def _config(tmp: Path, shares: dict[str, tuple[Path, bool]]) -> Path:
    """A config serving each share path, with sync_always as given."""
    config = tmp / "smbsrv.toml"
    text = f'[server]\nusers_file = "{tmp / "users"}"\n'
    for name, (path, sync_always) in shares.items():
        text += f'\n[shares.{name}]\npath = "{path}"\nsync_always = {str(sync_always).lower()}\n'
    config.write_text(text)
    return config


@contextmanager
def _servers(tmp: Path, config: Path | None = None) -> Iterator[list[SmbServer]]:
    """A list holding the running server; tests append restarted ones. All are stopped at the end, and none
    may have logged a handler bug."""
    share = tmp / "share"
    share.mkdir(exist_ok=True)
    servers = [start_server(share, tmp / "server-0.log", config=config)]
    try:
        yield servers
    finally:
        for server in servers:
            stop_server(server.process)
    for server in servers:
        assert_no_server_bugs(server)


def _kill_and_restart(servers: list[SmbServer], tmp: Path, config: Path | None = None) -> SmbServer:
    """SIGKILL the newest server (by the PID the fixture started) and start a new one on the same share."""
    old = servers[-1]
    old.process.kill()
    assert old.process.wait(timeout=10) == -signal.SIGKILL
    new = start_server(old.share_path, tmp / f"server-{len(servers)}.log", config=config)
    servers.append(new)
    return new


# -- client helpers -----------------------------------------------------------------------------------------------

def _charge(length: int) -> int:
    return max(1, -(-length // CREDIT_UNIT))


def _ensure_credits(client: b.Client, charge: int) -> None:
    while client.credits - client.next_message_id < charge:
        assert client.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS


def _write_request(client: b.Client, file_id: tuple[int, int], offset: int, data: bytes, flags: int = 0) -> b.Req:
    body = bytearray(b.write_body(file_id, offset, data))
    struct.pack_into("<I", body, _WRITE_FLAGS_AT, flags)
    charge = _charge(len(data))
    _ensure_credits(client, charge)
    return b.Req(b.SMB2_WRITE, bytes(body), credit_charge=charge)


def _write(client: b.Client, file_id: tuple[int, int], offset: int, data: bytes, flags: int = 0) -> None:
    (message_id,) = client.send(_write_request(client, file_id, offset, data, flags))
    _check_write(client.receive(message_id), len(data))


def _check_write(response: b.Response, length: int) -> None:
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
    assert struct.unpack_from("<I", response.body, 4)[0] == length  # Count ([MS-SMB2] 2.2.22)


def _write_chunked(client: b.Client, file_id: tuple[int, int], data: bytes, chunk: int = MIB,
                   flags: int = 0, start: int = 0) -> None:
    for offset in range(0, len(data), chunk):
        _write(client, file_id, start + offset, data[offset:offset + chunk], flags)


def _flush(client: b.Client, file_id: tuple[int, int]) -> None:
    response = client.request(b.SMB2_FLUSH, b.flush_body(file_id))
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)


def _open_rw(client: b.Client, name: str, options: int = 0, disposition: int = b.FILE_OVERWRITE_IF) -> tuple[int, int]:
    return client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=disposition,
                       options=options)


def _read_back(client: b.Client, name: str, share_access: int = b.FILE_SHARE_ALL) -> bytes:
    """The whole file over SMB, in 1 MiB READs; its size comes from FileStandardInformation."""
    file_id = client.open(name, desired_access=b.GENERIC_READ, share_access=share_access)
    try:
        info = client.query_info(file_id, b.SMB2_0_INFO_FILE, b.FILE_STANDARD_INFORMATION)
        assert info.status == b.STATUS_SUCCESS, b.status_name(info.status)
        (size,) = struct.unpack_from("<q", b.output_buffer(info), 8)  # EndOfFile ([MS-FSCC] 2.4.47)
        pieces = []
        for offset in range(0, size, MIB):
            length = min(MIB, size - offset)
            _ensure_credits(client, _charge(length))
            response = client.request(b.SMB2_READ, b.read_body(file_id, offset, length),
                                      credit_charge=_charge(length))
            assert response.status == b.STATUS_SUCCESS, f"READ {name}@{offset}: {b.status_name(response.status)}"
            pieces.append(b.read_data(response))
        return b"".join(pieces)
    finally:
        client.close_file(file_id)


def _assert_same(name: str, actual: bytes, expected: bytes) -> None:
    """Byte-for-byte equality, reported as sizes and the first differing offset rather than two blobs."""
    if actual == expected:
        return
    first = next((i for i, (x, y) in enumerate(zip(actual, expected)) if x != y), min(len(actual), len(expected)))
    pytest.fail(f"{name}: {len(actual)} bytes, expected {len(expected)}; first difference at offset {first}")


def _verify(server: SmbServer, expected: dict[str, bytes], share: str = "share", share_path: Path | None = None) -> None:
    """Every file reads back exactly, both over SMB from `server` and straight from the share directory."""
    directory = share_path or server.share_path
    with b.connect(server.host, server.port, server.user, server.password, share=share) as client:
        for name, data in expected.items():
            _assert_same(f"{name} (disk)", (directory / name).read_bytes(), data)
            _assert_same(f"{name} (SMB)", _read_back(client, name), data)


# -- FLUSH, then SIGKILL ------------------------------------------------------------------------------------------

# Sizes around the edges that matter: empty, one byte, a page and one, a credit unit and one, a MiB and some,
# and more than the 8 MiB MaxWriteSize (so the file needs several WRITEs of 1 MiB each).
FILE_SIZES = {"empty.bin": 0, "one.bin": 1, "page.bin": 4097, "credit.bin": 65537, "mib.bin": MIB + 7,
              "big.bin": 9 * MIB + 5}


def test_flushed_writes_survive_sigkill(tmp_path: Path) -> None:
    expected = {name: _payload(index, size) for index, (name, size) in enumerate(FILE_SIZES.items())}
    # A write far past the end leaves a hole that must read back as zeros.
    sparse_tail = _payload(99, 3000)
    expected["sparse.bin"] = bytes(3 * MIB) + sparse_tail
    with _servers(tmp_path) as servers:
        server = servers[0]
        with b.connect(server.host, server.port, server.user, server.password) as client:
            for name, data in expected.items():
                file_id = _open_rw(client, name)
                if name == "sparse.bin":
                    _write(client, file_id, 3 * MIB, sparse_tail)
                else:
                    _write_chunked(client, file_id, data)
                _flush(client, file_id)
                # Half the files stay open: FLUSH alone must be enough, CLOSE is not what saves them.
                if len(name) % 2:
                    assert client.close_file(file_id) == b.STATUS_SUCCESS
            new = _kill_and_restart(servers, tmp_path)
        _verify(new, expected)
        b.assert_serves_fresh_client(new.host, new.port, new.user, new.password)


# -- write-through and sync_always ---------------------------------------------------------------------------------

def test_write_through_and_sync_always_survive_sigkill(tmp_path: Path) -> None:
    """No FLUSH and no CLOSE: the WRITE responses themselves are the acknowledgement. Three ways to ask for it:
    SMB2_WRITEFLAG_WRITE_THROUGH on each WRITE, FILE_WRITE_THROUGH at CREATE, and a share with sync_always."""
    plain, synced = tmp_path / "share", tmp_path / "synced"
    plain.mkdir()
    synced.mkdir()
    config = _config(tmp_path, {"share": (plain, False), "synced": (synced, True)})
    flag_data, option_data, synced_data = _payload(1, 9 * MIB + 3), _payload(2, 2 * MIB + 1), _payload(3, 9 * MIB)
    with _servers(tmp_path, config) as servers:
        server = servers[0]
        with b.connect(server.host, server.port, server.user, server.password) as client:
            _write_chunked(client, _open_rw(client, "flag.bin"), flag_data, flags=SMB2_WRITEFLAG_WRITE_THROUGH)
            _write_chunked(client, _open_rw(client, "option.bin", options=FILE_WRITE_THROUGH), option_data,
                           chunk=512 * KIB)
        with b.connect(server.host, server.port, server.user, server.password, share="synced") as client:
            file_id = _open_rw(client, "synced.bin")
            # The last MiB in small pieces: sync_always covers the short WRITEs that run on the event loop
            # as well as the large ones that run in a worker thread.
            _write_chunked(client, file_id, synced_data[:8 * MIB])
            _write_chunked(client, file_id, synced_data[8 * MIB:], chunk=4 * KIB, start=8 * MIB)
            new = _kill_and_restart(servers, tmp_path, config)
        _verify(new, {"flag.bin": flag_data, "option.bin": option_data})
        _verify(new, {"synced.bin": synced_data}, share="synced", share_path=synced)


# -- clients that vanish mid-write ----------------------------------------------------------------------------------

@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmbServer]:
    with _servers(tmp_path) as servers:
        yield servers[0]
        b.assert_serves_fresh_client(servers[0].host, servers[0].port, servers[0].user, servers[0].password)


def _wait_connections_closed(server: SmbServer, timeout_s: float = 15.0) -> None:
    """Until the server has finished every connection it accepted: their WRITEs have run (or never will)."""
    deadline = time.monotonic() + timeout_s
    while True:
        log = server.log_text()
        still_open = set(_CONNECTION_FROM.findall(log)) - set(_CONNECTION_CLOSED.findall(log))
        if not still_open:
            return
        assert time.monotonic() < deadline, f"connections {sorted(still_open)} never closed"
        time.sleep(0.1)


def _abort(client: b.Client) -> None:
    """Close with a reset (SO_LINGER 0) instead of an orderly FIN."""
    assert client.sock is not None
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def _prefill(server: SmbServer, name: str, data: bytes) -> None:
    """The file's old content, acknowledged and flushed before the test's connection starts."""
    with b.connect(server.host, server.port, server.user, server.password) as client:
        file_id = _open_rw(client, name)
        _write_chunked(client, file_id, data)
        _flush(client, file_id)
        assert client.close_file(file_id) == b.STATUS_SUCCESS


CHUNKS_IN_FLIGHT = 16


def test_connection_reset_with_writes_in_flight(server: SmbServer) -> None:
    old = _payload(10, CHUNKS_IN_FLIGHT * MIB)
    new = _payload(11, CHUNKS_IN_FLIGHT * MIB)
    _prefill(server, "inflight.bin", old)
    with b.connect(server.host, server.port, server.user, server.password) as client:
        file_id = _open_rw(client, "inflight.bin", disposition=b.FILE_OPEN)
        _ensure_credits(client, CHUNKS_IN_FLIGHT * _charge(MIB))
        requests = [_write_request(client, file_id, index * MIB, new[index * MIB:(index + 1) * MIB])
                    for index in range(CHUNKS_IN_FLIGHT)]
        message_ids = [client.send(request)[0] for request in requests]
        # Wait for two answers, then reset the connection with the rest still on their way.
        acknowledged = {0, 1}
        for index in acknowledged:
            _check_write(client.receive(message_ids[index]), MIB)
        _abort(client)
    _wait_connections_closed(server)
    on_disk = (server.share_path / "inflight.bin").read_bytes()
    assert len(on_disk) == len(old)
    for index in range(CHUNKS_IN_FLIGHT):
        piece = slice(index * MIB, (index + 1) * MIB)
        if index in acknowledged:
            _assert_same(f"acknowledged chunk {index}", on_disk[piece], new[piece])
        else:
            # Not acknowledged: it may or may not have been written, but a WRITE is never applied in part.
            assert on_disk[piece] in (old[piece], new[piece]), f"chunk {index} is a mix of old and new data"
    with b.connect(server.host, server.port, server.user, server.password) as client:
        # Exclusive access proves the dead connection's handle is gone.
        _assert_same("inflight.bin (SMB)", _read_back(client, "inflight.bin", share_access=0), on_disk)
    assert_no_server_bugs(server)


@pytest.mark.parametrize("close", ["fin", "reset"])
def test_connection_lost_during_half_sent_8mib_write(server: SmbServer, close: str) -> None:
    old = _payload(20, 8 * MIB)
    acknowledged_tail = _payload(21, 64 * KIB)
    _prefill(server, "halfsent.bin", old)
    with b.connect(server.host, server.port, server.user, server.password) as client:
        file_id = _open_rw(client, "halfsent.bin", disposition=b.FILE_OPEN)
        _write(client, file_id, 8 * MIB, acknowledged_tail)
        message, _ = client.build(_write_request(client, file_id, 0, _payload(22, 8 * MIB)))
        assert client.sock is not None
        client.sock.sendall(_NBSS.pack(len(message)) + message[:len(message) // 2])
        if close == "reset":
            _abort(client)
    _wait_connections_closed(server)
    # The half-sent WRITE never arrived whole, so none of it may be applied; the acknowledged one stays.
    expected = old + acknowledged_tail
    _assert_same("halfsent.bin (disk)", (server.share_path / "halfsent.bin").read_bytes(), expected)
    with b.connect(server.host, server.port, server.user, server.password) as client:
        _assert_same("halfsent.bin (SMB)", _read_back(client, "halfsent.bin", share_access=0), expected)
    assert_no_server_bugs(server)
