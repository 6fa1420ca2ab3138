"""Case-insensitive name lookup for one directory at a time, with a cache that survives bursts of creates.

Windows compares names with a per-UTF-16-unit uppercase table ([MS-FSA] 2.1.1.1 "upcase table"), not full
Unicode case folding: 'ß' stays 'ß', and a name never changes length. `fold()` imitates that with Python's
simple one-to-one uppercase mappings over the BMP. Unicode normalization (NFC vs NFD) is not folded.

The index of a directory maps fold(name) -> on-disk name. It is keyed by (st_dev, st_ino) of the directory and
is valid while the directory's (st_mtime_ns, st_ctime_ns) are unchanged: Linux updates both on every create,
unlink and rename inside it, and ctime cannot be set back by a user (mtime alone can, with utimes). Kernels with
multigrain timestamps (6.13+, ext4/xfs/btrfs/tmpfs) give a fresh, distinct timestamp to the first change after
someone read them, and we read them when we build the index, so two creates never share one mtime. On other
kernels a change in the same clock tick as the scan can go unseen; see `_SUSPECT_WINDOW_NS`.

Our own creates and removals update the index in place (`note_created` / `note_removed`) and re-stamp it with
the directory's new times, so 10,000 creates in one directory cost one scan, not 10,000 (Samba rescans each
time). Re-stamping would also swallow an unrelated change made by someone else in the same instant, so an
index that was re-stamped, or scanned while its mtime was suspiciously fresh, is trusted for at most
`TENTATIVE_TRUST_S` after its last full scan. That bounds how long a case-variant created behind our back can
stay invisible.
"""

import os
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from smbsrv.fs import identity

TENTATIVE_TRUST_S = 1.0
MAX_CACHED_DIRECTORIES = 512
# A scan made within this long after the directory's last change may have missed a change in the same coarse
# clock tick (kernels without multigrain timestamps tick at 1-10 ms).
_SUSPECT_WINDOW_NS = 20_000_000

_upcase_table: dict[int, str] | None = None
_table_lock = threading.Lock()


