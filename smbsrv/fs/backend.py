"""fd-based file operations on a share, and the stat -> FileInfo conversion ([MS-FSCC] 2.4, 2.6).

Every function takes directory fds from the resolver plus one on-disk *component* name, never a path: a name
with '/', NUL, or '..' is refused (STATUS_OBJECT_NAME_INVALID) so that no caller can walk, or follow a symlink,
by accident. Opens always carry O_NOFOLLOW and O_CLOEXEC. Failures become SmbError through errno_map.

Renames that must not replace use renameat2(RENAME_NOREPLACE), so "does the target exist?" and "rename" are
one atomic step.
"""

import ctypes
import errno
import fcntl
import os
import stat
import struct
from collections.abc import Iterator

from smbsrv.errors import SmbError
from smbsrv.fs import dos_attrs, identity
from smbsrv.fs.dos_attrs import DosInfo
from smbsrv.fs.errno_map import raise_for_oserror
from smbsrv.fs.fileinfo import FileInfo
from smbsrv.fscc.attributes import (
    FILE_ATTRIBUTE_ARCHIVE,
    FILE_ATTRIBUTE_DIRECTORY,
    FILE_ATTRIBUTE_HIDDEN,
    FILE_ATTRIBUTE_NORMAL,
    FILE_ATTRIBUTE_READONLY,
    FILE_ATTRIBUTE_REPARSE_POINT,
)
from smbsrv.fscc.times import unix_ns_to_filetime
from smbsrv.wire.status import NtStatus

_ALWAYS = os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_EXCHANGE = 2
_RENAME_NOREPLACE = 1  # include/uapi/linux/fs.h
_FALLOC_FL_KEEP_SIZE = 1  # include/uapi/linux/falloc.h
_FALLOC_FL_PUNCH_HOLE = 2
_AT_FDCWD = -100
_UTIME_OMIT = (1 << 30) - 2  # include/linux/stat.h

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = _libc.renameat2  # glibc >= 2.28
_renameat2.restype = ctypes.c_int
_renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_fallocate = _libc.fallocate
_fallocate.restype = ctypes.c_int
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_utimensat = _libc.utimensat
_utimensat.restype = ctypes.c_int
_utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec), ctypes.c_int]


def _check_name(name: str) -> None:
    # '.' stays allowed: the root's Resolution names itself '.' and no operation on it can leave the share.
    if not name or name == ".." or "/" in name or "\x00" in name:
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_INVALID)


def _raise_errno() -> None:
    err = ctypes.get_errno()
    raise_for_oserror(OSError(err, os.strerror(err)))


# --- open / create -------------------------------------------------------------------------------------------


def open_at(parent_fd: int, name: str, flags: int, mode: int = 0o666) -> int:
    """openat(parent_fd, name, flags | O_NOFOLLOW | O_CLOEXEC): a symlink as `name` fails (ELOOP), unless
    O_PATH is in `flags`, which yields an fd of the link itself."""
    _check_name(name)
    try:
        return os.open(name, flags | _ALWAYS, mode, dir_fd=parent_fd)
    except OSError as exc:
        raise_for_oserror(exc)


def open_dir_at(parent_fd: int, name: str) -> int:
    """A readable directory fd for enumeration (list_dir); a symlink or non-directory fails."""
    return open_at(parent_fd, name, os.O_RDONLY | os.O_DIRECTORY)


def create_at(
    parent_fd: int,
    name: str,
    mode: int = 0o666,
    *,
    directory: bool = False,
    flags: int = os.O_RDWR,
    posix_mode: bool = False,
) -> int:
    """Create a new file (or, with `directory`, a directory) and return an fd of it: O_RDWR|`flags` for a
    file, O_RDONLY|O_DIRECTORY for a directory. An existing name, symlink included, is
    STATUS_OBJECT_NAME_COLLISION (O_EXCL / mkdir). With `posix_mode` the mode is applied exactly (fchmod after
    the create), since the POSIX create context carries the bits the client wants, not bits for the umask to
    trim."""
    if directory:
        mkdir_at(parent_fd, name, mode)
        # A symlink swapped in between mkdir and open is refused (O_NOFOLLOW|O_DIRECTORY), never followed.
        fd = open_at(parent_fd, name, os.O_RDONLY | os.O_DIRECTORY)
    else:
        fd = open_at(parent_fd, name, flags | os.O_CREAT | os.O_EXCL, mode)
    if posix_mode:
        try:
            # A directory made in a setgid directory is setgid itself (mkdir(2) on Linux, whatever the mode
            # asked for); the exact mode must not take that away.
            inherited = os.fstat(fd).st_mode & stat.S_ISGID if directory else 0
            os.fchmod(fd, (mode & 0o7777) | inherited)
        except OSError as exc:
            os.close(fd)
            raise_for_oserror(exc)
    return fd


