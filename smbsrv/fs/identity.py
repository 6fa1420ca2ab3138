"""Per-thread Unix identity for share access when the server runs as root.

Linux keeps credentials per thread; glibc hides that and makes setuid/setgid/setgroups change every thread of
the process (its "setxid" broadcast). We want the opposite: the thread that serves a request acts as the
session's user while other threads keep serving other users. So:

- fsuid/fsgid via glibc's setfsuid()/setfsgid(), which are plain per-thread system calls (no broadcast);
- supplementary groups via the raw setgroups system call (syscall(SYS_setgroups)), not glibc's wrapper.

setfsuid changes only the identity used for file-system permission checks (open, create, unlink, chmod, the
owner of new files). The effective uid stays 0 for everything else, e.g. kill(), ptrace rules, resource
limits, binding ports. Moving fsuid away from 0 also drops CAP_DAC_OVERRIDE and the other file capabilities for
this thread, which is the point.

A client's identity is for the share's file-system calls and nothing else (issue 11). It is held only inside
`acting_as()`: the dispatcher wraps each step of a handler in it, and the thread is the server again between
steps, so the event loop's own work (the transport, logging, timers, connection teardown) never runs as a
client. Inside a handler step, the server's own work steps out with `as_server()`: its state files, its log
handlers (`ServerIdentityHandler`) and any module imported lazily (`install_import_guard`: the Python
installation may be readable by root alone, e.g. a venv in a 0700 home). Worker threads start as the server
(`become_root` as their initializer), whatever identity the thread that spawned them had.

The current identity is cached per thread, so a switch to the identity the thread already has makes no system
call. When the process is not root, every function here is a no-op: all users act as the server's uid.
"""

import ctypes
import importlib.abc
import importlib.machinery
import logging
import os
import platform
import sys
import threading
import types
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

# Raw setgroups numbers (asm/unistd.h). 32-bit x86 and ARM use setgroups32 and are not supported.
_SYS_SETGROUPS = {"x86_64": 116, "aarch64": 159, "ppc64le": 81, "s390x": 206, "riscv64": 159}

_libc = ctypes.CDLL(None, use_errno=True)
_setfsuid = _libc.setfsuid
_setfsuid.restype = ctypes.c_int
_setfsuid.argtypes = [ctypes.c_uint]
_setfsgid = _libc.setfsgid
_setfsgid.restype = ctypes.c_int
_setfsgid.argtypes = [ctypes.c_uint]
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

_NO_CHANGE = 0xFFFFFFFF  # (uid_t)-1: setfsuid() then only reports the current value


class IdentityError(OSError):
    """The kernel refused an identity change; the thread's identity is unknown and must not serve files."""


_Identity = tuple[int, int, tuple[int, ...]]


class _ThreadState(threading.local):
    # What this thread's fsuid, fsgid and groups are, each known separately: going back to the server leaves
    # the supplementary groups alone (they grant nothing a thread with fsuid 0 does not already have), so a
    # thread that serves one user again and again switches only fsuid/fsgid.
    current: _Identity | None = None
    groups: tuple[int, ...] | None = None


_state = _ThreadState()


@cache
def running_as_root() -> bool:
    return os.geteuid() == 0


@cache
def _root_identity() -> _Identity:
    return (0, 0, tuple(os.getgroups()))


def _setgroups(groups: tuple[int, ...]) -> None:
    number = _SYS_SETGROUPS.get(platform.machine())
    if number is None:
        raise IdentityError(0, f"raw setgroups is not known for {platform.machine()}")
    array = (ctypes.c_uint * max(len(groups), 1))(*groups)
    if _syscall(ctypes.c_long(number), ctypes.c_size_t(len(groups)), array) != 0:
        err = ctypes.get_errno()
        raise IdentityError(err, f"setgroups: {os.strerror(err)}")


def _switch(uid: int, gid: int, groups: tuple[int, ...]) -> None:
    # Groups and gid before uid, the conventional order when dropping privileges.
    _state.current = None  # unknown until every step succeeded
    if groups != _state.groups:
        _state.groups = None
        _setgroups(groups)
        _state.groups = groups
    _setfsgid(gid)
    _setfsuid(uid)
    # setfsuid/setfsgid report failure only by not changing anything: read back.
    if _setfsuid(_NO_CHANGE) != uid or _setfsgid(_NO_CHANGE) != gid:
        raise IdentityError(0, f"setfsuid/setfsgid to {uid}/{gid} refused")
    _state.current = (uid, gid, groups)


