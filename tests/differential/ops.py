"""Seeded sequences of ordinary SMB2 file operations over a tiny namespace ([MS-SMB2] 2.2.13-2.2.39).

A sequence works inside one fresh directory of the share, on the names "a", "b", "d" and "d\\x" (so "d" may
become a directory holding "x", or a file, and "d\\x" then fails with a path error), now and then on a deeper
"d\\e\\x" and on case variants ("A", "D\\X") of those names, through three handle slots spread over four
connections: two of the first user, one of a second user who shares the first user's group, one of a third
user who shares no group with either (USERS). Share modes, delete-pending and byte-range locks meet between
handles and sessions, and Unix permissions between users: a "chmod" step (done on disk as root, the same on
both servers, as an administrator would) gives the sequence's directory and its names the modes a Windows
client cannot choose. Hard links (FileLinkInformation) and extended attributes (FileFullEaInformation) are
made and read back. No oplocks or leases are asked for (their breaks would make the two servers' runs differ
in timing), every LOCK fails immediately instead of waiting, and no timestamps are set.

With streams=True (the --streams run, against a Samba with vfs_streams_xattr) CREATEs also name streams ("a:s",
"a:S:$DATA", "a::$DATA", "d:s", "d\\x:s": [MS-FSCC] 2.1.5.3), a rename of a stream handle goes to ":new",
":new:$DATA", "::$DATA" or now and then another file's stream, QUERY_INFO asks FileStreamInformation too, and a
write to a stream handle now and then reaches the 64 KiB an xattr holds. The generator knows which slots it
last opened as a stream (a slot's handle, when it has one, is always its last CREATE's) and never renames a file
handle to a stream name: Samba 4.17's smbd crashes on that (a segfault of its child, measured).

An Op names a slot, not a FileId: the runner keeps each slot's handle (and its connection) per server, so one
sequence replays identically against both. A CREATE into a busy slot closes the old handle first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

from tests import builders as b

NAMES = ("a", "b", "d", "d\\x")
# The sequence directory's mode to begin with, in three sequences of five (else it stays 0755).
SHARED_DIRECTORY_MODES = (0o775, 0o770, 0o777, 0o1777, 0o2775)
# Drawn in a quarter of the draws, so the four names above keep most of them.
DEEP_NAMES = ("d\\e", "d\\e\\x", "A", "D\\X", "d\\E\\X")
SLOTS = 3
# streams=True: a CREATE names one of these in two draws of five. "a::$DATA" is the file "a" itself.
STREAM_NAMES = ("a:s", "a:s", "a:S:$DATA", "a:t", "a::$DATA", "b:s", "d:s", "d\\x:s", "a:s:$DATA")
# Rename targets of a stream handle: a bare ":name" renames the stream, "::$DATA" moves it onto the file's data,
# a full path names another stream of the same file ("a:v") or of another file ("b:s", a Samba 4.17 bug moves it).
STREAM_TARGETS = (":s", ":t", ":T", ":u", ":u:$DATA", ":s", ":t")
STREAM_TARGETS_RARE = ("::$DATA", "a:v", "b:s")
FILE_STREAM_INFORMATION = 22
# The user each connection is logged on as: 0 the first user (twice), 1 the second (in the first user's group),
# 2 the third (in no group of theirs). CONNECTION_WEIGHTS keep most handles the first user's.
USERS = (0, 0, 1, 2)
CONNECTIONS = len(USERS)
CONNECTION_WEIGHTS = (35, 25, 20, 20)
# What the "chmod" step sets (on disk, as root): the directory's and the names' modes other users meet.
MODES = (0o755, 0o750, 0o700, 0o711, 0o770, 0o777, 0o1777, 0o644, 0o640, 0o600, 0o660, 0o666, 0o604, 0o444,
         0o000, 0o200, 0o744, 0o733)

FILE_ATTRIBUTE_HIDDEN = 0x2
FILE_ATTRIBUTE_SYSTEM = 0x4
FILE_ATTRIBUTE_ARCHIVE = 0x20

ACCESS_MASKS = (
    b.GENERIC_READ, b.GENERIC_WRITE, b.GENERIC_READ | b.GENERIC_WRITE, b.GENERIC_ALL, b.MAXIMUM_ALLOWED,
    b.FILE_READ_ATTRIBUTES, b.FILE_READ_ATTRIBUTES | b.FILE_WRITE_ATTRIBUTES, b.DELETE | b.FILE_READ_ATTRIBUTES,
    b.GENERIC_READ | b.DELETE, b.FILE_READ_DATA, b.FILE_WRITE_DATA | b.DELETE, b.FILE_APPEND_DATA,
    b.READ_CONTROL, b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
)
CREATE_ATTRIBUTES = (0, 0, b.FILE_ATTRIBUTE_NORMAL, b.FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_HIDDEN,
                     FILE_ATTRIBUTE_SYSTEM, FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM)
SET_ATTRIBUTES = (0, b.FILE_ATTRIBUTE_NORMAL, b.FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_HIDDEN,
                  FILE_ATTRIBUTE_ARCHIVE, b.FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_HIDDEN,
                  b.FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_SYSTEM | FILE_ATTRIBUTE_ARCHIVE)
# FileBasic, FileStandard, FileNetworkOpen, FileAttributeTag, and now and then FileAccess ([MS-FSCC] 2.4)
QUERY_CLASSES = (4, 5, 34, 35, 4, 5, 34, 35, 8, 8)
FILE_ACCESS_INFORMATION = 8
FILE_WRITE_EA = 0x10
# A CREATE asks for the maximal access (the MxAc context, [MS-SMB2] 2.2.13.2.5) in a third of the draws.
CREATE_MXAC = 1
FILE_EA_INFORMATION = 7
FILE_FULL_EA_INFORMATION = 15
# What an "ea" step sets: (EaName, EaValue) lists; an empty value removes the EA ([MS-FSCC] 2.4.15). The names
# differ in case on purpose: EA names are case-insensitive ([MS-FSCC] 2.4.15).
EA_LISTS = (((b"Alpha", b"1"),), ((b"beta", b"two"),), ((b"ALPHA", b"three"),), ((b"alpha", b""),),
            ((b"Alpha", b"1"), (b"Gamma", b"xyz")), ((b"beta", b""), (b"gamma", b"")))
LOCK_FLAGS = (b.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY,
              b.SMB2_LOCKFLAG_SHARED_LOCK | b.SMB2_LOCKFLAG_FAIL_IMMEDIATELY, b.SMB2_LOCKFLAG_UNLOCK)

# The first twelve kept their weights when chmod, link, ea and queryea came (9 of 113 draws go to those).
KINDS = ("create", "close", "write", "read", "rename", "disposition", "basic", "eof", "query", "querydir",
         "lock", "flush", "chmod", "link", "ea", "queryea")
WEIGHTS = (30, 7, 10, 8, 6, 7, 6, 5, 12, 5, 6, 2, 3, 3, 2, 1)


@dataclass(frozen=True)
class Op:
    """One step. Fields a kind does not use keep their defaults and are not shown."""

    kind: str
    slot: int = 0
    conn: int = 0  # create: the connection the slot's handle lives on
    name: str = ""  # create and chmod: the file ("" in chmod: the sequence's directory); rename, link: the target
    access: int = 0
    share: int = 0
    disposition: int = 0
    options: int = 0
    attributes: int = 0  # create and basic; chmod: the mode
    offset: int = 0  # write, read, lock, eof (the new size)
    length: int = 0  # read, lock
    data: bytes = b""  # write
    # rename, link: ReplaceIfExists; disposition: DeletePending; lock, querydir: flags; ea: index in EA_LISTS;
    # create: CREATE_MXAC, and above it 1 + the index in EA_LISTS of an ExtA context's EAs (0: none)
    flag: int = 0
    info_class: int = 0  # query, queryea
    pattern: str = ""  # querydir

    def describe(self) -> str:
        shown = [f"{field.name}={_shown(field.name, getattr(self, field.name))}"
                 for field in fields(self)[1:] if getattr(self, field.name) != field.default
                 or field.name == "slot" or (self.kind == "create" and field.name == "disposition")]
        return f"{self.kind}(" + ", ".join(shown) + ")"


def _shown(name: str, value: object) -> str:
    if isinstance(value, int) and name in ("access", "options", "attributes", "flag"):
        return hex(value)
    return repr(value)


def _name(rng: random.Random) -> str:
    return rng.choice(DEEP_NAMES) if rng.random() < 0.25 else rng.choice(NAMES)


def is_stream(name: str) -> bool:
    """Whether a CREATE of `name` opens a named stream ("a::$DATA" is the file's own data)."""
    return ":" in name and not name.lower().endswith("::$data")


def _create(rng: random.Random, streams: bool = False) -> Op:
    options = rng.choice((0, 0, b.FILE_DIRECTORY_FILE, b.FILE_NON_DIRECTORY_FILE))
    access = rng.choice(ACCESS_MASKS)
    if rng.random() < 0.15:
        options |= b.FILE_DELETE_ON_CLOSE
        if rng.random() < 0.8:  # without DELETE it ends at once (allowed.py): mostly ask for it
            access |= b.DELETE
    disposition = rng.choice((b.FILE_OPEN, b.FILE_OPEN, b.FILE_CREATE, b.FILE_OPEN_IF, b.FILE_OPEN_IF,
                              b.FILE_OVERWRITE, b.FILE_OVERWRITE_IF, b.FILE_SUPERSEDE))
    if options & b.FILE_DIRECTORY_FILE and rng.random() < 0.8:  # the others are refused at once: fewer of them
        disposition = rng.choice((b.FILE_OPEN, b.FILE_CREATE, b.FILE_OPEN_IF))
    share = rng.choice((b.FILE_SHARE_ALL, b.FILE_SHARE_ALL, rng.randrange(8)))
    attributes = rng.choice(CREATE_ATTRIBUTES)
    if options & b.FILE_DIRECTORY_FILE:
        # READONLY means nothing on a Windows directory and much on Samba's (allowed.py); a directory created
        # so would end or blur most sequences it appears in.
        attributes &= ~b.FILE_ATTRIBUTE_READONLY
    conn = rng.choices(range(CONNECTIONS), CONNECTION_WEIGHTS)[0]
    contexts = CREATE_MXAC if rng.random() < 0.3 else 0
    if rng.random() < 0.05:
        contexts |= (1 + rng.randrange(len(EA_LISTS))) << 1
        if rng.random() < 0.8:  # Samba 4.17 refuses EAs without it (allowed.py): mostly ask for it
            access |= FILE_WRITE_EA
    slot = rng.randrange(SLOTS)
    name = _name(rng)  # drawn after the slot, as before streams came
    if streams and rng.random() < 0.4:
        name = rng.choice(STREAM_NAMES)
    return Op("create", slot=slot, conn=conn, name=name, flag=contexts,
              access=access, share=share, disposition=disposition, options=options,
              attributes=attributes)


def random_op(rng: random.Random, streams: bool = False, stream_slots: frozenset[int] = frozenset()) -> Op:
    """One step; with `streams`, the stream steps for the slots in `stream_slots` (opened as streams)."""
    kind = rng.choices(KINDS, WEIGHTS)[0]
    slot = rng.randrange(SLOTS)
    if kind == "create":
        return _create(rng, streams)
    if streams and slot in stream_slots:
        if kind == "rename":
            targets = STREAM_TARGETS_RARE if rng.random() < 0.2 else STREAM_TARGETS
            return Op(kind, slot=slot, name=rng.choice(targets), flag=rng.randrange(2))
        if kind == "write" and rng.random() < 0.1:  # a stream holds 65,535 bytes (one xattr value)
            return Op(kind, slot=slot, offset=rng.choice((65530, 65535)), data=b"\x01" * rng.randint(1, 9))
    if streams and kind == "query" and rng.random() < 0.35:
        return Op(kind, slot=slot, info_class=FILE_STREAM_INFORMATION)
    if kind == "write":
        return Op(kind, slot=slot, offset=rng.choice((0, 0, 1, 5, 100)),
                  data=bytes(rng.randrange(256) for _ in range(rng.randint(1, 20))))
    if kind == "read":
        return Op(kind, slot=slot, offset=rng.choice((0, 0, 3, 50, 200)), length=rng.choice((0, 1, 10, 64)))
    if kind == "rename":
        return Op(kind, slot=slot, name=_name(rng), flag=rng.randrange(2))
    if kind == "link":
        return Op(kind, slot=slot, name=_name(rng), flag=rng.randrange(2))
    if kind == "chmod":
        return Op(kind, slot=0, name=rng.choice(("", "", "d", "d\\e") + NAMES), attributes=rng.choice(MODES))
    if kind == "ea":
        return Op(kind, slot=slot, flag=rng.randrange(len(EA_LISTS)))
    if kind == "queryea":
        return Op(kind, slot=slot, info_class=rng.choice((FILE_EA_INFORMATION, FILE_FULL_EA_INFORMATION)))
    if kind == "disposition":
        return Op(kind, slot=slot, flag=rng.choice((1, 1, 1, 0)))
    if kind == "basic":
        return Op(kind, slot=slot, attributes=rng.choice(SET_ATTRIBUTES))
    if kind == "eof":
        return Op(kind, slot=slot, offset=rng.choice((0, 3, 10, 100)))
    if kind == "query":
        return Op(kind, slot=slot, info_class=rng.choice(QUERY_CLASSES))
    if kind == "querydir":
        return Op(kind, slot=slot, pattern=rng.choice(("*", "*", "x", "a", "?")),
                  flag=rng.choice((0, b.SMB2_RESTART_SCANS)))
    if kind == "lock":
        return Op(kind, slot=slot, offset=rng.choice((0, 2, 10)), length=rng.choice((1, 5)),
                  flag=rng.choice(LOCK_FLAGS))
    return Op(kind, slot=slot)


def sequence(seed: int, length: int | None = None, streams: bool = False) -> list[Op]:
    """The sequence of one seed: 8-30 operations, a CREATE first so that something happens (after, in most, a
    chmod that lets the other users create in the sequence's directory). Without `streams` a seed draws what it
    always drew."""
    rng = random.Random(seed)
    count = length if length is not None else rng.randint(8, 30)
    if not streams:
        ops = [_create(rng)] + [random_op(rng) for _ in range(count - 1)]
    else:
        ops = [_create(rng, streams)]
        stream_slots = {ops[0].slot} if is_stream(ops[0].name) else set()
        for _ in range(count - 1):
            op = random_op(rng, streams, frozenset(stream_slots))
            if op.kind == "create":
                (stream_slots.add if is_stream(op.name) else stream_slots.discard)(op.slot)
            ops.append(op)
    if rng.random() < 0.6:
        # The other users may create in the sequence's directory too (its group, or everyone), so that their
        # files meet the first user's: drawn last, the operations above are those the seed always had.
        ops.insert(0, Op("chmod", name="", attributes=rng.choice(SHARED_DIRECTORY_MODES)))
    return ops
