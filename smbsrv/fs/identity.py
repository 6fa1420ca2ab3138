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

The current identity is cached per thread, so become() for the identity the thread already has makes no system
call. When the process is not root, every function here is a no-op: all users act as the server's uid.

Non-share I/O done on a thread after become() (logs, state files) is checked against that user too; call
become_root() first, or do such I/O on other threads.
"""

import ctypes
import os
import platform
import threading
from functools import cache

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
    current: _Identity | None = None


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
    _setgroups(groups)
    _setfsgid(gid)
    _setfsuid(uid)
    # setfsuid/setfsgid report failure only by not changing anything: read back.
    if _setfsuid(_NO_CHANGE) != uid or _setfsgid(_NO_CHANGE) != gid:
        raise IdentityError(0, f"setfsuid/setfsgid to {uid}/{gid} refused")
    _state.current = (uid, gid, groups)


def become(uid: int, gid: int, groups: tuple[int, ...] = ()) -> None:
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
    """Back to the server's own identity on this thread."""
    if not running_as_root():
        return
    if _state.current is None or _state.current != _root_identity():
        _switch(*_root_identity())


def current() -> tuple[int, int, tuple[int, ...]] | None:
    """The identity this thread last switched to through this module (None: never switched, or unknown)."""
    return _state.current
