"""An async request's completion (GoAsync) runs each step as the session's user, whatever the command, and the
event loop is the server again between its steps ([MS-SMB2] 3.3.4.2 for the interim/final pair; the identity
rule is the server's own: fs/identity.py). The handler below is a test double of a command that goes async,
so the rule is checked for the framework, not for one command that remembered to switch."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pwd
from collections.abc import Iterator

import pytest

from smbsrv import dispatch
from smbsrv.fs import identity
from smbsrv.protocol.reply import GoAsync
from smbsrv.wire.constants import Command
from tests import builders as b
from tests.fuzz.sans_io import Peer, SansIoServer, parse_buffers

STATUS_PENDING = 0x00000103

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching file-system identity needs root")


@pytest.fixture()
def peer() -> Iterator[Peer]:
    server = SansIoServer()
    peer = server.connect()
    # The session acts as an unprivileged account, as in deployments (the harness maps it to the test runner).
    nobody = pwd.getpwnam("nobody")
    session = peer.connection.sessions[peer.session_id]
    session.uid, session.gid, session.groups = nobody.pw_uid, nobody.pw_gid, (nobody.pw_gid,)
    try:
        yield peer
    finally:
        peer.close()
        server.close()
        identity.become_root()


def test_every_step_of_a_completion_runs_as_the_sessions_user(peer: Peer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    between_steps: list[bool] = []

    async def completion() -> bytes:
        seen.append(identity.current())
        await asyncio.sleep(0)
        seen.append(identity.current())
        return b"\x04\x00\x00\x00"  # an ECHO response body

    def goes_async(ctx: object, request: object) -> bytes:
        raise GoAsync(completion)

    async def watch_the_loop() -> None:
        await asyncio.sleep(0)  # runs between the completion's steps
        between_steps.append(identity.acts_as_client())

    echo = dispatch.TABLE[Command.ECHO]
    monkeypatch.setitem(dispatch.TABLE, Command.ECHO, dataclasses.replace(echo, handle=goes_async))
    peer.server.loop.call_soon(lambda: peer.server.loop.create_task(watch_the_loop()))
    outcome = peer.request(b.Req(b.SMB2_ECHO, b.echo_body()))

    assert [r.status for r in outcome.responses] == [STATUS_PENDING]
    assert [r.status for r in outcome.sent_later] == [b.STATUS_SUCCESS]
    session = peer.connection.sessions[peer.session_id]
    assert seen == [(session.uid, session.gid, session.groups)] * 2
    assert between_steps == [False]
    assert not identity.acts_as_client()


def test_a_completion_cancelled_before_its_first_step_never_runs(peer: Peer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[bool] = []

    async def completion() -> bytes:
        ran.append(True)
        return b"\x04\x00\x00\x00"

    def goes_async(ctx: object, request: object) -> bytes:
        raise GoAsync(completion)

    echo = dispatch.TABLE[Command.ECHO]
    monkeypatch.setitem(dispatch.TABLE, Command.ECHO, dataclasses.replace(echo, handle=goes_async))
    # The CANCEL names the ECHO's MessageId and arrives right behind it (one TCP segment, two messages), so it
    # is handled in the same turn of the loop, before the completion's task had a first step. (In one
    # compound the ECHO would not be last and would fail at once: Connection._answer_smb2.)
    echo_message, (message_id,) = peer.builder.build(b.Req(b.SMB2_ECHO, b.echo_body()), sign=False)
    cancel_message, _ = peer.builder.build(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=message_id),
                                           sign=False)

    async def both() -> list[b.Response]:
        answered = parse_buffers(await peer.connection.handle_message(bytearray(echo_message)))
        assert await peer.connection.handle_message(bytearray(cancel_message)) is None
        for _ in range(3):
            await asyncio.sleep(0)
        return answered

    responses = peer.server.loop.run_until_complete(both())
    assert ran == []
    later = [response for buffers in peer.later for response in parse_buffers(buffers)]
    peer.later.clear()
    assert [r.status for r in responses + later] == [STATUS_PENDING, b.STATUS_CANCELLED]
