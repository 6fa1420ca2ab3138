"""The share as a volume: its serial number, file system information ([MS-FSCC] 2.5) and whether POSIX
opens and info levels apply to a request."""

from __future__ import annotations

import hashlib
import zlib
from typing import TYPE_CHECKING

from smbsrv.fs import backend
from smbsrv.fscc import attributes as fattr
from smbsrv.fscc import fs_info

if TYPE_CHECKING:
    from smbsrv.protocol.context import RequestContext
    from smbsrv.protocol.objects import TreeConnect


def volume_serial(tree: TreeConnect) -> int:
    return zlib.crc32(tree.share.name.lower().encode())


def volume_id(share_name: str) -> bytes:
    """16 bytes naming the share as a volume, the same for every server run: FileFsObjectIdInformation's
    ObjectId and the BirthVolumeId of every file's object id (Samba uses one MD4 of the share name for both)."""
    return hashlib.sha256(b"smbsrv volume " + share_name.lower().encode()).digest()[:16]


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
    if tree.share.named_streams:
        attributes |= fattr.FILE_NAMED_STREAMS  # fs/streams.py
    if tree.share.hsm_provider:
        attributes |= fattr.FILE_SUPPORTS_REMOTE_STORAGE  # placeholders live here (docs/hsm.md)
    if backend.supports_clone(tree.share_root.root_fd):
        attributes |= fattr.FILE_SUPPORTS_BLOCK_REFCOUNTING  # FSCTL_DUPLICATE_EXTENTS_TO_FILE works here
    volume = fs_info.VolumeInfo(label=tree.share.name, serial_number=volume_serial(tree),
                                fs_attributes=attributes, object_id=volume_id(tree.share.name))
    if fs_class == fs_info.F.FileFsPosixInformation:
        return fs_info.encode_posix(st)
    return fs_info.encode(fs_class, st, volume)
