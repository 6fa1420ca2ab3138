"""What a Linux user sees: metadata workloads through cifs.ko, smbsrv against Samba 4.17, in one guest boot.

Usage (root: network namespaces; not part of any test run):

    scripts/bench-kernel [--rounds 3] [--kernels stable,sid] [--variants default,actimeo0] [--json out.json]

Both servers are started once, on 127.0.0.1, each with an empty share on the same filesystem, serving the
same non-root Unix account (tests/kernel/servers.py, as the cifs.ko tests do). One qemu guest per kernel
(tests/kernel/vm.py) mounts both, with the same options (vers=3.1.1 plus the variant's), and runs
tests/kernel/guest/bench_meta.sh: per variant and round, every step on one server and then on the other, the
order alternating between rounds. The guest times each step itself (benchmarks/kernel_meta.c, CLOCK_MONOTONIC);
this process reads the CPU of each server's process tree (benchmarks/procstat.py: Samba's forked smbd
children included) when the guest announces the start and the end of a step on the console.

The guest runs under qemu's software emulation (the host has no KVM), so the client side is slow and its
time is part of every wall-clock number, the same for both servers; the server CPU per file is the part that
belongs to the server alone. The load average is recorded with every step: the two cores are shared.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.procstat import tree_cpu_s
from tests.conftest import remove_test_account
from tests.kernel.cpio import CpioWriter
from tests.kernel.image import DEFAULT_CACHE_DIR, SID, STABLE, VmImage, _build_locktest, build_image
from tests.kernel.netns import TcpRelay
from tests.kernel.servers import RunningServer, samba_server, smbsrv_server
from tests.kernel.vm import run_guest
from tests.loop_mount import loop_mounted

GUEST_SCRIPT = Path(__file__).resolve().parents[1] / "tests" / "kernel" / "guest" / "bench_meta.sh"
HELPER_SOURCE = Path(__file__).resolve().with_name("kernel_meta.c")
SERVERS = ("smbsrv", "samba")
KNOWN_VARIANTS = {"default": "", "actimeo0": "actimeo=0", "sign": "sign", "actimeo0-sign": "actimeo=0,sign"}
STEPS = ("create", "ls_cold", "ls_warm", "stat_cold", "stat_warm", "untar", "walk_cold", "walk_warm",
         "rm_tree", "rm_flat")
TREE_STEPS = ("untar", "walk_cold", "walk_warm", "rm_tree")  # the others touch the flat directory
_BEGIN = re.compile(r"BENCH-BEGIN (\S+) (\d+) (\S+) (\S+)")
_END = re.compile(r"BENCH-END (\S+) (\d+) (\S+) (\S+) (-?\d+) (-?\d+)")


@dataclasses.dataclass
class StepResult:
    kernel: str
    variant: str
    round: int
    server: str
    step: str
    wall_s: float
    files: int
    cpu_s: float
    load1: float


def _loadavg() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def _child_pid(*needles: str) -> int:
    """The PID of this process's child whose command line holds all `needles` (the servers are our children)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if int(stat[stat.rfind(")") + 2:].split()[1]) != me:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if all(needle.encode() in argv for needle in needles):
                return int(entry.name)
    raise RuntimeError(f"no child process with {needles} in its command line")


@contextlib.contextmanager
def share_filesystem(scratch: Path, kind: str) -> Iterator[Path]:
    """Where the shares live: a fresh ext4 on a loop device ("loop"), or scratch itself ("tmp").

    smbsrv watches local changes with one fanotify mark on the whole filesystem of a share
    (smbsrv/files/kernel_feed.py) and reads every event on it while a client holds a lease; on the host's root
    filesystem that is everyone's activity (other test suites, builds), measured as smbsrv CPU: 15-20% of a core
    with a cifs.ko mount idle on this shared machine. A private filesystem measures the requests alone.
    """
    if kind == "tmp":
        yield scratch
        return
    with loop_mounted(scratch / "shares.ext4", scratch / "shares", 1 << 30, ("mkfs.ext4", "-q", "-F")) as mount:
        yield mount


