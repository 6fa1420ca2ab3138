"""The two ways a request can fail: an NTSTATUS answer, or a dropped connection.

They live at the top of the package, below every layer, so codecs (wire/, fscc/), the file system layer (fs/,
files/) and the protocol core all raise the same exceptions without importing one another.
"""

from smbsrv.wire.status import NtStatus


class SmbError(Exception):
    """Answer the request with an SMB2 ERROR response carrying `status` (and optional error data).

    `error_data` is the ErrorData payload of [MS-SMB2] 2.2.2 (for example a symbolic link error response);
    the error-response encoder wraps it in an error context on dialect 3.1.1 when `wrap_in_context` is set.
    """

    def __init__(self, status: NtStatus, error_data: bytes = b"", *, wrap_in_context: bool = True) -> None:
        super().__init__(f"{status.name} (0x{status.value:08x})")
        self.status = status
        self.error_data = error_data
        self.wrap_in_context = wrap_in_context


class ProtocolViolation(Exception):
    """The peer broke framing, signing or sequencing rules badly enough that the connection is dropped."""
