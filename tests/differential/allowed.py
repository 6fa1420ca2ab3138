"""Differences between smbsrv and Samba 4.17 that the differential test accepts, each with its reason.

Every entry matches one kind of step, the exact pair of statuses (Samba's, smbsrv's) and a condition on the
operation, on the CREATE that made the handle it uses, and on the two records, so that it cannot cover a
difference it was not written for. Two lists:

- ALLOWED: smbsrv follows the spec (or Windows) where Samba does not; the reason names the section
  ("spec: ..."), or Samba 4.17 misbehaves ("samba: ...").
- KNOWN: found by the differential runs and not settled yet (a "BUG:" is smbsrv's to fix; "check:" needs a
  look at Windows or the spec first). Fix one, delete its entry: the test then proves it stays fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests import builders as b
from tests.differential import allowed_streams
from tests.differential.ops import USERS, Op

Record = tuple
FILE_WRITE_ATTRIBUTES = 0x100
FILE_WRITE_EA = 0x10
FILE_LIST_DIRECTORY = b.FILE_READ_DATA
# What the generic rights and MAXIMUM_ALLOWED stand for, as far as these checks go ([MS-SMB2] 2.2.13.1.1).
_GENERIC_READ = b.FILE_READ_DATA | b.FILE_READ_ATTRIBUTES | b.FILE_READ_EA | b.READ_CONTROL
_GENERIC_WRITE = b.FILE_WRITE_DATA | b.FILE_APPEND_DATA | FILE_WRITE_ATTRIBUTES | b.READ_CONTROL
_EVERYTHING = 0x1F01FF


@dataclass(frozen=True)
class Context:
    """What a condition may look at: the step, the CREATE that opened its handle (None for a CREATE or after the
    operations), that CREATE's record on Samba, and both records of the step."""

    op: Op | None
    handle_op: Op | None
    handle_record: Record | None
    samba: Record
    smbsrv: Record
    history: tuple[Op, ...] = ()  # the operations before the step
    samba_history: tuple[Record, ...] = ()  # Samba's records of them

    @property
    def handle_is_directory(self) -> bool:
        detail = dict(self.handle_record[2]) if self.handle_record else {}
        return bool(int(detail.get("attributes", "0x0"), 16) & b.FILE_ATTRIBUTE_DIRECTORY)

    def handle_asked_for(self, right: int) -> bool:
        """Whether the handle's DesiredAccess, as sent, names `right` (generic rights mapped)."""
        if self.handle_op is None:
            return True
        access = self.handle_op.access
        if access & (b.GENERIC_ALL | b.MAXIMUM_ALLOWED):
            access |= _EVERYTHING
        if access & b.GENERIC_READ:
            access |= _GENERIC_READ
        if access & b.GENERIC_WRITE:
            access |= _GENERIC_WRITE
        return bool(access & right)


@dataclass(frozen=True)
class Allowed:
    kind: str
    samba_statuses: tuple[str, ...]  # ("*",): any of _SAMBA_ANY
    smbsrv_statuses: tuple[str, ...]
    condition: Callable[[Context], bool]
    reason: str


# The right each SET_INFO/QUERY_INFO step needs on its handle ([MS-SMB2] 3.3.5.20.1, 3.3.5.21.1; the access
# table of ZwSetInformationFile/ZwQueryInformationFile).
_NEEDS = {"rename": b.DELETE, "disposition": b.DELETE, "eof": b.FILE_WRITE_DATA, "basic": FILE_WRITE_ATTRIBUTES,
          "query": b.FILE_READ_ATTRIBUTES}
_SAMBA_ANY = ("STATUS_SUCCESS", "STATUS_OBJECT_NAME_COLLISION", "STATUS_OBJECT_PATH_NOT_FOUND",
              "STATUS_CANNOT_DELETE", "STATUS_DIRECTORY_NOT_EMPTY", "STATUS_INVALID_PARAMETER",
              "STATUS_ACCESS_DENIED", "STATUS_SHARING_VIOLATION", "STATUS_OBJECT_NAME_NOT_FOUND",
              "STATUS_DELETE_PENDING", "STATUS_FILE_IS_A_DIRECTORY", "STATUS_NOT_A_DIRECTORY",
              # Samba 4.17 answers FileEndOfFileInformation through a handle without data access so
              "STATUS_NO_MEMORY")
_NO_DELETE_ON_CLOSE_EARLIER = ("STATUS_ACCESS_DENIED", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_OBJECT_NAME_COLLISION",
                               "STATUS_FILE_IS_A_DIRECTORY", "STATUS_NOT_A_DIRECTORY", "STATUS_CANNOT_DELETE",
                               "STATUS_SHARING_VIOLATION", "STATUS_DELETE_PENDING")


def _doc_without_delete(c: Context) -> bool:
    return c.op is not None and bool(c.op.options & b.FILE_DELETE_ON_CLOSE) and not c.op.access & b.DELETE


def _doc_success_by_generic(c: Context) -> bool:
    return _doc_without_delete(c) and bool(c.op.access & (b.GENERIC_ALL | b.MAXIMUM_ALLOWED))  # type: ignore[union-attr]


def _missing_right(c: Context) -> bool:
    if c.op is not None and c.op.kind == "query" and c.op.info_class == 8:
        return False  # FileAccessInformation needs no right ([MS-SMB2] 3.3.5.20.1)
    return c.samba[0] in _NEEDS and not c.handle_asked_for(_NEEDS[c.samba[0]])


def _overwrite_dropping_hidden_or_system(c: Context) -> bool:
    return (c.op is not None and c.op.disposition in (b.FILE_SUPERSEDE, b.FILE_OVERWRITE, b.FILE_OVERWRITE_IF)
            and (c.op.attributes & 0x6) != 0x6)


def _lock_without_fd_mode(c: Context) -> bool:
    if c.op is None:
        return False
    needs = b.FILE_READ_DATA if c.op.flag & b.SMB2_LOCKFLAG_SHARED_LOCK else b.FILE_WRITE_DATA | b.FILE_APPEND_DATA
    return not c.handle_asked_for(needs)


def _lock_without_data_access(c: Context) -> bool:
    return _lock_without_fd_mode(c) and not c.handle_asked_for(b.FILE_READ_DATA | b.FILE_WRITE_DATA)


def _lock_with_other_data_access(c: Context) -> bool:
    return _lock_without_fd_mode(c) and c.handle_asked_for(b.FILE_READ_DATA | b.FILE_WRITE_DATA)


def _maximum_allowed(c: Context) -> bool:
    return c.op is not None and bool(c.op.access & b.MAXIMUM_ALLOWED)


def _maximum_allowed_on_read_only_file(c: Context) -> bool:
    if not _maximum_allowed(c) or _target(c) not in ("file", "dir"):
        return False
    attributes = dict(c.smbsrv[2]).get("attributes")
    return c.smbsrv[1] != "STATUS_SUCCESS" or attributes is not None and bool(int(attributes, 16) & 0x1)


def _maximum_allowed_delete_on_close(c: Context) -> bool:
    return _maximum_allowed(c) and bool(c.op.options & b.FILE_DELETE_ON_CLOSE)  # type: ignore[union-attr]


def _target(c: Context) -> str:
    return str(dict(c.samba[2]).get("target", ""))


def _read_only_directory(c: Context) -> bool:
    if c.op is None or _target(c) != "dir":
        return False
    attributes = dict(c.smbsrv[2]).get("attributes")
    return c.smbsrv[1] != "STATUS_SUCCESS" or attributes is not None and int(attributes, 16) & 0x11 == 0x11


def _closed_non_empty_directory(c: Context) -> bool:
    if c.samba[0] in ("close", "final-close"):
        return True
    samba, smbsrv = dict(c.samba[2]), dict(c.smbsrv[2])
    return (c.samba[1] == c.smbsrv[1] and samba.get("closed_first") == "STATUS_DIRECTORY_NOT_EMPTY"
            and smbsrv.get("closed_first") == "STATUS_SUCCESS")


def _renamed_after_disposition(c: Context) -> bool:
    """A rename after something made a file delete-pending (a disposition, or a FILE_DELETE_ON_CLOSE open)."""
    pending = False
    for op, done in _succeeded(c):
        if not done:
            continue
        if op.kind == "disposition" and op.flag or op.kind == "create" and op.options & b.FILE_DELETE_ON_CLOSE:
            pending = True
        elif op.kind == "rename" and pending:
            return True
    return False


