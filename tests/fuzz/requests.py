"""Hostile SMB2 requests built from any source of choices ([MS-SMB2] 2.2.1-2.2.39).

Each command gets a body that is shaped like the real one (so it passes the StructureSize check and reaches
the handler) but whose fields are drawn from values that break naive code: zero, one, powers of two and their
neighbours, all-ones, and lengths and offsets that point past the end or into the fixed part. Bodies may then
be mutated byte-wise; headers pick valid, foreign or bogus session, tree and file ids; compounds mix related
and unrelated elements and may get NextCommand values that point outside the message.

The choices come from a `Source`: hypothesis (`HypothesisSource`), atheris (`ProviderSource`) or a seeded
`random.Random` (`RandomSource`), so the property tests, the fuzz harnesses and their plain-loop fallback share
one generator.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from tests import builders as b
from tests.fuzz import payloads
from tests.fuzz.source import HypothesisSource, ProviderSource, RandomSource, Source, choice, value

__all__ = ["HypothesisSource", "ProviderSource", "RandomSource", "Source", "choice", "value"]

SMB2_OPLOCK_BREAK = 0x12
SMB2_FLAGS_ASYNC_COMMAND = 0x2
SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT = 0x4

FSCTLS = (0x00060194, 0x000601B0, 0x0011400C, 0x00110018, 0x0011C017, 0x001440F2, 0x001480F2, 0x00144064,
          0x00140078, 0x001441BB, 0x001401D4, 0x001401FC, 0x00140204, 0x000900A4, 0x000900A8, 0x000900AC,
          0x000900C0, 0x000900C4, 0x000980C8, 0x000940CF, 0x00098344, 0x0009003C, 0x0009C040, 0x0009027C,
          0x00090284, 0x00090064,
          # object ids, DUPLICATE_EXTENTS_EX, trims, integrity, volume queries and ones no server here knows
          0x0009009C, 0x00090098, 0x000900A0, 0x000900BC, 0x000983E8, 0x00098208, 0x0009C280, 0x00090078,
          0x0009013C, 0x00090060, 0x00090073, 0x00094264, 0x00090300, 0x000900FC, 0x00090194)
CONTEXT_NAMES = (b"ExtA", b"SecD", b"DHnQ", b"DHnC", b"AlSi", b"MxAc", b"TWrp", b"QFid", b"RqLs", b"DH2Q",
                 b"DH2C", b.POSIX_EXTENSIONS_GUID, b"AAPL", b"")
NAMES = ("", "data.bin", "dir", "dir\\entry1.txt", "new.txt", "..\\x", "\\", "a:b", "data.bin:s:$DATA",
         "dir\\..\\data.bin", "*", "a\x00b", "x" * 300, "\\\\?\\c:\\", "con", "dir\\", "dir\\\\x", ":", "::$DATA",
         "\ud800", "srvsvc", "lsarpc",
         # named streams ([MS-FSCC] 2.1.5.3; docs/streams.md): the set-up's stream, one of a missing file, of a
         # directory, names an xattr cannot hold (234 UTF-8 bytes is the most), odd types and odd Unicode
         "data.bin:fuzz", "data.bin:FUZZ:$DATA", "data.bin::$DATA", "new.txt:s", "dir:s", "dir\\entry1.txt:s",
         "data.bin:" + "x" * 234, "data.bin:" + "x" * 235, "data.bin:" + "\u00e9" * 118, "data.bin:y:$FOO",
         "data.bin:x::$DATA", "data.bin:s:", "data.bin:\U0001f600\u200b", "data.bin:\ud800", "data.bin:s*?",
         "dir::$DATA", "data.bin:$DATA", "data.bin:fuzz:$DATA:x")
# -- bodies ------------------------------------------------------------------------------------------------------

class Handles:
    """The ids a generated request may name: those of a logged-on Peer (tests/fuzz/sans_io.py) or made up."""

    def __init__(self, file_id: tuple[int, int] = (1, 1), dir_id: tuple[int, int] = (2, 2),
                 pipe_id: tuple[int, int] = (3, 3), session_id: int = 1, tree_id: int = 1,
                 ipc_tree_id: int = 2, resume_key: bytes = bytes(24), *,
                 stream_id: tuple[int, int] | None = None) -> None:
        self.file_id, self.dir_id, self.pipe_id = file_id, dir_id, pipe_id
        # An open of a named stream of file_id's file ("data.bin:fuzz"): reads, writes, locks, information and
        # renames through a stream's handle take other paths (fs/streams.py, stream_rename.py).
        self.stream_id = stream_id if stream_id is not None else file_id
        self.session_id, self.tree_id, self.ipc_tree_id = session_id, tree_id, ipc_tree_id
        # FSCTL_SRV_REQUEST_RESUME_KEY of file_id: the source key of a copychunk that gets past the lookup.
        self.resume_key = resume_key


def file_id(src: Source, handles: Handles) -> tuple[int, int]:
    kind = src.integer(0, 7)
    if kind <= 1:
        return handles.file_id
    if kind == 7:
        return handles.stream_id
    if kind == 2:
        return handles.dir_id
    if kind == 3:
        return handles.pipe_id
    if kind == 4:
        return b.RELATED_FILE_ID
    if kind == 5:  # a volatile id that exists with the wrong persistent half, or the reverse
        return (handles.file_id[0] ^ 1, handles.file_id[1]) if src.integer(0, 1) else (
            handles.file_id[0], (handles.file_id[1] + 1000) & 0xFFFFFFFFFFFFFFFF)
    return (value(src, 64), value(src, 64))


def _name(src: Source) -> bytes:
    kind = src.integer(0, 3)
    if kind <= 1:
        # surrogatepass: the lone surrogate among NAMES goes on the wire as the invalid UTF-16 it is.
        return choice(src, NAMES).encode("utf-16-le", "surrogatepass")
    if kind == 2:
        return src.raw(64)
    return b.utf16("".join(chr(src.integer(1, 0x2FF)) for _ in range(src.integer(0, 12))))


def negotiate_body(src: Source, handles: Handles) -> bytes:
    dialects = tuple(choice(src, (0x0202, 0x0210, 0x0300, 0x0302, 0x0311, 0x02FF, 0x0000, 0xFFFF))
                     for _ in range(src.integer(0, 6)))
    contexts = []
    for _ in range(src.integer(0, 5)):
        context_type = choice(src, (1, 2, 3, 5, 6, 7, 8, 0x100, src.integer(0, 0xFFFF)))
        shape = src.integer(0, 3)
        if shape == 0 and context_type == 1:
            contexts.append(b.preauth_context(tuple(value(src, 16) for _ in range(src.integer(0, 3)))))
        elif shape == 0 and context_type == 8:
            contexts.append(b.signing_context(tuple(src.integer(0, 4) for _ in range(src.integer(0, 4)))))
        elif shape == 1:  # a DataLength that lies
            data = src.raw(40)
            contexts.append(struct.pack("<HHI", context_type, value(src, 16, (len(data),)), 0) + data)
        else:
            contexts.append(b.negotiate_context(context_type, src.raw(40)))
    body = bytearray(b.negotiate_body(dialects or (0x0311,), contexts, capabilities=value(src),
                                      security_mode=src.integer(0, 3)))
    if not dialects:
        struct.pack_into("<H", body, 2, value(src, 16))  # DialectCount
    if src.integer(0, 2) == 0:
        struct.pack_into("<IH", body, 28, value(src, 32, (64 + len(body),)), value(src, 16, (len(contexts),)))
    return bytes(body)


def session_setup_body(src: Source, handles: Handles) -> bytes:
    kind = src.integer(0, 4)
    if kind == 0:
        token = src.raw(200)
    elif kind == 1:  # an NTLMSSP message with garbage behind a valid signature
        token = b"NTLMSSP\x00" + struct.pack("<I", src.integer(0, 4)) + src.raw(120)
    elif kind == 2:  # a DER SEQUENCE / APPLICATION header with a lying length
        token = bytes([choice(src, (0x60, 0xA0, 0xA1, 0x30)), 0x84]) + struct.pack(">I", value(src)) + src.raw(60)
    elif kind == 3:
        token = b""
    else:
        token = _ntlm_negotiate(src)
    if src.integer(0, 2) == 0:
        token = payloads.spnego_response(src, token)
    body = bytearray(b.session_setup_body(token, security_mode=src.integer(0, 3), flags=src.integer(0, 0xFF),
                                          previous_session_id=choice(src, (0, handles.session_id, value(src, 64)))))
    if src.integer(0, 3) == 0:
        struct.pack_into("<HH", body, 12, value(src, 16, (88,)), value(src, 16, (len(token),)))
    return bytes(body)


def _ntlm_negotiate(src: Source) -> bytes:
    """An NTLMSSP NEGOTIATE_MESSAGE with domain and workstation fields ([MS-NLMP] 2.2.1.1) that may lie."""
    fields = struct.pack("<HHI", value(src, 16), value(src, 16), value(src, 32, (32, 40)))
    return b"NTLMSSP\x00" + struct.pack("<II", 1, value(src)) + fields + fields + src.raw(16)


def tree_connect_body(src: Source, handles: Handles) -> bytes:
    path = choice(src, ("\\\\srv\\share", "\\\\srv\\IPC$", "\\\\srv\\", "share", "\\\\srv\\share\\x", "",
                        "\\\\srv\\nosuch", "\\\\" + "s" * 200 + "\\share"))
    body = bytearray(b.tree_connect_body(path))
    struct.pack_into("<H", body, 2, choice(src, (0, SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT, value(src, 16))))
    if src.integer(0, 2) == 0:
        struct.pack_into("<HH", body, 4, value(src, 16, (72,)), value(src, 16, (len(body) - 8,)))
    return bytes(body)


def _create_context(src: Source, handles: Handles) -> bytes:
    name = choice(src, CONTEXT_NAMES)
    data = payloads.create_context_data(src, name, handles)
    shape = src.integer(0, 3)
    blob = bytearray(b.create_context(name or src.raw(8), data))
    if shape == 0:  # lie about one of NameOffset, NameLength, DataOffset, DataLength
        position, bits = choice(src, ((4, 16), (6, 16), (10, 16), (12, 32)))
        fmt = "<H" if bits == 16 else "<I"
        struct.pack_into(fmt, blob, position, value(src, bits, (len(blob), 16, 24)))
    return bytes(blob)


def create_body(src: Source, handles: Handles) -> bytes:
    contexts = b""
    count = choice(src, (0, 1, 1, 2, 3, 4, 8))
    for index in range(count):
        context = _create_context(src, handles)
        if index != count - 1:
            context += bytes(-len(context) % 8)
            context = struct.pack("<I", len(context)) + context[4:]
            if src.integer(0, 4) == 0:  # a Next that lies
                context = struct.pack("<I", value(src, 32, (len(context),))) + context[4:]
        contexts += context
    name = _name(src)
    body = bytearray(b.create_body(
        name, desired_access=choice(src, (b.GENERIC_READ, b.GENERIC_ALL, b.MAXIMUM_ALLOWED, b.DELETE, value(src))),
        disposition=choice(src, (0, 1, 2, 3, 4, 5, value(src))), options=value(src), share_access=value(src),
        file_attributes=value(src), impersonation=choice(src, (2, 0, 3, value(src))), oplock=value(src, 8),
        contexts=contexts))
    if src.integer(0, 3) == 0:
        position = choice(src, (44, 46, 48, 52))
        fmt = "<H" if position in (44, 46) else "<I"
        struct.pack_into(fmt, body, position, value(src, 16 if fmt == "<H" else 32, (120, len(body) + 64)))
    return bytes(body)


def close_body(src: Source, handles: Handles) -> bytes:
    return b.close_body(file_id(src, handles), flags=choice(src, (0, 1, value(src, 16))))


def flush_body(src: Source, handles: Handles) -> bytes:
    return b.flush_body(file_id(src, handles))


def read_body(src: Source, handles: Handles) -> bytes:
    body = bytearray(b.read_body(file_id(src, handles), value(src, 64, (0, 65536)),
                                 value(src, 32, (0, 65536, 1 << 20, 8 << 20)), minimum=value(src)))
    if src.integer(0, 3) == 0:  # Channel, ReadChannelInfoOffset/Length
        struct.pack_into("<IHH", body, 36, value(src), value(src, 16, (112,)), value(src, 16, (1,)))
    return bytes(body)


def write_body(src: Source, handles: Handles) -> bytes:
    target = file_id(src, handles)
    data = payloads.rpc_pdu(src) if target == handles.pipe_id and src.integer(0, 2) else src.raw(300)
    body = bytearray(b.write_body(target, value(src, 64, (0, 65536)), data))
    if src.integer(0, 2) == 0:  # DataOffset and Length that lie
        struct.pack_into("<HI", body, 2, value(src, 16, (112, len(body) + 64)), value(src, 32, (len(data),)))
    if src.integer(0, 3) == 0:  # Channel, WriteChannelInfoOffset/Length, Flags
        struct.pack_into("<IIHHI", body, 32, value(src), 0, value(src, 16), value(src, 16), value(src))
    return bytes(body)


def lock_body(src: Source, handles: Handles) -> bytes:
    flags = (1, 2, 4, 0x11, 0x12, 0x14, 0, 3, 6, 0x10, 0x15)
    if src.integer(0, 1):
        locks = payloads.lock_array(src)
    else:
        locks = [(value(src, 64, (0, 100)), value(src, 64, (1, 100)), choice(src, flags + (value(src),)))
                 for _ in range(src.integer(0, 4))]
    body = bytearray(b.lock_body(file_id(src, handles), locks, lock_sequence=value(src)))
    if not locks:
        body += bytes(24)  # the one element StructureSize 48 counts
    if src.integer(0, 3) == 0:
        struct.pack_into("<H", body, 2, value(src, 16, (len(locks),)))  # LockCount that lies
    return bytes(body)


def _reparse_buffer(src: Source) -> bytes:
    """[MS-FSCC] 2.1.2.1: ReparseTag, ReparseDataLength, Reserved, data; lengths may lie."""
    tag = choice(src, (0xA000000C, 0x80000014, 0xA0000003, 0x80000023, 0x8000001B, value(src)))
    data = src.raw(64)
    if tag == 0xA000000C and src.integer(0, 1):  # symlink: the four name offsets/lengths, then flags
        data = struct.pack("<HHHHI", value(src, 16), value(src, 16, (8,)), value(src, 16), value(src, 16),
                           src.integer(0, 1)) + b.utf16("target") + data
    return struct.pack("<IHH", tag, value(src, 16, (len(data),)), 0) + data


def ioctl_body(src: Source, handles: Handles) -> bytes:
    ctl_code = choice(src, FSCTLS + (value(src),))
    if ctl_code in (0x000900A4, 0x000900AC):  # SET_REPARSE_POINT, DELETE_REPARSE_POINT
        input_data = payloads.reparse_buffer(src) if src.integer(0, 3) else _reparse_buffer(src)
    elif ctl_code == 0x00140204:  # VALIDATE_NEGOTIATE_INFO
        input_data = payloads.validate_negotiate_input(src)
    elif ctl_code in (0x001440F2, 0x001480F2):  # SRV_COPYCHUNK(_WRITE)
        input_data = payloads.copychunk_input(src, handles)
    elif ctl_code in (0x000980C8, 0x000940CF):  # SET_ZERO_DATA, QUERY_ALLOCATED_RANGES
        input_data = payloads.range_input(src)
    elif ctl_code == 0x0011C017:  # PIPE_TRANSCEIVE: a DCE/RPC PDU for srvsvc
        input_data = payloads.rpc_pdu(src)
    elif ctl_code == 0x000900C4:  # SET_SPARSE: an optional SetSparse byte ([MS-FSCC] 2.3.64)
        input_data = choice(src, (b"", b"\x01", b"\x00", b"\x02", b"\x01\x00\x00\x00"))
    else:
        input_data = src.raw(100)
    body = bytearray(b.ioctl_body(file_id(src, handles), ctl_code, input_data,
                                  max_output=value(src, 32, (0, 8, 65536)), flags=choice(src, (1, 0, value(src)))))
    if not input_data:
        body += b"\0"
    if src.integer(0, 2) == 0:  # InputOffset/InputCount, MaxInputResponse, OutputOffset/OutputCount that lie
        struct.pack_into("<IIIII", body, 24, value(src, 32, (120, len(body) + 64)),
                         value(src, 32, (len(input_data),)), value(src), value(src, 32, (120,)), value(src))
    return bytes(body)


def query_directory_body(src: Source, handles: Handles) -> bytes:
    pattern = payloads.directory_pattern(src)
    body = bytearray(b.query_directory_body(
        file_id(src, handles), "*", info_class=choice(src, (1, 2, 3, 0x0C, 0x25, 0x26, 0x3C, 0x64,
                                                                value(src, 8))),
        flags=choice(src, (0, 1, 2, 4, 0x10, value(src, 8))), output_length=value(src, 32, (0, 1, 65536)),
        file_index=value(src)))
    # The pattern as bytes (maybe invalid UTF-16); an empty one leaves the offset and length zero.
    struct.pack_into("<HH", body, 24, 96 if pattern else 0, len(pattern))
    body[32:] = pattern or b"\0"
    if src.integer(0, 3) == 0:
        struct.pack_into("<HH", body, 24, value(src, 16, (96,)), value(src, 16, (len(pattern),)))
    return bytes(body)


def change_notify_body(src: Source, handles: Handles) -> bytes:
    return struct.pack("<HHI16sII", 32, choice(src, (0, 1, value(src, 16))), value(src, 32, (0, 65536)),
                       b.file_id_bytes(file_id(src, handles)), value(src), 0)


def query_info_body(src: Source, handles: Handles) -> bytes:
    info_type = choice(src, (1, 2, 3, 4, value(src, 8)))
    info_class = choice(src, (1, 4, 5, 6, 7, 8, 9, 14, 15, 18, 21, 22, 28, 34, 35, 48, 59, 100, value(src, 8),
                              # [MS-FSCC] 2.4: mode, alignment, pipe, object id, quota, valid data length,
                              # hard links, remote protocol, case sensitivity, stat; 2.5: FS classes 1-11
                              16, 17, 23, 24, 25, 29, 32, 33, 39, 40, 46, 54, 55, 58, 68, 70, 71, 2, 3, 10, 11))
    if info_type == 4 and src.integer(0, 1):  # SMB2_QUERY_QUOTA_INFO ([MS-SMB2] 2.2.37.1), lengths that may lie
        sid_list = src.raw(40)
        input_buffer = struct.pack("<BBHII", src.integer(0, 1), src.integer(0, 1), 0,
                                   value(src, 32, (len(sid_list),)), value(src, 32, (0, 8))) + sid_list
    else:
        input_buffer = src.raw(64) if src.integer(0, 2) == 0 else b""
    body = bytearray(b.query_info_body(file_id(src, handles), info_type, info_class,
                                       output_length=value(src, 32, (0, 1, 8, 24, 65536)),
                                       additional_information=value(src), input_buffer=input_buffer,
                                       flags=choice(src, (0, 1, 2, 4, value(src)))))
    if src.integer(0, 3) == 0:
        struct.pack_into("<HHI", body, 8, value(src, 16, (104,)), 0, value(src, 32, (len(input_buffer),)))
    return bytes(body)


def _set_info_buffer(src: Source, info_class: int) -> bytes:
    if info_class in (13, 64):  # FileDispositionInformation(Ex): a flag byte or Flags(4)
        return struct.pack("<I", choice(src, (0, 1, 2, 3, 0x10, 0x13, value(src))))[:choice(src, (1, 4, 4))]
    if info_class in (10, 11, 65):  # rename/link: ReplaceIfExists, RootDirectory, FileNameLength that may lie
        name = payloads.link_name(src)
        return struct.pack("<B7sQI", src.integer(0, 1), bytes(7), value(src, 64, (0,)),
                           value(src, 32, (len(name),))) + name
    if info_class == 15:  # FileFullEaInformation: NextEntryOffset, Flags, EaNameLength, EaValueLength
        name = src.raw(10)
        return struct.pack("<IBBH", value(src, 32, (0, 8)), 0, value(src, 8, (len(name),)),
                           value(src, 16, (4,))) + name + b"\0" + src.raw(10)
    if info_class in (19, 20):  # allocation / end of file
        return struct.pack("<Q", value(src, 64, (0, 65536)))
    if info_class == 100:  # SMB2 POSIX: FILE_POSIX_INFORMATION's mode is what a set may carry
        return struct.pack("<I", choice(src, (0o644, 0o7777, 0o170755, 0xFFFFFFFF, value(src)))) + src.raw(8)
    if info_class == 4:  # FileBasicInformation: four times, attributes
        return struct.pack("<QQQQII", value(src, 64), value(src, 64), value(src, 64), value(src, 64),
                           value(src), 0)
    return src.raw(80)


def set_info_body(src: Source, handles: Handles) -> bytes:
    info_type = choice(src, (1, 1, 1, 2, 3, 4, value(src, 8)))
    info_class = choice(src, (4, 10, 11, 13, 14, 15, 19, 20, 64, 65, 100, value(src, 8),
                              # mode, pipe, object id, valid data length, short name, case sensitivity;
                              # FS: label, control, object id; security (class 0)
                              16, 23, 29, 39, 40, 71, 2, 6, 8, 0))
    if info_type == 1:
        buffer = _set_info_buffer(src, info_class)
    elif info_type == 3 and src.integer(0, 3):  # SMB2_0_INFO_SECURITY: a self-relative descriptor
        buffer = payloads.security_descriptor(src)
    elif info_type == 4 and src.integer(0, 1):  # SMB2_0_INFO_QUOTA: FILE_QUOTA_INFORMATION ([MS-FSCC] 2.4.41)
        sid = payloads.sid(src)
        buffer = struct.pack("<IIqqq", value(src, 32, (0, 48)), value(src, 32, (len(sid),)), 0,
                             value(src, 64) - (1 << 63), value(src, 64) - (1 << 63)) + sid
    else:
        buffer = src.raw(120)
    body = bytearray(b.set_info_body(file_id(src, handles), info_type, info_class, buffer,
                                     additional_information=value(src)))
    if not buffer:
        body += b"\0"
    if src.integer(0, 3) == 0:  # BufferLength, BufferOffset that lie
        struct.pack_into("<IH", body, 4, value(src, 32, (len(buffer),)), value(src, 16, (96, len(body) + 64)))
    return bytes(body)


def oplock_break_body(src: Source, handles: Handles) -> bytes:
    """[MS-SMB2] 2.2.24.1 oplock break acknowledgment (StructureSize 24) or 2.2.24.2 lease break
    acknowledgment (36), for a handle or lease key that may exist, with any level or state."""
    if src.integer(0, 1):
        return struct.pack("<HBBI16s", choice(src, (24, 36, value(src, 16))),
                           choice(src, (0, 1, 8, 9, 0xFF, value(src, 8))), 0, value(src),
                           b.file_id_bytes(file_id(src, handles)))
    return struct.pack("<HHI16sIQ", choice(src, (36, 24, value(src, 16))), 0, value(src),
                       choice(src, (bytes(16), b"\x01" * 16, src.raw(16).ljust(16, b"\0"))),
                       choice(src, (0, 1, 3, 5, 7, value(src))), value(src, 64))


def small_body(src: Source, handles: Handles) -> bytes:
    """LOGOFF, TREE_DISCONNECT, ECHO, CANCEL: StructureSize 4 and Reserved."""
    return struct.pack("<HH", 4, value(src, 16))


def random_body(src: Source, handles: Handles) -> bytes:
    return src.raw(120)


BODIES: dict[int, Callable[[Source, Handles], bytes]] = {
    b.SMB2_NEGOTIATE: negotiate_body, b.SMB2_SESSION_SETUP: session_setup_body, b.SMB2_LOGOFF: small_body,
    b.SMB2_TREE_CONNECT: tree_connect_body, b.SMB2_TREE_DISCONNECT: small_body, b.SMB2_CREATE: create_body,
    b.SMB2_CLOSE: close_body, b.SMB2_FLUSH: flush_body, b.SMB2_READ: read_body, b.SMB2_WRITE: write_body,
    b.SMB2_LOCK: lock_body, b.SMB2_IOCTL: ioctl_body, b.SMB2_CANCEL: small_body, b.SMB2_ECHO: small_body,
    b.SMB2_QUERY_DIRECTORY: query_directory_body, b.SMB2_CHANGE_NOTIFY: change_notify_body,
    b.SMB2_QUERY_INFO: query_info_body, b.SMB2_SET_INFO: set_info_body, SMB2_OPLOCK_BREAK: oplock_break_body,
}
# Commands that end a session or tree come rarely: after them everything else only meets a closed door.
_COMMAND_WEIGHTS = [command for command in BODIES for _ in range(
    1 if command in (b.SMB2_LOGOFF, b.SMB2_TREE_DISCONNECT, b.SMB2_NEGOTIATE) else 4)]


# -- mutation and headers ----------------------------------------------------------------------------------------

def mutate(src: Source, data: bytes, fixed_from: int = 0) -> bytes:
    """Byte-level damage: flips, overwritten integers, truncation, extension (none of it before fixed_from)."""
    out = bytearray(data)
    for _ in range(src.integer(0, 3)):
        kind = src.integer(0, 4)
        if kind == 0 and len(out) > fixed_from:
            out[src.integer(fixed_from, len(out) - 1)] ^= 1 << src.integer(0, 7)
        elif kind in (1, 2) and len(out) >= fixed_from + 4:
            width = 2 if kind == 1 else 4
            position = src.integer(fixed_from, len(out) - width)
            out[position:position + width] = value(src, 8 * width, (len(out), 64 + len(out))).to_bytes(width, "little")
        elif kind == 3 and len(out) > fixed_from:
            del out[src.integer(fixed_from, len(out) - 1):]
        else:
            out += src.raw(64)
    return bytes(out)


def element(src: Source, handles: Handles, command: int | None = None) -> b.Req:
    """One request: a command's body, maybe damaged, with header fields that are valid or made up."""
    if command is None:
        command = choice(src, _COMMAND_WEIGHTS) if src.integer(0, 15) else value(src, 16)
    body = BODIES.get(command, random_body)(src, handles)
    if src.integer(0, 3) == 0:
        body = mutate(src, body)
    tree_kind = src.integer(0, 7)
    tree_id = (None, None, None, None, handles.ipc_tree_id, 0, value(src), handles.tree_id + 1)[tree_kind]
    session_kind = src.integer(0, 7)
    session_id = None if session_kind < 5 else choice(src, (0, value(src, 64), handles.session_id ^ 1))
    flags = 0
    if src.integer(0, 2) == 0:
        flags = choice(src, (b.SMB2_FLAGS_SIGNED, 0x10000000, 0x20000000, 0x70, 0x1, value(src)))
        flags &= ~(b.SMB2_FLAGS_RELATED_OPERATIONS | SMB2_FLAGS_ASYNC_COMMAND)
    async_id = value(src, 64) if src.integer(0, 11) == 0 else None
    credit_charge = choice(src, (1, 1, 1, 0, 2, 128, 129, value(src, 16)))
    return b.Req(command, body, related=src.integer(0, 2) == 0, tree_id=tree_id, session_id=session_id,
                 flags=flags, credit_charge=credit_charge, async_id=async_id)


