"""Hydration: a placeholder's content fetched from its provider into the file itself, once, crash-safely.

One fetch per file: every waiter (SMB opens on any connection, the fanotify listener) joins the one
`Hydration` in flight for the file's (st_dev, st_ino). The content is written into the same inode (links,
mode, owner, xattrs and open handles all stay), then the finish runs in this order:

1. every byte was written and the SHA-256 of what the provider sent equals the mark's;
2. the placeholder's mtime is given back (hydration is not a modification) and the data is fsynced;
3. the mark is removed in one removexattr (the commit point), and that is fsynced too;
4. the OFFLINE / RECALL_ON_DATA_ACCESS hint in the DOS attributes is cleared.

A crash (SIGKILL, power loss) before step 3 leaves the mark, so the file is still a placeholder: whatever
part of the content was written is never presented as the whole file, and the next access hydrates again
from the start. After step 3 the file is complete on disk. A failed verification punches the written data
out again and leaves the placeholder as it was.

All of this is the server's own work: it runs in worker threads, which start as the server (fs/identity.py);
the SMB access check of the request that caused it was made before. The writes go through an fd the server
opens itself, so a client that may only read still gets the file hydrated.

In-flight state lives here rather than in files.FileState because it outlives the opens that caused it (a
hydration started by a READ completes after that handle closes); it is keyed like the FileTable.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from smbsrv.fs import dos_attrs, identity
from smbsrv.fscc.attributes import FILE_ATTRIBUTE_OFFLINE, FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS
from smbsrv.hsm import mark as marks
from smbsrv.hsm.providers import Provider, ProviderError

log = logging.getLogger(__name__)

FileKey = tuple[int, int]
PLACEHOLDER_ATTRIBUTES = FILE_ATTRIBUTE_OFFLINE | FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
# Progress is published to state_dir for `smbsrv hsm status` at most this often.
_PROGRESS_INTERVAL_S = 0.5


@dataclass(eq=False)
class Hydration:
    key: FileKey
    mark: marks.Mark
    provider: Provider
    name: str  # for logs and `smbsrv hsm status`
    future: concurrent.futures.Future[None] = field(default_factory=concurrent.futures.Future)
    done_bytes: int = 0
    started: float = field(default_factory=time.time)


class Hydrator:
    """Hydrations in flight in this process, by file. One per process: a file reachable from two shares (or
    from a share and the fanotify path) still gets one fetch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[FileKey, Hydration] = {}
        # Fetches are network- and disk-bound; a few at a time keep a 2-core server responsive.
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="hsm",
                                                               initializer=identity.become_root)
        self.progress_dir = ""

    def inflight(self) -> list[Hydration]:
        with self._lock:
            return list(self._inflight.values())

    def get(self, key: FileKey) -> Hydration | None:
        with self._lock:
            return self._inflight.get(key)

    def start(self, fd: int, key: FileKey, mark: marks.Mark, provider: Provider, name: str) -> Hydration:
        """The hydration of the file behind `fd` (any fd of it, O_PATH included; the caller keeps its own):
        the one already running, or a new one started in a worker thread."""
        with self._lock:
            running = self._inflight.get(key)
            if running is not None:
                return running
            hydration = self._inflight[key] = Hydration(key, mark, provider, name)
        try:
            # The fd the content is written through: the server's own, opened through the /proc link of the
            # caller's fd (which may be read-only or O_PATH), before the caller can close it.
            write_fd = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            self._finish(hydration, exc)
            return hydration
        self.executor.submit(self._run, hydration, write_fd)
        return hydration

    def run_here(self, fd: int, key: FileKey, mark: marks.Mark, provider: Provider, name: str) -> None:
        """Hydrate through `fd` (writable, owned by the caller) in the calling thread, or wait for the
        hydration already in flight (the fanotify listener: its event fd is the only one whose writes and
        reads raise no further events)."""
        with self._lock:
            running = self._inflight.get(key)
            if running is None:
                hydration = self._inflight[key] = Hydration(key, mark, provider, name)
        if running is not None:
            running.future.result()
            return
        try:
            hydrate_fd(fd, hydration, self._publish)
        except BaseException as exc:
            self._finish(hydration, exc)
            raise
        self._finish(hydration, None)

    def _run(self, hydration: Hydration, write_fd: int) -> None:
        error: BaseException | None = None
        try:
            hydrate_fd(write_fd, hydration, self._publish)
        except BaseException as exc:  # noqa: BLE001  (handed to every waiter through the future)
            error = exc
        finally:
            os.close(write_fd)
        self._finish(hydration, error)

    def _finish(self, hydration: Hydration, error: BaseException | None) -> None:
        with self._lock:
            self._inflight.pop(hydration.key, None)
        self._unpublish(hydration)
        if error is None:
            log.info("hsm hydrated %s (%d bytes) in %.3f s", hydration.name, hydration.mark.size,
                     time.time() - hydration.started)
            hydration.future.set_result(None)
        else:
            log.warning("hsm hydration of %s failed: %s", hydration.name, error)
            hydration.future.set_exception(error)

    # -- progress for `smbsrv hsm status` (the server's own state files) ----------------------------------------

    def _progress_path(self, hydration: Hydration) -> str:
        return os.path.join(self.progress_dir, f"{hydration.key[0]}-{hydration.key[1]}.json")

    def _publish(self, hydration: Hydration) -> None:
        if not self.progress_dir:
            return
        path = self._progress_path(hydration)
        temporary = f"{path}.tmp"
        with open(temporary, "w") as file:
            json.dump({"name": hydration.name, "provider": hydration.provider.provider_id, "pid": os.getpid(),
                       "size": hydration.mark.size, "done": hydration.done_bytes,
                       "started": hydration.started}, file)
        os.replace(temporary, path)

    def _unpublish(self, hydration: Hydration) -> None:
        if self.progress_dir:
            try:
                os.unlink(self._progress_path(hydration))
            except FileNotFoundError:
                pass


