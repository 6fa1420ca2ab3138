"""Operations on open handles that several commands share: open for an access mask, stat in SMB terms,
attribute and time changes, rename, delete. The fs package does the syscalls; this module knows the Open.

Objects that are not regular files or directories (symlinks, fifos, sockets, devices) are held by O_PATH fds:
the server never opens them for data (protocol notes 8.7), and never follows a symlink.
"""

from __future__ import annotations

import functools
import os
import stat
import zlib
from typing import TYPE_CHECKING

from smbsrv.fs import backend, dos_attrs, identity
from smbsrv.fs.dos_attrs import DosInfo
from smbsrv.fs.fileinfo import FileInfo
from smbsrv.fscc import attributes as fattr
from smbsrv.fscc import fs_info
from smbsrv.fscc.reparse import NfsReparse, reparse_tag_of
from smbsrv.fscc.reparse import parse as parse_reparse
from smbsrv.fscc.times import filetime_to_unix_ns
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.reparse import synthesized
from smbsrv.wire.constants import FILE_READ_DATA
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.config import ShareConfig
    from smbsrv.protocol.context import RequestContext
    from smbsrv.protocol.objects import TreeConnect

def reparse_tag_for(st: os.stat_result, share: ShareConfig) -> int:
    """The tag a real special object (symlink, FIFO, socket, device) is presented with; 0 otherwise."""
    return synthesized.tag_for_mode(st.st_mode, wsl=share.special_files == "wsl")


def stat_open(open_: Open) -> os.stat_result:
    return os.fstat(open_.fd)


def _with_client_reparse(info: FileInfo, blob: bytes | None) -> FileInfo:
    """A regular file or directory carrying a client-set reparse point reports its tag; an NFS special-file
    blob also gives the POSIX file type (through the mode's type bits, as listings carry no other field)."""
    if blob is None:
        return info
    try:
        parsed = parse_reparse(blob)
    except SmbError:
        parsed = None
    info.reparse_tag = reparse_tag_of(blob)
    info.attributes = (info.attributes | fattr.FILE_ATTRIBUTE_REPARSE_POINT) & ~fattr.FILE_ATTRIBUTE_NORMAL
    if isinstance(parsed, NfsReparse) and parsed.nfs_type in synthesized.KIND_FOR_NFS_TYPE:
        info.mode = stat.S_IMODE(info.mode) | synthesized.KIND_FOR_NFS_TYPE[parsed.nfs_type]
    return info


def info_for_open(open_: Open, st: os.stat_result | None = None) -> FileInfo:
    if st is None:
        st = os.fstat(open_.fd)
    dos = dos_attrs.read(open_.fd, st)
    share = open_.tree.share
    info = backend.file_info(st, dos, reparse_tag=reparse_tag_for(st, share), name=open_.name,
                             hide_dot_files=share.hide_dot_files, fd=open_.fd)
    if stat.S_ISLNK(st.st_mode):
        _presented_link_size(info, open_.parent_fd, open_.name, open_.path_components, share)
    if dos is not None and dos.attributes & fattr.FILE_ATTRIBUTE_REPARSE_POINT:
        return _with_client_reparse(info, open_.tree.reparse_store.get(open_.fd))
    return info


def entry_info(dir_fd: int, name: str, st: os.stat_result, tree: TreeConnect, object_fd: int = -1,
               dir_components: tuple[str, ...] = ()) -> FileInfo:
    """A listing entry. "." and ".." are no names in the directory: their caller passes an fd of the object."""
    share = tree.share
    dos = dos_attrs.read(object_fd, st) if object_fd >= 0 else dos_attrs.read_at(dir_fd, name, st)
    info = backend.file_info(st, dos, reparse_tag=reparse_tag_for(st, share), name=name,
                             hide_dot_files=share.hide_dot_files, fd=object_fd)
    if stat.S_ISLNK(st.st_mode) and object_fd < 0:
        _presented_link_size(info, dir_fd, name, dir_components + (name,), share)
    if dos is not None and dos.attributes & fattr.FILE_ATTRIBUTE_REPARSE_POINT:
        blob = tree.reparse_store.get(object_fd) if object_fd >= 0 else tree.reparse_store.get_at(dir_fd, name)
        return _with_client_reparse(info, blob)
    return info


