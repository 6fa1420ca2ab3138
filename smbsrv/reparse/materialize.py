"""Share option `materialize_special_files`: client-set symlinks, FIFOs and sockets become real objects.

Users who share one tree over NFS and SMB ask for this (Samba and ksmbd keep blobs). It is safe here only
because the server never follows a symlink itself: a link a client makes is one more name that the resolver
reports and never walks through, whatever its target. Device nodes stay blobs unless the share also sets
`materialize_device_nodes`, since a device node made by a client would be a way into the server's hardware.

What qualifies: a reparse point SET on the handle that created an empty regular file (or an empty directory,
for a symlink: cifs.ko makes `ln -s dir` that way), with no other open of it. The real object is made under a
temporary name in the same directory and renamed over the placeholder in one step, and the handle is moved
onto it, so the QUERY_INFO that cifs.ko sends next in its compound describes what is now on disk.
"""

from __future__ import annotations

import os
import secrets
import stat
from typing import TYPE_CHECKING

from smbsrv.errors import SmbError
from smbsrv.fs import backend, streams
from smbsrv.fscc.reparse import (
    NFS_SPECFILE_LNK,
    NfsReparse,
    SymlinkReparse,
    WslSpecialReparse,
    parse,
)
from smbsrv.protocol.objects import Open
from smbsrv.reparse.synthesized import KIND_FOR_NFS_TYPE, KIND_FOR_WSL_TAG

if TYPE_CHECKING:
    from smbsrv.state import ServerState

# WSL devices carry their numbers in EAs this server does not keep: only FIFOs and sockets are made from them.
_WSL_KINDS = {tag: kind for tag, kind in KIND_FOR_WSL_TAG.items() if kind in (stat.S_IFIFO, stat.S_IFSOCK)}
_DEVICE_KINDS = (stat.S_IFCHR, stat.S_IFBLK)
_SPECIAL_MODE = 0o644


def _what_to_make(buffer: bytes, devices_allowed: bool) -> tuple[str, int, int] | None:
    """("symlink", target) / ("node", kind, rdev) for a buffer that can become a real object, else None."""
    parsed = parse(buffer)
    if isinstance(parsed, SymlinkReparse):
        target = parsed.substitute_name
        if parsed.flags & 1:
            return ("symlink", target.replace("\\", "/"), 0)  # type: ignore[return-value]
        if target.startswith("/"):
            return ("symlink", target, 0)  # type: ignore[return-value]
        return None  # a Windows path (\??\C:\...) has no meaning on this server
    if isinstance(parsed, NfsReparse):
        if parsed.nfs_type == NFS_SPECFILE_LNK:
            return ("symlink", parsed.target, 0)  # type: ignore[return-value]
        kind = KIND_FOR_NFS_TYPE.get(parsed.nfs_type)
        if kind is None or (kind in _DEVICE_KINDS and not devices_allowed):
            return None
        return ("node", kind, os.makedev(parsed.major, parsed.minor) if kind in _DEVICE_KINDS else 0)
    if isinstance(parsed, WslSpecialReparse) and parsed.tag in _WSL_KINDS:
        return ("node", _WSL_KINDS[parsed.tag], 0)
    return None


def try_materialize(server: ServerState, open_: Open, st: os.stat_result, buffer: bytes) -> bool:
    """Replace the placeholder behind `open_` with the real object `buffer` describes. False (and nothing
    changed) when the share does not ask for it or the buffer or file does not qualify."""
    share = open_.tree.share
    if not share.materialize_special_files:
        return False
    if not (stat.S_ISREG(st.st_mode) and st.st_size == 0 or stat.S_ISDIR(st.st_mode)):
        return False
    if len(server.files.opens(open_.handle.key)) != 1:
        return False
    if server.files.stream_opens(open_.handle.key) or streams.names(open_.handle.fd):
        return False  # a symlink or device holds no named streams: the file keeps its stored reparse point
    plan = _what_to_make(buffer, share.materialize_device_nodes)
    if plan is None or (stat.S_ISDIR(st.st_mode) and plan[0] != "symlink"):
        return False
    parent_fd, name = open_.handle.parent_fd, open_.handle.name
    temporary = f".smbsrv-{secrets.token_hex(8)}"
    try:
        if plan[0] == "symlink":
            backend.symlink_at(plan[1], parent_fd, temporary)
        else:
            os.mknod(temporary, plan[1] | _SPECIAL_MODE, plan[2], dir_fd=parent_fd)
    except (OSError, SmbError):
        return False
    try:
        if stat.S_ISDIR(st.st_mode):
            # A directory cannot be replaced by rename(2): exchange the names, then remove the old one.
            backend.rename_exchange_at(parent_fd, temporary, parent_fd, name)
            os.rmdir(temporary, dir_fd=parent_fd)
        else:
            backend.rename_at(parent_fd, temporary, parent_fd, name, replace=True)
        new_fd = backend.open_at(parent_fd, name, os.O_PATH)
    except (OSError, SmbError):
        _discard(parent_fd, temporary)
        return False
    _move_handle(server, open_, new_fd)
    return True


def _discard(parent_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=parent_fd)
    except OSError:
        pass


def _move_handle(server: ServerState, open_: Open, new_fd: int) -> None:
    """The handle now names the real object: it is a special object (O_PATH, no data access)."""
    os.close(open_.handle.fd)
    open_.handle.fd = new_fd
    new = os.fstat(new_fd)
    open_.is_directory = False
    server.files.rekey(open_, (new.st_dev, new.st_ino))
