"""SET_INFO ([MS-SMB2] 3.3.5.21; [MS-FSA] 2.1.5.15): times and attributes, size, rename and link, delete
disposition, and security (POSIX chmod, ownership)."""

from __future__ import annotations

import os
import secrets
import stat

from smbsrv.commands import oplock_break, stream_rename
from smbsrv.files import write_time
from smbsrv.files.table import FileTable
from smbsrv.fs import backend, dos_attrs, eas, posix_acl
from smbsrv.fs.name_index import fold
from smbsrv.fs.path import SmbPath
from smbsrv.fs.resolver import SymlinkMet
from smbsrv.fs.share_modes import acl_can_matter, check_share_access, maximal_access
from smbsrv.fscc import set_info as classes
from smbsrv.fscc.file_info import FileInformationClass as C
from smbsrv.fscc.notify import Action, Filter
from smbsrv.fscc.security import (
    DACL_SECURITY_INFORMATION,
    GROUP_SECURITY_INFORMATION,
    OWNER_SECURITY_INFORMATION,
    SE_DACL_PRESENT,
    parse_descriptor,
)
from smbsrv.fscc.times import FILETIME_RESUME_UPDATES, FILETIME_STOP_UPDATES, filetime_to_unix_ns, time_to_set
from smbsrv.hsm import access as hsm_access
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.wire import query as wire
from smbsrv.wire.constants import (
    DELETE,
    FILE_APPEND_DATA,
    FILE_READ_DATA,
    FILE_SHARE_READ,
    FILE_SHARE_WRITE,
    FILE_WRITE_ATTRIBUTES,
    FILE_WRITE_DATA,
    FILE_WRITE_EA,
    SMB2_0_INFO_FILE,
    SMB2_0_INFO_FILESYSTEM,
    SMB2_0_INFO_SECURITY,
    SYNCHRONIZE,
    WRITE_DAC,
    WRITE_OWNER,
)
from smbsrv.wire.status import NtStatus

FILE_ATTRIBUTE_READONLY = 0x00000001
FILE_ATTRIBUTE_DIRECTORY = 0x00000010
FILE_ATTRIBUTE_TEMPORARY = 0x00000100


def handle(ctx: RequestContext, request: wire.SetInfoRequest) -> bytes:
    open_ = ctx.open
    assert open_ is not None and ctx.tree is not None
    if open_.pipe is not None:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    if ctx.tree.read_only:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if request.info_type == SMB2_0_INFO_FILE:
        _set_file_info(ctx, open_, request)
    elif request.info_type == SMB2_0_INFO_SECURITY:
        _set_security(ctx, open_, request)
    elif request.info_type == SMB2_0_INFO_FILESYSTEM:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    else:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    return wire.SET_INFO_RESPONSE


def _changed(ctx: RequestContext, open_: Open, filter_: int) -> None:
    """Tell change notification (files/notify.py) that this open's file changed in `filter_` ways."""
    if filter_:
        ctx.connection.server.files.changes.changed(ctx.tree, open_.path_components, Action.MODIFIED, filter_,
                                                    open_.is_directory, origin=open_)


def _require(open_: Open, access: int) -> None:
    if not open_.granted_access & access:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)


