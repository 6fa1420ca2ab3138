"""QUERY_INFO ([MS-SMB2] 3.3.5.20): file, file-system and security information of an open."""

from __future__ import annotations

import os
import stat
import struct

from smbsrv.commands import volume
from smbsrv.fs import eas, mangle, nt_acl, streams
from smbsrv.fs.fileinfo import FileInfo
from smbsrv.fs.handle import FileHandle
from smbsrv.fscc import file_info as file_classes
from smbsrv.fscc import fs_info
from smbsrv.fscc.ea import EaEntry, decode_get_ea_list, encode_full_ea_list
from smbsrv.fscc.security import (
    DACL_SECURITY_INFORMATION,
    GROUP_SECURITY_INFORMATION,
    OWNER_SECURITY_INFORMATION,
    SACL_SECURITY_INFORMATION,
    SE_DACL_PRESENT,
    SE_DACL_PROTECTED,
    SE_SELF_RELATIVE,
    SecurityDescriptor,
    encode_descriptor,
    unix_group_sid,
    unix_user_sid,
)
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.credits import check_credit_charge
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.protocol.reply import Reply
from smbsrv.wire import query as wire
from smbsrv.wire.constants import (
    ACCESS_SYSTEM_SECURITY,
    FILE_READ_ATTRIBUTES,
    FILE_READ_EA,
    READ_CONTROL,
    SMB2_0_INFO_FILE,
    SMB2_0_INFO_FILESYSTEM,
    SMB2_0_INFO_QUOTA,
    SMB2_0_INFO_SECURITY,
)
from smbsrv.wire.status import NtStatus

C = file_classes.FileInformationClass
# Classes whose tail is variable: a buffer that holds the fixed part gets STATUS_BUFFER_OVERFLOW and what fits;
# a smaller one STATUS_INFO_LENGTH_MISMATCH. The sizes are Windows' (smbtorture smb2.getinfo.*_buffercheck):
# FileAllInformation counts the name's first 4 bytes, a stream entry its first 8.
_VARIABLE_FIXED_SIZE = {C.FileAllInformation: 104, C.FileNameInformation: 4, C.FileNormalizedNameInformation: 4,
                        C.FileAlternateNameInformation: 8, C.FileStreamInformation: 32,
                        C.FileFullEaInformation: 0}
_VARIABLE_FS_FIXED_SIZE = {fs_info.F.FileFsVolumeInformation: 24, fs_info.F.FileFsAttributeInformation: 16}
_NEEDS_READ_ATTRIBUTES = {C.FileBasicInformation, C.FileAllInformation, C.FileNetworkOpenInformation,
                          C.FileAttributeTagInformation, C.FilePosixInformation}
_U32 = struct.Struct("<I")
# QUERY_INFO Flags for FileFullEaInformation ([MS-SMB2] 2.2.37)
_SL_RESTART_SCAN = 0x01
_SL_RETURN_SINGLE_ENTRY = 0x02
_SL_INDEX_SPECIFIED = 0x04
_SD_PARTS = 0x0000000F  # OWNER | GROUP | DACL | SACL _SECURITY_INFORMATION
# AllocationSize 4096, EndOfFile 0, NumberOfLinks 1, DeletePending 0, Directory 0
_PIPE_STANDARD = struct.pack("<QQIBBH", 4096, 0, 1, 0, 0, 0)


def max_transact_size(ctx: RequestContext) -> int:
    """The MaxTransactSize the NEGOTIATE response gave this connection: 64 KiB for SMB 2.0.2 (no multi-credit
    requests), else the server's max_io_size (commands/negotiate.py)."""
    connection = ctx.connection
    return 65536 if connection.dialect == 0x0202 else connection.server.config.max_io_size


def handle(ctx: RequestContext, request: wire.QueryInfoRequest) -> Reply:
    open_ = ctx.open
    assert open_ is not None
    limit = max_transact_size(ctx)
    if request.output_buffer_length > limit or len(request.input_buffer) > limit:
        # [MS-SMB2] 3.3.5.20: more than the negotiated MaxTransactSize is STATUS_INVALID_PARAMETER (Windows,
        # and Samba's smbd_smb2_request_process_getinfo), not an answer cut to some other size.
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    # [MS-SMB2] 3.3.5.2.5: the larger of the two buffers is what the CreditCharge pays for (Samba checks it too).
    check_credit_charge(ctx, max(request.output_buffer_length, len(request.input_buffer)))
    if open_.pipe is not None:
        return _fit(request, _pipe_info(request))
    if request.info_type == SMB2_0_INFO_FILE:
        output = _file_info(ctx, request)
    elif request.info_type == SMB2_0_INFO_FILESYSTEM:
        output = _fs_info(ctx, request)
    elif request.info_type == SMB2_0_INFO_SECURITY:
        output = _security(ctx, request)
    elif request.info_type == SMB2_0_INFO_QUOTA:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    else:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if isinstance(output, Reply):
        return output
    return _fit(request, output)