# [MS-SMB2] 2.2.13.1.1 access bits that need the file's data.
_FILE_READ_DATA = 0x0001
_FILE_WRITE_DATA = 0x0002
_FILE_APPEND_DATA = 0x0004
_FILE_EXECUTE = 0x0020


def open_for_access(
    parent_fd: int, name: str, granted: int, *, is_directory: bool, is_special: bool, truncate: bool = False
) -> int:
    """Open an existing object with the Unix access that the granted SMB access mask needs.

    Directories get O_RDONLY|O_DIRECTORY (enumeration). Symlinks, FIFOs, sockets and devices get an O_PATH fd
    only: opening a FIFO for data would block and a symlink must not be followed (protocol notes 8.7). An open
    without data access (attributes, delete, security) also gets an O_PATH fd, so no read or write permission
    is needed on the file itself; xattrs, fchmod and set_times work on it through /proc.
    """
    if is_special:
        return open_at(parent_fd, name, os.O_PATH)
    if is_directory:
        # Listing needs a readable fd; anything else (attributes, delete, rename, security) works on O_PATH,
        # so a directory the user may not read can still be opened for those, as on Samba and Windows.
        flags = os.O_RDONLY if granted & _FILE_READ_DATA else os.O_PATH
        return open_at(parent_fd, name, flags | os.O_DIRECTORY)
    wants_read = granted & (_FILE_READ_DATA | _FILE_EXECUTE)
    wants_write = granted & (_FILE_WRITE_DATA | _FILE_APPEND_DATA) or truncate
    if wants_read and wants_write:
        flags = os.O_RDWR
    elif wants_write:
        flags = os.O_WRONLY
    elif wants_read:
        flags = os.O_RDONLY
    else:
        return open_at(parent_fd, name, os.O_PATH)
    if truncate:
        flags |= os.O_TRUNC
    # O_NONBLOCK: if a FIFO was swapped in after resolution, its open returns at once instead of blocking the
    # server (regular-file I/O ignores the flag). A held kernel lease then gives EAGAIN, a sharing violation.
    return open_at(parent_fd, name, flags | os.O_NONBLOCK)


def mkdir_at(parent_fd: int, name: str, mode: int = 0o777) -> None:
    _check_name(name)
    try:
        os.mkdir(name, mode, dir_fd=parent_fd)
    except OSError as exc:
        raise_for_oserror(exc)


def unlink_at(parent_fd: int, name: str) -> None:
    _check_name(name)
    try:
        os.unlink(name, dir_fd=parent_fd)
    except OSError as exc:
        raise_for_oserror(exc)


def rmdir_at(parent_fd: int, name: str) -> None:
    _check_name(name)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except OSError as exc:
        raise_for_oserror(exc)


def rename_at(old_parent_fd: int, old_name: str, new_parent_fd: int, new_name: str, *, replace: bool) -> None:
    """Rename within the share. Without `replace`, an existing target is STATUS_OBJECT_NAME_COLLISION, decided
    atomically by the kernel. With it, the target is replaced as rename(2) does (the caller enforces Windows
    rules such as "never replace a directory" before calling)."""
    _check_name(old_name)
    _check_name(new_name)
    if replace:
        try:
            os.rename(old_name, new_name, src_dir_fd=old_parent_fd, dst_dir_fd=new_parent_fd)
        except OSError as exc:
            raise_for_oserror(exc)
        return
    old_b = os.fsencode(old_name)
    new_b = os.fsencode(new_name)
    if _renameat2(old_parent_fd, old_b, new_parent_fd, new_b, _RENAME_NOREPLACE) == 0:
        return
    err = ctypes.get_errno()
    if err != errno.EINVAL:
        raise_for_oserror(OSError(err, os.strerror(err)))
    # EINVAL: either the file system lacks RENAME_NOREPLACE (some FUSE and network file systems) or the rename
    # itself is invalid (a directory into itself). For non-directories link+unlink is an atomic no-replace; a
    # directory falls back to check-then-rename, whose window is documented here as the only racy spot.
    source = stat_at(old_parent_fd, old_name)
    if source is None:
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND)
    if not stat.S_ISDIR(source.st_mode):
        link_at(old_parent_fd, old_name, new_parent_fd, new_name)
        unlink_at(old_parent_fd, old_name)
        return
    if stat_at(new_parent_fd, new_name) is not None:
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_COLLISION)
    try:
        os.rename(old_name, new_name, src_dir_fd=old_parent_fd, dst_dir_fd=new_parent_fd)
    except OSError as exc:
        raise_for_oserror(exc)