# One byte far beyond any real file's data, locked with an OFD lock by every party that changes a placeholder's
# content (hydration here and in the fanotify listener, the punch of `smbsrv hsm release`): across processes,
# released when the fd closes or the process dies. SMB byte-range locks are the server's own (files/locks.py)
# and never meet it.
_LOCK_OFFSET = 1 << 62
_FLOCK = struct.Struct("=hh4xqqi4x")  # struct flock: l_type, l_whence, l_start, l_len, l_pid


@contextmanager
def content_lock(fd: int) -> Iterator[None]:
    """Exclusive against every other hydration or release of the same file (fd open for writing)."""
    fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, _LOCK_OFFSET, 1, 0))
    try:
        yield
    finally:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, _LOCK_OFFSET, 1, 0))


def punch_out(fd: int, size: int) -> None:
    """Make [0, size) a hole again (the file keeps its size): a placeholder holds no data blocks."""
    if size:
        import ctypes

        # Up to a whole block past EOF: a hole ending at an unaligned EOF would leave the last block allocated.
        block = max(os.fstat(fd).st_blksize, 4096)
        length = -(-size // block) * block
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, ctypes.c_int64(0),
                          ctypes.c_int64(length)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


def set_placeholder_hint(fd: int, placeholder: bool) -> None:
    """OFFLINE and RECALL_ON_DATA_ACCESS in the DOS attributes: what listings and QUERY_INFO show without
    reading the mark. Only a hint; the mark decides whether data access hydrates."""
    st = os.fstat(fd)
    info = dos_attrs.read(fd, st)
    if info is None:
        info = dos_attrs.DosInfo(dos_attrs.FILE_ATTRIBUTE_ARCHIVE, dos_attrs.derived_creation_time(st))
    attributes = (info.attributes | PLACEHOLDER_ATTRIBUTES if placeholder
                  else info.attributes & ~PLACEHOLDER_ATTRIBUTES)
    if attributes != info.attributes:
        dos_attrs.write(fd, dataclasses.replace(info, attributes=attributes))


def hydrate_fd(fd: int, hydration: Hydration, publish: object = None) -> None:
    """Fetch the content named by the mark into the file behind `fd` (writable) and commit it (module
    docstring). Raises ProviderUnavailable / ProviderError (the file stays a placeholder) or OSError."""
    with content_lock(fd):
        _hydrate_locked(fd, hydration, publish)


def _hydrate_locked(fd: int, hydration: Hydration, publish: object) -> None:
    mark = hydration.mark
    before = os.fstat(fd)
    current = marks.read(fd)
    if current is None:
        return  # hydrated meanwhile (by another process, or a truncation to zero)
    if current != mark:
        raise ProviderError(f"{hydration.name}: the mark changed during hydration")
    if before.st_size != mark.size:
        raise ProviderError(f"{hydration.name}: placeholder is {before.st_size} bytes, its mark says {mark.size}")
    digest = hashlib.sha256()
    offset = 0
    last_publish = time.monotonic()
    if callable(publish):
        publish(hydration)  # in flight from the first request to the provider on
    try:
        for piece in hydration.provider.fetch(mark.key, mark.size):
            view = memoryview(piece)
            if offset + len(view) > mark.size:
                raise ProviderError(f"{hydration.name}: the provider sent more than {mark.size} bytes")
            digest.update(view)
            written = 0
            while written < len(view):
                written += os.pwrite(fd, view[written:], offset + written)
            offset += len(view)
            hydration.done_bytes = offset
            if callable(publish) and time.monotonic() - last_publish > _PROGRESS_INTERVAL_S:
                last_publish = time.monotonic()
                publish(hydration)
        if offset != mark.size or digest.hexdigest() != mark.sha256:
            raise ProviderError(f"{hydration.name}: content does not match the mark "
                                f"({offset} of {mark.size} bytes, sha256 {digest.hexdigest()[:16]}...)")
    except BaseException:
        # The provider failed, or the disk did (ENOSPC): back to no data blocks and to the placeholder's
        # times. The mark never went, so the file is a placeholder whatever this cleanup manages.
        if offset:
            with contextlib.suppress(OSError):
                punch_out(fd, mark.size)
                os.utime(fd, ns=(before.st_atime_ns, before.st_mtime_ns))
        raise
    # Hydration is not a modification: the mtime the placeholder showed stays (atime too).
    os.utime(fd, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.fsync(fd)
    marks.remove(fd)  # the commit point
    os.fsync(fd)
    try:
        set_placeholder_hint(fd, False)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.ENOSPC):
            raise