def _pipe_info(request: wire.QueryInfoRequest) -> bytes:
    """A named pipe has no file behind it: FileStandardInformation describes the pipe as Windows does (an
    allocation of one page, nothing stored); other classes do not apply."""
    if request.info_type == SMB2_0_INFO_FILE and request.file_info_class == C.FileStandardInformation:
        return _PIPE_STANDARD
    raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)


def _fit(request: wire.QueryInfoRequest, output: bytes) -> Reply:
    """[MS-SMB2] 3.3.5.20.1: too small for the fixed part is STATUS_INFO_LENGTH_MISMATCH; a variable tail
    that does not fit is cut and reported as STATUS_BUFFER_OVERFLOW."""
    limit = request.output_buffer_length
    if len(output) <= limit:
        return Reply(wire.encode_output_response(output))
    if request.info_type == SMB2_0_INFO_FILE:
        fixed = _VARIABLE_FIXED_SIZE.get(request.file_info_class)
    elif request.info_type == SMB2_0_INFO_FILESYSTEM:
        fixed = _VARIABLE_FS_FIXED_SIZE.get(request.file_info_class)
    else:
        fixed = None
    if fixed is None or limit < fixed:
        raise SmbError(NtStatus.STATUS_INFO_LENGTH_MISMATCH)
    return Reply(wire.encode_output_response(output[:limit]), status=NtStatus.STATUS_BUFFER_OVERFLOW)


def _file_info(ctx: RequestContext, request: wire.QueryInfoRequest) -> bytes | Reply:
    open_ = ctx.open
    assert open_ is not None and ctx.tree is not None
    info_class = request.file_info_class
    if info_class in _NEEDS_READ_ATTRIBUTES and not open_.granted_access & FILE_READ_ATTRIBUTES:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if info_class == C.FileFullEaInformation:
        return _full_ea(open_, request)
    if info_class == C.FileNormalizedNameInformation and ctx.connection.dialect < 0x0311:
        # [MS-SMB2] 3.3.5.20.1: only an SMB 3.1.1 connection may ask (smbtorture smb2.getinfo.normalized).
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    if info_class == C.FilePosixInformation and not (open_.posix and volume.posix_enabled(ctx)):
        # Only a POSIX open on a connection that negotiated the extensions knows this class; Samba answers
        # STATUS_INVALID_INFO_CLASS (its INVALID_LEVEL is turned into it), as samba.tests.smb3unix expects.
        raise SmbError(NtStatus.STATUS_INVALID_INFO_CLASS)
    st = open_.handle.stat()
    info = open_.info(st)
    if open_.posix:
        info.attributes = file_classes.posix_attributes(info)  # SPARSE for a file with holes (fscc/file_info.py)
    if info_class in (C.FileEaInformation, C.FileAllInformation):
        info.ea_size = eas.cached_size(open_.handle.fd, st)  # info_for_open built `info` for this request alone
    # The normalized name has no leading separator (the share root's is empty); the others start with one.
    path = "\\".join(open_.named_components)
    return file_classes.encode(
        info_class, info,
        file_name=path if info_class == C.FileNormalizedNameInformation else "\\" + path,
        short_name=_alternate_name(ctx, open_) if info_class == C.FileAlternateNameInformation else "",
        delete_pending=open_.link.delete_pending,  # its name's ([MS-FSA] Open.Link.IsDeleted)
        current_offset=open_.position,
        mode=open_.mode_flags,
        access_flags=open_.granted_access,
        streams=_streams(ctx, open_, info, st) if info_class == C.FileStreamInformation else None,
        volume_serial_number=volume.volume_serial(ctx.tree) if info_class == C.FileIdInformation else 0,
        posix_with_file_type=volume.posix_type_bits(ctx.tree),
    )