def _presented_link_size(info: FileInfo, parent_fd: int, name: str, components: tuple[str, ...],
                         share: ShareConfig) -> None:
    """A symlink's size is the length of its target as clients see it (lstat's rule), which differs from
    the on-disk one when an absolute target inside the share is presented relative."""
    try:
        target = backend.readlink_at(parent_fd, name)
    except SmbError:
        return
    shown = synthesized.share_relative_target(target, components, share_real_path(share))
    info.end_of_file = len(os.fsencode(shown))


def reparse_buffer(open_: Open) -> bytes | None:
    """The reparse buffer of an open: synthesized for real special objects, the stored blob for files and
    directories a client set one on, None when the object is no reparse point."""
    st = os.fstat(open_.fd)
    share = open_.tree.share
    if reparse_tag_for(st, share):
        target = None
        if stat.S_ISLNK(st.st_mode):
            target = backend.readlink_at(open_.parent_fd, open_.name)
        return synthesized.buffer_for(st, target, open_.path_components, share_real_path(share),
                                      wsl=share.special_files == "wsl")
    dos = dos_attrs.read(open_.fd, st)
    if dos is None or not dos.attributes & fattr.FILE_ATTRIBUTE_REPARSE_POINT:
        return None
    return open_.tree.reparse_store.get(open_.fd)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=64)
def _real_path(path: str) -> str:
    return os.path.realpath(path)


def share_real_path(share: ShareConfig) -> str:
    return _real_path(share.path)


def list_directory(open_: Open) -> list[tuple[str, os.stat_result]]:
    """The entries of an open directory, with "." and ".." first as Windows and Samba list them. ".." of the
    share root is the root itself: nothing outside the share is ever described."""
    own = os.fstat(open_.fd)
    if open_.path_components:
        parent_fd = open_.parent_fd
        parent = os.fstat(parent_fd)
    else:
        parent = own
    return [(".", own), ("..", parent)] + backend.list_dir(open_.fd)


