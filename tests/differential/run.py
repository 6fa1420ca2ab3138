"""Run the same random operation sequences against Samba 4.17 and smbsrv and report where the answers differ.

    python -m tests.differential.run --sequences 2000 --seed 1        # as root: both servers, one new account
    python -m tests.differential.run --streams --sequences 2000 --seed 1   # named streams too (ops.py)

Both servers run as root serving the same three non-root Unix accounts (ops.USERS): a fresh first account
(tests/smbtorture/compare.py's unix_account), a second one in the first one's group and a third in no group
of theirs (other_accounts), each SMB user acting as the account of its name, each server from its own share
directory with Samba's default create and directory masks (0744, 0755) on both. Every sequence
(tests/differential/ops.py) gets a new directory in both shares, made on disk and owned by the first account;
the runner replays it step by step on four connections per server and records per step the NTSTATUS and what
a client may rely on of the answer (create action, attributes, sizes, link count, delete-pending, directory
flag, granted access, EAs, data read, names listed), never timestamps, file ids or allocation sizes. After
the last step every handle still open is closed and the directory's contents on disk (names, types, owners,
modes, link counts, sizes, data) are recorded too.

The first step where the two records differ ends the comparison of a sequence (the servers' states may part
from there). A difference on tests/differential/allowed.py's list is counted as allowed; any other is
minimised (steps dropped while the same difference remains) and printed with the operations that reproduce it.
Exit status 0 when no difference outside the list was found.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.servers import HOST, SHARE_NAME, SambaServer, SmbsrvServer
from smbsrv.wire.status import NtStatus
from tests import builders as b
from tests.differential import allowed
from tests.differential.ops import (
    CREATE_MXAC,
    EA_LISTS,
    FILE_ACCESS_INFORMATION,
    FILE_EA_INFORMATION,
    FILE_STREAM_INFORMATION,
    USERS,
    Op,
    sequence,
)

PASSWORD = "Differential-1"
# Samba's share in every run: streams in xattrs, the layout smbsrv keeps them in (docs/streams.md).
STREAMS_SAMBA_LINES = ("vfs objects = streams_xattr",)
Record = tuple  # (label, status, (("field", value), ...))


def status_text(status: int) -> str:
    try:
        return NtStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


@dataclass
class Side:
    """One server as the runner drives it: a logged-on connection per entry of ops.USERS (users[i] is user i)
    and the share directory on disk."""

    name: str
    port: int
    users: tuple[str, ...]
    password: str
    share_dir: Path
    owner: tuple[int, int] | None
    log_path: Path | None = None
    clients: list[b.Client] = field(default_factory=list)

    def connect(self) -> None:
        self.disconnect()
        self.clients = [b.connect(HOST, self.port, self.users[user], self.password, SHARE_NAME, sign=True)
                        for user in USERS]

    def disconnect(self) -> None:
        for client in self.clients:
            client.close()
        self.clients = []

    def fresh_directory(self, base: str) -> Path:
        path = self.share_dir / base
        path.mkdir(mode=0o755)
        path.chmod(0o755)
        if self.owner is not None:
            os.chown(path, *self.owner)
        return path


class Dropped(Exception):
    """A server closed a connection or did not answer in time: recorded as the step's result."""


# -- one step ---------------------------------------------------------------------------------------------

def _request(client: b.Client, command: int, body: bytes) -> b.Response:
    try:
        return client.request(command, body)
    except (b.ConnectionDropped, OSError) as exc:  # TimeoutError is an OSError
        raise Dropped(type(exc).__name__) from exc


def _create_detail(body: bytes) -> tuple:
    """CreateAction@4, EndofFile@48, FileAttributes@56 ([MS-SMB2] 2.2.14)."""
    (action,) = struct.unpack_from("<I", body, 4)
    (eof,) = struct.unpack_from("<Q", body, 48)
    (attributes,) = struct.unpack_from("<I", body, 56)
    return (("action", action), ("attributes", hex(attributes)), ("eof", eof))


