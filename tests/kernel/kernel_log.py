"""Checks the guest's kernel log (dmesg) after a cifs.ko run.

Every "CIFS: VFS:" line is an error that cifs.ko reports about the server or its own state, so a run fails if
any appears, as it does on kernel warnings, oopses and hung-task reports. The exceptions are listed here, each
with the reason it is expected:

1. Inside a stretch marked by the guest (SMBTEST-EXPECTED-ERRORS-BEGIN/END <name>, written to /dev/kmsg by
   guest/smbtest.sh around a mount that must fail), the messages that failing mount prints are expected.
   Only the ones listed in EXPECTED_IN_MARKED_STRETCH[name] are; anything else in the stretch still fails.

2. KNOWN_CLIENT_NOISE: messages that cifs.ko prints because of its own bookkeeping while the server behaves as
   the spec says, proven from a packet capture and a cifs FYI trace (see the entry's note). Each applies only
   to the servers that do what provokes it: the lease-break noise only where the server sends lease breaks
   (Samba, and smbsrv since it grants leases).

The guest writes "SMBTEST-STEP <name>" to /dev/kmsg when a step starts, so each problem names its step.
"""

from __future__ import annotations

import dataclasses
import re

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_STEP_MARK = re.compile(r"^SMBTEST-STEP (\S+)")
_STRETCH_BEGIN = re.compile(r"^SMBTEST-EXPECTED-ERRORS-BEGIN (\S+)")
_STRETCH_END = re.compile(r"^SMBTEST-EXPECTED-ERRORS-END (\S+)")

# "CIFS: VFS:" since 5.x; "CIFS VFS:" in older kernels.
CIFS_ERROR = re.compile(r"CIFS:? VFS:")
KERNEL_TROUBLE = re.compile(
    r"^(BUG:|WARNING:|Oops|general protection fault|kernel BUG|Kernel panic|Call Trace:|"
    r"INFO: task .* blocked for more than|UBSAN:|KASAN:|list_(add|del) corruption)"
)

EXPECTED_IN_MARKED_STRETCH: dict[str, tuple[re.Pattern[str], ...]] = {
    # SESSION_SETUP answered STATUS_LOGON_FAILURE: cifs.ko logs the failed setup (-EACCES) and the failed
    # mount; it tries twice (once more after reconnecting), so each line may appear more than once.
    "wrong_password": (
        re.compile(r"CIFS: VFS: \\\\\S+ Send error in SessSetup = -13$"),
        re.compile(r"CIFS: VFS: cifs_mount failed w/return code = -13$"),
    ),
    # TREE_CONNECT answered STATUS_BAD_NETWORK_NAME: cifs.ko names the share and fails with -ENOENT.
    "missing_share": (
        re.compile(r"CIFS: VFS: BAD_NETWORK_NAME: \\\\\S+\\no-such-share$"),
        re.compile(r"CIFS: VFS: cifs_mount failed w/return code = -2$"),
    ),
    # guest/posix_sweep.sh around posixcheck on the cifs mount. A name with bytes that are not UTF-8 cannot
    # become UTF-16 (cifs_unicode.c cifs_strtoUTF16 logs each byte). O_TMPFILE: cifs.ko's __cifs_do_create
    # reads the inode with the non-POSIX cifs_get_inode_info, whose path query on a POSIX mount comes back as
    # FilePosixInformation (HardLinks 1 on the wire, captured), and then takes NumberOfLinks from the
    # FILE_ALL_INFORMATION fields it never filled: 0, "bogus".
    "posix_sweep": (
        re.compile(r"CIFS: VFS: strtoUTF16: char2uni of 0x[0-9a-f]{2} returned -22$"),
        re.compile(r"CIFS: VFS: bogus file nlink value 0$"),
    ),
}


@dataclasses.dataclass(frozen=True)
class ClientNoise:
    """A cifs.ko message that is not a server fault, allowed only in the named steps."""

    name: str
    pattern: re.Pattern[str]
    step_suffixes: tuple[str, ...]
    servers: tuple[str, ...]  # RunningServer.kind of the servers whose behaviour provokes it
    # The hex dump cifs.ko prints after the message must start like this (None: no check).
    next_line: re.Pattern[str] | None
    note: str


