"""FLUSH ([MS-SMB2] 3.3.5.11): data reaches stable storage before the reply."""

from smbsrv.files import write_time
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.constants import FILE_APPEND_DATA, FILE_WRITE_DATA
from smbsrv.wire.readwrite import FLUSH_RESPONSE
from smbsrv.wire.status import NtStatus


def handle(ctx: RequestContext, request: tuple[int, int]) -> bytes:
    open_ = ctx.open
    assert open_ is not None
    if open_.pipe is not None:
        return FLUSH_RESPONSE
    if not open_.granted_access & (FILE_WRITE_DATA | FILE_APPEND_DATA):
        raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
    if not open_.is_directory:
        open_.handle.sync()
        write_time.update_now(open_)  # a handle that wrote shows its LastWriteTime now (Samba's smb2_flush)
    return FLUSH_RESPONSE
