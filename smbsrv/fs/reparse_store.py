"""Client-set reparse points: opaque REPARSE_DATA_BUFFER blobs kept with the file, never interpreted on disk.

The server never turns a blob into a real symlink or device (protocol notes 8.8, 16.2): it is data the
client gave and gets back. Where it lives:
- small buffers (the common case: symlinks, NFS special files) in one xattr of the file, `user.smbsrv.reparse`;
- larger ones, up to the 16 KiB Windows limit, in a side store outside the share (ext4 keeps all of an
  inode's xattrs in one ~4 KB block, so one xattr cannot hold them). The file's xattr then holds a reference:
  a random id naming the side file and the SHA-256 of the blob. A side file whose inode was deleted is
  unreachable (no xattr points at it) and harmless; a blob is only ever found through its file.
The FILE_ATTRIBUTE_REPARSE_POINT bit in the DOS xattr says a file has one, so stat paths that see no such
bit never read this xattr.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct

from smbsrv.errors import SmbError
from smbsrv.fs import identity, xattr
from smbsrv.fs.errno_map import raise_for_oserror
from smbsrv.wire.status import NtStatus

XATTR_NAME = "user.smbsrv.reparse"
# Kept inline up to this size; xattr.set_blob compresses, but ext4's shared ~4 KB block also holds the DOS
# attributes and anything else the file carries.
INLINE_LIMIT = 2048
_REFERENCE_MAGIC = b"SRPR"
_REFERENCE = struct.Struct("<4s16s32sI")  # magic, side-file id, sha256 of the blob, length


class ReparseStore:
    def __init__(self, side_directory: str) -> None:
        self.side_directory = side_directory

    def _side_path(self, blob_id: bytes) -> str:
        return os.path.join(self.side_directory, blob_id.hex())

    def get(self, fd: int) -> bytes | None:
        return self._resolve(xattr.get_blob(fd, XATTR_NAME))

    def get_at(self, dir_fd: int, name: str) -> bytes | None:
        return self._resolve(xattr.get_blob_at(dir_fd, name, XATTR_NAME))

    def _resolve(self, stored: bytes | None) -> bytes | None:
        if stored is None or not stored.startswith(_REFERENCE_MAGIC) or len(stored) != _REFERENCE.size:
            return stored
        _, blob_id, digest, length = _REFERENCE.unpack(stored)
        try:
            with identity.as_server(), open(self._side_path(blob_id), "rb") as side:
                blob = side.read(length + 1)
        except OSError:
            return None
        if len(blob) != length or hashlib.sha256(blob).digest() != digest:
            return None
        return blob

    def set(self, fd: int, blob: bytes) -> None:
        previous = self._reference_id(fd)
        if len(blob) <= INLINE_LIMIT and not blob.startswith(_REFERENCE_MAGIC):
            stored = blob
        else:
            blob_id = secrets.token_bytes(16)
            self._write_side(blob_id, blob)
            stored = _REFERENCE.pack(_REFERENCE_MAGIC, blob_id, hashlib.sha256(blob).digest(), len(blob))
        try:
            xattr.set_blob(fd, XATTR_NAME, stored)
        except OSError as exc:
            raise_for_oserror(exc)
        if previous is not None:
            self._remove_side(previous)

    def remove(self, fd: int) -> None:
        previous = self._reference_id(fd)
        xattr.remove_blob(fd, XATTR_NAME)
        if previous is not None:
            self._remove_side(previous)

    def _reference_id(self, fd: int) -> bytes | None:
        stored = xattr.get_blob(fd, XATTR_NAME)
        if stored is not None and stored.startswith(_REFERENCE_MAGIC) and len(stored) == _REFERENCE.size:
            return bytes(_REFERENCE.unpack(stored)[1])
        return None

    def _write_side(self, blob_id: bytes, blob: bytes) -> None:
        with identity.as_server():
            self._write_side_file(blob_id, blob)

    def _write_side_file(self, blob_id: bytes, blob: bytes) -> None:
        try:
            os.makedirs(self.side_directory, mode=0o700, exist_ok=True)
            temporary = self._side_path(blob_id) + ".tmp"
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(descriptor, blob)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.rename(temporary, self._side_path(blob_id))
        except OSError:
            raise SmbError(NtStatus.STATUS_DISK_FULL) from None

    def _remove_side(self, blob_id: bytes) -> None:
        with identity.as_server():
            try:
                os.unlink(self._side_path(blob_id))
            except OSError:
                pass
