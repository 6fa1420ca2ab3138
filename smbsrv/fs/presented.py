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
    from smbsrv.fs.reparse_store import ReparseStore


def reparse_tag_for(st: os.stat_result, share: ShareConfig) -> int:
    """The tag a real special object (symlink, FIFO, socket, device) is presented with; 0 otherwise."""
    return synthesized.tag_for_mode(st.st_mode, wsl=share.special_files == "wsl")


@functools.lru_cache(maxsize=64)
def _real_path(path: str) -> str:
    return os.path.realpath(path)


def share_real_path(share: ShareConfig) -> str:
    return _real_path(share.path)


def open_info(fd: int, parent_fd: int, name: str, st: os.stat_result, share: ShareConfig,
              reparse_store: ReparseStore | None, components: tuple[str, ...]) -> FileInfo:
    """The FileInfo of an open file: `fd` its fd, `name` its name in `parent_fd`, `st` its fstat."""
    dos = dos_attrs.read(fd, st)
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