def directory_has_entries(open_: Open) -> bool:
    fd = open_.fd
    if not open_.granted_access & FILE_READ_DATA:
        # The caller holds DELETE; whether the directory is empty is the server's to find out, as rmdir(2)
        # needs no read permission on it either.
        with identity.as_server():
            fd = backend.open_at(open_.parent_fd, open_.name, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with os.scandir(fd) as entries:
            return any(True for _ in entries)
    finally:
        if fd != open_.fd:
            os.close(fd)


def is_read_only(open_: Open) -> bool:
    return bool(info_for_open(open_).attributes & fattr.FILE_ATTRIBUTE_READONLY)


# -- changes ------------------------------------------------------------------------------------------------

def set_dos_info(open_: Open, attributes: int | None, creation_time: int | None,
                 change_time: int | None = None) -> None:
    """Store attributes and the creation time (None: keep) and, when given, a client-set ChangeTime; any other
    change of the attributes lets ChangeTime follow the real ctime again."""
    st = os.fstat(open_.fd)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return  # special files cannot carry xattrs; their attributes are synthesized
    current = dos_attrs.read(open_.fd, st)
    if current is None:
        current = DosInfo(backend.file_attributes(st, None), dos_attrs.derived_creation_time(st))
    new_attributes = current.attributes if attributes is None else attributes
    new_attributes &= ~(fattr.FILE_ATTRIBUTE_NORMAL | fattr.FILE_ATTRIBUTE_DIRECTORY)
    if stat.S_ISDIR(st.st_mode):
        new_attributes |= fattr.FILE_ATTRIBUTE_DIRECTORY
    anchor = dos_attrs.change_anchor(st) if change_time else 0
    dos_attrs.write(open_.fd, DosInfo(new_attributes, creation_time or current.creation_time, change_time or 0,
                                      anchor))


def set_times(open_: Open, atime_nt: int | None, mtime_nt: int | None) -> None:
    backend.set_times(open_.fd, atime_ns=_nt_to_ns(atime_nt), mtime_ns=_nt_to_ns(mtime_nt))


def _nt_to_ns(value: int | None) -> int | None:
    return None if value is None else filetime_to_unix_ns(value)



def truncate(open_: Open, length: int) -> None:
    backend.ftruncate(open_.fd, length)


def rename(old_parent: int, old_name: str, new_parent: int, new_name: str, *, replace: bool) -> None:
    backend.rename_at(old_parent, old_name, new_parent, new_name, replace=replace)


def link(old_parent: int, old_name: str, new_parent: int, new_name: str) -> None:
    backend.link_at(old_parent, old_name, new_parent, new_name)


def unlink(parent_fd: int, name: str) -> None:
    backend.unlink_at(parent_fd, name)


def unlink_now(open_: Open) -> None:
    """POSIX delete: remove the name at once; handles keep working on the unlinked inode."""
    parent_fd, name = open_.parent_fd, open_.name
    if open_.is_directory:
        backend.rmdir_at(parent_fd, name)
    else:
        backend.unlink_at(parent_fd, name)
    open_.tree.share_root.note_removed(parent_fd, name)


def chmod(open_: Open, mode: int) -> None:
    """POSIX chmod through a security descriptor: the permission bits only, as Samba applies it."""
    backend.fchmod(open_.fd, mode & 0o777)


def chown_from_sids(open_: Open, owner, group) -> None:  # type: ignore[no-untyped-def]
    """Ownership changes through the Unix SIDs (S-1-22-1-uid, S-1-22-2-gid); other SIDs cannot be mapped."""
    uid = _unix_id(owner, 1)
    gid = _unix_id(group, 2)
    if uid is None and gid is None:
        return
    try:
        os.chown(f"/proc/self/fd/{open_.fd}", -1 if uid is None else uid, -1 if gid is None else gid)
    except PermissionError:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED) from None


def _unix_id(sid, kind: int) -> int | None:  # type: ignore[no-untyped-def]
    if sid is None:
        return None
    authority = sid.identifier_authority
    subs = tuple(sid.sub_authority)
    if authority == 22 and len(subs) == 2 and subs[0] == kind:
        return int(subs[1])
    # Not a Unix SID: nothing on this server it could name ([MS-DTYP] owners outside S-1-22).
    raise SmbError(NtStatus.STATUS_INVALID_OWNER)


# -- the share as a volume ----------------------------------------------------------------------------------

def volume_serial(tree: TreeConnect) -> int:
    return zlib.crc32(tree.share.name.lower().encode())


def posix_type_bits(tree: TreeConnect) -> bool:
    return tree.share.posix_file_type_bits


def posix_enabled(ctx: RequestContext) -> bool:
    """POSIX opens and info levels need the extensions negotiated on the connection and enabled on the share."""
    tree = ctx.tree
    return ctx.connection.posix_extensions and tree is not None and not tree.is_ipc and tree.share.posix


def fs_information(tree: TreeConnect, fs_class: int) -> bytes:
    st = backend.statvfs(tree.share_root.root_fd)
    attributes = fs_info.DEFAULT_FS_ATTRIBUTES | fattr.FILE_SUPPORTS_POSIX_UNLINK_RENAME
    if tree.read_only:
        attributes |= fattr.FILE_READ_ONLY_VOLUME
    if tree.share.hsm_provider:
        attributes |= fattr.FILE_SUPPORTS_REMOTE_STORAGE  # placeholders live here (docs/hsm.md)
    if backend.supports_clone(tree.share_root.root_fd):
        attributes |= fattr.FILE_SUPPORTS_BLOCK_REFCOUNTING  # FSCTL_DUPLICATE_EXTENTS_TO_FILE works here
    volume = fs_info.VolumeInfo(label=tree.share.name, serial_number=volume_serial(tree),
                                fs_attributes=attributes)
    if fs_class == fs_info.F.FileFsPosixInformation:
        return fs_info.encode_posix(st)
    return fs_info.encode(fs_class, st, volume)
