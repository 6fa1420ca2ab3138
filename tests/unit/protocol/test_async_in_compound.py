"""A request that would go async with other requests after it in the same compound ([MS-SMB2] 3.3.5.2.7, <262>):
answered STATUS_INTERNAL_ERROR at once, with what its handler set up withdrawn, and the rest of the chain runs;
a wait with an end in sight (GoAsync.holds_chain: a break, a hydration) goes async there, and the related
requests after it run once it is answered. The handler is a test double of a command that goes async, so the
rule is checked for the framework; tests/integration/test_notify_raw.py checks it for CHANGE_NOTIFY and LOCK."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from smbsrv import dispatch
from smbsrv.protocol.reply import GoAsync
from smbsrv.wire.constants import Command
from tests import builders as b
from tests.fuzz.sans_io import Peer, parse_buffers, refusable_elements

STATUS_PENDING = 0x00000103
STATUS_INTERNAL_ERROR = 0xC00000E5
_LOCK_RESPONSE = b"\x04\x00\x00\x00"


class _Waits:
    """LOCK handled as a command that goes async the first time it is called (later calls answer at once)."""

    def __init__(self, holds_chain: bool, waiting_call: int = 1) -> None:
        self.holds_chain = holds_chain
        self.waiting_call = waiting_call
        self.made: list[str] = []  # "completion", "ended", "withdrawn", "answered"
        self.release = asyncio.Event()
        self.calls = 0

    def handle(self, ctx: object, request: object) -> bytes:
        self.calls += 1
        if self.calls != self.waiting_call:
            self.made.append("answered")
            return _LOCK_RESPONSE

        async def completion() -> bytes:
            self.made.append("completion")
            await self.release.wait()
            return _LOCK_RESPONSE

        raise GoAsync(completion, lambda: self.made.append("ended"), holds_chain=self.holds_chain,
                      withdraw=lambda: self.made.append("withdrawn"))


def _install(monkeypatch: pytest.MonkeyPatch, waits: _Waits) -> None:
    lock = dispatch.TABLE[Command.LOCK]
    monkeypatch.setitem(dispatch.TABLE, Command.LOCK, dataclasses.replace(lock, handle=waits.handle))


def _lock(peer: Peer, related: bool = False) -> b.Req:
    return b.Req(b.SMB2_LOCK, b.lock_body(peer.file_id, [(0, 1, 0x12)]), related=related)


def _send(peer: Peer, *reqs: b.Req) -> list[b.Response]:
    """The responses sent at once (Peer.request would also want the ones still to come)."""
    message, _ = peer.builder.build(*reqs, sign=False)
    buffers = peer.server.loop.run_until_complete(peer.connection.handle_message(bytearray(message)))
    peer.refusable |= refusable_elements(message)
    return parse_buffers(buffers, refusable=peer.refusable)


def _later(peer: Peer, waits: _Waits) -> list[b.Response]:
    """Lets the waiting request finish; the responses sent afterwards."""
    waits.release.set()
    peer.server.loop.run_until_complete(asyncio.sleep(0.01))
    return [response for buffers in peer.later for response in parse_buffers(buffers, refusable=peer.refusable)]


@pytest.mark.parametrize("related", [True, False], ids=["related", "unrelated"])
def test_a_wait_without_end_fails_in_the_middle_of_a_compound(peer: Peer, monkeypatch: pytest.MonkeyPatch,
                                                             related: bool) -> None:
    waits = _Waits(holds_chain=False)
    _install(monkeypatch, waits)
    outcome = peer.request(_lock(peer), _lock(peer, related))

    assert [r.status for r in outcome.responses] == [STATUS_INTERNAL_ERROR, b.STATUS_SUCCESS]
    assert not outcome.responses[0].header.is_async
    assert outcome.sent_later == []
    # The completion was never made, and only `withdraw` ran (not `ended`: the request never went async).
    assert waits.made == ["withdrawn", "answered"]
    assert peer.connection.async_requests == {}


def test_the_last_request_of_a_compound_goes_async(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _Waits(holds_chain=False, waiting_call=2)
    _install(monkeypatch, waits)
    responses = _send(peer, _lock(peer), _lock(peer, True))

    assert [r.status for r in responses] == [b.STATUS_SUCCESS, STATUS_PENDING]
    assert [r.status for r in _later(peer, waits)] == [b.STATUS_SUCCESS]
    assert waits.made == ["answered", "completion", "ended"]


def test_a_wait_with_an_end_holds_the_related_requests_after_it(peer: Peer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _Waits(holds_chain=True)
    _install(monkeypatch, waits)
    responses = _send(peer, _lock(peer), _lock(peer, True))

    assert [r.status for r in responses] == [STATUS_PENDING]
    peer.server.loop.run_until_complete(asyncio.sleep(0.01))
    assert peer.later == []
    assert waits.made == ["completion"]  # the related LOCK has not run yet
    later = _later(peer, waits)
    assert [r.status for r in later] == [b.STATUS_SUCCESS, b.STATUS_SUCCESS]
    assert later[0].header.is_async and not later[1].header.is_async
    assert waits.made == ["completion", "ended", "answered"]


def test_over_the_async_limit_the_wait_is_withdrawn_too(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _Waits(holds_chain=False)
    _install(monkeypatch, waits)
    state = peer.connection.server
    monkeypatch.setattr(state, "config", dataclasses.replace(state.config, max_async_requests_per_connection=0))
    outcome = peer.request(_lock(peer))

    assert outcome.responses[0].status == 0xC000009A  # STATUS_INSUFFICIENT_RESOURCES
    assert waits.made == ["withdrawn"]
