"""Reparse tag handlers: what an open that meets a reparse point gets ([MS-FSCC] 2.1.2, [MS-SMB2] 3.3.5.9).

CREATE consults this registry at its end, once it knows the object carries a reparse point and the open did
not ask for FILE_OPEN_REPARSE_POINT. A tag with a handler of its own is one module here; every other tag gets
STATUS_IO_REPARSE_TAG_NOT_HANDLED, because no filter on this server interprets it.
"""

from __future__ import annotations

from collections.abc import Callable

from smbsrv.errors import SmbError
from smbsrv.reparse import symlink
from smbsrv.wire.status import NtStatus

# tag -> (buffer, UnparsedPathLength) -> the error that answers the open
OpenRefusal = Callable[[bytes, int], SmbError]

_HANDLERS: dict[int, OpenRefusal] = {
    symlink.TAG: symlink.refuse_open,
}


def refuse_open(tag: int, buffer: bytes, unparsed_path_length: int = 0) -> SmbError:
    handler = _HANDLERS.get(tag)
    if handler is None:
        return SmbError(NtStatus.STATUS_IO_REPARSE_TAG_NOT_HANDLED)
    return handler(buffer, unparsed_path_length)
