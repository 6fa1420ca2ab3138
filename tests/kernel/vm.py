"""Runs a shell script inside a qemu guest with the Linux cifs.ko client, against a server on 127.0.0.1.

How a run works
---------------
1. tests/kernel/image.py provides a Debian kernel and a cached base initramfs (busybox, cifs.ko and the modules
   it needs). The host has no cifs module and KVM is unusable, so qemu runs with software emulation (TCG);
   the guest reaches its /init about 2 seconds after qemu starts, and an empty run takes about 6 seconds.
2. A second cpio archive is appended per run with /init (guest/init.sh), /lib/smbtest.sh (guest/smbtest.sh),
   /bin/locktest, the script as /test.sh and /run-env.sh holding the settings as shell variables.
3. qemu runs inside a private network namespace with only `lo` (see netns.py). The guest reaches the server as
   10.0.2.2:PORT; slirp turns that into 127.0.0.1:PORT inside the namespace, where a relay thread of this process
   accepts it and connects to the real server at 127.0.0.1:PORT in the host namespace.
4. The guest prints `PASS <step>` / `FAIL <step>` lines, then dmesg between SMBTEST-DMESG-BEGIN/END, then
   `SMBTEST-EXIT <rc>`, and powers off. The serial console is captured and parsed into a GuestResult.

Variables in /run-env.sh: SERVER_IP (10.0.2.2), SERVER_PORT, plus everything passed as `env`.

Running by hand
---------------
Needs root (network namespaces). `scripts/vm/run.sh` is the same command with PYTHONPATH set.

With a throw-away server started for the run (`--server smbsrv` or `--server samba`): the share, the user and
the 2,000-entry directory the suite expects are prepared, and the SMB_* variables are passed to the script:

    python -m tests.kernel.vm --server smbsrv tests/kernel/guest/cifs_suite.sh
    python -m tests.kernel.vm --server samba --env SMB_VERSIONS=3.1.1 --env SMB_CACHES=none \
        --env BIG_FILE_MIB=8 --quiet --log /tmp/console.log tests/kernel/guest/cifs_suite.sh

Against a server already listening on 127.0.0.1:PORT (its share must hold what the script expects; for
cifs_suite.sh that is tests.kernel.servers.prepare_share):

    python -m tests.kernel.vm --port 4450 --env SMB_SHARE=share --env SMB_USER=u --env SMB_PASS=p \
        --env BIGDIR_NAME=bigdir --env BIGDIR_COUNT=2000 tests/kernel/guest/cifs_suite.sh

Any script works; source /lib/smbtest.sh for `step NAME COMMAND` to report PASS/FAIL lines. The console is
echoed as it arrives (--quiet turns that off, --log saves it). The exit status is 0 only if the script exited 0
and no step failed. The pytest entry point is tests/kernel/test_cifs_kernel.py (`pytest -m kernel tests/kernel`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.kernel.cpio import CpioWriter
from tests.kernel.image import VmImage, build_image
from tests.kernel.netns import NetNamespace, TcpRelay

GUEST_DIR = Path(__file__).resolve().parent / "guest"
GUEST_SERVER_IP = "10.0.2.2"

KERNEL_COMMAND_LINE = (
    "console=ttyS0 "
    # Only critical messages on the console, so they do not split the PASS/FAIL lines; the whole log is printed
    # at the end through dmesg.
    "loglevel=3 "
    # A panic reboots, and -no-reboot turns that into qemu exiting instead of hanging until the timeout.
    "panic=-1 "
    "rdinit=/init"
)

_STEP_LINE = re.compile(r"^(PASS|FAIL) (\S+)")
_EXIT_LINE = re.compile(r"^SMBTEST-EXIT (-?\d+)")
# Searched anywhere in the line: the first one follows SeaBIOS's last line without a line break.
_MARK_LINE = re.compile(r"SMBTEST-(BOOTED|BEGIN|END) ([0-9.]+)")
# SeaBIOS and the kernel's early console emit terminal control sequences (reset, clear screen) that would
# otherwise end up glued to the front of the next line; a reset also blanks a terminal that shows the log.
_TERMINAL_CONTROL = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[A-Za-z])")


@dataclasses.dataclass
class GuestResult:
    output: str
    exit_code: int  # the script's exit status; -1 if the guest never reported one (crash, timeout)
    steps: dict[str, bool]
    dmesg: list[str] = dataclasses.field(default_factory=list)
    timed_out: bool = False
    wall_s: float = 0.0  # host time from starting qemu until it exited
    guest_marks_s: dict[str, float] = dataclasses.field(default_factory=dict)  # guest uptime at BOOTED/BEGIN/END
    failure_logs: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def failed_steps(self) -> list[str]:
        return [name for name, passed in self.steps.items() if not passed]

    def assert_finished(self) -> None:
        """The guest ran its suite to the end: no timeout, and the script's last mark was printed."""
        assert not self.timed_out, "guest timed out; console tail:\n" + self.output[-3000:]
        assert "SMBTEST-SUITE-DONE" in self.output, "suite did not finish; console tail:\n" + self.output[-3000:]


