"""FSCTL_SET/GET/DELETE_REPARSE_POINT ([MS-FSCC] 2.3.62, 2.3.82, 2.3.6; [MS-FSA] 2.1.5.10).

A client-set reparse point is an opaque blob kept with a regular file or an empty directory (fs.reparse_store)
plus FILE_ATTRIBUTE_REPARSE_POINT in the DOS attributes; the server never makes it a real symlink or device.
Real symlinks, FIFOs, sockets and devices have synthesized buffers that GET returns and SET/DELETE cannot
change (Linux keeps no xattrs on them).
"""

from __future__ import annotations

import os
import stat

from smbsrv.fscc import attributes as fattr
from smbsrv.fscc.notify import Action, Filter
from smbsrv.fscc.reparse import parse, reparse_tag_of, validate_delete_buffer, validate_set_buffer
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.protocol.reply import Reply
from smbsrv.reparse import materialize
from smbsrv.wire import ioctl as wire
from smbsrv.wire.constants import (
    FILE_READ_DATA,
    FILE_WRITE_ATTRIBUTES,
    FILE_WRITE_DATA,
    FSCTL_DELETE_REPARSE_POINT,
    FSCTL_GET_REPARSE_POINT,
    FSCTL_SET_REPARSE_POINT,
)
from smbsrv.wire.status import NtStatus

_HEADER_SIZE = 8
_GUID_HEADER_SIZE = 24  # REPARSE_GUID_DATA_BUFFER, for tags without the Microsoft bit


def get_reparse_point(ctx: RequestContext, open_: Open, request: wire.IoctlRequest) -> bytes | Reply:
    buffer = open_.reparse_buffer()
    if buffer is None:
        raise SmbError(NtStatus.STATUS_NOT_A_REPARSE_POINT)
    header_size = _HEADER_SIZE if fattr.is_reparse_tag_microsoft(reparse_tag_of(buffer)) else _GUID_HEADER_SIZE
    if request.max_output_response < header_size:
        raise SmbError(NtStatus.STATUS_BUFFER_TOO_SMALL)
    if len(buffer) > request.max_output_response:
        # [MS-FSA] 2.1.5.10.14: what fits, and STATUS_BUFFER_OVERFLOW.
        return Reply(buffer[:request.max_output_response], status=NtStatus.STATUS_BUFFER_OVERFLOW)
    return buffer


def _check_writable(ctx: RequestContext, open_: Open) -> os.stat_result:
    assert ctx.tree is not None
    if ctx.tree.read_only or not open_.granted_access & (FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    st = open_.handle.stat()
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        # A real symlink or special file on the server: its reparse data is what it is on disk.
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    return st


def _set_reparse_attribute(open_: Open, present: bool) -> None:
    attributes = open_.info().attributes
    if present:
        attributes |= fattr.FILE_ATTRIBUTE_REPARSE_POINT
    else:
        attributes &= ~fattr.FILE_ATTRIBUTE_REPARSE_POINT
    open_.handle.set_dos_info(attributes, None)


def set_reparse_point(ctx: RequestContext, open_: Open, request: wire.IoctlRequest) -> bytes:
    if open_.stream is not None:
        # A reparse point belongs to a file or directory, not to one of its named streams (Samba 4.17 answers
        # this; setting it through the stream would turn the file into a link).
        raise SmbError(NtStatus.STATUS_NOT_A_REPARSE_POINT)
    tag, buffer = validate_set_buffer(request.input)
    st = _check_writable(ctx, open_)
    existing = open_.reparse_buffer()
    if existing is not None and reparse_tag_of(existing) != tag:
        raise SmbError(NtStatus.STATUS_IO_REPARSE_TAG_MISMATCH)
    if stat.S_ISDIR(st.st_mode) and existing is None and open_.handle.has_entries(bool(open_.granted_access & FILE_READ_DATA)):
        raise SmbError(NtStatus.STATUS_DIRECTORY_NOT_EMPTY)
    parse(buffer)  # tag-specific layout was checked; this proves the stored blob will parse when read back
    if existing is None and materialize.try_materialize(ctx.connection.server, open_, st, buffer):
        open_.reparse_tag = tag
        _changed(ctx, open_)
        return b""
    open_.tree.reparse_store.set(open_.handle.fd, buffer)
    _set_reparse_attribute(open_, True)
    open_.reparse_tag = tag
    _changed(ctx, open_)
    return b""


def _changed(ctx: RequestContext, open_: Open) -> None:
    """A reparse point set or removed is an attribute change to watchers (FILE_ATTRIBUTE_REPARSE_POINT)."""
    ctx.connection.server.files.changes.changed(open_.tree, open_.path_components, Action.MODIFIED,
                                                Filter.ATTRIBUTES, open_.is_directory)


def delete_reparse_point(ctx: RequestContext, open_: Open, request: wire.IoctlRequest) -> bytes:
    _check_writable(ctx, open_)
    existing = open_.reparse_buffer()
    if existing is None:
        raise SmbError(NtStatus.STATUS_NOT_A_REPARSE_POINT)
    stored_tag = reparse_tag_of(existing)
    stored_guid = existing[8:24] if not fattr.is_reparse_tag_microsoft(stored_tag) else None
    validate_delete_buffer(request.input, stored_tag, stored_guid)
    open_.tree.reparse_store.remove(open_.handle.fd)
    _set_reparse_attribute(open_, False)
    open_.reparse_tag = 0
    _changed(ctx, open_)
    return b""


CONTROLS = {
    FSCTL_GET_REPARSE_POINT: get_reparse_point,
    FSCTL_SET_REPARSE_POINT: set_reparse_point,
    FSCTL_DELETE_REPARSE_POINT: delete_reparse_point,
}