def _set_file_info(ctx: RequestContext, open_: Open, request: wire.SetInfoRequest) -> None:
    info_class = request.file_info_class
    decoded = classes.decode(info_class, request.buffer)
    if ctx.tree is not None and ctx.tree.share.hsm_provider and isinstance(
            decoded, classes.EndOfFileInformation | classes.AllocationInformation):
        hsm_access.before_truncate(ctx, open_, decoded, lambda: handle(ctx, request))  # placeholders: docs/hsm.md
    if isinstance(decoded, classes.BasicInformation):
        _require(open_, FILE_WRITE_ATTRIBUTES)
        _set_basic(open_, decoded)
        write_time.update_now(open_)  # a handle that wrote shows its LastWriteTime now (Samba)
        _changed(ctx, open_, (Filter.ATTRIBUTES if decoded.file_attributes else 0)
                 | (Filter.LAST_WRITE if time_to_set(decoded.last_write_time) is not None else 0)
                 | (Filter.LAST_ACCESS if time_to_set(decoded.last_access_time) is not None else 0)
                 | (Filter.CREATION if time_to_set(decoded.creation_time) is not None else 0))
    elif isinstance(decoded, classes.EndOfFileInformation):
        _require(open_, FILE_WRITE_DATA)
        oplock_break.break_for_write(ctx.connection.server, open_)  # read caches go (Samba's vfs_set_filelen)
        same_size = not open_.is_directory and open_.handle.size() == decoded.end_of_file
        _truncate(open_, decoded.end_of_file)
        # LastWriteTime now (files/write_time.py); the same size counts only for a handle that wrote (Samba).
        write_time.update_now(open_, only_if_written=same_size)
        _changed(ctx, open_, Filter.SIZE | Filter.ATTRIBUTES)  # as Samba's vfs_set_filelen
    elif isinstance(decoded, classes.AllocationInformation):
        _require(open_, FILE_WRITE_DATA)
        oplock_break.break_for_write(ctx.connection.server, open_)
        # [MS-FSA] 2.1.5.15.1: allocation below the end of file cuts the file; at or above it, the file holds
        # blocks for exactly that much (reserved beyond EOF, fs/backend.py set_allocation).
        if not open_.is_directory:
            if decoded.allocation_size < open_.handle.size():
                _truncate(open_, decoded.allocation_size)
            elif decoded.allocation_size > 0x7FFFFFFFFFFFFFFF:
                raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
            else:
                open_.handle.set_allocation(decoded.allocation_size)
            write_time.update_now(open_, only_if_written=False)  # "equivalent to a write" (Samba)
    elif isinstance(decoded, classes.RenameInformation):
        if info_class in (C.FileLinkInformation, getattr(C, "FileLinkInformationEx", -1)):
            _link(ctx, open_, decoded)
        elif open_.stream is not None:
            _require(open_, DELETE)
            stream_rename.rename(ctx, open_, decoded)
        else:
            _require(open_, DELETE)
            try:
                oplock_break.check_rename(ctx, open_)
            except oplock_break.MustWait as waiting:
                raise oplock_break.retry_after_breaks(ctx, waiting.state, lambda: _renamed(ctx, open_, decoded)) \
                    from None
            _rename(ctx, open_, decoded)
    elif isinstance(decoded, classes.DispositionInformation):
        _require(open_, DELETE)
        _set_disposition(ctx, open_, decoded)
    elif isinstance(decoded, classes.PositionInformation):
        open_.position = decoded.current_byte_offset
    elif isinstance(decoded, classes.ModeInformation):
        open_.mode_flags = decoded.mode
    elif isinstance(decoded, classes.FullEaInformation):
        _require(open_, FILE_WRITE_EA)
        eas.apply(open_.handle.fd, open_.handle.stat(), list(decoded.entries))
        _changed(ctx, open_, Filter.EA)
    else:
        raise SmbError(NtStatus.STATUS_INVALID_INFO_CLASS)


def _set_basic(open_: Open, basic: classes.BasicInformation) -> None:
    """Times: 0 leaves a time alone, -1/-2 (stop/resume automatic updates) are accepted and not kept; any
    positive FILETIME is taken (fscc/times.py: the kernel clamps write and access times to what the file
    system holds, creation and change times are kept exactly). Attributes: 0 leaves them alone
    ([MS-FSA] 2.1.5.15.2)."""
    # [MS-FSA] 2.1.5.15.2: checked before anything changes. A file cannot become a directory, nor a directory
    # temporary (smbtorture smb2.setinfo); through a named stream the attributes are its file's or directory's.
    directory = open_.is_directory or (open_.stream is not None and stat.S_ISDIR(open_.handle.stat().st_mode))
    if not directory and basic.file_attributes & FILE_ATTRIBUTE_DIRECTORY:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if directory and basic.file_attributes & FILE_ATTRIBUTE_TEMPORARY:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    atime = time_to_set(basic.last_access_time)
    mtime = time_to_set(basic.last_write_time)
    change_time = time_to_set(basic.change_time)
    if change_time is not None:
        open_.user_set_change_time = True
    elif basic.change_time == FILETIME_RESUME_UPDATES:
        open_.user_set_change_time = False
    elif basic.file_attributes and open_.user_set_change_time:
        # [MS-FSA] 2.1.5.15.2 Open.UserSetChangeTime: once a handle has set ChangeTime, its later changes do
        # not move it (Windows; smbtorture smb2.setinfo sets attributes with zero times and reads it back).
        change_time = _client_change_time(open_)
    if atime is not None or mtime is not None:
        open_.handle.set_times(None if atime is None else filetime_to_unix_ns(atime),
                               None if mtime is None else filetime_to_unix_ns(mtime))
    if mtime is not None:
        write_time.set_by_client(open_)  # sticky for this handle
    elif basic.last_write_time in (FILETIME_STOP_UPDATES, FILETIME_RESUME_UPDATES):
        write_time.stop_updates(open_, basic.last_write_time == FILETIME_STOP_UPDATES)
    creation_time = time_to_set(basic.creation_time)
    if creation_time is not None or basic.file_attributes or change_time is not None:
        # After the times above: the ChangeTime a client sets holds for the file as it is now.
        open_.handle.set_dos_info(basic.file_attributes or None, creation_time, change_time)


