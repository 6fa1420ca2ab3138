"""Each fuzz harness runs for a bounded time in CI and fails on any finding (see tests/fuzz/run.py).

With atheris installed the harnesses run coverage-guided under libFuzzer; without it the runner's seeded random
loop feeds the same `one_input`, so the test still exercises the decoders and the request path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("SMBSRV_FUZZ_SECONDS", "15"))


@pytest.mark.parametrize("harness", ["decoders", "request_path"])
def test_harness_finds_nothing(harness: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", "--seconds", str(SECONDS), "--harness", harness,
         "--artifacts", str(tmp_path / "artifacts")],
        check=False, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=SECONDS + 120)
    output = "\n".join(line for line in (result.stdout + result.stderr).splitlines()
                       if not line.startswith("INFO: Instrumenting"))
    assert result.returncode == 0, f"the {harness} harness found something:\n{output[-10000:]}"
