"""CREATE ([MS-SMB2] 3.3.5.9; [MS-FSA] 2.1.5.1): open or create a file, directory or named pipe.

The handler reads in the order of the spec: check the request, parse contexts, resolve the name, decide what
the disposition means for what exists, check access and sharing, open or create, apply contexts, reply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import struct
from dataclasses import dataclass

from smbsrv import reparse
from smbsrv.commands import durable_handles, oplock_break, stream_create, volume
from smbsrv.files import oplocks
from smbsrv.files.table import FileState, FileTable
from smbsrv.fs import backend, dos_attrs, eas, nt_acl, posix_acl, presented, streams
from smbsrv.fs.handle import FileHandle
from smbsrv.fs.path import SmbPath
from smbsrv.fs.resolver import Resolution, SymlinkMet
from smbsrv.fs.share_modes import (
    acl_can_matter,
    check_share_access,
    maximal_access,
    resolve_desired_access,
)
from smbsrv.fscc import attributes as fattr
from smbsrv.fscc.attributes import IO_REPARSE_TAG_SYMLINK
from smbsrv.fscc.ea import EaEntry, decode_ea_list_to_set
from smbsrv.fscc.notify import Action, Filter
from smbsrv.fscc.reparse import reparse_tag_of
from smbsrv.fscc.security import (
    DACL_SECURITY_INFORMATION,
    GROUP_SECURITY_INFORMATION,
    OWNER_SECURITY_INFORMATION,
    SecurityDescriptor,
    parse_descriptor,
)
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open, Session, TreeConnect
from smbsrv.reparse import synthesized
from smbsrv.wire import create as wire
from smbsrv.wire.buffer import decode_utf16
from smbsrv.wire.constants import (
    ACCESS_SYSTEM_SECURITY,
    DELETE,
    FILE_APPEND_DATA,
    FILE_CREATE,
    FILE_CREATED,
    FILE_DELETE_ON_CLOSE,
    FILE_DIRECTORY_FILE,
    FILE_EXECUTE,
    FILE_NON_DIRECTORY_FILE,
    FILE_OPEN,
    FILE_OPEN_BY_FILE_ID,
    FILE_OPEN_IF,
    FILE_OPEN_REPARSE_POINT,
    FILE_OPENED,
    FILE_OVERWRITE,
    FILE_OVERWRITE_IF,
    FILE_OVERWRITTEN,
    FILE_READ_DATA,
    FILE_SHARE_DELETE,
    FILE_SHARE_READ,
    FILE_SHARE_WRITE,
    FILE_SUPERSEDE,
    FILE_SUPERSEDED,
    FILE_WRITE_ATTRIBUTES,
    FILE_WRITE_DATA,
    SMB2_CREATE_ALLOCATION_SIZE,
    SMB2_CREATE_EA_BUFFER,
    SMB2_CREATE_FLAG_REPARSEPOINT,
    SMB2_CREATE_POSIX_CONTEXT,
    SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST,
    SMB2_CREATE_QUERY_ON_DISK_ID,
    SMB2_CREATE_SD_BUFFER,
    SMB2_CREATE_TIMEWARP_TOKEN,
)
from smbsrv.wire.create_contexts import CreateContext, encode_chain
from smbsrv.wire.oplock import LeaseRequest
from smbsrv.wire.status import NtStatus

_VALID_FILE_ATTRIBUTES = 0x00007FB7
# CreateOptions bits no client may set ([MS-SMB2] 2.2.13: the top byte is reserved; Windows refuses them).
_RESERVED_CREATE_OPTIONS = 0xFF000000
_NT_TIME_AND_SIZES = struct.Struct("<QQ")
_DATA_ACCESS = FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_EXECUTE
# Symlinks followed in one open (share option follow_symlinks), as Linux's own limit for path resolution.
_MAX_SYMLINK_HOPS = 40
# Modes of objects created by Windows-semantics opens (which carry no mode), as Samba 4.17 creates them with
# default settings: files 0744 (its "create mask" with the owner's x bit standing for ARCHIVE), so their owner
# holds full control (docs/access.md), directories 0755.
_WINDOWS_FILE_MODE = 0o744
_WINDOWS_DIRECTORY_MODE = 0o755
# What a CREATE's security descriptor sets: owner, group and DACL (a SACL needs a privilege nobody has here).
_DESCRIPTOR_PARTS = OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION
# cifs.ko's ACL_NO_MODE (a POSIX create without a mode): what a 022 umask gives.
_NO_MODE = 0xFFFF
_NO_MODE_FILE_MODE = 0o644


@dataclass(slots=True)
class _Target:
    """What the name resolved to: whether it exists, what kind of object it is, and its reparse point."""

    resolution: Resolution
    exists: bool
    is_directory: bool = False
    reparse_tag: int = 0
    is_special: bool = False  # a real symlink, FIFO, socket or device: held by O_PATH, never opened for data
    attributes: int = 0
    client_reparse: bytes | None = None  # a reparse buffer a client set on this file or directory


def handle(ctx: RequestContext, request: wire.CreateRequest) -> bytes:
    try:
        return _handle(ctx, request, True)
    except oplock_break.MustWait as waiting:
        # [MS-SMB2] 3.3.5.9: the open goes async until the holder acknowledges the break, closes, or the break
        # times out; then it is tried again from the start (the name may have changed meanwhile). The name is a
        # view into the receive buffer, which the transport reuses for the next message: the retry keeps a copy.
        kept = dataclasses.replace(request, name=memoryview(bytes(request.name)))
        raise durable_handles.pending_while(ctx, kept, oplock_break.retry_after_breaks(
            ctx, waiting.state, lambda: _handle(ctx, kept, False))) from None


def _handle(ctx: RequestContext, request: wire.CreateRequest, first_attempt: bool) -> bytes:
    tree = ctx.tree
    assert tree is not None and ctx.session is not None
    # Most opens carry no create context (cifs.ko's stat, smbclient, every plain open): the durable-handle
    # steps, which only look for theirs, are skipped for them.
    with_contexts = bool(request.contexts)
    if with_contexts and durable_handles.check_contexts(ctx, request):
        # DHnC/DH2C: no name validation, no open execution ([MS-SMB2] 3.3.5.9.7, 3.3.5.9.12; Samba checks the
        # impersonation level on real opens only). A handle the server does not keep: OBJECT_NAME_NOT_FOUND.
        open_ = durable_handles.reconnect(ctx, request)
        return _reply(ctx, request, open_, open_.handle.stat(), FILE_OPENED, open_.granted_access, None)
    _check_request(request)
    _check_system_security(request, ctx.session.uid)
    replay = durable_handles.replayed(ctx, request, first_attempt) if with_contexts else None
    if replay is not None:
        open_, action = replay  # [MS-SMB2] 3.3.5.9.10: the replayed create's open, as it is now
        return _reply(ctx, request, open_, open_.handle.stat(), action, open_.granted_access, None,
                      replayed_level=request.requested_oplock_level)
    # Either limit answers as running out of descriptors does (cifs.ko: EMFILE). Samba 4.17 answers its
    # per-connection open table's limit with INSUFFICIENT_RESOURCES, which cifs.ko turns into EAGAIN.
    server = ctx.connection.server
    if (len(ctx.session.opens) >= server.config.max_opens_per_session
            or server.files.held_by(ctx.session) >= server.max_opens_per_user):
        raise SmbError(NtStatus.STATUS_TOO_MANY_OPENED_FILES)
    if tree.is_ipc:
        from smbsrv.commands.pipe import open_pipe

        return open_pipe(ctx, request)
    posix_mode = _posix_context(ctx, request)
    posix = posix_mode is not None
    name = decode_utf16(request.name)
    if not posix and ":" in name and not tree.share.named_streams and not name.startswith(("\\", "/")):
        # A share without streams (FILE_NAMED_STREAMS is not announced): as Samba on a share without a streams
        # module, any stream syntax, "::$DATA" included, is STATUS_OBJECT_NAME_INVALID (smbtorture
        # smb2.create_no_streams.no_stream, which Samba 4.17 passes in the same setup).
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_INVALID)
    path = SmbPath.parse(name, posix=posix)
    lease = oplock_break.lease_request(ctx, request.requested_oplock_level, request.contexts)
    case_insensitive = not posix and not tree.share.case_sensitive
    follow = tree.share.follow_symlinks and not posix
    # A disposition that may make the file lets a drop box (write without list permission) take a new name
    # (fs/resolver.py resolve, Samba's UCF_PREP_CREATEFILE).
    may_create = request.create_disposition in (FILE_SUPERSEDE, FILE_CREATE, FILE_OPEN_IF, FILE_OVERWRITE_IF)
    for _ in range(_MAX_SYMLINK_HOPS):
        try:
            resolution = tree.share_root.resolve(path, case_insensitive=case_insensitive, may_create=may_create)
        except SymlinkMet as met:
            inside = _followable(tree, met.target, met.link_name_components) if follow else None
            if inside is None:
                raise _stopped_on_symlink(tree, met, name) from None
            path = SmbPath(inside + met.unparsed, path.stream, path.has_trailing_separator)
            continue
        if (follow and resolution.stat is not None and stat.S_ISLNK(resolution.stat.st_mode)
                and not request.create_options & FILE_OPEN_REPARSE_POINT):
            target_text = backend.readlink_at(resolution.parent_fd, resolution.name)
            inside = _followable(tree, target_text, resolution.components)
            if inside is not None:
                resolution.close()
                path = SmbPath(inside, path.stream, path.has_trailing_separator)
                continue
        break
    else:
        raise SmbError(NtStatus.STATUS_STOPPED_ON_SYMLINK)  # a loop: let the client see the link
    with resolution:
        parent_stat = _refuse_reparse_parent(tree, resolution, path)
        target = _classify(tree, resolution)
        if path.stream is not None:
            return stream_create.open_stream(ctx, request, target, path.stream, lease, first_attempt)
        if ":" in name and not posix:
            # "name::$DATA", the unnamed data stream, is never a directory, and a directory has none ([MS-FSA]
            # 2.1.5.1.2; smbtorture smb2.streams.dir; Samba 4.17 answers so before the disposition too).
            if request.create_options & FILE_DIRECTORY_FILE:
                raise SmbError(NtStatus.STATUS_NOT_A_DIRECTORY)
            if target.is_directory:
                raise SmbError(NtStatus.STATUS_FILE_IS_A_DIRECTORY)
        _check_disposition(request, target, posix=posix)
        if target.exists:
            return _open_existing(ctx, request, target, posix_mode, parent_stat, lease, first_attempt)
        return _create_new(ctx, request, target, posix_mode, lease)


# -- step 1: the request itself -----------------------------------------------------------------------------

# A handle that is to delete on close must be granted DELETE: STATUS_INVALID_PARAMETER when the request (with
# MAXIMUM_ALLOWED resolved) has no DELETE in it, as Windows and Samba 4.17 answer (Samba bug 13358); a DELETE
# the user may not have is ACCESS_DENIED like any other refused right.
DELETE_ON_CLOSE_WITHOUT_DELETE = NtStatus.STATUS_INVALID_PARAMETER

# ACCESS_MASK bits 26 and 27 are reserved ([MS-DTYP] 2.4.3).
_RESERVED_ACCESS_BITS = 0x0C000000
_FILE_CREATE_TREE_CONNECTION = 0x00000080
_FILE_RESERVE_OPFILTER = 0x00100000


def _check_request(request: wire.CreateRequest) -> None:
    wire.check_impersonation_level(request.impersonation_level)
    options = request.create_options
    if request.create_disposition > FILE_OVERWRITE_IF or options & _RESERVED_CREATE_OPTIONS:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if options & FILE_DIRECTORY_FILE and options & FILE_NON_DIRECTORY_FILE:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if options & FILE_DIRECTORY_FILE and request.create_disposition not in (FILE_CREATE, FILE_OPEN, FILE_OPEN_IF):
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if request.desired_access & _RESERVED_ACCESS_BITS:
        # Before the attribute checks: Windows answers ACCESS_DENIED even with FILE_ATTRIBUTE_VOLUME given
        # (smbtorture smb2.create.gentest).
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if request.file_attributes & ~_VALID_FILE_ATTRIBUTES:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if options & FILE_DIRECTORY_FILE and request.file_attributes & fattr.FILE_ATTRIBUTE_TEMPORARY:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if options & (FILE_OPEN_BY_FILE_ID | _FILE_CREATE_TREE_CONNECTION | _FILE_RESERVE_OPFILTER):
        # [MS-SMB2] 3.3.5.9: not supported (Windows; smbtorture smb2.create.gentest's not_supported_mask).
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    _allocation_context(request)
    timewarp = request.contexts.get(SMB2_CREATE_TIMEWARP_TOKEN)
    if timewarp is not None:
        # [MS-SMB2] 2.2.13.2.7 names a previous version (snapshot) of the file; this server keeps none, so none
        # exists at any time: STATUS_OBJECT_NAME_NOT_FOUND, as for a missing version ([MS-SMB] 3.3.5.1.1;
        # smbtorture smb2.create.blob). Data that is not the 8-byte FILETIME: INVALID_PARAMETER (Samba).
        if len(timewarp) != 8:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND)


def _check_system_security(request: wire.CreateRequest, uid: int) -> None:
    """ACCESS_SYSTEM_SECURITY (the SACL) is granted only to a holder of SeSecurityPrivilege ([MS-DTYP] 2.4.3;
    Windows' SeAccessCheck): anyone else gets STATUS_PRIVILEGE_NOT_HELD, as from Samba's open_file_ntcreate,
    whose root token alone holds the privilege. Even then SMB2 refuses it asked for alone (ACCESS_DENIED,
    Windows and Samba; smbtorture3 SMB2-SACL). smbtorture smb2.create.gentest's sweep counts both answers."""
    if not request.desired_access & ACCESS_SYSTEM_SECURITY:
        return
    if uid != 0:
        raise SmbError(NtStatus.STATUS_PRIVILEGE_NOT_HELD)
    if request.desired_access == ACCESS_SYSTEM_SECURITY:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)


