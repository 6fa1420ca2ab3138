"""The named-stream differences the --streams run accepts (allowed.py's rules, for stream steps), each with its
reason. Samba 4.17 with vfs_streams_xattr is the yardstick; what it does with streams is measured in
test_named_streams.py and summed up in docs/streams.md ("Compared with Samba").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests import builders as b
from tests.differential.ops import FILE_STREAM_INFORMATION, USERS, is_stream

if TYPE_CHECKING:
    from tests.differential.allowed import Allowed, Context

_OVERWRITES = (b.FILE_SUPERSEDE, b.FILE_OVERWRITE, b.FILE_OVERWRITE_IF)


def base_of(name: str) -> str:
    """The file a (stream) name belongs to, lower case: "a:s" and "A::$DATA" are "a"."""
    return name.partition(":")[0].lower()


def on_stream_handle(c: Context) -> bool:
    """The step's handle was opened as a named stream."""
    return c.handle_op is not None and is_stream(c.handle_op.name)


def on_stream_named_handle(c: Context) -> bool:
    """The step's handle was opened by a name with a stream part, "a::$DATA" (the file itself) included."""
    return c.handle_op is not None and ":" in c.handle_op.name


def _stream_query(c: Context) -> bool:
    return c.op is not None and c.op.info_class == FILE_STREAM_INFORMATION and on_stream_named_handle(c)


def _open_after_stream_rename(c: Context) -> bool:
    """An open of a file or of one of its streams after a stream of it was renamed."""
    return c.op is not None and any(op.kind == "rename" and op.name.startswith(":") for op in c.history)


def _disk_differs_in_streams(c: Context) -> bool:
    if c.samba[0] != "disk" or not any(op.kind in ("chmod", "link") for op in c.history):
        return False
    samba, smbsrv = dict(c.samba[2])["contents"], dict(c.smbsrv[2])["contents"]
    return samba != smbsrv and len(samba) == len(smbsrv) and all(
        left[:7] == right[:7] for left, right in zip(samba, smbsrv, strict=True))


def _file_open_after_stream_open(c: Context) -> bool:
    return c.op is not None and not is_stream(c.op.name) and _stream_of_base_opened_before(c)


def _file_create_after_stream_open(c: Context) -> bool:
    return _file_open_after_stream_open(c) and c.op is not None and c.op.disposition == b.FILE_CREATE


def _stream_create(c: Context) -> bool:
    return c.op is not None and is_stream(c.op.name) and c.op.disposition == b.FILE_CREATE


def _file_rename_with_open_stream(c: Context) -> bool:
    name = c.handle_op.name if c.handle_op is not None else ""
    return (c.op is not None and c.handle_op is not None and not is_stream(name) and ":" not in c.op.name
            and any(op.kind == "create" and is_stream(op.name) and base_of(op.name) == base_of(name)
                    for op in c.history))


def _link_of_default_stream_handle(c: Context) -> bool:
    return on_stream_named_handle(c) and not on_stream_handle(c)


def _stream_create_with_eas(c: Context) -> bool:
    return c.op is not None and is_stream(c.op.name) and bool(c.op.flag >> 1)


def _rename_onto_default_stream(c: Context) -> bool:
    return c.op is not None and on_stream_handle(c) and c.op.name.upper() == "::$DATA"


def _rename_to_other_path(c: Context) -> bool:
    """A stream handle renamed to "file:stream" (a path, not ":stream")."""
    return c.op is not None and on_stream_handle(c) and not c.op.name.startswith(":")


def _stream_rename_below_directory_open_with_delete(c: Context) -> bool:
    """A stream of "d\\x" renamed while "d" was opened with DELETE (or a right that holds it) before."""
    if c.op is None or c.handle_op is None or not on_stream_handle(c) or "\\" not in c.handle_op.name:
        return False
    parent = c.handle_op.name.rsplit("\\", 1)[0].lower()
    return any(op.kind == "create" and op.name.lower() == parent
               and op.access & (b.DELETE | b.GENERIC_ALL | b.MAXIMUM_ALLOWED) for op in c.history)


def _stream_rename_case_only(c: Context) -> bool:
    """A stream renamed without ReplaceIfExists to a name a stream of the file had in another case."""
    if c.op is None or c.op.flag or not on_stream_handle(c) or not c.op.name.startswith(":"):
        return False
    wanted = c.op.name[1:].upper().removesuffix(":$DATA")
    assert c.handle_op is not None
    base = base_of(c.handle_op.name)
    for op in c.history:
        if op.kind == "create" and is_stream(op.name) and base_of(op.name) == base:
            stream = op.name.split(":")[1]
            if stream.upper() == wanted and stream != c.op.name[1:].removesuffix(":$DATA"):
                return True
        if op.kind == "rename" and op.name.startswith(":"):
            stream = op.name[1:].removesuffix(":$DATA")
            if stream.upper() == wanted and stream != c.op.name[1:].removesuffix(":$DATA"):
                return True
    return False


def _stream_attributes_set(c: Context) -> bool:
    """Only the attributes differ, at a CREATE that made or overwrote a stream of an existing file."""
    samba, smbsrv = dict(c.samba[2]), dict(c.smbsrv[2])
    return (c.op is not None and is_stream(c.op.name) and samba.get("target") in ("no-stream", "stream")
            and samba.get("action") != 1 and {k: v for k, v in samba.items() if k != "attributes"}
            == {k: v for k, v in smbsrv.items() if k != "attributes"})


def _attributes_changed_by_stream_create(c: Context) -> bool:
    """A stream CREATE that Samba carried out and that named attributes, or made or overwrote a stream of an
    existing file, came before (Samba then set the file's attributes: see _stream_attributes_set)."""
    for op, record in zip(c.history, c.samba_history, strict=False):
        detail = dict(record[2])
        if (op.kind == "create" and is_stream(op.name) and record[1] == "STATUS_SUCCESS"
                and detail.get("action") != 1 and (op.attributes & 0x7 or detail.get("target") != "none")):
            return True
    return False


