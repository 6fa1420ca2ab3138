"""FileRenameInformation through the handle of a named stream ([MS-FSA] 2.1.5.15.11): the stream gets another
name of the same file, ":new" or ":new:$DATA"; its data moves with it (fs/streams.py), and so do the stream's
opens, sharing and delete-pending (files/table.py rekeys them).
"""

from __future__ import annotations

import stat

from smbsrv.files.table import FileTable
from smbsrv.fs import backend, dos_attrs, streams
from smbsrv.fs.handle import StreamHandle
from smbsrv.fs.name_index import fold
from smbsrv.fs.path import SmbPath
from smbsrv.fscc import set_info as classes
from smbsrv.fscc.notify import Action, Filter
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.wire.constants import FILE_WRITE_DATA
from smbsrv.wire.status import NtStatus


def rename(ctx: RequestContext, open_: Open, request: classes.RenameInformation) -> None:
    handle = open_.handle
    assert isinstance(handle, StreamHandle) and ctx.tree is not None
    replace = request.replace_if_exists or bool(request.flags & classes.FILE_RENAME_REPLACE_IF_EXISTS)
    name = request.file_name
    if not name.startswith(":"):
        # A path names another file: a stream cannot become one. With a stream in it Windows answers
        # SHARING_VIOLATION (smbtorture smb2.streams.rename2), else INVALID_PARAMETER.
        target = SmbPath.parse(name.lstrip("\\"), posix=False)
        raise SmbError(NtStatus.STATUS_SHARING_VIOLATION if target.stream is not None
                       else NtStatus.STATUS_INVALID_PARAMETER)
    new = SmbPath.parse("x" + name, posix=False).stream  # the stream part alone, checked as a CREATE checks it
    files = ctx.connection.server.files
    if new is None:
        _to_unnamed_stream(files, handle, replace)
        return
    if not streams.storable(new):
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_INVALID)  # no xattr name holds it (fs/streams.py storable)
    existing = streams.find(handle.fd, new)
    if existing is not None and fold(existing) != fold(handle.stream):
        if not replace:
            raise SmbError(NtStatus.STATUS_OBJECT_NAME_COLLISION)
        if files.opens(handle.key[:2] + (fold(existing),)):
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)  # as a rename over an open file
    old_path = open_.named_components
    streams.rename(handle.fd, handle.stream, new)
    if existing is not None and existing != new and fold(existing) != fold(handle.stream):
        streams.remove(handle.fd, existing)  # the replaced stream, spelled in another case than the new name
    new_key = handle.key[:2] + (fold(new),)
    for other in list(files.opens(handle.key)):
        assert isinstance(other.handle, StreamHandle)
        other.handle.stream = new
        files.rekey(other, new_key)
        if other.lease is not None:
            other.lease.file_key = new_key  # its break acknowledgments wake the opens waiting on the stream
    changes = files.changes
    changes.changed(ctx.tree, old_path, Action.REMOVED_STREAM, Filter.STREAM_NAME, origin=open_)
    changes.changed(ctx.tree, open_.named_components, Action.ADDED_STREAM, Filter.STREAM_NAME, origin=open_)


def _to_unnamed_stream(files: FileTable, handle: StreamHandle, replace: bool) -> None:
    """"::$DATA" as the new name: the stream's data becomes the file's own, when the file holds none ([MS-FSA]
    2.1.5.15.12.1; smbtorture smb2.streams.rename2). A file with data is never replaced by a stream
    (OBJECT_NAME_COLLISION), nor one that is open (SHARING_VIOLATION: its handles would see the data change
    under them) or read-only. The handle stays an open of the stream, which is gone."""
    if not replace:
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_COLLISION)
    st = handle.stat()
    if not stat.S_ISREG(st.st_mode):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)  # a directory has no unnamed data stream
    if st.st_size:
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_COLLISION)
    if files.opens(handle.key[:2]):
        raise SmbError(NtStatus.STATUS_SHARING_VIOLATION)
    if dos_attrs.is_read_only(handle.parent_fd, handle.name, st):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    data = streams.read(handle.fd, handle.stream)
    fd = backend.open_for_access(handle.parent_fd, handle.name, FILE_WRITE_DATA, is_directory=False,
                                 is_special=False)
    try:
        if backend.fstat(fd).st_ino != st.st_ino:  # the name was given to another file meanwhile
            raise SmbError(NtStatus.STATUS_SHARING_VIOLATION)
        backend.pwrite_all(fd, data, 0)
    finally:
        backend.close(fd)
    streams.remove(handle.fd, handle.stream)