def _allocation_context(request: wire.CreateRequest) -> int:
    """AllocationSize of the "AlSi" context ([MS-SMB2] 2.2.13.2.6), 0 without one. Data that is not the 8-byte
    value is STATUS_INVALID_PARAMETER (Samba's smbd_smb2_create_send); above 2^63-1 too (as SET_INFO's)."""
    data = request.contexts.get(SMB2_CREATE_ALLOCATION_SIZE)
    if data is None:
        return 0
    if len(data) != 8 or int.from_bytes(data, "little") > 0x7FFFFFFFFFFFFFFF:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    return int.from_bytes(data, "little")


def _allocate(request: wire.CreateRequest, fd: int) -> None:
    """[MS-SMB2] 3.3.5.9: a created or overwritten file starts with the AlSi context's allocation, reserved
    beyond its end as FileAllocationInformation reserves it (fs/backend.py set_allocation)."""
    allocation = _allocation_context(request)
    if allocation:
        backend.set_allocation(fd, allocation)


def _security_context(request: wire.CreateRequest) -> SecurityDescriptor | None:
    """The "SecD" context's security descriptor ([MS-SMB2] 2.2.13.2.2), None without one; a malformed one is
    INVALID_PARAMETER before anything is created."""
    data = request.contexts.get(SMB2_CREATE_SD_BUFFER)
    return None if data is None else parse_descriptor(data)


