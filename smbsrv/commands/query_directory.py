"""QUERY_DIRECTORY ([MS-SMB2] 3.3.5.18; [MS-FSA] 2.1.5.6).

The directory is read once per enumeration (at the first query, RESTART_SCANS or REOPEN) and the position is
kept on the open, so listing 10,000 entries costs one getdents pass and one fstatat per entry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from smbsrv.commands import volume
from smbsrv.commands.query_info import max_transact_size
from smbsrv.files import write_time
from smbsrv.fs import backend, mangle, presented
from smbsrv.fscc.directory import entry_encoder, fill_buffer
from smbsrv.fscc.file_info import FileInformationClass
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
    yielded: list[int] = []
    files = ctx.connection.server.files

    def infos():  # type: ignore[no-untyped-def]
        for index in range(enumeration.position, len(entries)):
            name, st = entries[index]
            if recheck and name not in own_fds:
                now = backend.stat_at(dir_fd, name)
                if now is None:
                    continue
                st = now
            try:
                info = presented.entry_info(dir_fd, name, st, tree.share, tree.reparse_store, own_fds.get(name, -1),
                                            open_.path_components)
            except SmbError:
                continue  # removed since the scan started: Windows and Samba skip it too
            # An open file shows the LastWriteTime its opens see (files/write_time.py).
            write_time.shown_for(files.get((st.st_dev, st.st_ino)), info)
            yielded.append(index)
            yield info, name.encode("utf-16-le", "surrogatepass"), 0

    output, count = fill_buffer(encoder, infos(), max_length,
                                bool(request.flags & SMB2_RETURN_SINGLE_ENTRY))
    if count == 0:
        if len(yielded) == 0:
            enumeration.position = len(entries)
            raise SmbError(NtStatus.STATUS_NO_SUCH_FILE if first and not entries
                           else NtStatus.STATUS_NO_MORE_FILES)
        raise SmbError(NtStatus.STATUS_INFO_LENGTH_MISMATCH)
    # fill_buffer pulled one entry more than it used, unless the listing ran out.
    enumeration.position = yielded[count] if count < len(yielded) else yielded[-1] + 1
    return Reply(wire.encode_output_response(output))


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
    else:
        entries = [(name, st) for name, st in listing if matches(name)]
    return Enumeration(pattern, entries, version=_version(listing[0][1]))