def message(src: Source, handles: Handles, builder: b.Client) -> bytes:
    """A whole message: one element or a compound, message ids from `builder`, maybe with lying framing."""
    reqs = [element(src, handles) for _ in range(1 if src.integer(0, 2) else src.integer(2, 4))]
    for req in reqs:
        if src.integer(0, 9) == 0:
            req.message_id = choice(src, (0, 1, builder.next_message_id + 5000, value(src, 64)))
    data, _ = builder.build(*reqs, sign=False)
    out = bytearray(data)
    if src.integer(0, 4) == 0:
        # NextCommand of some element: 0 in the middle, short of a header, unaligned, past the end, huge.
        starts = _element_starts(out)
        start = choice(src, starts)
        struct.pack_into("<I", out, start + 20, choice(src, (0, 8, 56, 60, 64, 68, len(out) - start + 8,
                                                             len(out) + 64, 0xFFFFFFF8, value(src))))
    if src.integer(0, 5) == 0:
        out = bytearray(mutate(src, bytes(out), fixed_from=4))
    return bytes(out)


def _element_starts(data: bytearray) -> list[int]:
    starts = [0]
    position = 0
    while len(data) - position >= 64:
        (next_command,) = struct.unpack_from("<I", data, position + 20)
        if not next_command or position + next_command + 64 > len(data):
            break
        position += next_command
        starts.append(position)
    return starts