def _apply_descriptor(resolution: Resolution, fd: int, descriptor: SecurityDescriptor, directory: bool) -> None:
    """[MS-SMB2] 3.3.5.9.2: a new file gets the descriptor's owner, group and DACL, kept as Samba keeps them
    (fs/nt_acl.py). Last of the new file's steps: a DACL may take away the user's own right to write the DOS
    attributes and EAs. The creating handle keeps the access it was granted, as on Windows. A descriptor that
    cannot be kept fails the create and the new file goes again, as in Samba."""
    try:
        nt_acl.apply_descriptor(fd, descriptor, _DESCRIPTOR_PARTS)
    except SmbError:
        with contextlib.suppress(SmbError):
            (backend.rmdir_at if directory else backend.unlink_at)(resolution.parent_fd, resolution.name)
        raise


def _posix_context(ctx: RequestContext, request: wire.CreateRequest) -> int | None:
    """The POSIX create context turns this one open into a POSIX open; its data is the mode for new files."""
    data = request.contexts.get(SMB2_CREATE_POSIX_CONTEXT)
    if data is None or not volume.posix_enabled(ctx):
        # Without POSIX negotiated (or on a share with posix = false) the context is ignored, as Samba does:
        # no response context tells the client that this open has Windows semantics.
        return None
    if len(data) != 4:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    mode = int.from_bytes(data, "little")
    if mode & _NO_MODE == _NO_MODE:
        # cifs.ko sends ACL_NO_MODE ((umode_t)-1) when the caller gave no mode (its mknod and symlink
        # helpers): every type bit set is no file type in either encoding, so the new object gets the
        # default mode of a Windows create instead of 07777 cut down by the mask.
        return _WINDOWS_DIRECTORY_MODE if request.create_options & FILE_DIRECTORY_FILE else _NO_MODE_FILE_MODE
    return mode & 0o7777


