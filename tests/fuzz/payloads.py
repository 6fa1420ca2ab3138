"""The inner formats hostile requests carry, shaped like the real ones with fields that lie.

tests/fuzz/requests.py builds the SMB2 bodies; this module builds what goes inside them, where a generator of
random bytes almost never gets past the first length check: create context data ([MS-SMB2] 2.2.13.2), security
descriptors ([MS-DTYP] 2.4.6), reparse buffers ([MS-FSCC] 2.1.2), copychunk and validate-negotiate inputs
([MS-SMB2] 2.2.31.1, 2.2.31.4), DCE/RPC PDUs for the srvsvc pipe ([C706] 12.6, [MS-SRVS] 3.1.4), lock arrays
([MS-SMB2] 2.2.26.1), rename and link names ([MS-FSCC] 2.4.42), QUERY_DIRECTORY patterns ([MS-FSA] 2.1.4.4) and
NTLM AUTHENTICATE messages ([MS-NLMP] 2.2.1.3) in SPNEGO wrappers ([RFC 4178]).
"""

from __future__ import annotations

import struct
import uuid
from typing import TYPE_CHECKING

from tests import builders as b
from tests.fuzz.source import Source, choice, value

if TYPE_CHECKING:
    from tests.fuzz.requests import Handles


def _guid(src: Source) -> bytes:
    return choice(src, (bytes(16), b"\x01" * 16, src.raw(16).ljust(16, b"\0")))


# -- security descriptors ([MS-DTYP] 2.4.2, 2.4.5, 2.4.6) --------------------------------------------------------

def sid(src: Source) -> bytes:
    """Revision 1, SubAuthorityCount (which may lie), IdentifierAuthority, SubAuthorities."""
    kind = src.integer(0, 4)
    if kind == 0:  # S-1-1-0 Everyone
        return struct.pack("<BB6sI", 1, 1, b"\0\0\0\0\0\x01", 0)
    if kind == 1:  # S-1-22-1-<uid>: Samba's Unix user SIDs
        return struct.pack("<BB6sII", 1, 2, b"\0\0\0\0\0\x16", 1, value(src))
    count = choice(src, (0, 1, 5, 15, 16, 255))
    actual = src.integer(0, 6) if kind == 2 else count
    return struct.pack("<BB6s", choice(src, (1, 1, 0, 2)), count, b"\0\0\0\0\0\x05") + b"".join(
        struct.pack("<I", value(src)) for _ in range(min(int(actual), 20)))


def acl(src: Source) -> bytes:
    """AclRevision, AclSize and AceCount that may lie; ACEs of allowed/denied/object/unknown types."""
    aces = b""
    count = src.integer(0, 4)
    for _ in range(count):
        ace_type = choice(src, (0, 1, 2, 5, 9, 0x11, value(src, 8)))
        body = struct.pack("<I", choice(src, (0x1F01FF, 0x120089, 0, value(src)))) + sid(src)
        if ace_type == 5:  # ACCESS_ALLOWED_OBJECT_ACE: Flags, ObjectType, InheritedObjectType
            body = body[:4] + struct.pack("<I", src.integer(0, 3)) + _guid(src) + _guid(src) + body[4:]
        size = 4 + len(body)
        if src.integer(0, 4) == 0:
            size = value(src, 16, (size, 0, 4))
        aces += struct.pack("<BBH", ace_type, value(src, 8), size) + body
    size = 8 + len(aces)
    return struct.pack("<BBHHH", choice(src, (2, 4, 0, 1)), 0, size if src.integer(0, 3) else value(src, 16, (size,)),
                       count if src.integer(0, 3) else value(src, 16, (count,)), 0) + aces