@contextlib.contextmanager
def both_servers(scratch: Path, share_fs: str = "loop") -> Iterator[dict[str, tuple[RunningServer, int]]]:
    """smbsrv and Samba, empty shares side by side on one filesystem; name -> (server, root PID)."""
    servers: dict[str, tuple[RunningServer, int]] = {}
    with contextlib.ExitStack() as stack:
        shares = stack.enter_context(share_filesystem(scratch, share_fs))
        for name in SERVERS:
            base = scratch / name
            base.mkdir()
            share = shares / f"{name}-share"
            share.mkdir()
            if name == "smbsrv":
                server = stack.enter_context(smbsrv_server(base, share))
                pid = _child_pid("serve", "--port", str(server.port))
            else:
                server = stack.enter_context(samba_server(base, share))
                pid = _child_pid("-s", str(base / "smb.conf"))
            servers[name] = (server, pid)
        yield servers


def image_with_helper(image: VmImage, helper: Path, scratch: Path) -> VmImage:
    """The image with /bin/kmeta added as one more cpio layer on the base initramfs (vm.py appends its own)."""
    layer = CpioWriter()
    layer.add_path("bin/kmeta", helper, perm=0o755)
    initrd = scratch / f"initrd-{image.kernel_version}.cpio"
    initrd.write_bytes(image.initrd.read_bytes() + layer.finish())
    return dataclasses.replace(image, initrd=initrd)


class ConsoleMeter:
    """Reads the servers' CPU when the guest prints BENCH-BEGIN / BENCH-END, and collects the steps."""

    def __init__(self, kernel: str, pids: dict[str, int], echo: bool) -> None:
        self.kernel = kernel
        self.pids = pids
        self.echo = echo
        self.results: list[StepResult] = []
        self.lines: list[str] = []
        self._open: dict[tuple[str, str, str, str], float] = {}

    def __call__(self, line: str) -> None:
        if (match := _BEGIN.search(line)) is not None:
            key = match.groups()
            self._open[key] = tree_cpu_s(self.pids[key[2]])
        elif (match := _END.search(line)) is not None:
            cpu_after = tree_cpu_s(self.pids[match.group(3)])
            variant, round_text, server, step, ns, files = match.groups()
            cpu_before = self._open.pop((variant, round_text, server, step), None)
            if cpu_before is not None and int(ns) >= 0:
                result = StepResult(self.kernel, variant, int(round_text), server, step, int(ns) / 1e9,
                                    int(files), cpu_after - cpu_before, _loadavg()[0])
                self.results.append(result)
                if self.echo:
                    print(f"  {variant:9} r{round_text} {server:6} {step:10} {result.wall_s:8.3f} s "
                          f"cpu {result.cpu_s:6.2f} s  load {result.load1:.2f}", flush=True)
        if self.echo and (line.startswith(("FAIL", "| ", "BENCH-TREE", "BENCH-MOUNTS")) or "CIFS" in line):
            print(f"  guest: {line}", flush=True)