def _ea_context(request: wire.CreateRequest) -> list[EaEntry]:
    """The EAs a new file starts with (the "ExtA" context, [MS-SMB2] 2.2.13.2.1), checked before anything is
    created: WSL clients send $LXUID/$LXGID/$LXMOD/$LXDEV this way."""
    data = request.contexts.get(SMB2_CREATE_EA_BUFFER)
    if data is None:
        return []
    entries = decode_ea_list_to_set(data)
    eas.check_names(entries)
    return entries


# -- step 2: what the name is ---------------------------------------------------------------------------------

def _refuse_reparse_parent(tree: TreeConnect, resolution: Resolution, path: SmbPath) -> os.stat_result | None:
    """A directory carrying a client-set reparse point (cifs.ko makes `ln -s dir link` one) is not walked
    through: opening or creating a name inside it meets the reparse point ([MS-FSA] 2.1.5.1). Only the
    immediate parent needs the check: SET_REPARSE_POINT takes empty directories only and nothing can be
    created inside one afterwards, so over SMB such a directory never has children to walk into.
    Returns the parent's stat when it took one, for the delete-permission check to reuse."""
    if len(resolution.components) < 2:
        return None
    parent = backend.fstat(resolution.parent_fd)
    dos = dos_attrs.read(resolution.parent_fd, parent)
    if dos is None or not dos.attributes & fattr.FILE_ATTRIBUTE_REPARSE_POINT:
        return parent
    buffer = tree.reparse_store.get(resolution.parent_fd)
    if buffer is None:
        return parent
    # UnparsedPathLength: the separator before the last component, the component, and a trailing separator.
    unparsed = 2 * (1 + len(path.components[-1].encode("utf-16-le", "surrogatepass")) // 2
                    + (1 if path.has_trailing_separator else 0))
    raise reparse.refuse_open(reparse_tag_of(buffer), buffer, unparsed)


def _classify(tree: TreeConnect, resolution: Resolution) -> _Target:
    st = resolution.stat
    if st is None:
        return _Target(resolution, False)
    special_tag = presented.reparse_tag_for(st, tree.share)
    if special_tag:
        return _Target(resolution, True, reparse_tag=special_tag, is_special=True,
                       attributes=fattr.FILE_ATTRIBUTE_REPARSE_POINT)
    # The share root ("." of a duplicate root fd) keeps no DOS attributes of its own.
    dos = dos_attrs.read_at(resolution.parent_fd, resolution.name, st) if resolution.components else None
    target = _Target(resolution, True, stat.S_ISDIR(st.st_mode), attributes=backend.file_attributes(st, dos))
    if target.attributes & fattr.FILE_ATTRIBUTE_REPARSE_POINT:
        target.client_reparse = tree.reparse_store.get_at(resolution.parent_fd, resolution.name)
        if target.client_reparse is not None:
            target.reparse_tag = reparse_tag_of(target.client_reparse)
    return target


