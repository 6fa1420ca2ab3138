"""Where placeholder content lives: one module per kind of provider behind one small interface.

A provider is used from worker threads only (its calls block); every call is the server's own work, never
made with a client's identity. Errors come in two kinds, because clients see them differently:
`ProviderUnavailable` (cannot be reached: STATUS_CLOUD_FILE_PROVIDER_NOT_RUNNING) and `ProviderError` (it
answered, but not with what the mark describes: STATUS_CLOUD_FILE_UNSUCCESSFUL).

Every request is logged at INFO as one `hsm request` line (provider, operation, key, range): operators see
what a client's access cost, and the tests count exactly those lines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

log = logging.getLogger("smbsrv.hsm.provider")

# Pieces a whole-object fetch yields: large enough to keep a 1 GiB fetch at a few hundred calls, small enough
# that a range request behind a hydration waits little.
CHUNK_BYTES = 8 * 1024 * 1024


class ProviderUnavailable(OSError):
    """The provider cannot be reached (unmounted cold tier, object store down)."""


class ProviderError(Exception):
    """The provider answered, but not with the object the mark names (missing, other size, other version)."""


class Provider(Protocol):
    provider_id: str
    kind: str

    def fetch_range(self, key: str, offset: int, length: int) -> bytes:
        """Bytes [offset, offset + length) of the object (fewer only at its end)."""

    def fetch(self, key: str, size: int) -> Iterator[bytes]:
        """The whole object in order, in pieces of about CHUNK_BYTES."""

    def store(self, key: str, fd: int, size: int) -> str:
        """Upload `size` bytes read from `fd` (from offset 0); returns the version or ETag now stored."""

    def stat(self, key: str) -> tuple[int, str] | None:
        """(size, version or ETag) of the object, None when there is none."""

    def delete(self, key: str) -> None:
        """Remove the object (no error when it is already gone)."""

    def health(self) -> None:
        """Returns when the provider answers; raises ProviderUnavailable otherwise."""


def log_request(provider: Provider, operation: str, key: str, offset: int = 0, length: int = -1) -> None:
    log.info("hsm request provider=%s op=%s key=%s offset=%d length=%d", provider.provider_id, operation, key,
             offset, length)