def _stream_handle_name(c: Context) -> str | None:
    """The stream the step's handle has now, upper case without ":$DATA" (its CREATE's, moved by renames)."""
    if c.op is None or c.handle_op is None or not is_stream(c.handle_op.name):
        return None
    name = c.handle_op.name.split(":")[1]
    for op in c.history[c.history.index(c.handle_op) + 1:]:
        if op.kind == "rename" and op.slot == c.op.slot and op.name.startswith(":") and op.name.upper() != "::$DATA":
            name = op.name[1:]
    return name.upper().removesuffix(":$DATA")


def _rename_to_own_stream_name(c: Context) -> bool:
    return (c.op is not None and c.op.name.startswith(":")
            and c.op.name[1:].upper().removesuffix(":$DATA") == _stream_handle_name(c))


def _stream_of_base_opened_before(c: Context) -> bool:
    assert c.op is not None
    return any(op.kind == "create" and is_stream(op.name) and base_of(op.name) == base_of(c.op.name)
               for op in c.history)


def _create_of_file_with_open_stream(c: Context) -> bool:
    """FILE_CREATE, or FILE_DIRECTORY_FILE, of an existing file one of whose streams was opened before."""
    if c.op is None or dict(c.samba[2]).get("target") != "file" or not (
            c.op.disposition == b.FILE_CREATE or c.op.options & b.FILE_DIRECTORY_FILE):
        return False
    return _stream_of_base_opened_before(c)


def _generic_delete_of_file_with_open_stream(c: Context) -> bool:
    """An open of a file asking GENERIC_ALL or MAXIMUM_ALLOWED (not the DELETE bit) after an open of a stream."""
    return (c.op is not None and not is_stream(c.op.name) and not c.op.access & b.DELETE
            and bool(c.op.access & (b.GENERIC_ALL | b.MAXIMUM_ALLOWED)) and _stream_of_base_opened_before(c))


def _maximum_allowed_stream_of_read_only_file(c: Context) -> bool:
    if c.op is None or not is_stream(c.op.name) or not c.op.access & b.MAXIMUM_ALLOWED:
        return False
    attributes = dict(c.smbsrv[2]).get("attributes")
    return c.smbsrv[1] != "STATUS_SUCCESS" or attributes is not None and bool(int(attributes, 16) & 0x1)


def _chmod_after_stream_named_open(c: Context) -> bool:
    chmod = any(op.kind == "chmod" for op in c.history)
    if c.op is None:  # a final close: any open by a stream name
        return chmod and any(op.kind == "create" and ":" in op.name for op in c.history)
    return chmod and on_stream_named_handle(c)


_ANY_STATUS = ("STATUS_SUCCESS", "STATUS_ACCESS_DENIED", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_OBJECT_PATH_NOT_FOUND",
               "STATUS_OBJECT_NAME_COLLISION", "STATUS_SHARING_VIOLATION", "STATUS_DELETE_PENDING",
               "STATUS_NOT_A_DIRECTORY", "STATUS_FILE_IS_A_DIRECTORY", "STATUS_INVALID_PARAMETER",
               "STATUS_CANNOT_DELETE")


def _close_before_create_no_memory(c: Context) -> bool:
    samba, smbsrv = dict(c.samba[2]), dict(c.smbsrv[2])
    return (c.samba[1] == c.smbsrv[1] and samba.get("closed_first") == "STATUS_NO_MEMORY"
            and smbsrv.get("closed_first") == "STATUS_SUCCESS" and any(op.kind == "chmod" for op in c.history)
            and any(op.kind == "create" and ":" in op.name for op in c.history)
            and {k: v for k, v in samba.items() if k != "closed_first"}
            == {k: v for k, v in smbsrv.items() if k != "closed_first"})


def _stream_rename_after_chmod(c: Context) -> bool:
    return on_stream_handle(c) and any(op.kind == "chmod" for op in c.history)


def _stream_delete_pending_before(c: Context) -> bool:
    """A stream of the step's file was made delete-pending (FileDispositionInformation, FILE_DELETE_ON_CLOSE)."""
    if c.op is None or is_stream(c.op.name):
        return False
    base = base_of(c.op.name)
    slots: dict[int, str] = {}
    for op in c.history:
        if op.kind == "create":
            slots[op.slot] = op.name
            if is_stream(op.name) and base_of(op.name) == base and op.options & b.FILE_DELETE_ON_CLOSE:
                return True
        elif op.kind == "disposition" and op.flag and is_stream(slots.get(op.slot, "")) and base_of(
                slots[op.slot]) == base:
            return True
    return False


def _stream_after_chmod(c: Context) -> bool:
    """A stream step (an open of a stream name, or I/O on a stream's handle) after a chmod."""
    if c.op is None or not any(op.kind == "chmod" for op in c.history):
        return False
    return is_stream(c.op.name) if c.op.kind == "create" else on_stream_handle(c)


def _overwritten_stream(c: Context) -> bool:
    """Only the EndOfFile (and the attributes, see _stream_attributes_set) differ at an overwrite of a stream."""
    samba, smbsrv = dict(c.samba[2]), dict(c.smbsrv[2])
    return (c.op is not None and is_stream(c.op.name) and c.op.disposition in _OVERWRITES
            and samba.get("action") in (0, 3) and samba.get("eof") != smbsrv.get("eof")
            and {k: v for k, v in samba.items() if k not in ("eof", "attributes")}
            == {k: v for k, v in smbsrv.items() if k not in ("eof", "attributes")})


def _new_stream_read_only_delete_on_close(c: Context) -> bool:
    return (c.op is not None and is_stream(c.op.name) and dict(c.samba[2]).get("target") == "no-stream"
            and bool(c.op.options & b.FILE_DELETE_ON_CLOSE) and bool(c.op.attributes & b.FILE_ATTRIBUTE_READONLY))


def _rename_of_default_stream_handle(c: Context) -> bool:
    return (c.op is not None and c.handle_op is not None and c.handle_op.name.upper().endswith("::$DATA")
            and ":" not in c.op.name)


