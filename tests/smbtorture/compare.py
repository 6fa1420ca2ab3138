"""smbtorture against smbsrv and against Debian's Samba smbd in the same setup, side by side.

The question it answers: for each sub-test smbsrv fails, does Samba 4.17 pass it when it serves the same share
to the same non-root account? Both servers run as root (as a real deployment does) and act as one Unix account
created for the run with useradd (removed again afterwards, also on failure or SIGTERM/SIGINT). Each server
gets its own share directory, owned by that account, mode 0755, side by side on one filesystem. Samba runs with
default settings except what isolation needs (benchmarks/servers.py SambaServer, the account in its passdb via
smbpasswd); smbsrv runs with `--user NAME:PASSWORD`, which acts as the Unix account NAME. Sub-tests, timeouts,
emptying the share and the reading of results are those of tests/integration/test_smbtorture.py
(tests/smbtorture/runner.py). The two servers run their lists at the same time, one sub-test each.

    scripts/torture-compare                       # every sub-test test_smbtorture.py runs
    scripts/torture-compare --suite smb2.acls -k OWNER --json /tmp/acls.json
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from benchmarks.servers import HOST, SHARE_NAME, SambaServer, Server, ServerStartError, SmbsrvServer
from tests.smbtorture.runner import (
    FAILING,
    RUNS,
    SMBSRV_BUG_MARKERS,
    Outcome,
    Run,
    Target,
    list_subtests,
    parse_known_failures,
    run_id,
    run_subtest,
)

SERVERS = ("samba", "smbsrv")
PASSWORD = "Torture-Pass-1"


@contextmanager
def unix_account() -> Iterator[str]:
    """A fresh non-root Unix account (own group, no home, no login shell) that exists only for this block."""
    name = "torture" + secrets.token_hex(3)
    subprocess.run(["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
                   check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


class Pool:
    """One server of one kind per Run, started on first use and restarted when a sub-test killed it."""

    def __init__(self, kind: str, base: Path, account: str) -> None:
        self.kind, self.base, self.account = kind, base, account
        self.servers: dict[str, Server] = {}
        self.restarts = 0
        self.closed = False  # set once cleanup began: a worker still running must not start a server again

    def target(self, run: Run) -> Target:
        if self.closed:
            raise ServerStartError("stopping")
        server = self.servers.get(run.name)
        if server is None or server.proc is None or server.proc.poll() is not None:
            if server is not None:
                server.stop()
                self.restarts += 1
            server = self._start(run)
            self.servers[run.name] = server
        process = server.proc
        assert process is not None
        smbsrv = self.kind == "smbsrv"
        return Target(HOST, server.port, SHARE_NAME, self.account, PASSWORD, server.share_dir,
                      alive=lambda: process.poll() is None, log_path=server.log_path if smbsrv else None,
                      bug_markers=SMBSRV_BUG_MARKERS if smbsrv else ())

    def _start(self, run: Run) -> Server:
        key = f"{self.kind}-{run.name or 'default'}"
        share, workdir = self.base / f"share-{key}", self.base / f"work-{key}-{self.restarts}"
        share.mkdir(mode=0o755, exist_ok=True)
        share.chmod(0o755)
        os.chown(share, *_ids(self.account))
        workdir.mkdir()
        server: Server
        if self.kind == "samba":
            server = SambaServer(workdir, share, self.account, PASSWORD, run.signing_required)
        else:
            options = " ".join(run.server_args) or "--signing desired"  # as tests/conftest.py starts it
            server = SmbsrvServer(workdir, share, self.account, PASSWORD, False,
                                  server_args=f"--log-level DEBUG {options}")
        server.start()
        return server

    def stop(self) -> None:
        self.closed = True
        for server in list(self.servers.values()):
            server.stop()


def _ids(account: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(account)
    return entry.pw_uid, entry.pw_gid


def selected(suites: list[str], keywords: list[str]) -> list[tuple[Run, str]]:
    """(run, sub-test) pairs: every suite of RUNS, narrowed to --suite prefixes and -k substrings."""
    chosen = []
    for run in RUNS:
        for suite in run.suites:
            for name in list_subtests(suite):
                label = run_id(run, name)
                if suites and not any(label == s or label.startswith(s + ".") or name == s
                                      or name.startswith(s + ".") for s in suites):
                    continue
                if keywords and not any(k in label for k in keywords):
                    continue
                chosen.append((run, name))
    return chosen


def run_all(pairs: list[tuple[Run, str]], pools: dict[str, Pool], report: dict, json_path: Path | None) -> None:
    """Each server works through the list in its own thread; results land in report["subtests"]."""
    lock = threading.Lock()
    rows = report["subtests"]

    def worker(kind: str) -> None:
        for index, (run, name) in enumerate(pairs):
            if pools[kind].closed:
                return
            label = run_id(run, name)
            try:
                outcome = run_subtest(pools[kind].target(run), name, label)
            except (ServerStartError, OSError) as exc:  # a server that cannot start: record it, keep the other server going
                outcome = Outcome(label, "no-result", 0.0, f"could not run: {exc}")
            with lock:
                rows[index][kind] = asdict(outcome) | {"first_line": outcome.first_line}
                print(f"[{kind} {index + 1}/{len(pairs)}] {label}: {outcome.result} ({outcome.seconds:.1f} s)",
                      file=sys.stderr, flush=True)
                if json_path:
                    json_path.write_text(json.dumps(report, indent=1))

    threads = [threading.Thread(target=worker, args=(kind,), daemon=True) for kind in pools]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(1.0)  # short joins so SIGINT/SIGTERM reach the main thread
    finally:
        for pool in pools.values():
            pool.stop()
        for thread in threads:
            thread.join(30.0)  # its smbtorture ends quickly once its server is gone


def _verdict(result: str) -> str:
    if result == "success":
        return "pass"
    if result == "skip":
        return "skip"
    return "FAIL" if result in FAILING else result


def summarize(report: dict) -> dict:
    rows = [row for row in report["subtests"] if all(kind in row for kind in report["servers"])]
    counts = {kind: {"pass": 0, "fail": 0, "skip": 0, "other": 0} for kind in report["servers"]}
    for row in rows:
        for kind in report["servers"]:
            verdict = _verdict(row[kind]["result"])
            key = {"pass": "pass", "FAIL": "fail", "skip": "skip"}.get(verdict, "other")
            counts[kind][key] += 1
    summary: dict = {"counts": counts}
    if set(SERVERS) <= set(report["servers"]):
        summary["samba_passes_smbsrv_fails"] = [
            {"name": row["name"], "smbsrv": row["smbsrv"]["result"], "line": row["smbsrv"]["first_line"],
             "known": row.get("known", "")}
            for row in rows if row["samba"]["result"] == "success" and row["smbsrv"]["result"] in FAILING]
        summary["smbsrv_passes_samba_fails"] = [
            {"name": row["name"], "samba": row["samba"]["result"], "line": row["samba"]["first_line"]}
            for row in rows if row["smbsrv"]["result"] == "success" and row["samba"]["result"] in FAILING]
    return summary


def print_report(report: dict) -> None:
    kinds = report["servers"]
    width = max((len(row["name"]) for row in report["subtests"]), default=10) + 2
    print(f"{'sub-test':<{width}}" + "".join(f"{kind:<10}" for kind in kinds))
    for row in report["subtests"]:
        cells = [_verdict(row[kind]["result"]) if kind in row else "-" for kind in kinds]
        differs = len(kinds) == 2 and cells[0] == "pass" and cells[1] == "FAIL"
        print(f"{row['name']:<{width}}" + "".join(f"{cell:<10}" for cell in cells) + ("  <--" if differs else ""))
    summary = report["summary"]
    print()
    for kind, count in summary["counts"].items():
        print(f"{kind}: {count['pass']} passed, {count['fail']} failed, {count['skip']} skipped"
              + (f", {count['other']} other" if count["other"] else ""))
    for key, title, other in (("samba_passes_smbsrv_fails", "Samba passes, smbsrv fails", "smbsrv"),
                              ("smbsrv_passes_samba_fails", "smbsrv passes, Samba fails", "samba")):
        if key in summary:
            print(f"\n{title} ({len(summary[key])}):")
            for entry in summary[key]:
                print(f"  {entry['name']} [{entry[other]}]: {entry['line']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", action="append", default=[],
                        help="only this suite or sub-test (dotted prefix; repeatable)")
    parser.add_argument("-k", dest="keywords", action="append", default=[],
                        help="only sub-tests whose name contains this (repeatable)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset of samba,smbsrv")
    parser.add_argument("--json", type=Path, help="write every result (with smbtorture's output) here")
    parser.add_argument("--list", action="store_true", help="print the selected sub-tests and exit")
    args = parser.parse_args(argv)
    kinds = [kind for kind in SERVERS if kind in args.servers.split(",")]
    pairs = selected(args.suite, args.keywords)
    if args.list or not pairs:
        print("\n".join(run_id(run, name) for run, name in pairs) or "no sub-test selected")
        return 0 if pairs else 2
    if os.geteuid() != 0:
        print("torture-compare runs both servers as root (as deployed) and creates a Unix account: run it as root",
              file=sys.stderr)
        return 2

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks: servers stopped, account removed

    signal.signal(signal.SIGTERM, terminate)
    known = parse_known_failures()
    version = subprocess.run(["smbd", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    with unix_account() as account, tempfile.TemporaryDirectory(prefix="torture-compare-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)  # Samba reaches the share as the account, through this directory
        report: dict = {"account": account, "samba": version, "servers": kinds, "started": time.time(),
                        "subtests": [{"name": run_id(run, name),
                                      "known": known[run_id(run, name)].reason
                                      if run_id(run, name) in known else ""} for run, name in pairs]}
        pools = {kind: Pool(kind, base, account) for kind in kinds}
        try:
            run_all(pairs, pools, report, args.json)
        finally:
            # A second SIGTERM/SIGINT must not cut the cleanup short: servers and the account would be left.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for pool in pools.values():
                pool.stop()  # again: a server a worker started while the first stop ran
    report["summary"] = summarize(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
