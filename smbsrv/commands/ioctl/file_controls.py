"""FSCTLs on an open file: pipe transceive, sparse files, zeroed and allocated ranges, compression, snapshots
([MS-FSCC] 2.3)."""

from __future__ import annotations

import struct

from smbsrv.fscc.attributes import FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_SPARSE_FILE
from smbsrv.hsm import access as hsm_access
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.protocol.reply import Reply
from smbsrv.wire import ioctl as wire
from smbsrv.wire.constants import FILE_APPEND_DATA, FILE_READ_DATA, FILE_WRITE_ATTRIBUTES, FILE_WRITE_DATA
from smbsrv.wire.status import NtStatus

_RANGE = struct.Struct("<qq")
_ZERO_DATA = struct.Struct("<qq")  # FileOffset, BeyondFinalZero ([MS-FSCC] 2.3.85)
_MAX_LONGLONG = 0x7FFFFFFFFFFFFFFF


def pipe_transceive(ctx: RequestContext, open_: Open, request: wire.IoctlRequest) -> bytes | Reply:
    if open_.pipe is None:
        raise SmbError(NtStatus.STATUS_INVALID_DEVICE_REQUEST)
    output = open_.pipe.transceive(bytes(request.input), request.max_output_response)
    if open_.pipe.current_message_remaining():
        # The reply message did not fit: the client reads the rest ([MS-SMB2] 3.3.5.15.8).
        return Reply(output, status=NtStatus.STATUS_BUFFER_OVERFLOW)
    return output  # type: ignore[no-any-return]


def set_sparse(ctx: RequestContext, open_: Open, request: wire.IoctlRequest) -> bytes:
    """[MS-FSCC] 2.3.64: Linux files are sparse wherever holes are punched, so only the attribute is kept;
    an optional SetSparse byte of 0 clears it. Directories cannot be sparse, nor named streams, whose data is an
    xattr (fs/streams.py): marking one would mark its file (Samba 4.17 refuses too, with ACCESS_DENIED)."""
    if open_.is_directory or open_.stream is not None:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    # [MS-FSA] 2.1.5.10.38 names FILE_WRITE_DATA and FILE_WRITE_ATTRIBUTES; Windows and Samba also take
    # FILE_APPEND_DATA (smbtorture smb2.ioctl.sparse_perms, which Samba 4.17 passes here).
    if not open_.granted_access & (FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_WRITE_ATTRIBUTES):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    sparse = not request.input or request.input[0] != 0
    attributes = open_.info().attributes & ~FILE_ATTRIBUTE_NORMAL
    attributes = attributes | FILE_ATTRIBUTE_SPARSE_FILE if sparse else attributes & ~FILE_ATTRIBUTE_SPARSE_FILE
    open_.handle.set_dos_info(attributes, None)
    return b""


def set_zero_data(ctx: RequestContext, open_: Open, request: wire.IoctlRequest) -> bytes:
    """[MS-FSCC] 2.3.85 / [MS-FSA] 2.1.5.10.39 FSCTL_SET_ZERO_DATA: the range [FileOffset, BeyondFinalZero)
    reads as zeros afterwards; the end of file does not move. Like Samba, the range is deallocated (a punched
    hole) whether or not the file is marked sparse."""
    if open_.is_directory:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    if not open_.granted_access & FILE_WRITE_DATA:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)  # APPEND_DATA or WRITE_ATTRIBUTES alone are not enough
    if len(request.input) < _ZERO_DATA.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    offset, beyond_final_zero = _ZERO_DATA.unpack_from(request.input)
    if offset < 0 or beyond_final_zero < offset:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    length = beyond_final_zero - offset
    if not length:
        return b""
    # Another handle's lock on the range refuses it, as a WRITE there would be (smb2.ioctl.sparse_lock).
    open_.file.locks.check_io(open_, offset, length, write=True)
    if ctx.tree is not None and ctx.tree.share.hsm_provider:  # a placeholder hydrates first (docs/hsm.md)
        hsm_access.before_data_access(ctx, open_, lambda: _zero(open_, offset, length))
    return _zero(open_, offset, length)


def _zero(open_: Open, offset: int, length: int) -> bytes:
    open_.handle.punch_hole(offset, length)
    return b""


def query_allocated_ranges(ctx: RequestContext, open_: Open, request: wire.IoctlRequest) -> bytes | Reply:
    """[MS-FSCC] 2.3.45: the data extents within the asked range, found with SEEK_DATA/SEEK_HOLE."""
    if not open_.granted_access & FILE_READ_DATA or open_.is_directory:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if len(request.input) < _RANGE.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    start, length = _RANGE.unpack_from(request.input)
    # [MS-FSA] 2.1.5.10.22: a negative offset or length, or a range ending past MAXLONGLONG, is invalid
    # (Samba 4.17 answers SUCCESS with no ranges for the first and last of these).
    if start < 0 or length < 0 or start + length > _MAX_LONGLONG:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    end = min(start + length, open_.handle.size())
    ranges: list[bytes] = []
    if start < end and not open_.posix and not open_.info().attributes & FILE_ATTRIBUTE_SPARSE_FILE:
        # A file not marked sparse is reported allocated over the whole range, holes or not ([MS-FSA]
        # 2.1.5.10.22; Windows and Samba: smbtorture smb2.ioctl.sparse_punch zeroes a range of a non-sparse
        # file and still finds it allocated). A POSIX open sees the holes, as SEEK_DATA/SEEK_HOLE do on Linux.
        ranges.append(_RANGE.pack(start, end - start))
        start = end
    ranges.extend(_RANGE.pack(offset, size) for offset, size in open_.handle.data_ranges(start, end))
    room = request.max_output_response // _RANGE.size
    if len(ranges) <= room:
        return b"".join(ranges)
    if not room:
        raise SmbError(NtStatus.STATUS_BUFFER_TOO_SMALL)
    # [MS-FSA] 2.1.5.10.22: the ranges that fit, with STATUS_BUFFER_OVERFLOW. cifs.ko asks for one range at a
    # time for SEEK_DATA/SEEK_HOLE and reads any other answer as EIO; Samba 4.17 answered BUFFER_TOO_SMALL,
    # its bug 15699, fixed in 4.22 to answer as Windows does.
    return Reply(b"".join(ranges[:room]), status=NtStatus.STATUS_BUFFER_OVERFLOW)


def enumerate_snapshots(ctx: RequestContext, open_: Open, request: wire.IoctlRequest) -> bytes:
    # No snapshots: NumberOfSnapShots 0, returned 0, array size 2 (the empty multi-sz terminator).
    if request.max_output_response < 12:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    return struct.pack("<III", 0, 0, 2) + b"\0\0" if request.max_output_response >= 16 else struct.pack(
        "<III", 0, 0, 2)


# [MS-FSCC] 2.3.24 / 2.3.76 COMPRESSION_STATE: CompressionState (2 bytes).
_COMPRESSION_STATE = struct.Struct("<H")
COMPRESSION_FORMAT_NONE = 0


def get_compression(ctx: RequestContext, open_: Open, request: wire.IoctlRequest) -> bytes:
    """[MS-FSCC] 2.3.23: files here are never compressed, so the answer is COMPRESSION_FORMAT_NONE, as Windows
    Server 2016 ReFS and Samba answer on volumes without compression (smbtorture compress_notsup_get). No
    access right is needed (Windows checks none); a buffer too small for the 2 bytes is
    STATUS_INVALID_USER_BUFFER, Samba's answer."""
    if request.max_output_response < _COMPRESSION_STATE.size:
        raise SmbError(NtStatus.STATUS_INVALID_USER_BUFFER)
    return _COMPRESSION_STATE.pack(COMPRESSION_FORMAT_NONE)


def set_compression(ctx: RequestContext, open_: Open, request: wire.IoctlRequest) -> bytes:
    """[MS-FSCC] 2.3.75: COMPRESSION_FORMAT_NONE succeeds (nothing to undo), any other format is
    STATUS_NOT_SUPPORTED, as FILE_FILE_COMPRESSION is not advertised (smbtorture compress_notsup_set). Samba
    wants FILE_WRITE_DATA (not FILE_WRITE_ATTRIBUTES)."""
    if not open_.granted_access & FILE_WRITE_DATA:
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if len(request.input) < _COMPRESSION_STATE.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    (compression_state,) = _COMPRESSION_STATE.unpack_from(request.input)
    if compression_state != COMPRESSION_FORMAT_NONE:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    return b""
