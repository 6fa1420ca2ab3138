"""Resume keys of server-side copy ([MS-SMB2] 3.3.5.15.5, 3.3.5.15.6): a 24-byte key names one open, the source
that a later FSCTL_SRV_COPYCHUNK(_WRITE) on another handle reads from.

A key is random, so a client cannot name another client's open by guessing file ids; it stays the same for the
life of its open (Windows and Samba answer the same key twice) and dies with it: the tables hold the opens
weakly, and a closed open is never returned. Keys are unique in the process, so one table serves every server
in it. These two functions are the only code that knows where keys live (the per-file state refactor of issue 12
can move them next to the open).
"""

from __future__ import annotations

import os
import weakref

from smbsrv.protocol.objects import Open
from smbsrv.wire.copychunk import RESUME_KEY_SIZE

_key_of_open: weakref.WeakKeyDictionary[Open, bytes] = weakref.WeakKeyDictionary()
_open_of_key: weakref.WeakValueDictionary[bytes, Open] = weakref.WeakValueDictionary()


def key_for(open_: Open) -> bytes:
    key = _key_of_open.get(open_)
    if key is None:
        key = os.urandom(RESUME_KEY_SIZE)
        _key_of_open[open_] = key
        _open_of_key[key] = open_
    return key


def source_open(key: bytes) -> Open | None:
    """The open that `key` names, None when there is none (never handed out, or closed since)."""
    open_ = _open_of_key.get(bytes(key))
    if open_ is None or open_.closed:
        return None
    return open_
