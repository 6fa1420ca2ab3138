"""A small, test-only raw SMB2 client that can say things real clients never say ([MS-SMB2] 2.2, 3.2).

It speaks Direct TCP ([MS-SMB2] 2.1) to a server on loopback, builds every 64-byte header itself (2.2.1.2) and
hands back each response as `Response(status, body, header)`. It is written from the spec and the project's
protocol notes, independently of the server's own codecs, so a codec bug on the server cannot hide behind a
matching bug here. Authentication is NTLMv2 through pyspnego's client; signing keys come from
smbsrv.crypto.kdf and signatures from smbsrv.crypto.signing (those have their own test vectors).

Body helpers build request bodies whose offsets count from the start of the element's header, as the spec
says; `request()` sends one element, `compound()` a chain ([MS-SMB2] 3.2.4.1.4), `send()`/`receive()` let a
test keep several requests in flight (blocking LOCK, CANCEL).
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Self

import spnego

from smbsrv.crypto import kdf, signing

# -- constants, spelled as in [MS-SMB2] 2.2 -----------------------------------------------------------------

SMB2_NEGOTIATE = 0x00
SMB2_SESSION_SETUP = 0x01
SMB2_LOGOFF = 0x02
SMB2_TREE_CONNECT = 0x03
SMB2_TREE_DISCONNECT = 0x04
SMB2_CREATE = 0x05
SMB2_CLOSE = 0x06
SMB2_FLUSH = 0x07
SMB2_READ = 0x08
SMB2_WRITE = 0x09
SMB2_LOCK = 0x0A
SMB2_IOCTL = 0x0B
SMB2_CANCEL = 0x0C
SMB2_ECHO = 0x0D
SMB2_QUERY_DIRECTORY = 0x0E
SMB2_CHANGE_NOTIFY = 0x0F
SMB2_QUERY_INFO = 0x10
SMB2_SET_INFO = 0x11

SMB2_FLAGS_SERVER_TO_REDIR = 0x1
SMB2_FLAGS_ASYNC_COMMAND = 0x2
SMB2_FLAGS_RELATED_OPERATIONS = 0x4
SMB2_FLAGS_SIGNED = 0x8

SMB2_NEGOTIATE_SIGNING_ENABLED = 0x1
SMB2_NEGOTIATE_SIGNING_REQUIRED = 0x2

SMB2_PREAUTH_INTEGRITY_CAPABILITIES = 0x0001
SMB2_ENCRYPTION_CAPABILITIES = 0x0002
SMB2_SIGNING_CAPABILITIES = 0x0008
SMB2_POSIX_EXTENSIONS_AVAILABLE = 0x0100
SHA_512 = 0x0001
POSIX_EXTENSIONS_GUID = bytes.fromhex("93AD25509CB411E7B42383DE968BCD7C")

DIALECTS_ALL = (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
RELATED_FILE_ID = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)

# CREATE ([MS-SMB2] 2.2.13)
FILE_SUPERSEDE, FILE_OPEN, FILE_CREATE, FILE_OPEN_IF, FILE_OVERWRITE, FILE_OVERWRITE_IF = range(6)
FILE_DIRECTORY_FILE = 0x1
FILE_NON_DIRECTORY_FILE = 0x40
FILE_DELETE_ON_CLOSE = 0x1000
FILE_OPEN_REPARSE_POINT = 0x200000
FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_SHARE_DELETE = 1, 2, 4
FILE_SHARE_ALL = 7
FILE_READ_DATA = 0x1
FILE_WRITE_DATA = 0x2
FILE_APPEND_DATA = 0x4
FILE_READ_EA = 0x8
FILE_EXECUTE = 0x20
FILE_READ_ATTRIBUTES = 0x80
FILE_WRITE_ATTRIBUTES = 0x100
DELETE = 0x10000
READ_CONTROL = 0x20000
SYNCHRONIZE = 0x100000
MAXIMUM_ALLOWED = 0x2000000
GENERIC_ALL = 0x10000000
GENERIC_WRITE = 0x40000000
GENERIC_READ = 0x80000000
FILE_ATTRIBUTE_READONLY = 0x1
FILE_ATTRIBUTE_DIRECTORY = 0x10
FILE_ATTRIBUTE_NORMAL = 0x80
SECURITY_IMPERSONATION = 2

# QUERY_INFO / SET_INFO ([MS-SMB2] 2.2.37, 2.2.39)
SMB2_0_INFO_FILE, SMB2_0_INFO_FILESYSTEM, SMB2_0_INFO_SECURITY = 1, 2, 3
FILE_BASIC_INFORMATION = 4
FILE_STANDARD_INFORMATION = 5
FILE_RENAME_INFORMATION = 10
FILE_LINK_INFORMATION = 11
FILE_DISPOSITION_INFORMATION = 13
FILE_ALL_INFORMATION = 18
FILE_END_OF_FILE_INFORMATION = 20
FILE_POSIX_INFORMATION = 100
OWNER_SECURITY_INFORMATION, GROUP_SECURITY_INFORMATION, DACL_SECURITY_INFORMATION = 1, 2, 4

# QUERY_DIRECTORY ([MS-SMB2] 2.2.33)
FILE_DIRECTORY_INFORMATION = 0x01
FILE_FULL_DIRECTORY_INFORMATION = 0x02
FILE_BOTH_DIRECTORY_INFORMATION = 0x03
FILE_NAMES_INFORMATION = 0x0C
FILE_ID_BOTH_DIRECTORY_INFORMATION = 0x25
SMB2_RESTART_SCANS = 0x01
SMB2_RETURN_SINGLE_ENTRY = 0x02
SMB2_REOPEN = 0x10

# LOCK ([MS-SMB2] 2.2.26.1)
SMB2_LOCKFLAG_SHARED_LOCK = 0x1
SMB2_LOCKFLAG_EXCLUSIVE_LOCK = 0x2
SMB2_LOCKFLAG_UNLOCK = 0x4
SMB2_LOCKFLAG_FAIL_IMMEDIATELY = 0x10

# IOCTL ([MS-SMB2] 2.2.31)
SMB2_0_IOCTL_IS_FSCTL = 0x1
FSCTL_GET_REPARSE_POINT = 0x000900A8
FSCTL_CREATE_OR_GET_OBJECT_ID = 0x000900C0

# NTSTATUS values the tests compare against ([MS-ERREF] 2.3).
STATUS_SUCCESS = 0x00000000
STATUS_PENDING = 0x00000103
STATUS_BUFFER_OVERFLOW = 0x80000005
STATUS_NO_MORE_FILES = 0x80000006
STATUS_STOPPED_ON_SYMLINK = 0x8000002D
STATUS_INVALID_INFO_CLASS = 0xC0000003
STATUS_INFO_LENGTH_MISMATCH = 0xC0000004
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_NO_SUCH_FILE = 0xC000000F
STATUS_INVALID_DEVICE_REQUEST = 0xC0000010
STATUS_END_OF_FILE = 0xC0000011
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_BUFFER_TOO_SMALL = 0xC0000023
STATUS_OBJECT_NAME_INVALID = 0xC0000033
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_OBJECT_NAME_COLLISION = 0xC0000035
STATUS_OBJECT_PATH_NOT_FOUND = 0xC000003A
STATUS_SHARING_VIOLATION = 0xC0000043
STATUS_FILE_LOCK_CONFLICT = 0xC0000054
STATUS_LOCK_NOT_GRANTED = 0xC0000055
STATUS_DELETE_PENDING = 0xC0000056
STATUS_LOGON_FAILURE = 0xC000006D
STATUS_RANGE_NOT_LOCKED = 0xC000007E
STATUS_BAD_IMPERSONATION_LEVEL = 0xC00000A5
STATUS_FILE_IS_A_DIRECTORY = 0xC00000BA
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_NETWORK_NAME_DELETED = 0xC00000C9
STATUS_BAD_NETWORK_NAME = 0xC00000CC
STATUS_DIRECTORY_NOT_EMPTY = 0xC0000101
STATUS_NOT_A_DIRECTORY = 0xC0000103
STATUS_CANCELLED = 0xC0000120
STATUS_CANNOT_DELETE = 0xC0000121
STATUS_FILE_CLOSED = 0xC0000128
STATUS_INVALID_LEVEL = 0xC0000148
STATUS_USER_SESSION_DELETED = 0xC0000203
STATUS_NOT_SAME_DEVICE = 0xC00000D4
STATUS_SMB_NO_PREAUTH_INTEGRITY_HASH_OVERLAP = 0xC05D0000

_NBSS = struct.Struct(">I")
# ProtocolId, StructureSize, CreditCharge, Status/ChannelSequence, Command, CreditRequest, Flags, NextCommand,
# MessageId, Reserved(or AsyncId low half), TreeId, SessionId, Signature ([MS-SMB2] 2.2.1.2).
_HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")
HEADER_SIZE = 64
_FILE_ID = struct.Struct("<QQ")


class ConnectionDropped(Exception):
    """The server closed the TCP connection (or reset it) instead of answering."""


@dataclass
class Header:
    """The fields of a received SMB2 header ([MS-SMB2] 2.2.1.1/2.2.1.2)."""

    credit_charge: int
    status: int
    command: int
    credits: int
    flags: int
    next_command: int
    message_id: int
    async_id: int
    tree_id: int
    session_id: int
    signature: bytes

    @property
    def is_async(self) -> bool:
        return bool(self.flags & SMB2_FLAGS_ASYNC_COMMAND)


def decode_header(data: bytes | memoryview) -> Header:
    (protocol_id, structure_size, credit_charge, status, command, credits, flags, next_command, message_id,
     _reserved, tree_id, session_id, signature) = _HEADER.unpack_from(data, 0)
    if protocol_id != b"\xfeSMB" or structure_size != 64:
        raise AssertionError(f"not an SMB2 header: {bytes(data[:8]).hex()}")
    async_id = struct.unpack_from("<Q", data, 32)[0] if flags & SMB2_FLAGS_ASYNC_COMMAND else 0
    return Header(credit_charge, status, command, credits, flags, next_command, message_id, async_id,
                  tree_id, session_id, bytes(signature))


@dataclass
class Response:
    """One response element. Unpacks as `status, body, header`; `raw` is the whole element."""

    status: int
    body: bytes
    header: Header
    raw: bytes = b""

    def __iter__(self) -> Iterator[object]:
        return iter((self.status, self.body, self.header))

    def error_data(self) -> bytes:
        """ErrorData of an ERROR response ([MS-SMB2] 2.2.2): ByteCount(4)@4, ErrorData@8."""
        (byte_count,) = struct.unpack_from("<I", self.body, 4)
        return self.body[8:8 + byte_count]


@dataclass
class Req:
    """One element of a compound: a command and its body, plus header overrides."""

    command: int
    body: bytes
    related: bool = False
    tree_id: int | None = None
    session_id: int | None = None
    flags: int = 0
    credit_charge: int = 1
    message_id: int | None = None
    async_id: int | None = None  # sends the async header form (2.2.1.1), e.g. for CANCEL of an async request


def status_name(status: int) -> str:
    for name, value in globals().items():
        if name.startswith("STATUS_") and value == status:
            return name
    return f"0x{status:08X}"


# -- body builders ------------------------------------------------------------------------------------------

def file_id_bytes(file_id: tuple[int, int]) -> bytes:
    return _FILE_ID.pack(*file_id)


def utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def negotiate_context(context_type: int, data: bytes) -> bytes:
    """[MS-SMB2] 2.2.3.1: ContextType(2), DataLength(2), Reserved(4), Data; the caller pads between contexts."""
    return struct.pack("<HHI", context_type, len(data), 0) + data


def preauth_context(algorithms: tuple[int, ...] = (SHA_512,), salt: bytes | None = None) -> bytes:
    salt = os.urandom(32) if salt is None else salt
    data = struct.pack("<HH", len(algorithms), len(salt)) + b"".join(struct.pack("<H", a) for a in algorithms)
    return negotiate_context(SMB2_PREAUTH_INTEGRITY_CAPABILITIES, data + salt)


def signing_context(algorithms: tuple[int, ...] = (1,)) -> bytes:
    data = struct.pack("<H", len(algorithms)) + b"".join(struct.pack("<H", a) for a in algorithms)
    return negotiate_context(SMB2_SIGNING_CAPABILITIES, data)


def posix_context() -> bytes:
    return negotiate_context(SMB2_POSIX_EXTENSIONS_AVAILABLE, POSIX_EXTENSIONS_GUID)


def negotiate_body(dialects: tuple[int, ...], contexts: list[bytes] | None = None,
                   security_mode: int = SMB2_NEGOTIATE_SIGNING_ENABLED, capabilities: int = 0,
                   client_guid: bytes | None = None, structure_size: int = 36) -> bytes:
    """[MS-SMB2] 2.2.3. `contexts` (already built) go after the dialects, 8-byte aligned from the header."""
    client_guid = client_guid or uuid.uuid4().bytes
    dialect_bytes = b"".join(struct.pack("<H", d) for d in dialects)
    contexts = contexts or []
    context_offset = 0
    tail = b""
    if contexts:
        end = HEADER_SIZE + 36 + len(dialect_bytes)
        pad = -end % 8
        context_offset = end + pad
        pieces = []
        for index, context in enumerate(contexts):
            pieces.append(context)
            if index != len(contexts) - 1:
                pieces.append(bytes(-len(context) % 8))
        tail = bytes(pad) + b"".join(pieces)
        third = struct.pack("<IHH", context_offset, len(contexts), 0)
    else:
        third = bytes(8)  # ClientStartTime
    fixed = struct.pack("<HHHHI16s", structure_size, len(dialects), security_mode, 0, capabilities, client_guid)
    return fixed + third + dialect_bytes + tail


def session_setup_body(token: bytes, security_mode: int = SMB2_NEGOTIATE_SIGNING_ENABLED, flags: int = 0,
                       previous_session_id: int = 0) -> bytes:
    """[MS-SMB2] 2.2.5: the security buffer right after the 24-byte fixed part."""
    return struct.pack("<HBBIIHHQ", 25, flags, security_mode, 0, 0, HEADER_SIZE + 24, len(token),
                       previous_session_id) + token


def tree_connect_body(path: str) -> bytes:
    """[MS-SMB2] 2.2.9: path "\\\\server\\share" in UTF-16."""
    name = utf16(path)
    return struct.pack("<HHHH", 9, 0, HEADER_SIZE + 8, len(name)) + name


def create_body(name: str | bytes, desired_access: int = GENERIC_READ, disposition: int = FILE_OPEN,
                options: int = 0, share_access: int = FILE_SHARE_ALL, file_attributes: int = 0,
                impersonation: int = SECURITY_IMPERSONATION, oplock: int = 0, contexts: bytes = b"",
                structure_size: int = 57) -> bytes:
    """[MS-SMB2] 2.2.13. `name` may be raw bytes to send a malformed UTF-16 name."""
    raw_name = utf16(name) if isinstance(name, str) else name
    buffer = raw_name or b"\x00"  # StructureSize 57 counts one byte of Buffer even for the share root
    contexts_offset = 0
    if contexts:
        buffer = buffer + bytes(-len(buffer) % 8)
        contexts_offset = HEADER_SIZE + 56 + len(buffer)
        buffer += contexts
    fixed = struct.pack("<HBBIQQIIIIIHHII", structure_size, 0, oplock, impersonation, 0, 0, desired_access,
                        file_attributes, share_access, disposition, options, HEADER_SIZE + 56, len(raw_name),
                        contexts_offset, len(contexts))
    return fixed + buffer


# NextEntryOffset, Flags, EaNameLength, EaValueLength ([MS-FSCC] 2.4.15 FILE_FULL_EA_INFORMATION)
FULL_EA_HEADER = struct.Struct("<IBBH")


def full_ea_list(entries: Sequence[tuple[bytes, bytes]]) -> bytes:
    """FILE_FULL_EA_INFORMATION entries (Flags 0), each but the last padded to 4 bytes, names NUL-terminated:
    the buffer of SET_INFO FileFullEaInformation and of the ExtA create context."""
    out = bytearray()
    for index, (name, value) in enumerate(entries):
        entry = FULL_EA_HEADER.pack(0, 0, len(name), len(value)) + name + b"\0" + value
        if index != len(entries) - 1:
            entry += bytes(-len(entry) % 4)
            entry = struct.pack("<I", len(entry)) + entry[4:]
        out += entry
    return bytes(out)


def create_context(name: bytes, data: bytes) -> bytes:
    """[MS-SMB2] 2.2.13.2: one context (Next = 0); name at @16, data 8-byte aligned after it."""
    name_offset = 16
    data_offset = (name_offset + len(name) + 7) & ~7
    blob = struct.pack("<IHHHHI", 0, name_offset, len(name), 0, data_offset if data else 0, len(data))
    blob += name + bytes(data_offset - name_offset - len(name)) + data
    return blob


def chain_contexts(*contexts: bytes) -> bytes:
    """Contexts made by create_context, chained ([MS-SMB2] 2.2.13.2: each 8-byte aligned, Next set on all but
    the last)."""
    out = b""
    for index, context in enumerate(contexts):
        if index < len(contexts) - 1:
            context = context + bytes(-len(context) % 8)
            context = struct.pack("<I", len(context)) + context[4:]
        out += context
    return out


def close_body(file_id: tuple[int, int], flags: int = 0) -> bytes:
    """[MS-SMB2] 2.2.15."""
    return struct.pack("<HHI", 24, flags, 0) + file_id_bytes(file_id)


def read_body(file_id: tuple[int, int], offset: int, length: int, minimum: int = 0,
              structure_size: int = 49) -> bytes:
    """[MS-SMB2] 2.2.19."""
    return struct.pack("<HBBIQ16sIIIHH", structure_size, 0, 0, length, offset, file_id_bytes(file_id), minimum,
                       0, 0, 0, 0) + b"\x00"


def write_body(file_id: tuple[int, int], offset: int, data: bytes, structure_size: int = 49) -> bytes:
    """[MS-SMB2] 2.2.21: data right after the 48-byte fixed part."""
    return struct.pack("<HHIQ16sIIHHI", structure_size, HEADER_SIZE + 48, len(data), offset,
                       file_id_bytes(file_id), 0, 0, 0, 0, 0) + data


def flush_body(file_id: tuple[int, int]) -> bytes:
    """[MS-SMB2] 2.2.17."""
    return struct.pack("<HHI", 24, 0, 0) + file_id_bytes(file_id)


def query_info_body(file_id: tuple[int, int], info_type: int, info_class: int, output_length: int = 65536,
                    additional_information: int = 0, input_buffer: bytes = b"", flags: int = 0) -> bytes:
    """[MS-SMB2] 2.2.37."""
    input_offset = HEADER_SIZE + 40 if input_buffer else 0
    return struct.pack("<HBBIHHIII16s", 41, info_type, info_class, output_length, input_offset, 0,
                       len(input_buffer), additional_information, flags, file_id_bytes(file_id)) + (
        input_buffer or b"\x00")


def set_info_body(file_id: tuple[int, int], info_type: int, info_class: int, buffer: bytes,
                  additional_information: int = 0) -> bytes:
    """[MS-SMB2] 2.2.39."""
    return struct.pack("<HBBIHHI16s", 33, info_type, info_class, len(buffer), HEADER_SIZE + 32, 0,
                       additional_information, file_id_bytes(file_id)) + buffer


def rename_info(target: str, replace_if_exists: bool = False) -> bytes:
    """[MS-FSCC] 2.4.37 (SMB2 form): ReplaceIfExists(1), Reserved(7), RootDirectory(8), FileNameLength(4)."""
    name = utf16(target)
    return struct.pack("<B7sQI", int(replace_if_exists), bytes(7), 0, len(name)) + name


def disposition_info(delete_pending: bool = True) -> bytes:
    """[MS-FSCC] 2.4.11."""
    return bytes([int(delete_pending)])


def query_directory_body(file_id: tuple[int, int], pattern: str = "*",
                         info_class: int = FILE_ID_BOTH_DIRECTORY_INFORMATION, flags: int = 0,
                         output_length: int = 65536, file_index: int = 0) -> bytes:
    """[MS-SMB2] 2.2.33."""
    name = utf16(pattern)
    return struct.pack("<HBBI16sHHI", 33, info_class, flags, file_index, file_id_bytes(file_id),
                       HEADER_SIZE + 32 if name else 0, len(name), output_length) + (name or b"\x00")


def ioctl_body(file_id: tuple[int, int], ctl_code: int, input_data: bytes = b"", max_output: int = 65536,
               flags: int = SMB2_0_IOCTL_IS_FSCTL) -> bytes:
    """[MS-SMB2] 2.2.31: input right after the 56-byte fixed part."""
    input_offset = HEADER_SIZE + 56 if input_data else 0
    return struct.pack("<HHI16sIIIIIIII", 57, 0, ctl_code, file_id_bytes(file_id), input_offset,
                       len(input_data), 0, 0, 0, max_output, flags, 0) + (input_data or b"")


def lock_body(file_id: tuple[int, int], locks: list[tuple[int, int, int]], lock_sequence: int = 0) -> bytes:
    """[MS-SMB2] 2.2.26: each lock is (Offset, Length, Flags)."""
    elements = b"".join(struct.pack("<QQII", offset, length, flags, 0) for offset, length, flags in locks)
    return struct.pack("<HHI16s", 48, len(locks), lock_sequence, file_id_bytes(file_id)) + elements


def echo_body() -> bytes:
    return struct.pack("<HH", 4, 0)


def cancel_body() -> bytes:
    return struct.pack("<HH", 4, 0)


def smb1_negotiate(dialect_names: list[bytes]) -> bytes:
    """An SMB1 SMB_COM_NEGOTIATE ([MS-CIFS] 2.2.4.52.1, [MS-SMB2] 3.3.5.3.1) with the given dialect strings."""
    header = b"\xffSMB" + bytes([0x72]) + bytes(4) + bytes([0x18]) + struct.pack("<H", 0xC853) + bytes(12) + \
        struct.pack("<HHHH", 0, 0xFEFF, 0, 0)
    dialects = b"".join(b"\x02" + name + b"\x00" for name in dialect_names)
    return header + b"\x00" + struct.pack("<H", len(dialects)) + dialects


# -- response body readers ----------------------------------------------------------------------------------

def create_file_id(body: bytes) -> tuple[int, int]:
    """FileId @64 of a CREATE response ([MS-SMB2] 2.2.14)."""
    return _FILE_ID.unpack_from(body, 64)


def read_data(response: Response) -> bytes:
    """DataOffset(1)@2 counts from the header, DataLength(4)@4 ([MS-SMB2] 2.2.20)."""
    data_offset = response.body[2]
    (length,) = struct.unpack_from("<I", response.body, 4)
    start = data_offset - HEADER_SIZE
    return response.body[start:start + length]


def output_buffer(response: Response) -> bytes:
    """OutputBufferOffset(2)@2, OutputBufferLength(4)@4 of QUERY_INFO/QUERY_DIRECTORY responses."""
    offset, length = struct.unpack_from("<HI", response.body, 2)
    if not length:
        return b""
    start = offset - HEADER_SIZE
    return response.body[start:start + length]


def directory_names(buffer: bytes, info_class: int = FILE_ID_BOTH_DIRECTORY_INFORMATION) -> list[str]:
    """Names of a QUERY_DIRECTORY output buffer ([MS-FSCC] 2.4), walking NextEntryOffset."""
    name_at = {FILE_DIRECTORY_INFORMATION: (60, 64), FILE_FULL_DIRECTORY_INFORMATION: (60, 68),
               FILE_BOTH_DIRECTORY_INFORMATION: (60, 94), FILE_NAMES_INFORMATION: (8, 12),
               FILE_ID_BOTH_DIRECTORY_INFORMATION: (60, 104)}[info_class]
    names = []
    position = 0
    while True:
        (next_offset,) = struct.unpack_from("<I", buffer, position)
        (length,) = struct.unpack_from("<I", buffer, position + name_at[0])
        start = position + name_at[1]
        names.append(buffer[start:start + length].decode("utf-16-le"))
        if not next_offset:
            return names
        position += next_offset


# -- the client ---------------------------------------------------------------------------------------------

@dataclass
class Client:
    """One TCP connection to the server, driven request by request."""

    host: str
    port: int
    timeout_s: float = 10.0
    sock: socket.socket | None = None
    next_message_id: int = 0
    credits: int = 1
    dialect: int = 0
    session_id: int = 0
    tree_id: int = 0
    signing_algorithm: int | None = None
    signer: signing.Signer | None = None
    sign_requests: bool = False
    connection_preauth: bytes = bytes(64)
    negotiate_response: Response | None = None
    interims: list[Response] = field(default_factory=list)
    _stash: list[Response] = field(default_factory=list)

    # connection ------------------------------------------------------------------------------------------

    def connect(self) -> Client:
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        return self

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> Self:
        if self.sock is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, message: bytes) -> None:
        assert self.sock is not None
        try:
            self.sock.sendall(_NBSS.pack(len(message)) + message)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ConnectionDropped(str(exc)) from exc

    def _recv_exact(self, count: int) -> bytes:
        assert self.sock is not None
        chunks = []
        while count:
            try:
                chunk = self.sock.recv(count)
            except ConnectionResetError as exc:
                raise ConnectionDropped(str(exc)) from exc
            if not chunk:
                raise ConnectionDropped("server closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def recv_raw(self) -> bytes:
        (length,) = _NBSS.unpack(self._recv_exact(4))
        return self._recv_exact(length & 0xFFFFFF)

    def is_dropped(self, wait_s: float = 5.0) -> bool:
        """True when the server closes the connection (EOF or reset) within wait_s without sending more."""
        assert self.sock is not None
        self.sock.settimeout(wait_s)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(self.timeout_s)
        return data == b""

    # framing ---------------------------------------------------------------------------------------------

    def _element(self, req: Req, message_id: int, last: bool) -> bytearray:
        flags = req.flags | (SMB2_FLAGS_RELATED_OPERATIONS if req.related else 0)
        session_id = self.session_id if req.session_id is None else req.session_id
        tree_id = self.tree_id if req.tree_id is None else req.tree_id
        credit_request = 64
        if req.async_id is not None:
            flags |= SMB2_FLAGS_ASYNC_COMMAND
        element = bytearray(_HEADER.pack(b"\xfeSMB", 64, req.credit_charge, 0, req.command, credit_request, flags,
                                         0, message_id, 0, tree_id, session_id, bytes(16)))
        if req.async_id is not None:
            struct.pack_into("<Q", element, 32, req.async_id)
        element += req.body
        if not last:
            element += bytes(-len(element) % 8)
            struct.pack_into("<I", element, 20, len(element))
        return element

    def _take_message_id(self, req: Req) -> int:
        if req.command == SMB2_CANCEL:
            return self.next_message_id - 1 if req.message_id is None else req.message_id
        if req.message_id is not None:
            return req.message_id
        message_id = self.next_message_id
        self.next_message_id += max(1, req.credit_charge)
        return message_id

    def build(self, *reqs: Req, sign: bool | None = None) -> tuple[bytearray, list[int]]:
        """The message holding `reqs` as a compound (each element signed when asked) and their message ids."""
        sign = self.sign_requests if sign is None else sign
        message = bytearray()
        ids = []
        for index, req in enumerate(reqs):
            message_id = self._take_message_id(req)
            ids.append(message_id)
            element = self._element(req, message_id, index == len(reqs) - 1)
            if sign and self.signer is not None and req.command != SMB2_NEGOTIATE:
                self.signer.sign(element)
            message += element
        return message, ids

    def send(self, *reqs: Req, sign: bool | None = None) -> list[int]:
        """Send one message holding `reqs` as a compound; return their message ids."""
        message, ids = self.build(*reqs, sign=sign)
        self.send_raw(bytes(message))
        return ids

    def _split(self, message: bytes) -> list[Response]:
        responses = []
        position = 0
        while True:
            header = decode_header(message[position:])
            end = position + header.next_command if header.next_command else len(message)
            raw = message[position:end]
            if header.flags & SMB2_FLAGS_SIGNED and self.signer is not None and header.session_id == self.session_id:
                assert self.signer.verify(bytearray(raw)), f"bad server signature on {status_name(header.status)}"
            responses.append(Response(header.status, raw[HEADER_SIZE:], header, raw))
            self.credits += header.credits
            if not header.next_command:
                return responses
            position = end

    def receive_message(self) -> list[Response]:
        return self._split(self.recv_raw())

    def receive(self, message_id: int, skip_pending: bool = True) -> Response:
        """The response to `message_id`; interim STATUS_PENDING answers are kept in `interims` when skipped."""
        while True:
            for index, response in enumerate(self._stash):
                if response.header.message_id == message_id and not (
                        skip_pending and response.status == STATUS_PENDING and response.header.is_async):
                    return self._stash.pop(index)
                if response.header.message_id == message_id and skip_pending:
                    self.interims.append(self._stash.pop(index))
                    break
            else:
                self._stash.extend(self.receive_message())

    def request(self, command: int, body: bytes, *, tree_id: int | None = None, session_id: int | None = None,
                flags: int = 0, credit_charge: int = 1, message_id: int | None = None,
                sign: bool | None = None, skip_pending: bool = True) -> Response:
        """Send one request and wait for its (final, unless skip_pending=False) response."""
        req = Req(command, body, tree_id=tree_id, session_id=session_id, flags=flags,
                  credit_charge=credit_charge, message_id=message_id)
        (sent_id,) = self.send(req, sign=sign)
        return self.receive(sent_id, skip_pending=skip_pending)

    def compound(self, *reqs: Req, sign: bool | None = None) -> list[Response]:
        """Send a compound and return its responses in order (the server answers a compound in one message,
        except for elements that go async, which are then awaited)."""
        ids = self.send(*reqs, sign=sign)
        return [self.receive(message_id) for message_id in ids]

    # setup -----------------------------------------------------------------------------------------------

    def negotiate(self, dialects: tuple[int, ...] = DIALECTS_ALL, contexts: list[bytes] | None = None,
                  security_mode: int = SMB2_NEGOTIATE_SIGNING_ENABLED, **kwargs: object) -> Response:
        """NEGOTIATE; with 3.1.1 offered and `contexts` None, sends preauth (SHA-512) and signing (CMAC)."""
        if contexts is None and 0x0311 in dialects:
            contexts = [preauth_context(), signing_context((1,))]
        body = negotiate_body(dialects, contexts, security_mode=security_mode, **kwargs)  # type: ignore[arg-type]
        req = Req(SMB2_NEGOTIATE, body)
        (message_id,) = self.send(req)
        raw_request = bytes(self._element(req, message_id, True))
        response = self.receive(message_id)
        self.negotiate_response = response
        if response.status == STATUS_SUCCESS:
            (self.dialect,) = struct.unpack_from("<H", response.body, 4)
            if self.dialect == 0x0311:
                self.connection_preauth = _sha512(_sha512(bytes(64), raw_request), response.raw)
                self.signing_algorithm = _negotiated_signing(response.body)
        return response

    def session_setup(self, user: str, password: str, security_mode: int = SMB2_NEGOTIATE_SIGNING_ENABLED) -> int:
        """NTLMv2 logon through pyspnego; returns the final status and derives the signing key on success."""
        auth = spnego.client(user, password, protocol="ntlm")
        token = auth.step() or b""
        session_preauth = self.connection_preauth
        self.session_id = 0
        while True:
            req = Req(SMB2_SESSION_SETUP, session_setup_body(token, security_mode), session_id=self.session_id)
            (message_id,) = self.send(req, sign=False)
            raw_request = bytes(self._element(req, message_id, True))
            session_preauth = _sha512(session_preauth, raw_request)
            response = self._receive_setup(message_id)
            self.session_id = response.header.session_id
            if response.status == STATUS_MORE_PROCESSING_REQUIRED:
                session_preauth = _sha512(session_preauth, response.raw)
                token = auth.step(_security_buffer(response.body)) or b""
                continue
            if response.status != STATUS_SUCCESS:
                return response.status
            keys = kdf.derive_session_keys(self.dialect, auth.session_key,
                                           session_preauth if self.dialect == 0x0311 else None, 0)
            self.signer = signing.make_signer(self.dialect, self.signing_algorithm, keys.signing_key)
            if response.header.flags & SMB2_FLAGS_SIGNED:
                assert self.signer.verify(bytearray(response.raw)), "final SESSION_SETUP signature does not verify"
            return STATUS_SUCCESS

    def _receive_setup(self, message_id: int) -> Response:
        # The signer is not known yet while the exchange runs, so nothing may be verified here.
        signer, self.signer = self.signer, None
        try:
            return self.receive(message_id)
        finally:
            self.signer = signer

    def tree_connect(self, share: str) -> Response:
        response = self.request(SMB2_TREE_CONNECT, tree_connect_body(f"\\\\{self.host}\\{share}"), tree_id=0)
        if response.status == STATUS_SUCCESS:
            self.tree_id = response.header.tree_id
        return response

    # file helpers ----------------------------------------------------------------------------------------

    def create(self, name: str | bytes, **kwargs: object) -> Response:
        return self.request(SMB2_CREATE, create_body(name, **kwargs))  # type: ignore[arg-type]

    def open(self, name: str | bytes, **kwargs: object) -> tuple[int, int]:
        """CREATE that must succeed; returns the FileId."""
        response = self.create(name, **kwargs)
        assert response.status == STATUS_SUCCESS, f"CREATE {name!r}: {status_name(response.status)}"
        return create_file_id(response.body)

    def close_file(self, file_id: tuple[int, int]) -> int:
        return self.request(SMB2_CLOSE, close_body(file_id)).status

    def write(self, file_id: tuple[int, int], offset: int, data: bytes) -> Response:
        return self.request(SMB2_WRITE, write_body(file_id, offset, data))

    def read(self, file_id: tuple[int, int], offset: int, length: int) -> Response:
        return self.request(SMB2_READ, read_body(file_id, offset, length))

    def query_info(self, file_id: tuple[int, int], info_type: int, info_class: int, **kwargs: object) -> Response:
        return self.request(SMB2_QUERY_INFO, query_info_body(file_id, info_type, info_class, **kwargs))  # type: ignore[arg-type]

    def set_info(self, file_id: tuple[int, int], info_type: int, info_class: int, buffer: bytes,
                 **kwargs: object) -> Response:
        return self.request(SMB2_SET_INFO, set_info_body(file_id, info_type, info_class, buffer, **kwargs))  # type: ignore[arg-type]

    def query_directory(self, file_id: tuple[int, int], pattern: str = "*", **kwargs: object) -> Response:
        return self.request(SMB2_QUERY_DIRECTORY, query_directory_body(file_id, pattern, **kwargs))  # type: ignore[arg-type]

    def list_directory(self, name: str = "", pattern: str = "*") -> list[str]:
        """Every name QUERY_DIRECTORY returns for directory `name` until STATUS_NO_MORE_FILES."""
        file_id = self.open(name, desired_access=GENERIC_READ, options=FILE_DIRECTORY_FILE)
        names: list[str] = []
        try:
            while True:
                response = self.query_directory(file_id, pattern)
                if response.status in (STATUS_NO_MORE_FILES, STATUS_NO_SUCH_FILE):
                    return names
                assert response.status == STATUS_SUCCESS, status_name(response.status)
                names += directory_names(output_buffer(response))
        finally:
            self.close_file(file_id)

    def write_file(self, name: str, data: bytes) -> None:
        file_id = self.open(name, desired_access=GENERIC_READ | GENERIC_WRITE, disposition=FILE_OVERWRITE_IF)
        try:
            if data:
                response = self.write(file_id, 0, data)
                assert response.status == STATUS_SUCCESS, status_name(response.status)
        finally:
            self.close_file(file_id)


def _sha512(value: bytes, message: bytes) -> bytes:
    return hashlib.sha512(value + message).digest()


def _security_buffer(body: bytes) -> bytes:
    """SecurityBufferOffset(2)@4, SecurityBufferLength(2)@6 of a SESSION_SETUP response ([MS-SMB2] 2.2.6)."""
    offset, length = struct.unpack_from("<HH", body, 4)
    return body[offset - HEADER_SIZE:offset - HEADER_SIZE + length]


def _negotiated_signing(body: bytes) -> int | None:
    """The SIGNING_CAPABILITIES answer among the 3.1.1 negotiate contexts ([MS-SMB2] 2.2.4, 2.2.3.1.7)."""
    (count,) = struct.unpack_from("<H", body, 6)
    (offset,) = struct.unpack_from("<I", body, 60)
    position = offset - HEADER_SIZE
    for _ in range(count):
        context_type, length = struct.unpack_from("<HH", body, position)
        data = body[position + 8:position + 8 + length]
        if context_type == SMB2_SIGNING_CAPABILITIES:
            return struct.unpack_from("<H", data, 2)[0]
        position += 8 + length
        position += -position % 8
    return None


def connect(host: str, port: int, user: str, password: str, share: str | None = "share",
            dialects: tuple[int, ...] = DIALECTS_ALL, sign: bool = False, capabilities: int = 0) -> Client:
    """A client that has negotiated (announcing `capabilities`), logged on and (unless share is None) connected
    to `share`."""
    client = Client(host, port).connect()
    try:
        response = client.negotiate(dialects, capabilities=capabilities)
        assert response.status == STATUS_SUCCESS, status_name(response.status)
        status = client.session_setup(user, password)
        assert status == STATUS_SUCCESS, f"logon as {user}: {status_name(status)}"
        client.sign_requests = sign
        if share is not None:
            response = client.tree_connect(share)
            assert response.status == STATUS_SUCCESS, f"TREE_CONNECT {share}: {status_name(response.status)}"
    except BaseException:
        client.close()
        raise
    return client


def assert_serves_fresh_client(host: str, port: int, user: str, password: str, share: str = "share") -> None:
    """A new connection still negotiates, logs on, connects, creates, writes, reads back and deletes a file."""
    name = f"alive-{uuid.uuid4().hex[:8]}.txt"
    with connect(host, port, user, password, share, sign=True) as client:
        file_id = client.open(name, desired_access=GENERIC_READ | GENERIC_WRITE | DELETE,
                              disposition=FILE_CREATE, options=FILE_DELETE_ON_CLOSE)
        assert client.write(file_id, 0, b"alive").status == STATUS_SUCCESS
        response = client.read(file_id, 0, 5)
        assert response.status == STATUS_SUCCESS and read_data(response) == b"alive"
        assert client.close_file(file_id) == STATUS_SUCCESS