def _delete_pending_stream_other_spelling(c: Context) -> bool:
    """A stream of the step's file was made delete-pending through an open spelled otherwise than the step's."""
    if c.op is None or not is_stream(c.op.name):
        return False
    slots: dict[int, str] = {}
    for op in c.history:
        if op.kind == "create":
            slots[op.slot] = op.name
            pending = op.name if op.options & b.FILE_DELETE_ON_CLOSE else ""
        else:
            pending = slots.get(op.slot, "") if op.kind == "disposition" and op.flag else ""
        if is_stream(pending) and base_of(pending) == base_of(c.op.name) and pending != c.op.name:
            return True
    return False


def _own_name_rename_with_open_stream(c: Context) -> bool:
    name = c.handle_op.name if c.handle_op is not None else ""
    return (c.op is not None and not on_stream_handle(c) and not c.op.name.startswith(":")
            and base_of(c.op.name) == base_of(name) and _stream_of_base_opened_before(c))


def _default_stream_name(c: Context) -> bool:
    return c.op is not None and c.op.name.upper().endswith("::$DATA")


def _maximum_allowed_delete_on_close_of_stream(c: Context) -> bool:
    return (c.op is not None and is_stream(c.op.name) and bool(c.op.access & b.MAXIMUM_ALLOWED)
            and bool(c.op.options & b.FILE_DELETE_ON_CLOSE))


def _overwrite_of_stream(c: Context) -> bool:
    return c.op is not None and is_stream(c.op.name) and c.op.disposition in _OVERWRITES


def _data_stream_as_directory(c: Context) -> bool:
    return c.op is not None and c.op.name.upper().endswith("::$DATA") and bool(c.op.options & b.FILE_DIRECTORY_FILE)


def _new_file_by_other_user(c: Context) -> bool:
    return (c.op is not None and is_stream(c.op.name) and dict(c.samba[2]).get("target") == "none"
            and USERS[c.op.conn] != 0)


def _new_stream_of_read_only_file(c: Context) -> bool:
    return (c.op is not None and is_stream(c.op.name) and dict(c.samba[2]).get("target") == "no-stream"
            and not c.op.access & (b.FILE_WRITE_DATA | b.FILE_APPEND_DATA | b.GENERIC_WRITE | b.GENERIC_ALL
                                   | b.MAXIMUM_ALLOWED))


def _stream_overwrite_of_missing_file(c: Context) -> bool:
    return (c.op is not None and is_stream(c.op.name) and dict(c.samba[2]).get("target") == "none"
            and c.op.disposition == b.FILE_OVERWRITE)


