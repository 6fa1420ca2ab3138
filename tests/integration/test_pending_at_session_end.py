"""Requests still pending when their session or tree connect ends ([MS-SMB2] 3.3.5.6 LOGOFF, 3.3.5.8
TREE_DISCONNECT) end with it, as on Samba 4.17, which cancels them before closing the opens
(smbXsrv_session.c smb2srv_session_shutdown_send, smb2_tcon.c smbd_smb2_tdis_send):

- a CREATE waiting for another client's batch oplock break: STATUS_CANCELLED. It used to wait for the break
  and then complete into an open of the session or tree that was gone, which nothing ever closed: its
  descriptor and its share mode stayed for the server's lifetime (found by fuzzing the request path, fds
  counted after each connection);
- a blocking LOCK: STATUS_RANGE_NOT_LOCKED; a CHANGE_NOTIFY: STATUS_NOTIFY_CLEANUP (both end with their
  handle).

The same client sequence against Samba 4.17 (benchmarks/servers.py SambaServer) gave exactly these statuses.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import SmbServer
from tests.integration.notify_helpers import notify_body

SMB2_OPLOCK_LEVEL_BATCH = 0x09
STATUS_NOTIFY_CLEANUP = 0x0000010B


def _connect(server: SmbServer) -> b.Client:
    client = b.connect(server.host, server.port, server.user, server.password, sign=True)
    client.timeout_s = 10.0  # shorter than the 35 s break timeout the old code waited for
    if client.sock is not None:
        client.sock.settimeout(client.timeout_s)
    return client


def _share_fds(fds: str, share: Path) -> int:
    """How many of the daemon's descriptors are of files in the share (not of its root, of which the server
    keeps a few for its own bookkeeping)."""
    count = 0
    for fd in os.listdir(fds):
        try:
            target = os.readlink(f"{fds}/{fd}")
        except FileNotFoundError:
            continue
        count += target.startswith(f"{share}/")
    return count


@pytest.mark.parametrize("ending", [b.SMB2_LOGOFF, b.SMB2_TREE_DISCONNECT], ids=["logoff", "tree_disconnect"])
def test_pending_requests_end_with_their_session_or_tree(smb_server: SmbServer, ending: int) -> None:
    fds = f"/proc/{smb_server.process.pid}/fd"
    with _connect(smb_server) as holder, _connect(smb_server) as client:
        before = _share_fds(fds, smb_server.share_path)
        # The holder's batch oplock is never acknowledged: the client's CREATE of the same file waits.
        held = holder.open("data.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                           disposition=b.FILE_OPEN_IF, oplock=SMB2_OPLOCK_LEVEL_BATCH)
        locked = client.open("lock.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=b.FILE_OPEN_IF)
        assert client.request(b.SMB2_LOCK, b.lock_body(locked, [(0, 10, 0x12)])).status == b.STATUS_SUCCESS
        root = client.open("", options=b.FILE_DIRECTORY_FILE)
        (create,) = client.send(b.Req(b.SMB2_CREATE, b.create_body("data.bin", desired_access=b.GENERIC_WRITE)))
        (lock,) = client.send(b.Req(b.SMB2_LOCK, b.lock_body(locked, [(5, 10, 2)])))
        (notify,) = client.send(b.Req(b.SMB2_CHANGE_NOTIFY, notify_body(root)))
        for message_id in (create, lock, notify):  # all three went async before the session or tree ends
            assert client.receive(message_id, skip_pending=False).status == b.STATUS_PENDING
        (end,) = client.send(b.Req(ending, b.echo_body()))
        assert client.receive(end).status == b.STATUS_SUCCESS
        assert b.status_name(client.receive(create).status) == "STATUS_CANCELLED"
        assert b.status_name(client.receive(lock).status) == "STATUS_RANGE_NOT_LOCKED"
        assert client.receive(notify).status == STATUS_NOTIFY_CLEANUP
        # No open was left behind: once the holder closes, nobody has the file open.
        assert holder.close_file(held) == b.STATUS_SUCCESS
        response = holder.create("data.bin", desired_access=b.GENERIC_WRITE | b.DELETE, share_access=0)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert holder.close_file(b.create_file_id(response.body)) == b.STATUS_SUCCESS
        # Nor a descriptor of a file in the share.
        deadline = time.monotonic() + 5
        while _share_fds(fds, smb_server.share_path) > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _share_fds(fds, smb_server.share_path) <= before