def _succeeded(c: Context) -> list[tuple[Op, bool]]:
    """The operations before the step, each with whether Samba carried it out."""
    return [(op, index < len(c.samba_history) and c.samba_history[index][1] == "STATUS_SUCCESS")
            for index, op in enumerate(c.history)]


def _rename_to_own_name(c: Context) -> bool:
    return c.op is not None and _current_name(c) == c.op.name


def _current_name(c: Context) -> str | None:
    """The name the step's handle has now (its CREATE's, moved by its own renames)."""
    if c.op is None or c.handle_op is None:
        return None
    name = c.handle_op.name
    for op in c.history[c.history.index(c.handle_op) + 1:]:
        if op.kind == "rename" and op.slot == c.op.slot:
            name = op.name
    return name


def _directory_with_open_below(c: Context) -> bool:
    name = _current_name(c)
    return (name is not None and c.handle_is_directory
            and any(op.kind == "create" and op.name.startswith(name + "\\") for op in c.history))


def _into_open_directory(c: Context) -> bool:
    if c.op is None or "\\" not in c.op.name:
        return False
    parent = c.op.name.split("\\")[0].lower()
    return any(op.kind == "create" and op.name.lower() == parent for op in c.history)


def _read_only_after_delete_on_close(c: Context) -> bool:
    """A FILE_DELETE_ON_CLOSE open carried out, then FileBasicInformation made a file READONLY."""
    doc = False
    for op, done in _succeeded(c):
        if done and op.kind == "create" and op.options & b.FILE_DELETE_ON_CLOSE:
            doc = True
        elif done and doc and op.kind == "basic" and op.attributes & b.FILE_ATTRIBUTE_READONLY:
            return True
    return False


def _restarted(c: Context) -> bool:
    return c.op is not None and bool(c.op.flag & b.SMB2_RESTART_SCANS)


def _delete_on_close_or_overwrite(c: Context) -> bool:
    return c.op is not None and (bool(c.op.options & b.FILE_DELETE_ON_CLOSE) or _overwrite(c))


def _archive_back_after_rename(c: Context) -> bool:
    samba, smbsrv = dict(c.samba[2]), dict(c.smbsrv[2])
    if "attributes" not in samba or "attributes" not in smbsrv or not any(op.kind == "rename" for op in c.history):
        return False
    rest_equal = {k: v for k, v in samba.items() if k != "attributes"} == {
        k: v for k, v in smbsrv.items() if k != "attributes"}
    shown = int(smbsrv["attributes"], 16) & ~b.FILE_ATTRIBUTE_NORMAL  # NORMAL stands for "none"
    return rest_equal and int(samba["attributes"], 16) == shown | 0x20


def _pattern_changed_on_restart(c: Context) -> bool:
    """A restarted listing whose pattern is not the one the handle's first listing fixed (smbsrv) or its last
    one used (Samba)."""
    if c.op is None or not c.op.flag & b.SMB2_RESTART_SCANS:
        return False
    patterns = []
    for op in reversed(c.history):
        if op.slot == c.op.slot and op.kind == "create":
            break
        if op.slot == c.op.slot and op.kind == "querydir":
            patterns.append(op.pattern)
    return bool(patterns) and (patterns[0] != c.op.pattern or patterns[-1] != c.op.pattern)


def _overwrite_without_write_data(c: Context) -> bool:
    return _overwrite(c) and not c.op.access & (  # type: ignore[union-attr]
        b.FILE_WRITE_DATA | b.GENERIC_WRITE | b.GENERIC_ALL | b.MAXIMUM_ALLOWED)


def _on_directory(c: Context) -> bool:
    return c.handle_is_directory


def _on_file(c: Context) -> bool:
    return c.handle_record is not None and not c.handle_is_directory


def _directory_attribute_on_file(c: Context) -> bool:
    return c.op is not None and bool(c.op.attributes & b.FILE_ATTRIBUTE_DIRECTORY) and _on_file(c)


def _directory_with_bad_disposition(c: Context) -> bool:
    return (c.op is not None and bool(c.op.options & b.FILE_DIRECTORY_FILE)
            and c.op.disposition not in (b.FILE_CREATE, b.FILE_OPEN, b.FILE_OPEN_IF))


def _question_mark_skips_dot_dot(c: Context) -> bool:
    if c.op is None or c.op.pattern != "?" or c.samba[1] != c.smbsrv[1]:
        return False
    samba_entries, smbsrv_entries = dict(c.samba[2])["entries"], dict(c.smbsrv[2])["entries"]
    extra = set(samba_entries) - set(smbsrv_entries)
    return [entry[0] for entry in extra] == [".."] and set(smbsrv_entries) <= set(samba_entries)


def _replacing_rename(c: Context) -> bool:
    return c.op is not None and bool(c.op.flag) and c.handle_asked_for(b.DELETE)


def _overwrite(c: Context) -> bool:
    return c.op is not None and c.op.disposition in (b.FILE_SUPERSEDE, b.FILE_OVERWRITE, b.FILE_OVERWRITE_IF)


def _overwrite_of_directory(c: Context) -> bool:
    return _overwrite(c) and _target(c) == "dir"


def _new_read_only_delete_on_close(c: Context) -> bool:
    return (c.op is not None and bool(c.op.options & b.FILE_DELETE_ON_CLOSE)
            and bool(c.op.attributes & b.FILE_ATTRIBUTE_READONLY) and dict(c.samba[2]).get("action") == 2)


def _chmod_after_handle(c: Context) -> bool:
    """An administrator's chmod happened after the CREATE that opened the step's handle (or, for a CREATE, after
    the close its busy slot needed: any chmod before the step)."""
    if c.handle_op is None:
        return any(op.kind == "chmod" for op in c.history)
    return any(op.kind == "chmod" for op in c.history[c.history.index(c.handle_op) + 1:])


def _link_replacing(c: Context) -> bool:
    return c.op is not None and c.op.kind == "link" and bool(c.op.flag)


def _maximum_allowed_handle(c: Context) -> bool:
    return c.handle_op is not None and bool(c.handle_op.access & b.MAXIMUM_ALLOWED) and not c.handle_op.access & (
        b.DELETE | b.GENERIC_ALL)


def _delete_pending_before(c: Context) -> bool:
    return any(done and (op.kind == "disposition" and op.flag or op.kind == "create"
                         and op.options & b.FILE_DELETE_ON_CLOSE) for op, done in _succeeded(c))


def _directory_granted_read_attributes(c: Context) -> bool:
    samba, smbsrv = dict(c.samba[2]).get("granted"), dict(c.smbsrv[2]).get("granted")
    return (c.handle_is_directory and samba is not None and smbsrv is not None
            and int(samba, 16) == int(smbsrv, 16) | 0x80)


def _ea_context_without_write_ea(c: Context) -> bool:
    return c.op is not None and bool(c.op.flag >> 1) and not c.op.access & (
        FILE_WRITE_EA | b.GENERIC_WRITE | b.GENERIC_ALL | b.MAXIMUM_ALLOWED)


def _mxac_without_read_only_cut(c: Context) -> bool:
    samba, smbsrv = dict(c.samba[2]), dict(c.smbsrv[2])
    if "mxac" not in samba or "mxac" not in smbsrv or int(samba.get("attributes", "0"), 16) & 0x11 != 0x1:
        return False
    rest_equal = {k: v for k, v in samba.items() if k != "mxac"} == {k: v for k, v in smbsrv.items() if k != "mxac"}
    left, right = (int(value.split()[1], 16) for value in (samba["mxac"], smbsrv["mxac"]))
    return rest_equal and right == left & ~0x6


def _only_mxac_differs(c: Context) -> bool:
    samba, smbsrv = dict(c.samba[2]), dict(c.smbsrv[2])
    return "mxac" in samba and {k: v for k, v in samba.items() if k != "mxac"} == {
        k: v for k, v in smbsrv.items() if k != "mxac"}


def _typed_open(c: Context) -> bool:
    return c.op is not None and bool(c.op.options & (b.FILE_DIRECTORY_FILE | b.FILE_NON_DIRECTORY_FILE))


def _create_of_existing_name(c: Context) -> bool:
    return c.op is not None and c.op.disposition == b.FILE_CREATE and _target(c) in ("file", "dir")


def _other_case_after_chmod(c: Context) -> bool:
    return c.op is not None and _chmod_before(c) and c.op.name != c.op.name.lower()


def _write_only_file(c: Context) -> bool:
    """A chmod made the step's name write-only for its owner (0200) before."""
    return c.op is not None and any(op.kind == "chmod" and op.attributes == 0o200 and op.name.lower()
                                    == c.op.name.lower() for op in c.history)


