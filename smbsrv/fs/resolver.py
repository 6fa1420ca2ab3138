"""Turn a validated SmbPath into (parent directory fd, on-disk name, lstat) without ever leaving the share.

[MS-SMB2] 3.3.5.9 (CREATE), 2.2.2.2.1 (symbolic link error response); house style "Filesystem".

The walk starts at the share's root directory fd and never resolves a string path from '/'. Two ways, same
result:

- Fast path (one system call for the directories): `openat2(root_fd, "a/b", O_PATH|O_DIRECTORY,
  RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS)`. The kernel refuses any symlink on the way and any
  step outside the root, atomically, so there is no window between a check and a use. It needs Linux 5.6; when
  openat2 is missing (ENOSYS, or a seccomp filter saying EPERM) the resolver falls back for good.
- Exact path, one component at a time: `openat(dir_fd, comp, O_PATH|O_NOFOLLOW|O_DIRECTORY)`. A symlink, or a
  non-directory, fails with ENOTDIR and is never followed; only then does the resolver look (fstatat with
  AT_SYMLINK_NOFOLLOW) to say which it was. Every fast-path failure is replayed here, so the error a client sees
  (symlink met, path not found, ...) is decided component by component, and case-insensitive lookups happen here.

The final component is only lstat'ed (fstatat AT_SYMLINK_NOFOLLOW relative to its parent fd); the caller opens
it with backend.open_at(), which always adds O_NOFOLLOW, so a symlink swapped in after resolution is refused,
not followed.

Statuses: a missing intermediate directory, and an intermediate that is a file, are both
STATUS_OBJECT_PATH_NOT_FOUND (Samba 4.17 answers that for "file.txt\\x" and "nodir\\x"; smbtorture smb2.mkdir
expects it for a missing parent).

What this does not protect against: a local user who can write both inside and outside the share moving a
directory out of the share while a walk is below it; the walk then ends outside, in a tree that user moved
there. SMB clients cannot cause this (every rename here is between fds inside the share). Mount points inside
the share are crossed like directories.
"""

import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from smbsrv.errors import SmbError
from smbsrv.fs.errno_map import raise_for_oserror
from smbsrv.fs.mangle import ShortNames
from smbsrv.fs.name_index import NameIndexCache
from smbsrv.fs.path import SmbPath
from smbsrv.wire.status import NtStatus

_DIR_STEP_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC

# openat2(2), include/uapi/linux/openat2.h. 437 is the same on every architecture (added after the syscall
# table unification).
_SYS_openat2 = 437
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
# No argtypes: their per-call conversion costs 2 us, twice the system call. Instead every integer goes in as
# a prebuilt c_long, so the variadic syscall() reads full 64-bit values (a bare Python int would be passed as a
# 32-bit int); the path goes in as bytes (char *).
_SYS_OPENAT2_ARG = ctypes.c_long(_SYS_openat2)
# Read-only after creation, so one instance serves every thread.
_DIR_HOW = _OpenHow(
    os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
    0,
    _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS,
)
_DIR_HOW_REF = ctypes.byref(_DIR_HOW)
_DIR_HOW_SIZE = ctypes.c_long(ctypes.sizeof(_DIR_HOW))
_openat2_usable = True


def _openat2_dir(root_fd: ctypes.c_long, relative: bytes) -> int:
    """An O_PATH fd of directory `relative` under root_fd, or -1 when the caller must take the exact path."""
    global _openat2_usable
    fd = int(_syscall(_SYS_OPENAT2_ARG, root_fd, relative, _DIR_HOW_REF, _DIR_HOW_SIZE))
    if fd >= 0:
        return fd
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM):
        _openat2_usable = False
    return -1


class SymlinkMet(Exception):
    """A symlink sits at `component_index`, before the last component: the caller answers
    STATUS_STOPPED_ON_SYMLINK with the symbolic link error response ([MS-SMB2] 2.2.2.2.1).

    `link_name_components` are the on-disk names up to and including the link, `target` is its readlink text
    (undecodable bytes surrogate-escaped), `unparsed` the requested components after it.
    """

    def __init__(
        self,
        component_index: int,
        link_name_components: tuple[str, ...],
        target: str,
        unparsed: tuple[str, ...],
        consumed_chars: int | None = None,
    ) -> None:
        super().__init__(f"symlink at component {component_index}")
        self.component_index = component_index
        self.link_name_components = link_name_components
        self.target = target
        self.unparsed = unparsed
        # Characters of the requested name up to the end of the link component. The name has no doubled
        # separators (SmbPath refuses them), so this is exact. None when built by a caller for a final link.
        self.consumed_chars = consumed_chars

    def unparsed_path_length(self, requested_name: str) -> int:
        """UnparsedPathLength ([MS-SMB2] 2.2.2.2.1): UTF-16 bytes of `requested_name` (the name as the client
        sent it) after the link component, including the separator that follows it. This keeps a stream suffix
        or trailing separator exactly as sent; without `consumed_chars` it is rebuilt from `unparsed`."""
        if self.consumed_chars is None:
            rest = "".join("\\" + component for component in self.unparsed)
        else:
            rest = requested_name[self.consumed_chars :]
        return len(rest.encode("utf-16-le", "surrogatepass"))


