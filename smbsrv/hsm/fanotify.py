"""Local access to placeholders: fanotify pre-content events (FAN_PRE_ACCESS, Linux 6.14+).

With `hsm_fanotify = true` on a share, the daemon holds a FAN_CLASS_PRE_CONTENT fanotify group with a
filesystem mark for FAN_PRE_ACCESS on the share's file system. The kernel then stops every read and write of
a regular file there (by any process, and by knfsd for an NFS export of the tree) before it touches the page
cache, and waits for our answer:

- the file has no mark: FAN_ALLOW at once;
- it is a placeholder of one of our providers: it is hydrated first (joining a hydration the SMB side may
  have in flight: still one fetch), then FAN_ALLOW, and the reader sees the content;
- the provider is down or fails: FAN_DENY with EIO (FAN_DENY_ERRNO), and the file stays a placeholder.

Content is written through the event's own fd: the kernel opens it with FMODE_NONOTIFY, so filling the file
raises no further events. The daemon's own accesses (pid = ours) are allowed at once: the SMB side decides for
itself, and its hydration writes through fds of its own that would otherwise wait on this very listener.

The persistent "this is a placeholder" bit is our xattr (the kernel keeps none, as the fanotify HSM design
says), so every access on the file system costs one event and one fgetxattr; that is why this is an opt-in,
per share. Where the kernel lacks pre-content events, fanotify_mark() refuses FAN_PRE_ACCESS (EINVAL) and the
server does not start: `FanotifyUnsupported` says so.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from smbsrv.fs import identity
from smbsrv.hsm import mark as marks
from smbsrv.hsm.hydrate import Hydrator
from smbsrv.hsm.providers import Provider

log = logging.getLogger(__name__)

# include/uapi/linux/fanotify.h
FAN_CLOEXEC = 0x00000001
FAN_CLASS_PRE_CONTENT = 0x00000008
FAN_UNLIMITED_QUEUE = 0x00000010
FAN_MARK_ADD = 0x00000001
FAN_MARK_FILESYSTEM = 0x00000100
FAN_PRE_ACCESS = 0x00100000
FAN_ALLOW = 0x01
FAN_DENY = 0x02
FAN_EVENT_INFO_TYPE_RANGE = 6
FAN_NOFD = -1
_AT_FDCWD = -100
_METADATA = struct.Struct("=IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
_RESPONSE = struct.Struct("=iI")  # fd, response
_INFO_HEADER = struct.Struct("=BBH")
_RANGE = struct.Struct("=BBHIQQ")  # hdr, pad, offset, count


def deny_errno(err: int) -> int:
    """FAN_DENY_ERRNO(err): the reader gets `err` instead of EPERM (pre-content events only)."""
    return FAN_DENY | ((err & 0xFF) << 24)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks (/proc/PID/stat field 22): with the pid, names one process."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _exempt_dir(state_dir: str) -> str:
    return os.path.join(os.path.abspath(state_dir), "hsm", "exempt")


@contextmanager
def exempt(state_dir: str) -> Iterator[None]:
    """`smbsrv hsm release` registers itself for its lifetime: its own reads and its punch of a file it is
    releasing must not make the listener hydrate that file (the release holds the content lock the
    hydration would wait for). The directory is the server's (0700, root): only root can register."""
    directory = _exempt_dir(state_dir)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, str(os.getpid()))
    with open(path, "w") as file:
        file.write(_start_time(os.getpid()))
    try:
        yield
    finally:
        os.unlink(path)


class FanotifyUnsupported(OSError):
    """This kernel (or file system, or process) cannot give us pre-content events."""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]