def run_kernel(suite: str, servers: dict[str, tuple[RunningServer, int]], args: argparse.Namespace,
               helper: Path, scratch: Path) -> tuple[list[StepResult], dict[str, Any]]:
    image = image_with_helper(build_image(suite=suite), helper, scratch)
    smbsrv, _ = servers["smbsrv"]
    env = {
        **smbsrv.guest_env(),
        "SERVERS": " ".join(f"{name}:{server.port}" for name, (server, _) in servers.items()),
        "VARIANTS": " ".join(f"{name}={KNOWN_VARIANTS.get(name, name)}" for name in args.variants),
        "ROUNDS": str(args.rounds),
        "FLAT_COUNT": str(args.files),
        "TREE_D1": str(args.tree[0]),
        "TREE_D2": str(args.tree[1]),
        "TREE_FILES": str(args.tree[2]),
        "SETTLE": str(args.settle),
    }
    meter = ConsoleMeter(image.kernel_version, {name: pid for name, (_, pid) in servers.items()}, not args.quiet)
    with contextlib.ExitStack() as relays:
        def add_relays(first: TcpRelay) -> None:
            # run_guest relays smbsrv's port; every other server gets its own relay in the same namespace.
            for server, _ in servers.values():
                if server.port != first.listen_port:
                    relays.enter_context(TcpRelay(first.namespace, server.port, server.port))

        load_before = _loadavg()
        print(f"[{image.kernel_version}] booting; load {load_before}", file=sys.stderr, flush=True)
        guest = run_guest(GUEST_SCRIPT.read_text(), smbsrv.port, args.timeout, env=env, image=image,
                          memory_mib=args.memory, on_line=meter, on_relay=add_relays)
    log = args.log_dir / f"kernel_meta-{image.kernel_version}.log"
    log.write_text(guest.output)
    cifs_messages = [line for line in guest.dmesg if "CIFS" in line or "cifs" in line]
    info = {
        "kernel": image.kernel_version,
        "wall_s": guest.wall_s,
        "exit_code": guest.exit_code,
        "timed_out": guest.timed_out,
        "failed_steps": guest.failed_steps,
        "load_before": load_before,
        "load_after": _loadavg(),
        "dmesg_cifs": cifs_messages,
        "console_log": str(log),
    }
    print(f"[{image.kernel_version}] done in {guest.wall_s:.0f} s, exit {guest.exit_code}, "
          f"failed {guest.failed_steps}, load {info['load_after']}, console {log}", file=sys.stderr, flush=True)
    for line in cifs_messages:
        print(f"  dmesg: {line}", file=sys.stderr)
    return meter.results, info


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(results: list[StepResult]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(r.kernel, r.variant) for r in results}, key=lambda key: key)
    for kernel, variant in keys:
        for step in STEPS:
            row: dict[str, Any] = {"kernel": kernel, "variant": variant, "step": step}
            for server in SERVERS:
                mine = [r for r in results if (r.kernel, r.variant, r.step, r.server) == (kernel, variant, step,
                                                                                          server)]
                files = max((r.files for r in mine), default=0)
                row[server] = {
                    "wall_s": _median([r.wall_s for r in mine]),
                    "cpu_s": _median([r.cpu_s for r in mine]),
                    "wall_values": [round(r.wall_s, 4) for r in mine],
                    "cpu_values": [round(r.cpu_s, 3) for r in mine],
                    "load1": [r.load1 for r in mine],
                    "files": files,
                }
            if not row["smbsrv"]["wall_values"] and not row["samba"]["wall_values"]:
                continue
            ours, theirs = row["smbsrv"], row["samba"]
            row["speed_ratio"] = (theirs["wall_s"] / ours["wall_s"]) if ours["wall_s"] and theirs["wall_s"] else None
            row["cpu_ratio"] = (ours["cpu_s"] / theirs["cpu_s"]) if ours["cpu_s"] and theirs["cpu_s"] else None
            rows.append(row)
    return rows


