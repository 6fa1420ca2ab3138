"""Drive one smbclient process and time a block of its commands from inside the connected session.

smbclient reads its script from stdin. The whole script is written at once and stdin is closed: with a
non-tty stdin smbclient polls the descriptor and then reads through stdio, so lines left in the stdio buffer
wait for more input or for the hang-up (Samba 4.17, source3/lib/readline.c), and closing stdin avoids that.
Lines starting with "!" run through system(), and smbclient waits for them.

The script looks like this:

    <setup commands>                 cd, lcd, prompt: not timed
    !date +@T@%s.%N                  two stamps in a row: what the stamps themselves cost
    !date +@T@%s.%N
    !read x < GATE_START             smbclient waits in a shell until we release it
    !date +@T@%s.%N                  start stamp
    <timed commands>
    !date +@T@%s.%N                  end stamp
    !read x < GATE_END               waits again, so server CPU is read while the session is idle
    quit

Process start, connect and logoff fall outside the timed block. The stamps are taken by processes that
smbclient starts at the moment it reaches them, so they do not depend on when the benchmark process gets
scheduled; on two busy cores that can lag by tens of milliseconds. They cost one fork+exec of date(1)
(about a millisecond, measured by the first pair and reported as timer_overhead_s, not subtracted) on top of
the timed commands.
"""

from __future__ import annotations

import errno
import os
import pty
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from benchmarks import procstat
from benchmarks.servers import Endpoint

_STAMP_COMMAND = "!date +@T@%s.%N"
_STAMP = re.compile(rb"@T@(\d+\.\d+)")
_GATE_POLL_MAX_S = 0.02


class SessionError(RuntimeError):
    """smbclient failed, timed out, or reported an NT_STATUS error in the timed block."""


def write_client_config(workdir: Path) -> Path:
    """An empty smb.conf, so the host's /etc/samba/smb.conf cannot change client behaviour."""
    conf = workdir / "client.conf"
    if not conf.exists():
        conf.write_text("[global]\n")
    return conf