KNOWN_CLIENT_NOISE: tuple[ClientNoise, ...] = (
    ClientNoise(
        name="lease break for the other name of a hard link not matched",
        pattern=re.compile(r"CIFS: VFS: \\\\\S+ No task to wake, unknown frame received! NumMids \d+$"),
        step_suffixes=("/hardlink",),
        servers=("samba", "smbsrv"),  # both grant leases and break them (smbsrv: files/oplocks.py)
        # An unsolicited OPLOCK_BREAK (command 0x0012, MessageId 0xFFFFFFFFFFFFFFFF): a lease break
        # notification, not a reply to any request.
        next_line=re.compile(r"^00000000: 424d53fe [0-9a-f]{8} [0-9a-f]{8} [0-9a-f]{4}0012 "),
        note=(
            "cifs.ko gives the second name of a hard link its own inode (the server reports the same file id, "
            "which cifs treats as an inode-number collision), and so its own lease key. Writing through the "
            "second name makes the server break the first name's lease to none ([MS-SMB2] 3.3.4.7), which it "
            "must do since both keys lease the same file. cifs.ko then fails to match that break to the open "
            "it still holds for the first name ('Can not process lease break - no lease matched' in the FYI "
            "trace) and prints this. Seen with Samba 4.17 and with smbsrv on 6.1 for every dialect and cache mode; capture: "
            "CREATE h2 (lease 7) -> break h1 7->3, ack -> WRITE h2 -> break h1 3->0 (unmatched) -> CLOSE h1."
        ),
    ),
)


@dataclasses.dataclass(frozen=True)
class KernelLogLine:
    step: str | None
    line: str
    reason: str


def _strip_timestamp(line: str) -> str:
    return _TIMESTAMP.sub("", line.strip())


def check_kernel_log(dmesg: list[str], server: str) -> tuple[list[KernelLogLine], list[KernelLogLine]]:
    """Returns (problems, allowed): every error line, split by whether one of the exceptions above covers it for
    `server` (a RunningServer.kind: "smbsrv" or "samba")."""
    lines = [_strip_timestamp(line) for line in dmesg]
    problems: list[KernelLogLine] = []
    allowed: list[KernelLogLine] = []
    step: str | None = None
    stretch: str | None = None
    for index, line in enumerate(lines):
        if (match := _STEP_MARK.match(line)) is not None:
            step = match.group(1)
            continue
        if (match := _STRETCH_BEGIN.match(line)) is not None:
            stretch = match.group(1)
            continue
        if _STRETCH_END.match(line) is not None:
            stretch = None
            continue
        if KERNEL_TROUBLE.match(line):
            problems.append(KernelLogLine(step, line, "kernel warning or crash"))
            continue
        if not CIFS_ERROR.search(line):
            continue
        if stretch is not None:
            expected = EXPECTED_IN_MARKED_STRETCH.get(stretch, ())
            if any(pattern.search(line) for pattern in expected):
                allowed.append(KernelLogLine(step, line, f"expected while checking {stretch}"))
            else:
                problems.append(KernelLogLine(step, line, f"not among the errors expected for {stretch}"))
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        for noise in KNOWN_CLIENT_NOISE:
            if not noise.pattern.search(line):
                continue
            if server not in noise.servers or step is None or not step.endswith(noise.step_suffixes):
                continue
            if noise.next_line is not None and not noise.next_line.match(following):
                continue
            allowed.append(KernelLogLine(step, line, f"known cifs.ko noise: {noise.name}"))
            break
        else:
            problems.append(KernelLogLine(step, line, "cifs.ko reported an error"))
    return problems, allowed


def format_lines(entries: list[KernelLogLine]) -> str:
    return "\n".join(f"  [{entry.step or 'before any step'}] {entry.line}  ({entry.reason})" for entry in entries)


def assert_no_kernel_errors(dmesg: list[str], server: str) -> None:
    """Fail on any error line of the guest's kernel log that no known exception covers for `server`; print the
    covered ones."""
    assert dmesg, "guest printed no kernel log"
    problems, allowed = check_kernel_log(dmesg, server)
    if allowed:
        print("expected kernel messages:\n" + format_lines(allowed))
    assert not problems, "unexpected kernel messages:\n" + format_lines(problems)
