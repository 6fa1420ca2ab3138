"""Windows' delayed LastWriteTime update while a file is open, Samba 4.17's rules (source3/smbd/fileio.c
trigger_write_time_update, close.c update_write_time_on_close).

[MS-FSA] 2.1.4.17 lets a file system postpone the LastWriteTime update of a WRITE; Windows (and Samba) update it
once, 2 seconds after a handle's first write, and then at that handle's close. Between, every open of the file
sees the same frozen time, whatever the kernel's mtime says after each pwrite:

- A handle's first WRITE freezes the time the file shows (the mtime before that write) and schedules an update
  2 s later; later writes of that handle only ask for an update at its close.
- The update, when due, shows the time it fell due and sets the file's mtime to it. FLUSH, an end-of-file
  change and SET_INFO FileBasicInformation of a handle that wrote, and any FileAllocationInformation, update at
  once ("immediate": Samba's trigger_write_time_update_immediate), which also cancels the handle's pending one.
- A LastWriteTime a handle sets (FileBasicInformation) is sticky for that handle: shown at once, and its
  writes no longer move the time; its close writes it to the file again.
- A close of a handle that wrote since its last update sets the time to the moment of the close.

The state lives in the file's FileState (files/table.py), so every open, connection and listing sees the same
time; it goes with the file's last open. Nothing runs on a timer: a due update is carried out the next time the
file's time is looked at, with the time it fell due. POSIX opens (SMB3 POSIX extensions) skip all of this, as in
Samba: their writes move the time at once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from smbsrv.errors import SmbError
from smbsrv.fs.fileinfo import FileInfo
from smbsrv.fscc.times import unix_ns_to_filetime

if TYPE_CHECKING:
    from smbsrv.protocol.objects import Open

DELAY_NS = 2_000_000_000  # Samba's WRITE_TIME_UPDATE_USEC_DELAY; Windows waits as long


class _Handle:
    """One open's part ([MS-FSA] does not name it; Samba's fsp flags)."""

    __slots__ = ("due_ns", "forced", "modified", "on_close")

    def __init__(self) -> None:
        self.due_ns: int | None = None  # when the delayed update of its first write falls due
        self.modified = False  # the handle wrote
        self.on_close = False  # a write since the last update: update at close
        self.forced = False  # the handle set LastWriteTime itself (sticky)


class WriteTime:
    """The time every open of one file shows as LastWriteTime while an update is pending or has been made."""

    __slots__ = ("handles", "shown_ns")

    def __init__(self, shown_ns: int) -> None:
        self.shown_ns = shown_ns
        self.handles: dict[Open, _Handle] = {}  # entries go at the open's close


def _tracked(open_: Open) -> bool:
    return not open_.posix and not open_.is_directory and open_.pipe is None and open_.file is not None


def _state(open_: Open) -> WriteTime | None:
    return open_.file.write_time if open_.file is not None else None  # type: ignore[no-any-return]


def _set_disk_time(open_: Open, mtime_ns: int) -> None:
    """The file's mtime becomes the shown time, so that it stays after the last close. A caller that may not
    set times explicitly (not the owner) leaves the kernel's time; the shown one holds while the file is open."""
    try:
        open_.handle.set_times(None, mtime_ns)
    except (SmbError, OSError):
        pass


def _settle(state: WriteTime, opens: list[Open]) -> None:
    """Carry out every update that fell due, in order, each with the time it fell due."""
    now = time.time_ns()
    due = [(handle.due_ns, open_) for open_ in opens
           if (handle := state.handles.get(open_)) is not None
           and handle.due_ns is not None and handle.due_ns <= now]
    for due_ns, open_ in sorted(due, key=lambda pair: pair[0]):
        _immediate(state, open_, due_ns)


