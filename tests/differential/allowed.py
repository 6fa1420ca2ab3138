"""Differences between smbsrv and Samba 4.17 that are deliberate, each with its reason.

Each entry matches one kind of step, the exact pair of statuses (Samba's, smbsrv's) and a condition on the
operation and the two records, so that it cannot cover a difference it was not written for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.differential.ops import Op

Record = tuple


@dataclass(frozen=True)
class Allowed:
    kind: str
    samba_status: str
    smbsrv_status: str
    condition: Callable[[Op | None, Record, Record], bool]
    reason: str


ALLOWED: tuple[Allowed, ...] = ()


def reason(op: Op | None, samba: Record, smbsrv: Record) -> str | None:
    """The reason this difference is allowed, or None."""
    for entry in ALLOWED:
        if (samba[0] == smbsrv[0] == entry.kind and samba[1] == entry.samba_status
                and smbsrv[1] == entry.smbsrv_status and entry.condition(op, samba, smbsrv)):
            return entry.reason
    return None