def _client_change_time(open_: Open) -> int | None:
    """The ChangeTime a client set on the file, while it still holds (dos_attrs.change_anchor)."""
    st = open_.handle.stat()
    dos = open_.handle.dos_info(st)
    if dos is None or not dos.change_time or dos.change_anchor != dos_attrs.change_anchor(st):
        return None
    return dos.change_time


def _truncate(open_: Open, length: int) -> None:
    if open_.is_directory:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if length > 0x7FFFFFFFFFFFFFFF:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    open_.handle.truncate(length)


def _target(ctx: RequestContext, open_: Open, file_name: str):  # type: ignore[no-untyped-def]
    """Resolve the rename/link target, a path from the share root. Nothing outside the share can be named."""
    assert ctx.tree is not None
    name = file_name.lstrip("\\") if not open_.posix else file_name.lstrip("/")
    if not name:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    path = SmbPath.parse(name, posix=open_.posix)
    if path.stream is not None:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    try:
        resolution = ctx.tree.share_root.resolve(
            path, case_insensitive=not open_.posix and not ctx.tree.share.case_sensitive)
        return resolution, path.components[-1]
    except SymlinkMet:
        raise SmbError(NtStatus.STATUS_OBJECT_PATH_NOT_FOUND) from None


def _rename(ctx: RequestContext, open_: Open, rename: classes.RenameInformation) -> None:
    server = ctx.connection.server
    replace = rename.replace_if_exists or bool(rename.flags & classes.FILE_RENAME_REPLACE_IF_EXISTS)
    posix_semantics = bool(rename.flags & classes.FILE_RENAME_POSIX_SEMANTICS) or open_.posix
    source_parent, source_name = open_.handle.parent_fd, open_.handle.name
    target, requested_name = _target(ctx, open_, rename.file_name)
    with target:
        _check_target_directory(ctx, target.parent_fd, open_.is_directory)
        existing = target.stat
        same_file = existing is not None and (existing.st_dev, existing.st_ino) == open_.handle.key
        if same_file and not _own_name(target.parent_fd, target.name, source_parent, source_name):
            # Another hard link of this file, not its own name in another case: a name that is taken (without
            # ReplaceIfExists), or one of a file that is open (this one), which a rename does not replace
            # ([MS-FSA] 2.1.5.15.11; Samba 4.17 answers ACCESS_DENIED too). rename(2) would do nothing.
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED if replace else NtStatus.STATUS_OBJECT_NAME_COLLISION)
        # The new name as the client spelled it: a rename that changes only the case must store that case.
        new_name = requested_name if same_file else target.name
        if same_file and new_name == source_name:
            return
        if existing is not None and not same_file:
            if not replace:
                raise SmbError(NtStatus.STATUS_OBJECT_NAME_COLLISION)
            if stat.S_ISDIR(existing.st_mode) and not (posix_semantics and open_.is_directory):
                # [MS-FSA] 2.1.5.14.11: a directory is never replaced. A POSIX rename(2) replaces an empty
                # directory with a directory, atomically; renameat2 refuses a non-empty one (ENOTEMPTY).
                raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
            if _is_open(server.files, existing) and not posix_semantics:
                # Windows refuses to replace a file that is open; POSIX semantics allow it.
                raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
        if server.files.stream_opens(open_.handle.key):
            # A file whose streams are open keeps its name (Windows; Samba's file_has_open_streams; smbtorture
            # smb2.streams.basefile-rename-with-open-stream).
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
        # Windows refuses to move a directory with opens inside; rename(2) moves it, and the opens follow.
        moves_opens = open_.is_directory and server.files.has_open_below(open_)
        if moves_opens and not posix_semantics:
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
        old_components = open_.path_components
        try:
            open_.handle.rename_to(target.parent_fd, new_name, replace=replace and not same_file)
        except SmbError as exc:
            if exc.status != NtStatus.STATUS_NOT_A_DIRECTORY or posix_semantics:
                raise
            # A directory over a file (rename(2): ENOTDIR). Samba 4.17 answers OBJECT_NAME_COLLISION, as for a
            # name that is taken; a POSIX client gets ENOTDIR as from rename(2).
            raise SmbError(NtStatus.STATUS_OBJECT_NAME_COLLISION) from None
        if existing is not None and not same_file:
            oplock_break.break_replaced(server, (existing.st_dev, existing.st_ino))
        ctx.tree.share_root.note_removed(source_parent, source_name)
        ctx.tree.share_root.note_created(target.parent_fd, new_name)
        server.files.changes.renamed(ctx.tree, old_components, target.components[:-1] + (new_name,),
                                     open_.is_directory, origin=open_)
        for other in server.files.renamed(open_, target.components[:-1] + (new_name,)):
            other.handle.moved(target.parent_fd, new_name)
        if moves_opens:
            server.files.moved_below(open_, old_components)