def security_descriptor(src: Source) -> bytes:
    """A self-relative descriptor: Revision, Control, the four offsets (which may point anywhere), parts."""
    parts = [sid(src) if src.integer(0, 3) else b"", sid(src) if src.integer(0, 3) else b"",
             acl(src) if src.integer(0, 4) == 0 else b"", acl(src) if src.integer(0, 3) else b""]
    offsets = []
    blob = b""
    for part in parts:
        offsets.append(20 + len(blob) if part else 0)
        blob += part
    control = 0x8000 | (0x4 if parts[3] else 0) | (0x10 if parts[2] else 0)
    if src.integer(0, 3) == 0:
        control = value(src, 16)
    if src.integer(0, 3) == 0:
        offsets[src.integer(0, 3)] = value(src, 32, (20, 20 + len(blob)))
    return struct.pack("<BBHIIII", choice(src, (1, 1, 1, 0, 2)), 0, control, *offsets) + blob


# -- create contexts ([MS-SMB2] 2.2.13.2) -------------------------------------------------------------------------

def create_context_data(src: Source, name: bytes, handles: Handles) -> bytes:
    """The data of the context `name`, of its real shape or near it, its fields hostile."""
    if src.integer(0, 5) == 0:
        return src.raw(80)
    if name == b"ExtA":
        return ea_list(src)
    if name == b"SecD":
        return security_descriptor(src)
    if name == b"DHnQ":
        return bytes(choice(src, (16, 16, 0, 15, 32)))
    if name == b"DHnC":
        return b.file_id_bytes(choice(src, (handles.file_id, handles.dir_id, (value(src, 64), 0))))
    if name in (b"AlSi", b"TWrp"):
        return struct.pack("<Q", value(src, 64, (0, 4096)))[:choice(src, (8, 8, 8, 4, 0))]
    if name == b"MxAc":
        return choice(src, (b"", struct.pack("<Q", value(src, 64)), b"\0" * 4))
    if name == b"QFid":
        return choice(src, (b"", b"\0" * 16))
    if name == b"RqLs":  # v1 (32 bytes) or v2 (52): LeaseKey, State, Flags, Duration, [ParentKey, Epoch]
        data = struct.pack("<16sIIQ", _guid(src), choice(src, (7, 1, 3, 5, 0, value(src))),
                           choice(src, (0, 4, value(src))), value(src, 64))
        if src.integer(0, 1):
            data += _guid(src) + struct.pack("<HH", value(src, 16), 0)
        return data
    if name == b"DH2Q":  # Timeout, Flags (PERSISTENT = 2), Reserved, CreateGuid
        return struct.pack("<IIQ16s", value(src, 32, (0, 60000)), choice(src, (0, 2, value(src))), 0,
                           _guid(src))
    if name == b"DH2C":  # FileId, CreateGuid, Flags
        file_id = choice(src, (handles.file_id, handles.dir_id, (value(src, 64), value(src, 64))))
        return b.file_id_bytes(file_id) + _guid(src) + struct.pack("<I", choice(src, (0, 2, value(src))))
    if name == b.POSIX_EXTENSIONS_GUID:  # the mode the file is to get
        return struct.pack("<I", choice(src, (0o644, 0o7777, 0o170000, 0xFFFFFFFF, value(src))))
    if name == b"AAPL":  # CommandCode (1: server query), Reserved, RequestBitmap, ClientCapabilities
        return struct.pack("<IIQQ", choice(src, (1, 2, value(src))), 0, value(src, 64), value(src, 64))
    return src.raw(80)


def ea_list(src: Source) -> bytes:
    """FILE_FULL_EA_INFORMATION entries ([MS-FSCC] 2.4.15) whose NextEntryOffset and lengths may lie."""
    entries = [(choice(src, (b"user.x", b"", b"A" * 255, b"bad\0name", b"*?", src.raw(12))),
                choice(src, (b"", b"v", b"\0" * 300, src.raw(40))))
               for _ in range(src.integer(1, 3))]
    out = bytearray(b.full_ea_list(entries))
    if src.integer(0, 2) == 0:  # NextEntryOffset, Flags, EaNameLength or EaValueLength of the first entry
        position, width = choice(src, ((0, 4), (4, 1), (5, 1), (6, 2)))
        out[position:position + width] = value(src, 8 * width, (len(out), 8)).to_bytes(width, "little")
    return bytes(out)


