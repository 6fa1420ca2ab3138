"""Session.ChannelList bookkeeping ([MS-SMB2] 3.3.1.8): which key signs on which connection, and what a lost
connection leaves of a multichannel session (3.3.7.1). The daemon-level behaviour is in
tests/integration/test_multichannel.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from smbsrv.protocol.objects import Channel, Session


@dataclass(eq=False)
class FakeConnection:
    connection_id: int
    closed: bool = False


@dataclass(eq=False)
class FakeOpen:
    connection: FakeConnection


def _session() -> tuple[Session, FakeConnection, FakeConnection]:
    first, second = FakeConnection(1), FakeConnection(2)
    session = Session(session_id=7, signer="session-key")
    session.channels = {1: Channel(first, bound=True), 2: Channel(second, signer="channel-key", bound=True)}
    return session, first, second


def test_each_connection_signs_with_its_channel_key() -> None:
    session, first, second = _session()
    assert session.signer_for(first) == "session-key"  # the first channel's key is Session.SigningKey
    assert session.signer_for(second) == "channel-key"
    assert session.signer_for(FakeConnection(3)) == "session-key"  # a binding still running


def test_a_binding_in_progress_is_not_a_channel_yet() -> None:
    session, first, second = _session()
    third = FakeConnection(3)
    session.channels[3] = Channel(third)
    assert session.channel_connections() == [first, second]


def test_losing_one_channel_keeps_the_session_and_moves_its_opens() -> None:
    session, first, second = _session()
    moved, kept = FakeOpen(first), FakeOpen(second)
    session.opens = {1: moved, 2: kept}  # type: ignore[dict-item]
    first.closed = True
    assert session.drop_channel(first) is True
    assert moved.connection is second and kept.connection is second
    # The bound channel keeps its own key once it is the only one.
    assert session.signer_for(second) == "channel-key"
    second.closed = True
    assert session.drop_channel(second) is False


def test_a_session_of_one_connection_ends_with_it() -> None:
    connection = FakeConnection(1, closed=True)
    session = Session(session_id=1)
    session.channels = {1: Channel(connection, bound=True)}
    assert session.drop_channel(connection) is False


def test_a_kept_request_runs_until_the_session_ends() -> None:
    """An async request of a dropped channel is kept (Session.keep_request): a finished one is forgotten, a
    running one is cancelled when the session ends (Samba 4.17's session shutdown)."""
    session, first, second = _session()
    first.closed = True
    assert session.live_connection() is second and session.live_connection(besides=second) is None

    async def run() -> tuple[asyncio.Task[None], asyncio.Task[None]]:
        finishing = asyncio.get_running_loop().create_task(asyncio.sleep(0))
        waiting = asyncio.get_running_loop().create_task(asyncio.sleep(60))
        session.keep_request(finishing)
        session.keep_request(waiting)
        await finishing
        await asyncio.sleep(0)  # its done callback
        assert session.orphaned_requests == {waiting}
        session.cancel_orphaned_requests()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return finishing, waiting

    finishing, waiting = asyncio.run(run())
    assert not finishing.cancelled() and waiting.cancelled() and not session.orphaned_requests