def _create_contexts(flag: int) -> bytes:
    """The MxAc request ([MS-SMB2] 2.2.13.2.5, no timestamp) and an ExtA context ([MS-SMB2] 2.2.13.2.1) the
    create's flag asks for."""
    contexts = []
    if flag & CREATE_MXAC:
        contexts.append(b.create_context(b"MxAc", b""))
    if flag >> 1:
        contexts.append(b.create_context(b"ExtA", b.full_ea_list(EA_LISTS[(flag >> 1) - 1])))
    return b.chain_contexts(*contexts) if contexts else b""


def _maximal_access(body: bytes) -> tuple:
    """The MxAc response's QueryStatus and MaximalAccess ([MS-SMB2] 2.2.14.2.5), when there is one:
    CreateContextsOffset@80 and Length@84 count from the header."""
    offset, length = struct.unpack_from("<II", body, 80)
    position, end = offset - b.HEADER_SIZE, offset - b.HEADER_SIZE + length
    while length and position < end:
        next_offset, name_offset, name_length, _, data_offset, data_length = struct.unpack_from(
            "<IHHHHI", body, position)
        if body[position + name_offset:position + name_offset + name_length] == b"MxAc" and data_length >= 8:
            status, maximal = struct.unpack_from("<II", body, position + data_offset)
            return (("mxac", f"{status_text(status)} {maximal:#x}"),)
        if not next_offset:
            break
        position += next_offset
    return ()


def _query_detail(info_class: int, data: bytes) -> tuple:
    """The parts of [MS-FSCC] 2.4.7, 2.4.41, 2.4.29 and 2.4.6 that are not times, ids or allocation."""
    if info_class == 4:  # FileBasicInformation: FileAttributes@32
        return (("attributes", hex(struct.unpack_from("<I", data, 32)[0])),)
    if info_class == 5:  # FileStandardInformation: EndOfFile@8, NumberOfLinks@16, DeletePending@20, Directory@21
        eof, links = struct.unpack_from("<QI", data, 8)
        return (("eof", eof), ("links", links), ("delete_pending", data[20]), ("directory", data[21]))
    if info_class == 34:  # FileNetworkOpenInformation: EndOfFile@40, FileAttributes@48
        return (("eof", struct.unpack_from("<Q", data, 40)[0]),
                ("attributes", hex(struct.unpack_from("<I", data, 48)[0])))
    if info_class == 35:  # FileAttributeTagInformation: FileAttributes@0, ReparseTag@4
        attributes, tag = struct.unpack_from("<II", data, 0)
        return (("attributes", hex(attributes)), ("tag", hex(tag)))
    if info_class == FILE_ACCESS_INFORMATION:  # AccessFlags@0 ([MS-FSCC] 2.4.1): what the open was granted
        return (("granted", hex(struct.unpack_from("<I", data, 0)[0])),)
    raise ValueError(info_class)


FILE_FULL_EA_INFORMATION = 15


def _streams_detail(data: bytes) -> tuple:
    """FileStreamInformation ([MS-FSCC] 2.4.43) as a set of (StreamName, StreamSize): Samba 4.17 lists the named
    streams first and "::$DATA" last, smbsrv "::$DATA" first as NTFS does (docs/streams.md), and allocation
    sizes are the file system's."""
    entries = []
    position = 0
    while position + 24 <= len(data):
        next_offset, name_length, size = struct.unpack_from("<IIq", data, position)
        entries.append((data[position + 24:position + 24 + name_length].decode("utf-16-le", "replace"), size))
        if not next_offset:
            break
        position += next_offset
    return (("streams", tuple(sorted(entries))),)


