"""Run the fuzz harnesses for a bounded time: `python -m tests.fuzz.run --seconds N [--harness NAME]`.

With atheris installed (it is in the `test` extras) each harness runs under libFuzzer in its own process
(coverage-guided, seeded with the captured frames of tests/vectors/). `--engine mutate` (the fallback without
atheris) runs a mutation loop in this process instead: it starts from the same captured frames and applies
random bit flips, boundary integers, insertions, deletions, truncations and splices, so that most inputs still
pass the header and StructureSize checks and reach the command handlers, which pure random bytes almost never do.
Its seed varies from run to run and is printed; `SMBSRV_FUZZ_SEED=N` (or `--seed N`) replays a run exactly.
Exit status 0: no finding; 1: a finding, whose input is printed in hex (and, under libFuzzer, kept as a crash-*
file under --artifacts).
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import random
import shutil
import struct
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
SEED_ENV = "SMBSRV_FUZZ_SEED"
VECTORS = REPO / "tests" / "vectors"
MAX_INPUT = 4096
# Values at the edges of 8/16/32/64-bit fields: lengths, offsets and counts live there.
_BOUNDARIES = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF)


def atheris_available() -> bool:
    try:
        importlib.import_module("atheris")
    except ImportError:
        return False
    return True


def run_atheris(harness: str, seconds: int, artifacts: Path) -> int:
    module = HARNESSES[harness]
    # libFuzzer's -seed is printed in its own output ("INFO: Seed: N") and replays with -seed=N.
    with tempfile.TemporaryDirectory(prefix=f"smbsrv-fuzz-{harness}-") as work:
        corpus = Path(work) / "corpus"
        corpus.mkdir()
        for index, seed in enumerate(corpus_for(harness)):
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
        # atheris prints an uncaught exception (the Finding, with its message in hex) on stdout.
        print(result.stdout[-8000:])
        print(result.stderr[-8000:])
        for crash in sorted(artifacts.glob("*-*")):
            print(f"{crash.name}: {crash.read_bytes().hex()}")
        return 1
    return 0


def captured_frames() -> list[bytes]:
    """The requests captured from real clients (tests/vectors/smb2_*.hex), one frame per file."""
    frames = []
    for path in sorted(VECTORS.glob("smb2_*.hex")):
        lines = path.read_text().splitlines()
        frames.append(bytes.fromhex("".join(line.strip() for line in lines if not line.startswith("#"))))
    return frames


def corpus_for(harness: str) -> list[bytes]:
    """The harness's own seeds (the decoders prefix a selector byte) or else the captured frames."""
    seeds = getattr(importlib.import_module(HARNESSES[harness]), "seeds", None)
    corpus = list(seeds()) if seeds is not None else captured_frames()
    return corpus or [b""]


def mutate(rng: random.Random, corpus: list[bytes]) -> bytes:
    """One input: a corpus entry with 1 to 8 mutations, or (rarely) random bytes."""
    if rng.random() < 0.05:
        return rng.randbytes(rng.randint(0, 1024))
    data = bytearray(rng.choice(corpus))
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(7)
        position = rng.randrange(len(data) + 1)
        if kind == 0 and data:  # flip one bit
            index = min(position, len(data) - 1)
            data[index] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:  # one random byte
            data[min(position, len(data) - 1)] = rng.randrange(256)
        elif kind == 2:  # a boundary integer of 1, 2, 4 or 8 bytes, either byte order
            width = rng.choice((1, 2, 4, 8))
            value = rng.choice(_BOUNDARIES) & ((1 << 8 * width) - 1)
            packed = value.to_bytes(width, rng.choice(("little", "big")))
            data[position:position + width] = packed
        elif kind == 3:  # insert random bytes
            data[position:position] = rng.randbytes(rng.randint(1, 64))
        elif kind == 4 and data:  # delete a chunk
            del data[position:position + rng.randint(1, 64)]
        elif kind == 5:  # truncate
            del data[position:]
        else:  # splice in a piece of another entry
            other = rng.choice(corpus)
            start = rng.randrange(len(other) + 1)
            data[position:position + rng.randint(0, 64)] = other[start:start + rng.randint(1, 128)]
    return bytes(data[:MAX_INPUT])


def run_mutate(harness: str, seconds: int, seed: int) -> int:
    """The in-process engine: mutated captured frames into the harness's one_input."""
    print(f"{harness}: mutation engine, seed {seed} (replay: {SEED_ENV}={seed} python -m tests.fuzz.run "
          f"--engine mutate --harness {harness} --seconds {seconds})", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"smbsrv-fuzz-{harness}-") as work:
        os.environ["SMBSRV_FUZZ_DIR"] = work
        module = importlib.import_module(HARNESSES[harness])
        one_input: Callable[[bytes], None] = module.one_input
        corpus = corpus_for(harness)
        rng = random.Random(seed)
        inputs = 0
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                data = mutate(rng, corpus)
                faulthandler.dump_traceback_later(INPUT_TIMEOUT_S, exit=True)
                try:
                    one_input(data)
                except Exception:  # noqa: BLE001 - any exception out of one_input is the finding being looked for
                    traceback.print_exc()
                    print(f"{harness}: finding at input {inputs} of seed {seed}; input: {data.hex()}")
                    return 1
                finally:
                    faulthandler.cancel_dump_traceback_later()
                inputs += 1
        finally:
            close_server = getattr(module, "close_server", None)
            if close_server is not None:
                close_server()  # before the temporary directory it lives in goes away
    print(f"{harness}: {inputs} mutated inputs in {seconds} s, no finding (seed {seed})")
    return 0


def _frame_sizes_ok() -> bool:
    """The captured frames hold at least an SMB2 header each (a broken vector file would starve the loop)."""
    return all(len(frame) >= 64 and frame[:4] == b"\xfeSMB" and struct.unpack_from("<H", frame, 4)[0] == 64
               for frame in captured_frames())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="time per harness")
    parser.add_argument("--harness", choices=[*HARNESSES, "all"], default="all")
    parser.add_argument("--engine", choices=("auto", "atheris", "mutate"), default="auto")
    parser.add_argument("--seed", type=int, help=f"seed of the mutation engine (default: ${SEED_ENV}, else the "
                        "clock)")
    parser.add_argument("--artifacts", type=Path, help="where libFuzzer keeps crash inputs (default: a temp dir)")
    args = parser.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if atheris_available() else "mutate"
    seed = args.seed
    if seed is None:
        seed = int(os.environ.get(SEED_ENV) or time.time_ns() % 2**32)
    assert _frame_sizes_ok(), "a captured frame in tests/vectors is not an SMB2 message"
    harnesses = list(HARNESSES) if args.harness == "all" else [args.harness]
    artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="smbsrv-fuzz-artifacts-"))
    artifacts.mkdir(parents=True, exist_ok=True)
    failures = 0
    for harness in harnesses:
        if engine == "atheris":
            failures += run_atheris(harness, args.seconds, artifacts)
        else:
            failures += run_mutate(harness, args.seconds, seed)
    if not failures and args.artifacts is None:
        shutil.rmtree(artifacts, ignore_errors=True)
    elif failures:
        print(f"crash inputs kept in {artifacts}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
