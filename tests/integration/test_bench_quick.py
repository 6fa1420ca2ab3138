"""scripts/bench --quick runs end to end against smbsrv and Samba and reports every workload for both.

Absolute numbers are never asserted: the machines are shared and noisy. What must hold is that each
workload, in both signing variants, produced a positive finite median and CPU figure for each server.

The read workloads send what they get to /dev/null (the client's write must not be timed), so a server that
answered with the wrong bytes would still be measured. test_bench_reads_return_the_fixture_bytes prepares
the same fixtures with the workloads' own prepare() and runs the same smbclient `get`s against the same
servers, but into files, and compares every byte with the source.
"""

from __future__ import annotations

import json
import math
import os
import pwd
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchmarks.servers import SHARE_NAME, SambaServer, SmbsrvServer
from benchmarks.workloads import QUICK_SIZES, WORKLOADS, Fixtures, ParallelRead, SequentialRead

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVERS = ("smbsrv", "samba")
# Quick mode takes about a minute on two shared cores; the limit only catches a hang.
TIMEOUT_S = 900


def _is_positive_number(value: object) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


@pytest.mark.slow
def test_quick_benchmark_reports_every_workload_for_both_servers(tmp_path: Path) -> None:
    out = tmp_path / "tmp.json"
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(
        [str(REPO_ROOT / "scripts" / "bench"), "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert out.exists(), f"no JSON written (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    document = json.loads(out.read_text())
    assert document["quick"] is True
    assert document["servers"] == list(SERVERS)
    assert document["signing_variants"] == ["default", "required"]

    problems: list[str] = []
    for variant in ("default", "required"):
        for workload in WORKLOADS:
            key = workload.name if variant == "default" else f"{workload.name}/signed"
            entry = document["workloads"].get(key)
            if entry is None:
                problems.append(f"{key}: missing")
                continue
            assert entry["unit"] == workload.unit
            for server in SERVERS:
                result = entry["servers"][server]
                if result["errors"]:
                    problems.append(f"{key} {server}: {result['errors'][0]}")
                if not _is_positive_number(result["median"]):
                    problems.append(f"{key} {server}: median {result['median']!r}")
                if not all(_is_positive_number(v) for v in result["values"]) or not result["values"]:
                    problems.append(f"{key} {server}: values {result['values']!r}")
                # CPU can round to zero at 10 ms tick resolution in quick mode, but it is always reported.
                cpu = result["cpu_s_per_unit"]
                if not isinstance(cpu, (int, float)) or not math.isfinite(cpu) or cpu < 0:
                    problems.append(f"{key} {server}: cpu_s_per_unit {cpu!r}")
                if not _is_positive_number(result["peak_rss_MiB"]):
                    problems.append(f"{key} {server}: peak_rss_MiB {result['peak_rss_MiB']!r}")
            if not _is_positive_number(entry["ratio_smbsrv_to_samba"]):
                problems.append(f"{key}: ratio {entry['ratio_smbsrv_to_samba']!r}")
    assert not problems, "\n".join(problems) + f"\n--- stderr ---\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, proc.stderr[-4000:]
    # The table went to stdout and names every workload.
    for workload in WORKLOADS:
        assert workload.name in proc.stdout


def _get(port: int, user: str, password: str, remote: str, local: Path, signing: bool) -> None:
    """The workloads' `get` (benchmarks.workloads), into a file instead of /dev/null."""
    argv = ["smbclient", f"//127.0.0.1/{SHARE_NAME}", "-p", str(port), "-U", f"{user}%{password}",
            "-c", f'get {remote} "{local}"']
    if signing:
        argv[1:1] = ["--client-protection=sign"]
    result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{remote}: {result.stdout}{result.stderr}"


@pytest.mark.slow
@pytest.mark.parametrize("signing", [False, True], ids=["default", "required"])
@pytest.mark.parametrize("server_class", [SmbsrvServer, SambaServer], ids=["smbsrv", "samba"])
def test_bench_reads_return_the_fixture_bytes(tmp_path: Path, server_class: type, signing: bool) -> None:
    sizes = QUICK_SIZES
    fixtures_root = tmp_path / "fixtures"
    fixtures_root.mkdir()
    fixtures = Fixtures.create(fixtures_root, sizes)
    share = tmp_path / "share"
    share.mkdir()
    SequentialRead().prepare(share, sizes, fixtures)
    ParallelRead().prepare(share, sizes, fixtures)
    # As scripts/bench does: Samba's tdbsam needs an existing account, the one running the tests.
    user, password = pwd.getpwuid(os.geteuid()).pw_name, secrets.token_hex(12)
    workdir = tmp_path / "server"
    workdir.mkdir()
    server = server_class(workdir, share, user, password, signing)
    server.start()
    try:
        back = tmp_path / "back"
        back.mkdir()
        _get(server.port, user, password, "read.bin", back / "read.bin", signing)
        names = [f"parallel-{index}.bin" for index in range(sizes.parallel_clients)]
        with ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(lambda name: _get(server.port, user, password, name, back / name, signing), names))
    finally:
        server.stop()
    source = fixtures.source_file.read_bytes()
    assert (back / "read.bin").read_bytes() == source[:sizes.write_bytes], "seq_read returned other bytes"
    for name in names:
        assert (back / name).read_bytes() == source[:sizes.parallel_bytes], f"{name} returned other bytes"