def _immediate(state: WriteTime, open_: Open, at_ns: int | None = None) -> None:
    handle = state.handles.setdefault(open_, _Handle())
    if handle.forced:
        return
    handle.due_ns = None
    handle.on_close = False
    state.shown_ns = time.time_ns() if at_ns is None else at_ns
    _set_disk_time(open_, state.shown_ns)


def before_write(open_: Open) -> None:
    """Called before a WRITE's data goes to the file (Samba's mark_file_modified)."""
    if not _tracked(open_):
        return
    file = open_.file
    state = file.write_time
    if state is None:
        state = file.write_time = WriteTime(open_.handle.stat().st_mtime_ns)
    else:
        _settle(state, file.opens)
    handle = state.handles.setdefault(open_, _Handle())
    first = not handle.modified
    handle.modified = True
    if handle.forced:
        return
    handle.on_close = True
    if first:
        handle.due_ns = time.time_ns() + DELAY_NS


def update_now(open_: Open, *, only_if_written: bool = True) -> None:
    """An immediate update (FLUSH, end of file, FileBasicInformation: when the handle wrote; allocation:
    always). Without a pending state there is nothing frozen: the kernel's time is already current."""
    if not _tracked(open_):
        return
    state = _state(open_)
    if state is None:
        return
    handle = state.handles.get(open_)
    if only_if_written and (handle is None or not handle.modified):
        return
    _immediate(state, open_)


def set_by_client(open_: Open) -> None:
    """FileBasicInformation gave LastWriteTime (already set on the file): sticky for this handle, shown by
    every open at once, as the file system holds it (the kernel clamps what it cannot store)."""
    if not _tracked(open_):
        return
    mtime_ns = open_.handle.stat().st_mtime_ns
    file = open_.file
    state = file.write_time
    if state is None:
        state = file.write_time = WriteTime(mtime_ns)
    handle = state.handles.setdefault(open_, _Handle())
    handle.forced = True
    handle.due_ns = None
    handle.on_close = False
    state.shown_ns = mtime_ns


def stop_updates(open_: Open, stop: bool) -> None:
    """FileBasicInformation LastWriteTime -1 / -2 ([MS-FSA] 2.1.5.15.2 Open.UserSetModificationTime): this
    handle's writes no longer move the time (the one shown now is kept), or move it again."""
    if not _tracked(open_):
        return
    file = open_.file
    state = file.write_time
    if state is None:
        if not stop:
            return
        state = file.write_time = WriteTime(open_.handle.stat().st_mtime_ns)
    else:
        _settle(state, file.opens)
    handle = state.handles.setdefault(open_, _Handle())
    handle.forced = stop
    if stop:
        handle.due_ns = None
        handle.on_close = False


def closing(open_: Open) -> None:
    """Before a handle goes: a sticky time is written again, a write since the last update sets the time to
    now. Idempotent (CLOSE calls it before its answer, the teardown again)."""
    if not _tracked(open_):
        return
    state = _state(open_)
    if state is None:
        return
    _settle(state, open_.file.opens)
    handle = state.handles.pop(open_, None)
    if handle is None:
        return
    if handle.forced:
        _set_disk_time(open_, state.shown_ns)
    elif handle.on_close:
        state.shown_ns = time.time_ns()
        _set_disk_time(open_, state.shown_ns)


def shown(open_: Open, info: FileInfo) -> FileInfo:
    """`info` of an open file with the LastWriteTime every open sees."""
    state = _state(open_) if open_.pipe is None else None
    if state is not None:
        _settle(state, open_.file.opens)
        info.last_write_time = unix_ns_to_filetime(state.shown_ns)
    return info


def shown_for(file: object, info: FileInfo) -> FileInfo:
    """The same for a listing entry whose file is open (`file` its FileState, None when it is not)."""
    state = getattr(file, "write_time", None)
    if state is not None:
        _settle(state, file.opens)  # type: ignore[attr-defined]
        info.last_write_time = unix_ns_to_filetime(state.shown_ns)
    return info