# -- sequences that need state: a bound pipe, a related open ---------------------------------------------------

def pipe_chain(src: Source, handles: Handles, builder: b.Client) -> list[bytes]:
    """A DCE/RPC BIND on the srvsvc pipe, then one or two REQUESTs with hostile NDR stubs, so that the stubs
    reach the srvsvc decoder ([MS-SRVS] 3.1.4): through FSCTL_PIPE_TRANSCEIVE, or WRITE and READ; one message
    each or all in one compound."""
    pdus = [payloads.rpc_bind(src, call_id=1)] + [payloads.rpc_request(src, call_id=2 + index)
                                                  for index in range(src.integer(1, 2))]
    reqs = []
    for pdu in pdus:
        if src.integer(0, 2):
            reqs.append(b.Req(b.SMB2_IOCTL, b.ioctl_body(handles.pipe_id, 0x0011C017, pdu,
                                                         max_output=choice(src, (4280, 65536, 0, 16)),
                                                         flags=1), tree_id=handles.ipc_tree_id))
        else:
            reqs.append(b.Req(b.SMB2_WRITE, b.write_body(handles.pipe_id, 0, pdu), tree_id=handles.ipc_tree_id))
            reqs.append(b.Req(b.SMB2_READ, b.read_body(handles.pipe_id, 0, choice(src, (4280, 65536, 1, 0))),
                              tree_id=handles.ipc_tree_id))
    if src.integer(0, 1):
        return [bytes(builder.build(*reqs, sign=False)[0])]
    return [bytes(builder.build(req, sign=False)[0]) for req in reqs]


