"""The request context a handler receives: what the dispatcher already looked up for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from smbsrv.wire.header import Header

if TYPE_CHECKING:
    import asyncio

    from smbsrv.crypto.signing import Signer
    from smbsrv.protocol.connection import Connection
    from smbsrv.protocol.objects import Open, Session, TreeConnect
    from smbsrv.wire.status import NtStatus


@dataclass(slots=True)
class RequestContext:
    connection: Connection
    header: Header
    element: memoryview  # this compound element, header at offset 0
    session: Session | None = None
    tree: TreeConnect | None = None
    open: Open | None = None
    # Set by CREATE so that later related requests in the compound use the new handle.
    created_file_id: tuple[int, int] | None = None
    # Set by SESSION_SETUP: fold the response into this session's preauth hash (3.1.1, non-final legs).
    preauth_session: Session | None = None
    # Set by SESSION_SETUP success: sign this response with the new session's key.
    sign_with: Session | None = None
    # The request arrived in a transform message: it is not signed, and its response is encrypted.
    encrypted: bool = False
    # The request's signature as computed by `Signer` while the transport received it (large messages only).
    streamed_signature: tuple[Signer, bytes] | None = None
    # The task that sends this request's final response once it went async (its result: the final status).
    async_answer: asyncio.Task[NtStatus] | None = None