class PreContentListener:
    """One fanotify group for the file systems of the shares that asked for it."""

    def __init__(self, hydrator: Hydrator, providers: dict[str, Provider], state_dir: str) -> None:
        self.hydrator = hydrator
        self.exempt_dir = _exempt_dir(state_dir)
        self.providers = providers  # by provider id, as marks name them
        fd = _libc.fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE,
                                 os.O_RDWR | os.O_LARGEFILE | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise FanotifyUnsupported(err, f"fanotify_init(FAN_CLASS_PRE_CONTENT): {os.strerror(err)}"
                                      + (" (needs CAP_SYS_ADMIN)" if err == errno.EPERM else ""))
        self.fd = fd
        self._own_pid = os.getpid()
        self._workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hsm-fanotify",
                                           initializer=identity.become_root)
        self._thread: threading.Thread | None = None
        self.events = 0

    def watch(self, path: str) -> None:
        """Pre-content events for the whole file system that holds `path`."""
        if _libc.fanotify_mark(self.fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_PRE_ACCESS, _AT_FDCWD,
                               os.fsencode(path)) != 0:
            err = ctypes.get_errno()
            reason = {errno.EINVAL: "this kernel has no FAN_PRE_ACCESS (Linux 6.14 or later is needed)",
                      errno.EOPNOTSUPP: "this file system does not support pre-content events",
                      errno.EPERM: "needs CAP_SYS_ADMIN"}.get(err, os.strerror(err))
            raise FanotifyUnsupported(err, f"hsm_fanotify for {path}: {reason}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._read_loop, name="hsm-fanotify", daemon=True)
        self._thread.start()

    def _read_loop(self) -> None:
        identity.become_root()
        while True:
            try:
                data = os.read(self.fd, 65536)
            except InterruptedError:
                continue
            except OSError as exc:
                log.error("fanotify read failed, local access to placeholders stops: %s", exc)
                return
            position = 0
            while position + _METADATA.size <= len(data):
                event_len, _vers, _reserved, metadata_len, mask, fd, pid = _METADATA.unpack_from(data, position)
                if event_len < _METADATA.size:
                    break
                offset, count = _range(data, position + metadata_len, position + event_len)
                position += event_len
                if fd == FAN_NOFD:
                    continue
                self.events += 1
                if pid == self._own_pid or not mask & FAN_PRE_ACCESS:
                    self._respond(fd, FAN_ALLOW)
                    continue
                self._workers.submit(self._handle, fd, pid, offset, count)

    def _respond(self, fd: int, response: int) -> None:
        try:
            os.write(self.fd, _RESPONSE.pack(fd, response))
        except OSError as exc:
            if response == FAN_ALLOW or exc.errno != errno.EINVAL:
                log.warning("fanotify response failed: %s", exc)
            else:
                os.write(self.fd, _RESPONSE.pack(fd, FAN_DENY))  # a kernel without FAN_DENY_ERRNO
        finally:
            os.close(fd)

    def _handle(self, fd: int, pid: int, offset: int, count: int) -> None:
        response = FAN_ALLOW
        try:
            response = self._decide(fd, pid, offset, count)
        except Exception:  # never leave the reader hanging: a bug denies with EIO
            log.exception("fanotify: event of pid %d", pid)
            response = deny_errno(errno.EIO)
        self._respond(fd, response)

    def _decide(self, fd: int, pid: int, offset: int, count: int) -> int:
        try:
            mark = marks.read(fd)
        except marks.MarkCorrupt:
            return deny_errno(errno.EIO)
        if mark is None:
            return FAN_ALLOW
        try:
            with open(os.path.join(self.exempt_dir, str(pid))) as file:
                registered: str | None = file.read()
        except OSError:
            registered = None
        if registered is not None and registered == _start_time(pid):
            return FAN_ALLOW  # `smbsrv hsm release` at work on this file (exempt())
        provider = self.providers.get(mark.provider)
        if provider is None:
            log.warning("fanotify: pid %d reads a placeholder of unknown provider %r", pid, mark.provider)
            return deny_errno(errno.EIO)
        st = os.fstat(fd)
        name = os.readlink(f"/proc/self/fd/{fd}")
        log.info("hsm local access by pid %d to %s (offset %d, %d bytes)", pid, name, offset, count)
        try:
            self.hydrator.run_here(fd, (st.st_dev, st.st_ino), mark, provider, name)
        except Exception as exc:  # noqa: BLE001  (provider down or wrong: the reader gets EIO)
            log.warning("fanotify: hydration of %s for pid %d failed: %s", name, pid, exc)
            return deny_errno(errno.EIO)
        return FAN_ALLOW


def _range(data: bytes, start: int, end: int) -> tuple[int, int]:
    """The FAN_EVENT_INFO_TYPE_RANGE record of a pre-content event: the bytes about to be accessed."""
    while start + _INFO_HEADER.size <= end:
        info_type, _pad, length = _INFO_HEADER.unpack_from(data, start)
        if length < _INFO_HEADER.size:
            break
        if info_type == FAN_EVENT_INFO_TYPE_RANGE and start + _RANGE.size <= end:
            _t, _p, _l, _pad2, offset, count = _RANGE.unpack_from(data, start)
            return offset, count
        start += length
    return 0, 0


def start(shares: list[tuple[str, str, Provider]], hydrator: Hydrator, state_dir: str) -> PreContentListener | None:
    """A listener for the (share path, provider id, provider) triples asked for, or None when none asks.
    FanotifyUnsupported when the kernel cannot: the caller refuses to start."""
    if not shares:
        return None
    listener = PreContentListener(hydrator, {provider_id: provider for _path, provider_id, provider in shares},
                                  state_dir)
    for path, _provider_id, _provider in shares:
        listener.watch(path)
    listener.start()
    return listener