def format_rows(rows: list[dict[str, Any]], files: int, tree_files: int) -> str:
    """Markdown tables, one per kernel and variant; CPU per file of the step's directory."""
    out = []
    current = None
    for row in rows:
        if (row["kernel"], row["variant"]) != current:
            current = (row["kernel"], row["variant"])
            out.append(f"\nkernel {row['kernel']}, mount variant {row['variant']} "
                       f"({KNOWN_VARIANTS.get(row['variant'], row['variant']) or 'defaults'}):")
            out.append("| step | smbsrv s | Samba s | speed (Samba s / smbsrv s) | smbsrv CPU us/file | "
                       "Samba CPU us/file | CPU ratio |")
            out.append("|---|---|---|---|---|---|---|")

        def cell(value: float | None, fmt: str) -> str:
            return "-" if value is None else format(value, fmt)

        ours, theirs = row["smbsrv"], row["samba"]
        per_file = tree_files if row["step"] in TREE_STEPS else files
        ours_cpu = None if ours["cpu_s"] is None else ours["cpu_s"] * 1e6 / per_file
        theirs_cpu = None if theirs["cpu_s"] is None else theirs["cpu_s"] * 1e6 / per_file
        out.append(f"| {row['step']} | {cell(ours['wall_s'], '.3f')} | {cell(theirs['wall_s'], '.3f')} | "
                   f"{cell(row['speed_ratio'], '.2f')}x | {cell(ours_cpu, '.0f')} | {cell(theirs_cpu, '.0f')} | "
                   f"{cell(row['cpu_ratio'], '.2f')}x |")
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench-kernel", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per variant (default 3)")
    parser.add_argument("--kernels", default=STABLE, help=f"comma-separated: {STABLE} (Debian 12, 6.1), {SID}")
    parser.add_argument("--variants", default="default,actimeo0",
                        help=f"comma-separated mount variants: {', '.join(KNOWN_VARIANTS)}, or raw mount options")
    parser.add_argument("--files", type=int, default=2000, help="files in the flat directory (default 2000)")
    parser.add_argument("--tree", default="10x10x20", help="untar tree: D1xD2xFILES (default 10x10x20)")
    parser.add_argument("--settle", type=float, default=1.5,
                        help="seconds after create, untar and rm still counted as their server CPU (deferred closes)")
    parser.add_argument("--share-fs", choices=("loop", "tmp"), default="loop",
                        help="shares on a private loop-mounted ext4 (default) or in the system temp directory")
    parser.add_argument("--memory", type=int, default=768, help="guest memory in MiB")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one guest boot may take")
    parser.add_argument("--json", type=Path, help="write all measurements and the summary here")
    parser.add_argument("--log-dir", type=Path, default=DEFAULT_CACHE_DIR / "logs")
    parser.add_argument("--quiet", action="store_true", help="no line per step while running")
    args = parser.parse_args(argv)
    args.kernels = [name.strip() for name in args.kernels.split(",") if name.strip()]
    if set(args.kernels) - {STABLE, SID}:
        parser.error(f"--kernels takes {STABLE} and/or {SID}")
    args.variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    if not args.variants or any(" " in name for name in args.variants):
        parser.error("a variant is a known name or mount options without spaces")
    try:
        args.tree = [int(part) for part in args.tree.split("x")]
        assert len(args.tree) == 3
    except (ValueError, AssertionError):
        parser.error("--tree takes D1xD2xFILES, e.g. 10x10x20")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench-kernel: needs root (network namespaces for the guest)", file=sys.stderr)
        return 2
    args.log_dir.mkdir(parents=True, exist_ok=True)
    helper = _build_locktest(DEFAULT_CACHE_DIR, HELPER_SOURCE)
    results: list[StepResult] = []
    boots: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="smbsrv-bench-kernel-") as scratch_name:
            scratch = Path(scratch_name)
            with both_servers(scratch, args.share_fs) as servers:
                for suite in args.kernels:
                    kernel_results, info = run_kernel(suite, servers, args, helper, scratch)
                    results += kernel_results
                    boots.append(info)
    finally:
        remove_test_account()
    rows = summarize(results)
    print(format_rows(rows, args.files, args.tree[0] * args.tree[1] * args.tree[2]))
    print("\nload average (1, 5, 15 min) before/after each boot: "
          + "; ".join(f"{b['kernel']}: {b['load_before']} -> {b['load_after']}" for b in boots))
    if args.json is not None:
        args.json.write_text(json.dumps({
            "args": {key: value for key, value in vars(args).items() if key not in ("json", "log_dir")},
            "boots": boots,
            "summary": rows,
            "steps": [dataclasses.asdict(r) for r in results],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }, indent=1))
    failed = any(b["failed_steps"] or b["exit_code"] != 0 for b in boots)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