# What a related element after a CREATE may be: the commands that take a handle.
_RELATED_COMMANDS = (b.SMB2_SET_INFO, b.SMB2_SET_INFO, b.SMB2_QUERY_INFO, b.SMB2_IOCTL, b.SMB2_IOCTL, b.SMB2_LOCK,
                     b.SMB2_QUERY_DIRECTORY, b.SMB2_READ, b.SMB2_WRITE, b.SMB2_FLUSH, b.SMB2_CHANGE_NOTIFY,
                     b.SMB2_CLOSE)


def _well_formed_follower(src: Source, handles: Handles) -> b.Req:
    """A related element whose framing is right and whose payload is the hostile part: a rename or link to a
    name of payloads.link_name, an end of file or allocation anywhere, a disposition, a reparse point, a lock
    array, a query of everything, a directory pattern."""
    rid = b.RELATED_FILE_ID
    kind = src.integer(0, 7)
    if kind <= 1:
        name = payloads.link_name(src)
        buffer = struct.pack("<B7sQI", src.integer(0, 1), bytes(7), 0, len(name)) + name
        body = b.set_info_body(rid, 1, choice(src, (10, 11, 65)), buffer)
        return b.Req(b.SMB2_SET_INFO, body, related=True)
    if kind == 2:
        info_class = choice(src, (19, 20, 13, 64))
        return b.Req(b.SMB2_SET_INFO, b.set_info_body(rid, 1, info_class, _set_info_buffer(src, info_class)),
                     related=True)
    if kind == 3:
        return b.Req(b.SMB2_IOCTL, b.ioctl_body(rid, choice(src, (0x000900A4, 0x000900A4, 0x000900AC)),
                                                payloads.reparse_buffer(src), max_output=0), related=True)
    if kind == 4:
        return b.Req(b.SMB2_LOCK, b.lock_body(rid, payloads.lock_array(src)), related=True)
    if kind == 5:
        return b.Req(b.SMB2_QUERY_INFO, b.query_info_body(rid, choice(src, (1, 1, 3)), choice(src, (18, 0, 34, 100)),
                                                          additional_information=choice(src, (0, 7, 0xF))),
                     related=True)
    if kind == 6:
        body = b.ioctl_body(rid, choice(src, (0x000940CF, 0x000980C8, 0x001480F2)),
                            choice(src, (payloads.range_input(src), payloads.copychunk_input(src, handles))),
                            max_output=choice(src, (65536, 12, 16)))
        return b.Req(b.SMB2_IOCTL, body, related=True)
    pattern = payloads.directory_pattern(src)
    body = bytearray(b.query_directory_body(rid, "*", info_class=choice(src, (1, 2, 3, 0x0C, 0x25, 0x26, 0x3C)),
                                            flags=choice(src, (0, 1, 0x10))))
    struct.pack_into("<HH", body, 24, 96 if pattern else 0, len(pattern))
    body[32:] = pattern or b"\0"
    return b.Req(b.SMB2_QUERY_DIRECTORY, bytes(body), related=True)