def _to_server() -> None:
    # Back to fsuid/fsgid 0. The effective uid is 0 throughout, so the kernel cannot refuse this; the groups
    # stay as they are (see _ThreadState).
    _state.current = None
    _setfsgid(0)
    _setfsuid(0)
    _state.current = (0, 0, _state.groups if _state.groups is not None else ())


def _is_server(current: _Identity | None) -> bool:
    return current is not None and current[0] == 0 and current[1] == 0


def become(uid: int, gid: int, groups: Sequence[int] = ()) -> None:
    """Make this thread's file-system identity uid/gid with supplementary `groups` (no-op unless root)."""
    if not running_as_root():
        return
    wanted = (uid, gid, tuple(groups))
    if _state.current == wanted:
        return
    # No detour through root between two users: a non-zero fsuid only drops the file capabilities
    # (CAP_DAC_OVERRIDE, CAP_CHOWN, ...); CAP_SETGID and CAP_SETUID stay, and setfsuid(0) is allowed because
    # the effective uid is still 0.
    _switch(*wanted)


def become_root() -> None:
    """Back to the server's own identity on this thread (also the initializer of worker threads)."""
    if not running_as_root():
        return
    if _state.current is None:
        _switch(*_root_identity())  # a new thread, or a failed switch: set everything
    elif not _is_server(_state.current):
        _to_server()


class acting_as:  # a context manager used like a function: `with acting_as(...)`
    """The block runs as uid/gid/groups; afterwards the thread is the server again. A class rather than a
    generator: it runs around every request."""

    __slots__ = ("_identity",)

    def __init__(self, uid: int, gid: int, groups: Sequence[int]) -> None:
        self._identity = (uid, gid, tuple(groups))

    def __enter__(self) -> None:
        if running_as_root() and _state.current != self._identity:
            _switch(*self._identity)

    def __exit__(self, *exc_info: object) -> None:
        become_root()


@contextmanager
def as_server() -> Generator[None, None, None]:
    """Run the block as the server, then return to the identity the thread had (for the server's own I/O,
    and for share I/O that the SMB access check has already allowed, as Samba's become_root())."""
    saved = _state.current
    if not running_as_root() or _is_server(saved):
        yield
        return
    become_root()
    try:
        yield
    finally:
        if saved is not None:
            _switch(*saved)


@contextmanager
def acting_for(uid: int, gid: int, groups: Sequence[int]) -> Generator[None, None, None]:
    """Run the block as uid/gid/groups, then return to the identity the thread had: as_server() for another
    user (the delete on close a user asked for, carried out at another user's close: files/closing.py)."""
    wanted = (uid, gid, tuple(groups))
    saved = _state.current
    if not running_as_root() or uid < 0 or saved == wanted:
        yield
        return
    _switch(*wanted)
    try:
        yield
    finally:
        if saved is None or _is_server(saved):
            become_root()
        else:
            _switch(*saved)


def current() -> tuple[int, int, tuple[int, ...]] | None:
    """The identity this thread last switched to through this module (None: never switched, or unknown)."""
    return _state.current


def acts_as_client() -> bool:
    return not _is_server(_state.current) and _state.current is not None


class ServerIdentityHandler(logging.Handler):
    """Wraps a log handler so that it writes (opens, rotates) as the server, whatever thread logs."""

    def __init__(self, inner: logging.Handler) -> None:
        super().__init__(inner.level)
        self.inner = inner

    def handle(self, record: logging.LogRecord) -> bool:
        if not acts_as_client():
            return self.inner.handle(record)
        with as_server():
            return self.inner.handle(record)

    def emit(self, record: logging.LogRecord) -> None:  # handle() never calls it; here for the interface
        self.inner.emit(record)

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        self.inner.setFormatter(fmt)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()
        super().close()


class _LoaderAsServer(importlib.abc.Loader):
    """A module's own loader, run as the server (it reads the source or bytecode file)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        with as_server():
            return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: types.ModuleType) -> None:
        with as_server():
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _ImportsAsServer(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: an import made while the thread acts as a client is found and loaded as the
    server. It does nothing (returns None at once) for the server's own imports."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not acts_as_client():
            return None
        with as_server():
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    if spec.loader is not None:
                        spec.loader = _LoaderAsServer(spec.loader)
                    return spec  # type: ignore[no-any-return]
        return None


_import_guard = _ImportsAsServer()


def install_import_guard() -> None:
    """Make lazy imports work whatever identity the importing thread has (root servers only)."""
    if running_as_root() and _import_guard not in sys.meta_path:
        sys.meta_path.insert(0, _import_guard)