def strip_terminal_control(text: str) -> str:
    return _TERMINAL_CONTROL.sub("", text)


def parse_console(output: str) -> GuestResult:
    """Turns the captured serial console into a GuestResult (wall_s and timed_out are left to the caller)."""
    steps: dict[str, bool] = {}
    failure_logs: dict[str, list[str]] = {}
    dmesg: list[str] = []
    marks: dict[str, float] = {}
    exit_code = -1
    in_dmesg = False
    last_failed: str | None = None
    for raw_line in strip_terminal_control(output).splitlines():
        line = raw_line.strip("\r\n\x00 ")
        if line == "SMBTEST-DMESG-BEGIN":
            in_dmesg = True
            continue
        if line == "SMBTEST-DMESG-END":
            in_dmesg = False
            continue
        if in_dmesg:
            dmesg.append(line)
            continue
        if (match := _STEP_LINE.match(line)) is not None:
            name, passed = match.group(2), match.group(1) == "PASS"
            # A step reported twice counts as failed if either report failed.
            steps[name] = steps.get(name, True) and passed
            last_failed = None if passed else name
            if not passed:
                failure_logs.setdefault(name, [])
            continue
        if last_failed is not None and line.startswith("| "):
            failure_logs[last_failed].append(line[2:])
            continue
        last_failed = None
        if (match := _EXIT_LINE.match(line)) is not None:
            exit_code = int(match.group(1))
        elif (match := _MARK_LINE.search(line)) is not None:
            marks[match.group(1)] = float(match.group(2))
    return GuestResult(output=output, exit_code=exit_code, steps=steps, dmesg=dmesg, guest_marks_s=marks,
                       failure_logs=failure_logs)


def _run_env(server_port: int, env: dict[str, str]) -> bytes:
    values = {"SERVER_IP": GUEST_SERVER_IP, "SERVER_PORT": str(server_port), **env}
    lines = [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    return ("\n".join(lines) + "\n").encode()


def _run_layer(image: VmImage, script: str, server_port: int, env: dict[str, str]) -> bytes:
    layer = CpioWriter()
    layer.add_path("init", GUEST_DIR / "init.sh", perm=0o755)
    layer.add_path("lib/smbtest.sh", GUEST_DIR / "smbtest.sh", perm=0o644)
    layer.add_path("bin/locktest", image.locktest, perm=0o755)
    if image.filetest is not None:
        layer.add_path("bin/filetest", image.filetest, perm=0o755)
    if image.posixcheck is not None:
        layer.add_path("bin/posixcheck", image.posixcheck, perm=0o755)
    layer.add_file("test.sh", script.encode(), perm=0o755)
    layer.add_file("run-env.sh", _run_env(server_port, env))
    return layer.finish()


def qemu_command(image: VmImage, initrd: Path, memory_mib: int, cpus: int) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-nographic",
        "-no-reboot",
        "-accel", "tcg",
        "-m", str(memory_mib),
        "-smp", str(cpus),
        "-kernel", str(image.kernel),
        "-initrd", str(initrd),
        "-append", KERNEL_COMMAND_LINE,
        # slirp; with only lo in qemu's namespace it can reach nothing but the relay.
        "-netdev", "user,id=net0",
        # romfile= skips the PXE option ROM, which a -kernel boot never uses.
        "-device", "virtio-net-pci,netdev=net0,romfile=",
    ]


