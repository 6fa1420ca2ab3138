"""FILETIME ([MS-DTYP] 2.3.3: 100 ns intervals since 1601-01-01 UTC) and Unix nanoseconds: the one conversion.

Every FILETIME the server sends or receives goes through here: file times (stat -> FileInfo), the times a
client sets with FileBasicInformation, NEGOTIATE's SystemTime and NTLM's timestamp.

Range. A FILETIME is a signed 64-bit count, so it reaches 30828-09-14; Unix nanoseconds in an int64 end in
2262, and ext4 (256-byte inodes) stores seconds up to 2446-05-10 (0x37FFFFFFF). Python integers do not
overflow, so conversions are exact here; a time the file system cannot hold is clamped by the kernel when it
is set (utimensat, Linux >= 5.4) and reported as clamped afterwards, as Samba on the same file system does.
"""

from __future__ import annotations

import time

# 1970-01-01 minus 1601-01-01, in 100 ns units.
FILETIME_UNIX_EPOCH = 116444736000000000
FILETIME_MAX = 0x7FFFFFFFFFFFFFFF

# [MS-FSCC] 2.4.7 FileBasicInformation: what these time values mean in a SET_INFO ([MS-FSA] 2.1.5.15.2).
FILETIME_UNCHANGED = 0  # leave the time as it is
FILETIME_STOP_UPDATES = -1  # leave it, and stop the file system updating it for this handle
FILETIME_RESUME_UPDATES = -2  # leave it, and resume automatic updates


def unix_ns_to_filetime(ns: int) -> int:
    """st_*time_ns -> FILETIME. Times before 1601 become 0 (which SET_INFO reads as "unchanged"); none can be
    later than FILETIME_MAX."""
    ft = ns // 100 + FILETIME_UNIX_EPOCH
    if ft < 0:
        return 0
    if ft > FILETIME_MAX:
        return FILETIME_MAX
    return ft


def filetime_to_unix_ns(ft: int) -> int:
    """FILETIME -> nanoseconds since the Unix epoch (negative before 1970; past int64 after 2262, which is
    fine for Python and for utimensat's 64-bit tv_sec)."""
    return (ft - FILETIME_UNIX_EPOCH) * 100


def filetime_now() -> int:
    return unix_ns_to_filetime(time.time_ns())


def time_to_set(value: int) -> int | None:
    """A FileBasicInformation time (signed, already checked to be >= -2 by the decoder): the FILETIME to give
    the file, or None for 0, -1 and -2, which change nothing. Whether -1 stops later automatic updates is not
    kept: Linux updates mtime/ctime on every write and has no per-handle switch."""
    return value if value > FILETIME_UNCHANGED else None
