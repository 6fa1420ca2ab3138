"""Run the fuzz harnesses for a bounded time: `python -m tests.fuzz.run --seconds N [--harness NAME]`.

With atheris installed each harness runs under libFuzzer in its own process (coverage-guided, seeded with the
captured frames of tests/vectors/); without it, or with `--engine random`, a seeded loop feeds random inputs to
the same `one_input`. Exit status 0: no finding; 1: a finding, whose input is printed in hex (and, under
libFuzzer, kept as a crash-* file under --artifacts).
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HARNESSES = {"decoders": "tests.fuzz.fuzz_decoders", "request_path": "tests.fuzz.fuzz_request_path"}
# An input that takes longer than this is a hang (libFuzzer -timeout; faulthandler in the random loop).
INPUT_TIMEOUT_S = 30
RSS_LIMIT_MB = 3072


def atheris_available() -> bool:
    try:
        importlib.import_module("atheris")
    except ImportError:
        return False
    return True


def run_atheris(harness: str, seconds: int, artifacts: Path) -> int:
    module = HARNESSES[harness]
    with tempfile.TemporaryDirectory(prefix=f"smbsrv-fuzz-{harness}-") as work:
        corpus = Path(work) / "corpus"
        corpus.mkdir()
        seeds = getattr(importlib.import_module(module), "seeds", None) if harness == "decoders" else None
        for index, seed in enumerate(seeds() if seeds else []):
            (corpus / f"seed-{index}").write_bytes(seed)
        share = Path(work) / "server"
        share.mkdir()
        env = {**os.environ, "PYTHONPATH": str(REPO), "SMBSRV_FUZZ_DIR": str(share)}
        argv = [sys.executable, "-m", module, str(corpus), f"-max_total_time={seconds}",
                f"-timeout={INPUT_TIMEOUT_S}", f"-rss_limit_mb={RSS_LIMIT_MB}", f"-artifact_prefix={artifacts}/",
                "-print_final_stats=1", "-max_len=4096"]
        result = subprocess.run(argv, check=False, cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=seconds + INPUT_TIMEOUT_S + 60)
    print(f"{harness}: libFuzzer exit {result.returncode}")
    stats = [line for line in result.stderr.splitlines() if line.startswith(("stat::", "#", "Done"))]
    print("\n".join(stats[-6:]))
    if result.returncode != 0:
        print(result.stderr[-8000:])
        for crash in sorted(artifacts.glob("*-*")):
            print(f"{crash.name}: {crash.read_bytes().hex()}")
        return 1
    return 0


def run_random(harness: str, seconds: int, seed: int) -> int:
    """The fallback: random inputs into the harness's one_input, in this process."""
    with tempfile.TemporaryDirectory(prefix=f"smbsrv-fuzz-{harness}-") as work:
        os.environ["SMBSRV_FUZZ_DIR"] = work
        one_input: Callable[[bytes], None] = importlib.import_module(HARNESSES[harness]).one_input
        rng = random.Random(seed)
        inputs = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            data = rng.randbytes(rng.randint(0, 1024))
            faulthandler.dump_traceback_later(INPUT_TIMEOUT_S, exit=True)
            try:
                one_input(data)
            except Exception:  # noqa: BLE001 - any exception out of one_input is the finding being looked for
                traceback.print_exc()
                print(f"{harness}: finding after {inputs} inputs; input: {data.hex()}")
                return 1
            finally:
                faulthandler.cancel_dump_traceback_later()
            inputs += 1
        close_server = getattr(sys.modules[HARNESSES[harness]], "close_server", None)
        if close_server is not None:
            close_server()  # before the temporary directory it lives in goes away
    print(f"{harness}: {inputs} random inputs in {seconds} s, no finding")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="time per harness")
    parser.add_argument("--harness", choices=[*HARNESSES, "all"], default="all")
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random engine")
    parser.add_argument("--artifacts", type=Path, help="where libFuzzer keeps crash inputs (default: a temp dir)")
    args = parser.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if atheris_available() else "random"
    harnesses = list(HARNESSES) if args.harness == "all" else [args.harness]
    artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="smbsrv-fuzz-artifacts-"))
    artifacts.mkdir(parents=True, exist_ok=True)
    failures = 0
    for harness in harnesses:
        if engine == "atheris":
            failures += run_atheris(harness, args.seconds, artifacts)
        else:
            failures += run_random(harness, args.seconds, args.seed)
    if not failures and args.artifacts is None:
        shutil.rmtree(artifacts, ignore_errors=True)
    elif failures:
        print(f"crash inputs kept in {artifacts}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