def rename_exchange_at(parent_a: int, name_a: str, parent_b: int, name_b: str) -> None:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE): how a directory is replaced in one step."""
    _check_name(name_a)
    _check_name(name_b)
    if _renameat2(parent_a, os.fsencode(name_a), parent_b, os.fsencode(name_b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise_for_oserror(OSError(err, os.strerror(err)))


def link_at(src_parent_fd: int, src_name: str, dst_parent_fd: int, dst_name: str) -> None:
    """Hard link; a symlink source is linked itself, not its target."""
    _check_name(src_name)
    _check_name(dst_name)
    try:
        os.link(src_name, dst_name, src_dir_fd=src_parent_fd, dst_dir_fd=dst_parent_fd, follow_symlinks=False)
    except OSError as exc:
        raise_for_oserror(exc)


def symlink_at(target: str, parent_fd: int, name: str) -> None:
    """Create a symlink (its target text is not checked: the server never follows links)."""
    _check_name(name)
    try:
        os.symlink(target, name, dir_fd=parent_fd)
    except OSError as exc:
        raise_for_oserror(exc)


def readlink_at(parent_fd: int, name: str) -> str:
    """The link text; bytes that are not UTF-8 come back surrogate-escaped (os.fsdecode)."""
    _check_name(name)
    try:
        return os.readlink(name, dir_fd=parent_fd)
    except OSError as exc:
        raise_for_oserror(exc)


# --- metadata ------------------------------------------------------------------------------------------------


def close(fd: int) -> None:
    """Close an fd the caller owns that never became a FileHandle's (a CREATE that failed after the open)."""
    os.close(fd)


def lstat_path(path: str) -> os.stat_result | None:
    """lstat of an absolute path the server built itself (a change feed's record: share root plus components),
    None when it cannot be stat'ed (gone since). Never for a client's name: those go through the resolver."""
    try:
        return os.stat(path, follow_symlinks=False)
    except OSError:
        return None


def fstat(fd: int) -> os.stat_result:
    try:
        return os.fstat(fd)
    except OSError as exc:
        raise_for_oserror(exc)


def stat_at(parent_fd: int, name: str) -> os.stat_result | None:
    """lstat of `name` in parent_fd, None when it does not exist."""
    _check_name(name)
    try:
        return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise_for_oserror(exc)


def _proc_path(fd: int) -> str:
    # O_PATH fds refuse fchmod/futimens; the /proc magic link names the very inode behind the fd. Callers never
    # pass a symlink's fd here (and Linux cannot chmod a symlink anyway).
    return f"/proc/self/fd/{fd}"


def fchmod(fd: int, mode: int) -> None:
    try:
        os.fchmod(fd, mode)
    except OSError as exc:
        if exc.errno != errno.EBADF:
            raise_for_oserror(exc)
        try:
            os.chmod(_proc_path(fd), mode)
        except OSError as exc2:
            raise_for_oserror(exc2)


def fchown(fd: int, uid: int | None, gid: int | None) -> None:
    """Change owner and/or group (None: keep), through /proc: O_PATH fds refuse fchown."""
    if uid is None and gid is None:
        return
    try:
        os.chown(_proc_path(fd), -1 if uid is None else uid, -1 if gid is None else gid)
    except OSError as exc:
        raise_for_oserror(exc)