def _only_closed_first_differs_after_chmod(c: Context) -> bool:
    samba, smbsrv = dict(c.samba[2]), dict(c.smbsrv[2])
    return (_chmod_before(c) and c.samba[1] == c.smbsrv[1] and samba.get("closed_first") == "STATUS_ACCESS_DENIED"
            and smbsrv.get("closed_first") == "STATUS_SUCCESS"
            and {k: v for k, v in samba.items() if k != "closed_first"}
            == {k: v for k, v in smbsrv.items() if k != "closed_first"})


def _target_kept_after_failed_link(c: Context) -> bool:
    """The disks differ only in names smbsrv still has that a failed replacing link named."""
    if c.samba[0] != "disk":
        return False
    failed = {op.name.lower() for op, done in _succeeded(c) if op.kind == "link" and op.flag and not done}
    samba, smbsrv = set(dict(c.samba[2])["contents"]), set(dict(c.smbsrv[2])["contents"])
    return bool(failed) and samba < smbsrv and all(entry[0].lower() in failed for entry in smbsrv - samba)


def _truncated_by_refused_overwrite(c: Context) -> bool:
    """The disks differ only in a file's size and data, after an overwriting CREATE that Samba refused."""
    if c.samba[0] != "disk":
        return False
    refused = any(op.kind == "create" and op.disposition in (b.FILE_SUPERSEDE, b.FILE_OVERWRITE, b.FILE_OVERWRITE_IF)
                  and not done for op, done in _succeeded(c))
    samba, smbsrv = dict(c.samba[2])["contents"], dict(c.smbsrv[2])["contents"]
    return refused and len(samba) == len(smbsrv) and all(
        left[:5] == right[:5] for left, right in zip(samba, smbsrv, strict=True))


def _names_differ_in_case_only(c: Context) -> bool:
    samba, smbsrv = dict(c.samba[2])["contents"], dict(c.smbsrv[2])["contents"]
    folded = [sorted((entry[0].upper(),) + entry[1:] for entry in side) for side in (samba, smbsrv)]
    return samba != smbsrv and folded[0] == folded[1]


def _mode_reset_by_overwrite(c: Context) -> bool:
    """The disks differ only in the mode of files, after a chmod and a later overwriting CREATE."""
    if c.samba[0] != "disk" or not any(op.kind == "chmod" for op in c.history):
        return False
    if not any(op.kind == "create" and op.disposition in (b.FILE_SUPERSEDE, b.FILE_OVERWRITE, b.FILE_OVERWRITE_IF)
               for op in c.history):
        return False
    samba, smbsrv = dict(c.samba[2])["contents"], dict(c.smbsrv[2])["contents"]
    return len(samba) == len(smbsrv) and all(
        left[:3] + left[4:] == right[:3] + right[4:] for left, right in zip(samba, smbsrv, strict=True))



def _chmods_of(c: Context, name: str) -> list[int]:
    """The modes the chmod steps before the step gave `name` (any case), in order."""
    return [op.attributes for op in c.history if op.kind == "chmod" and op.name and op.name.lower() == name.lower()]


def _user_bits(c: Context, name: str, user: int, default: int | None = None) -> int | None:
    """The rwx bits the last chmod of `name` gave `user` (ops.USERS' numbering), or `default`'s bits when no
    chmod named it; None without either, or when who created it is not known. The creator owns it; its group is the creator's, or the sequence
    directory's (the first user's) under a setgid chmod; the second user is in the first user's group only."""
    modes = _chmods_of(c, name)
    creator = None
    setgid = False
    for index, op in enumerate(c.history):
        if op.kind == "chmod" and not op.name:
            setgid = bool(op.attributes & 0o2000)
        elif (op.kind == "create" and op.name.partition(":")[0].lower() == name.lower()
              and index < len(c.samba_history) and dict(c.samba_history[index][2]).get("action") == 2
              # a stream's create made its file only when the file was missing ("a:s" on nothing)
              and (":" not in op.name or dict(c.samba_history[index][2]).get("target") == "none")):
            creator, group_of_first = USERS[op.conn], setgid or USERS[op.conn] == 0
            break
    mode = modes[-1] if modes else default
    if mode is None or creator is None:
        return None
    if user == creator:
        shift = 6
    elif group_of_first and user in (0, 1):
        shift = 3
    else:
        shift = 0
    return (mode >> shift) & 7


def _spelled_otherwise_before(c: Context) -> bool:
    """The step's name was met in another spelling before (a CREATE, rename or link of "A" for "a")."""
    return c.op is not None and any(op.kind in ("create", "rename", "link") and op.name != c.op.name
                                    and op.name.lower() == c.op.name.lower() for op in c.history)


# Rights for which Samba 4.17 reopens a directory with O_RDONLY (open.c open_directory, need_fd_access):
# FILE_LIST_DIRECTORY, FILE_ADD_FILE, FILE_ADD_SUBDIRECTORY, and what names them.
_DIRECTORY_FD_RIGHTS = (b.FILE_READ_DATA | b.FILE_WRITE_DATA | b.FILE_APPEND_DATA | b.GENERIC_READ | b.GENERIC_WRITE
                        | b.GENERIC_ALL | b.MAXIMUM_ALLOWED)


def _writable_unreadable_directory(c: Context) -> bool:
    """An open of a directory, asking for a right Samba wants an fd for, after a chmod left some class of users
    w or x without r (0733, 0333, 0711, 0200)."""
    if c.op is None or _target(c) != "dir" or not c.op.access & _DIRECTORY_FD_RIGHTS:
        return False
    bits = _user_bits(c, c.op.name, USERS[c.op.conn])
    return bits is not None and bits in (1, 2, 3)


def _only_dots_of_unsearchable_directory(c: Context) -> bool:
    """A listing that smbsrv answers with "." or ".." only, of a directory a chmod left some class of users
    r without x (0600, 0640, 0644, 0744)."""
    name = _current_name(c)
    if name is None or c.smbsrv[1] != "STATUS_SUCCESS":
        return False
    assert c.handle_op is not None
    bits = _user_bits(c, name, USERS[c.handle_op.conn])
    entries = dict(c.smbsrv[2]).get("entries", ())
    return (bits is not None and bits & 5 == 4
            and bool(entries) and all(entry[0] in (".", "..") for entry in entries))


def _into_directory_user_may_not_write(c: Context) -> bool:
    """A rename into a directory whose mode (0755 as made, unless a chmod changed it) gives the renaming user
    no w: no FILE_ADD_FILE / FILE_ADD_SUBDIRECTORY there."""
    if c.op is None or c.handle_op is None or "\\" not in c.op.name:
        return False
    bits = _user_bits(c, c.op.name.rsplit("\\", 1)[0], USERS[c.handle_op.conn], 0o755)
    return bits is not None and not bits & 2


def _group_class_below_other_read_control(c: Context) -> bool:
    """An open asking only READ_CONTROL, DELETE or FILE_READ_ATTRIBUTES of a name whose last chmod gave the
    user's class fewer bits than everyone (0604)."""
    if c.op is None or c.op.access & ~(b.READ_CONTROL | b.DELETE | b.FILE_READ_ATTRIBUTES):
        return False
    modes = _chmods_of(c, c.op.name)
    bits = _user_bits(c, c.op.name, USERS[c.op.conn])
    return bool(modes) and bits is not None and bool(modes[-1] & 7 & ~bits)


def _group_class_below_other(c: Context) -> bool:
    """A MAXIMUM_ALLOWED open of a name whose last chmod gave the user's class (not the owner's) fewer bits than
    it gave everyone (0604, 0705): the kernel uses the user's class, not "other"."""
    if c.op is None or not c.op.access & b.MAXIMUM_ALLOWED:
        return False
    modes = _chmods_of(c, c.op.name)
    bits = _user_bits(c, c.op.name, USERS[c.op.conn])
    return bool(modes) and bits is not None and bool(modes[-1] & 7 & ~bits)


def _overwrite_by_writer_who_may_not_read(c: Context) -> bool:
    """An overwrite by a user whose class has w without r (0733, 0622 as another user)."""
    if not _overwrite(c) or _target(c) != "file":
        return False
    bits = _user_bits(c, c.op.name, USERS[c.op.conn])  # type: ignore[union-attr]
    return bits is not None and bits & 6 == 2