# -- reparse points ([MS-FSCC] 2.1.2) -----------------------------------------------------------------------------

IO_REPARSE_TAG_SYMLINK = 0xA000000C
IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003
IO_REPARSE_TAG_NFS = 0x80000014
IO_REPARSE_TAG_LX_SYMLINK = 0xA000001D
# NFS_SPECFILE_ LNK, CHR, BLK, FIFO, SOCK and one that is none ([MS-FSCC] 2.1.2.6)
_NFS_TYPES = (0x014B4E4C, 0x524843, 0x4B4C42, 0x4F464946, 0x4B434F53, 0x4142434445)
_TARGETS = ("target", "..\\..\\..\\etc\\passwd", "\\??\\C:\\Windows", "/etc/passwd", "", "dir\\entry1.txt",
            "a\0b", "x" * 600, "..", "\\\\server\\share\\x", "C:", "\ud800")


def _target(src: Source) -> bytes:
    return str(choice(src, _TARGETS)).encode("utf-16-le", "surrogatepass")


def reparse_buffer(src: Source) -> bytes:
    """ReparseTag, ReparseDataLength (which may lie), Reserved, and data of the tag's shape."""
    tag = choice(src, (IO_REPARSE_TAG_SYMLINK, IO_REPARSE_TAG_SYMLINK, IO_REPARSE_TAG_MOUNT_POINT,
                        IO_REPARSE_TAG_NFS, IO_REPARSE_TAG_NFS, IO_REPARSE_TAG_LX_SYMLINK, 0x80000023,
                        0x8000001B, 0x0000BEEF, value(src)))
    if tag in (IO_REPARSE_TAG_SYMLINK, IO_REPARSE_TAG_MOUNT_POINT):
        substitute, printed = _target(src), _target(src)
        names = substitute + printed
        fields = [0, len(substitute), len(substitute), len(printed)]
        if src.integer(0, 2) == 0:
            fields[src.integer(0, 3)] = value(src, 16, (len(names), len(substitute)))
        data = struct.pack("<HHHH", *fields)
        if tag == IO_REPARSE_TAG_SYMLINK:
            data += struct.pack("<I", choice(src, (0, 1, 1, value(src))))  # Flags: SYMLINK_FLAG_RELATIVE
        data += names
    elif tag == IO_REPARSE_TAG_NFS:
        nfs_type = choice(src, _NFS_TYPES)
        if nfs_type == 0x014B4E4C:
            payload = _target(src)
        elif nfs_type in (0x524843, 0x4B4C42):
            payload = struct.pack("<II", value(src), value(src))[:choice(src, (8, 8, 4, 0))]
        else:
            payload = src.raw(8) if src.integer(0, 3) == 0 else b""
        data = struct.pack("<Q", nfs_type) + payload
    elif tag == IO_REPARSE_TAG_LX_SYMLINK:  # Version 2, then the UTF-8 target
        data = struct.pack("<I", choice(src, (2, 1, value(src)))) + bytes(
            choice(src, (b"target", b"../../../etc", b"/etc/passwd", b"", b"\xff\xfe")))
    elif tag & 0x80000000 == 0 and src.integer(0, 1):  # a non-Microsoft tag carries a GUID (2.1.2.3)
        data = _guid(src) + src.raw(40)
    else:
        data = src.raw(64)
    length = len(data) if src.integer(0, 3) else value(src, 16, (len(data), 0))
    return struct.pack("<IHH", tag, length, choice(src, (0, 0, value(src, 16)))) + data


# -- IOCTL inputs --------------------------------------------------------------------------------------------------

