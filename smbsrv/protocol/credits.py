"""The message-id window of one connection ([MS-SMB2] 3.3.1.1, 3.3.5.2.3).

The server hands out credits; each credit lets the client use one more message id. A request with CreditCharge
N consumes N consecutive ids. An id outside the window, or one used before, is a protocol violation (Windows
disconnects). Ids may arrive out of order (async and multi-channel), so consumed ids above the low edge are kept
in a set until the edge passes them.

Credits also pay for size ([MS-SMB2] 3.3.5.2.5): check_credit_charge() is the one place a READ, WRITE,
QUERY_INFO, QUERY_DIRECTORY or CHANGE_NOTIFY checks that its CreditCharge covers the bytes it moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smbsrv.protocol.errors import ProtocolViolation, SmbError
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.protocol.context import RequestContext

# One credit pays for this many bytes of a multi-credit request ([MS-SMB2] 3.3.5.2.5).
CREDIT_UNIT_BYTES = 65536


def check_credit_charge(ctx: RequestContext, length: int) -> None:
    """[MS-SMB2] 3.3.5.2.5: with multi-credit, a request must pay one credit per 64 KiB it moves (whichever of
    its input and output is larger, as the caller passes); without it, no request moves more than 64 KiB."""
    if not ctx.connection.supports_multi_credit:
        if length > CREDIT_UNIT_BYTES:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        return
    needed = max(1, (length + CREDIT_UNIT_BYTES - 1) // CREDIT_UNIT_BYTES)
    if max(ctx.header.credit_charge, 1) < needed:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)


class CreditWindow:
    def __init__(self, max_credits: int) -> None:
        self.max_credits = max_credits
        self.low = 0  # smallest id not yet consumed
        self.high = 1  # first id not yet granted: NEGOTIATE uses id 0 with no credit asked before
        self._consumed_above_low: set[int] = set()

    def consume(self, message_id: int, charge: int) -> None:
        charge = max(charge, 1)
        if message_id < self.low or message_id + charge > self.high:
            raise ProtocolViolation(f"message id {message_id}+{charge} outside window [{self.low}, {self.high})")
        if message_id == self.low and not self._consumed_above_low:
            self.low += charge
            return
        ids = range(message_id, message_id + charge)
        if any(i in self._consumed_above_low for i in ids):
            raise ProtocolViolation(f"message id {message_id} reused")
        self._consumed_above_low.update(ids)
        while self.low in self._consumed_above_low:
            self._consumed_above_low.discard(self.low)
            self.low += 1

    @property
    def outstanding(self) -> int:
        """Ids granted but not yet consumed."""
        return self.high - self.low - len(self._consumed_above_low)

    def grant(self, charge: int, requested: int) -> int:
        """Credits to return with a response: what was asked (at least the charge), within the window cap, and
        never leaving the client with no credit at all."""
        wanted = max(requested, 1)
        room = self.max_credits - self.outstanding
        granted = max(0, min(wanted, room))
        if granted == 0 and self.outstanding == 0:
            granted = 1
        self.high += granted
        return granted