def _streams(ctx: RequestContext, open_: Open, info: FileInfo, st: os.stat_result) -> list[tuple[str, int, int]]:
    """[MS-FSA] 2.1.5.12.30 FileStreamInformation: the file's unnamed data stream (none for a directory), then
    its named streams (fs/streams.py) in the order the file system lists them; through a stream's handle the
    same list, the file's."""
    assert ctx.tree is not None
    if open_.stream is not None:  # the sizes of the file, not of the stream this handle is of
        info = FileHandle.info(open_.handle, ctx.tree.share, ctx.tree.reparse_store, open_.path_components, st)
    entries = [] if info.is_directory else [("::$DATA", info.end_of_file, info.allocation_size)]
    if ctx.tree.share.named_streams and (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        entries += [(f":{name}:$DATA", size, size)  # StreamAllocationSize: the size, as Samba 4.17 gives it
                    for name, size in streams.listing(open_.handle.fd)]
    return entries


def _alternate_name(ctx: RequestContext, open_: Open) -> str:
    """[MS-FSCC] 2.4.5: the 8.3 name of the last component, a name that is 8.3 itself as it is (fs/mangle.py);
    the share root's is "." (Samba 4.17 answers both so). A POSIX open has none (Samba's POSIX paths are never
    mangled); on a share without short names a long name has none either (STATUS_OBJECT_NAME_NOT_FOUND, as
    Windows without 8.3 names)."""
    assert ctx.tree is not None
    if open_.posix:
        return ""
    name = open_.path_components[-1] if open_.path_components else "."
    short_names = ctx.tree.share_root.short_names
    if short_names is not None:
        return short_names.short_name(name)
    if not mangle.is_8_3(name):
        raise SmbError(NtStatus.STATUS_OBJECT_NAME_NOT_FOUND)
    return name


def _full_ea(open_: Open, request: wire.QueryInfoRequest) -> bytes | Reply:
    """[MS-FSA] 2.1.5.12 FileFullEaInformation: the EAs named in the input buffer (an absent one with an empty
    value), else the list from the start; with SL_RETURN_SINGLE_ENTRY one EA per call, walking the handle's
    EA index (SL_RESTART_SCAN starts over, SL_INDEX_SPECIFIED jumps to AdditionalInformation, 1-based)."""
    if not open_.granted_access & FILE_READ_EA:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    stored = eas.read(open_.handle.fd, open_.handle.stat())
    flags = request.flags
    if request.input_buffer:
        by_name = {entry.name.upper(): entry for entry in stored}
        wanted = [by_name.get(name.upper(), EaEntry(name, b"")) for name in decode_get_ea_list(request.input_buffer)]
    else:
        if not stored:
            raise SmbError(NtStatus.STATUS_NO_EAS_ON_FILE)
        position = 0
        if flags & _SL_INDEX_SPECIFIED:
            position = request.additional_information - 1
            if not 0 <= position < len(stored):
                raise SmbError(NtStatus.STATUS_NONEXISTENT_EA_ENTRY)
        elif flags & _SL_RETURN_SINGLE_ENTRY and not flags & _SL_RESTART_SCAN:
            position = open_.ea_index
        if position >= len(stored):
            raise SmbError(NtStatus.STATUS_NO_MORE_EAS)
        wanted = stored[position:]
    if flags & _SL_RETURN_SINGLE_ENTRY:
        wanted = wanted[:1]
    # Whole entries only: as many as fit, STATUS_BUFFER_OVERFLOW when some were left out. Each entry but the
    # last is padded to 4 bytes, so the list of the first n entries ends at aligned(n - 1) + raw size of n.
    limit = request.output_buffer_length
    count = 0
    aligned_end = 0
    for entry in wanted:
        if aligned_end + 8 + len(entry.name) + 1 + len(entry.value) > limit:
            break
        count += 1
        aligned_end += eas.entry_size(entry)
    if not count:
        raise SmbError(NtStatus.STATUS_BUFFER_TOO_SMALL)
    output = encode_full_ea_list(wanted[:count])
    if not request.input_buffer:
        open_.ea_index = stored.index(wanted[count - 1]) + 1
    if count < len(wanted):
        return Reply(wire.encode_output_response(output), status=NtStatus.STATUS_BUFFER_OVERFLOW)
    return output


def _fs_info(ctx: RequestContext, request: wire.QueryInfoRequest) -> bytes:
    assert ctx.tree is not None
    assert ctx.open is not None
    if request.file_info_class == fs_info.F.FileFsPosixInformation and not (
            ctx.open.posix and volume.posix_enabled(ctx)):
        # As FilePosixInformation above (samba.tests.smb3unix test_posix_fs_info).
        raise SmbError(NtStatus.STATUS_INVALID_INFO_CLASS)
    return volume.fs_information(ctx.tree, request.file_info_class)


def _security(ctx: RequestContext, request: wire.QueryInfoRequest) -> bytes:
    open_ = ctx.open
    assert open_ is not None
    # Asking for none of owner, group, DACL and SACL needs no right and gets an empty descriptor (Windows).
    if request.additional_information & _SD_PARTS and not open_.granted_access & READ_CONTROL:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    parts = request.additional_information
    if parts & SACL_SECURITY_INFORMATION and not open_.granted_access & ACCESS_SYSTEM_SECURITY:
        # The SACL needs ACCESS_SYSTEM_SECURITY on the handle (Windows; Samba's smbd_do_query_security_desc).
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    st = open_.handle.stat()
    # The DACL is the POSIX ACL's, or the mode's where none is stored (fs/nt_acl.py); no SACL is kept. Like
    # Samba, the DACL is PROTECTED: POSIX ACLs are inherited once, at create, never later from the parent.
    described = parts & (OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION)
    descriptor = encode_descriptor(SecurityDescriptor(
        SE_SELF_RELATIVE | (SE_DACL_PROTECTED if described else 0)
        | (SE_DACL_PRESENT if parts & DACL_SECURITY_INFORMATION else 0),
        unix_user_sid(st.st_uid) if parts & OWNER_SECURITY_INFORMATION else None,
        unix_group_sid(st.st_gid) if parts & GROUP_SECURITY_INFORMATION else None,
        None, nt_acl.dacl_of(open_.handle.fd, st) if parts & DACL_SECURITY_INFORMATION else None))
    if len(descriptor) > request.output_buffer_length:
        # The client asks again with this size ([MS-SMB2] 3.3.5.20.3).
        raise SmbError(NtStatus.STATUS_BUFFER_TOO_SMALL, _U32.pack(len(descriptor)), wrap_in_context=False)
    return descriptor