def related_chain(src: Source, handles: Handles, builder: b.Client) -> list[bytes]:
    """A compound of a CREATE (hostile name, contexts and options) and related elements on the handle it
    opens ([MS-SMB2] 3.3.5.2.7.2): set-info (renames, links, dispositions), IOCTLs, locks, queries, then
    maybe a CLOSE; the handle dies with the connection if nothing closes it."""
    if src.integer(0, 3):  # a CREATE that opens something, so that the related elements meet a handle
        contexts = b.chain_contexts(*(_create_context(src, handles) for _ in range(choice(src, (0, 0, 1, 2)))))
        create = b.Req(b.SMB2_CREATE, b.create_body(
            choice(src, ("new.txt", "new.txt", "data.bin", "dir", "dir\\entry1.txt", "sub", "data.bin:s")),
            desired_access=choice(src, (b.GENERIC_ALL, b.MAXIMUM_ALLOWED, 0x13019F, b.GENERIC_READ | b.DELETE)),
            disposition=choice(src, (1, 2, 3, 5)), share_access=7,
            options=choice(src, (0, 0, b.FILE_DIRECTORY_FILE, b.FILE_NON_DIRECTORY_FILE, b.FILE_DELETE_ON_CLOSE)),
            oplock=choice(src, (0, 0, 8, 9, 0xFF)), contexts=contexts))
    else:
        create = element(src, handles, b.SMB2_CREATE)
        create.related = False
    related = Handles(b.RELATED_FILE_ID, b.RELATED_FILE_ID, handles.pipe_id, handles.session_id,
                      handles.tree_id, handles.ipc_tree_id, handles.resume_key, stream_id=b.RELATED_FILE_ID)
    reqs = [create]
    for _ in range(src.integer(1, 4)):
        if src.integer(0, 1):
            reqs.append(_well_formed_follower(src, handles))
            continue
        follower = element(src, related, choice(src, _RELATED_COMMANDS))
        follower.related = bool(src.integer(0, 5))
        if src.integer(0, 3):  # the header of the chain, not a made-up one
            follower.tree_id = follower.session_id = follower.async_id = None
        reqs.append(follower)
    if src.integer(0, 1):
        reqs.append(b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True))
    return [bytes(builder.build(*reqs, sign=False)[0])]


