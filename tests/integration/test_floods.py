"""Floods the sans-IO fuzz harness cannot see, against the real daemon ([MS-SMB2] 3.3.4.2, 3.3.5.2, 3.3.5.16).

The request-path harness (tests/fuzz/) feeds one message at a time and reads every answer; what only a socket
shows is a client that does not play along: one that pipelines thousands of CANCELs naming nothing, that keeps
more requests pending than the server allows, or that sends requests and never reads their answers. Each must
leave the server answering (that connection and others), with bounded memory.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from pathlib import Path

from tests import builders as b
from tests.conftest import SmbServer

STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
STATUS_NOTIFY_CLEANUP = 0x0000010B
MIB = 1024 * 1024
RSS_BOUND_BYTES = 40 * MIB
# smbsrv/config.py's defaults: max_async_requests_per_connection, max_compound_requests.
MAX_ASYNC = 512
MAX_COMPOUND = 64
_NBSS = struct.Struct(">I")


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def _credits_for(client: b.Client, count: int) -> None:
    """Enough granted credits for `count` more requests (each request asks for 64)."""
    while client.credits < count + 1:
        assert client.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS


def _framed(messages: list[bytearray]) -> bytes:
    return b"".join(_NBSS.pack(len(message)) + message for message in messages)


def _echo_within(client: b.Client, seconds: float) -> float:
    start = time.monotonic()
    assert client.sock is not None
    client.sock.settimeout(seconds)
    assert client.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS
    client.sock.settimeout(None)
    return time.monotonic() - start


def test_flood_of_cancels_naming_nothing(server: SmbServer, client: b.Client) -> None:
    """12,560 CANCELs (by MessageIds never sent, by AsyncIds never handed out, alone and in compounds of the
    largest size allowed, max_compound_requests 64; a longer one drops the connection, test_limits) get no answer ([MS-SMB2] 3.3.5.16) and cost nothing that stays: the ECHO behind them is answered."""
    baseline = _rss_bytes(server.process.pid)
    messages = []
    for index in range(10_000):
        cancel = b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=client.next_message_id + 100 + index,
                       async_id=index + 1000 if index % 2 else None)
        messages.append(client.build(cancel)[0])
    for _ in range(40):
        messages.append(client.build(*(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=7 + index)
                                       for index in range(MAX_COMPOUND)))[0])
    assert client.sock is not None
    client.sock.sendall(_framed(messages))
    elapsed = _echo_within(client, 30)
    assert elapsed < 10, f"the ECHO behind 12,560 CANCELs took {elapsed:.1f} s"
    assert _rss_bytes(server.process.pid) <= baseline + RSS_BOUND_BYTES


def test_pending_requests_past_the_limit_are_refused(client: b.Client) -> None:
    """More CHANGE_NOTIFYs than max_async_requests_per_connection: the ones past it are answered
    STATUS_INSUFFICIENT_RESOURCES at once (nothing is queued for them), and every pending one ends CANCELLED."""
    name = f"flood-{uuid.uuid4().hex[:8]}"
    dir_id = client.open(name, disposition=b.FILE_CREATE, options=b.FILE_DIRECTORY_FILE | b.FILE_DELETE_ON_CLOSE,
                         desired_access=b.GENERIC_READ | b.DELETE)
    extra = 8
    _credits_for(client, MAX_ASYNC + extra)
    body = struct.pack("<HHI16sII", 32, 0, 4096, b.file_id_bytes(dir_id), 0xFFF, 0)
    ids = [client.send(b.Req(b.SMB2_CHANGE_NOTIFY, body))[0] for _ in range(MAX_ASYNC + extra)]
    interim = [client.receive(message_id, skip_pending=False) for message_id in ids]
    statuses = [response.status for response in interim]
    assert statuses[:MAX_ASYNC] == [b.STATUS_PENDING] * MAX_ASYNC
    assert statuses[MAX_ASYNC:] == [STATUS_INSUFFICIENT_RESOURCES] * extra
    for response in interim[:MAX_ASYNC]:
        client.send(b.Req(b.SMB2_CANCEL, b.cancel_body(), async_id=response.header.async_id))
    finals = [client.receive(message_id).status for message_id in ids[:MAX_ASYNC]]
    assert finals == [b.STATUS_CANCELLED] * MAX_ASYNC
    # The slots are free again: a new CHANGE_NOTIFY goes pending.
    (message_id,) = client.send(b.Req(b.SMB2_CHANGE_NOTIFY, body))
    assert client.receive(message_id, skip_pending=False).status == b.STATUS_PENDING
    assert client.request(b.SMB2_CLOSE, b.close_body(dir_id)).status == b.STATUS_SUCCESS
    assert client.receive(message_id).status == STATUS_NOTIFY_CLEANUP


def test_client_that_never_reads_its_answers(server: SmbServer, client: b.Client) -> None:
    """2,000 pipelined 64 KiB READs (125 MiB of answers) from a client that reads none of them: the server
    stops taking its requests once its answers back up, holds a bounded amount for it, and serves others."""
    name = f"flood-{uuid.uuid4().hex[:8]}"
    file_id = client.open(name, disposition=b.FILE_CREATE, options=b.FILE_DELETE_ON_CLOSE,
                          desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE)
    for offset in range(0, MIB, 65536):  # 64 KiB a WRITE: one credit each
        assert client.write(file_id, offset, bytes(range(256)) * 256).status == b.STATUS_SUCCESS
    count = 2000
    _credits_for(client, count)
    baseline = _rss_bytes(server.process.pid)
    burst = _framed([client.build(b.Req(b.SMB2_READ, b.read_body(file_id, (index % 16) * 65536, 65536)))[0]
                     for index in range(count)])
    assert client.sock is not None
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    # The server stops reading, so sendall may block for good: it runs in a thread the socket's close ends.
    sender = threading.Thread(target=_send_quietly, args=(client.sock, burst), daemon=True)
    sender.start()
    time.sleep(2)
    rss = _rss_bytes(server.process.pid)
    with b.connect(server.host, server.port, server.user, server.password) as other:
        elapsed = _echo_within(other, 10)
    client.sock.shutdown(socket.SHUT_RDWR)
    sender.join(10)
    assert rss <= baseline + RSS_BOUND_BYTES, f"RSS grew from {baseline // MIB} to {rss // MIB} MiB"
    assert elapsed < 5, f"another client's ECHO took {elapsed:.1f} s"


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass
