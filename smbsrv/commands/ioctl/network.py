"""Connection-level FSCTLs: negotiate validation, interfaces, DFS ([MS-SMB2] 3.3.5.15.2, 3.3.5.15.5, 3.3.5.15.12)."""

from __future__ import annotations

import struct

from smbsrv.commands.ioctl import interfaces
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import ProtocolViolation, SmbError
from smbsrv.wire import ioctl as wire
from smbsrv.wire.status import NtStatus

_NO_FILE = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
_VALIDATE_INPUT = struct.Struct("<I16sHH")
_VALIDATE_OUTPUT = struct.Struct("<I16sHH")


def validate_negotiate_info(ctx: RequestContext, request: wire.IoctlRequest) -> bytes:
    """[MS-SMB2] 3.3.5.15.12: the client re-states what it sent in NEGOTIATE; any difference means a
    man in the middle, and the connection ends."""
    connection = ctx.connection
    if connection.dialect == 0x0311:
        # 3.1.1 clients are protected by the preauth hash; Windows drops a connection that asks anyway.
        raise ProtocolViolation("VALIDATE_NEGOTIATE_INFO on 3.1.1")
    data = bytes(request.input)
    if len(data) < _VALIDATE_INPUT.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    capabilities, guid, security_mode, dialect_count = _VALIDATE_INPUT.unpack_from(data)
    if len(data) < _VALIDATE_INPUT.size + 2 * dialect_count:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    dialects = tuple(struct.unpack_from(f"<{dialect_count}H", data, _VALIDATE_INPUT.size))
    if (dialects != connection.client_dialects or guid != connection.client_guid
            or security_mode != connection.client_security_mode
            or capabilities != connection.client_capabilities):
        raise ProtocolViolation("VALIDATE_NEGOTIATE_INFO mismatch")
    if request.max_output_response < _VALIDATE_OUTPUT.size:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    return _VALIDATE_OUTPUT.pack(connection.server_capabilities, connection.server.server_guid,
                                 connection.server_security_mode, connection.dialect)


def query_network_interface_info(ctx: RequestContext, request: wire.IoctlRequest) -> bytes:
    """[MS-SMB2] 3.3.5.15.11: one NETWORK_INTERFACE_INFO (2.2.32.5) per address a client may open another
    channel to: the addresses the server listens on, and for a wildcard listener the host's addresses of that
    family (the connection's own address when none can be read)."""
    connection = ctx.connection
    if not connection.server.config.multi_channel:
        # Samba's answers without "server multi channel support".
        is_ipc = ctx.tree is not None and ctx.tree.is_ipc
        raise SmbError(NtStatus.STATUS_FS_DRIVER_REQUIRED if is_ipc else NtStatus.STATUS_INVALID_DEVICE_REQUEST)
    if len(request.input) or request.file_id != _NO_FILE:
        # Also a FileId other than all ones: INVALID_PARAMETER, not FILE_CLOSED (Windows and Samba;
        # smbtorture smb2.ioctl.bug14788.NETWORK_INTERFACE).
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    output = interfaces.encode(interfaces.advertised(connection.server.config.listen, connection.local_address))
    if len(output) > request.max_output_response:
        raise SmbError(NtStatus.STATUS_BUFFER_TOO_SMALL)  # Samba's default for an output that does not fit
    return output


def dfs_get_referrals(ctx: RequestContext, request: wire.IoctlRequest) -> bytes:
    # Not a DFS server: the answer Windows gives when the DFS driver is absent.
    raise SmbError(NtStatus.STATUS_FS_DRIVER_REQUIRED)