def _is_open(files: FileTable, st: os.stat_result) -> bool:
    """Whether the file is open, through its own data or one of its named streams (a replaced file's streams
    would go with it)."""
    key = (st.st_dev, st.st_ino)
    return bool(files.opens(key) or files.stream_opens(key))


def _own_name(parent_fd: int, name: str, own_parent_fd: int, own_name: str) -> bool:
    """Whether parent_fd/name is the open's own name (in whatever case), not another hard link of its file."""
    if fold(name) != fold(own_name):
        return False
    a, b = backend.fstat(parent_fd), backend.fstat(own_parent_fd)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _renamed(ctx: RequestContext, open_: Open, rename: classes.RenameInformation) -> bytes:
    """The rename once other leases gave up H: checked for breaks again, then done."""
    if open_.closed:
        raise SmbError(NtStatus.STATUS_FILE_CLOSED)
    oplock_break.check_rename(ctx, open_)
    _rename(ctx, open_, rename)
    return wire.SET_INFO_RESPONSE


def _check_target_directory(ctx: RequestContext, parent_fd: int, is_directory: bool) -> None:
    """A rename on Windows opens the target's directory to add the name (the I/O manager's open of the
    target directory: FILE_ADD_FILE, or FILE_ADD_SUBDIRECTORY for a directory, sharing read and write), so
    the ordinary checks of [MS-FSA] 2.1.5.1.2 decide, in their order: first the access check of 2.1.5.1.2.1
    (a user who may not add names there gets STATUS_ACCESS_DENIED, as Samba 4.17's check_parent_access_fsp
    answers, whoever has the directory open), then the sharing check against that directory's opens: one
    with DELETE access, or one sharing no write, refuses it with STATUS_SHARING_VIOLATION (smbtorture
    smb2.rename.*); one that shares read and write but not delete does not (a CHANGE_NOTIFY handle in
    smb2.notify.rec and mask-change). Samba 4.17 looks only for DELETE access (parent_dirname_compatible_open)."""
    session, tree = ctx.session, ctx.tree
    assert session is not None and tree is not None
    parent = backend.fstat(parent_fd)
    access = FILE_APPEND_DATA if is_directory else FILE_WRITE_DATA
    acl = posix_acl.read(parent_fd) if acl_can_matter(session.uid, parent.st_uid) else None
    if not access & maximal_access(parent.st_mode, parent.st_uid, parent.st_gid, session.uid, session.gid,
                                   session.groups, read_only_share=tree.read_only, acl=acl):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    check_share_access(ctx.connection.server.files.opens((parent.st_dev, parent.st_ino)), access | SYNCHRONIZE,
                       FILE_SHARE_READ | FILE_SHARE_WRITE)


