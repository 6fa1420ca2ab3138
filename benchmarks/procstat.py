"""CPU time and memory of a server's whole process tree, read from /proc (proc(5)).

Samba forks one child per connection, so a server's cost is its process plus every descendant. For CPU,
each live process contributes utime+stime (its own threads) plus cutime+cstime (children it has already
waited for, which in turn include their own reaped descendants); summing over the live tree therefore
also counts the children that exited during a run. Memory is the sum of resident pages (statm) or of the
proportional set size (smaps_rollup), which divides shared pages between the processes that map them.
"""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import Self

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        # A process that exits while we read gives ESRCH; it is simply gone.
        return None


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name, so index 0 is field 3 (state)."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return text[text.rfind(")") + 2 :].split()


def tree_pids(root_pid: int) -> list[int]:
    """The root and all its live descendants, found by scanning every process's parent id."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = stat_fields(int(name))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    if _read(f"/proc/{root_pid}/stat") is None:
        return []
    found = [root_pid]
    index = 0
    while index < len(found):
        found.extend(children.get(found[index], ()))
        index += 1
    return found


def tree_cpu_s(root_pid: int) -> float:
    """utime+stime+cutime+cstime summed over the live tree, in seconds."""
    ticks = 0
    for pid in tree_pids(root_pid):
        fields = stat_fields(pid)
        if fields is None:
            continue
        # proc(5) fields 14-17 are utime, stime, cutime, cstime; index 0 here is field 3.
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS_PER_S


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        text = _read(f"/proc/{pid}/statm")
        if text:
            total += int(text.split()[1]) * PAGE_SIZE
    return total


def pss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        text = _read(f"/proc/{pid}/smaps_rollup")
        if not text:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


def tree_rss_bytes(root_pid: int) -> int:
    return rss_bytes(tree_pids(root_pid))


def tree_pss_bytes(root_pid: int) -> int:
    return pss_bytes(tree_pids(root_pid))


class PeakRssSampler:
    """Samples the tree's summed RSS every interval_s in a background thread; use as a context manager."""

    def __init__(self, root_pid: int, interval_s: float = 0.1) -> None:
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self.root_pid))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> Self:
        self.sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class ServerUsage:
    """The server tree's CPU time and peak RSS over a measured stretch; use as a context manager. The CPU window
    closes at `stop()` when a workload must leave out what follows (teardown, settling), else at the block's end."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.cpu_s = 0.0
        self._cpu_before_s: float | None = None
        self._sampler = PeakRssSampler(root_pid)

    @property
    def peak_bytes(self) -> int:
        return self._sampler.peak_bytes

    def __enter__(self) -> Self:
        self._cpu_before_s = tree_cpu_s(self.root_pid)
        self._sampler.__enter__()
        return self

    def stop(self) -> None:
        if self._cpu_before_s is not None:
            self.cpu_s = tree_cpu_s(self.root_pid) - self._cpu_before_s
            self._cpu_before_s = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._sampler.__exit__(exc_type, exc, tb)


def wait_for_exit(pid: int, timeout_s: float) -> bool:
    """Poll until /proc/PID is gone or a zombie; True if it went away in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fields = stat_fields(pid)
        if fields is None or fields[0] == "Z":
            return True
        time.sleep(0.05)
    return False