def copychunk_input(src: Source, handles: Handles) -> bytes:
    """SourceKey (the set-up's real key or not), ChunkCount (which may lie), chunks that overlap, run past the
    end, are empty or huge ([MS-SMB2] 2.2.31.1)."""
    key = choice(src, (handles.resume_key, handles.resume_key, bytes(24), src.raw(24).ljust(24, b"\0")))
    chunks = []
    for _ in range(choice(src, (1, 1, 2, 3, 0, 17))):
        chunks.append(struct.pack("<QQII", value(src, 64, (0, 4096, 65536)), value(src, 64, (0, 4096, 65536)),
                                  value(src, 32, (0, 1, 4096, 1 << 20)), choice(src, (0, 0, value(src)))))
    count = len(chunks) if src.integer(0, 3) else value(src, 32, (len(chunks), 256))
    return bytes(key) + struct.pack("<II", count, 0) + b"".join(chunks)


def validate_negotiate_input(src: Source) -> bytes:
    """Capabilities, Guid, SecurityMode, DialectCount (which may lie), Dialects ([MS-SMB2] 2.2.31.4)."""
    dialects = [choice(src, (0x0202, 0x0210, 0x0300, 0x0302, 0x0311, 0x02FF, value(src, 16)))
                for _ in range(src.integer(0, 6))]
    count = len(dialects) if src.integer(0, 2) else value(src, 16, (len(dialects),))
    return struct.pack("<I16sHH", value(src), _guid(src), src.integer(0, 3), count) + b"".join(
        struct.pack("<H", dialect) for dialect in dialects)


