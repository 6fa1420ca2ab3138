"""smbsrv versus Debian's Samba on this machine: one command, alternating runs, medians and ratios.

Usage: scripts/bench [--quick] [--json out.json] [--only w1,w2] [--rounds N] [--servers smbsrv,samba]
                     [--signing default|required|both] [--server-arg TEXT] [--account NAME]

For each signing variant the benchmark starts both servers on 127.0.0.1 (free ports, sibling share
directories on one filesystem), then for every round runs every workload against smbsrv and then Samba
(A B A B ...). It prints a table and writes JSON. Everything it started is stopped by PID in finally blocks,
and SIGTERM is turned into an exception so those blocks also run when the benchmark itself is stopped.

Both servers serve the same ordinary Unix account (`smbsrv_bench`, created for the run when it is missing),
as real deployments map SMB users to such accounts: acting as an unprivileged user costs a server identity
switches and permission checks that root never pays. `--account root` measures the root-mapped case.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.loopback import measure_iperf3
from benchmarks.report import SERVER_LABELS, ServerResult, WorkloadResult, format_table
from benchmarks.servers import (
    REPO_ROOT,
    SambaServer,
    Server,
    ServerStartError,
    SmbsrvServer,
    ensure_packages,
    log_tail,
)
from benchmarks.workloads import (
    FULL_SIZES,
    QUICK_SIZES,
    WORKLOADS,
    Fixtures,
    RunContext,
    Sizes,
    Workload,
    WorkloadError,
)

SERVER_ORDER = ["smbsrv", "samba"]
BENCH_ACCOUNT = "smbsrv_bench"
MIN_FULL_ROUNDS = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [w.name for w in WORKLOADS]
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and one round: proves it works")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--only", help=f"comma-separated workloads out of: {','.join(names)}")
    parser.add_argument(
        "--rounds", type=int, help=f"rounds per workload (default {MIN_FULL_ROUNDS}; 1 with --quick)"
    )
    parser.add_argument(
        "--servers", default="smbsrv,samba", help="which servers: smbsrv,samba (default both)"
    )
    parser.add_argument(
        "--signing",
        choices=["default", "required", "both"],
        default="both",
        help="default: as each server defaults; required: signing mandatory on both sides",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="text appended to the smbsrv command line (repeatable); write --server-arg='--flag value'",
    )
    parser.add_argument(
        "--smbsrv-signing-arg",
        default="--signing required",
        help="what the smbsrv command line gets in the signing-required variant",
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds one run may take (default 600; 120 with --quick)"
    )
    parser.add_argument(
        "--iperf-seconds", type=int, help="length of the iperf3 reference (default 3; 1 quick)"
    )
    parser.add_argument("--tmpdir", type=Path, help="parent of the share directories (default: system temp)")
    parser.add_argument(
        "--account",
        help=f"Unix account the SMB user is on both servers (default {BENCH_ACCOUNT}, created when missing; "
        "the invoking user when not run as root)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directories (logs) afterwards"
    )
    args = parser.parse_args(argv)
    selected = names if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(selected) - set(names))
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    args.workloads = [w for w in WORKLOADS if w.name in selected]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not servers or set(servers) - set(SERVER_ORDER):
        parser.error("--servers takes smbsrv, samba, or both")
    args.server_names = [s for s in SERVER_ORDER if s in servers]
    args.rounds = args.rounds or (1 if args.quick else MIN_FULL_ROUNDS)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.timeout = args.timeout or (120.0 if args.quick else 600.0)
    args.iperf_seconds = args.iperf_seconds or (1 if args.quick else 3)
    args.variants = ["default", "required"] if args.signing == "both" else [args.signing]
    return args


def _served_account(requested: str | None) -> tuple[str, bool]:
    """The Unix account both servers serve, and whether this run created it (and removes it afterwards)."""
    if os.geteuid() != 0:
        return requested or pwd.getpwuid(os.geteuid()).pw_name, False
    name = requested or BENCH_ACCOUNT
    try:
        pwd.getpwnam(name)
        return name, False
    except KeyError:
        if requested:
            raise SystemExit(f"bench: no Unix account {requested!r}") from None
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    return name, True


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give the prepared share to the served account, as a share's files belong to its users."""
    if os.geteuid() != 0:
        return
    os.chown(root, uid, gid)
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _command_output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "samba": _command_output(["smbd", "--version"]),
        "smbclient": _command_output(["smbclient", "--version"]),
        "smbsrv_commit": _command_output(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]),
    }