def _directory_user_may_not_search(c: Context) -> bool:
    """The step's handle is on a directory whose mode gives the handle's user no x (0666, 0600)."""
    name = _current_name(c)
    if name is None or not c.handle_is_directory:
        return False
    bits = _user_bits(c, name, USERS[c.handle_op.conn])  # type: ignore[union-attr]
    return bits is not None and not bits & 1


def _overwritten_after_chmod(c: Context) -> bool:
    """Only the MxAc differs, at an open of a name that an overwriting CREATE carried out on Samba after a chmod
    of the name."""
    if c.op is None or not _only_mxac_differs(c):
        return False
    chmodded = False
    for op, done in _succeeded(c):
        if op.name.lower() != c.op.name.lower():
            continue
        if op.kind == "chmod":
            chmodded = True
        elif chmodded and done and op.kind == "create" and op.disposition in (
                b.FILE_SUPERSEDE, b.FILE_OVERWRITE, b.FILE_OVERWRITE_IF):
            return True
    return False


def _chmod_before(c: Context) -> bool:
    return any(op.kind == "chmod" for op in c.history)


def _delete_on_close_of_directory_user_may_not_read(c: Context) -> bool:
    """FILE_DELETE_ON_CLOSE on a directory whose mode gives the opening user no r (0711)."""
    if c.op is None or not c.op.options & b.FILE_DELETE_ON_CLOSE or _target(c) != "dir":
        return False
    bits = _user_bits(c, c.op.name, USERS[c.op.conn])
    return bits is not None and not bits & 4


def _refused_overwrite_with_eas_before(c: Context) -> bool:
    """An overwriting CREATE with an ExtA context that Samba refused came before: Samba 4.17 overwrote the file
    (its attributes too) before set_ea failed."""
    return any(op.kind == "create" and op.flag >> 1 and op.disposition in (b.FILE_SUPERSEDE, b.FILE_OVERWRITE,
                                                                           b.FILE_OVERWRITE_IF) and not done
               for op, done in _succeeded(c))


def _directory_user_may_not_read(c: Context) -> bool:
    """The step's handle is on a directory whose mode gives the handle's user no r (0711, 0333)."""
    name = _current_name(c)
    if name is None or not c.handle_is_directory:
        return False
    bits = _user_bits(c, name, USERS[c.handle_op.conn])  # type: ignore[union-attr]
    return bits is not None and not bits & 4