# -- async requests and their CANCEL ------------------------------------------------------------------------

def async_chain(src: Source, handles: Handles, builder: b.Client) -> list[bytes]:
    """Messages that leave requests pending ([MS-SMB2] 3.3.4.2) and then end them: a CHANGE_NOTIFY on the
    directory, or a byte-range lock followed by a conflicting one that waits, or a CREATE of the file with
    a lease while it is open; after it a CANCEL by MessageId or by AsyncId (which count from 1 per
    connection, 3.3.5.16), a CLOSE of the handle, a TREE_DISCONNECT or LOGOFF, or nothing (the connection's
    end cancels it)."""
    kind = src.integer(0, 2)
    reqs: list[b.Req] = []
    if kind == 0:
        reqs.append(b.Req(b.SMB2_CHANGE_NOTIFY, struct.pack(
            "<HHI16sII", 32, src.integer(0, 1), choice(src, (0, 16, 4096, value(src))),
            b.file_id_bytes(handles.dir_id), choice(src, (0xFFF, 1, 0x10, value(src))), 0)))
    elif kind == 1:
        offset, length = value(src, 64, (0, 10)), value(src, 64, (1, 10))
        reqs.append(b.Req(b.SMB2_LOCK, b.lock_body(handles.file_id, [(offset, length, 0x12)])))
        reqs.append(b.Req(b.SMB2_LOCK, b.lock_body(handles.file_id, [(offset, length, choice(src, (1, 2)))])))
    else:
        # A name the set-up holds no handle of ("new.txt") gets the batch oplock or RWH lease asked for, so
        # that the second CREATE waits for its break (nobody acknowledges it).
        name = choice(src, ("new.txt", "new.txt", "data.bin"))
        lease = b.create_context(b"RqLs", struct.pack("<16sIIQ", src.raw(16).ljust(16, b"\0"), 7, 0, 0))
        reqs.append(b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                                       disposition=3, oplock=choice(src, (0xFF, 9, 8)),
                                                       contexts=lease)))
        reqs.append(b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=b.GENERIC_WRITE,
                                                       disposition=choice(src, (1, 5, 0)))))
    if src.integer(0, 1):  # the waiting requests in one compound, or one message each
        messages = [bytes(builder.build(*reqs, sign=False)[0])]
        last_id = builder.next_message_id - 1
    else:
        messages = [bytes(builder.build(req, sign=False)[0]) for req in reqs]
        last_id = builder.next_message_id - 1
    end = src.integer(0, 5)
    if end in (0, 1):
        cancel = b.Req(b.SMB2_CANCEL, b.cancel_body(),
                       message_id=choice(src, (last_id, last_id - 1, value(src, 64))) if end == 0 else 0,
                       async_id=choice(src, (1, 2, 3, value(src, 64))) if end == 1 else None)
        if src.integer(0, 2) == 0:  # the CANCEL inside the same message as what it cancels
            messages[-1] = bytes(builder.build(*reqs[-1:], cancel, sign=False)[0])
        else:
            messages.append(bytes(builder.build(cancel, sign=False)[0]))
    elif end == 2:
        messages.append(bytes(builder.build(b.Req(b.SMB2_CLOSE, b.close_body(
            choice(src, (handles.file_id, handles.dir_id)))), sign=False)[0]))
    elif end == 3:
        messages.append(bytes(builder.build(b.Req(choice(src, (b.SMB2_TREE_DISCONNECT, b.SMB2_LOGOFF)),
                                                  small_body(src, handles)), sign=False)[0]))
    return messages


