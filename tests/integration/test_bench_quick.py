"""scripts/bench --quick runs end to end against smbsrv and Samba and reports every workload for both.

Absolute numbers are never asserted: the machines are shared and noisy. What must hold is that each
workload, in both signing variants, produced a positive finite median and CPU figure for each server.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.workloads import WORKLOADS

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