def run_guest(
    script: str,
    server_port: int,
    timeout_s: float,
    *,
    env: dict[str, str] | None = None,
    image: VmImage | None = None,
    memory_mib: int = 512,
    cpus: int = 1,
    on_line: Callable[[str], None] | None = None,
    on_relay: Callable[[TcpRelay], None] | None = None,
) -> GuestResult:
    """Boots the guest, runs `script` (shell text) in it and returns the parsed console.

    The guest reaches the server at 10.0.2.2:server_port, relayed to 127.0.0.1:server_port on the host.
    on_line, if given, sees every console line as it arrives (for live progress); on_relay, if given, gets the
    relay once it listens (a test can cut the guest's connections with TcpRelay.cut()).
    """
    image = image or build_image()
    env = dict(env or {})
    with contextlib.ExitStack() as cleanup:
        scratch = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="smbsrv-vm-run-")))
        initrd = scratch / "initrd.cpio"
        # Concatenated newc archives: the kernel unpacks both, the second on top of the first.
        with initrd.open("wb") as out:
            out.write(image.initrd.read_bytes())
            out.write(_run_layer(image, script, server_port, env))

        namespace = cleanup.enter_context(NetNamespace())
        relay = cleanup.enter_context(TcpRelay(namespace, server_port, server_port))
        if on_relay is not None:
            on_relay(relay)

        chunks: list[str] = []
        started = time.monotonic()
        process = subprocess.Popen(
            namespace.enter_command() + qemu_command(image, initrd, memory_mib, cpus),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        cleanup.callback(_stop_process, process)

        def read_console() -> None:
            assert process.stdout is not None
            for raw in iter(process.stdout.readline, b""):
                text = raw.decode("utf-8", "replace")
                chunks.append(text)
                if on_line is not None:
                    on_line(strip_terminal_control(text).rstrip("\r\n"))

        reader = threading.Thread(target=read_console, name="qemu-console", daemon=True)
        reader.start()
        timed_out = False
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop_process(process)
        reader.join(timeout=10)
        wall_s = time.monotonic() - started

    result = parse_console("".join(chunks))
    result.timed_out = timed_out
    result.wall_s = wall_s
    return result


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    """Kills our qemu (by its own PID: `ip netns exec` execs it) and reaps it."""
    if process.poll() is None:
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SystemExit(f"--env expects NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a shell script in the cifs.ko qemu guest (see the module docstring).")
    parser.add_argument("script", type=Path, help="shell script to run in the guest as /test.sh")
    parser.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (with --server none)")
    parser.add_argument("--server", choices=("none", "samba", "smbsrv"), default="none",
                        help="start a temporary server for this run instead of using --port")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="variable for /run-env.sh (repeatable)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--memory", type=int, default=512, help="guest memory in MiB")
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="do not echo the console while running")
    parser.add_argument("--log", type=Path, help="also write the whole console output to this file")
    args = parser.parse_args(argv)

    env = _parse_env(args.env)
    script = args.script.read_text()
    echo = None if args.quiet else (lambda line: print(line, flush=True))
    image = build_image()

    with contextlib.ExitStack() as cleanup:
        port = args.port
        if args.server != "none":
            from tests.kernel.servers import start_server_for_kernel_tests

            server = cleanup.enter_context(start_server_for_kernel_tests(args.server))
            port = server.port
            env = {**server.guest_env(), **env}
        if port <= 0:
            parser.error("give --port of a running server, or --server samba|smbsrv")
        result = run_guest(script, port, args.timeout, env=env, image=image, memory_mib=args.memory,
                           cpus=args.cpus, on_line=echo)

    if args.log is not None:
        args.log.write_text(result.output)
    passed = sum(result.steps.values())
    print(f"\n{passed}/{len(result.steps)} steps passed; exit code {result.exit_code}; "
          f"wall {result.wall_s:.1f}s; guest marks {result.guest_marks_s}", file=sys.stderr)
    for name in result.failed_steps:
        print(f"FAILED: {name}", file=sys.stderr)
        for line in result.failure_logs.get(name, []):
            print(f"    {line}", file=sys.stderr)
    if result.timed_out:
        print("timed out", file=sys.stderr)
    return 0 if result.exit_code == 0 and not result.failed_steps else 1


if __name__ == "__main__":
    sys.exit(main())
