"""The `directory` provider: content kept as files under a cold-tier directory (a slower disk, an NFS mount).

Objects are content-addressed files `<root>/<key[:2]>/<key>`, written to a temporary name, fsynced and renamed
into place, so a crash during store leaves no half object under a real key. The version of an object is its
size and mtime in nanoseconds. The root missing or unreadable (an NFS mount gone, a disk unplugged) is
`ProviderUnavailable`; a missing object under a present root is `ProviderError`.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Iterator

from smbsrv.hsm.providers import CHUNK_BYTES, ProviderError, ProviderUnavailable, log_request

_COPY_BYTES = 8 * 1024 * 1024


def _copy(source: int, target: int, size: int) -> None:
    """copy_file_range where the kernel can (same file system: reflinks or in-kernel copies), else through a
    buffer (the cold tier is usually another file system: EXDEV)."""
    offset = 0
    in_kernel = True
    while offset < size:
        length = min(_COPY_BYTES, size - offset)
        if in_kernel:
            try:
                copied = os.copy_file_range(source, target, length, offset, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                in_kernel = False
                continue
        else:
            piece = os.pread(source, length, offset)
            copied = len(piece)
            written = 0
            while written < copied:
                written += os.pwrite(target, memoryview(piece)[written:], offset + written)
        if copied == 0:
            raise ProviderError("source file shrank during store")
        offset += copied


class DirectoryProvider:
    kind = "directory"

    def __init__(self, provider_id: str, root: str) -> None:
        self.provider_id = provider_id
        self.root = os.path.abspath(root)

    def _object_path(self, key: str) -> str:
        if not key or "/" in key or key.startswith("."):
            raise ProviderError(f"bad object key {key!r}")
        return os.path.join(self.root, key[:2], key)

    def _open(self, key: str) -> int:
        self.health()
        try:
            return os.open(self._object_path(key), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise ProviderError(f"object {key} not found in {self.root}") from None
        except OSError as exc:
            raise ProviderUnavailable(exc.errno, f"{self.root}: {exc.strerror}") from None

    def fetch_range(self, key: str, offset: int, length: int) -> bytes:
        log_request(self, "get-range", key, offset, length)
        fd = self._open(key)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def fetch(self, key: str, size: int) -> Iterator[bytes]:
        log_request(self, "get", key, 0, size)
        fd = self._open(key)
        try:
            offset = 0
            while True:
                piece = os.pread(fd, CHUNK_BYTES, offset)
                if not piece:
                    return
                offset += len(piece)
                yield piece
        except OSError as exc:
            raise ProviderUnavailable(exc.errno, f"{self.root}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def store(self, key: str, fd: int, size: int) -> str:
        log_request(self, "put", key, 0, size)
        self.health()
        path = self._object_path(key)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        temporary = os.path.join(os.path.dirname(path), f".tmp-{uuid.uuid4().hex}")
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            _copy(fd, out, size)
            os.fsync(out)
            st = os.fstat(out)
        except BaseException:
            os.close(out)
            os.unlink(temporary)
            raise
        os.close(out)
        os.rename(temporary, path)
        directory = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return f"{st.st_size}:{st.st_mtime_ns}"

    def stat(self, key: str) -> tuple[int, str] | None:
        log_request(self, "head", key)
        self.health()
        try:
            st = os.stat(self._object_path(key), follow_symlinks=False)
        except FileNotFoundError:
            return None
        return st.st_size, f"{st.st_size}:{st.st_mtime_ns}"

    def delete(self, key: str) -> None:
        log_request(self, "delete", key)
        self.health()
        try:
            os.unlink(self._object_path(key))
        except FileNotFoundError:
            pass

    def health(self) -> None:
        try:
            st = os.stat(self.root)
        except OSError as exc:
            raise ProviderUnavailable(exc.errno, f"cold tier {self.root}: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode) or not os.access(self.root, os.R_OK | os.X_OK):
            raise ProviderUnavailable(errno.ENOTDIR, f"cold tier {self.root} is not a readable directory")