def _ea_detail(info_class: int, data: bytes) -> tuple:
    """FileEaInformation's EaSize, or the FileFullEaInformation entries as (flags, name, value), sorted."""
    if info_class == FILE_EA_INFORMATION:
        return (("ea_size", struct.unpack_from("<I", data, 0)[0]),)
    entries = []
    position = 0
    while position < len(data):
        next_offset, flags, name_length, value_length = b.FULL_EA_HEADER.unpack_from(data, position)
        name = data[position + 8:position + 8 + name_length].decode("ascii", "replace")
        value = data[position + 9 + name_length:position + 9 + name_length + value_length].hex()
        entries.append((flags, name, value))
        if not next_offset:
            break
        position += next_offset
    return (("eas", tuple(sorted(entries))),)


def _directory_detail(buffer: bytes) -> tuple:
    """FileDirectoryInformation entries ([MS-FSCC] 2.4.10), sorted: name, attributes, and EndOfFile of files."""
    entries = []
    position = 0
    while buffer:
        (next_offset,) = struct.unpack_from("<I", buffer, position)
        (eof,) = struct.unpack_from("<Q", buffer, position + 40)
        attributes, name_length = struct.unpack_from("<II", buffer, position + 56)
        name = buffer[position + 64:position + 64 + name_length].decode("utf-16-le")
        directory = attributes & b.FILE_ATTRIBUTE_DIRECTORY
        entries.append((name, hex(attributes), 0 if directory else eof))
        if not next_offset:
            break
        position += next_offset
    return (("entries", tuple(sorted(entries))),)


def _set_info(client: b.Client, file_id: tuple[int, int], info_class: int, buffer: bytes) -> b.Response:
    return _request(client, b.SMB2_SET_INFO, b.set_info_body(file_id, b.SMB2_0_INFO_FILE, info_class, buffer))


