"""Durable opens (files/durable.py, ServerState.scavenge): what a disconnect keeps, and the scavenger, driven by
a fake clock instead of sleeps."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from smbsrv.auth.users import UserDB
from smbsrv.config import ServerConfig, ShareConfig
from smbsrv.files import FileTable
from smbsrv.files.durable import Durable, v2_timeout_ms
from smbsrv.files.oplocks import H, Lease, R
from smbsrv.fs.handle import FileHandle
from smbsrv.protocol.objects import Open, Session
from smbsrv.state import ServerState

BATCH, LEVEL_II = 9, 1
TREE = SimpleNamespace(share_root=object(), share=SimpleNamespace(name="share"))


def make_open(table: FileTable, persistent: int, oplock: int, *, timeout_ms: int = 60_000, fd: int = -1) -> Open:
    open_ = Open(file_id=(persistent, persistent), tree=TREE, session=Session(session_id=1),  # type: ignore[arg-type]
                 granted_access=0x1F01FF, share_access=7, create_options=0, path_components=(f"f{persistent}",),
                 handle=FileHandle(fd=fd, key=(1, persistent)))
    table.add(open_)
    open_.oplock_level = oplock
    table.durable.remember(Durable(open_, b"g" * 16, b"c" * 16, (1000, "alice"), "share", 2,
                                   durable=True, timeout_ms=timeout_ms))
    return open_


def test_v2_timeouts() -> None:
    assert v2_timeout_ms(0) == 60_000  # the server's default
    assert v2_timeout_ms(5_000) == 5_000
    assert v2_timeout_ms(3_600_000) == 300_000  # capped as Samba caps it


def test_disconnect_keeps_only_what_still_caches_handles() -> None:
    table = FileTable()
    batch, level2 = make_open(table, 1, BATCH), make_open(table, 2, LEVEL_II)
    assert table.disconnect(batch, 10.0)
    assert table.durable.is_disconnected(batch) and batch.connection is None
    assert not table.disconnect(level2, 10.0)  # lost H (a break): closed like any handle


def test_disconnect_with_locks_needs_write_caching() -> None:
    table = FileTable()
    batch = make_open(table, 1, BATCH)
    assert batch.file.locks.try_lock(batch, 0, 10, True)
    assert table.disconnect(batch, 0.0)  # BATCH caches writes: the locks stay with the open
    assert batch.file.locks.owned_by(batch)
    read_handle = make_open(table, 2, 0)
    read_handle.lease = Lease(b"g" * 16, b"k" * 16, (1, 2), 2, None, R | H, 1, [read_handle])
    assert read_handle.file.locks.try_lock(read_handle, 0, 10, True)
    assert not table.disconnect(read_handle, 0.0)  # Samba: locks without W are not kept


def test_an_open_with_a_break_in_flight_is_not_kept() -> None:
    table = FileTable()
    batch = make_open(table, 1, BATCH)
    batch.oplock_breaking_to = LEVEL_II  # the break went out on the connection now lost: no one can answer it
    assert not table.disconnect(batch, 0.0)
    leased = make_open(table, 2, 0)
    leased.lease = Lease(b"g" * 16, b"k" * 16, (1, 2), 2, None, R | H, 1, [leased], breaking=True)
    assert not table.disconnect(leased, 0.0)


def test_delete_on_close_is_never_kept() -> None:
    table = FileTable()
    batch = make_open(table, 1, BATCH)
    batch.delete_on_close = True
    assert not table.disconnect(batch, 0.0)


def test_scavenger_closes_only_what_timed_out(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (tmp_path / "state").mkdir()
    config = ServerConfig(listen=("127.0.0.1",), port=0, state_dir=str(tmp_path / "state"),
                          shares=(ShareConfig(name="share", path=str(share)),))
    server = ServerState(config, UserDB.from_pairs([]))
    now = [1000.0]
    server.clock = lambda: now[0]
    fds = [os.open(share, os.O_RDONLY) for _ in range(2)]
    short = make_open(server.files, 1, BATCH, timeout_ms=5_000, fd=fds[0])
    long = make_open(server.files, 2, BATCH, timeout_ms=60_000, fd=fds[1])
    assert server.files.disconnect(short, server.clock()) and server.files.disconnect(long, server.clock())
    assert server.files.durable.next_deadline() == 1005.0
    assert server.scavenge(1004.999) == 0
    assert server.scavenge(1005.0) == 1
    assert short.closed and short.handle.fd == -1 and server.files.durable.get(1) is None
    assert server.files.get((1, 1)) is None  # its share mode, locks and oplock went with it
    assert not long.closed and server.files.durable.next_deadline() == 1060.0
    assert server.scavenge(1060.0) == 1 and long.closed
    assert server.files.durable.next_deadline() is None and len(server.files.durable) == 0
