"""CREATE of a named stream, "file:name" or "file:name:$DATA" ([MS-FSA] 2.1.5.1 with StreamNameToOpen).

commands/create.py resolves the file the stream belongs to, with every check a name gets (symlinks, reparse
points in the path, the share's bounds), and hands over here. A stream shares its file's security: the access a
stream open gets is what the user may do to the file ([MS-FSA] 2.1.5.1.2.1 checks the file's security
descriptor). Its sharing, locks and delete-pending are the stream's own (files/table.py keys them by the file and
the stream's name). A stream of a file that does not exist yet creates the file first, as on NTFS. The data
lives in an xattr of the file (fs/streams.py). Oplocks and leases are the stream's own too: an open of the file
breaks none of its streams' (Samba 4.17; smbtorture smb2.oplock.batch26).
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from smbsrv import reparse
from smbsrv.files import oplocks
from smbsrv.fs import backend, dos_attrs, streams
from smbsrv.fs.handle import StreamHandle
from smbsrv.fs.name_index import fold
from smbsrv.fs.share_modes import maximal_access, resolve_desired_access
from smbsrv.fscc import attributes as fattr
from smbsrv.fscc.notify import Action, Filter
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.wire import create as wire
from smbsrv.wire.constants import (
    DELETE,
    FILE_APPEND_DATA,
    FILE_CREATE,
    FILE_CREATED,
    FILE_DELETE_ON_CLOSE,
    FILE_DIRECTORY_FILE,
    FILE_OPEN,
    FILE_OPEN_REPARSE_POINT,
    FILE_OPENED,
    FILE_OVERWRITE,
    FILE_OVERWRITE_IF,
    FILE_OVERWRITTEN,
    FILE_READ_DATA,
    FILE_SUPERSEDE,
    FILE_SUPERSEDED,
    FILE_WRITE_DATA,
)
from smbsrv.wire.oplock import LeaseRequest
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.commands.create import _Target
    from smbsrv.fs.resolver import Resolution

_FULL_ACCESS = 0x1F01FF
_KEEP_ON_OVERWRITE = fattr.FILE_ATTRIBUTE_HIDDEN | fattr.FILE_ATTRIBUTE_SYSTEM
_OVERWRITES = (FILE_SUPERSEDE, FILE_OVERWRITE, FILE_OVERWRITE_IF)


def open_stream(ctx: RequestContext, request: wire.CreateRequest, target: _Target, stream: str,
                lease: LeaseRequest | None, first_attempt: bool) -> bytes:
    from smbsrv.commands import create  # the reply and the file checks are CREATE's own

    tree, session = ctx.tree, ctx.session
    assert tree is not None and session is not None
    options, disposition = request.create_options, request.create_disposition
    if options & FILE_DIRECTORY_FILE:
        # A data stream is never a directory ([MS-FSA] 2.1.5.1.2: StreamTypeToOpen DataStreamType with
        # FILE_DIRECTORY_FILE).
        raise SmbError(NtStatus.STATUS_NOT_A_DIRECTORY)
    if not target.exists:
        if disposition in (FILE_OPEN, FILE_OVERWRITE) or not streams.storable(stream):
            raise SmbError(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND)
        return _create_with_file(ctx, request, target, stream, lease)
    resolution = target.resolution
    st = resolution.stat
    assert st is not None
    if target.reparse_tag and not options & FILE_OPEN_REPARSE_POINT:
        raise reparse.refuse_open(target.reparse_tag, create._reparse_buffer(tree, target))
    if target.is_special:
        # Symlinks, fifos, sockets and devices carry no user xattrs, so no streams.
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND)
    files = ctx.connection.server.files
    if files.is_name_delete_pending((st.st_dev, st.st_ino), tree.share_root, resolution.components):
        raise SmbError(NtStatus.STATUS_DELETE_PENDING)  # any stream of a file whose delete is pending (Samba 4.17)
    maximum = maximal_access(st.st_mode, st.st_uid, st.st_gid, session.uid, session.gid, session.groups,
                             read_only_share=tree.read_only,
                             may_delete=create._may_delete_in(resolution, st, session, None),
                             acl=create._posix_acl(resolution, st, session.uid))
    if target.attributes & fattr.FILE_ATTRIBUTE_READONLY:
        maximum &= ~(FILE_WRITE_DATA | FILE_APPEND_DATA)  # [MS-FSA] 2.1.5.1.2.1, as for the file's own data
    granted = resolve_desired_access(request.desired_access, maximum)
    fd = backend.open_for_access(resolution.parent_fd, resolution.name, 0, is_directory=target.is_directory,
                                 is_special=False)
    try:
        stored = streams.find(fd, stream)
        if stored is not None and not maximum & FILE_READ_DATA:
            # A user who may not read the file does not see its streams (FileStreamInformation lists none
            # then): opening one is OBJECT_NAME_NOT_FOUND, as on Samba 4.17, and it is never created over.
            raise SmbError(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND if disposition in (FILE_OPEN, FILE_OVERWRITE)
                           else NtStatus.STATUS_ACCESS_DENIED)
        if stored is not None and disposition == FILE_CREATE:
            raise SmbError(NtStatus.STATUS_OBJECT_NAME_COLLISION)
        if stored is None and (disposition in (FILE_OPEN, FILE_OVERWRITE) or not streams.storable(stream)):
            # A name too long for an xattr cannot exist, nor be created (Samba 4.17 answers the same).
            raise SmbError(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND)
        key = (st.st_dev, st.st_ino, fold(stream))
        if files.is_name_delete_pending(key, tree.share_root, resolution.components):
            # This stream's delete: after the name checks (FILE_CREATE of it is a collision, as of a delete-pending
            # file), before the checks of what the disposition writes (Samba 4.17 answers so).
            raise SmbError(NtStatus.STATUS_DELETE_PENDING)
        existed = stored is not None
        overwrite = existed and disposition in _OVERWRITES
        if (stored is None or overwrite) and not maximum & FILE_WRITE_DATA:
            # Adding a stream, or emptying one, writes the file.
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
        if overwrite and target.attributes & ~request.file_attributes & _KEEP_ON_OVERWRITE:
            # [MS-FSA] 2.1.5.1.2.1: an overwrite must keep saying HIDDEN and SYSTEM, a stream's as the file's.
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
        if options & FILE_DELETE_ON_CLOSE and not granted & DELETE:
            raise SmbError(create.DELETE_ON_CLOSE_WITHOUT_DELETE)
        if options & FILE_DELETE_ON_CLOSE and target.attributes & fattr.FILE_ATTRIBUTE_READONLY:
            raise SmbError(NtStatus.STATUS_CANNOT_DELETE)  # [MS-FSA] 2.1.5.1.2.1: File.FileAttributes decide
        conflicts_as = granted | FILE_WRITE_DATA if overwrite else granted
        if lease is not None:
            oplocks.check_lease_key(files, ctx.connection.client_guid, lease.lease_key, key)
        # The stream's own opens only; their oplocks and leases break as a file's do.
        create.check_sharing(ctx, files.get(key), conflicts_as, request.share_access, overwrite=overwrite,
                             lease=lease, first_attempt=first_attempt)
        if stored is None:
            stored = stream
            streams.write(fd, stored, b"")
            action = FILE_CREATED
        elif overwrite:
            streams.truncate(fd, stored, 0)
            _overwrite_attributes(resolution, request.file_attributes, st)
            action = FILE_SUPERSEDED if disposition == FILE_SUPERSEDE else FILE_OVERWRITTEN
        else:
            action = FILE_OPENED
        open_ = _register(ctx, request, target, fd, key, stored, granted, lease, existed)
    except BaseException:
        backend.close(fd)
        raise
    _notify(ctx, open_, action)
    return create._reply(ctx, request, open_, backend.fstat(fd), action, maximum, None)


def _create_with_file(ctx: RequestContext, request: wire.CreateRequest, target: _Target, stream: str,
                      lease: LeaseRequest | None) -> bytes:
    """The file does not exist: it is created (empty, with the request's attributes) and the stream with it."""
    from smbsrv.commands import create

    tree = ctx.tree
    assert tree is not None
    if tree.read_only:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    granted = resolve_desired_access(request.desired_access, _FULL_ACCESS)
    if request.create_options & FILE_DELETE_ON_CLOSE and not granted & DELETE:
        raise SmbError(create.DELETE_ON_CLOSE_WITHOUT_DELETE)
    if request.create_options & FILE_DELETE_ON_CLOSE and request.file_attributes & fattr.FILE_ATTRIBUTE_READONLY:
        raise SmbError(NtStatus.STATUS_CANNOT_DELETE)  # [MS-FSA] 2.1.5.1.1, as for a new file (Samba 4.17)
    if lease is not None:
        oplocks.check_lease_key(ctx.connection.server.files, ctx.connection.client_guid, lease.lease_key, None)
    resolution = target.resolution
    made = backend.create_at(resolution.parent_fd, resolution.name,
                             create._WINDOWS_FILE_MODE & tree.share.create_mask)
    try:
        attributes = request.file_attributes & ~(fattr.FILE_ATTRIBUTE_NORMAL | fattr.FILE_ATTRIBUTE_SPARSE_FILE
                                                 | fattr.FILE_ATTRIBUTE_DIRECTORY)
        dos_attrs.initialise(made, attributes | fattr.FILE_ATTRIBUTE_ARCHIVE, backend.fstat(made))
        streams.write(made, stream, b"")
        # The stream's handle holds the file by an O_PATH fd, as for an existing file: never an open for data of
        # the file itself (its byte-range locks would be mirrored onto the file's, files/locks.py).
        fd = backend.open_for_access(resolution.parent_fd, resolution.name, 0, is_directory=False, is_special=False)
    except BaseException:
        backend.close(made)
        backend.unlink_at(resolution.parent_fd, resolution.name)
        raise
    backend.close(made)
    tree.share_root.note_created(resolution.parent_fd, resolution.name)
    ctx.connection.server.files.changes.changed(tree, resolution.components, Action.ADDED, Filter.FILE_NAME,
                                                origin=None)
    st = backend.fstat(fd)
    try:
        open_ = _register(ctx, request, target, fd, (st.st_dev, st.st_ino, fold(stream)), stream, granted, lease,
                          False)
    except BaseException:
        backend.close(fd)
        raise
    _notify(ctx, open_, FILE_CREATED)
    return create._reply(ctx, request, open_, st, FILE_CREATED, _FULL_ACCESS, None)


def _overwrite_attributes(resolution: Resolution, requested: int, st: os.stat_result) -> None:
    """An overwrite gives the file the attributes it asks for, with ARCHIVE ([MS-FSA] 2.1.5.1.2.1; Samba 4.17
    does so for a stream's overwrite too): the attributes are the file's, whichever stream is overwritten."""
    current = dos_attrs.read_at(resolution.parent_fd, resolution.name, st)
    attributes = requested & ~(fattr.FILE_ATTRIBUTE_NORMAL | fattr.FILE_ATTRIBUTE_SPARSE_FILE
                               | fattr.FILE_ATTRIBUTE_DIRECTORY) | fattr.FILE_ATTRIBUTE_ARCHIVE
    if stat.S_ISDIR(st.st_mode):
        attributes |= fattr.FILE_ATTRIBUTE_DIRECTORY
    if current is None or current.attributes != attributes:
        fd = backend.open_for_access(resolution.parent_fd, resolution.name, 0, is_directory=stat.S_ISDIR(st.st_mode),
                                     is_special=False)
        try:
            dos_attrs.set_attributes(fd, attributes, backend.fstat(fd))  # the creation time stays
        finally:
            backend.close(fd)


def _register(ctx: RequestContext, request: wire.CreateRequest, target: _Target, fd: int,
              key: tuple[int, int, str], stream: str, granted: int, lease: LeaseRequest | None,
              existed: bool) -> Open:
    from smbsrv.commands import create

    resolution = target.resolution
    handle = StreamHandle(fd, resolution.take_parent_fd(), resolution.name, key, stream=stream)
    return create.register_open(ctx, request, handle, resolution.components, granted, lease, existed=existed)


def _notify(ctx: RequestContext, open_: Open, action: int) -> None:
    """FILE_ACTION_ADDED_STREAM / MODIFIED_STREAM for "file:stream" ([MS-FSCC] 2.7.1), as NTFS reports them."""
    if action == FILE_OPENED:
        return
    ctx.connection.server.files.changes.changed(
        ctx.tree, open_.named_components, Action.ADDED_STREAM if action == FILE_CREATED else Action.MODIFIED_STREAM,
        Filter.STREAM_NAME if action == FILE_CREATED else Filter.STREAM_SIZE, origin=open_)