def step(side: Side, slots: dict[int, tuple[b.Client, tuple[int, int]]], op: Op, base: str) -> Record:
    """Carry out one operation; its record."""
    if op.kind == "create":
        before = ()
        if op.slot in slots:
            client, file_id = slots.pop(op.slot)
            before = (("closed_first", status_text(_request(client, b.SMB2_CLOSE, b.close_body(file_id)).status)),)
        # What the name is on disk before the CREATE: allowed.py's conditions need it, and equal runs agree.
        before += (("target", _kind_on_disk(side.share_dir / base, op.name)),)
        client = side.clients[op.conn]
        body = b.create_body(f"{base}\\{op.name}", desired_access=op.access, disposition=op.disposition,
                             options=op.options, share_access=op.share, file_attributes=op.attributes,
                             contexts=_create_contexts(op.flag))
        response = _request(client, b.SMB2_CREATE, body)
        if response.status != b.STATUS_SUCCESS:
            return (op.kind, status_text(response.status), before)
        slots[op.slot] = (client, b.create_file_id(response.body))
        return (op.kind, "STATUS_SUCCESS", before + _create_detail(response.body) + _maximal_access(response.body))
    if op.kind == "chmod":
        # An administrator's chmod on the server, not an SMB request: the same on both disks.
        path = side.share_dir / base / op.name.replace("\\", "/")
        try:
            os.chmod(path, op.attributes, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return (op.kind, "none", ())
        return (op.kind, "done", ())
    if op.slot not in slots:
        return (op.kind, "no-handle", ())
    client, file_id = slots[op.slot]
    detail: tuple = ()
    if op.kind == "close":
        del slots[op.slot]
        response = _request(client, b.SMB2_CLOSE, b.close_body(file_id))
    elif op.kind == "write":
        response = _request(client, b.SMB2_WRITE, b.write_body(file_id, op.offset, op.data))
        if response.status == b.STATUS_SUCCESS:
            detail = (("count", struct.unpack_from("<I", response.body, 4)[0]),)
    elif op.kind == "read":
        response = _request(client, b.SMB2_READ, b.read_body(file_id, op.offset, op.length))
        if response.status == b.STATUS_SUCCESS:
            detail = (("data", b.read_data(response).hex()),)
    elif op.kind == "rename":
        # ":new" renames a stream within its file ([MS-FSCC] 2.4.42.2): no directory in front.
        target = op.name if op.name.startswith(":") else f"{base}\\{op.name}"
        response = _set_info(client, file_id, b.FILE_RENAME_INFORMATION, b.rename_info(target, bool(op.flag)))
    elif op.kind == "link":
        # FileLinkInformation has FileRenameInformation's SMB2 layout ([MS-FSCC] 2.4.21.2).
        response = _set_info(client, file_id, b.FILE_LINK_INFORMATION,
                             b.rename_info(f"{base}\\{op.name}", bool(op.flag)))
    elif op.kind == "ea":
        response = _set_info(client, file_id, FILE_FULL_EA_INFORMATION, b.full_ea_list(EA_LISTS[op.flag]))
    elif op.kind == "queryea":
        response = _request(client, b.SMB2_QUERY_INFO,
                            b.query_info_body(file_id, b.SMB2_0_INFO_FILE, op.info_class, output_length=4096))
        if response.status == b.STATUS_SUCCESS:
            detail = _ea_detail(op.info_class, b.output_buffer(response))
    elif op.kind == "disposition":
        response = _set_info(client, file_id, b.FILE_DISPOSITION_INFORMATION, b.disposition_info(bool(op.flag)))
    elif op.kind == "basic":
        # Zero times leave them as they are ([MS-FSCC] 2.4.7); only FileAttributes changes.
        response = _set_info(client, file_id, b.FILE_BASIC_INFORMATION, bytes(32) + struct.pack("<II", op.attributes, 0))
    elif op.kind == "eof":
        response = _set_info(client, file_id, b.FILE_END_OF_FILE_INFORMATION, struct.pack("<Q", op.offset))
    elif op.kind == "query":
        response = _request(client, b.SMB2_QUERY_INFO,
                            b.query_info_body(file_id, b.SMB2_0_INFO_FILE, op.info_class, output_length=4096))
        if response.status == b.STATUS_SUCCESS and op.info_class == FILE_STREAM_INFORMATION:
            detail = _streams_detail(b.output_buffer(response))
        elif response.status == b.STATUS_SUCCESS:
            detail = _query_detail(op.info_class, b.output_buffer(response))
    elif op.kind == "querydir":
        response = _request(client, b.SMB2_QUERY_DIRECTORY,
                            b.query_directory_body(file_id, op.pattern, info_class=b.FILE_DIRECTORY_INFORMATION,
                                                   flags=op.flag))
        if response.status == b.STATUS_SUCCESS:
            detail = _directory_detail(b.output_buffer(response))
    elif op.kind == "lock":
        response = _request(client, b.SMB2_LOCK, b.lock_body(file_id, [(op.offset, op.length, op.flag)]))
    elif op.kind == "flush":
        response = _request(client, b.SMB2_FLUSH, b.flush_body(file_id))
    else:
        raise ValueError(op.kind)
    return (op.kind, status_text(response.status), detail)


def _kind_on_disk(directory: Path, name: str) -> str:
    """What `name` (backslashes between components) names below `directory`, each component matched ignoring
    case as both servers match it; "none" when nothing does. A stream name ("a:s", "a:s:$DATA") is "stream"
    when the stream exists and "no-stream" when only its file or directory does; "a::$DATA" is "a"."""
    name, _, stream = name.partition(":")
    if stream.upper().endswith(":$DATA"):
        stream = stream[:-len(":$DATA")]
    path = directory
    for component in name.split("\\"):
        try:
            matches = sorted(entry for entry in os.listdir(path) if entry.upper() == component.upper())
        except (FileNotFoundError, NotADirectoryError):
            return "none"
        if not matches:
            return "none"
        path = path / (component if component in matches else matches[0])
    if stream:
        return "stream" if any(key.upper() == stream.upper() for key, _ in _streams_on_disk(path)) else "no-stream"
    return "dir" if stat.S_ISDIR(path.lstat().st_mode) else "file"


STREAM_XATTR_PREFIX, STREAM_XATTR_SUFFIX = "user.DosStream.", ":$DATA"


def _streams_on_disk(path: Path) -> tuple:
    """The streams vfs_streams_xattr's layout keeps in `path`'s xattrs (docs/streams.md): (name, value hex),
    the value with its trailing 0 byte, sorted."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    found = []
    for key in names:
        if key.startswith(STREAM_XATTR_PREFIX):
            try:
                value = os.getxattr(path, key, follow_symlinks=False)
            except OSError:
                continue
            found.append((key[len(STREAM_XATTR_PREFIX):].removesuffix(STREAM_XATTR_SUFFIX), value.hex()))
    return tuple(sorted(found))


def disk_contents(root: Path) -> tuple:
    """Every name below `root` with its type, owner, permission bits, and for files the link count, size and
    data, and the streams kept in its xattrs when it has any. The owner is a uid: both servers serve the same
    accounts."""
    entries = []
    for directory, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(directory) / name
            st = path.lstat()
            kind = "dir" if path.is_dir() and not path.is_symlink() else "file" if path.is_file() else "other"
            data = path.read_bytes().hex() if kind == "file" else ""
            entry = (str(path.relative_to(root)), kind, st.st_uid, oct(st.st_mode & 0o7777),
                     st.st_nlink if kind == "file" else 0, st.st_size if data else 0, data)
            streams = _streams_on_disk(path) if kind != "other" else ()
            entries.append(entry + (streams,) if streams else entry)
    return tuple(sorted(entries))


def execute(side: Side, ops: list[Op], base: str) -> list[Record]:
    """The records of one sequence on one server, ending with the closes of what stayed open and the disk."""
    if not side.clients:
        side.connect()
    directory = side.fresh_directory(base)
    slots: dict[int, tuple[b.Client, tuple[int, int]]] = {}
    records: list[Record] = []
    try:
        for op in ops:
            records.append(step(side, slots, op, base))
        for slot in sorted(slots):
            client, file_id = slots.pop(slot)
            response = _request(client, b.SMB2_CLOSE, b.close_body(file_id))
            records.append(("final-close", status_text(response.status), (("slot", slot),)))
    except Dropped as exc:
        records.append(("dropped", str(exc), ()))
        side.disconnect()  # the next sequence logs on again
    records.append(("disk", "", (("contents", disk_contents(directory)),)))
    # The directory stays until the run ends: removed now, its inode would come back as a later sequence's
    # directory, and Samba 4.17 keeps the real-case spellings of names per directory inode (its
    # GETREALFILENAME_CACHE, source3/smbd/files.c): a later "a" would be created as an earlier sequence's "A".
    return records


# -- comparing ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Difference:
    index: int
    op: Op | None  # None for the records after the operations (final closes, disk contents)
    samba: Record
    smbsrv: Record

    @property
    def signature(self) -> tuple:
        """What kind of difference this is: the step's kind and both statuses, and the first differing field
        when the statuses agree. Two differences with one signature are one finding."""
        label, samba_status, samba_detail = self.samba
        _, smbsrv_status, smbsrv_detail = self.smbsrv
        if samba_status != smbsrv_status or label != self.smbsrv[0]:
            return (label, samba_status, self.smbsrv[0], smbsrv_status)
        samba_fields, smbsrv_fields = dict(samba_detail), dict(smbsrv_detail)
        differing = sorted(key for key in samba_fields.keys() | smbsrv_fields.keys()
                           if samba_fields.get(key) != smbsrv_fields.get(key))
        return (label, samba_status, smbsrv_status, tuple(differing))


    def context(self, ops: list[Op], samba: list[Record]) -> allowed.Context:
        """The difference as allowed.py's conditions see it: with the CREATE that opened the step's handle."""
        handle_op = handle_record = None
        if self.op is not None and self.op.kind != "create":
            for index in reversed(range(self.index)):
                if ops[index].kind == "create" and ops[index].slot == self.op.slot:
                    handle_op, handle_record = ops[index], samba[index]
                    break
        return allowed.Context(self.op, handle_op, handle_record, self.samba, self.smbsrv, tuple(ops[:self.index]),
                               tuple(samba[:self.index]))


def first_difference(ops: list[Op], samba: list[Record], smbsrv: list[Record], start: int = 0) -> Difference | None:
    for index, (left, right) in enumerate(zip(samba, smbsrv, strict=False)):
        if index >= start and left != right:
            return Difference(index, ops[index] if index < len(ops) else None, left, right)
    if len(samba) != len(smbsrv):
        index = min(len(samba), len(smbsrv))
        missing = ("(none)", "", ())
        return Difference(index, None, samba[index] if index < len(samba) else missing,
                          smbsrv[index] if index < len(smbsrv) else missing)
    return None


def _both_refused(difference: Difference) -> bool:
    """An operation both servers refused (with different statuses) changed nothing on either."""
    samba, smbsrv = difference.samba, difference.smbsrv
    if samba[0] != smbsrv[0] or samba[0] in ("close", "final-close", "disk", "dropped", "(none)"):
        return False
    if samba[0] == "chmod":
        return False  # "done" on one side and "none" on the other: one disk changed
    if samba[0] == "eof" or {samba[1], smbsrv[1]} & {"STATUS_NO_MEMORY", "STATUS_INVALID_HANDLE"}:
        # Samba 4.17's handle is not itself after these (its later CLOSE fails, its connection may drop).
        return False
    op = difference.op
    if op is not None and op.kind == "create" and op.disposition in (b.FILE_SUPERSEDE, b.FILE_OVERWRITE,
                                                                     b.FILE_OVERWRITE_IF):
        # Samba 4.17 may have truncated the file before refusing the open (CANNOT_DELETE after the overwrite).
        return False
    if op is not None and op.kind == "link" and op.flag and samba[1] == "STATUS_OBJECT_NAME_COLLISION":
        # Samba 4.17 may have removed the open target before it gave up (allowed.py).
        return False
    if op is not None and op.kind == "query" and op.info_class == FILE_STREAM_INFORMATION:
        return True  # a query changes nothing on either server, whatever it answered
    if "STATUS_SUCCESS" in (samba[1], smbsrv[1]):
        return False
    return dict(samba[2]).get("closed_first") == dict(smbsrv[2]).get("closed_first")


@dataclass
class Runner:
    samba: Side
    smbsrv: Side
    counter: int = 0
    last_context: allowed.Context | None = None  # of the last difference compare() found
    passed: list[str] = field(default_factory=list)  # allowed differences compare() went past
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(2))
    streams: bool = False  # draw the stream steps too (ops.sequence); Samba runs with vfs_streams_xattr

    def compare(self, ops: list[Op]) -> Difference | None:
        """Run `ops` on both servers at once (each in a new directory) and return their first difference."""
        self.counter += 1
        base = f"q{self.counter}"
        samba = self.pool.submit(execute, self.samba, ops, base)
        smbsrv = self.pool.submit(execute, self.smbsrv, ops, base)
        samba_records, smbsrv_records = samba.result(), smbsrv.result()
        self.passed = []
        start = 0
        while True:
            difference = first_difference(ops, samba_records, smbsrv_records, start)
            if difference is None:
                return None
            context = difference.context(ops, samba_records)
            reason = allowed.reason(context)
            if reason is not None and _both_refused(difference):
                # Nothing changed on either server: the sequence goes on comparing.
                self.passed.append(reason)
                start = difference.index + 1
                continue
            self.last_context = context
            return difference

    def minimise(self, ops: list[Op], difference: Difference) -> tuple[list[Op], Difference]:
        """Drop steps (last first) while the same kind of difference remains; steps after it go at once."""
        ops = ops[:difference.index + 1]
        changed = True
        while changed:
            changed = False
            for index in reversed(range(len(ops))):
                candidate = ops[:index] + ops[index + 1:]
                found = self.compare(candidate) if candidate else None
                if found is not None and found.signature == difference.signature:
                    ops, difference, changed = candidate[:found.index + 1], found, True
        return ops, difference

    def close(self) -> None:
        self.pool.shutdown()
        self.samba.disconnect()
        self.smbsrv.disconnect()


@dataclass
class Report:
    sequences: int = 0
    steps: int = 0
    allowed: dict[str, int] = field(default_factory=dict)  # sequences that ended on an allowed difference
    passed: dict[str, int] = field(default_factory=dict)  # allowed differences both servers refused, passed over
    findings: dict[tuple, tuple[int, list[Op], Difference]] = field(default_factory=dict)
    counts: dict[tuple, int] = field(default_factory=dict)


def run_sequences(runner: Runner, seeds: range, minimise: bool = True, progress: bool = False) -> Report:
    report = Report()
    for seed in seeds:
        ops = sequence(seed, streams=runner.streams)
        report.sequences += 1
        report.steps += len(ops)
        difference = runner.compare(ops)
        for reason in runner.passed:
            report.passed[reason] = report.passed.get(reason, 0) + 1
        if difference is None:
            continue
        assert runner.last_context is not None
        reason = allowed.reason(runner.last_context)
        if reason is not None:
            report.allowed[reason] = report.allowed.get(reason, 0) + 1
            continue
        signature = difference.signature
        report.counts[signature] = report.counts.get(signature, 0) + 1
        if signature not in report.findings:
            shown = runner.minimise(ops, difference) if minimise else (ops[:difference.index + 1], difference)
            report.findings[signature] = (seed, *shown)
            if progress:
                print(describe_finding(signature, report), file=sys.stderr, flush=True)
        if progress and report.sequences % 100 == 0:
            print(f"{report.sequences} sequences, {len(report.findings)} findings", file=sys.stderr, flush=True)
    return report


def describe_finding(signature: tuple, report: Report) -> str:
    seed, ops, difference = report.findings[signature]
    lines = [f"DIFFERENCE {signature} (seen {report.counts[signature]}x, first in seed {seed}); reproduces with:"]
    lines += [f"  {index}: {op.describe()}" for index, op in enumerate(ops)]
    lines.append(f"  samba:  {difference.samba}")
    lines.append(f"  smbsrv: {difference.smbsrv}")
    return "\n".join(lines)


def summary(report: Report) -> str:
    lines = [(f"{report.sequences} sequences, {report.steps} operations, "
              f"{len(report.findings)} distinct differences not allowed, "
              f"{sum(report.allowed.values())} sequences ended on an allowed difference")]
    reasons = sorted(report.allowed.keys() | report.passed.keys())
    lines += [f"  allowed {report.allowed.get(reason, 0)}x ended, {report.passed.get(reason, 0)}x passed: {reason}"
              for reason in reasons]
    lines += [describe_finding(signature, report) for signature in report.findings]
    return "\n".join(lines)


# -- the two servers ----------------------------------------------------------------------------------------

@contextmanager
def other_accounts(first: str) -> Iterator[tuple[str, str]]:
    """The second and third users' Unix accounts, made for this block: the second a member of the first
    account's primary group, the third in no group of theirs (each has a group of its own)."""
    for entry in pwd.getpwall():  # accounts left by runs killed before their end (the pid is gone)
        match = re.fullmatch(r"smbsrv_d[gs](\d+)", entry.pw_name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            subprocess.run(["userdel", entry.pw_name], capture_output=True, check=False)
    group = grp.getgrgid(pwd.getpwnam(first).pw_gid).gr_name
    names = (f"smbsrv_dg{os.getpid()}", f"smbsrv_ds{os.getpid()}")
    made = []
    try:
        for name, groups in zip(names, (["--groups", group], []), strict=True):
            subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", "--shell",
                            "/usr/sbin/nologin", *groups, name], check=True, capture_output=True)
            made.append(name)
        yield names
    finally:
        for name in made:
            subprocess.run(["userdel", name], capture_output=True, check=False)