def stream_entries(allowed: type[Allowed]) -> tuple[tuple[Allowed, ...], tuple[Allowed, ...]]:
    """(ALLOWED, KNOWN) entries for stream steps; `allowed` is allowed.Allowed (no import cycle)."""
    settled = (
        allowed("query", ("STATUS_INVALID_PARAMETER",), ("STATUS_SUCCESS",), _stream_query,
                "spec: FileStreamInformation through a stream's handle lists the file's streams ([MS-FSA] "
                "2.1.5.11.29 works on Open.File; Windows does, smbtorture smb2.getinfo.complex); Samba 4.17 answers "
                "INVALID_PARAMETER (its selftest knownfail), also through an open of \"a::$DATA\", the file itself"),
        allowed("ea", ("STATUS_INVALID_PARAMETER",), ("STATUS_SUCCESS",), on_stream_handle,
                "samba: EAs belong to the file ([MS-FSA] 2.1.5.14.2 sets Open.File.ExtendedAttributes, whatever the "
                "stream), smbsrv sets them through a stream's handle; Samba 4.17's set_ea refuses any stream handle "
                "(\"Setting EAs on streams isn't supported\", INVALID_PARAMETER)"),
        allowed("queryea", ("STATUS_INVALID_PARAMETER",), ("STATUS_SUCCESS", "STATUS_NO_EAS_ON_FILE"), on_stream_handle,
                "samba: as above, for reading the file's EAs through a stream's handle ([MS-FSA] 2.1.5.12)"),
        allowed("create", ("STATUS_INVALID_PARAMETER",), ("STATUS_SUCCESS", "STATUS_ACCESS_DENIED"),
                _stream_create_with_eas,
                "samba: an ExtA create context on a stream open: smbsrv gives the EAs to the file as for the file's "
                "own open ([MS-SMB2] 3.3.5.9.2 applies them to the opened file); Samba 4.17 creates the stream (and "
                "the file), then its set_ea refuses a stream and it answers INVALID_PARAMETER"),
        allowed("rename", ("STATUS_SHARING_VIOLATION",), ("STATUS_SUCCESS", "STATUS_OBJECT_NAME_COLLISION"),
                _stream_rename_below_directory_open_with_delete,
                "samba: Samba 4.17 refuses every rename below a directory opened with DELETE, whatever its sharing "
                "(docs/streams.md; smbtorture smb2.streams.rename and rename2 are in its selftest knownfail); "
                "[MS-FSA] 2.1.5.15.11 checks no parent's sharing for a stream rename"),
        allowed("rename", ("STATUS_OBJECT_NAME_COLLISION", "STATUS_SUCCESS"),
                ("STATUS_SUCCESS", "STATUS_INVALID_PARAMETER", "STATUS_OBJECT_NAME_COLLISION",
                 "STATUS_SHARING_VIOLATION", "STATUS_ACCESS_DENIED"),
                _rename_onto_default_stream,
                "spec: a stream renamed onto \"::$DATA\" replaces the file's data when ReplaceIfExists is set and "
                "the data is empty ([MS-FSA] 2.1.5.15.11), as smbsrv does; Samba 4.17 answers COLLISION, or SUCCESS "
                "and changes nothing (docs/streams.md)"),
        allowed("rename", ("STATUS_SUCCESS", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_OBJECT_NAME_COLLISION",
                           "STATUS_OBJECT_NAME_INVALID", "STATUS_ACCESS_DENIED"),
                ("STATUS_INVALID_PARAMETER",), _rename_to_other_path,
                "spec: a stream's rename target must begin with ':' ([MS-FSA] 2.1.5.15.11: else "
                "INVALID_PARAMETER); Samba 4.17 takes \"dir\\\\g:v\" and moves the stream to another file g, or "
                "renames it when g is its own file (docs/streams.md)"),
        allowed("rename", ("*",), ("STATUS_SHARING_VIOLATION",), _rename_to_other_path,
                "spec: a stream's handle renamed to a path with a stream in it (\"dir\\a:v\"): SHARING_VIOLATION, "
                "Windows' answer (smbtorture smb2.streams.rename2; test_differential.py "
                "test_stream_renamed_to_a_path); Samba 4.17 renames the stream, or moves it to another file"),
        allowed("rename", ("STATUS_SUCCESS",), ("STATUS_OBJECT_NAME_COLLISION",), _stream_rename_case_only,
                "samba: stream names compare case-insensitively ([MS-FSCC] 2.1.5.3, NTFS), so \":T\" collides "
                "with \":t\"; Samba 4.17's existence check is case-sensitive and leaves two streams t and T"),
        allowed("rename", ("STATUS_OBJECT_NAME_COLLISION", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_NOT_FOUND"),
                ("STATUS_SUCCESS",), _rename_to_own_stream_name,
                "samba: a stream renamed to its own name in another spelling (\":s\" for a stream opened as "
                "\"a:s:$DATA\", \":S\" for \":s\"): [MS-FSA] 2.1.5.15.11 finds the target to be the stream "
                "itself, and smbsrv renames (keeping the new case); Samba 4.17 answers COLLISION for the first and "
                "OBJECT_NAME_NOT_FOUND (NOT_FOUND after an earlier rename) for the second"),
        allowed("rename", ("STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_NOT_FOUND", "STATUS_ACCESS_DENIED"),
                ("STATUS_SUCCESS", "STATUS_OBJECT_NAME_COLLISION"), _stream_rename_after_chmod,
                "samba: a stream renamed through its handle after a chmod took the directory's x: the handle "
                "holds the file ([MS-FSA] 2.1.5.15.11 looks up nothing by path for \":new\"); Samba 4.17 finds "
                "the file again by path and fails"),
        allowed("create", ("STATUS_SUCCESS", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_OBJECT_NAME_COLLISION"),
                ("STATUS_NOT_A_DIRECTORY",), _data_stream_as_directory,
                "spec: \"a::$DATA\" names a data stream, which is never a directory: FILE_DIRECTORY_FILE is "
                "NOT_A_DIRECTORY ([MS-FSA] 2.1.5.1: StreamTypeToOpen DataStream), as Samba 4.17 answers for an "
                "existing name; for a missing one Samba 4.17 creates a DIRECTORY a (FILE_CREATE, FILE_OPEN_IF) or "
                "answers OBJECT_NAME_NOT_FOUND (FILE_OPEN)"),
        allowed("create", ("STATUS_DELETE_PENDING",), ("STATUS_SUCCESS", "STATUS_NOT_A_DIRECTORY",
                                                       "STATUS_OBJECT_NAME_COLLISION", "STATUS_SHARING_VIOLATION",
                                                       "STATUS_ACCESS_DENIED", "STATUS_CANNOT_DELETE"),
                _stream_delete_pending_before,
                "samba: a stream's pending delete is the stream's ([MS-FSA] 2.1.5.4 deletes Open.Stream), and the "
                "file opens as before (Samba 4.17 too, for a plain open); Samba 4.17 answers DELETE_PENDING to an "
                "overwrite or FILE_DIRECTORY_FILE open of the file while one of its streams is delete-pending"),
        allowed("create", ("STATUS_OBJECT_NAME_NOT_FOUND",), ("STATUS_ACCESS_DENIED", "STATUS_SUCCESS",
                                                              "STATUS_OBJECT_NAME_COLLISION"),
                _stream_after_chmod,
                "samba: a chmod left the user w or x but no r on the file: the streams still exist and the user's "
                "rights decide ([MS-FSA] 2.1.5.1.2.1, smbsrv); Samba 4.17 reads the xattrs as the user, fails, and "
                "answers OBJECT_NAME_NOT_FOUND (docs/streams.md)"),
        allowed("read", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_END_OF_FILE"), _stream_after_chmod,
                "spec: a READ is checked against the handle's granted access ([MS-SMB2] 3.3.5.12); after a chmod "
                "Samba 4.17 reads the stream's xattr again by path as the user and fails"),
        allowed("write", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",), _stream_after_chmod,
                "spec: as above for a WRITE ([MS-SMB2] 3.3.5.13)"),
        allowed("eof", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",), _stream_after_chmod,
                "spec: as above for FileEndOfFileInformation ([MS-SMB2] 3.3.5.21.1)"),
        allowed("query", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",), _stream_after_chmod,
                "spec: as above for QUERY_INFO ([MS-SMB2] 3.3.5.20.1: the handle's FILE_READ_ATTRIBUTES)"),
        allowed("create", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",), _overwritten_stream,
                "samba: an overwritten or superseded stream is empty ([MS-FSA] 2.1.5.1.2.1), and smbsrv's CREATE "
                "response says EndOfFile 0; Samba 4.17 answers the old size (the attributes: the check below)"),
        allowed("rename", ("STATUS_INVALID_PARAMETER", "STATUS_ACCESS_DENIED"),
                ("STATUS_SUCCESS", "STATUS_OBJECT_NAME_COLLISION", "STATUS_ACCESS_DENIED"),
                _rename_of_default_stream_handle,
                "samba: an open of \"a::$DATA\" is an open of the file a ([MS-FSCC] 2.1.4), so its rename to "
                "\"b\" renames a (smbsrv); Samba 4.17 takes it for a stream's and refuses a target without ':'"),
        allowed("create", ("STATUS_SUCCESS",), ("STATUS_DELETE_PENDING",), _delete_pending_stream_other_spelling,
                "samba: a delete-pending stream refuses opens (DELETE_PENDING, [MS-FSA] 2.1.5.1.2; Samba 4.17 too "
                "for the same spelling); Samba 4.17 opens it through another spelling (\"a:s\" after "
                "\"a:s:$DATA\" was made delete-pending)"),
        allowed("create", ("STATUS_SUCCESS", "STATUS_SHARING_VIOLATION", "STATUS_OBJECT_NAME_NOT_FOUND",
                           "STATUS_ACCESS_DENIED"), ("STATUS_DELETE_PENDING",), _default_stream_name,
                "samba: \"a::$DATA\" is the file a ([MS-FSCC] 2.1.4), and an open of a delete-pending file is "
                "DELETE_PENDING ([MS-FSA] 2.1.5.1.2); Samba 4.17 opens or overwrites it through \"a::$DATA\" (or "
                "answers the sharing check, or has deleted it already: see below)"),
        allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_OBJECT_NAME_NOT_FOUND",),
                _stream_overwrite_of_missing_file,
                "spec: FILE_OVERWRITE of a missing name is OBJECT_NAME_NOT_FOUND ([MS-FSA] 2.1.5.1.1), and smbsrv "
                "answers it for a stream of a missing file; Samba 4.17 makes the file first (and leaves it, see "
                "below), so a user who may not create there, or READONLY in FileAttributes, gets ACCESS_DENIED"),
        allowed("create", ("STATUS_SHARING_VIOLATION",), ("STATUS_OBJECT_NAME_COLLISION",),
                _create_of_file_with_open_stream,
                "spec: FILE_CREATE of an existing name is OBJECT_NAME_COLLISION before any sharing check ([MS-FSA] "
                "2.1.5.1.2); Samba 4.17 checks the share modes of the file's open streams first"),
        allowed("create", ("STATUS_SHARING_VIOLATION",), ("STATUS_ACCESS_DENIED",), _file_open_after_stream_open,
                "spec: the access check of an open ([MS-FSA] 2.1.5.1.2.1) comes before its sharing check "
                "(2.1.5.1.2.2); Samba 4.17 checks the share modes of the file's open streams first"),
        allowed("create", ("STATUS_SHARING_VIOLATION",), ("STATUS_SUCCESS",), _open_after_stream_rename,
                "samba: as below, the other way: a new stream under a renamed stream's old name shares nothing "
                "with it; Samba 4.17 checks it against the renamed stream's opens"),
        allowed("disk", ("",), ("",), _disk_differs_in_streams,
                "samba: the disks differ only in the streams, after a chmod (Samba 4.17 reads and removes stream "
                "xattrs as the user, and a delete on close of a stream fails silently) or a hard link (a file's "
                "streams belong to the file, [MS-FSCC] 2.1.4; Samba 4.17 removes them when one of its names is "
                "deleted)"),
        allowed("create", ("STATUS_SUCCESS",), ("STATUS_SHARING_VIOLATION",), _open_after_stream_rename,
                "samba: a renamed stream's opens keep their share modes under the new name ([MS-FSA] 2.1.5.15.11 "
                "renames Open.Stream), so a later open of it that shares too little, or a DELETE open of its file "
                "while it does not share delete, is a SHARING_VIOLATION; Samba 4.17 keeps them under the old name "
                "and opens"),
        allowed("create", ("STATUS_DELETE_PENDING",), ("STATUS_OBJECT_NAME_COLLISION",), _file_create_after_stream_open,
                "samba: FILE_CREATE of a delete-pending file is OBJECT_NAME_COLLISION, as Samba 4.17 answers when "
                "another open of the file keeps it; when an open of one of its streams keeps it, Samba 4.17 "
                "answers DELETE_PENDING"),
        allowed("create", ("STATUS_SHARING_VIOLATION", "STATUS_SUCCESS"), ("STATUS_DELETE_PENDING",),
                _delete_pending_stream_other_spelling,
                "samba: as below, a delete-pending stream opened through another spelling: Samba 4.17 checks "
                "sharing instead of the pending delete"),
        allowed("create", ("STATUS_SHARING_VIOLATION",), ("STATUS_NOT_A_DIRECTORY",), _create_of_file_with_open_stream,
                "spec: FILE_DIRECTORY_FILE on a file is NOT_A_DIRECTORY before the sharing check ([MS-FSA] "
                "2.1.5.1.2); Samba 4.17 checks the share modes of the file's open streams first"),
        allowed("create", ("STATUS_SUCCESS",), ("STATUS_SHARING_VIOLATION",), _generic_delete_of_file_with_open_stream,
                "samba: an open of a file with DELETE while one of its streams is open without FILE_SHARE_DELETE is "
                "a SHARING_VIOLATION (Windows; Samba 4.17 for the DELETE bit), and GENERIC_ALL or MAXIMUM_ALLOWED "
                "grant DELETE; Samba 4.17 looks for the DELETE bit before it maps them and opens (measured)"),
        allowed("write", ("STATUS_SUCCESS",), ("STATUS_FILE_LOCK_CONFLICT",), on_stream_handle,
                "samba: byte-range locks are per stream and a WRITE into a locked range conflicts ([MS-FSA] 2.1.5.4, "
                "as for files, where Samba 4.17 answers FILE_LOCK_CONFLICT too); Samba 4.17 writes a stream "
                "through any lock (measured: even its own handle's shared lock)"),
        allowed("read", ("STATUS_SUCCESS",), ("STATUS_FILE_LOCK_CONFLICT",), on_stream_handle,
                "samba: as above for a READ of a range another handle locked exclusively ([MS-FSA] 2.1.5.3)"),
        allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_SHARING_VIOLATION",
                                                      "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_OBJECT_NAME_COLLISION"),
                _maximum_allowed_stream_of_read_only_file,
                "spec: MAXIMUM_ALLOWED grants what the file allows, on a READONLY file everything but data writes, "
                "for its streams as for itself (allowed.py, the same entry for files), and a missing stream's "
                "FILE_OVERWRITE is OBJECT_NAME_NOT_FOUND, an existing one's FILE_CREATE COLLISION first; Samba "
                "4.17 refuses"),
        allowed("final-close", ("STATUS_NO_MEMORY", "STATUS_ACCESS_DENIED"), ("STATUS_SUCCESS",),
                _chmod_after_stream_named_open,
                "spec: [MS-SMB2] 3.3.5.10: the CLOSE of a valid handle succeeds, also when its delete on close "
                "fails after a chmod (allowed.py); Samba 4.17 answers NO_MEMORY for an open of \"a::$DATA\""),
        allowed("close", ("STATUS_NO_MEMORY", "STATUS_ACCESS_DENIED"), ("STATUS_SUCCESS",),
                _chmod_after_stream_named_open, "spec: as above, for a CLOSE step"),
        allowed("create", _ANY_STATUS, _ANY_STATUS, _close_before_create_no_memory,
                "spec: as above, for the CLOSE before a CREATE into a busy slot (Samba 4.17: NO_MEMORY)"),
    )
    known = (
        allowed("rename", ("STATUS_SUCCESS", "STATUS_ACCESS_DENIED"), ("STATUS_ACCESS_DENIED",
                                                                       "STATUS_OBJECT_NAME_COLLISION"),
                _file_rename_with_open_stream,
                "check: a file renamed while one of its streams is open: smbsrv refuses (ACCESS_DENIED, "
                "docs/streams.md), after its target check (COLLISION first); Samba 4.17 answers ACCESS_DENIED "
                "before the target check, and renames when the stream's open has only FILE_APPEND_DATA and the "
                "file's open is delete-on-close (seed 403311)"),
        allowed("rename", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",), _own_name_rename_with_open_stream,
                "check: a file renamed to its own name while one of its streams is open: Samba 4.17 ACCESS_DENIED "
                "(its rule for a file with open streams, which smbsrv keeps for other targets), smbsrv SUCCESS "
                "(nothing to do)"),
        allowed("create", ("STATUS_CANNOT_DELETE",), ("STATUS_SUCCESS",), _new_stream_read_only_delete_on_close,
                "check: FILE_DELETE_ON_CLOSE with READONLY in FileAttributes on a NEW stream of an existing file or "
                "directory that is not READONLY: Samba 4.17 gives the file the attributes first (the check on "
                "stream attributes) and answers CANNOT_DELETE; smbsrv opens (the file is not READONLY)"),
        allowed("create", ("STATUS_CANNOT_DELETE",), ("STATUS_ACCESS_DENIED",),
                lambda c: c.op is not None and is_stream(c.op.name) and bool(c.op.options & b.FILE_DELETE_ON_CLOSE),
                "check: FILE_DELETE_ON_CLOSE with READONLY on a new stream, by a user who may not write the file: "
                "Samba 4.17 gives the file READONLY first and answers CANNOT_DELETE, smbsrv refuses the write "
                "access a new stream needs (ACCESS_DENIED); see the check on stream attributes"),
        allowed("create", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",), _stream_attributes_set,
                "check: a CREATE that makes a new stream of an existing file, or overwrites a stream: Samba 4.17 "
                "SETS the file's attributes to the request's FileAttributes | ARCHIVE (a HIDDEN|SYSTEM file becomes "
                "0x21 after a create of \"a:s\" with READONLY, 0x20 after a supersede with 0); smbsrv leaves them "
                "(adds them on an overwrite); Windows to be checked"),
        allowed("query", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",), _attributes_changed_by_stream_create,
                "check: the attributes after such a stream CREATE (above)"),
        allowed("create", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",), _attributes_changed_by_stream_create,
                "check: the attributes after such a stream CREATE (above)"),
        allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_SHARING_VIOLATION"), _overwrite_of_stream,
                "check: an overwrite of a stream of a HIDDEN|SYSTEM file without those in FileAttributes: Samba "
                "4.17 refuses it on one connection (the [MS-FSA] 2.1.5.1.2.1 file rule) and overwrites on another; "
                "smbsrv overwrites (or answers the sharing check that comes after it)"),
        allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SHARING_VIOLATION", "STATUS_CANNOT_DELETE"),
                _maximum_allowed_delete_on_close_of_stream,
                "check: FILE_DELETE_ON_CLOSE with MAXIMUM_ALLOWED on a stream: Samba 4.17 refuses (ACCESS_DENIED) "
                "before its sharing check and the READONLY file's CANNOT_DELETE, as for files (allowed.py KNOWN)"),
        allowed("link", ("STATUS_NOT_SUPPORTED", "STATUS_NOT_FOUND", "STATUS_ACCESS_DENIED",
                         "STATUS_OBJECT_NAME_NOT_FOUND"), ("STATUS_INVALID_PARAMETER", "STATUS_OBJECT_NAME_COLLISION",
                                                    "STATUS_ACCESS_DENIED", "STATUS_OBJECT_NAME_NOT_FOUND",
                                                    "STATUS_OBJECT_PATH_NOT_FOUND"), on_stream_handle,
                "check: FileLinkInformation through a stream's handle: Samba 4.17 NOT_SUPPORTED before anything "
                "else (NOT_FOUND or ACCESS_DENIED after an earlier step confused it), smbsrv INVALID_PARAMETER or what the target's checks answer first; both make nothing; "
                "Windows to be checked"),
        allowed("link", ("STATUS_INVALID_PARAMETER", "STATUS_NOT_SUPPORTED"),
                ("STATUS_SUCCESS", "STATUS_ACCESS_DENIED", "STATUS_OBJECT_NAME_COLLISION",
                 "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_OBJECT_PATH_NOT_FOUND", "STATUS_FILE_IS_A_DIRECTORY"),
                _link_of_default_stream_handle,
                "check: FileLinkInformation through an open of \"a::$DATA\" (the file itself, [MS-FSCC] 2.1.4): "
                "smbsrv links the file as for an open of \"a\"; Samba 4.17 takes the handle for a stream's and "
                "refuses"),
        allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_CANNOT_DELETE",), _new_file_by_other_user,
                "BUG: FILE_DELETE_ON_CLOSE with READONLY on a stream of a missing file, by a user who may not create "
                "in the directory: smbsrv answers CANNOT_DELETE, Samba 4.17 ACCESS_DENIED (the directory's "
                "FILE_ADD_FILE check, [MS-FSA] 2.1.5.1, comes before 2.1.5.1.1's READONLY check)"),
        allowed("create", ("STATUS_SUCCESS",), ("STATUS_ACCESS_DENIED",), _new_stream_of_read_only_file,
                "check: a new stream of a READONLY file, asking no write access (FILE_READ_ATTRIBUTES, "
                "GENERIC_READ): Samba 4.17 creates it (READONLY refuses only the write rights asked, [MS-FSA] "
                "2.1.5.1.2.1), smbsrv refuses (adding a stream writes the file); Windows to be checked"),
    )
    return settled, known


