"""QUERY_DIRECTORY ([MS-SMB2] 3.3.5.18; [MS-FSA] 2.1.5.6).

The directory is read once per enumeration (at the first query, RESTART_SCANS or REOPEN) and the position is
kept on the open, so listing 10,000 entries costs one getdents pass and one fstatat per entry.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass

from smbsrv.commands import volume
from smbsrv.commands.query_info import max_transact_size
from smbsrv.files import write_time
from smbsrv.fs import backend, dos_attrs, mangle, presented
from smbsrv.fs.dos_attrs import STORED_ATTRIBUTES_MASK
from smbsrv.fscc.attributes import (
    FILE_ATTRIBUTE_ARCHIVE,
    FILE_ATTRIBUTE_DIRECTORY,
    FILE_ATTRIBUTE_HIDDEN,
    FILE_ATTRIBUTE_NORMAL,
    FILE_ATTRIBUTE_REPARSE_POINT,
)
from smbsrv.fscc.directory import ENTRY_FIXED_SIZE, entry_encoder, row_packer
from smbsrv.fscc.file_info import FileInformationClass
from smbsrv.fscc.times import FILETIME_UNIX_EPOCH
from smbsrv.fscc.wildcard import compile_pattern
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.credits import check_credit_charge
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.protocol.reply import Reply
from smbsrv.wire import query as wire
from smbsrv.wire.buffer import decode_utf16
from smbsrv.wire.constants import (
    FILE_LIST_DIRECTORY,
    SMB2_REOPEN,
    SMB2_RESTART_SCANS,
    SMB2_RETURN_SINGLE_ENTRY,
)
from smbsrv.wire.status import NtStatus

_S_IFREG = stat.S_IFREG
_S_IFDIR = stat.S_IFDIR
# st_*time_ns from which a FILETIME is positive: earlier times are 0 (times.unix_ns_to_filetime), slow path.
_MIN_NS = -FILETIME_UNIX_EPOCH * 100
_U32 = struct.Struct("<I")


@dataclass(slots=True)
class Enumeration:
    pattern: str
    entries: list[tuple[str, os.stat_result]]  # the matching names, "." and ".." first
    position: int = 0
    # The directory's (mtime, ctime) when `entries` was read: Linux moves both on every create, delete and
    # rename in it, so while they hold the stats of the remaining entries are still the names that exist.
    version: tuple[int, int] = (0, 0)


def _version(st: os.stat_result) -> tuple[int, int]:
    return st.st_mtime_ns, st.st_ctime_ns


def handle(ctx: RequestContext, request: wire.QueryDirectoryRequest) -> Reply:
    open_ = ctx.open
    assert open_ is not None and ctx.tree is not None
    if not open_.is_directory or open_.pipe is not None:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if not open_.granted_access & FILE_LIST_DIRECTORY:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    # The POSIX level answers POSIX opens only. On a connection without the extensions it is no class at all:
    # STATUS_INVALID_INFO_CLASS ([MS-SMB2] 3.3.5.18); a Windows open on a POSIX connection (or on a share
    # without POSIX) gets Samba's STATUS_INVALID_LEVEL (smbd_smb2_query_directory_send checks posix_open).
    if request.file_information_class == FileInformationClass.FilePosixInformation:
        if not ctx.connection.posix_extensions:
            raise SmbError(NtStatus.STATUS_INVALID_INFO_CLASS)
        if not (open_.posix and volume.posix_enabled(ctx)):
            raise SmbError(NtStatus.STATUS_INVALID_LEVEL)
    # ShortName only with mangled_names = "yes" (Samba 4.17's default "illegal" leaves it empty; fs/mangle.py).
    short_names = ctx.tree.share_root.short_names if ctx.tree.share.mangled_names == "yes" and not open_.posix \
        else None
    encoder = entry_encoder(request.file_information_class,
                            posix_with_file_type=volume.posix_type_bits(ctx.tree),
                            short_name=None if short_names is None else short_names.listing_name)
    if request.output_buffer_length > max_transact_size(ctx):
        # [MS-SMB2] 3.3.5.18: above the negotiated MaxTransactSize is STATUS_INVALID_PARAMETER (Windows; Samba's
        # smbd_smb2_query_directory_send).
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    check_credit_charge(ctx, request.output_buffer_length)  # [MS-SMB2] 3.3.5.2.5, as Samba
    max_length = request.output_buffer_length
    pattern = decode_utf16(request.file_name) or "*"
    enumeration: Enumeration | None = open_.enumeration
    # SMB2_INDEX_SPECIFIED asks to resume at FileIndex; like Windows and Samba, which report no meaningful
    # FileIndex, the scan simply continues where it is.
    restart = request.flags & (SMB2_RESTART_SCANS | SMB2_REOPEN)
    if enumeration is None or restart:
        if enumeration is not None and not request.flags & SMB2_REOPEN:
            pattern = enumeration.pattern  # fixed at the first query unless REOPEN ([MS-SMB2] 3.3.5.18)
        enumeration = _start(ctx, open_, pattern)
        open_.enumeration = enumeration
        first = True
    else:
        first = False
    tree = ctx.tree
    entries = enumeration.entries
    dir_fd = open_.handle.fd
    # A scan continued after the directory changed (smbtorture smb2.dir.fixed deletes every file through
    # another handle half way) looks each remaining name up again: one removed since is skipped, as Windows
    # and Samba skip it, instead of being listed from the stat taken at the start.
    recheck = not first and _version(open_.handle.stat()) != enumeration.version
    # "." is the directory itself; ".." its parent (the share root's ".." is the root: nothing outside).
    own_fds = {".": dir_fd, "..": open_.handle.parent_fd if open_.path_components else dir_fd}
    info_class = request.file_information_class
    fixed = ENTRY_FIXED_SIZE[info_class]
    packer = row_packer(info_class, short_names is not None)
    # Zero-filled (padding and reserved fields need no writes), at most 64 KiB and no larger than what the
    # remaining entries could fill (a name is at most 255 UTF-16 units); doubled while entries still fit in
    # max_length. bytearray(n) writes all n bytes: a client's 8 MiB OutputBufferLength must not cost 8 MiB.
    room = min(max_length, 65536, (len(entries) - enumeration.position) * (fixed + 7 + 510))
    buf = bytearray(room)
    share = tree.share
    hide_dot_files = share.hide_dot_files
    files_get = ctx.connection.server.files.get
    single_entry = request.flags & SMB2_RETURN_SINGLE_ENTRY
    index = enumeration.position
    end = 0  # where the last packed entry ends
    previous = 0  # where it starts
    count = 0
    too_large = False
    while index < len(entries):
        name, st = entries[index]
        index += 1
        if recheck and name not in own_fds:
            now = backend.stat_at(dir_fd, name)
            if now is None:
                continue
            st = now
        name16 = name.encode("utf-16-le", "surrogatepass")
        start = (end + 7) & ~7 if count else 0
        fmt = st.st_mode & 0o170000
        # The fast path packs the fields of presented.entry_info + backend.file_info straight from the stat
        # for what most entries are: a regular file or directory without a client reparse point, not open
        # (an open file shows its opens' LastWriteTime), with times after 1601. The rest goes through FileInfo.
        # tests/unit/protocol/test_query_directory_rows.py holds the two paths equal for every class.
        dos = None
        fast = packer is not None and (fmt == _S_IFREG or fmt == _S_IFDIR) and name not in own_fds
        if fast:
            try:
                dos = dos_attrs.read_at(dir_fd, name, st)
            except SmbError:
                continue  # removed since the scan started: Windows and Samba skip it too
            access_ns, write_ns, change_ns = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
            fast = (dos is None or not dos.attributes & FILE_ATTRIBUTE_REPARSE_POINT) \
                and access_ns >= _MIN_NS and write_ns >= _MIN_NS and change_ns >= _MIN_NS \
                and files_get((st.st_dev, st.st_ino)) is None
        entry = b""
        if fast:
            new_end = start + fixed + len(name16)
        else:
            try:
                info = presented.entry_info(dir_fd, name, st, share, tree.reparse_store, own_fds.get(name, -1),
                                            open_.path_components)
            except SmbError:
                continue  # removed since the scan started
            # An open file shows the LastWriteTime its opens see (files/write_time.py).
            write_time.shown_for(files_get((st.st_dev, st.st_ino)), info)
            entry = encoder(info, name16, 0)
            new_end = start + len(entry)
        if new_end > room:
            if new_end > max_length:
                too_large = True
                break
            room = min(max_length, max(new_end, 2 * room))
            buf.extend(bytes(room - len(buf)))
        if fast:
            is_dir = fmt == _S_IFDIR
            if dos is None:
                attributes = FILE_ATTRIBUTE_DIRECTORY if is_dir else FILE_ATTRIBUTE_ARCHIVE
                creation = (min(change_ns, write_ns)) // 100 + FILETIME_UNIX_EPOCH
                change = change_ns // 100 + FILETIME_UNIX_EPOCH
            else:
                attributes = dos.attributes & STORED_ATTRIBUTES_MASK
                if is_dir:
                    attributes |= FILE_ATTRIBUTE_DIRECTORY
                creation = dos.creation_time or \
                    (min(change_ns, write_ns)) // 100 + FILETIME_UNIX_EPOCH
                change = dos_attrs.change_time(dos, st)
            if hide_dot_files and name[0] == ".":
                attributes |= FILE_ATTRIBUTE_HIDDEN
            packer(buf, start, creation, access_ns // 100 + FILETIME_UNIX_EPOCH,
                   write_ns // 100 + FILETIME_UNIX_EPOCH, change, 0 if is_dir else st.st_size,
                   0 if is_dir else st.st_blocks * 512, attributes or FILE_ATTRIBUTE_NORMAL, st.st_ino, name16)
        else:
            buf[start:new_end] = entry
        if count:
            _U32.pack_into(buf, previous, start - previous)  # NextEntryOffset of the entry before
        previous = start
        end = new_end
        count += 1
        if single_entry:
            break
    if count == 0:
        if not too_large:
            enumeration.position = len(entries)
            raise SmbError(NtStatus.STATUS_NO_SUCH_FILE if first and not entries
                           else NtStatus.STATUS_NO_MORE_FILES)
        raise SmbError(NtStatus.STATUS_INFO_LENGTH_MISMATCH)
    # The entry that did not fit is the next query's first.
    enumeration.position = index - 1 if too_large else index
    return Reply(wire.encode_output_response(memoryview(buf)[:end]))


def _start(ctx: RequestContext, open_: Open, pattern: str) -> Enumeration:
    assert ctx.tree is not None
    case_sensitive = open_.posix or ctx.tree.share.case_sensitive
    matches = compile_pattern(pattern, case_sensitive)
    listing = open_.handle.list_directory()
    short_names = ctx.tree.share_root.short_names
    if "~" in pattern and short_names is not None and not open_.posix:
        # A pattern with the '~' of a short name also matches the short names of long names, as in Samba
        # (a client naming a file by the short name it was given; fs/mangle.py). Only then: hashing every
        # name of a large directory for each lookup pattern would cost more than it is worth.
        entries = [(name, st) for name, st in listing
                   if matches(name) or not mangle.is_8_3(name) and matches(short_names.short_name(name))]
    elif pattern == "*":
        entries = listing  # every name (no name is empty): what clients list with
    else:
        entries = [(name, st) for name, st in listing if matches(name)]
    return Enumeration(pattern, entries, version=_version(listing[0][1]))
