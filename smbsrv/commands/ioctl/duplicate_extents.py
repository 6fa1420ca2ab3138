"""FSCTL_DUPLICATE_EXTENTS_TO_FILE and _EX: block cloning ([MS-FSCC] 2.3.7-2.3.10, [MS-FSA] 2.1.5.10.6).

cifs.ko sends it for FICLONE / FICLONERANGE (`cp --reflink`). The range is cloned with FICLONERANGE, so only
file systems that share extents (btrfs, XFS with reflink) can do it; the share advertises
FILE_SUPPORTS_BLOCK_REFCOUNTING exactly there (fs/backend.supports_clone). The checks follow Samba 4.17's
fsctl_dup_extents_send, which matches Windows Server 2016 where the spec is vague.
"""

from __future__ import annotations

from collections.abc import Callable

from smbsrv.commands.ioctl.copychunk import same_file
from smbsrv.fs import backend
from smbsrv.fscc import duplicate_extents as data
from smbsrv.fscc.attributes import FILE_ATTRIBUTE_SPARSE_FILE
from smbsrv.hsm import access as hsm_access
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.wire import ioctl as ioctl_wire
from smbsrv.wire.constants import FILE_APPEND_DATA, FILE_EXECUTE, FILE_READ_DATA, FILE_WRITE_DATA
from smbsrv.wire.status import NtStatus

FSCTL_DUPLICATE_EXTENTS_TO_FILE_EX = 0x000983E8  # [MS-FSCC] 2.3.9
_MAX_OFFSET = 0x7FFFFFFFFFFFFFFF


def duplicate_extents(ctx: RequestContext, open_: Open, request: ioctl_wire.IoctlRequest) -> bytes:
    return _duplicate(ctx, open_, request, data.decode)


def duplicate_extents_ex(ctx: RequestContext, open_: Open, request: ioctl_wire.IoctlRequest) -> bytes:
    # Flags may ask for DUPLICATE_EXTENTS_DATA_EX_SOURCE_ATOMIC: one FICLONERANGE is atomic for the source.
    return _duplicate(ctx, open_, request, data.decode_ex)


def _duplicate(ctx: RequestContext, target: Open, request: ioctl_wire.IoctlRequest,
               decode: Callable[[memoryview], data.DuplicateExtents]) -> bytes:
    if not backend.supports_clone(target.tree.share_root.root_fd):
        # Samba answers this where the share does not advertise FILE_SUPPORTS_BLOCK_REFCOUNTING, as Windows does
        # on a volume without block cloning (NTFS); cifs.ko reports EOPNOTSUPP for it.
        raise SmbError(NtStatus.STATUS_INVALID_DEVICE_REQUEST)
    extents = decode(request.input)
    source = _source_open(ctx, extents.source_file_id, target)
    byte_count = _checked_length(source, target, extents)
    if byte_count == 0:
        return b""
    if same_file(source, target) and (extents.source_offset < extents.target_offset + byte_count
                                      and extents.target_offset < extents.source_offset + byte_count):
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)  # [MS-FSA] 2.1.5.10.6: overlapping ranges of one stream
    if _is_sparse(source) and not _is_sparse(target):
        # Windows Server 2016 (and Samba): a sparse source into a non-sparse target is refused; the other way
        # round works, whatever [MS-FSCC] 2.3.8 says.
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    _check_handles(source, target)
    if source.stream is not None or target.stream is not None:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)  # a named stream is an xattr: no extents to share
    # No byte-range lock check: Windows clones over other handles' locks (smbtorture dup_extents_src_lock).

    def clone() -> bytes:
        backend.clone_range(source.handle.fd, extents.source_offset, target.handle.fd, extents.target_offset, byte_count)
        return b""

    if target.tree.share.hsm_provider:  # placeholders hydrate first (docs/hsm.md)
        hsm_access.before_copy(ctx, target, source, clone)
    return clone()


def _source_open(ctx: RequestContext, file_id: tuple[int, int], target: Open) -> Open:
    """The source is an open of the same session on the same volume; anything else is STATUS_INVALID_HANDLE
    (Windows and Samba; [MS-FSCC] 2.3.8 names INVALID_PARAMETER)."""
    session = ctx.session
    assert session is not None
    source = session.opens.get(file_id[1])
    if (source is None or source.file_id != file_id or source.closed or source.pipe is not None
            or source.handle.key[0] != target.handle.key[0]):
        raise SmbError(NtStatus.STATUS_INVALID_HANDLE)
    return source


def _checked_length(source: Open, target: Open, extents: data.DuplicateExtents) -> int:
    """The ByteCount to clone: the source must hold the whole range (else STATUS_NOT_SUPPORTED); a range past
    the target's end is cut at that end, as Windows does (the target never grows: cifs.ko extends it first)."""
    count = extents.byte_count
    if min(extents.source_offset, extents.target_offset, count) < 0 or max(
            extents.source_offset, extents.target_offset) > _MAX_OFFSET - count:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if source.handle.size() < extents.source_offset + count:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    target_size = target.handle.size()
    if target_size < extents.target_offset + count:
        if extents.target_offset > target_size:
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        count = target_size - extents.target_offset
    return count


def _is_sparse(open_: Open) -> bool:
    return bool(open_.info().attributes & FILE_ATTRIBUTE_SPARSE_FILE)


def _check_handles(source: Open, target: Open) -> None:
    """Samba's vfs_offload_token_check_handles: one session, no directories, a writable target and a
    readable source."""
    if source.session is not target.session or source.is_directory or target.is_directory:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if not target.granted_access & (FILE_WRITE_DATA | FILE_APPEND_DATA):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if not source.granted_access & (FILE_READ_DATA | FILE_EXECUTE):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