@dataclass(slots=True)
class Resolution:
    """The result of a walk. It owns `parent_fd` (an O_PATH fd of the final component's directory); close it.

    `name` is the final component as it is on disk (case-resolved), or as requested when it does not exist;
    for the share root, `parent_fd` is a duplicate of the root fd and `name` is '.'.
    `stat` is the lstat of the final component, None when it does not exist.
    """

    parent_fd: int
    name: str
    stat: os.stat_result | None
    components: tuple[str, ...]

    @property
    def exists(self) -> bool:
        return self.stat is not None

    @property
    def is_symlink(self) -> bool:
        return self.stat is not None and stat.S_ISLNK(self.stat.st_mode)

    def take_parent_fd(self) -> int:
        """Hand `parent_fd` over to the caller, who closes it from now on (a new handle keeps its directory)."""
        fd, self.parent_fd = self.parent_fd, -1
        return fd

    def close(self) -> None:
        if self.parent_fd >= 0:
            os.close(self.take_parent_fd())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise_for_oserror(exc)


class ShareRoot:
    """The root directory of one share, opened once; every lookup in the share starts from its fd."""

    def __init__(self, root_fd: int, path: str, *, case_sensitive: bool, mangled_names: bool = False) -> None:
        self._root_fd = root_fd
        self._root_fd_arg = ctypes.c_long(root_fd)  # for openat2, see _syscall
        self.path = path
        self.case_sensitive = case_sensitive
        self.name_index = NameIndexCache()
        # 8.3 short names (fs/mangle.py): handed out by listings and FileAlternateNameInformation, and found
        # again here for Windows-semantics lookups of a name that does not exist; None: the share has none.
        self.short_names = ShortNames() if mangled_names else None

    @classmethod
    def open(cls, path: str, *, case_sensitive: bool, mangled_names: bool = False) -> "ShareRoot":
        """Open the share directory (the administrator's path; symlinks in it are followed, once, here)."""
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return cls(fd, path, case_sensitive=case_sensitive, mangled_names=mangled_names)

    @property
    def root_fd(self) -> int:
        return self._root_fd

    def close(self) -> None:
        if self._root_fd >= 0:
            fd, self._root_fd = self._root_fd, -1
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # Hooks for the command layer: keep the case-insensitive index in step with our own changes.
    def note_created(self, parent_fd: int, name: str) -> None:
        if not self.case_sensitive:
            self.name_index.note_created(parent_fd, name)

    def note_removed(self, parent_fd: int, name: str) -> None:
        if not self.case_sensitive:
            self.name_index.note_removed(parent_fd, name)

    def resolve(self, path: SmbPath, *, case_insensitive: bool, may_create: bool = False) -> Resolution:
        """Walk `path` from the root. Raises SymlinkMet for a symlink before the last component and SmbError
        (STATUS_OBJECT_PATH_NOT_FOUND, STATUS_ACCESS_DENIED, ...) when the walk cannot reach the parent.

        `case_insensitive` is the caller's wish (non-POSIX opens); a case-sensitive share ignores it. A last
        component missing in its exact spelling is looked for in other cases by listing its directory; when
        the user may not list it, that is STATUS_ACCESS_DENIED, unless `may_create` (a CREATE whose
        disposition may make the file): then the name counts as missing, so a drop box (0733) takes new
        files, as on Samba 4.17 (filename.c: UCF_PREP_CREATEFILE turns the refused listing into "not found").
        """
        comps = path.components
        if not comps:
            fd = self._dup_root()
            return Resolution(fd, ".", os.fstat(fd), ())
        ci = case_insensitive and not self.case_sensitive
        if len(comps) == 1:
            return self._finish(self._dup_root(), (), comps[0], ci, may_create)
        # One directory below the root (the common "dir\\file"): the walk's single openat(O_NOFOLLOW|O_DIRECTORY)
        # of one validated component is as safe as openat2 and costs half of its ctypes call.
        if _openat2_usable and len(comps) > 2:
            parent_fd = _openat2_dir(self._root_fd_arg, os.fsencode("/".join(comps[:-1])))
            if parent_fd >= 0:
                return self._finish(parent_fd, comps[:-1], comps[-1], ci, may_create)
        return self._walk(comps, ci, may_create)

    def _dup_root(self) -> int:
        """A descriptor of the root the Resolution owns. Out of descriptors (EMFILE, ENFILE: one client's
        opens can use up the process's table) is STATUS_TOO_MANY_OPENED_FILES as for any other open."""
        try:
            return os.dup(self._root_fd)
        except OSError as exc:
            raise_for_oserror(exc)

    def _finish(self, parent_fd: int, parents: tuple[str, ...], last: str, ci: bool,
                may_create: bool) -> Resolution:
        """Look up the last component in the (owned) parent_fd and build the Resolution."""
        try:
            st = _lstat_at(parent_fd, last)
            if st is None and ci:
                try:
                    on_disk = self.name_index.lookup(parent_fd, last)
                except PermissionError as exc:
                    if not may_create:
                        raise_for_oserror(exc)
                    on_disk = None
                if on_disk is not None and on_disk != last:
                    st = _lstat_at(parent_fd, on_disk)
                    if st is not None:
                        last = on_disk
            if st is None and ci and self.short_names is not None:
                last, st = self._long_name(parent_fd, last)
        except BaseException:
            os.close(parent_fd)
            raise
        return Resolution(parent_fd, last, st, parents + (last,))

    def _walk(self, comps: tuple[str, ...], ci: bool, may_create: bool) -> Resolution:
        """`comps` has at least two components; the walk starts at the root fd, which it never closes."""
        cur_fd = self._root_fd
        resolved: list[str] = []
        try:
            for index in range(len(comps) - 1):
                next_fd, on_disk = self._step(cur_fd, comps, index, resolved, ci)
                if cur_fd != self._root_fd:
                    os.close(cur_fd)
                cur_fd = next_fd
                resolved.append(on_disk)
        except BaseException:
            if cur_fd != self._root_fd:
                os.close(cur_fd)
            raise
        return self._finish(cur_fd, tuple(resolved), comps[-1], ci, may_create)

    def _step(
        self, dir_fd: int, comps: tuple[str, ...], index: int, resolved: list[str], ci: bool
    ) -> tuple[int, str]:
        """Open the intermediate directory comps[index] below dir_fd: (fd, on-disk name)."""
        comp = comps[index]
        try:
            return os.open(comp, _DIR_STEP_FLAGS, dir_fd=dir_fd), comp
        except OSError as exc:
            first_error = exc
        if first_error.errno == errno.ENOENT:
            for on_disk in self._other_spellings(dir_fd, comp) if ci else ():
                try:
                    return os.open(on_disk, _DIR_STEP_FLAGS, dir_fd=dir_fd), on_disk
                except OSError as exc:
                    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                        self._explain_not_dir(dir_fd, on_disk, comps, index, resolved)
                    if exc.errno != errno.ENOENT:
                        raise_for_oserror(exc)
            raise SmbError(NtStatus.STATUS_OBJECT_PATH_NOT_FOUND) from None
        if first_error.errno in (errno.ENOTDIR, errno.ELOOP):
            self._explain_not_dir(dir_fd, comp, comps, index, resolved)
        raise_for_oserror(first_error)

    def _other_spellings(self, dir_fd: int, component: str) -> Iterator[str]:
        """On-disk names a Windows-semantics component that does not exist may stand for, tried in turn: the
        same name in another case, then the long name of a short one (looked for only if the first fails)."""
        on_disk = self._index_lookup(dir_fd, component)
        if on_disk is not None and on_disk != component:
            yield on_disk
        if self.short_names is not None:
            long_name, st = self._long_name(dir_fd, component)
            if st is not None:
                yield long_name

    def _index_lookup(self, dir_fd: int, name: str) -> str | None:
        """name_index.lookup; a directory the user may not list is STATUS_ACCESS_DENIED (errno_map)."""
        try:
            return self.name_index.lookup(dir_fd, name)
        except PermissionError as exc:
            raise_for_oserror(exc)

    def _long_name(self, dir_fd: int, component: str) -> tuple[str, os.stat_result | None]:
        """A component that does not exist may be a short name: (the name to use, its lstat). The long name a
        short one was handed out for is used even when it is gone, so a create by short name recreates it."""
        assert self.short_names is not None
        long_name = self.short_names.long_name(dir_fd, component)
        if long_name is None or long_name == component:
            return component, None
        st = _lstat_at(dir_fd, long_name)
        if st is None:
            on_disk = self._index_lookup(dir_fd, long_name)
            if on_disk is not None:
                st = _lstat_at(dir_fd, on_disk)
                if st is not None:
                    return on_disk, st
        return long_name, st

    def _explain_not_dir(
        self, dir_fd: int, on_disk: str, comps: tuple[str, ...], index: int, resolved: list[str]
    ) -> None:
        """An intermediate component refused O_DIRECTORY|O_NOFOLLOW: report a symlink, else PATH_NOT_FOUND."""
        st = _lstat_at(dir_fd, on_disk)
        if st is not None and stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(on_disk, dir_fd=dir_fd)
            except OSError as exc:
                # Replaced by a non-link between the lstat and the readlink: the client may simply retry.
                raise SmbError(NtStatus.STATUS_OBJECT_PATH_NOT_FOUND) from exc
            consumed = sum(len(c) for c in comps[: index + 1]) + index
            raise SymlinkMet(index, tuple(resolved) + (on_disk,), target, comps[index + 1 :], consumed)
        # A file, a device, or something that became a directory after our open failed (we do not retry: the
        # client sees the state at the moment of the open, which is a valid serialization).
        raise SmbError(NtStatus.STATUS_OBJECT_PATH_NOT_FOUND)