ALLOWED: tuple[Allowed, ...] = (
    Allowed("create", ("STATUS_INVALID_PARAMETER",), _NO_DELETE_ON_CLOSE_EARLIER, _doc_without_delete,
            "spec: FILE_DELETE_ON_CLOSE without DELETE in DesiredAccess: [MS-SMB2] 3.3.5.9 (as [MS-SMB] 3.3.5.5) "
            "says ACCESS_DENIED, and smbsrv checks it where the open's access is checked (test_errors.py); "
            "Samba 4.17 answers INVALID_PARAMETER before any other check (open.c, bug 13358)"),
    Allowed("create", ("STATUS_INVALID_PARAMETER",), ("STATUS_SUCCESS",), _doc_success_by_generic,
            "spec: [MS-SMB2] 3.3.5.9 lets GENERIC_ALL (and MAXIMUM_ALLOWED, which grants DELETE to the owner) "
            "stand for DELETE with FILE_DELETE_ON_CLOSE; Samba 4.17 wants the DELETE bit itself"),
    Allowed("rename", ("*",), ("STATUS_ACCESS_DENIED",), _missing_right,
            "spec: renaming needs DELETE on the handle ([MS-SMB2] 3.3.5.21.1, ZwSetInformationFile); Samba 4.17 "
            "lets the handle that created the file rename it without"),
    Allowed("disposition", ("*",), ("STATUS_ACCESS_DENIED",), _missing_right,
            "spec: FileDispositionInformation needs DELETE on the handle ([MS-FSCC] 2.4.11)"),
    Allowed("eof", ("*",), ("STATUS_ACCESS_DENIED",), _missing_right,
            "spec: FileEndOfFileInformation needs FILE_WRITE_DATA on the handle ([MS-SMB2] 3.3.5.21.1)"),
    Allowed("basic", ("*",), ("STATUS_ACCESS_DENIED",), _missing_right,
            "spec: FileBasicInformation needs FILE_WRITE_ATTRIBUTES on the handle ([MS-SMB2] 3.3.5.21.1)"),
    Allowed("query", ("STATUS_SUCCESS",), ("STATUS_ACCESS_DENIED",), _missing_right,
            "spec: these classes need FILE_READ_ATTRIBUTES on the handle ([MS-SMB2] 3.3.5.20.1)"),
    Allowed("create", ("STATUS_SUCCESS",), ("STATUS_ACCESS_DENIED",), _overwrite_dropping_hidden_or_system,
            "spec: [MS-FSA] 2.1.5.1.2.1: overwriting a HIDDEN or SYSTEM file without naming them in "
            "FileAttributes is ACCESS_DENIED; Samba 4.17 overwrites"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_FILE_IS_A_DIRECTORY", "STATUS_DELETE_PENDING"),
            _overwrite_dropping_hidden_or_system,
            "spec: [MS-FSA] 2.1.5.1.2 checks FILE_NON_DIRECTORY_FILE against a directory, and delete-pending, "
            "before the overwrite attribute check of 2.1.5.1.2.1; Samba 4.17 checks the attributes first"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_SHARING_VIOLATION",
                                                  "STATUS_FILE_IS_A_DIRECTORY", "STATUS_DELETE_PENDING"),
            _read_only_directory,
            "spec: FILE_ATTRIBUTE_READONLY on a directory refuses no access ([MS-FSA] 2.1.5.1.2.1 applies it to "
            "data files; Windows ignores it on directories; commands/create.py read_only_file); Samba 4.17 "
            "refuses write and delete access to a READONLY directory"),
    Allowed("final-close", ("STATUS_DIRECTORY_NOT_EMPTY",), ("STATUS_SUCCESS",), _closed_non_empty_directory,
            "spec: [MS-SMB2] 3.3.5.10: the CLOSE of a valid handle succeeds; a delete-on-close directory that "
            "is no longer empty stays without an error (Windows); Samba 4.17 answers DIRECTORY_NOT_EMPTY"),
    Allowed("close", ("STATUS_DIRECTORY_NOT_EMPTY",), ("STATUS_SUCCESS",), _closed_non_empty_directory,
            "spec: [MS-SMB2] 3.3.5.10: the CLOSE of a valid handle succeeds (as above)"),
    Allowed("create", ("*",), _SAMBA_ANY, _closed_non_empty_directory,
            "spec: [MS-SMB2] 3.3.5.10: the CLOSE of a valid handle succeeds (as above; the close before a CREATE "
            "into a busy slot)"),
    Allowed("write", ("STATUS_ACCESS_DENIED",), ("STATUS_INVALID_DEVICE_REQUEST",), _on_directory,
            "spec: [MS-FSA] 2.1.5.4: a WRITE to a directory is INVALID_DEVICE_REQUEST; Samba 4.17 refuses the "
            "access first"),
    Allowed("lock", ("STATUS_INVALID_DEVICE_REQUEST",), ("STATUS_INVALID_PARAMETER",), _on_directory,
            "spec: [MS-FSA] 2.1.5.7: a byte-range lock on a directory is INVALID_PARAMETER"),
    Allowed("querydir", ("STATUS_NOT_SUPPORTED",), ("STATUS_INVALID_PARAMETER",), _on_file,
            "spec: [MS-FSA] 2.1.5.5: QUERY_DIRECTORY on a file is INVALID_PARAMETER"),
    Allowed("eof", ("STATUS_SUCCESS", "STATUS_INVALID_HANDLE"), ("STATUS_INVALID_PARAMETER",), _on_directory,
            "spec: [MS-FSA] 2.1.5.15.4: FileEndOfFileInformation on a directory is INVALID_PARAMETER; Samba 4.17 "
            "truncates nothing and succeeds, or answers INVALID_HANDLE for a handle without an fd"),
    Allowed("basic", ("STATUS_SUCCESS",), ("STATUS_INVALID_PARAMETER",), _directory_attribute_on_file,
            "spec: [MS-FSA] 2.1.5.15.1: FILE_ATTRIBUTE_DIRECTORY set on a file is INVALID_PARAMETER"),
    Allowed("create", ("*",), ("STATUS_INVALID_PARAMETER",), _directory_with_bad_disposition,
            "spec: [MS-FSA] 2.1.5.1 refuses FILE_DIRECTORY_FILE with a disposition other than CREATE, OPEN or "
            "OPEN_IF (INVALID_PARAMETER) among the parameter checks, before the name is looked up; Samba 4.17 "
            "looks the name up first"),
    Allowed("querydir", ("STATUS_NO_MORE_FILES", "STATUS_NO_SUCH_FILE", "STATUS_SUCCESS"),
            ("STATUS_SUCCESS", "STATUS_NO_SUCH_FILE", "STATUS_NO_MORE_FILES"), _pattern_changed_on_restart,
            "spec: [MS-SMB2] 3.3.5.18: the search pattern is fixed at the first QUERY_DIRECTORY of a handle unless "
            "SMB2_REOPEN (Windows); Samba 4.17 takes a new pattern with RESTART_SCANS"),
    Allowed("querydir", ("STATUS_NO_MORE_FILES",), ("STATUS_NO_SUCH_FILE",), _restarted,
            "spec: [MS-SMB2] 3.3.5.18 / [MS-FSA] 2.1.5.5: the first query after RESTART_SCANS that finds nothing "
            "is NO_SUCH_FILE, as a first query; Samba 4.17 answers NO_MORE_FILES"),
    Allowed("querydir", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",), _question_mark_skips_dot_dot,
            "spec: [MS-FSA] 2.1.4.4: '?' matches exactly one character, so not \"..\"; Samba 4.17 lists it"),
    Allowed("rename", ("STATUS_SUCCESS", "STATUS_OBJECT_NAME_COLLISION", "STATUS_DIRECTORY_NOT_EMPTY"),
            ("STATUS_ACCESS_DENIED",),
            _replacing_rename,
            "spec: [MS-FSA] 2.1.5.15.15: a rename may not replace a file that is open, nor a directory "
            "(ACCESS_DENIED); Samba 4.17 replaces an open file whose opens share delete, and answers a directory "
            "target with OBJECT_NAME_COLLISION"),
    Allowed("rename", ("STATUS_SUCCESS",), ("STATUS_SHARING_VIOLATION",), _rename_to_own_name,
            "spec: a rename first opens the target's directory (Windows' I/O manager; set_info.py "
            "_check_target_directory), also for a rename to the name the file has: an open of that directory "
            "with DELETE access refuses it; Samba 4.17 returns SUCCESS before looking"),
    Allowed("rename", ("STATUS_SUCCESS",), ("STATUS_ACCESS_DENIED",), _directory_with_open_below,
            "spec: Windows refuses to rename a directory with opens below it (ACCESS_DENIED; set_info.py); "
            "Samba 4.17 renames it"),
    Allowed("rename", ("STATUS_SUCCESS", "STATUS_OBJECT_NAME_COLLISION"), ("STATUS_SHARING_VIOLATION",),
            _into_open_directory,
            "spec: a rename opens the target's directory, and an open of it with DELETE access, or sharing no "
            "write, refuses that (SHARING_VIOLATION; set_info.py _check_target_directory, smbtorture "
            "smb2.rename); Samba 4.17 renames"),
    Allowed("create", ("STATUS_SUCCESS",), ("STATUS_ACCESS_DENIED",), _overwrite,
            "spec: [MS-FSA] 2.1.5.1.2.1: overwriting or superseding a READONLY file is ACCESS_DENIED; Samba "
            "4.17 overwrites it"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_SHARING_VIOLATION",
                                                  "STATUS_CANNOT_DELETE"),
            _maximum_allowed_on_read_only_file,
            "spec: MAXIMUM_ALLOWED grants what the file allows, on a READONLY file everything but data writes "
            "(Windows; commands/create.py read_only_file), and then the sharing check follows; Samba 4.17 "
            "refuses the open with ACCESS_DENIED"),
    Allowed("create", ("STATUS_SUCCESS",), ("STATUS_CANNOT_DELETE",), _new_read_only_delete_on_close,
            "spec: [MS-FSA] 2.1.5.1.1: a new file or directory asked to be READONLY and DELETE_ON_CLOSE at "
            "once is CANNOT_DELETE; Samba 4.17 creates a directory so"),
    Allowed("create", ("STATUS_SUCCESS",), ("STATUS_SHARING_VIOLATION",), _overwrite_without_write_data,
            "spec: an overwrite conflicts with other opens as a writer even when it asks for no data access "
            "(Windows: smbtorture smb2.acls.OVERWRITE_READ_ONLY_FILE, a second FILE_READ_DATA open with an "
            "overwrite disposition is SHARING_VIOLATION; the handle itself gets only what it asked for); "
            "Samba 4.17 skips it (Samba bug 15732)"),
    Allowed("create", ("STATUS_ACCESS_DENIED", "STATUS_SUCCESS", "STATUS_OBJECT_NAME_COLLISION"),
            ("STATUS_DELETE_PENDING", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_SUCCESS"),
            _read_only_after_delete_on_close,
            "spec: [MS-FSA] 2.1.5.5 Phase 1: the close of an open with FILE_DELETE_ON_CLOSE sets Open.Link.IsDeleted "
            "with no READONLY check (READONLY refuses FILE_DELETE_ON_CLOSE at the open, 2.1.5.1.2.1, and a "
            "disposition, 2.1.5.15.3), so the file goes even if it became READONLY meanwhile; Samba 4.17 keeps it"),
    Allowed("lock", ("STATUS_INVALID_HANDLE",), ("STATUS_SUCCESS",), _lock_with_other_data_access,
            "spec: [MS-FSA] 2.1.5.8 (byte-range lock) validates only a directory and the range, and [MS-SMB2] "
            "3.3.5.14 checks no access, so a shared lock through a handle with write access only, or an exclusive "
            "one with read access only, is granted; Samba 4.17's fcntl on an fd opened without that mode fails "
            "(EBADF, INVALID_HANDLE)"),
    # The order of the checks on an existing file: [MS-FSA] 2.1.5.1.2.1 refuses write access to a READONLY
    # file (ACCESS_DENIED) before FILE_DELETE_ON_CLOSE on it (CANNOT_DELETE), and the access checks of 2.1.5.1.2.1
    # come before the sharing check of 2.1.5.1.2.2; Windows' fastfat (the WDK sample, FatOpenExistingFcb) adds
    # the overwrite's implied access, checks it against READONLY, then FILE_DELETE_ON_CLOSE, then HIDDEN/SYSTEM,
    # and only then IoCheckShareAccess.
    Allowed("create", ("STATUS_CANNOT_DELETE",), ("STATUS_ACCESS_DENIED",), _overwrite,
            "spec: [MS-FSA] 2.1.5.1.2.1: an overwrite's implied FILE_WRITE_DATA on a READONLY file is ACCESS_DENIED "
            "before FILE_DELETE_ON_CLOSE on it is CANNOT_DELETE (fastfat FatOpenExistingFcb); Samba 4.17 answers "
            "CANNOT_DELETE"),
    Allowed("create", ("STATUS_SHARING_VIOLATION",), ("STATUS_CANNOT_DELETE", "STATUS_ACCESS_DENIED"),
            _delete_on_close_or_overwrite,
            "spec: [MS-FSA] 2.1.5.1.2: the READONLY checks of an overwrite or a FILE_DELETE_ON_CLOSE open "
            "(2.1.5.1.2.1) come before the sharing check (2.1.5.1.2.2), as in fastfat; Samba 4.17 checks sharing "
            "first"),
    Allowed("create", ("STATUS_SHARING_VIOLATION",), ("STATUS_ACCESS_DENIED",), _overwrite_dropping_hidden_or_system,
            "spec: the HIDDEN/SYSTEM check of an overwrite comes before the sharing check (fastfat "
            "FatOpenExistingFcb, before IoCheckShareAccess; [MS-FSA] 2.1.5.1.2.1 before 2.1.5.1.2.2); Samba "
            "4.17 checks sharing first"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_INVALID_PARAMETER",), _overwrite_of_directory,
            "spec: [MS-FSA] 2.1.5.1.2: for an existing directory the access checks of 2.1.5.1.2.1 run only \"If "
            "CreateDisposition is FILE_OPEN or FILE_OPEN_IF\", so an overwrite of a (READONLY) directory is "
            "refused for its disposition before any access check; Samba 4.17 refuses the access first"),
    Allowed("link", ("STATUS_SHARING_VIOLATION", "STATUS_CANNOT_DELETE", "STATUS_DELETE_PENDING",
                     "STATUS_NO_SUCH_FILE", "STATUS_OBJECT_NAME_COLLISION", "STATUS_FILE_IS_A_DIRECTORY"),
            ("STATUS_ACCESS_DENIED",), _link_replacing,
            "spec: a link with ReplaceIfExists replaces neither a directory nor a file that is open, this file's own "
            "names included ([MS-FSA] 2.1.5.15.6, as a rename's target in 2.1.5.15.11: ACCESS_DENIED); Samba 4.17 "
            "opens the target to delete it and answers what that open met, and after an open target it answers "
            "OBJECT_NAME_COLLISION having removed the target already"),
    Allowed("link", ("STATUS_OBJECT_PATH_NOT_FOUND", "STATUS_ACCESS_DENIED", "STATUS_OBJECT_NAME_COLLISION",
                     "STATUS_OBJECT_NAME_NOT_FOUND"), ("STATUS_FILE_IS_A_DIRECTORY",), _on_directory,
            "spec: [MS-FSA] 2.1.5.15.6: a link of a directory is FILE_IS_A_DIRECTORY before the name is looked at; "
            "Samba 4.17 resolves the target first"),
    Allowed("ea", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",), _chmod_after_handle,
            "spec: FILE_WRITE_EA is checked against the handle's granted access ([MS-SMB2] 3.3.5.21.1), granted at "
            "its open; a later chmod does not take it from the handle (Windows: a changed ACL leaves open handles "
            "alone); Samba 4.17 writes the xattr as the user and the kernel refuses"),
    Allowed("eof", ("STATUS_SUCCESS",), ("STATUS_ACCESS_DENIED",), _maximum_allowed_handle,
            "spec: FileEndOfFileInformation needs FILE_WRITE_DATA in the handle's granted access ([MS-SMB2] "
            "3.3.5.21.1), and MAXIMUM_ALLOWED on another user's 0744 file or 0755 directory grants reading only; "
            "Samba 4.17 answers SUCCESS for the size the file already has (or a directory) without checking"),
    Allowed("link", ("STATUS_NO_SUCH_FILE",), ("STATUS_SUCCESS",), _link_replacing,
            "samba: a link with ReplaceIfExists onto a HIDDEN or SYSTEM file that is not open: Samba 4.17 answers "
            "NO_SUCH_FILE and keeps the file, though a rename with ReplaceIfExists replaces the same file; [MS-FSA] "
            "2.1.5.15.6 replaces it (no attribute but READONLY refuses)"),
    Allowed("basic", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",), _chmod_after_handle,
            "spec: FILE_WRITE_ATTRIBUTES is checked against the handle's granted access ([MS-SMB2] 3.3.5.21.1), "
            "granted at its open; Samba 4.17 asks the kernel again after the chmod"),
    Allowed("disposition", ("STATUS_SUCCESS",), ("STATUS_ACCESS_DENIED",),
            lambda c: c.op is not None and not c.op.flag and _maximum_allowed_handle(c),
            "spec: FileDispositionInformation needs DELETE on the handle whatever its value ([MS-FSCC] 2.4.11, "
            "[MS-SMB2] 3.3.5.21.1), and MAXIMUM_ALLOWED granted none; Samba 4.17 checks DELETE only when setting it"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_SHARING_VIOLATION",
                                                  "STATUS_DELETE_PENDING", "STATUS_CANNOT_DELETE"),
            _ea_context_without_write_ea,
            "samba: an ExtA create context with a DesiredAccess that names no FILE_WRITE_EA: Samba 4.17 answers "
            "ACCESS_DENIED (open.c create_file_unixpath: set_ea after the file is made, whose fail path keeps "
            "it), and a file or directory it created for the request stays on disk; [MS-SMB2] 3.3.5.9.2 "
            "and [MS-FSA] 2.1.5.1 apply the EAs of a create with no such access check (the creator sets them)"),
    Allowed("create", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",),
            lambda c: _overwrite(c) and _chmod_before(c) and _only_mxac_differs(c),
            "samba: the MxAc of an overwritten file after a chmod: Samba 4.17 has set the mode back to 0744 "
            "(as above) and reports full access; smbsrv kept the mode and reports what it grants"),
    Allowed("disposition", ("STATUS_CANNOT_DELETE",), ("STATUS_ACCESS_DENIED",), _maximum_allowed_handle,
            "spec: DELETE on the handle is checked first ([MS-SMB2] 3.3.5.21.1), before the READONLY check of "
            "[MS-FSA] 2.1.5.15.3, and MAXIMUM_ALLOWED granted another user none; Samba 4.17 checks READONLY first"),
    Allowed("rename", ("STATUS_SUCCESS",), ("STATUS_ACCESS_DENIED",),
            lambda c: _maximum_allowed_handle(c) and _rename_to_own_name(c),
            "spec: a rename needs DELETE in the handle's granted access ([MS-SMB2] 3.3.5.21.1), also to the name "
            "the file has; MAXIMUM_ALLOWED granted another user none; Samba 4.17 returns SUCCESS before looking"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_NOT_A_DIRECTORY", "STATUS_FILE_IS_A_DIRECTORY"), _typed_open,
            "spec: [MS-FSA] 2.1.5.1.2 compares FILE_DIRECTORY_FILE / FILE_NON_DIRECTORY_FILE with the existing file "
            "before the access checks of 2.1.5.1.2.1; Samba 4.17 checks the access first"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_OBJECT_NAME_COLLISION",), _create_of_existing_name,
            "spec: [MS-FSA] 2.1.5.1: FILE_CREATE of a name that exists is OBJECT_NAME_COLLISION; the parent's "
            "access check belongs to the creation of a new file (2.1.5.1.1), which does not happen; Samba 4.17 "
            "checks the parent first"),
    Allowed("create", ("STATUS_SHARING_VIOLATION", "STATUS_SUCCESS", "STATUS_ACCESS_DENIED"),
            ("STATUS_SUCCESS", "STATUS_ACCESS_DENIED", "STATUS_OBJECT_NAME_NOT_FOUND"), _other_case_after_chmod,
            "samba: another spelling of a name in a directory a chmod made unlistable for the user: each smbd "
            "process remembers the spellings it met while it could list (GETREALFILENAME_CACHE), so Samba 4.17 "
            "still finds the file; smbsrv answers as for a directory the user cannot list (fs/resolver.py)"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_SHARING_VIOLATION"), _write_only_file,
            "samba: a write-only (0200) file of the owner: Samba 4.17 refuses MAXIMUM_ALLOWED and overwrites of it "
            "(ACCESS_DENIED), smbsrv grants what the mode allows (docs/access.md, the one known difference)"),
    Allowed("create", ("*",), _SAMBA_ANY, _only_closed_first_differs_after_chmod,
            "spec: [MS-SMB2] 3.3.5.10: the CLOSE of a valid handle succeeds, also when its delete on close fails "
            "after a chmod (the close before a CREATE into a busy slot; both keep the file)"),
    Allowed("disk", ("",), ("",), _target_kept_after_failed_link,
            "samba: a link with ReplaceIfExists that the kernel refuses (protected_hardlinks: another user's file): "
            "Samba 4.17 has removed the target name before it tried, and it is lost; smbsrv links under a "
            "temporary name and renames that over the target, so a failed link changes nothing"),
    Allowed("disk", ("",), ("",), _truncated_by_refused_overwrite,
            "samba: Samba 4.17 truncates a file it then refuses to overwrite (O_TRUNC at the open, the refusal "
            "after it: an ExtA context without FILE_WRITE_EA, a HIDDEN attribute not named); the refused open "
            "changes nothing on smbsrv"),
    Allowed("disk", ("",), ("",), _names_differ_in_case_only,
            "samba: Samba 4.17 remembers the case of a name per directory inode (GETREALFILENAME_CACHE, "
            "source3/smbd/files.c) after that name is gone, so a later create of \"a\" makes \"A\"; smbsrv "
            "stores the name as the client spelled it"),
    Allowed("disposition", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_DIRECTORY_NOT_EMPTY"),
            _chmod_after_handle,
            "spec: DELETE is checked against the handle's granted access ([MS-FSCC] 2.4.11, [MS-SMB2] 3.3.5.21.1), "
            "granted at its open; Samba 4.17 asks again by path (can_delete_file_in_directory) after the chmod"),
    Allowed("queryea", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",), _chmod_after_handle,
            "spec: FILE_READ_EA is checked against the handle's granted access ([MS-SMB2] 3.3.5.20.1), as above"),
    Allowed("querydir", ("STATUS_NO_SUCH_FILE", "STATUS_NO_MORE_FILES", "STATUS_ACCESS_DENIED"), ("STATUS_SUCCESS",),
            _chmod_after_handle,
            "samba: a directory handle lists through its open ([MS-FSA] 2.1.5.5 checks nothing more); after a chmod "
            "made the path unreachable, Samba 4.17's per-entry stat by path fails and leaves the entries out"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_DELETE_PENDING",), _delete_pending_before,
            "spec: opening a delete-pending file is DELETE_PENDING before any access check (fastfat's "
            "FatCommonCreate tests FCB_STATE_DELETE_ON_CLOSE before FatOpenExistingFcb checks access); Samba 4.17 "
            "checks the access first"),
    Allowed("rename", ("STATUS_OBJECT_PATH_NOT_FOUND", "STATUS_OBJECT_NAME_NOT_FOUND", "STATUS_OBJECT_NAME_COLLISION",
                       "STATUS_NOT_A_DIRECTORY"), ("STATUS_ACCESS_DENIED",), _maximum_allowed_handle,
            "spec: a rename needs DELETE in the handle's granted access before its target is looked at ([MS-SMB2] "
            "3.3.5.21.1), and MAXIMUM_ALLOWED granted another user's handle no DELETE; Samba 4.17 resolves the "
            "target first"),
    Allowed("final-close", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",), _chmod_before,
            "spec: [MS-SMB2] 3.3.5.10: the CLOSE of a valid handle succeeds, also when the delete on close it "
            "carries out fails because a chmod took the directory's permission meanwhile (smbsrv logs it); Samba "
            "4.17 answers ACCESS_DENIED; both keep the file"),
    Allowed("close", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",), _chmod_before,
            "spec: [MS-SMB2] 3.3.5.10: the CLOSE of a valid handle succeeds (as above)"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_ACCESS_DENIED",),
            lambda c: _chmod_before(c) and dict(c.samba[2]).get("closed_first") == "STATUS_ACCESS_DENIED"
            and dict(c.smbsrv[2]).get("closed_first") == "STATUS_SUCCESS",
            "spec: [MS-SMB2] 3.3.5.10: the CLOSE of a valid handle succeeds (as above; the close before a CREATE "
            "into a busy slot)"),
    Allowed("create", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",), _overwritten_after_chmod,
            "samba: the MxAc of a file Samba 4.17 overwrote after a chmod: it set the mode back to 0744 then (as "
            "below), so it reports what 0744 grants; smbsrv kept the administrator's mode and reports what that "
            "grants (docs/access.md)"),
    Allowed("rename", ("STATUS_SHARING_VIOLATION",), ("STATUS_ACCESS_DENIED",), _into_directory_user_may_not_write,
            "spec: a rename opens the target's directory to add the name, and that open's access check ([MS-FSA] "
            "2.1.5.1.2.1; FILE_ADD_FILE needs w) comes before its sharing check (2.1.5.1.2; fastfat's "
            "FatOpenExistingDcb: FatCheckFileAccess, then IoCheckShareAccess); Samba 4.17 looks for a DELETE open "
            "of that directory first (smb2_reply.c parent_dirname_compatible_open, in its own smbd process only, "
            "so on the same connection) and checks the access after (check_parent_access_fsp)"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_SHARING_VIOLATION"),
            _group_class_below_other,
            "samba: MAXIMUM_ALLOWED by a user whose class has fewer bits than everyone's (a group member of a 0604 "
            "file): Samba 4.17's synthesised DACL lets its Everyone entry grant the read the kernel refuses the "
            "group class, and its open of the file as the user then fails (EACCES: ACCESS_DENIED); smbsrv grants "
            "what the kernel gives that class (docs/access.md: here FILE_READ_ATTRIBUTES only, so no READ)"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_SHARING_VIOLATION"),
            _overwrite_by_writer_who_may_not_read,
            "samba: an overwrite by a user who may write the file but not read it (another user's 0733): Samba "
            "4.17 refuses, with or without FILE_WRITE_DATA asked and whatever attributes (measured; the same with "
            "0766 succeeds): it needs r for an overwrite (open.c open_file turns O_RDONLY|O_TRUNC into O_RDWR; with "
            "FILE_WRITE_DATA asked too, which of its steps as the user wants r is not pinned down); [MS-FSA] "
            "2.1.5.1.2.1 needs only the implied FILE_WRITE_DATA, which w gives, and smbsrv truncates with that"),
    Allowed("disposition", ("STATUS_ACCESS_DENIED",), ("STATUS_DIRECTORY_NOT_EMPTY",), _directory_user_may_not_search,
            "spec: FileDispositionInformation on a directory that has entries, through a handle granted DELETE: "
            "[MS-FSA] 2.1.5.15.3 answers DIRECTORY_NOT_EMPTY (smbsrv reads the names, which r allows); Samba 4.17 "
            "stats the entries by name through the directory (can_delete_directory_fsp), which the kernel refuses "
            "without x, and answers ACCESS_DENIED"),
    Allowed("chmod", ("done", "none"), ("none", "done"), _spelled_otherwise_before,
            "samba: a file created as \"A\" after a lookup of \"A\" had found \"a\", and \"a\" was deleted: Samba "
            "4.17's stat cache (source3/smbd/statcache.c, removed after 4.17; close.c drops a deleted name's entry "
            "only for a directory) still maps \"A\" to \"a\", so the new file is \"a\"; [MS-FSA] 2.1.5.1.1 names "
            "a new file as the request spells it, as smbsrv does (the on-disk names then differ in case only)"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_SHARING_VIOLATION"),
            _writable_unreadable_directory,
            "samba: a directory whose mode gives the user w or x but no r (0733, 0333): [MS-FSA] 2.1.5.1.2.1 grants "
            "what the descriptor allows (Samba's own synthesised DACL: FILE_ADD_FILE, FILE_ADD_SUBDIRECTORY, "
            "traverse; smbsrv grants that, no FILE_LIST_DIRECTORY), but Samba 4.17 then reopens the directory "
            "O_RDONLY for any of those rights (open.c open_directory, need_fd_access), which the kernel refuses "
            "without r: ACCESS_DENIED"),
    Allowed("querydir", ("STATUS_NO_SUCH_FILE",), ("STATUS_SUCCESS",), _only_dots_of_unsearchable_directory,
            "samba: a listing of a directory whose mode gives the user r but no x (0600, 0644): [MS-FSA] 2.1.5.6.3 "
            "lists \".\" (and \"..\") of a directory that is not the root when the pattern matches them, and "
            "smbsrv describes \".\" from its open; Samba 4.17 stats every entry by name through the directory, "
            "which the kernel refuses without x, and leaves them all out"),
    Allowed("disposition", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",), _directory_user_may_not_read,
            "samba: FileDispositionInformation on an empty directory through a handle granted DELETE succeeds "
            "([MS-FSA] 2.1.5.15.3); Samba 4.17 reads the directory as the user to see that it is empty "
            "(can_delete_directory_fsp), which the kernel refuses without r (0711), and answers ACCESS_DENIED "
            "(seed 802801 of --streams)"),
    Allowed("disposition", ("STATUS_SUCCESS",), ("STATUS_CANNOT_DELETE",), _refused_overwrite_with_eas_before,
            "samba: a refused open changes nothing ([MS-FSA] 2.1.5.1), so a READONLY file stays READONLY and its "
            "FileDispositionInformation is CANNOT_DELETE (smbsrv); Samba 4.17 had overwritten the file (attributes "
            "and all) before its set_ea of the ExtA context failed (seed 1903255 of --streams)"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",), _delete_on_close_of_directory_user_may_not_read,
            "samba: FILE_DELETE_ON_CLOSE on a directory through an open granted DELETE ([MS-FSA] 2.1.5.1.2.1; "
            "emptiness is checked at the close); Samba 4.17 reads the directory as the user at the open to see "
            "whether it is empty, which the kernel refuses without r (0711): ACCESS_DENIED (seed 3000449 of "
            "--streams; the disposition entry below is the same)"),
    Allowed("disk", ("",), ("",), _mode_reset_by_overwrite,
            "samba: Samba 4.17 sets an overwritten file's mode back to its create mode (open.c open_file_ntcreate: "
            "file_set_dosmode on FILE_WAS_OVERWRITTEN, which chmods to unix_mode(); 0744: an administrator's "
            "0600 becomes readable by everyone); smbsrv leaves the mode alone, an overwrite replaces data and "
            "attributes ([MS-FSA] 2.1.5.1.2.1), not the file's security"),
)

