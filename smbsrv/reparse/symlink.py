"""IO_REPARSE_TAG_SYMLINK: the open stops and the client resolves the link ([MS-SMB2] 2.2.2.2.1).

The server never follows a symlink, neither a real one on disk nor one a client stored; it returns the
target in the symbolic link error response and the client decides where that leads.
"""

from __future__ import annotations

from smbsrv.errors import SmbError
from smbsrv.fscc.attributes import IO_REPARSE_TAG_SYMLINK
from smbsrv.fscc.reparse import SymlinkReparse, build_symlink_error, parse
from smbsrv.wire.status import NtStatus

TAG = IO_REPARSE_TAG_SYMLINK
SYMLINK_FLAG_RELATIVE = 0x1


def refuse_open(buffer: bytes, unparsed_path_length: int) -> SmbError:
    link = parse(buffer)
    assert isinstance(link, SymlinkReparse)
    data = build_symlink_error(link.substitute_name, link.print_name, bool(link.flags & SYMLINK_FLAG_RELATIVE),
                               unparsed_path_length)
    return SmbError(NtStatus.STATUS_STOPPED_ON_SYMLINK, data)
