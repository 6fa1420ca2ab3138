"""Release (dehydration): a local file becomes a placeholder in place, and `smbsrv hsm status`.

`release_file` runs in the `smbsrv hsm release` process, as root, next to a running daemon or without one:

1. open the file (O_NOFOLLOW, a regular file), stat it, hash it and upload it to the provider under its
   content's SHA-256 (an object that is already there with that size is reused), then verify what the
   provider holds: its size, and the first and last 64 KiB read back;
2. take a Linux write lease (F_SETLEASE F_WRLCK). The kernel grants it only while no other fd of the file
   exists anywhere, so a file open in the daemon (any SMB handle) or in a local process is refused, and an
   open made meanwhile waits for us (lease break). Under it: a re-stat (size, mtime and ctime unchanged
   since step 1 mean the uploaded content is still the file's), the mark written (the commit point: from
   here on the file is a placeholder, still holding its data) and fsynced, the DOS hint set. No data access
   happens under the lease: with fanotify on, it would raise an event whose fd (an open of this file) would
   wait for our own lease;
3. the lease goes; under the content lock (hydrate.content_lock, which every hydration takes too) the data is
   punched out (fallocate PUNCH_HOLE|KEEP_SIZE: same inode, links, mode, owner, xattrs), unless a hydration
   got in first and the mark is gone; the mtime is put back; fsync.

A crash before the mark leaves the file as it was (the uploaded object is harmless: content-addressed, it is
reused by the next release). A crash after it leaves a placeholder that may still hold some data blocks,
which the next hydration overwrites. Never a short file presented as whole.

The lease is held for milliseconds: the upload happens before it, so a client opening the file during a long
upload is not held up; the re-stat catches a write made during the upload. With fanotify on, this process
registers itself (fanotify.exempt) so that its own reads and its punch are not taken for local access.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import signal
import stat
import time
from dataclasses import dataclass

from smbsrv.hsm import mark as marks
from smbsrv.hsm.hydrate import content_lock, punch_out, set_placeholder_hint
from smbsrv.hsm.providers import Provider, ProviderError

_F_SETLEASE = 1024
_LEASE_WAIT_S = 2.0
_VERIFY_BYTES = 64 * 1024
_HASH_BYTES = 8 * 1024 * 1024


class ReleaseRefused(Exception):
    """The file cannot be released now (open elsewhere, changed during upload, not a regular file)."""


@dataclass(frozen=True)
class Released:
    path: str
    size: int
    key: str
    reused: bool


def _hash(fd: int, size: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        piece = os.pread(fd, min(_HASH_BYTES, size - offset), offset)
        if not piece:
            raise ReleaseRefused("file shrank while it was read")
        digest.update(piece)
        offset += len(piece)
    return digest.hexdigest()


def _verify(provider: Provider, fd: int, key: str, size: int) -> None:
    held = provider.stat(key)
    if held is None or held[0] != size:
        raise ProviderError(f"object {key} holds {held[0] if held else 'nothing'}, expected {size} bytes")
    for offset in sorted({0, max(0, size - _VERIFY_BYTES)}):
        length = min(_VERIFY_BYTES, size - offset)
        if length and provider.fetch_range(key, offset, length) != os.pread(fd, length, offset):
            raise ProviderError(f"object {key} differs from the file at offset {offset}")


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def _take_write_lease(fd: int) -> None:
    """F_SETLEASE F_WRLCK, waiting out opens that are about to end: the upload just read the file, and a
    fanotify listener (ours, with hsm_fanotify) holds each event's fd open until it has answered the event.
    A file still open elsewhere after that is refused."""
    deadline = time.monotonic() + _LEASE_WAIT_S
    while True:
        try:
            fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_WRLCK)
            return
        except OSError as exc:
            if exc.errno != errno.EAGAIN or time.monotonic() >= deadline:
                raise ReleaseRefused(f"open elsewhere (no write lease: {exc.strerror})") from None
        time.sleep(0.02)


def release_file(path: str, provider: Provider) -> Released | None:
    """Make `path` a placeholder of `provider` (module docstring); None when it already is one."""
    # A lease break is announced with SIGIO, whose default action ends the process; we check the file instead.
    signal.signal(signal.SIGIO, signal.SIG_IGN)
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReleaseRefused("not a regular file")
        if marks.read(fd) is not None:
            return None
        size = st.st_size
        key = _hash(fd, size)
        held = provider.stat(key)
        reused = held is not None and held[0] == size
        version = held[1] if reused and held is not None else provider.store(key, fd, size)
        _verify(provider, fd, key, size)
        mark = marks.Mark(provider=provider.provider_id, key=key, version=version, size=size,
                          mtime_ns=st.st_mtime_ns, sha256=key)
        # The commit, under the lease: no data access in it (a data access would raise a pre-content event,
        # and the fanotify listener's event fd, an open of this file, would have to wait for our lease).
        _take_write_lease(fd)
        try:
            if not _same(st, os.fstat(fd)):
                raise ReleaseRefused("changed while it was uploaded")
            marks.write(fd, mark)
            os.fsync(fd)
            set_placeholder_hint(fd, True)
        finally:
            fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
        # A placeholder from here on, still holding its data. The punch excludes hydrations (content_lock): one
        # that ran in between finds the mark gone and we leave the file as it is, local and whole.
        with content_lock(fd):
            if marks.read(fd) == mark:
                punch_out(fd, size)
                os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
                os.fsync(fd)
        return Released(path, size, key, reused)
    finally:
        os.close(fd)


def policy_candidates(root: str, *, after_days: int, min_bytes: int, now: float | None = None) -> list[str]:
    """Regular files under `root` not accessed (atime, else mtime) for `after_days` days and at least
    `min_bytes` long; placeholders are skipped. Symlinks are never followed."""
    now = time.time() if now is None else now
    limit_s = after_days * 86400
    found: list[str] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size < max(min_bytes, 1):
                continue
            if now - max(st.st_atime, st.st_mtime) < limit_s:
                continue
            try:
                if os.getxattr(path, marks.MARK_XATTR, follow_symlinks=False):
                    continue
            except OSError:
                pass
            found.append(path)
    return sorted(found)


def placeholders(root: str) -> list[dict[str, object]]:
    """Every placeholder under `root` with its mark, for `smbsrv hsm status`."""
    found: list[dict[str, object]] = []
    for directory, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = os.path.join(directory, name)
            try:
                data = os.getxattr(path, marks.MARK_XATTR, follow_symlinks=False)
            except OSError:
                continue
            try:
                mark = marks.Mark.decode(data)
                found.append({"path": os.path.relpath(path, root), "provider": mark.provider, "key": mark.key,
                              "size": mark.size})
            except marks.MarkCorrupt as exc:
                found.append({"path": os.path.relpath(path, root), "error": f"corrupt mark: {exc}"})
    return found


def inflight(state_dir: str) -> list[dict[str, object]]:
    """Hydrations the daemon has in flight, with progress (hydrate.Hydrator publishes them)."""
    directory = os.path.join(os.path.abspath(state_dir), "hsm", "inflight")
    found: list[dict[str, object]] = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return found
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name)) as file:
                entry = json.load(file)
        except (OSError, ValueError):
            continue
        try:
            os.kill(int(entry.get("pid", 0)), 0)
        except (OSError, ValueError):
            continue  # left behind by a server that is gone
        found.append(entry)
    return found
