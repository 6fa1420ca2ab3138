"""Changes made by anyone but this server (a shell, NFS, another program) through one fanotify filesystem mark.

fanotify_init(FAN_REPORT_DFID_NAME) reports each create, delete, rename, write and attribute change with the
file handle of the directory and the name in it, for the whole file system under one mark: no watch per
directory, so a tree of 10,000 directories costs the kernel what a tree of one does (inotify would need one
watch per directory, about 1 KiB of kernel memory each, and a crawl to add them). Needs CAP_SYS_ADMIN (the
server runs as root) and CAP_DAC_READ_SEARCH for open_by_handle_at; this work is the server's own, never done as
a client. Every event carries the pid of the process that caused it: this process's own events are dropped,
because the command modules already published them exactly (files/notify.py), so nothing is reported twice.

Bounds: the kernel queue is fanotify's default (16,384 events, /proc/sys/fs/fanotify/max_queued_events); when it
overflows every watch answers STATUS_NOTIFY_ENUM_DIR. Directory handles resolve to paths through a cache of at
most _PATHS entries, emptied whenever a directory is renamed or removed.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import errno
import logging
import os
import struct
from typing import TYPE_CHECKING

from smbsrv.files.change import Change
from smbsrv.fscc.notify import Action, Filter

if TYPE_CHECKING:
    from smbsrv.files.notify import ChangeFeed

log = logging.getLogger(__name__)

# linux/fanotify.h
FAN_CLOEXEC = 0x00000001
FAN_NONBLOCK = 0x00000002
FAN_CLASS_NOTIF = 0x00000000
FAN_REPORT_DFID_NAME = 0x00000400 | 0x00000800  # FAN_REPORT_DIR_FID | FAN_REPORT_NAME
FAN_MARK_ADD = 0x00000001
FAN_MARK_REMOVE = 0x00000002
FAN_MARK_FILESYSTEM = 0x00000100
FAN_MODIFY = 0x00000002
FAN_CLOSE_WRITE = 0x00000008
FAN_ATTRIB = 0x00000004
FAN_CREATE = 0x00000100
FAN_DELETE = 0x00000200
FAN_Q_OVERFLOW = 0x00004000
FAN_RENAME = 0x10000000
FAN_ONDIR = 0x40000000
_MASK = FAN_MODIFY | FAN_ATTRIB | FAN_CREATE | FAN_DELETE | FAN_RENAME | FAN_ONDIR
_INFO_DFID_NAME = 2
_INFO_OLD_DFID_NAME = 10
_INFO_NEW_DFID_NAME = 12

_METADATA = struct.Struct("<IBBHQii")
_INFO_HEADER = struct.Struct("<BBH")
_HANDLE_HEADER = struct.Struct("<Ii")
_READ_SIZE = 65536
_READS_PER_TURN = 16  # then other connections get the loop again; the fd stays readable
_PATHS = 4096

_libc = ctypes.CDLL(None, use_errno=True)
_fanotify_init = _libc.fanotify_init
_fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_fanotify_init.restype = ctypes.c_int
_fanotify_mark = _libc.fanotify_mark
_fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
_fanotify_mark.restype = ctypes.c_int
_open_by_handle_at = _libc.open_by_handle_at
_open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
_open_by_handle_at.restype = ctypes.c_int


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


class KernelFeed:
    """One fanotify group with one filesystem mark per file system that holds a watched share."""

    def __init__(self, feed: ChangeFeed, mask: int = _MASK) -> None:
        self._feed = feed
        self._mask = mask  # oplocks use FAN_CLOSE_WRITE alone (commands/oplock_break.py LocalChanges)
        self._fd = _check(_fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME,
                                         os.O_RDONLY | os.O_LARGEFILE), "fanotify_init")
        self._marks: dict[int, tuple[int, int]] = {}  # st_dev -> (mount fd, roots on it)
        self._roots: dict[str, int] = {}  # root path -> st_dev
        self._mount_by_fsid: dict[bytes, int] = {}
        self._paths: dict[bytes, str | None] = {}
        self._pid = os.getpid()
        self._loop: asyncio.AbstractEventLoop | None = None
        try:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._fd, self.read_events)
        except RuntimeError:
            pass  # no loop (tests drive read_events themselves)

    @property
    def fd(self) -> int:
        return self._fd

    def add_root(self, root: str) -> None:
        dev = os.stat(root).st_dev
        if dev in self._marks:
            mount_fd, count = self._marks[dev]
            self._marks[dev] = (mount_fd, count + 1)
        else:
            _check(_fanotify_mark(self._fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, self._mask, -1, os.fsencode(root)),
                   "fanotify_mark")
            self._marks[dev] = (os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), 1)
        self._roots[root] = dev

    def covers(self, root: str) -> bool:
        """Whether local changes below `root` are reported (its file system is marked)."""
        return root in self._roots

    def remove_root(self, root: str) -> None:
        dev = self._roots.pop(root, None)
        if dev is None:
            return
        mount_fd, count = self._marks[dev]
        if count > 1:
            self._marks[dev] = (mount_fd, count - 1)
            return
        del self._marks[dev]
        try:
            _check(_fanotify_mark(self._fd, FAN_MARK_REMOVE | FAN_MARK_FILESYSTEM, self._mask, -1, os.fsencode(root)),
                   "fanotify_mark")
        except OSError as exc:
            log.debug("fanotify mark removal: %s", exc)
        os.close(mount_fd)
        self._mount_by_fsid = {k: v for k, v in self._mount_by_fsid.items() if v != mount_fd}
        self._paths.clear()

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        for mount_fd, _ in self._marks.values():
            os.close(mount_fd)
        self._marks.clear()
        os.close(self._fd)
        self._fd = -1

    # -- events ---------------------------------------------------------------------------------------------

    def read_events(self) -> int:
        """Read what the kernel queued (a bounded amount per call) and publish it; returns the events seen."""
        try:
            return self._read_events()
        except Exception:  # the event loop's reader callback: never let one bad event stop the feed
            log.exception("change notify: reading the kernel feed failed")
            return 0

    def _read_events(self) -> int:
        seen = 0
        for _ in range(_READS_PER_TURN):
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not data:
                break
            changes = []
            offset = 0
            while offset + _METADATA.size <= len(data):
                length, _, _, meta_len, mask, _, pid = _METADATA.unpack_from(data, offset)
                seen += 1
                if mask & FAN_Q_OVERFLOW:
                    self._feed.overflowed()
                elif pid != self._pid:
                    changes.extend(self._changes(data, offset + meta_len, offset + length, mask))
                offset += length
            if changes:
                self._feed.publish([dataclasses.replace(change, local=True) for change in changes])
        return seen

    def _changes(self, data: bytes, position: int, end: int, mask: int) -> list[Change]:
        is_dir = bool(mask & FAN_ONDIR)
        names: dict[int, tuple[str, str] | None] = {}
        while position + _INFO_HEADER.size <= end:
            info_type, _, length = _INFO_HEADER.unpack_from(data, position)
            if length < _INFO_HEADER.size:
                break
            if info_type in (_INFO_DFID_NAME, _INFO_OLD_DFID_NAME, _INFO_NEW_DFID_NAME):
                names[info_type] = self._locate(data[position + 4:position + length])
            position += length
        if is_dir and mask & (FAN_RENAME | FAN_DELETE):
            self._paths.clear()  # cached paths below a renamed or removed directory are stale
        name_filter = Filter.DIR_NAME if is_dir else Filter.FILE_NAME
        out = []
        if mask & FAN_RENAME:
            old, new = names.get(_INFO_OLD_DFID_NAME), names.get(_INFO_NEW_DFID_NAME)
            moved_to = None
            if is_dir and old is not None and new is not None and old[0] == new[0]:
                moved_to = tuple(new[1].split("/"))
            if old is not None and new is not None and old[0] == new[0] and (
                    old[1].rpartition("/")[0] == new[1].rpartition("/")[0]):
                out.append(Change(*self._split(old), Action.RENAMED_OLD_NAME, name_filter, is_dir, moved_to))
                out.append(Change(*self._split(new), Action.RENAMED_NEW_NAME, name_filter, is_dir))
            else:
                if old is not None:
                    out.append(Change(*self._split(old), Action.REMOVED, name_filter, is_dir, moved_to))
                if new is not None:
                    out.append(Change(*self._split(new), Action.ADDED, name_filter, is_dir))
            return out
        where = names.get(_INFO_DFID_NAME)
        if where is None:
            return out
        if mask & FAN_CREATE:
            out.append(Change(*self._split(where), Action.ADDED, name_filter, is_dir))
        if mask & FAN_DELETE:
            out.append(Change(*self._split(where), Action.REMOVED, name_filter, is_dir))
        if mask & (FAN_MODIFY | FAN_CLOSE_WRITE):
            out.append(Change(*self._split(where), Action.MODIFIED, Filter.LAST_WRITE | Filter.SIZE, is_dir))
        if mask & FAN_ATTRIB:
            # chmod, chown, utimes and xattrs are one event in the kernel: every filter they could stand for
            # (Samba's inotify mapping does the same).
            out.append(Change(*self._split(where), Action.MODIFIED,
                              Filter.ATTRIBUTES | Filter.LAST_WRITE | Filter.LAST_ACCESS | Filter.EA
                              | Filter.SECURITY, is_dir))
        return out

    def _split(self, where: tuple[str, str]) -> tuple[str, tuple[str, ...], str]:
        """(root, directory components, name) of a located (root, relative path of name)."""
        root, relative = where
        parts = tuple(relative.split("/"))
        return root, parts[:-1], parts[-1]

    def _locate(self, record: bytes) -> tuple[str, str] | None:
        """A fid record (fsid, file handle of the directory, name): the share root it lies in and the name's
        path relative to it, or None outside every watched share."""
        handle_bytes, _ = _HANDLE_HEADER.unpack_from(record, 8)
        handle_end = 8 + _HANDLE_HEADER.size + handle_bytes
        key = record[:handle_end]
        name = os.fsdecode(record[handle_end:].split(b"\0", 1)[0])
        if key in self._paths:
            directory = self._paths[key]
        else:
            directory = self._resolve(record[:8], record[8:handle_end])
            if len(self._paths) >= _PATHS:
                self._paths.clear()
            self._paths[key] = directory
        if directory is None:
            return None
        for root in self._roots:
            if directory == root:
                # "." is the event of the directory itself (an attribute change): the share root is in no
                # directory of the share.
                return None if name == "." else (root, name)
            if directory.startswith(root) and directory[len(root)] == "/":
                relative = directory[len(root) + 1:]
                return root, relative if name == "." else relative + "/" + name
        return None

    def _resolve(self, fsid: bytes, handle: bytes) -> str | None:
        mount_fds = [self._mount_by_fsid[fsid]] if fsid in self._mount_by_fsid else [
            fd for fd, _ in self._marks.values()]
        for mount_fd in mount_fds:
            fd = _open_by_handle_at(mount_fd, handle, os.O_PATH | os.O_CLOEXEC)
            if fd < 0:
                continue  # ESTALE (gone since), or a handle of another file system
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                return None
            finally:
                os.close(fd)
            self._mount_by_fsid[fsid] = mount_fd
            if path.endswith(" (deleted)"):
                return None
            return path
        return None
