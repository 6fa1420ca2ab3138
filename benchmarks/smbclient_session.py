"""Drive one smbclient process and time a block of its commands from inside the connected session.

smbclient reads its script from stdin. The whole script is written at once and stdin is closed: with a
non-tty stdin smbclient polls the descriptor and then reads through stdio, so lines left in the stdio buffer
wait for more input or for the hang-up (Samba 4.17, source3/lib/readline.c), and closing stdin avoids that.

The script looks like this:

    <setup commands>           (cd, lcd, prompt: not timed)
    pwd                        marker 1: connected and set up
    !read x < GATE_START       smbclient blocks in a shell until we release it
    pwd                        marker 2: start of the timed block
    <timed commands>
    pwd                        marker 3: end of the timed block
    !read x < GATE_END         blocks again so server CPU can be read while the session is idle
    quit

Elapsed time is the distance between the arrival of markers 2 and 3 on the pty (smbclient line-buffers a
tty, so each marker arrives as soon as it is printed; `pwd` is answered locally without a round trip).
Process start, connect and logoff therefore fall outside the timed block, and the gates keep the server idle
while its CPU counters are read.
"""

from __future__ import annotations

import errno
import os
import pty
import signal
import subprocess
import threading
import time
from pathlib import Path

from benchmarks import procstat
from benchmarks.servers import Endpoint

MARKER = b"Current directory is"
MARKERS_PER_SCRIPT = 3


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
            [*setup, "pwd", f"!read x < {self.gate_start}", "pwd", *commands, "pwd", f"!read x < {self.gate_end}",
             "quit", ""]
        ).encode()
        self.argv = [
            "smbclient", f"//{endpoint.host}/{endpoint.share}",
            "-p", str(endpoint.port),
            "-U", endpoint.username,
            "-m", "SMB3",
            "-s", str(write_client_config(workdir)),
        ]
        if signing_required:
            self.argv.append("--client-protection=sign")
        self.proc: subprocess.Popen[bytes] | None = None
        self._master_fd = -1
        self._output = bytearray()
        self._marker_times: list[float] = []
        self._marker_offsets: list[int] = []
        self._eof = threading.Event()
        self._changed = threading.Condition()
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
        env = dict(os.environ, PASSWD=self.endpoint.password)
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=slave, stderr=slave, env=env, start_new_session=True,
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
        except (BrokenPipeError, OSError):
            # smbclient died early; the reader sees EOF and the waiting side reports the output.
            pass

    def _read_output(self) -> None:
        scan_from = 0
        while True:
            try:
                chunk = os.read(self._master_fd, 1 << 16)
            except OSError as e:
                # EIO: every holder of the pty's slave side has closed it.
                if e.errno != errno.EIO:
                    raise
                chunk = b""
            now = time.perf_counter()
            with self._changed:
                if not chunk:
                    self._eof.set()
                    self._changed.notify_all()
                    return
                self._output += chunk
                while True:
                    found = self._output.find(MARKER, scan_from)
                    if found < 0:
                        scan_from = max(0, len(self._output) - len(MARKER))
                        break
                    self._marker_times.append(now)
                    self._marker_offsets.append(found)
                    scan_from = found + len(MARKER)
                self._changed.notify_all()

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

    def _open_gate(self, gate: Path, deadline: float) -> None:
        """Return once smbclient's shell has opened the gate; the gate stays shut until _release_gate."""
        assert self.proc is not None
        while True:
            try:
                # Non-blocking open for writing fails with ENXIO until a reader has the FIFO open.
                self._gate_fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
                return
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
            if self.proc.poll() is not None or self._eof.is_set():
                raise SessionError(f"smbclient exited before reaching {gate.name}: {self.output_tail()}")
            if time.monotonic() > deadline:
                raise SessionError(f"timed out waiting for smbclient to reach {gate.name}: {self.output_tail()}")
            time.sleep(0.002)

    def _release_gate(self) -> None:
        os.close(self._gate_fd)
        self._gate_fd = -1

    def wait_ready(self) -> None:
        """Block until smbclient is connected, has run the setup commands, and waits at the start gate."""
        self._open_gate(self.gate_start, time.monotonic() + self.timeout_s)

    def release(self) -> None:
        self._release_gate()

    def wait_done(self) -> None:
        """Block until the timed block finished and smbclient waits at the end gate."""
        deadline = time.monotonic() + self.timeout_s
        with self._changed:
            while len(self._marker_times) < MARKERS_PER_SCRIPT and not self._eof.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SessionError(f"timed out after {self.timeout_s:.0f} s: {self.output_tail()}")
                self._changed.wait(remaining)
            if len(self._marker_times) < MARKERS_PER_SCRIPT:
                raise SessionError(f"smbclient stopped before the end of the script: {self.output_tail()}")
        self._open_gate(self.gate_end, deadline)

    def finish(self, fail_on_status: bool = True) -> None:
        """Let smbclient log off and exit; unless told otherwise, fail on any NT_STATUS in the timed block."""
        assert self.proc is not None
        self._release_gate()
        try:
            self.proc.wait(self.timeout_s)
        except subprocess.TimeoutExpired:
            raise SessionError("smbclient did not exit after quit") from None
        body = self.timed_output()
        if fail_on_status and "NT_STATUS_" in body:
            line = next(line for line in body.splitlines() if "NT_STATUS_" in line)
            raise SessionError(f"smbclient reported an error: {line.strip()}")

    @property
    def start_time(self) -> float:
        return self._marker_times[1]

    @property
    def end_time(self) -> float:
        return self._marker_times[2]

    @property
    def elapsed_s(self) -> float:
        return self.end_time - self.start_time

    def timed_output(self) -> str:
        """What smbclient printed between markers 2 and 3: the output of the timed commands."""
        with self._changed:
            first, last = self._marker_offsets[1], self._marker_offsets[2]
            line_end = self._output.find(b"\n", first)
            return self._output[line_end + 1:last].decode(errors="replace")

    def output_tail(self, chars: int = 600) -> str:
        with self._changed:
            text = self._output[-chars:].decode(errors="replace")
        return text.replace("\r\n", "\n").strip() or "(no output)"
