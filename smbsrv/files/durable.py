"""Durable opens ([MS-SMB2] 3.3.5.9.6, 3.3.5.9.7, 3.3.5.9.10, 3.3.5.9.12, 3.3.7.1): handles that outlive their
connection for a while, so that a client whose TCP connection broke can take them back (DHnC/DH2C) with their
byte-range locks and lease; and the replay cache of DH2Q creates (CreateGuid).

Rules as Samba 4.17 applies them (source3/smbd/smb2_create.c, durable.c):

* granted (DHnQ, or DH2Q without PERSISTENT; persistent handles need a continuously available share, which
  smbsrv does not offer) only for a regular file whose open holds a batch oplock or a lease with H;
* kept at a disconnect only while that is still true (a break may have taken H away), with no delete-on-close,
  no break in flight (nobody could acknowledge it), and, when the handle holds byte-range locks, only with W
  caching as well; otherwise it is closed as usual;
* a disconnected durable open that must be broken (another open conflicts with its oplock or lease) cannot be
  told, so it is closed instead: the breaker does not wait for an acknowledgment that cannot come;
* a disconnected durable open lives for its timeout (v1 16 minutes as Samba; v2 what the client asked, at most
  300 s, 60 s when it asked 0), then the scavenger closes it. Everything is in memory: a server restart loses
  every durable open (docs/durable.md).

Nothing here does I/O or reads a clock: `now` is passed in, and closing is the caller's (files/closing.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from smbsrv.files.oplocks import H, W, caching_of

if TYPE_CHECKING:
    from smbsrv.protocol.objects import Open

V1_TIMEOUT_MS = 16 * 60 * 1000  # Samba's choice for DHnQ, which carries no timeout
V2_DEFAULT_TIMEOUT_MS = 60 * 1000  # a DH2Q Timeout of 0 ([MS-SMB2] 3.3.5.9.10; Windows 2012 and Samba)
V2_MAX_TIMEOUT_MS = 300 * 1000


@dataclass(eq=False, slots=True)
class Durable:
    """What the server remembers of a DH2Q open (replay, v2 reconnect) or of any durable open."""

    open_: Open
    client_guid: bytes
    create_guid: bytes | None  # DH2Q's; None for DHnQ
    owner: tuple[int, str]  # (uid, user name): a reconnect by anyone else is STATUS_ACCESS_DENIED
    share: str  # the share the open belongs to (lower case); a reconnect on another share does not find it
    create_action: int  # what the original CREATE answered, for a replay
    durable: bool = False  # granted: kept across a disconnect
    timeout_ms: int = 0
    disconnected_at: float | None = None  # monotonic seconds; None while a connection holds the open

    @property
    def deadline(self) -> float | None:
        if self.disconnected_at is None:
            return None
        return self.disconnected_at + self.timeout_ms / 1000


def v2_timeout_ms(requested_ms: int) -> int:
    return min(requested_ms, V2_MAX_TIMEOUT_MS) or V2_DEFAULT_TIMEOUT_MS


def may_be_durable(open_: Open) -> bool:
    """A batch oplock or a lease with H on a regular file (Samba's get_cookie and durable_cookie checks)."""
    return not open_.is_directory and open_.pipe is None and bool(caching_of(open_) & H)


class DurableOpens:
    """The durable opens and the DH2Q replay cache of one server, by persistent FileId and by
    (ClientGuid, CreateGuid) ([MS-SMB2] 3.3.1.5 GlobalOpenTable, Open.CreateGuid)."""

    def __init__(self) -> None:
        self._by_id: dict[int, Durable] = {}
        self._by_create_guid: dict[tuple[bytes, bytes], Durable] = {}
        # (ClientGuid, CreateGuid) of DH2Q creates waiting for a break: not answered, no open yet.
        self.pending: set[tuple[bytes, bytes]] = set()

    def __len__(self) -> int:
        return len(self._by_id)

    # -- CREATE ---------------------------------------------------------------------------------------------

    def remember(self, record: Durable) -> None:
        """A new open made with DH2Q (durable or not) or granted DHnQ."""
        self._by_id[record.open_.file_id[0]] = record
        if record.create_guid is not None:
            self._by_create_guid[(record.client_guid, record.create_guid)] = record

    def by_create_guid(self, client_guid: bytes, create_guid: bytes) -> Durable | None:
        return self._by_create_guid.get((client_guid, create_guid))

    @property
    def replayable(self) -> bool:
        """Whether any create can still be replayed (the dispatcher's cheap test before used())."""
        return bool(self._by_create_guid)

    def used(self, open_: Open) -> None:
        """A request other than its CREATE acted on the open: the create can no longer be replayed (Samba's
        SMBXSRV_OPEN_NEED_REPLAY_CACHE; smbtorture smb2.replay.replay6). A reconnect still finds the open."""
        record = self.of(open_)
        if record is not None and record.create_guid is not None and \
                self._by_create_guid.get((record.client_guid, record.create_guid)) is record:
            del self._by_create_guid[(record.client_guid, record.create_guid)]

    def get(self, persistent_id: int) -> Durable | None:
        return self._by_id.get(persistent_id)

    def of(self, open_: Open) -> Durable | None:
        record = self._by_id.get(open_.file_id[0])
        return record if record is not None and record.open_ is open_ else None

    # -- connection loss and reconnect ------------------------------------------------------------------------

    def disconnect(self, open_: Open, now: float) -> bool:
        """The open's connection is gone: True when it stays, disconnected, until `now` + its timeout
        ([MS-SMB2] 3.3.7.1); False when the caller must close it (Samba's vfs_default_durable_disconnect)."""
        record = self.of(open_)
        if record is None or not record.durable or not may_be_durable(open_):
            return False
        if open_.delete_on_close or open_.link is not None and open_.link.delete_pending:
            return False
        if open_.lease is not None and open_.lease.breaking or open_.oplock_breaking_to >= 0:
            # A break was sent on the lost connection and nobody is left to acknowledge it: kept, the open
            # would hold the opener that caused the break for the whole break timeout (smbtorture
            # smb2.durable-open.lease when its second open overtakes the first connection's end).
            return False
        if open_.file is not None and open_.file.locks.owned_by(open_) and not caching_of(open_) & W:
            return False
        record.disconnected_at = now
        open_.connection = None
        return True

    def is_disconnected(self, open_: Open) -> bool:
        record = self.of(open_)
        return record is not None and record.disconnected_at is not None

    def reconnected(self, record: Durable) -> None:
        record.disconnected_at = None

    def forget(self, open_: Open) -> None:
        """The open closed (FileTable.close)."""
        record = self.of(open_)
        if record is None:
            return
        del self._by_id[open_.file_id[0]]
        if record.create_guid is not None and \
                self._by_create_guid.get((record.client_guid, record.create_guid)) is record:
            del self._by_create_guid[(record.client_guid, record.create_guid)]

    # -- the scavenger ----------------------------------------------------------------------------------------

    def expired(self, now: float) -> list[Open]:
        """Disconnected opens whose timeout has passed: the caller closes them."""
        return [record.open_ for record in self._by_id.values()
                if record.deadline is not None and record.deadline <= now]

    def next_deadline(self) -> float | None:
        deadlines = [record.deadline for record in self._by_id.values() if record.deadline is not None]
        return min(deadlines) if deadlines else None

    def disconnected(self) -> list[Durable]:
        return [record for record in self._by_id.values() if record.disconnected_at is not None]
