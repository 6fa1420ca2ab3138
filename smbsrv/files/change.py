"""One change of a name in a share: what the change feed (files/notify.py) carries from its publishers (this
server's commands, the kernel feed of files/kernel_feed.py) to its subscribers (CHANGE_NOTIFY watches, oplock
and lease breaks). Its own module so that the feed and its sources do not import each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Change:
    """One name changed. `root` is the share directory's real path, `directory` the components of the
    directory the name is in (relative to root), `filter` the CompletionFilter bits the change matches.
    `moved_to` is set on the old name of a directory renamed within the share: its new components, so that
    watches on it and below it follow it."""

    root: str
    directory: tuple[str, ...]
    name: str
    action: int
    filter: int
    is_dir: bool = False
    moved_to: tuple[str, ...] | None = None
    local: bool = False  # made outside this server (reported by the kernel feed): breaks oplocks and leases
    # The open (protocol.objects.Open) this server's change was made through; None for changes made outside
    # SMB. A directory lease its ParentLeaseKey names is not broken by the change ([MS-FSA] 2.1.4.12.2).
    origin: Any = field(default=None, compare=False)
