"""How a file is presented to SMB clients: its FileInfo (attributes, times, sizes, reparse tag) and its reparse
buffer, for an open (fs/handle.py) and for a directory listing entry.

Objects that are not regular files or directories (symlinks, fifos, sockets, devices) are presented as reparse
points built from the real object (reparse/synthesized.py); regular files and directories a client set a
reparse point on report the stored blob's tag ([MS-FSCC] 2.1.2).
"""

from __future__ import annotations

import functools
import os
import stat
from typing import TYPE_CHECKING

from smbsrv.errors import SmbError
from smbsrv.fs import backend, dos_attrs
from smbsrv.fs.fileinfo import FileInfo
from smbsrv.fscc import attributes as fattr
from smbsrv.fscc.reparse import NfsReparse, reparse_tag_of
from smbsrv.fscc.reparse import parse as parse_reparse
from smbsrv.reparse import synthesized

if TYPE_CHECKING:
    from smbsrv.config import ShareConfig
    from smbsrv.fs.dos_attrs import DosInfo
    from smbsrv.fs.reparse_store import ReparseStore


def reparse_tag_for(st: os.stat_result, share: ShareConfig) -> int:
    """The tag a real special object (symlink, FIFO, socket, device) is presented with; 0 otherwise."""
    return synthesized.tag_for_mode(st.st_mode, wsl=share.special_files == "wsl")


@functools.lru_cache(maxsize=64)
def _real_path(path: str) -> str:
    return os.path.realpath(path)


def share_real_path(share: ShareConfig) -> str:
    return _real_path(share.path)


# FileInfo of open files by (st_dev, st_ino), with what each was built from. A Linux client's stat opens the file,
# asks for FileAllInformation and closes it (and `ls -l`, `git status` or a build stat the same files again and
# again), so the same answer is built twice per stat. The FileInfo of a regular file or directory is a function
# of its stat, its DOS xattr, its name and the share's settings, plus the file's extents where st_blocks says
# more than its data (data_allocation, which also depends on the kind of fd then: those are never kept). An
# entry is used while all of them are as they were: every stat field file_info reads (st_dev and st_ino are
# the key, st_rdev and st_blksize are fixed for an inode), the DosInfo object (dos_attrs hands out one per ctime
# it read or wrote, so a change of the xattr through this server, or one visible in ctime, gives a new one),
# the name (a rename, or another hard link) and the ShareConfig. Files with a client-set reparse point (a
# second xattr) and special files (a link's target) are always built anew. The limit of the DOS-attribute
# cache holds too: a change behind the server's back within one ctime tick that leaves every stat field as it
# was is not seen until the file changes again. Bounded: dropped whole when full.
_shown: dict[tuple[int, int], tuple[tuple[object, ...], FileInfo]] = {}
_SHOWN_LIMIT = 4096


def open_info(fd: int, parent_fd: int, name: str, st: os.stat_result, share: ShareConfig,
              reparse_store: ReparseStore | None, components: tuple[str, ...]) -> FileInfo:
    """The FileInfo of an open file, the caller's own to change: `fd` its fd, `name` its name in `parent_fd`,
    `st` its fstat."""
    mode = st.st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return _open_info(fd, parent_fd, name, st, share, reparse_store, components, dos_attrs.read(fd, st))
    dos = dos_attrs.read(fd, st)
    key = (st.st_dev, st.st_ino)
    built_from = (st.st_ctime_ns, st.st_mtime_ns, st.st_atime_ns, st.st_size, st.st_blocks, st.st_nlink, mode,
                  st.st_uid, st.st_gid, dos, name, share)
    shown = _shown.get(key)
    if shown is not None and shown[0] == built_from:
        return shown[1].copy()
    info = _open_info(fd, parent_fd, name, st, share, reparse_store, components, dos)
    if (dos is None or not dos.attributes & fattr.FILE_ATTRIBUTE_REPARSE_POINT) and backend.allocation_is_blocks(st):
        if len(_shown) >= _SHOWN_LIMIT:
            _shown.clear()
        _shown[key] = (built_from, info)
        return info.copy()
    return info


def _open_info(fd: int, parent_fd: int, name: str, st: os.stat_result, share: ShareConfig,
               reparse_store: ReparseStore | None, components: tuple[str, ...], dos: DosInfo | None) -> FileInfo:
    info = backend.file_info(st, dos, reparse_tag=reparse_tag_for(st, share), name=name,
                             hide_dot_files=share.hide_dot_files, fd=fd)
    if stat.S_ISLNK(st.st_mode):
        _presented_link_size(info, parent_fd, name, components, share)
    if dos is not None and dos.attributes & fattr.FILE_ATTRIBUTE_REPARSE_POINT:
        assert reparse_store is not None
        return _with_client_reparse(info, reparse_store.get(fd))
    return info


def entry_info(dir_fd: int, name: str, st: os.stat_result, share: ShareConfig, reparse_store: ReparseStore,
               object_fd: int = -1, dir_components: tuple[str, ...] = ()) -> FileInfo:
    """A listing entry. "." and ".." are no names in the directory: their caller passes an fd of the object."""
    dos = dos_attrs.read(object_fd, st) if object_fd >= 0 else dos_attrs.read_at(dir_fd, name, st)
    info = backend.file_info(st, dos, reparse_tag=reparse_tag_for(st, share), name=name,
                             hide_dot_files=share.hide_dot_files, fd=object_fd)
    if stat.S_ISLNK(st.st_mode) and object_fd < 0:
        _presented_link_size(info, dir_fd, name, dir_components + (name,), share)
    if dos is not None and dos.attributes & fattr.FILE_ATTRIBUTE_REPARSE_POINT:
        blob = reparse_store.get(object_fd) if object_fd >= 0 else reparse_store.get_at(dir_fd, name)
        return _with_client_reparse(info, blob)
    return info


def reparse_buffer(fd: int, parent_fd: int, name: str, st: os.stat_result, share: ShareConfig,
                   reparse_store: ReparseStore | None, components: tuple[str, ...]) -> bytes | None:
    """Synthesized for real special objects, the stored blob for files and directories a client set one on,
    None when the object is no reparse point."""
    if reparse_tag_for(st, share):
        target = None
        if stat.S_ISLNK(st.st_mode):
            target = backend.readlink_at(parent_fd, name)
        return synthesized.buffer_for(st, target, components, share_real_path(share),
                                      wsl=share.special_files == "wsl")
    dos = dos_attrs.read(fd, st)
    if dos is None or not dos.attributes & fattr.FILE_ATTRIBUTE_REPARSE_POINT:
        return None
    assert reparse_store is not None
    return reparse_store.get(fd)


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