class SmbclientSession:
    """One smbclient process running one script; see the module docstring for the protocol."""

    def __init__(
        self,
        endpoint: Endpoint,
        workdir: Path,
        tag: str,
        setup: list[str],
        commands: list[str],
        signing_required: bool,
        timeout_s: float,
    ) -> None:
        self.endpoint = endpoint
        self.tag = tag
        self.timeout_s = timeout_s
        self.gate_start = workdir / f"gate-{tag}-start"
        self.gate_end = workdir / f"gate-{tag}-end"
        self.script = "\n".join(
            [
                *setup,
                _STAMP_COMMAND,
                _STAMP_COMMAND,
                f"!read x < {self.gate_start}",
                _STAMP_COMMAND,
                *commands,
                _STAMP_COMMAND,
                f"!read x < {self.gate_end}",
                "quit",
                "",
            ]
        ).encode()
        self.argv = [
            "smbclient",
            f"//{endpoint.host}/{endpoint.share}",
            "-p",
            str(endpoint.port),
            "-U",
            endpoint.username,
            "-m",
            "SMB3",
            "-s",
            str(write_client_config(workdir)),
        ]
        if signing_required:
            self.argv.append("--client-protection=sign")
        self.proc: subprocess.Popen[bytes] | None = None
        self._master_fd = -1
        self._output = bytearray()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._gate_fd = -1

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        for gate in (self.gate_start, self.gate_end):
            if gate.exists():
                gate.unlink()
            os.mkfifo(gate)
        master, slave = pty.openpty()
        self._master_fd = master
        # The password goes through the environment rather than the command line (smbclient reads PASSWD).
        env = dict(os.environ, PASSWD=self.endpoint.password)
        try:
            # stdout on a pty keeps smbclient line-buffered; a pipe would hold output back until exit.
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=slave,
                stderr=slave,
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        self._reader = threading.Thread(target=self._read_output, name=f"smbclient-{self.tag}", daemon=True)
        self._reader.start()
        # A writer thread, since a long script can exceed the pipe buffer before smbclient reads it.
        threading.Thread(target=self._write_script, name=f"script-{self.tag}", daemon=True).start()

    def _write_script(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(self.script)
            self.proc.stdin.close()
        except OSError:
            # smbclient died early; waiting for the gate reports it together with its output.
            pass

    def _read_output(self) -> None:
        while True:
            try:
                chunk = os.read(self._master_fd, 1 << 16)
            except OSError as e:
                # EIO: every holder of the pty's slave side has closed it.
                if e.errno != errno.EIO:
                    raise
                chunk = b""
            if not chunk:
                return
            with self._lock:
                self._output += chunk

    def close(self) -> None:
        """Stop smbclient if it is still running (by its PID) and release the pty and the gates."""
        if self._gate_fd >= 0:
            os.close(self._gate_fd)
            self._gate_fd = -1
        if self.proc is not None and self.proc.poll() is None:
            # A shell waiting at a gate would outlive smbclient; open and close each gate to let it finish,
            # then kill whatever is left of the tree, by PID.
            for gate in (self.gate_start, self.gate_end):
                try:
                    os.close(os.open(gate, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass
            for pid in reversed(procstat.tree_pids(self.proc.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5.0)
        if self._master_fd >= 0:
            os.close(self._master_fd)
            self._master_fd = -1
        for gate in (self.gate_start, self.gate_end):
            if gate.exists():
                gate.unlink()

    # -- the timed block -------------------------------------------------------------------------------

    def _open_gate(self, gate: Path, timeout_s: float) -> None:
        """Return once smbclient's shell has opened the gate; the gate stays shut until _release_gate."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        pause_s = 0.001
        while True:
            try:
                # Non-blocking open for writing fails with ENXIO until a reader has the FIFO open.
                self._gate_fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
                return
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
            if self.proc.poll() is not None:
                raise SessionError(f"smbclient exited before reaching {gate.name}: {self.output_tail()}")
            if time.monotonic() > deadline:
                raise SessionError(
                    f"timed out after {timeout_s:.0f} s waiting for smbclient to reach {gate.name}: "
                    f"{self.output_tail()}"
                )
            time.sleep(pause_s)
            pause_s = min(pause_s * 2, _GATE_POLL_MAX_S)

    def _release_gate(self) -> None:
        os.close(self._gate_fd)
        self._gate_fd = -1

    def wait_ready(self) -> None:
        """Block until smbclient is connected, has run the setup commands, and waits at the start gate."""
        self._open_gate(self.gate_start, self.timeout_s)

    def release(self) -> None:
        self._release_gate()

    def wait_done(self) -> None:
        """Block until the timed block finished and smbclient waits at the end gate."""
        self._open_gate(self.gate_end, self.timeout_s)

    def finish(self, fail_on_status: bool = True) -> None:
        """Let smbclient log off and exit; unless told otherwise, fail on any NT_STATUS in the timed block."""
        assert self.proc is not None and self._reader is not None
        self._release_gate()
        try:
            self.proc.wait(self.timeout_s)
        except subprocess.TimeoutExpired:
            raise SessionError("smbclient did not exit after quit") from None
        self._reader.join(timeout=5.0)
        stamps = self._stamps()
        if len(stamps) != 4:
            raise SessionError(
                f"expected four time stamps from smbclient, found {len(stamps)}: {self.output_tail()}"
            )
        body = self.timed_output()
        if fail_on_status and "NT_STATUS_" in body:
            line = next(line for line in body.splitlines() if "NT_STATUS_" in line)
            raise SessionError(f"smbclient reported an error: {line.strip()}")

    def _stamps(self) -> list[re.Match[bytes]]:
        with self._lock:
            return list(_STAMP.finditer(self._output))

    @property
    def timer_overhead_s(self) -> float:
        first, second = self._stamps()[:2]
        return float(second.group(1)) - float(first.group(1))

    @property
    def start_time(self) -> float:
        return float(self._stamps()[2].group(1))

    @property
    def end_time(self) -> float:
        return float(self._stamps()[3].group(1))

    def timed_output(self) -> str:
        """What smbclient printed between the last two stamps: the output of the timed commands."""
        first, last = self._stamps()[2:]
        with self._lock:
            return self._output[first.end() : last.start()].decode(errors="replace")

    def output_tail(self, chars: int = 600) -> str:
        with self._lock:
            text = self._output[-chars:].decode(errors="replace")
        return text.replace("\r\n", "\n").strip() or "(no output)"