KNOWN: tuple[Allowed, ...] = (
    Allowed("querydir", ("STATUS_NO_SUCH_FILE",), ("STATUS_ACCESS_DENIED",), _chmod_before,
            "check: a listing through a directory handle after a chmod left the user r without x (0604) on a "
            "directory with entries: Samba 4.17 stats each entry by name, fails, and lists nothing "
            "(NO_SUCH_FILE); smbsrv answers ACCESS_DENIED (it lists \".\" and \"..\" of an empty one); "
            "[MS-FSA] 2.1.5.6.3 lists through the open; seed 1503264 of --streams, the same with a plain file"),
    Allowed("create", ("STATUS_SUCCESS",), ("STATUS_ACCESS_DENIED",), _group_class_below_other_read_control,
            "check: READ_CONTROL (with DELETE) by a group member of a 0604 file: Samba 4.17's synthesised DACL "
            "grants READ_CONTROL through its Everyone entry, smbsrv takes the group class's bits (none) and "
            "refuses (docs/access.md); seed 1101044 of --streams"),
    Allowed("queryea", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",), lambda c: c.op is not None and c.op.info_class == 7,
            "check: FileEaInformation's EaSize: Samba 4.17 counts the FILE_FULL_EA_INFORMATION list without the last "
            "entry's padding (fill_ea_chained_buffer), smbsrv pads every entry to 4 bytes (fs/eas.py size); "
            "[MS-FSCC] 2.4.12 says \"the combined length\"; Windows to be checked"),
    Allowed("create", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",), _mxac_without_read_only_cut,
            "check: the MxAc maximal access of a READONLY file: Samba 4.17 reports what the mode grants "
            "(0x1F01FF), smbsrv takes FILE_WRITE_DATA and FILE_APPEND_DATA away as [MS-FSA] 2.1.5.1.2.1 does for "
            "MAXIMUM_ALLOWED; [MS-SMB2] 3.3.5.9.5 says only \"the maximal access\"; Windows to be checked"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS",),
            lambda c: _overwrite(c) and bool(c.op.attributes & 0x7) and USERS[c.op.conn] != 0,  # type: ignore[union-attr]
            "check: another user who may write the file overwrites it asking for READONLY, HIDDEN or SYSTEM, with a handle "
            "that asks no FILE_WRITE_ATTRIBUTES: Samba 4.17 refuses (ACCESS_DENIED; the same overwrite asking no "
            "such attribute succeeds), smbsrv overwrites (the writer holds FILE_WRITE_ATTRIBUTES, the access the "
            "WDK's IRP_MJ_CREATE notes add for an overwrite); which check of Samba's refuses is not found yet"),
    Allowed("query", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",), _directory_granted_read_attributes,
            "check: FileAccessInformation of a directory handle: Samba 4.17 adds FILE_READ_ATTRIBUTES to every "
            "directory open's access (open.c open_directory, \"According to Samba4 ... always granted\") but not to "
            "a file's over SMB2 (its comment cites a Microsoft test); smbsrv reports what was granted; Windows "
            "to be checked"),
    Allowed("lock", ("STATUS_INVALID_HANDLE",), ("STATUS_SUCCESS",), _lock_without_data_access,
            "check: a LOCK through a handle with neither FILE_READ_DATA nor FILE_WRITE_DATA: [MS-FSA] 2.1.5.8 and "
            "[MS-SMB2] 3.3.5.14 check no access; Windows' NtLockFile refuses such a user-mode handle "
            "(ACCESS_DENIED), whether srv2 does is not documented; Samba 4.17 answers INVALID_HANDLE"),
    Allowed("create", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",), _archive_back_after_rename,
            "check: after a client cleared ARCHIVE and renamed the file, Samba 4.17 shows ARCHIVE again (its "
            "rename_internals_fsp sets it on every rename), smbsrv does not; [MS-FSA] 2.1.5.15.11 and smbtorture say "
            "nothing found about ARCHIVE on rename"),
    Allowed("query", ("STATUS_SUCCESS",), ("STATUS_SUCCESS",), _archive_back_after_rename,
            "check: as above, in QUERY_INFO"),
    Allowed("create", ("STATUS_ACCESS_DENIED",), ("STATUS_SUCCESS", "STATUS_NOT_A_DIRECTORY",
                                                  "STATUS_OBJECT_NAME_COLLISION", "STATUS_DELETE_PENDING"),
            _maximum_allowed_delete_on_close,
            "check: FILE_DELETE_ON_CLOSE with MAXIMUM_ALLOWED|DELETE on an existing file: Samba 4.17 refuses "
            "(ACCESS_DENIED), smbsrv opens; [MS-FSA] 2.1.5.1.2.1 grants MAXIMUM_ALLOWED every right the descriptor "
            "allows and needs only DELETE for FILE_DELETE_ON_CLOSE, why Samba refuses is not found yet"),
)