# A stream create of a missing file that Samba 4.17 refused may have left the file (and the stream) behind:
# FILE_OVERWRITE answered OBJECT_NAME_NOT_FOUND, FILE_DELETE_ON_CLOSE with READONLY CANNOT_DELETE, an EA
# context INVALID_PARAMETER, each after the file was made. smbsrv creates nothing when it refuses.
SAMBA_LEFT_FILE = ("samba: Samba 4.17 refused a stream create of a missing file and left the file it had made "
                   "(a refused open changes nothing, [MS-FSA] 2.1.5.1): the rest is not compared")

# The file was overwritten or superseded while one of its streams was open: both drop the streams; Samba 4.17's
# handle of the dropped stream then answers NOT_FOUND to READ and even to CLOSE ([MS-SMB2] 3.3.5.10: a CLOSE of a
# valid handle succeeds); smbsrv's reads the stream as empty.
# A stream renamed, then a stream made delete-pending (through any handle): Samba 4.17 removes the old name's xattr at
# the close (there is none), so the renamed stream stays; smbsrv deletes it.
SAMBA_RENAMED_STREAM_KEPT = ("samba: a renamed stream made delete-pending: Samba 4.17 deletes it under its old "
                             "name at the close and keeps it ([MS-FSA] 2.1.5.4: the stream goes); the rest is not "
                             "compared")

