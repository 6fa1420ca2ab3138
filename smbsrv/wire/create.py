"""CREATE and CLOSE ([MS-SMB2] 2.2.13, 2.2.14, 2.2.15, 2.2.16)."""

import struct
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.wire.buffer import check_structure_size, field
from smbsrv.wire.create_contexts import decode_chain
from smbsrv.wire.header import HEADER_SIZE
from smbsrv.wire.status import NtStatus

_REQUEST = struct.Struct("<HBBIQQIIIIIHHII")
_RESPONSE = struct.Struct("<HBBIQQQQQQIIQQII")
_FILE_ID = struct.Struct("<QQ")
_CLOSE_REQUEST = struct.Struct("<HHIQQ")
_CLOSE_RESPONSE = struct.Struct("<HHIQQQQQQI")


@dataclass(frozen=True, slots=True)
class CreateRequest:
    requested_oplock_level: int
    impersonation_level: int
    desired_access: int
    file_attributes: int
    share_access: int
    create_disposition: int
    create_options: int
    name: memoryview  # raw UTF-16LE; the path parser decides what is valid
    contexts: dict[bytes, bytes]


def decode_request(element: memoryview) -> CreateRequest:
    check_structure_size(element, 57)
    (_, _, oplock, impersonation, _, _, access, attributes, share, disposition, options, name_offset,
     name_length, contexts_offset, contexts_length) = _REQUEST.unpack_from(element, HEADER_SIZE)
    fixed_end = HEADER_SIZE + 56
    name = field(element, name_offset, name_length, fixed_end=fixed_end)
    contexts: dict[bytes, bytes] = {}
    if contexts_length:
        contexts = decode_chain(field(element, contexts_offset, contexts_length, fixed_end=fixed_end))
    return CreateRequest(oplock, impersonation, access, attributes, share, disposition, options, name, contexts)


def encode_response(*, oplock_level: int, flags: int, create_action: int, creation_time: int,
                    last_access_time: int, last_write_time: int, change_time: int, allocation_size: int,
                    end_of_file: int, file_attributes: int, file_id: tuple[int, int], contexts: bytes) -> bytes:
    contexts_offset = HEADER_SIZE + 88 if contexts else 0
    fixed = _RESPONSE.pack(89, oplock_level, flags, create_action, creation_time, last_access_time,
                           last_write_time, change_time, allocation_size, end_of_file, file_attributes, 0,
                           file_id[0], file_id[1], contexts_offset, len(contexts))
    return fixed + (contexts or b"\0")


def decode_file_id(element: memoryview, offset: int) -> tuple[int, int]:
    """FileId (persistent, volatile) at a header-relative offset; the caller checked the fixed size."""
    return _FILE_ID.unpack_from(element, offset)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class CloseRequest:
    flags: int
    file_id: tuple[int, int]


def decode_close(element: memoryview) -> CloseRequest:
    check_structure_size(element, 24)
    _, flags, _, persistent, volatile = _CLOSE_REQUEST.unpack_from(element, HEADER_SIZE)
    return CloseRequest(flags, (persistent, volatile))


def encode_close_response(flags: int, times: tuple[int, int, int, int] = (0, 0, 0, 0), allocation_size: int = 0,
                          end_of_file: int = 0, file_attributes: int = 0) -> bytes:
    return _CLOSE_RESPONSE.pack(60, flags, 0, *times, allocation_size, end_of_file, file_attributes)


def check_impersonation_level(level: int) -> None:
    # [MS-SMB2] 3.3.5.9: ImpersonationLevel beyond Delegate (3) is invalid.
    if level > 3:
        raise SmbError(NtStatus.STATUS_BAD_IMPERSONATION_LEVEL)