def set_times(fd: int, *, atime_ns: int | None = None, mtime_ns: int | None = None) -> None:
    """Set last access and/or last write time; None leaves that time alone (UTIME_OMIT), so a SET_INFO that
    changes only one time does not need a stat first. Linux has no settable ctime or birth time."""
    if atime_ns is None and mtime_ns is None:
        return
    times = (_Timespec * 2)()
    for slot, value in enumerate((atime_ns, mtime_ns)):
        if value is None:
            times[slot].tv_sec, times[slot].tv_nsec = 0, _UTIME_OMIT
        else:
            times[slot].tv_sec, times[slot].tv_nsec = divmod(value, 1_000_000_000)
    # futimens(fd) refuses O_PATH fds; the /proc path works for both kinds.
    path = os.fsencode(_proc_path(fd))
    if _utimensat(_AT_FDCWD, path, times, 0) == 0:
        return
    if ctypes.get_errno() in (errno.EPERM, errno.EACCES) and identity.acts_as_client():
        # Only the owner may set explicit times on Linux; SMB lets whoever holds FILE_WRITE_ATTRIBUTES (the
        # caller checked it), so the server sets them, as Samba does for users with write access.
        with identity.as_server():
            if _utimensat(_AT_FDCWD, path, times, 0) == 0:
                return
    _raise_errno()


def statvfs(root_fd: int) -> os.statvfs_result:
    """File-system sizes for FileFsSizeInformation and friends; fstatfs accepts the O_PATH root fd."""
    try:
        return os.statvfs(root_fd)
    except OSError as exc:
        raise_for_oserror(exc)


# --- data ----------------------------------------------------------------------------------------------------


def ftruncate(fd: int, length: int) -> None:
    try:
        os.ftruncate(fd, length)
    except OSError as exc:
        raise_for_oserror(exc)


def fallocate(fd: int, offset: int, length: int, *, keep_size: bool = True) -> None:
    """Reserve blocks (FileAllocationInformation, the "AlSi" create context). With keep_size the end of file
    does not move. File systems without fallocate give STATUS_NOT_SUPPORTED; callers may ignore it."""
    mode = _FALLOC_FL_KEEP_SIZE if keep_size else 0
    if _fallocate(fd, mode, offset, length) != 0:
        _raise_errno()