# A file opened as "a::$DATA" and made delete-pending (FILE_DELETE_ON_CLOSE, FileDispositionInformation):
# Samba 4.17 deletes the file at that handle's close although another handle of it is open (whose
# FileStandardInformation says DeletePending 0), and its "a::$DATA" opens miss the file's pending delete;
# smbsrv keeps it delete-pending until the last close, as for "a" ([MS-FSA] 2.1.5.4).
SAMBA_DEFAULT_STREAM_DELETE = ("samba: a delete on close through an open of \"a::$DATA\": Samba 4.17 removes the "
                               "file at that close while other opens remain ([MS-FSA] 2.1.5.4: at the last); the "
                               "rest is not compared")

# A stream renamed to its own name with ReplaceIfExists: Samba 4.17 answers SUCCESS and then no longer finds it
# (a later rename: OBJECT_NAME_NOT_FOUND).
SAMBA_SELF_REPLACE = ("samba: a stream renamed onto its own name: Samba 4.17 answers SUCCESS and then loses "
                      "track of it (later renames OBJECT_NAME_NOT_FOUND); the rest is not compared")

# A stream renamed onto "::$DATA": Samba 4.17 answers SUCCESS (with ReplaceIfExists) and changes nothing,
# smbsrv moves the stream's data into the file's (docs/streams.md, "Compared with Samba").
SAMBA_ONTO_DEFAULT_STREAM = ("samba: a stream renamed onto \"::$DATA\": Samba 4.17 answers SUCCESS and changes "
                             "nothing, smbsrv moves the data ([MS-FSA] 2.1.5.15.11; docs/streams.md); the rest is "
                             "not compared")

