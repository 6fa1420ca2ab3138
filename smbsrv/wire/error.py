"""The SMB2 ERROR response ([MS-SMB2] 2.2.2, 2.2.2.1)."""

import struct

_ERROR = struct.Struct("<HBBI")
_ERROR_CONTEXT = struct.Struct("<II")
SMB2_ERROR_ID_DEFAULT = 0


def encode_error_response(error_data: bytes, *, dialect: int, wrap_in_context: bool) -> bytes:
    """An error body. On 3.1.1, error data that needs it travels in one SMB2_ERROR_ID_DEFAULT context."""
    if not error_data:
        # ByteCount 0 still sends one byte of ErrorData: the body is 9 bytes.
        return _ERROR.pack(9, 0, 0, 0) + b"\0"
    if dialect == 0x0311 and wrap_in_context:
        # One context: it starts 8-byte aligned (right after the 8-byte fixed part) and, being the last, is
        # not padded; ByteCount = 8 + its data, as Windows and Samba send it.
        context = _ERROR_CONTEXT.pack(len(error_data), SMB2_ERROR_ID_DEFAULT) + error_data
        return _ERROR.pack(9, 1, 0, len(context)) + context
    return _ERROR.pack(9, 0, 0, len(error_data)) + error_data