def set_allocation(fd: int, allocation: int) -> None:
    """FileAllocationInformation at or above the end of file ([MS-FSA] 2.1.5.15.1): the file then holds exactly
    the blocks for `allocation` bytes, reserved beyond EOF with fallocate(FALLOC_FL_KEEP_SIZE) as NTFS reserves
    clusters. Blocks reserved earlier beyond the new amount are dropped first: ftruncate to the current size
    frees whatever lies past EOF (ext4, XFS, btrfs). A file system without fallocate keeps the request as a hint
    (Samba without "strict allocate" does no more); no room is STATUS_DISK_FULL."""
    st = fstat(fd)
    block_size = st.st_blksize or 4096
    wanted, held = -(-allocation // block_size) * block_size, data_allocation(fd, st)
    if wanted < held:
        ftruncate(fd, st.st_size)
    if allocation > st.st_size:
        _check_room(fd, wanted - held)
        try:
            fallocate(fd, 0, allocation)
        except SmbError as exc:
            if exc.status != NtStatus.STATUS_NOT_SUPPORTED:
                _release_past_eof(fd)
                raise


def _check_room(fd: int, needed: int) -> None:
    """STATUS_DISK_FULL before fallocate(2) when the file system has fewer free blocks than the allocation
    needs, as Samba's vfs_allocate_file_space compares with the free space first: ext4 keeps the blocks a
    failed fallocate reserved before it ran out, so one FileAllocationInformation of a terabyte took every
    free block of the file system (for every other user too) and still answered DISK_FULL. Where statvfs
    fails, fallocate decides."""
    try:
        st = os.fstatvfs(fd)
    except OSError:
        return
    if needed > st.f_bavail * st.f_frsize:
        raise SmbError(NtStatus.STATUS_DISK_FULL)


def _release_past_eof(fd: int) -> None:
    """A fallocate(2) that failed anyway (the free space went between the check and the call): what it reserved
    past the end of file goes (ftruncate to the size frees it; the size read again, the window for a concurrent
    extending write as short as it can be). Below the end of file nothing is punched: an unwritten extent there
    may hold bytes written since and not yet written back, which a hole punch would throw away."""
    try:
        ftruncate(fd, fstat(fd).st_size)
    except SmbError:
        pass  # best effort: the request's own failure is what the client is told


# struct fiemap and struct fiemap_extent, include/uapi/linux/fiemap.h; FS_IOC_FIEMAP = _IOWR('f', 11, fiemap)
_FS_IOC_FIEMAP = 0xC020660B
_FIEMAP = struct.Struct("=QQIIII")
_FIEMAP_EXTENT = struct.Struct("=QQQ16xI12x")  # logical, physical, length, (reserved), flags, (reserved)
_FIEMAP_EXTENT_LAST = 0x1
_FIEMAP_BATCH = 32


def allocation_is_blocks(st: os.stat_result) -> bool:
    """Whether data_allocation() answers st_blocks (in bytes) without looking at the file: anything but a regular
    file, and a regular file whose blocks are no more than its size rounded up to blocks (the common case)."""
    block_size = st.st_blksize or 4096
    return not stat.S_ISREG(st.st_mode) or st.st_blocks * 512 <= -(-st.st_size // block_size) * block_size


def data_allocation(fd: int, st: os.stat_result) -> int:
    """AllocationSize of a regular file: the bytes of its data blocks, preallocated ones beyond EOF included.

    st_blocks also counts blocks that are no data: ext4 keeps extended attributes that do not fit in the inode
    (our DOS attributes and the client's EAs) in a block of their own, and large files carry extent-tree
    blocks. NTFS counts neither in a stream's AllocationSize (an empty file with EAs reports 0), so when
    st_blocks says more than the size needs, the data extents are summed with FIEMAP (its delayed-allocation
    and unwritten extents included). In the common case (blocks no more than the size rounded to blocks) that
    costs no system call. Without an fd (-1) or without FIEMAP (tmpfs) st_blocks stands, as Samba reports.
    """
    blocks = st.st_blocks * 512
    if fd < 0 or allocation_is_blocks(st):
        return blocks
    try:
        return sum(length for _, length, _ in _extents(fd))
    except OSError:
        return blocks  # no FIEMAP here (tmpfs, FUSE, an O_PATH fd)


def _extents(fd: int) -> Iterator[tuple[int, int, int]]:
    """(logical offset, length, flags) of each extent of the file, by FS_IOC_FIEMAP; OSError without it."""
    start = 0
    request = bytearray(_FIEMAP.size + _FIEMAP_EXTENT.size * _FIEMAP_BATCH)
    while True:
        _FIEMAP.pack_into(request, 0, start, 2**64 - 1 - start, 0, 0, _FIEMAP_BATCH, 0)
        fcntl.ioctl(fd, _FS_IOC_FIEMAP, request)
        mapped = _FIEMAP.unpack_from(request)[3]
        if not mapped:
            return
        for index in range(mapped):
            logical, _physical, length, flags = _FIEMAP_EXTENT.unpack_from(
                request, _FIEMAP.size + index * _FIEMAP_EXTENT.size)
            yield logical, length, flags
            start = logical + length
            if flags & _FIEMAP_EXTENT_LAST:
                return
        if mapped < _FIEMAP_BATCH:
            return


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Deallocate a range, which then reads as zeros; the end of file does not move (FSCTL_SET_ZERO_DATA)."""
    if _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        _raise_errno()


def pread_into(fd: int, buffer: bytearray | memoryview, offset: int) -> int:
    """Fill `buffer` from `offset`, without copies; returns the bytes read (fewer only at end of file)."""
    view = memoryview(buffer).cast("B")
    total = 0
    try:
        while total < len(view):
            got = os.preadv(fd, [view[total:]], offset + total)
            if got == 0:
                break
            total += got
    except OSError as exc:
        raise_for_oserror(exc)
    return total


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
    """Write all of `data` at `offset` (a view is written as is, without a copy); returns len(data)."""
    view = memoryview(data).cast("B")
    total = 0
    try:
        while total < len(view):
            total += os.pwrite(fd, view[total:], offset + total)
    except OSError as exc:
        raise_for_oserror(exc)
    return total


def fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        raise_for_oserror(exc)


def fdatasync(fd: int) -> None:
    try:
        os.fdatasync(fd)
    except OSError as exc:
        raise_for_oserror(exc)


# --- directories ---------------------------------------------------------------------------------------------


def list_dir(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """(name, lstat) of every entry of a readable directory fd (open_dir_at), '.' and '..' excluded.

    One getdents batch plus one fstatat(AT_SYMLINK_NOFOLLOW) per entry. Entries that vanish between the two are
    skipped; names that are not valid UTF-8 are skipped too, since no SMB client could name them (Samba would
    show a mangled name; see the fs report).
    """
    result: list[tuple[str, os.stat_result]] = []
    try:
        with os.scandir(dir_fd) as it:
            for entry in it:
                name = entry.name
                if not name.isascii():
                    try:
                        name.encode("utf-8")
                    except UnicodeEncodeError:
                        continue
                try:
                    result.append((name, entry.stat(follow_symlinks=False)))
                except FileNotFoundError:
                    continue
    except OSError as exc:
        raise_for_oserror(exc)
    return result


# --- stat -> FileInfo ----------------------------------------------------------------------------------------

# Non-regular, non-directory objects are shown as reparse points built from the real file (protocol notes 8.8).
_SPECIAL_TYPES = frozenset((stat.S_IFLNK, stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK))


def file_attributes(
    st: os.stat_result,
    dos: DosInfo | None,
    *,
    reparse_tag: int = 0,
    name: str = "",
    hide_dot_files: bool = False,
    map_readonly: bool = False,
) -> int:
    """FILE_ATTRIBUTE_* ([MS-FSCC] 2.6) of one object.

    With our DOS xattr: its stored bits. Without: ARCHIVE for regular files (what Windows shows for a file no
    backup has cleared, and what we store for files created over SMB; Samba without its xattr reports NORMAL
    unless the owner-execute bit is set), READONLY only with `map_readonly` and no owner write bit (Samba's
    "map readonly" defaults to no), HIDDEN for dot-files only with `hide_dot_files` (Samba defaults to yes; our
    share default is no). DIRECTORY and REPARSE_POINT always follow the real object; NORMAL only stands alone.
    """
    mode = st.st_mode
    fmt = stat.S_IFMT(mode)
    is_dir = fmt == stat.S_IFDIR
    if dos is not None:
        attrs = dos.attributes & dos_attrs.STORED_ATTRIBUTES_MASK
    else:
        attrs = FILE_ATTRIBUTE_ARCHIVE if fmt == stat.S_IFREG else 0
        if map_readonly and not is_dir and not mode & stat.S_IWUSR:
            attrs |= FILE_ATTRIBUTE_READONLY
    if is_dir:
        attrs |= FILE_ATTRIBUTE_DIRECTORY
    if hide_dot_files and name.startswith(".") and name not in (".", ".."):
        attrs |= FILE_ATTRIBUTE_HIDDEN
    if reparse_tag or fmt in _SPECIAL_TYPES:
        attrs |= FILE_ATTRIBUTE_REPARSE_POINT
    return attrs or FILE_ATTRIBUTE_NORMAL


def file_info(
    st: os.stat_result,
    dos: DosInfo | None,
    *,
    reparse_tag: int = 0,
    ea_size: int = 0,
    name: str = "",
    hide_dot_files: bool = False,
    map_readonly: bool = False,
    fd: int = -1,
) -> FileInfo:
    """One stat (plus our DOS xattr, when read) in SMB terms; see file_attributes() for the attribute rules.

    Directories report EndOfFile and AllocationSize 0 (Windows, and Samba's vfswrap_get_alloc_size). Files
    report the bytes of their data blocks (data_allocation(); `fd`, when given, lets blocks that are no data be
    left out). CreationTime comes from the DOS xattr, else
    dos_attrs.derived_creation_time().
    """
    is_dir = stat.S_ISDIR(st.st_mode)
    creation = dos.creation_time if dos is not None and dos.creation_time else 0
    # Positional, in FileInfo's field order: a keyword call of the 16-field dataclass costs three times as much
    # (0.7 against 0.2 us), on every open's reply, every QUERY_INFO and every listing entry.
    return FileInfo(
        creation or dos_attrs.derived_creation_time(st),  # creation_time
        unix_ns_to_filetime(st.st_atime_ns),  # last_access_time
        unix_ns_to_filetime(st.st_mtime_ns),  # last_write_time
        dos_attrs.change_time(dos, st),  # change_time
        0 if is_dir else st.st_size,  # end_of_file
        0 if is_dir else data_allocation(fd, st),  # allocation_size
        file_attributes(st, dos, reparse_tag=reparse_tag, name=name, hide_dot_files=hide_dot_files,
                        map_readonly=map_readonly),  # attributes
        st.st_ino,  # index_number
        st.st_nlink,  # number_of_links
        reparse_tag,
        ea_size,
        st.st_mode,  # mode
        st.st_uid,  # uid
        st.st_gid,  # gid
        st.st_dev,  # dev
        st.st_rdev,  # rdev
    )


# --- server-side copy, clones and holes ([MS-SMB2] 3.3.5.15.6; [MS-FSCC] 2.3.7, 2.3.34, 2.3.68) -----------------

_FICLONERANGE = 0x4020940D  # _IOW(0x94, 13, struct file_clone_range), include/uapi/linux/fs.h
_CLONE_RANGE = struct.Struct("=qQQQ")  # src_fd, src_offset, src_length, dest_offset
# Errors that mean "this kernel or file system cannot copy these two fds in the kernel": the caller's buffered
# copy takes over (Samba's vfswrap_offload_fast_copy falls back on the same set).
_NO_KERNEL_COPY = frozenset((errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS))
_NO_CLONE = frozenset((errno.EOPNOTSUPP, errno.ENOTTY, errno.ENOSYS, errno.EXDEV))


def copy_range(src_fd: int, src_offset: int, dst_fd: int, dst_offset: int, length: int) -> int:
    """Copy `length` bytes with copy_file_range(2), so the data never enters this process: btrfs and XFS with
    reflink share the extents, other file systems copy in the page cache. Returns the bytes copied (fewer only
    at the source's end of file). Two file systems that cannot copy between each other (EXDEV) get a buffered
    copy. Overlapping ranges of one file are the caller's business (copy_range_buffered)."""
    copied = 0
    try:
        while copied < length:
            done = os.copy_file_range(src_fd, dst_fd, length - copied, src_offset + copied, dst_offset + copied)
            if done == 0:
                break
            copied += done
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise_for_oserror(exc)
        return copied + copy_range_buffered(src_fd, src_offset + copied, dst_fd, dst_offset + copied,
                                            length - copied)
    return copied


def copy_range_buffered(src_fd: int, src_offset: int, dst_fd: int, dst_offset: int, length: int,
                        buffer_size: int = 1 << 20) -> int:
    """Copy through one buffer of `buffer_size` bytes: each piece is read whole before it is written, so a
    range that overlaps its own destination within one piece comes out as if read first (what Windows and
    smbtorture's copy_chunk_src_is_dest_overlap expect of a chunk up to 1 MiB)."""
    buffer = bytearray(min(buffer_size, max(length, 1)))
    view = memoryview(buffer)
    copied = 0
    while copied < length:
        piece = view[:min(len(view), length - copied)]
        got = pread_into(src_fd, piece, src_offset + copied)
        if got == 0:
            break
        pwrite_all(dst_fd, piece[:got], dst_offset + copied)
        copied += got
    return copied


def clone_range(src_fd: int, src_offset: int, dst_fd: int, dst_offset: int, length: int) -> None:
    """Share the extents of a range with another file (ioctl FICLONERANGE): btrfs, XFS with reflink, and a few
    others; STATUS_NOT_SUPPORTED elsewhere. `length` must not be 0, which the kernel reads as "to the end of
    the source"."""
    if length <= 0:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    argument = _CLONE_RANGE.pack(src_fd, src_offset, length, dst_offset)
    try:
        fcntl.ioctl(dst_fd, _FICLONERANGE, argument)
    except OSError as exc:
        if exc.errno in _NO_CLONE:
            raise SmbError(NtStatus.STATUS_NOT_SUPPORTED) from None
        raise_for_oserror(exc)


def supports_clone(dir_fd: int) -> bool:
    """Whether the file system under `dir_fd` clones extents (FILE_SUPPORTS_BLOCK_REFCOUNTING): asked of the
    kernel with an unnamed O_TMPFILE cloned onto itself. The file system answers that overlapping request
    with EINVAL when it can clone at all, and EOPNOTSUPP (ENOTTY) when it cannot; the file vanishes on close.
    Run as the server: the account may not write the directory, and nothing visible is created. The answer is
    kept per device (st_dev), which names one mounted file system for the life of the mount."""
    device = os.fstat(dir_fd).st_dev
    known = _clone_support.get(device)
    if known is None:
        known = _clone_support[device] = _probe_clone(dir_fd)
    return known


_clone_support: dict[int, bool] = {}


def _probe_clone(dir_fd: int) -> bool:
    with identity.as_server():
        try:
            fd = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        except OSError:
            return False
        try:
            fcntl.ioctl(fd, _FICLONERANGE, _CLONE_RANGE.pack(fd, 0, 0, 0))
        except OSError as exc:
            return exc.errno not in _NO_CLONE
        finally:
            os.close(fd)
    return True