def _check_disposition(request: wire.CreateRequest, target: _Target, *, posix: bool) -> None:
    disposition = request.create_disposition
    options = request.create_options
    if target.exists:
        # A directory is refused to FILE_NON_DIRECTORY_FILE before FILE_CREATE finds the name taken (Windows'
        # fastfat FatCommonCreate answers FILE_IS_A_DIRECTORY before FatOpenExistingDcb; Samba 4.17 too). A
        # POSIX open keeps Linux's answer, EEXIST, for open(O_CREAT|O_EXCL) of a directory.
        if target.is_directory and options & FILE_NON_DIRECTORY_FILE and not posix:
            raise SmbError(NtStatus.STATUS_FILE_IS_A_DIRECTORY)
        if disposition == FILE_CREATE:
            raise SmbError(NtStatus.STATUS_OBJECT_NAME_COLLISION)
        if target.is_directory and options & FILE_NON_DIRECTORY_FILE:
            raise SmbError(NtStatus.STATUS_FILE_IS_A_DIRECTORY)
        if not target.is_directory and options & FILE_DIRECTORY_FILE and not target.reparse_tag:
            raise SmbError(NtStatus.STATUS_NOT_A_DIRECTORY)
        if target.is_directory and disposition in (FILE_SUPERSEDE, FILE_OVERWRITE, FILE_OVERWRITE_IF):
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    elif disposition in (FILE_OPEN, FILE_OVERWRITE):
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND)


def _followable(tree: TreeConnect, target: str, link_components: tuple[str, ...]) -> tuple[str, ...] | None:
    return synthesized.inside_share_components(target, link_components, presented.share_real_path(tree.share))


def _stopped_on_symlink(tree: TreeConnect, met: SymlinkMet, requested_name: str) -> SmbError:
    """A symlink before the last component: STATUS_STOPPED_ON_SYMLINK with the symbolic link error response
    and the length of the rest of the name ([MS-SMB2] 2.2.2.2.1.1); the client resolves the link, the server
    never follows it. FILE_OPEN_REPARSE_POINT does not change this: it applies to the last component only."""
    buffer = synthesized.symlink_buffer(met.target, met.link_name_components, presented.share_real_path(tree.share))
    return reparse.refuse_open(IO_REPARSE_TAG_SYMLINK, buffer, met.unparsed_path_length(requested_name))


def _may_delete_in(resolution: Resolution, st: os.stat_result, session: Session,
                   parent: os.stat_result | None) -> bool:
    """Whether Unix rules let this user remove the name: write and search permission on the directory and,
    when it is sticky, ownership of the file or the directory (what unlink(2) will check; Samba's
    can_delete_file_in_directory)."""
    if session.uid == 0:
        return True
    if not resolution.components:
        return False  # the share root itself is never deleted
    if parent is None:
        parent = backend.fstat(resolution.parent_fd)
    if parent.st_uid == session.uid:
        bits = parent.st_mode >> 6
    elif parent.st_gid == session.gid or parent.st_gid in session.groups:
        bits = parent.st_mode >> 3
    else:
        bits = parent.st_mode
    if bits & 0o3 != 0o3:
        return False
    return not (parent.st_mode & stat.S_ISVTX and session.uid not in (st.st_uid, parent.st_uid))


def _reparse_buffer(tree: TreeConnect, target: _Target) -> bytes:
    if target.client_reparse is not None:
        return target.client_reparse
    resolution = target.resolution
    assert resolution.stat is not None
    link_target = None
    if stat.S_ISLNK(resolution.stat.st_mode):
        link_target = backend.readlink_at(resolution.parent_fd, resolution.name)
    return synthesized.buffer_for(resolution.stat, link_target, resolution.components,
                                  presented.share_real_path(tree.share), wsl=tree.share.special_files == "wsl")


# -- step 3: open what exists ---------------------------------------------------------------------------------

def _posix_acl(resolution: Resolution, st: os.stat_result, uid: int) -> tuple[posix_acl.Entry, ...] | None:
    """The access ACL, where it can change what the mode says (share_modes.acl_can_matter)."""
    return posix_acl.read_at(resolution.parent_fd, resolution.name) if acl_can_matter(uid, st.st_uid) else None