def _link(ctx: RequestContext, open_: Open, link: classes.RenameInformation) -> None:
    if open_.is_directory:
        raise SmbError(NtStatus.STATUS_FILE_IS_A_DIRECTORY)
    server = ctx.connection.server
    target, _ = _target(ctx, open_, link.file_name)
    with target:
        existing = target.stat
        if existing is not None:
            if not (link.replace_if_exists or link.flags & 1):
                raise SmbError(NtStatus.STATUS_OBJECT_NAME_COLLISION)
            # The name a link replaces goes as a replaced rename target does ([MS-FSA] 2.1.5.15.6 and
            # 2.1.5.15.11): never a directory, never a file that is open. A name of this very file is such a
            # file (this open): unlinking it first lost the file when it was its only name. Nor a READONLY file
            # (Windows refuses to replace one: ACCESS_DENIED; Samba 4.17 answers CANNOT_DELETE).
            if (stat.S_ISDIR(existing.st_mode) or _is_open(server.files, existing)
                    or dos_attrs.is_read_only(target.parent_fd, target.name, existing)):
                raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
            # The new link under a temporary name first, then renamed over the old one (atomic): unlinking the
            # old name first lost it whenever the link then failed (a file the kernel will not let this user
            # link: protected_hardlinks).
            temporary = f".smbsrv-link-{secrets.token_hex(8)}"
            open_.handle.link_to(target.parent_fd, temporary)
            try:
                backend.rename_at(target.parent_fd, temporary, target.parent_fd, target.name, replace=True)
            except SmbError:
                backend.unlink_at(target.parent_fd, temporary)
                raise
        else:
            open_.handle.link_to(target.parent_fd, target.name)
        ctx.tree.share_root.note_created(target.parent_fd, target.name)
        ctx.connection.server.files.changes.changed(ctx.tree, target.components, Action.ADDED, Filter.FILE_NAME,
                                                    origin=open_)


def _set_disposition(ctx: RequestContext, open_: Open, disposition: classes.DispositionInformation) -> None:
    files = ctx.connection.server.files
    if not disposition.delete_pending:
        files.set_delete_pending(open_, False)
        return
    if (open_.info().attributes & FILE_ATTRIBUTE_READONLY and not open_.posix
            and not disposition.flags & classes.FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE):
        # [MS-FSA] 2.1.5.15.3; a POSIX open unlinks as unlink(2) does, whatever the file's own mode.
        raise SmbError(NtStatus.STATUS_CANNOT_DELETE)
    if open_.is_directory and open_.handle.has_entries(bool(open_.granted_access & FILE_READ_DATA)):
        raise SmbError(NtStatus.STATUS_DIRECTORY_NOT_EMPTY)
    if disposition.flags & classes.FILE_DISPOSITION_POSIX_SEMANTICS and open_.stream is not None:
        open_.handle.unlink(False)  # the stream goes now; the file and its name stay
        ctx.connection.server.files.changes.changed(ctx.tree, open_.named_components, Action.REMOVED_STREAM,
                                                    Filter.STREAM_NAME, origin=open_)
        return
    if disposition.flags & classes.FILE_DISPOSITION_POSIX_SEMANTICS or open_.posix:
        # POSIX semantics: the name goes now, the open handles keep the data ([MS-FSCC] 2.4.12).
        open_.handle.unlink(open_.is_directory)
        open_.tree.share_root.note_removed(open_.handle.parent_fd, open_.handle.name)
        ctx.connection.server.files.changes.changed(ctx.tree, open_.path_components, Action.REMOVED,
                                                    Filter.DIR_NAME if open_.is_directory else Filter.FILE_NAME,
                                                    open_.is_directory, origin=open_)
        return
    files.set_delete_pending(open_, True)


def _set_security(ctx: RequestContext, open_: Open, request: wire.SetInfoRequest) -> None:
    descriptor = parse_descriptor(request.buffer)
    additional = request.additional_information
    if additional & (OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION):
        _require(open_, WRITE_OWNER)
    if additional & DACL_SECURITY_INFORMATION and descriptor.control & SE_DACL_PRESENT:
        _require(open_, WRITE_DAC)
    open_.handle.set_security(descriptor, additional)
    if additional & (OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION):
        _changed(ctx, open_, Filter.SECURITY)