# -- transforms ([MS-SMB2] 2.2.41, 3.3.5.2.1.1) -------------------------------------------------------------------

def seal(src: Source, message: bytes, encrypt: Callable[[bytes, int], bytes], session_id: int) -> bytes:
    """`message` in a transform of the session's keys, then maybe damaged: another SessionId, Flags, an
    OriginalMessageSize that lies, a flipped tag or ciphertext bit, a truncation, a transform inside the
    transform, or an SMB1 or empty plaintext."""
    kind = src.integer(0, 9)
    if kind == 0:
        message = choice(src, (b"", b"\xffSMB" + src.raw(60), b"\xfcSMB" + src.raw(60), src.raw(80)))
    elif kind == 1:
        message = encrypt(message, session_id)
    sealed = bytearray(encrypt(message, choice(src, (session_id, session_id, 0, value(src, 64)))
                                         if kind == 2 else session_id))
    if kind == 3:
        struct.pack_into("<H", sealed, 42, choice(src, (0, 2, value(src, 16))))  # Flags
    elif kind == 4:
        struct.pack_into("<I", sealed, 36, value(src, 32, (len(sealed) - 52,)))  # OriginalMessageSize
    elif kind == 5 and len(sealed) > 4:
        sealed[src.integer(4, len(sealed) - 1)] ^= 1 << src.integer(0, 7)
    elif kind == 6:
        del sealed[src.integer(0, len(sealed)):]
    return bytes(sealed)
