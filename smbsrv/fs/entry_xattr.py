"""One user.* xattr of a directory entry, read with getxattrat(2) where the kernel has it (Linux 6.13).

A listing reads the DOS attributes of every entry it has not seen (dos_attrs.read_at). fs/xattr.py reaches an
entry as "/proc/self/fd/N/name", a five-component walk through procfs per call, and pays for a Python
exception on every entry without the attribute (ENODATA, the common case for files made outside SMB).
getxattrat(dirfd, name, AT_SYMLINK_NOFOLLOW, ...) looks up one component and reports ENODATA as a return
value: a first listing of 10,000 entries, sans-IO, 12.0-13.7 -> 9.9-10.9 us of CPU per entry.

Anything but a value or "not stored" (ENODATA, ENOTSUP) is left to xattr.get_at, which retries a refused read
as the server and maps errors; without the system call (ENOSYS: an older kernel, or a seccomp filter) every
call goes there.
"""

import ctypes
import errno
import os
import platform
import threading

from smbsrv.fs import xattr

# The generic system call table numbers getxattrat 464 on every architecture since Linux 6.13.
_SYS_GETXATTRAT = 464
_AT_SYMLINK_NOFOLLOW = 0x100
_NOT_STORED = (errno.ENODATA, errno.ENOTSUP)
_VALUE_BYTES = 4096  # the largest ext4 value; ERANGE (a larger one elsewhere) goes to xattr.get_at


class _XattrArgs(ctypes.Structure):  # struct xattr_args, include/uapi/linux/xattr.h
    _fields_ = [("value", ctypes.c_uint64), ("size", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


_syscall = None
if platform.machine() in ("x86_64", "aarch64"):
    _syscall = ctypes.CDLL(None, use_errno=True).syscall
    _syscall.restype = ctypes.c_long
    _syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_char_p,
                         ctypes.c_void_p, ctypes.c_size_t]
_ARGS_SIZE = ctypes.sizeof(_XattrArgs)


class _Buffers(threading.local):
    """A value buffer per thread: ctypes drops the GIL during the call."""

    def __init__(self) -> None:
        self.value = ctypes.create_string_buffer(_VALUE_BYTES)
        self.args = _XattrArgs(ctypes.addressof(self.value), _VALUE_BYTES, 0)
        self.args_ref = ctypes.byref(self.args)


_buffers = _Buffers()


def get(dir_fd: int, entry_name: str, name: str) -> bytes | None:
    """xattr.get_at(dir_fd, entry_name, name): the value of user.* xattr `name` of the entry (never following
    a symlink), None when absent or unsupported."""
    global _syscall
    if _syscall is None or entry_name in (".", "..") or "/" in entry_name or not name.startswith("user."):
        return xattr.get_at(dir_fd, entry_name, name)
    buffers = _buffers
    length = _syscall(_SYS_GETXATTRAT, dir_fd, os.fsencode(entry_name), _AT_SYMLINK_NOFOLLOW, name.encode(),
                      buffers.args_ref, _ARGS_SIZE)
    if length >= 0:
        return buffers.value.raw[:length]
    error = ctypes.get_errno()
    if error in _NOT_STORED:
        return None
    if error == errno.ENOSYS:
        _syscall = None
    return xattr.get_at(dir_fd, entry_name, name)