# The --streams run's entries (allowed_streams.py): they match stream names only.
_STREAM_ALLOWED, _STREAM_KNOWN = allowed_streams.stream_entries(Allowed)
ALLOWED += _STREAM_ALLOWED
KNOWN += _STREAM_KNOWN


# Samba 4.17's handle is broken after it refused a FileEndOfFileInformation (ACCESS_DENIED without
# FILE_WRITE_DATA, NO_MEMORY, INVALID_HANDLE): the same handle then shows other attributes, its next
# FileEndOfFileInformation is INVALID_HANDLE, its CLOSE FILE_CLOSED or INVALID_PARAMETER, and the connection may
# drop. Nothing after that is comparable.
SAMBA_BROKEN_HANDLE = ("samba: after Samba 4.17 refused a FileEndOfFileInformation its handle misbehaves "
                       "(attributes, INVALID_HANDLE, CLOSE fails, connection drops): the rest is not compared")


def _samba_handle_broken(context: Context) -> bool:
    return any(record[0] == "eof" and record[1] in ("STATUS_ACCESS_DENIED", "STATUS_NO_MEMORY",
                                                   "STATUS_INVALID_HANDLE")
               for record in context.samba_history)


# A file made delete-pending (FileDispositionInformation, or the close of a FILE_DELETE_ON_CLOSE open while
# others stay open) and then renamed: Samba 4.17 forgets the pending delete (its delete token belongs to the old
# name: FileStandardInformation says DeletePending 0 and the file outlives its last close), smbsrv keeps it with
# the file ([MS-FSA] 2.1.5.15.3 puts IsDeleted on Open.Link, which the rename moves). Windows to be checked.
RENAMED_DELETE_PENDING = ("check: a delete-pending file renamed: Samba 4.17 forgets the pending delete, smbsrv "
                          "keeps it (Open.Link.IsDeleted, [MS-FSA] 2.1.5.15.3); the rest is not compared")