def _build_upcase_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for cp in range(0x80, 0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        upper = chr(cp).upper()
        if len(upper) == 1 and upper != chr(cp):
            table[cp] = upper
    for cp in range(ord("a"), ord("z") + 1):
        table[cp] = chr(cp - 32)
    return table


def fold(name: str) -> str:
    """The key under which Windows would consider two names equal."""
    if name.isascii():
        return name.upper()
    global _upcase_table
    if _upcase_table is None:
        with _table_lock:
            if _upcase_table is None:
                _upcase_table = _build_upcase_table()
    return name.translate(_upcase_table)


@dataclass(slots=True)
class _DirIndex:
    names: dict[str, str]
    mtime_ns: int
    ctime_ns: int
    scanned_at: float  # time.monotonic() of the last full scan
    tentative: bool
    # The identities (fs/identity.current()) that may list the directory, while its mode and owner are `perm`
    # (our own creates stamp the index valid again after a chmod's ctime, so the ctime cannot tell).
    listers: set[object] = field(default_factory=set)
    perm: tuple[int, int, int] = (0, 0, 0)


def _is_valid_utf8(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogateescape'd bytes: no SMB client can name this entry
        return False
    return True


def _listing_fd(dir_fd: int) -> int:
    """A readable descriptor of the directory, opened as the acting user (PermissionError if they may not list
    it); listdir needs one, and reopening '.' through the O_PATH fd names the same inode, race-free."""
    return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)


class NameIndexCache:
    """Per-directory case-insensitive indexes, shared by all threads of one share."""

    def __init__(self, max_directories: int = MAX_CACHED_DIRECTORIES) -> None:
        self._lock = threading.Lock()
        self._indexes: OrderedDict[tuple[int, int], _DirIndex] = OrderedDict()
        self._max = max_directories
        self.scans = 0  # full directory scans done; the tests and the benchmark read it

    def lookup(self, dir_fd: int, name: str) -> str | None:
        """The on-disk name in the directory `dir_fd` (any fd, O_PATH is fine) that equals `name` ignoring case.

        Raises PermissionError when the acting user may not list the directory (0711, a 0733 drop box), also
        when the index is cached from someone who could: finding a name by another spelling is reading the
        directory, so such a user meets only the exact spelling, and anything else is refused, as on Samba
        4.17 (its get_real_filename_at lists the directory as the user: ACCESS_DENIED)."""
        dir_st = os.fstat(dir_fd)
        key = (dir_st.st_dev, dir_st.st_ino)
        wanted = fold(name)
        now = time.monotonic()
        with self._lock:
            entry = self._indexes.get(key)
            if entry is not None and self._still_valid(entry, dir_st, now):
                self._indexes.move_to_end(key)
                found = entry.names.get(wanted)
            elif entry is not None:
                # Out of date: gone now, so that our next create's note_created cannot stamp it valid again
                # (with the names and listers of before a chmod) when the scan below is refused.
                del self._indexes[key]
                entry = None
        if entry is not None:
            me = identity.current()
            perm = (dir_st.st_mode, dir_st.st_uid, dir_st.st_gid)
            if entry.perm != perm:
                entry.listers, entry.perm = set(), perm
            if me not in entry.listers:
                os.close(_listing_fd(dir_fd))  # the same permission check as a scan, for this user
                entry.listers.add(me)
            return found
        entry = self._scan(dir_fd, dir_st, now)
        entry.listers.add(identity.current())
        entry.perm = (dir_st.st_mode, dir_st.st_uid, dir_st.st_gid)
        with self._lock:
            self._indexes[key] = entry
            self._indexes.move_to_end(key)
            while len(self._indexes) > self._max:
                self._indexes.popitem(last=False)
        return entry.names.get(wanted)

    def note_created(self, dir_fd: int, name: str) -> None:
        """We just created `name` in `dir_fd`: update the index in place instead of letting it go stale."""
        self._update(dir_fd, name, add=True)

    def note_removed(self, dir_fd: int, name: str) -> None:
        """We just removed (or renamed away) `name` from `dir_fd`."""
        self._update(dir_fd, name, add=False)

    def forget(self, dir_fd: int) -> None:
        dir_st = os.fstat(dir_fd)
        with self._lock:
            self._indexes.pop((dir_st.st_dev, dir_st.st_ino), None)

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()

    @staticmethod
    def _still_valid(entry: _DirIndex, dir_st: os.stat_result, now: float) -> bool:
        if entry.mtime_ns != dir_st.st_mtime_ns or entry.ctime_ns != dir_st.st_ctime_ns:
            return False
        return not entry.tentative or now - entry.scanned_at < TENTATIVE_TRUST_S

    def _scan(self, dir_fd: int, dir_st: os.stat_result, now: float) -> _DirIndex:
        list_fd = _listing_fd(dir_fd)
        try:
            entries = os.listdir(list_fd)
        finally:
            os.close(list_fd)
        names: dict[str, str] = {}
        for entry_name in entries:
            if not _is_valid_utf8(entry_name):
                continue
            key = fold(entry_name)
            known = names.get(key)
            # Two on-disk names that differ only in case: pick one deterministically.
            if known is None or entry_name < known:
                names[key] = entry_name
        self.scans += 1
        suspect = time.time_ns() - dir_st.st_mtime_ns < _SUSPECT_WINDOW_NS
        return _DirIndex(names, dir_st.st_mtime_ns, dir_st.st_ctime_ns, now, suspect)

    def _update(self, dir_fd: int, name: str, *, add: bool) -> None:
        dir_st = os.fstat(dir_fd)
        if not stat.S_ISDIR(dir_st.st_mode):
            return
        key = (dir_st.st_dev, dir_st.st_ino)
        with self._lock:
            entry = self._indexes.get(key)
            if entry is None:
                return
            folded = fold(name)
            if add:
                known = entry.names.get(folded)
                if known is None or name < known:
                    entry.names[folded] = name
            elif entry.names.get(folded) == name:
                # Another case variant may still exist on disk (only POSIX or local users can make one); the
                # tentative mark below bounds how long it can stay hidden.
                del entry.names[folded]
            entry.mtime_ns = dir_st.st_mtime_ns
            entry.ctime_ns = dir_st.st_ctime_ns
            entry.tentative = True
