"""A DH2Q CREATE that waits for a break keeps its CreateGuid pending ([MS-SMB2] 3.3.5.9.10; Samba's replay cache
record without an open) until it is answered, however that ends: also when a CANCEL arrives right behind it,
before its task had a first step (commands/durable_handles.pending_while). A CreateGuid left pending would answer
every later CREATE with it STATUS_FILE_NOT_AVAILABLE for the server's lifetime."""

from __future__ import annotations

import asyncio
import os
import struct

from tests import builders as b
from tests.fuzz.sans_io import Peer, parse_buffers

STATUS_PENDING = 0x00000103
FILE_OPEN_IF = 3
OPLOCK_BATCH = 0x09


def _dh2q(create_guid: bytes) -> bytes:
    # [MS-SMB2] 2.2.13.2.11: Timeout, Flags, Reserved, CreateGuid
    return b.create_context(b"DH2Q", struct.pack("<IIQ", 0, 0, 0) + create_guid)


def test_a_cancel_right_behind_a_waiting_dh2q_create_leaves_no_pending_create_guid(peer: Peer) -> None:
    holder = peer.request(b.Req(b.SMB2_CREATE, b.create_body(
        "held.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=FILE_OPEN_IF,
        oplock=OPLOCK_BATCH)))
    assert holder.responses[0].status == b.STATUS_SUCCESS
    assert holder.responses[0].body[2] == OPLOCK_BATCH  # OplockLevel: the next open must wait for its break
    create_guid = os.urandom(16)
    create, (message_id,) = peer.builder.build(b.Req(b.SMB2_CREATE, b.create_body(
        "held.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE, contexts=_dh2q(create_guid))), sign=False)
    cancel, _ = peer.builder.build(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=message_id), sign=False)

    async def both() -> list[b.Response]:
        # One TCP segment, two messages: the CANCEL is handled before the CREATE's task had a first step.
        answered = parse_buffers(await peer.connection.handle_message(bytearray(create)))
        assert await peer.connection.handle_message(bytearray(cancel)) is None
        for _ in range(3):
            await asyncio.sleep(0)
        return answered

    responses = peer.server.loop.run_until_complete(both())
    later = [response for buffers in peer.later for response in parse_buffers(buffers)]
    peer.later.clear()
    statuses = [r.status for r in responses + later if r.header.command == b.SMB2_CREATE]
    assert statuses == [STATUS_PENDING, b.STATUS_CANCELLED]
    assert peer.server.state.files.durable.pending == set()