# FILE_DELETE_ON_CLOSE given when a directory was not empty: Samba 4.17 opens it and forgets the flag
# (open_directory takes can_set_delete_on_close's DIRECTORY_NOT_EMPTY as "no delete on close"), so the
# directory stays even when it is empty at the close; smbsrv deletes it then, as Windows deletes at the close.
NON_EMPTY_DIRECTORY_DELETE_ON_CLOSE = (
    "spec: FILE_DELETE_ON_CLOSE on a directory that had entries then: [MS-FSA] 2.1.5.5 Phase 1 deletes a "
    "directory at the close of such an open when Open.File.DirectoryList is empty then, and smbsrv does; "
    "Samba 4.17 drops the flag at the open; the rest is not compared")


def _delete_on_close_of_non_empty_directory(context: Context) -> bool:
    child_seen = False
    for op, done in _succeeded(context):
        if not done or op.kind != "create":
            continue
        if "\\" in op.name:
            child_seen = True
        elif op.options & b.FILE_DELETE_ON_CLOSE and child_seen and op.name == "d":
            return True
    return False


def reason(context: Context) -> str | None:
    """The reason this difference is accepted, or None."""
    if _samba_handle_broken(context):
        return SAMBA_BROKEN_HANDLE
    if _delete_on_close_of_non_empty_directory(context):
        return NON_EMPTY_DIRECTORY_DELETE_ON_CLOSE
    if _renamed_after_disposition(context):
        return RENAMED_DELETE_PENDING
    stream_reason = allowed_streams.whole_sequence_reason(context)
    if stream_reason is not None:
        return stream_reason
    samba, smbsrv = context.samba, context.smbsrv
    for entry in ALLOWED + KNOWN:
        samba_statuses = _SAMBA_ANY if entry.samba_statuses == ("*",) else entry.samba_statuses
        if (samba[0] == smbsrv[0] == entry.kind and samba[1] in samba_statuses
                and smbsrv[1] in entry.smbsrv_statuses and entry.condition(context)):
            return entry.reason
    return None
