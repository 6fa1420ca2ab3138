"""An open's presence on disk: its fd, the fd of the directory it is in, its name there and its file key.

`FileHandle` is the only code a command uses to read, write, truncate, allocate, sync, rename, link, unlink,
chmod, set the owner or stat share data through an open (house style, "Per-file state"); every failing system call
comes back as the SmbError of fs/errno_map.py, whatever the command (an EIO of a READ is
STATUS_IO_DEVICE_ERROR, not an internal error). The fd is an O_PATH fd for metadata-only opens and for objects
the server never opens for data (symlinks, fifos, sockets, devices: protocol notes 8.7), a real fd when data
access was granted. `parent_fd` is -1 and `name` "" for the share root.

The SMB view of the file (its FileInfo, its reparse buffer, its directory listing) is here too, built by
fs/presented.py from the same fds; it needs the share's settings, which the caller passes in.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smbsrv.errors import SmbError
from smbsrv.fs import backend, dos_attrs, identity, nt_acl, presented, streams
from smbsrv.fs.dos_attrs import DosInfo
from smbsrv.fs.errno_map import raise_for_oserror
from smbsrv.fscc import attributes as fattr
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.config import ShareConfig
    from smbsrv.fs.fileinfo import FileInfo
    from smbsrv.fs.reparse_store import ReparseStore
    from smbsrv.fscc.security import SecurityDescriptor


@dataclass(eq=False)
class FileHandle:
    fd: int = -1
    parent_fd: int = -1  # taken over from the resolver; the handle closes it
    name: str = ""
    # (st_dev, st_ino): what FileTable, share modes and locks are keyed on; a StreamHandle adds the stream's name
    key: tuple[int, int] | tuple[int, int, str] = (0, 0)

    # -- lifetime ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close both fds (idempotent)."""
        fd, self.fd = self.fd, -1
        parent_fd, self.parent_fd = self.parent_fd, -1
        try:
            if fd >= 0:
                os.close(fd)
        finally:
            if parent_fd >= 0:
                os.close(parent_fd)

    def dup(self) -> int:
        """A new fd of the same open file, owned by the caller (sendfile ranges, copies in a thread)."""
        try:
            return os.dup(self.fd)
        except OSError as exc:
            raise_for_oserror(exc)

    @contextlib.contextmanager
    def borrowed_fd(self) -> Iterator[int]:
        """A duplicate of the fd for work in a worker thread, closed on exit: a CLOSE that arrives meanwhile
        cannot make that work read or write a reused fd number."""
        fd = self.dup()
        try:
            yield fd
        finally:
            os.close(fd)

    def moved(self, parent_fd: int, name: str) -> None:
        """The file is now `name` in the directory `parent_fd` (a rename through any handle of it): keep a
        copy of that directory fd, release the old one."""
        try:
            new_parent = os.dup(parent_fd)
        except OSError as exc:
            raise_for_oserror(exc)
        old_parent, self.parent_fd, self.name = self.parent_fd, new_parent, name
        if old_parent >= 0:
            os.close(old_parent)

    # -- data ---------------------------------------------------------------------------------------------------

    def read(self, length: int, offset: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer at end of file). os.pread fills a new bytes object
        without zeroing it first: a bytearray(length) would cost one more pass over up to 8 MiB."""
        try:
            return os.pread(self.fd, length, offset)
        except OSError as exc:
            raise_for_oserror(exc)

    def write(self, data: bytes | bytearray | memoryview, offset: int) -> int:
        """All of `data` at `offset`, a view written without a copy; returns len(data). Safe in a worker
        thread: os.pwrite releases the GIL and touches no server state."""
        return backend.pwrite_all(self.fd, data, offset)

    def size(self) -> int:
        return self.stat().st_size

    def truncate(self, length: int) -> None:
        backend.ftruncate(self.fd, length)

    def set_allocation(self, allocation: int) -> None:
        """FileAllocationInformation at or above the end of file: reserve exactly that many blocks."""
        backend.set_allocation(self.fd, allocation)

    def punch_hole(self, offset: int, length: int) -> None:
        """Deallocate a range, which then reads as zeros; the end of file does not move."""
        backend.punch_hole(self.fd, offset, length)

    def sync(self, *, data_only: bool = False) -> None:
        """Data (and with data_only=False the metadata too) reaches stable storage."""
        if data_only:
            backend.fdatasync(self.fd)
        else:
            backend.fsync(self.fd)

    def data_ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        """The (offset, length) ranges between start and end that hold data, holes left out (SEEK_DATA and
        SEEK_HOLE, lseek(2)); a file system without hole support reports one range."""
        ranges: list[tuple[int, int]] = []
        position = start
        while position < end:
            try:
                data = os.lseek(self.fd, position, os.SEEK_DATA)
            except OSError:
                break  # ENXIO: no data after position; any other failure reports the ranges found so far
            if data >= end:
                break
            try:
                hole = min(os.lseek(self.fd, data, os.SEEK_HOLE), end)
            except OSError as exc:
                raise_for_oserror(exc)
            ranges.append((data, hole - data))
            position = hole
        return ranges

    # -- metadata -----------------------------------------------------------------------------------------------

    def stat(self) -> os.stat_result:
        return backend.fstat(self.fd)

    def stat_parent(self) -> os.stat_result:
        return backend.fstat(self.parent_fd)

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        backend.set_times(self.fd, atime_ns=atime_ns, mtime_ns=mtime_ns)

    def chmod(self, mode: int) -> None:
        backend.fchmod(self.fd, mode)

    def set_security(self, descriptor: SecurityDescriptor, parts: int) -> None:
        """Owner, group and/or DACL of a client's descriptor (fs/nt_acl.py: POSIX owner, mode and ACLs)."""
        nt_acl.apply_descriptor(self.fd, descriptor, parts)

    def dos_info(self, st: os.stat_result | None = None) -> DosInfo | None:
        """The stored DOS attributes and creation time, None when there are none."""
        return dos_attrs.read(self.fd, self.stat() if st is None else st)

    def set_dos_info(self, attributes: int | None, creation_time: int | None, change_time: int | None = None
                     ) -> None:
        """Store attributes and the creation time (None: keep) and, when given, a client-set ChangeTime; any
        other change of the attributes lets ChangeTime follow the real ctime again."""
        st = self.stat()
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return  # special files cannot carry xattrs; their attributes are synthesized
        current = dos_attrs.read(self.fd, st)
        if current is None:
            current = DosInfo(backend.file_attributes(st, None), dos_attrs.derived_creation_time(st))
        new_attributes = current.attributes if attributes is None else attributes
        new_attributes &= ~(fattr.FILE_ATTRIBUTE_NORMAL | fattr.FILE_ATTRIBUTE_DIRECTORY)
        if stat.S_ISDIR(st.st_mode):
            new_attributes |= fattr.FILE_ATTRIBUTE_DIRECTORY
        anchor = dos_attrs.change_anchor(st) if change_time else 0
        dos_attrs.write(self.fd, DosInfo(new_attributes, creation_time or current.creation_time, change_time or 0,
                                         anchor))

    # -- names ----------------------------------------------------------------------------------------------------

    def rename_to(self, parent_fd: int, name: str, *, replace: bool) -> None:
        """renameat2 of this file's name to `name` in `parent_fd`; the handle's own fds do not move (the
        caller updates every handle of the file with moved())."""
        backend.rename_at(self.parent_fd, self.name, parent_fd, name, replace=replace)

    def link_to(self, parent_fd: int, name: str) -> None:
        backend.link_at(self.parent_fd, self.name, parent_fd, name)

    def unlink(self, is_directory: bool) -> None:
        """Remove the file's name now (POSIX delete); the handle keeps working on the unlinked inode."""
        if is_directory:
            backend.rmdir_at(self.parent_fd, self.name)
        else:
            backend.unlink_at(self.parent_fd, self.name)

    def unlink_if_same(self) -> bool | None:
        """Delete on close: remove the name if it still names this file. Returns whether it was a directory,
        None when there was nothing to remove (the name is gone or belongs to another file now)."""
        if self.parent_fd < 0 or not self.name:
            return None
        st = backend.stat_at(self.parent_fd, self.name)
        if st is None or (st.st_dev, st.st_ino) != self.key[:2]:  # a stream handle's key names the stream too
            return None
        is_dir = stat.S_ISDIR(st.st_mode)
        FileHandle.unlink(self, is_dir)  # the name, also when called for a stream's handle (files/closing.py)
        return is_dir

    # -- directories ------------------------------------------------------------------------------------------

    def list_directory(self) -> list[tuple[str, os.stat_result]]:
        """The entries of an open directory, with "." and ".." first as Windows and Samba list them. ".." of
        the share root is the root itself: nothing outside the share is ever described."""
        own = self.stat()
        parent = self.stat_parent() if self.parent_fd >= 0 else own
        return [(".", own), ("..", parent)] + backend.list_dir(self.fd)

    def has_entries(self, can_read: bool) -> bool:
        """Whether a directory has entries. Without read access (a caller holding only DELETE) the server
        looks, as rmdir(2) needs no read permission on the directory either."""
        fd = self.fd
        if not can_read:
            with identity.as_server():
                fd = backend.open_at(self.parent_fd, self.name, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with os.scandir(fd) as entries:
                return any(True for _ in entries)
        except OSError as exc:
            raise_for_oserror(exc)
        finally:
            if fd != self.fd:
                os.close(fd)

    # -- the SMB view -----------------------------------------------------------------------------------------

    def info(self, share: ShareConfig, reparse_store: ReparseStore | None, components: tuple[str, ...],
             st: os.stat_result | None = None) -> FileInfo:
        """The file as SMB clients see it (attributes, times, sizes, reparse tag): a FileInfo of the caller's own
        (fs/presented.py reuses one built before while the file is unchanged)."""
        if st is None:
            st = self.stat()
        return presented.open_info(self.fd, self.parent_fd, self.name, st, share, reparse_store, components)

    def reparse_buffer(self, share: ShareConfig, reparse_store: ReparseStore | None,
                       components: tuple[str, ...]) -> bytes | None:
        """Synthesized for real special objects, the stored blob for files and directories a client set one on,
        None when the object is no reparse point."""
        return presented.reparse_buffer(self.fd, self.parent_fd, self.name, self.stat(), share, reparse_store,
                                        components)


@dataclass(eq=False)
class StreamHandle(FileHandle):
    """An open of a named stream ("file:name", fs/streams.py): `fd` is the O_PATH fd of the file or directory the
    stream belongs to, whose attributes, times, security and name the stream shares; its data is the stream's.
    `key` is the file's key with the stream's folded name added, so the FileTable keeps the stream's opens,
    sharing, locks and delete-pending apart from the file's ([MS-FSA] 2.1.1.5: one Stream per data stream)."""

    stream: str = ""  # the stream's name as stored (the case it was created with)

    # -- data ---------------------------------------------------------------------------------------------------

    def read(self, length: int, offset: int) -> bytes:
        return streams.read(self.fd, self.stream)[offset:offset + length]

    def write(self, data: bytes | bytearray | memoryview, offset: int) -> int:
        return streams.write_at(self.fd, self.stream, data, offset)

    def size(self) -> int:
        return len(streams.read(self.fd, self.stream))

    def truncate(self, length: int) -> None:
        streams.truncate(self.fd, self.stream, length)

    def set_allocation(self, allocation: int) -> None:
        """Nothing is reserved for a stream (its xattr is written whole); more than a stream can hold is refused
        as a write of it would be."""
        streams.check_size(allocation)

    def punch_hole(self, offset: int, length: int) -> None:
        data = streams.read(self.fd, self.stream)
        end = min(len(data), offset + length)
        if offset < end:
            streams.write_at(self.fd, self.stream, bytes(end - offset), offset)

    def sync(self, *, data_only: bool = False) -> None:
        """A stream is written with one setxattr, which the file system journals as metadata."""

    def data_ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        stop = min(end, self.size())
        return [(start, stop - start)] if start < stop else []

    # -- names ----------------------------------------------------------------------------------------------------

    def link_to(self, parent_fd: int, name: str) -> None:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)  # a hard link names a file, not one of its streams

    def unlink(self, is_directory: bool) -> None:
        """Remove the stream now (a POSIX-semantics delete through a stream handle)."""
        streams.remove(self.fd, self.stream)

    def unlink_if_same(self) -> bool | None:
        """Delete on close: remove the stream. False (no directory) when it went, None when it was gone."""
        return False if streams.remove(self.fd, self.stream) else None

    # -- the SMB view -----------------------------------------------------------------------------------------

    def reparse_buffer(self, share: ShareConfig, reparse_store: ReparseStore | None,
                       components: tuple[str, ...]) -> bytes | None:
        """A named stream is no reparse point (its file may be: FSCTL_GET_REPARSE_POINT through the stream
        answers NOT_A_REPARSE_POINT, as Samba 4.17; FSCTL_DELETE_REPARSE_POINT cannot remove the file's)."""
        return None

    def info(self, share: ShareConfig, reparse_store: ReparseStore | None, components: tuple[str, ...],
             st: os.stat_result | None = None) -> FileInfo:
        """The file's attributes and times with the stream's sizes. A stream is no directory: one of a
        directory shows ARCHIVE where the directory has no other attribute (Samba 4.17)."""
        info = super().info(share, reparse_store, components, st).copy()
        info.end_of_file = self.size()
        info.allocation_size = streams.allocation_of(info.end_of_file)
        info.attributes = info.attributes & ~fattr.FILE_ATTRIBUTE_DIRECTORY or fattr.FILE_ATTRIBUTE_ARCHIVE
        return info