# One stream opened through two spellings ("a:s" and "a:s:$DATA", "a:S") and made delete-pending through one:
# Samba 4.17 takes them for two streams, deletes the xattr at that handle's close and the other handle then answers
# NOT_FOUND; smbsrv keeps the stream until its last open closes ([MS-FSA] 2.1.5.4).
SAMBA_STREAM_SPELLINGS = ("samba: a stream opened through two spellings and deleted through one: Samba 4.17 "
                          "removes it at that close while the other open remains; the rest is not compared")

# A stream renamed to its own name in another case (":T" for "t"): Samba 4.17 renames the xattr and then looks
# for the old spelling (NOT_FOUND to FileBasicInformation, FileDispositionInformation).
SAMBA_CASE_RENAME = ("samba: a stream renamed to another case of its name: Samba 4.17's handle then misses it "
                     "(NOT_FOUND); the rest is not compared")

# "a::$DATA" with FILE_DIRECTORY_FILE of a missing name: Samba 4.17 makes a DIRECTORY a (and keeps it when the
# open fails after); smbsrv answers NOT_A_DIRECTORY and makes nothing.
SAMBA_DEFAULT_STREAM_DIRECTORY = ("samba: \"a::$DATA\" with FILE_DIRECTORY_FILE made a directory on Samba 4.17 "
                                  "(smbsrv: NOT_A_DIRECTORY); the rest is not compared")

# A replacing link that Samba 4.17 refused may have removed its target first (allowed.py, the disk entry): in a
# sequence with streams the later CREATEs see the difference (their "target") before the disk does.
SAMBA_FAILED_LINK = ("samba: a replacing link Samba 4.17 refused may have removed its target (allowed.py); the rest "
                     "of this stream sequence is not compared")

# A stream renamed through one handle while another handle of a stream of the same file is open: Samba 4.17's
# other handle keeps the old name and answers NOT_FOUND (FileBasicInformation, ...); smbsrv's follows the rename.
SAMBA_RENAMED_UNDER_OPEN = ("samba: a stream renamed while another open of it (or of its file's streams) stays: "
                            "Samba 4.17's other handle keeps the old name (NOT_FOUND); the rest is not compared")

