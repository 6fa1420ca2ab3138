"""Watch the daemon's system calls with strace(1): which file a sync reached and when each reply left.

`SyscallTrace(pid)` attaches `strace -f -p PID` (every thread, also worker threads started later) to a running
server, tracing the calls that write file data (pwrite64, pwritev, write), the ones that make it stable
(fsync, fdatasync, sync_file_range) and the ones that send replies (sendmsg, sendto, writev). `-y` names the
file behind each descriptor, `-xx -s` shows the first bytes of every buffer (enough for the SMB2 header of a
reply, [MS-SMB2] 2.2.1.2), `-ttt -T` give each call's start time and duration. `events()` parses the log into
`Event`s so a test can ask: did a sync of this file end before the reply to message N was sent?
"""

from __future__ import annotations

import re
import signal
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

_CALLS = "pwrite64,pwritev,pwritev2,write,fsync,fdatasync,sync_file_range,sendmsg,sendto,writev"
SYNC_CALLS = frozenset({"fsync", "fdatasync"})  # sync_file_range alone does not make data stable
WRITE_CALLS = frozenset({"pwrite64", "pwritev", "pwritev2", "write"})
SEND_CALLS = frozenset({"sendmsg", "sendto", "writev"})
_LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<time>\d+\.\d+)\s+(?P<rest>.*)$")
_CALL = re.compile(r"^(?P<name>\w+)\((?P<fd>\d+)<(?P<path>[^>]*)>")
_RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>")
_DURATION = re.compile(r"<(?P<seconds>\d+\.\d+)>$")
_BYTES = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')
_SMB2_FLAGS_SERVER_TO_REDIR = 0x1


@dataclass
class Event:
    """One completed system call of the server."""

    name: str
    path: str  # what -y showed for the descriptor: a file path, or e.g. "TCP:[...]" for a socket
    start: float
    end: float
    text: str

    def replies(self) -> list[tuple[int, int]]:
        """(Command, MessageId) of every SMB2 response header visible in the buffers this call sent."""
        found = []
        for blob in _BYTES.findall(self.text):
            data = bytes.fromhex(blob.replace("\\x", ""))
            position = data.find(b"\xfeSMB")
            while position >= 0 and len(data) - position >= 32:
                command, _credits, flags, _next, message_id = struct.unpack_from("<HHIIQ", data, position + 12)
                if flags & _SMB2_FLAGS_SERVER_TO_REDIR:
                    found.append((command, message_id))
                position = data.find(b"\xfeSMB", position + 4)
        return found


class SyscallTrace:
    def __init__(self, pid: int, log_path: Path) -> None:
        self.pid = pid
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        argv = ["strace", "-f", "-p", str(self.pid), "-e", f"trace={_CALLS}", "-y", "-xx", "-s", "160",
                "-ttt", "-T", "-o", str(self.log_path)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def wait_attached(self, poke: object, timeout_s: float = 20.0) -> None:
        """Until the log shows a reply being sent: `poke()` makes the server answer something (an ECHO)."""
        deadline = time.monotonic() + timeout_s
        while True:
            assert callable(poke)
            poke()
            time.sleep(0.2)
            if any(event.name in SEND_CALLS for event in self.events()):
                return
            assert self.process is not None and self.process.poll() is None, "strace exited"
            assert time.monotonic() < deadline, "strace never saw the server send anything"

    def stop(self) -> None:
        """Detach (SIGINT makes strace let go of every thread and finish its log)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def events(self) -> list[Event]:
        """Completed calls in log order; a call split by another thread ("unfinished ... resumed") is joined."""
        if not self.log_path.exists():
            return []
        pending: dict[str, tuple[float, str]] = {}
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _LINE.match(line)
            if match is None:
                continue
            pid, start, rest = match.group("pid"), float(match.group("time")), match.group("rest")
            if rest.endswith("<unfinished ...>"):
                pending[pid] = (start, rest)
                continue
            resumed = _RESUMED.match(rest)
            if resumed is not None:
                if pid not in pending:
                    continue
                start, head = pending.pop(pid)
                rest = head.removesuffix("<unfinished ...>") + rest[resumed.end():]
            call = _CALL.match(rest)
            duration = _DURATION.search(rest)
            if call is None or duration is None:
                continue
            events.append(Event(call.group("name"), _unescape(call.group("path")), start,
                                start + float(duration.group("seconds")), rest))
        return events


def _unescape(text: str) -> str:
    """-xx prints every byte of a path as \\xHH too."""
    return re.sub(r"\\x([0-9a-f]{2})", lambda match: chr(int(match.group(1), 16)), text)


def sync_before_reply(events: list[Event], path: Path, command: int, message_id: int) -> str | None:
    """None when a sync of `path` ran after the last data write to it and ended before the reply to
    (command, message_id) was sent; otherwise why not, for the assertion message."""
    target = str(path)
    reply = next((event for event in events if event.name in SEND_CALLS
                  and (command, message_id) in event.replies()), None)
    if reply is None:
        return f"no reply to command {command:#x} message {message_id} in the trace"
    before = [event for event in events if event.end <= reply.start and event.path == target]
    writes = [event for event in before if event.name in WRITE_CALLS]
    if not writes:
        return f"no write to {target} before the reply"
    syncs = [event for event in before if event.name in SYNC_CALLS and event.start >= writes[-1].end]
    if not syncs:
        seen = sorted({event.name for event in before})
        return f"no fsync/fdatasync of {target} between its last write and the reply (calls on it: {seen})"
    return None