class Benchmark:
    """One invocation: temporary directories, fixtures, servers per signing variant, and the results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes: Sizes = QUICK_SIZES if args.quick else FULL_SIZES
        # Samba's tdbsam needs an existing Unix account, and smbsrv's --user maps a name to the account of that
        # name: the SMB user is the served account on both servers.
        self.username, self.created_account = _served_account(args.account)
        # Letters, digits, - and _ only: the password travels on command lines and in USER:PASS syntax.
        self.password = secrets.token_urlsafe(12)
        self.base = Path(tempfile.mkdtemp(prefix="smbsrv-bench-", dir=args.tmpdir))
        self.base.chmod(0o755)  # the served account reaches its share directory through it
        shm = Path("/dev/shm")
        self.fixtures_root = Path(
            tempfile.mkdtemp(prefix="smbsrv-bench-", dir=shm if shm.is_dir() else self.base)
        )
        self.client_dir = self.base / "client"
        self.client_dir.mkdir()
        self.share_dirs = {name: self.base / f"share-{name}" for name in args.server_names}
        self.results = [
            WorkloadResult(w, variant, {name: ServerResult() for name in args.server_names})
            for variant in args.variants
            for w in args.workloads
        ]
        self.loopback: dict[str, Any] = {}
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def progress(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def prepare(self) -> Fixtures:
        self.progress(f"preparing fixtures and shares under {self.base}")
        fixtures = Fixtures.create(self.fixtures_root, self.sizes)
        for share_dir in self.share_dirs.values():
            share_dir.mkdir()
            for workload in self.args.workloads:
                workload.prepare(share_dir, self.sizes, fixtures)
        account = pwd.getpwnam(self.username)
        for share_dir in self.share_dirs.values():
            _chown_tree(share_dir, account.pw_uid, account.pw_gid)
        # Write the prepared files back now, so background writeback does not land inside a timed run.
        os.sync()
        return fixtures

    def make_server(self, name: str, variant: str) -> Server:
        workdir = self.base / f"{variant}-{name}"
        workdir.mkdir()
        signing_required = variant == "required"
        if name == "samba":
            return SambaServer(workdir, self.share_dirs[name], self.username, self.password, signing_required)
        return SmbsrvServer(
            workdir,
            self.share_dirs[name],
            self.username,
            self.password,
            signing_required,
            server_args=" ".join(self.args.server_arg),
            signing_args=self.args.smbsrv_signing_arg,
        )

    def run_variant(self, variant: str, fixtures: Fixtures) -> None:
        servers: dict[str, Server] = {}
        results = [r for r in self.results if r.signing == variant]
        try:
            for name in self.args.server_names:
                server = self.make_server(name, variant)
                self.progress(f"[{variant}] starting {SERVER_LABELS[name]} on port {server.port}")
                try:
                    server.start()
                    servers[name] = server
                except ServerStartError as e:
                    self.progress(f"[{variant}] {SERVER_LABELS[name]} failed to start: {e}")
                    for result in results:
                        result.servers[name].errors.append(str(e).splitlines()[0])
            for round_index in range(1, self.args.rounds + 1):
                for result in results:
                    for name, server in servers.items():
                        self.run_one(result, name, server, variant, round_index, fixtures)
        finally:
            for server in servers.values():
                server.stop()

    def run_one(
        self,
        result: WorkloadResult,
        name: str,
        server: Server,
        variant: str,
        round_index: int,
        fixtures: Fixtures,
    ) -> None:
        workload: Workload = result.workload
        label = (
            f"[{variant}] round {round_index}/{self.args.rounds} {workload.name:<13} {SERVER_LABELS[name]:<6}"
        )
        server_result = result.servers[name]
        assert server.proc is not None
        if server.proc.poll() is not None:
            error = f"server exited with code {server.proc.returncode}"
            server_result.errors.append(error)
            self.progress(f"{label} skipped: {error}; log:\n{log_tail(server.log_path)}")
            return
        ctx = RunContext(
            endpoint=server.endpoint,
            signing_required=variant == "required",
            workdir=self.client_dir,
            sizes=self.sizes,
            fixtures=fixtures,
            run_id=f"{name}-{variant}-r{round_index}",
            timeout_s=self.args.timeout,
        )
        try:
            measurement = workload.run(ctx)
        except WorkloadError as e:
            server_result.errors.append(str(e))
            self.progress(f"{label} FAILED: {e}")
            return
        server_result.measurements.append(measurement)
        self.progress(
            f"{label} {measurement.value:12.2f} {workload.unit}  (server CPU {measurement.cpu_s:.2f} s)"
        )

    def run(self) -> None:
        self.progress(f"loopback reference: iperf3 for {self.args.iperf_seconds} s")
        self.loopback = measure_iperf3(self.args.iperf_seconds)
        fixtures = self.prepare()
        for variant in self.args.variants:
            self.run_variant(variant, fixtures)

    def cleanup(self) -> None:
        shutil.rmtree(self.fixtures_root, ignore_errors=True)
        if self.args.keep:
            self.progress(f"kept {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)
        if self.created_account:
            subprocess.run(["userdel", self.username], capture_output=True, check=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "smbsrv-bench/1",
            "started": self.started,
            "quick": self.args.quick,
            "rounds": self.args.rounds,
            "servers": self.args.server_names,
            "account": self.username,
            "signing_variants": self.args.variants,
            "sizes": dataclasses.asdict(self.sizes),
            "machine": machine_info(),
            "loopback": self.loopback,
            "workloads": {r.key: r.to_json() for r in self.results},
        }

    @property
    def complete(self) -> bool:
        return all(
            len(server_result.measurements) == self.args.rounds and not server_result.errors
            for result in self.results
            for server_result in result.servers.values()
        )


def _without_nan(value: Any) -> Any:
    """JSON has no NaN; a value that could not be measured becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        ensure_packages()
    except ServerStartError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    bench = Benchmark(args)
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        bench.progress("interrupted; stopping servers and printing what was measured")
    finally:
        bench.cleanup()
    print(format_table(bench.results, args.server_names, bench.loopback))
    if args.json:
        document = _without_nan(bench.to_json())
        args.json.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        bench.progress(f"wrote {args.json}")
    if interrupted:
        return 130
    return 0 if bench.complete else 1


if __name__ == "__main__":
    sys.exit(main())