def range_input(src: Source) -> bytes:
    """FileOffset and Length (QUERY_ALLOCATED_RANGES) or FileOffset and BeyondFinalZero (SET_ZERO_DATA), which
    may be negative as signed numbers, overflow when added, or be reversed ([MS-FSCC] 2.3.39, 2.3.85)."""
    first = value(src, 64, (0, 4096, 65536))
    second = choice(src, (value(src, 64, (0, 4096, 65536)), first, max(0, first - 1),
                           (first + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF))
    return struct.pack("<QQ", first, second)[:choice(src, (16, 16, 16, 8, 24))] + (
        src.raw(8) if src.integer(0, 5) == 0 else b"")


# -- DCE/RPC for the srvsvc pipe ([C706] 12.6.3, [MS-RPCE] 2.2.2, [MS-SRVS] 3.1.4) ----------------------------------

SRVSVC = uuid.UUID("4b324fc8-1670-01d3-1278-5a47bf6ee188").bytes_le
NDR32 = uuid.UUID("8a885d04-1ceb-11c9-9fe8-08002b104860").bytes_le
NDR64 = uuid.UUID("71710533-beba-4937-8319-b5dbef9ccc36").bytes_le
BIND_TIME_FEATURES = uuid.UUID("6cb71c2c-9812-4540-0300-000000000000").bytes_le
PTYPE_REQUEST, PTYPE_BIND, PTYPE_ALTER_CONTEXT = 0, 11, 14


def _pdu(src: Source, ptype: int, body: bytes, call_id: int) -> bytes:
    """The 16-byte common header: version, type, flags, data representation, frag_length and auth_length
    (either may lie), call id; now and then an auth trailer behind the body."""
    auth = b""
    if src.integer(0, 7) == 0:  # sec_trailer: auth_type, auth_level, pad, reserved, context id, then a token
        auth = struct.pack("<BBBBI", choice(src, (10, 9, 0x44, value(src, 8))), src.integer(0, 6),
                           src.integer(0, 16), 0, 0) + src.raw(40)
    flags = choice(src, (3, 3, 3, 1, 2, 0, 0x83, value(src, 8)))
    drep = choice(src, (b"\x10\0\0\0", b"\x10\0\0\0", b"\0\0\0\0", b"\x10\x01\0\0"))
    length = 16 + len(body) + len(auth)
    frag_length = length if src.integer(0, 3) else value(src, 16, (length, 16, 0))
    auth_length = max(0, len(auth) - 8) if src.integer(0, 3) else value(src, 16, (len(auth),))
    return struct.pack("<BBBB4sHHI", choice(src, (5, 5, 5, 4)), choice(src, (0, 0, 1, 2)), ptype, flags, drep,
                       frag_length, auth_length, call_id) + body + auth


def rpc_bind(src: Source, call_id: int = 1) -> bytes:
    """A BIND (or ALTER_CONTEXT) offering srvsvc (or another interface) with NDR32, NDR64, bind-time feature
    negotiation or made-up transfer syntaxes; the context count may lie."""
    contexts = b""
    count = src.integer(1, 3)
    for index in range(count):
        abstract = choice(src, (SRVSVC, SRVSVC, NDR32, src.raw(16).ljust(16, b"\0")))
        version = choice(src, (3, 3, 0x00010003, 2, value(src)))
        syntaxes = [choice(src, ((NDR32, 2), (NDR32, 2), (NDR64, 1), (BIND_TIME_FEATURES, 1), (NDR32, 1)))
                    for _ in range(src.integer(0, 3))]
        n_syntaxes = len(syntaxes) if src.integer(0, 5) else value(src, 8, (len(syntaxes),))
        contexts += struct.pack("<HBB16sI", choice(src, (index, 0, value(src, 16))), n_syntaxes, 0, abstract,
                                version)
        contexts += b"".join(struct.pack("<16sI", syntax, syntax_version) for syntax, syntax_version in syntaxes)
    n_contexts = count if src.integer(0, 5) else value(src, 8, (count,))
    body = struct.pack("<HHIBBH", value(src, 16, (4280, 0, 16)), value(src, 16, (4280, 0, 16)), value(src),
                       n_contexts, 0, 0) + contexts
    return _pdu(src, choice(src, (PTYPE_BIND, PTYPE_BIND, PTYPE_ALTER_CONTEXT)), body, call_id)


def _ndr_string(src: Source, text: str, unique: bool) -> bytes:
    """A [string] wchar_t*: (referent id,) MaxCount, Offset, ActualCount (any of which may lie), characters,
    padding to 4. A unique pointer may be NULL."""
    if unique and src.integer(0, 5) == 0:
        return b"\0\0\0\0"
    chars = text.encode("utf-16-le", "surrogatepass") + (b"\0\0" if src.integer(0, 5) else b"")
    count = len(chars) // 2
    counts = [count, 0, count]
    if src.integer(0, 2) == 0:
        counts[src.integer(0, 2)] = value(src, 32, (count,))
    out = (struct.pack("<I", choice(src, (0x20000, 1, value(src)))) if unique else b"") + struct.pack(
        "<III", *counts) + chars
    return out + bytes(-len(out) % 4)


def _srvsvc_stub(src: Source, opnum: int) -> bytes:
    server = _ndr_string(src, str(choice(src, ("\\\\FUZZSRV", "", "x" * 300, "\ud800"))), unique=True)
    if opnum == 15:  # NetrShareEnum: InfoStruct (Level, switch, container pointer, EntriesRead, Buffer), ...
        level = choice(src, (0, 1, 2, 501, 502, 503, 1005, value(src)))
        container = struct.pack("<III", choice(src, (0x20004, 0, value(src))), value(src, 32, (0,)),
                                choice(src, (0, 0x20008, value(src))))
        stub = server + struct.pack("<III", level, choice(src, (level, value(src))),
                                    choice(src, (0x20000, 0))) + container
        return stub + struct.pack("<III", value(src, 32, (0xFFFFFFFF,)), choice(src, (0x2000C, 0)), value(src))
    if opnum == 16:  # NetrShareGetInfo: ServerName, NetName, Level
        name = _ndr_string(src, str(choice(src, ("share", "IPC$", "SHARE", "", "nosuch", "s" * 400))),
                           unique=False)
        return server + name + struct.pack("<I", choice(src, (0, 1, 2, 501, 502, 503, 1005, value(src))))
    # NetrServerGetInfo and the rest: ServerName, Level
    return server + struct.pack("<I", choice(src, (100, 101, 102, 103, value(src))))


def rpc_request(src: Source, call_id: int = 2) -> bytes:
    """A REQUEST for a srvsvc opnum (or one the interface does not have), its NDR stub hostile, maybe cut."""
    opnum = choice(src, (15, 15, 16, 16, 21, 21, 0, 255, value(src, 16)))
    stub = _srvsvc_stub(src, opnum)
    if src.integer(0, 3) == 0:
        stub = stub[:src.integer(0, len(stub))]
    alloc_hint = len(stub) if src.integer(0, 3) else value(src, 32, (len(stub),))
    body = struct.pack("<IHH", alloc_hint, choice(src, (0, 0, 1, value(src, 16))), opnum) + stub
    return _pdu(src, PTYPE_REQUEST, body, call_id)


def rpc_pdu(src: Source) -> bytes:
    kind = src.integer(0, 5)
    if kind <= 1:
        return rpc_bind(src)
    if kind <= 4:
        return rpc_request(src)
    return _pdu(src, choice(src, (16, 18, 19, 12, 2, 3, value(src, 8))), src.raw(40), 3)


# -- LOCK arrays ([MS-SMB2] 2.2.26.1) -------------------------------------------------------------------------------

_LOCK_FLAGS = (1, 2, 4, 0x11, 0x12, 0x14, 0, 3, 6, 0x10, 0x15)


def lock_array(src: Source) -> list[tuple[int, int, int]]:
    """Ranges that overlap each other, are empty, end exactly at or past 2**64, repeat, or mix locks and
    unlocks in one request."""
    locks: list[tuple[int, int, int]] = []
    for _ in range(choice(src, (1, 2, 3, 4, 8, 64))):
        kind = src.integer(0, 5)
        if locks and kind == 0:  # the previous range again, or shifted by one
            offset, length, _ = locks[-1]
            offset = (offset + src.integer(-1, 1)) & 0xFFFFFFFFFFFFFFFF
        elif kind == 1:  # a range that ends at or beyond the end of the 64-bit space
            length = value(src, 64, (1, 0x100))
            offset = (0x10000000000000000 - length + src.integer(-1, 1)) & 0xFFFFFFFFFFFFFFFF
        elif kind == 2:  # empty, anywhere
            offset, length = value(src, 64, (0, 100)), 0
        else:
            offset, length = value(src, 64, (0, 10, 100)), value(src, 64, (1, 10, 100))
        locks.append((offset, length, int(choice(src, _LOCK_FLAGS + (value(src),)))))
    return locks


# -- names ----------------------------------------------------------------------------------------------------------

_LINK_NAMES = ("renamed", "dir\\x", "..\\escape", "dir\\..\\..\\escape", "", "data.bin", "\\abs", "a:b",
               "data.bin:stream", "::$DATA", "dir:$I30:$INDEX_ALLOCATION", "a\0b", "x" * 256, "x" * 2000,
               "dir\\" + "d" * 255 + "\\x", ".", "..", "dir\\.", "trailing.", "trailing ", "con", "aux.txt",
               "a*b", "a?b", "a<b", "a|b", "a\"b", "\ud800", "\\\\srv\\share\\x", "/slash/x", "dir/entry1.txt",
               "new\\", "\\..\\..", "dir\\entry1.txt",
               # stream targets ([MS-FSA] 2.1.5.15.11: a stream's handle renames to ":new"): the set-up's own stream
               # in another case, new ones, names too long for an xattr, odd types, odd Unicode, other files' streams
               ":x", ":x:$DATA", ":FUZZ", ":fuzz:$DATA", ":" + "x" * 234, ":" + "x" * 235, ":\u00e9\U0001f600",
               ":\ud800", "x::$DATA", "x:y:$FOO", ":x:$FOO", ":", "::", ":x/y", ":x\\y", "data.bin:x", "dir:x",
               "new.txt:x", "dir\\entry1.txt:x", ":*", "data.bin::$DATA")


def link_name(src: Source) -> bytes:
    """The FileName of FILE_RENAME_INFORMATION / FILE_LINK_INFORMATION, UTF-16 (maybe invalid)."""
    if src.integer(0, 7) == 0:
        return src.raw(80)
    return str(choice(src, _LINK_NAMES)).encode("utf-16-le", "surrogatepass")


_PATTERNS = ("*", "", "entry?.txt", "<", "\"*", "a" * 300, "*.*", "\\", ">", "<.txt", "entry1.txt", "*\0*",
             "..", ".", "dir\\*", "*" * 200, "?" * 300, "\ud800*", "ENTRY*", "*:*", "x" * 4000, " ", "entry1.txt.")


def directory_pattern(src: Source) -> bytes:
    if src.integer(0, 7) == 0:
        return src.raw(64)
    return str(choice(src, _PATTERNS)).encode("utf-16-le", "surrogatepass")


# -- authentication ([MS-NLMP] 2.2.1.3, 2.2.2.1; [RFC 4178] 4.2) -----------------------------------------------------

_NTLM_FIELDS = 6  # LmChallengeResponse, NtChallengeResponse, DomainName, UserName, Workstation, SessionKey


def damage_ntlm_authenticate(src: Source, message: bytes) -> bytes:
    """A real AUTHENTICATE_MESSAGE with one kind of damage: a field's length or offset that lies, an AV pair
    inside the NTLMv2 response whose AvLen lies or that never ends, flags toggled, the MIC flipped, a cut."""
    out = bytearray(message)
    kind = src.integer(0, 5)
    if kind <= 1 and len(out) >= 12 + 8 * _NTLM_FIELDS:
        field = 12 + 8 * src.integer(0, _NTLM_FIELDS - 1)
        if kind == 0:
            struct.pack_into("<HH", out, field, *(2 * [value(src, 16, (0, 16, 24, len(out)))]))
        else:
            struct.pack_into("<I", out, field + 4, value(src, 32, (len(out), 64, 88)))
    elif kind == 2 and len(out) >= 28:
        length, _, offset = struct.unpack_from("<HHI", out, 20)
        # NTLMv2 response: NTProofStr (16), then the client challenge blob whose AV pairs start at +28.
        pairs = offset + 16 + 28
        if length > 16 + 28 + 4 and pairs + 4 <= len(out):
            struct.pack_into("<HH", out, pairs, choice(src, (0, 1, 2, 6, 7, 9, 10, value(src, 16))),
                             value(src, 16, (length, 0, 4, 8)))
    elif kind == 3 and len(out) >= 64:
        struct.pack_into("<I", out, 60, value(src))  # NegotiateFlags
    elif kind == 4 and len(out) > 72 + 16:
        out[72 + src.integer(0, 15)] ^= 1 << src.integer(0, 7)  # the MIC
    else:
        del out[src.integer(0, len(out)):]
    return bytes(out)


def _der_length(src: Source, length: int) -> bytes:
    if src.integer(0, 5) == 0:  # a length that lies, long form with up to 4 bytes, or indefinite
        return choice(src, (b"\x84" + struct.pack(">I", value(src)), b"\x80", b"\x85\0\0\0\0\x01",
                             bytes([0x7F])))
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _der(src: Source, tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(src, len(content)) + content


def spnego_response(src: Source, token: bytes) -> bytes:
    """NegTokenResp ([RFC 4178] 4.2.2) carrying `token` as responseToken, lengths that may lie; or a
    NegTokenInit in its GSS wrapper ([RFC 2743] 3.1) naming NTLMSSP (1.3.6.1.4.1.311.2.2.10) or another mech."""
    mech = choice(src, (b"\x06\x0a\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a",  # NTLMSSP
                         b"\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02",  # Kerberos 5
                         b"\x06\x00", b"\x06\x7f" + src.raw(8)))
    if src.integer(0, 1):
        inner = _der(src, 0xA2, _der(src, 0x04, token))
        if src.integer(0, 2) == 0:
            inner = _der(src, 0xA1, mech) + inner  # supportedMech
        return _der(src, 0xA1, _der(src, 0x30, inner))
    init = _der(src, 0xA0, _der(src, 0x30, mech)) + _der(src, 0xA2, _der(src, 0x04, token))
    body = b"\x06\x06\x2b\x06\x01\x05\x05\x02" + _der(src, 0xA0, _der(src, 0x30, init))  # SPNEGO OID
    return _der(src, 0x60, body)