SAMBA_DANGLING_STREAM = ("samba: the file was overwritten while a stream of it was open: Samba 4.17's stream "
                         "handle then answers NOT_FOUND (READ, CLOSE); the rest is not compared")


def _stream_key(name: str) -> tuple[str, str]:
    return base_of(name), name.split(":")[1].upper()


def _stream_deleted_under_two_spellings(c: Context) -> bool:
    spellings: dict[tuple[str, str], set[str]] = {}
    slots: dict[int, str] = {}
    pending: set[tuple[str, str]] = set()
    for index, op in enumerate(c.history):
        done = index < len(c.samba_history) and c.samba_history[index][1] == "STATUS_SUCCESS"
        if op.kind == "create" and done and is_stream(op.name):
            slots[op.slot] = op.name
            spellings.setdefault(_stream_key(op.name), set()).add(op.name)
            if op.options & b.FILE_DELETE_ON_CLOSE:
                pending.add(_stream_key(op.name))
        elif op.kind == "disposition" and op.flag and done and is_stream(slots.get(op.slot, "")):
            pending.add(_stream_key(slots[op.slot]))
    return any(len(spellings.get(key, ())) > 1 for key in pending)


def whole_sequence_reason(c: Context) -> str | None:
    """A reason that covers every difference after an earlier step, or None."""
    if _stream_deleted_under_two_spellings(c):
        return SAMBA_STREAM_SPELLINGS
    if any(":" in op.name for op in c.history if op.kind == "create") and any(
            op.kind == "link" and op.flag and index < len(c.samba_history)
            and c.samba_history[index][1] != "STATUS_SUCCESS" for index, op in enumerate(c.history)):
        return SAMBA_FAILED_LINK
    samba = c.samba_history
    opened: set[str] = set()
    renamed: set[int] = set()  # slots whose stream handle was renamed (Samba carried it out): any, once renamed
    names: dict[int, str] = {}  # each slot's stream name now, upper case
    exact: dict[int, str] = {}  # and as spelled
    default_stream_bases: set[str] = set()  # files opened as "a::$DATA"
    slot_names: dict[int, str] = {}  # the name each slot's handle was opened by
    delete_on_close_bases: set[str] = set()  # files opened with FILE_DELETE_ON_CLOSE, under any name
    linked = False  # a hard link was made: a file may have two names
    for index, op in enumerate(c.history):
        if index >= len(samba):
            continue
        if op.kind == "rename" and samba[index][1] == "STATUS_SUCCESS" and op.name.upper() == "::$DATA":
            return SAMBA_ONTO_DEFAULT_STREAM
        if op.kind == "link" and samba[index][1] == "STATUS_SUCCESS":
            linked = True
        if op.kind == "rename" and samba[index][1] == "STATUS_SUCCESS" and op.name.startswith(":"):
            renamed_base = base_of(slot_names.get(op.slot, ""))
            if any(slot != op.slot and is_stream(name) and base_of(name) == renamed_base
                   for slot, name in slot_names.items()):
                return SAMBA_RENAMED_UNDER_OPEN
            target = op.name[1:].upper().removesuffix(":$DATA")
            if names.get(op.slot) == target and (op.flag or exact.get(op.slot) == op.name[1:].removesuffix(":$DATA")):
                return SAMBA_SELF_REPLACE
            if names.get(op.slot) == target and exact.get(op.slot) != op.name[1:].removesuffix(":$DATA"):
                return SAMBA_CASE_RENAME
            exact[op.slot] = op.name[1:].removesuffix(":$DATA")
            names[op.slot] = target
            renamed.add(op.slot)
        elif op.kind == "disposition" and op.flag and samba[index][1] == "STATUS_SUCCESS":
            name = slot_names.get(op.slot, "")
            if base_of(name) in default_stream_bases:
                return SAMBA_DEFAULT_STREAM_DELETE
            if renamed and is_stream(name):
                return SAMBA_RENAMED_STREAM_KEPT
        if op.kind != "create":
            continue
        record = samba[index]
        names.pop(op.slot, None)
        slot_names[op.slot] = op.name
        if record[1] == "STATUS_SUCCESS" and is_stream(op.name):
            names[op.slot] = op.name.split(":")[1].upper()
            exact[op.slot] = op.name.split(":")[1]
        if record[1] == "STATUS_SUCCESS" and op.name.upper().endswith("::$DATA"):
            default_stream_bases.add(base_of(op.name))
        if record[1] == "STATUS_SUCCESS" and op.options & b.FILE_DELETE_ON_CLOSE:
            delete_on_close_bases.add(base_of(op.name))
        if delete_on_close_bases & default_stream_bases:
            return SAMBA_DEFAULT_STREAM_DELETE
        if (op.name.upper().endswith("::$DATA") and op.options & b.FILE_DIRECTORY_FILE
                and dict(record[2]).get("target") == "none"):
            return SAMBA_DEFAULT_STREAM_DIRECTORY
        if is_stream(op.name):
            if dict(record[2]).get("target") == "none" and (
                    record[1] == "STATUS_OBJECT_NAME_NOT_FOUND" and op.disposition == b.FILE_OVERWRITE
                    or record[1] in ("STATUS_CANNOT_DELETE", "STATUS_INVALID_PARAMETER")):
                return SAMBA_LEFT_FILE
            if record[1] == "STATUS_INVALID_PARAMETER" and op.flag >> 1:  # the stream made before set_ea failed
                return SAMBA_LEFT_FILE
            if record[1] == "STATUS_SUCCESS":
                opened.add(base_of(op.name))
        elif op.disposition in _OVERWRITES and record[1] == "STATUS_SUCCESS" and (
                base_of(op.name) in opened or opened and linked):  # a hard link: the same file by another name
            return SAMBA_DANGLING_STREAM
    return None