@contextmanager
def servers(account: str, owner: tuple[int, int] | None, samba_share_lines: tuple[str, ...] = (),
            smbsrv_args: str = "") -> Iterator[Runner]:
    """Samba and smbsrv, each serving its own new share directory to `account` and the two other_accounts (SMB
    users of the same names). `samba_share_lines` go into Samba's share section (SambaServer), `smbsrv_args`
    onto smbsrv's command line."""
    with tempfile.TemporaryDirectory(prefix="differential-") as tmp, other_accounts(account) as others:
        users = (account, *others)
        top = Path(tmp)
        top.chmod(0o755)  # both servers reach the shares as the accounts
        started: list = []
        try:
            sides = []
            for kind in ("samba", "smbsrv"):
                share, workdir = top / f"share-{kind}", top / f"work-{kind}"
                share.mkdir(mode=0o755)
                workdir.mkdir()
                if owner is not None:
                    os.chown(share, *owner)
                extra = " ".join(f"--user {name}:{PASSWORD}" for name in others)
                server = (SambaServer(workdir, share, account, PASSWORD, False, share_lines=samba_share_lines)
                          if kind == "samba" else
                          SmbsrvServer(workdir, share, account, PASSWORD, False,
                                       server_args=f"--signing desired {extra} {smbsrv_args}"))
                server.start()
                started.append(server)
                if kind == "samba":
                    for name in others:
                        subprocess.run(["smbpasswd", "-a", "-s", "-c", str(workdir / "smb.conf"), name],
                                       input=f"{PASSWORD}\n{PASSWORD}\n".encode(), check=True,
                                       capture_output=True)
                sides.append(Side(kind, server.port, users, PASSWORD, share, owner, server.log_path))
            runner = Runner(*sides)
            try:
                yield runner
            finally:
                runner.close()
            for marker in ("Traceback (most recent call last)", "internal error"):
                assert marker not in started[1].log_path.read_text(errors="replace"), f"smbsrv logged {marker!r}"
        finally:
            for server in started:
                server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1, help="first seed; sequence i uses seed + i")
    parser.add_argument("--no-minimise", action="store_true")
    parser.add_argument("--show", action="store_true", help="print each sequence's operations and both records")
    parser.add_argument("--streams", action="store_true", help="named-stream steps in the sequences too")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run it as root: both servers run as root and act as a new Unix account", file=sys.stderr)
        return 2
    if shutil.which("smbd") is None:
        print("smbd is not installed (apt-get install samba)", file=sys.stderr)
        return 2
    from tests.smbtorture.compare import unix_account

    started = time.monotonic()
    # Samba keeps streams in xattrs in every run: without stream steps it answers as without the module (seeds
    # 1-12000 measured the same), and smbsrv has streams on by default.
    with unix_account() as account, servers(account, _ids(account), samba_share_lines=STREAMS_SAMBA_LINES) as runner:
        runner.streams = args.streams
        seeds = range(args.seed, args.seed + args.sequences)
        if args.show:
            for seed in seeds:
                show(runner, seed)
            return 0
        report = run_sequences(runner, seeds, minimise=not args.no_minimise, progress=True)
    print(summary(report))
    print(f"wall {time.monotonic() - started:.1f} s")
    return 1 if report.findings else 0


def show(runner: Runner, seed: int) -> None:
    ops = sequence(seed, streams=runner.streams)
    runner.counter += 1
    base = f"q{runner.counter}"
    samba, smbsrv = execute(runner.samba, ops, base), execute(runner.smbsrv, ops, base)
    print(f"seed {seed}")
    for index, (left, right) in enumerate(zip(samba, smbsrv, strict=False)):
        op = ops[index].describe() if index < len(ops) else ""
        print(f"  {index}: {op}\n      samba:  {left}" + ("" if left == right else f"\n      smbsrv: {right}"))


def _ids(account: str) -> tuple[int, int]:
    entry = pwd.getpwnam(account)
    return entry.pw_uid, entry.pw_gid


if __name__ == "__main__":
    sys.exit(main())