def _open_existing(ctx: RequestContext, request: wire.CreateRequest, target: _Target,
                   posix_mode: int | None, parent_stat: os.stat_result | None, lease: LeaseRequest | None,
                   first_attempt: bool) -> bytes:
    tree, session = ctx.tree, ctx.session
    assert tree is not None and session is not None
    resolution = target.resolution
    st = resolution.stat
    assert st is not None
    if target.reparse_tag and not request.create_options & FILE_OPEN_REPARSE_POINT:
        raise reparse.refuse_open(target.reparse_tag, _reparse_buffer(tree, target))
    key = (st.st_dev, st.st_ino)
    server = ctx.connection.server
    if server.files.is_name_delete_pending(key, tree.share_root, resolution.components):  # this name only
        raise SmbError(NtStatus.STATUS_DELETE_PENDING)
    maximum = maximal_access(st.st_mode, st.st_uid, st.st_gid, session.uid, session.gid, session.groups,
                             read_only_share=tree.read_only,
                             may_delete=_may_delete_in(resolution, st, session, parent_stat),
                             acl=_posix_acl(resolution, st, session.uid))
    # [MS-FSA] 2.1.5.1.2.1: the READONLY attribute refuses data modification and delete-on-close to everyone.
    # Not on a POSIX open: there the mode is all there is, as on Linux (a file cifs.ko created with mode 0444
    # carries READONLY, and must still take writes once chmod made it writable, and be unlinked at any time).
    read_only_file = (posix_mode is None and not target.is_directory
                      and bool(target.attributes & fattr.FILE_ATTRIBUTE_READONLY))
    if posix_mode is not None and st.st_uid == session.uid and not tree.read_only:
        # Linux lets a file's owner set its times (and mode) whatever the mode: tar and cp -p set a read-only
        # file's times after its mode. Samba's mapping gives WRITE_ATTRIBUTES with the owner's `w` bit only.
        maximum |= FILE_WRITE_ATTRIBUTES
    if read_only_file:
        maximum &= ~(FILE_WRITE_DATA | FILE_APPEND_DATA)
    granted = resolve_desired_access(request.desired_access, maximum)
    disposition = request.create_disposition
    overwrite = disposition in (FILE_SUPERSEDE, FILE_OVERWRITE, FILE_OVERWRITE_IF)
    if overwrite:
        # [MS-FSA] 2.1.5.1.2.1: the overwrite's implied FILE_WRITE_DATA is checked with the access, before the
        # sharing check of 2.1.5.1.2.2 (fastfat's AddedAccess; Samba's open_access_mask): a user who may not
        # write the file gets ACCESS_DENIED, not the SHARING_VIOLATION of an open it could not have had.
        if tree.read_only or read_only_file or not maximum & FILE_WRITE_DATA:
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
        # [MS-FSA] 2.1.5.1.2.1: overwriting a HIDDEN or SYSTEM file must keep saying so.
        missing = target.attributes & ~request.file_attributes & (fattr.FILE_ATTRIBUTE_HIDDEN
                                                                  | fattr.FILE_ATTRIBUTE_SYSTEM)
        if missing:
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    # An overwrite conflicts with other opens as a writer (smbtorture smb2.acls.OVERWRITE_READ_ONLY_FILE: a second
    # FILE_READ_DATA open with an overwrite disposition is SHARING_VIOLATION on Windows), but the handle gets only
    # what it asked for: Windows' file systems add FILE_WRITE_DATA for the sharing check and take it back after
    # the truncation (the WDK fastfat sample's AddedAccess; Samba's open_access_mask vs fsp->access_mask).
    conflicts_as = granted | FILE_WRITE_DATA if overwrite else granted
    if target.is_special and conflicts_as & _DATA_ACCESS:
        # Symlinks, fifos, sockets and devices on the server are never opened for data (protocol notes 8.7).
        raise SmbError(NtStatus.STATUS_IO_REPARSE_TAG_NOT_HANDLED)
    if request.create_options & FILE_DELETE_ON_CLOSE:
        if not granted & DELETE:
            raise SmbError(DELETE_ON_CLOSE_WITHOUT_DELETE)
        if read_only_file:
            raise SmbError(NtStatus.STATUS_CANNOT_DELETE)
    if lease is not None:
        oplocks.check_lease_key(server.files, ctx.connection.client_guid, lease.lease_key, key)
    check_sharing(ctx, server.files.get(key), conflicts_as, request.share_access, overwrite=overwrite, lease=lease,
                  first_attempt=first_attempt)
    if conflicts_as & DELETE:
        _check_stream_sharing(server.files, key)
    # An overwrite applies the ExtA context's EAs too ([MS-FSA] 2.1.5.1.2.1; Samba's set_ea on
    # FILE_WAS_OVERWRITTEN), checked before anything changes.
    ea_entries = _ea_context(request) if overwrite else []
    fd = backend.open_for_access(resolution.parent_fd, resolution.name, granted,
                                 is_directory=target.is_directory, is_special=target.is_special,
                                 truncate=overwrite)
    try:
        if overwrite:
            st = backend.fstat(fd)
            dos_attrs.initialise(fd, (request.file_attributes | fattr.FILE_ATTRIBUTE_ARCHIVE)
                                         & ~(fattr.FILE_ATTRIBUTE_DIRECTORY | fattr.FILE_ATTRIBUTE_NORMAL
                                             | fattr.FILE_ATTRIBUTE_SPARSE_FILE), st)
            if ea_entries:
                eas.apply(fd, backend.fstat(fd), ea_entries)
            if tree.share.named_streams:
                streams.remove_all(fd)  # the file is replaced, its streams too (Samba's clear_ads)
            if not target.is_directory:
                _allocate(request, fd)
            st = backend.fstat(fd)  # the xattr write moved ctime: the reply must show the file as it now is
        action = {FILE_SUPERSEDE: FILE_SUPERSEDED, FILE_OVERWRITE: FILE_OVERWRITTEN,
                  FILE_OVERWRITE_IF: FILE_OVERWRITTEN}.get(disposition, FILE_OPENED)
        open_ = _register_open(ctx, request, resolution, fd, st, granted, target, posix_mode is not None, lease,
                               existed=True)
    except BaseException:
        backend.close(fd)
        raise
    if overwrite:  # [MS-FSA] 2.1.5.1.2.1; Samba's open.c reports the truncation so
        ctx.connection.server.files.changes.changed(ctx.tree, open_.path_components, Action.MODIFIED,
                                                    Filter.SIZE | Filter.ATTRIBUTES, origin=open_)
    return _reply(ctx, request, open_, st, action, maximum, posix_mode)


