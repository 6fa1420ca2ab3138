"""Handlers.end_of_message runs once per message, after every request of it was dispatched: the dispatcher
leaves a request's user identity on for the next request of the same compound, and this is where the
connection goes back to the server's identity before the event loop runs anything else."""

from __future__ import annotations

import dataclasses
from typing import Any

from smbsrv.fs import identity
from tests import builders as b
from tests.fuzz.sans_io import FILE_NAME, Peer

FF = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)


def _record(peer: Peer) -> list[str]:
    events: list[str] = []
    handlers = peer.connection.handlers
    inner_dispatch = handlers.dispatch

    async def dispatch(ctx: Any) -> Any:
        events.append(f"dispatch {ctx.header.command}")
        return await inner_dispatch(ctx)

    def end_of_message() -> None:
        events.append("end")
        handlers.end_of_message()

    peer.connection.handlers = dataclasses.replace(handlers, dispatch=dispatch, end_of_message=end_of_message)
    return events


def test_a_compound_ends_its_message_once_after_its_last_request(peer: Peer) -> None:
    events = _record(peer)
    outcome = peer.request(
        b.Req(b.SMB2_CREATE, b.create_body(FILE_NAME, desired_access=0x80)),
        b.Req(b.SMB2_QUERY_INFO, b.query_info_body(FF, 1, 18, 4096), related=True),
        b.Req(b.SMB2_CLOSE, b.close_body(FF), related=True))
    assert outcome.statuses == [b.STATUS_SUCCESS] * 3
    assert events == [f"dispatch {b.SMB2_CREATE}", f"dispatch {b.SMB2_QUERY_INFO}", f"dispatch {b.SMB2_CLOSE}",
                      "end"]
    assert not identity.acts_as_client()


def test_a_failing_request_still_ends_its_message(peer: Peer) -> None:
    events = _record(peer)
    outcome = peer.request(b.Req(b.SMB2_CREATE, b.create_body("no-such-file")),
                           b.Req(b.SMB2_CLOSE, b.close_body(FF), related=True))
    assert outcome.statuses == [b.STATUS_OBJECT_NAME_NOT_FOUND] * 2
    # The related CLOSE fails with the CREATE's status without reaching the dispatcher.
    assert events == [f"dispatch {b.SMB2_CREATE}", "end"]
