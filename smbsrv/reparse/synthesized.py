"""Reparse buffers built from real objects on the server: symlinks, FIFOs, sockets and device nodes
(protocol notes 8.8). Linux cannot attach xattrs to these, so their reparse data always comes from lstat and
readlink, and stays consistent with what the file really is.

Symlink targets. A relative target is sent as it is (with SYMLINK_FLAG_RELATIVE). An absolute target that
points inside the share is rewritten relative to the link's own directory, because the client resolves an
absolute target against its own root (cifs.ko: the mount's root or `symlinkroot=`), where the server's
absolute path means nothing; the relative form leads to the same object from any mount point. This is wider
than Samba's rule (only targets below the link's directory), so that `/srv/share/a/x` seen from
`/srv/share/b/link` becomes `../a/x`. The comparison is textual on the normalised path (the server resolves
nothing to do it). Any other absolute target is sent unchanged: it points outside the share and only the
client can decide what it means; the server never follows it.
"""

from __future__ import annotations

import os
import posixpath
import stat

from smbsrv.fscc import attributes as fattr
from smbsrv.fscc.reparse import (
    NFS_SPECFILE_BLK,
    NFS_SPECFILE_CHR,
    NFS_SPECFILE_FIFO,
    NFS_SPECFILE_LNK,
    NFS_SPECFILE_SOCK,
    build_nfs,
    build_symlink,
    build_wsl_special,
)

NFS_TYPE_FOR_KIND = {
    stat.S_IFIFO: NFS_SPECFILE_FIFO,
    stat.S_IFSOCK: NFS_SPECFILE_SOCK,
    stat.S_IFCHR: NFS_SPECFILE_CHR,
    stat.S_IFBLK: NFS_SPECFILE_BLK,
}
WSL_TAG_FOR_KIND = {
    stat.S_IFIFO: fattr.IO_REPARSE_TAG_LX_FIFO,
    stat.S_IFSOCK: fattr.IO_REPARSE_TAG_AF_UNIX,
    stat.S_IFCHR: fattr.IO_REPARSE_TAG_LX_CHR,
    stat.S_IFBLK: fattr.IO_REPARSE_TAG_LX_BLK,
}

# The way back, for buffers clients set: NFS types (symlinks included) and WSL tags to Unix file types.
KIND_FOR_NFS_TYPE = {nfs_type: kind for kind, nfs_type in NFS_TYPE_FOR_KIND.items()} | {NFS_SPECFILE_LNK: stat.S_IFLNK}
KIND_FOR_WSL_TAG = {tag: kind for kind, tag in WSL_TAG_FOR_KIND.items()}

def tag_for_mode(mode: int, *, wsl: bool) -> int:
    """The tag a real object is presented with; 0 for regular files and directories."""
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return fattr.IO_REPARSE_TAG_SYMLINK
    if kind in NFS_TYPE_FOR_KIND:
        return WSL_TAG_FOR_KIND[kind] if wsl else fattr.IO_REPARSE_TAG_NFS
    return 0


def share_relative_target(target: str, link_components: tuple[str, ...], share_path: str) -> str:
    """The target as the client should see it (module docstring): relative when it stays in the share."""
    if not target.startswith("/"):
        return target
    root = posixpath.normpath(share_path)
    normalised = posixpath.normpath(target)
    if normalised != root and not normalised.startswith(root.rstrip("/") + "/"):
        return target
    link_directory = posixpath.join(root, *link_components[:-1])
    return posixpath.relpath(normalised, link_directory)


def inside_share_components(target: str, link_components: tuple[str, ...], share_path: str
                            ) -> tuple[str, ...] | None:
    """Where a link's target leads, as components from the share root, when it stays inside the share; None
    when it leaves it (a `..` above the root, or an absolute path elsewhere). Lexical only: the result is
    walked again from the root with O_NOFOLLOW, so a symlink on the way is met again, never followed."""
    shown = share_relative_target(target, link_components, share_path)
    if shown.startswith("/"):
        return None
    components = list(link_components[:-1])
    for part in shown.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not components:
                return None
            components.pop()
        else:
            components.append(part)
    return tuple(components)


def symlink_buffer(target: str, link_components: tuple[str, ...], share_path: str) -> bytes:
    shown = share_relative_target(target, link_components, share_path)
    return build_symlink(shown, shown, not shown.startswith("/"))


def special_file_buffer(st: os.stat_result, *, wsl: bool) -> bytes:
    kind = stat.S_IFMT(st.st_mode)
    if wsl:
        return build_wsl_special(WSL_TAG_FOR_KIND[kind])
    nfs_type = NFS_TYPE_FOR_KIND[kind]
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        return build_nfs(nfs_type, major=os.major(st.st_rdev), minor=os.minor(st.st_rdev))
    return build_nfs(nfs_type)


def buffer_for(st: os.stat_result, link_target: str | None, link_components: tuple[str, ...], share_path: str,
               *, wsl: bool) -> bytes:
    """The reparse buffer of a real special object (`link_target` is its readlink text when it is a symlink)."""
    if stat.S_ISLNK(st.st_mode):
        assert link_target is not None
        return symlink_buffer(link_target, link_components, share_path)
    return special_file_buffer(st, wsl=wsl)