def check_sharing(ctx: RequestContext, state: FileState | None, conflicts_as: int, share_access: int, *,
                  overwrite: bool, lease: LeaseRequest | None, first_attempt: bool) -> None:
    """[MS-FSA] 2.1.5.1.2.2 against the file's (or the stream's) opens. Holders of what this open conflicts with
    are told to give it up; on a sharing violation a holder of a handle lease may close its handle and let this
    open through ([MS-SMB2] 3.3.5.9; Samba 4.17): commands/oplock_break.py raises MustWait or the violation."""
    if state is None:
        return
    try:
        check_share_access(state.opens, conflicts_as, share_access)
        violation = False
    except SmbError:
        violation = True
    oplock_break.check_breaks(ctx, state, access=conflicts_as, sharing_violation=violation, overwrite=overwrite,
                              lease=lease, first_attempt=first_attempt)


def _check_stream_sharing(files: FileTable, key: tuple[int, int]) -> None:
    """An open of a file with DELETE access must be shared by every open of its named streams that uses data:
    one that does not share delete refuses it, as Samba's open_streams_for_delete opens each stream for DELETE
    with full sharing (opens for attributes only never conflict)."""
    check_share_access(files.stream_opens(key), DELETE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)


# -- step 4: create what does not exist -----------------------------------------------------------------------

def _create_new(ctx: RequestContext, request: wire.CreateRequest, target: _Target, posix_mode: int | None,
                lease: LeaseRequest | None) -> bytes:
    tree, session = ctx.tree, ctx.session
    assert tree is not None and session is not None
    if tree.read_only:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if lease is not None:
        oplocks.check_lease_key(ctx.connection.server.files, ctx.connection.client_guid, lease.lease_key, None)
    resolution = target.resolution
    share = tree.share
    directory = bool(request.create_options & FILE_DIRECTORY_FILE)
    if request.create_options & FILE_DELETE_ON_CLOSE and not resolve_desired_access(
            request.desired_access, 0x1F01FF) & DELETE:
        raise SmbError(DELETE_ON_CLOSE_WITHOUT_DELETE)
    if directory:
        mode = (posix_mode if posix_mode is not None else _WINDOWS_DIRECTORY_MODE) & share.directory_mask
    else:
        mode = (posix_mode if posix_mode is not None else _WINDOWS_FILE_MODE) & share.create_mask
    granted = resolve_desired_access(request.desired_access, 0x1F01FF)
    ea_entries = _ea_context(request)
    descriptor = _security_context(request)
    if (request.create_options & FILE_DELETE_ON_CLOSE and request.file_attributes & fattr.FILE_ATTRIBUTE_READONLY
            and posix_mode is None):
        # [MS-FSA] 2.1.5.1.1: a new read-only file cannot be delete-on-close (a POSIX O_TMPFILE of mode 0444 can).
        raise SmbError(NtStatus.STATUS_CANNOT_DELETE)
    fd = backend.create_at(resolution.parent_fd, resolution.name, mode, directory=directory,
                           posix_mode=posix_mode is not None)
    try:
        # SPARSE comes with FSCTL_SET_SPARSE only, never from CREATE (smbtorture smb2.ioctl.sparse_file_attr).
        attributes = request.file_attributes & ~(fattr.FILE_ATTRIBUTE_NORMAL | fattr.FILE_ATTRIBUTE_SPARSE_FILE)
        if posix_mode is not None:
            # cifs.ko sends READONLY for a mode without write bits; on a POSIX create the mode says it, and a
            # stored READONLY would outlive the next chmod (Windows clients could then never write the file).
            attributes &= ~fattr.FILE_ATTRIBUTE_READONLY
        attributes |= fattr.FILE_ATTRIBUTE_DIRECTORY if directory else fattr.FILE_ATTRIBUTE_ARCHIVE
        dos_attrs.initialise(fd, attributes, backend.fstat(fd))
        if ea_entries:
            eas.apply(fd, backend.fstat(fd), ea_entries)
        if not directory:
            _allocate(request, fd)
        if descriptor is not None:
            _apply_descriptor(resolution, fd, descriptor, directory)
        st = backend.fstat(fd)  # after the xattr write, which moved ctime: the reply shows the file as it now is
        tree.share_root.note_created(resolution.parent_fd, resolution.name)
        created = _Target(resolution, True, directory)
        open_ = _register_open(ctx, request, resolution, fd, st, granted, created, posix_mode is not None, lease,
                               existed=False)
    except BaseException:
        backend.close(fd)
        raise
    ctx.connection.server.files.changes.changed(tree, open_.path_components, Action.ADDED,
                                                Filter.DIR_NAME if directory else Filter.FILE_NAME, directory,
                                                origin=open_)
    return _reply(ctx, request, open_, st, FILE_CREATED, 0x1F01FF, posix_mode)


# -- step 5: the handle and the reply -------------------------------------------------------------------------

def _register_open(ctx: RequestContext, request: wire.CreateRequest, resolution: Resolution, fd: int,
                   st: os.stat_result, granted: int, target: _Target, posix: bool,
                   lease: LeaseRequest | None, *, existed: bool) -> Open:
    handle = FileHandle(fd, resolution.take_parent_fd(), resolution.name, (st.st_dev, st.st_ino))
    return register_open(ctx, request, handle, resolution.components, granted, lease, existed=existed,
                         is_directory=target.is_directory, posix=posix, reparse_tag=target.reparse_tag)


def register_open(ctx: RequestContext, request: wire.CreateRequest, handle: FileHandle,
                  components: tuple[str, ...], granted: int, lease: LeaseRequest | None, *, existed: bool,
                  is_directory: bool = False, posix: bool = False, reparse_tag: int = 0) -> Open:
    """The new Open on `handle` (a file's, or a named stream's from commands/stream_create.py): registered with
    the session and the FileTable, given its oplock or lease, and made the compound's current open."""
    session, tree = ctx.session, ctx.tree
    assert session is not None and tree is not None
    server = ctx.connection.server
    open_ = Open(file_id=server.allocate_file_id(), tree=tree, session=session, granted_access=granted,
                 share_access=request.share_access, create_options=request.create_options,
                 path_components=components, handle=handle, is_directory=is_directory, posix=posix,
                 delete_on_close=bool(request.create_options & FILE_DELETE_ON_CLOSE), reparse_tag=reparse_tag)
    session.opens[open_.file_id[1]] = open_
    server.files.add(open_)
    # An overwrite is no stat open, though its handle may hold no data access: it wrote the file (Samba's
    # is_oplock_stat_open looks at open_access_mask, which has the FILE_WRITE_DATA of the truncation).
    truncated = request.create_disposition in (FILE_SUPERSEDE, FILE_OVERWRITE, FILE_OVERWRITE_IF)
    oplock_break.grant(ctx, open_, request.requested_oplock_level, lease, existed and not truncated)
    ctx.open = open_
    ctx.created_file_id = open_.file_id
    return open_


def _reply(ctx: RequestContext, request: wire.CreateRequest, open_: Open, st: os.stat_result, action: int,
           maximum: int, posix_mode: int | None, *, replayed_level: int | None = None) -> bytes:
    info = open_.info(st)
    contexts: list[CreateContext] = []
    if SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST in request.contexts:
        contexts.append(CreateContext(SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST, struct.pack("<II", 0, maximum)))
    if SMB2_CREATE_QUERY_ON_DISK_ID in request.contexts:
        contexts.append(CreateContext(SMB2_CREATE_QUERY_ON_DISK_ID,
                                      struct.pack("<QQ", st.st_ino, st.st_dev) + bytes(16)))
    if posix_mode is not None:
        from smbsrv.fscc.file_info import encode_posix_create_response

        contexts.append(CreateContext(SMB2_CREATE_POSIX_CONTEXT, encode_posix_create_response(
            info, volume.posix_type_bits(open_.tree))))
    oplock_level, lease_context = oplock_break.reply_level_and_context(open_)
    if replayed_level is not None and replayed_level != oplock_level:
        # A replayed create answers the OplockLevel it asks for (Samba 4.17; smb2.replay.replay-dhv2-oplock2).
        oplock_level, lease_context = replayed_level, None
    if lease_context is not None:
        contexts.append(lease_context)
    if request.contexts:  # a durable handle is only ever asked for with a context (see _handle)
        contexts.extend(durable_handles.reply_contexts(ctx, request, open_, action))
    flags = SMB2_CREATE_FLAG_REPARSEPOINT if info.reparse_tag else 0
    return wire.encode_response(
        oplock_level=oplock_level, flags=flags, create_action=action,
        creation_time=info.creation_time, last_access_time=info.last_access_time,
        last_write_time=info.last_write_time, change_time=info.change_time,
        allocation_size=info.allocation_size, end_of_file=info.end_of_file, file_attributes=info.attributes,
        file_id=open_.file_id, contexts=encode_chain(contexts) if contexts else b"")

