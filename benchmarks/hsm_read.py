"""Reading a 1 GiB placeholder over SMB: first-byte latency and throughput, per provider, next to the same file
already local.

    python3 -m benchmarks.hsm_read [--size-mib 1024] [--providers directory,s3]

Per provider: the file is released with `smbsrv hsm release`, then
- first byte: a raw client opens it and READs 64 KiB at offset 0 (the ranged first answer of a large
  placeholder); the time from sending the READ to its answer, and how long the background hydration of the
  whole file then takes (its fetch throughput);
- throughput: released again (the provider already holds the object, so only hashing and the verification
  run), then `smbclient get` of the whole file, timed from the command's start to its end (connect and logon
  included), while the hydration runs right ahead of the reader;
- local: the same `get` and first READ on the hydrated file (page cache warm: the machine is shared, so caches
  are not dropped).
The S3 provider talks to a private SeaweedFS on 127.0.0.1 (tests/integration/seaweed.py); the directory
provider's cold tier is a directory on the same disk. Run as root.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests import builders as b
from tests.integration.seaweed import SeaweedS3

USER, PASSWORD = "bench", "Bench-pass-1"
MARK = "trusted.smbsrv.hsm"


def _config(work: Path, share: Path, keys: dict[str, str]) -> Path:
    lines = ["[server]", f'state_dir = "{work / "state"}"', 'log_level = "INFO"', "", "[shares.share]",
             f'path = "{share}"'] + [f'{key} = "{value}"' for key, value in keys.items()]
    path = work / f"smbsrv-{keys['hsm_provider']}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _start(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "smbsrv", "serve", "-c", str(config), "--listen",
                                    "127.0.0.1", "--port", "0", "--user", f"{USER}:{PASSWORD}", "--signing",
                                    "desired"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    for _ in range(400):
        text = log.read_text(errors="replace")
        if "listening on" in text:
            return process, int(text.split("listening on ", 1)[1].split(" port ", 1)[1].split()[0])
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(log.read_text(errors="replace"))


def _release(config: Path, path: Path) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "smbsrv", "hsm", "release", "-c", str(config), str(path)], cwd=REPO,
                   check=True, capture_output=True)
    return time.monotonic() - started


def _is_placeholder(path: Path) -> bool:
    try:
        return bool(os.getxattr(path, MARK))
    except OSError:
        return False


def _first_read_ms(port: int) -> float:
    with b.connect("127.0.0.1", port, USER, PASSWORD) as client:
        file_id = client.open("big.bin")
        started = time.monotonic()
        response = client.read(file_id, 0, 65536)
        elapsed = time.monotonic() - started
        assert response.status == b.STATUS_SUCCESS and len(b.read_data(response)) == 65536
        client.close_file(file_id)
    return elapsed * 1000


def _get_s(port: int) -> float:
    started = time.monotonic()
    subprocess.run(["smbclient", "//127.0.0.1/share", "-p", str(port), "-U", f"{USER}%{PASSWORD}", "-c",
                    "get big.bin /dev/null"], check=True, capture_output=True, timeout=900)
    return time.monotonic() - started


def _wait_hydrated(path: Path, timeout_s: float = 900) -> float:
    started = time.monotonic()
    while _is_placeholder(path):
        if time.monotonic() - started > timeout_s:
            raise RuntimeError("hydration did not finish")
        time.sleep(0.01)
    return time.monotonic() - started


def run(size_mib: int, providers: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="smbsrv-hsm-bench-") as tmp:
        work = Path(tmp)
        share = work / "share"
        share.mkdir()
        big = share / "big.bin"
        with open(big, "wb") as file:
            chunk = os.urandom(16 * 1024 * 1024)
            file.writelines(chunk for _ in range(size_mib // 16))
        size = big.stat().st_size
        mib = size / (1024 * 1024)
        rows: list[tuple[str, float, str, float]] = []
        store: SeaweedS3 | None = None
        try:
            for provider in providers:
                if provider == "directory":
                    (work / "cold").mkdir(exist_ok=True)
                    keys = {"hsm_provider": "directory", "hsm_directory": str(work / "cold")}
                else:
                    store = SeaweedS3(str(work / "seaweed"))
                    store.start()
                    keys = {"hsm_provider": "s3", "hsm_s3_endpoint": store.endpoint, "hsm_s3_bucket": store.bucket}
                config = _config(work, share, keys)
                process, port = _start(config, work / f"server-{provider}.log")
                try:
                    upload_s = _release(config, big)
                    first_ms = _first_read_ms(port)
                    started = time.monotonic()
                    _wait_hydrated(big)
                    hydrate_s = time.monotonic() - started + first_ms / 1000
                    _release(config, big)
                    get_s = _get_s(port)
                    _wait_hydrated(big)  # the background hydration may end just after the reader
                    notes = f"release (upload) {upload_s:.1f} s, background hydration {mib / hydrate_s:.0f} MiB/s"
                    rows.append((provider, first_ms, notes, mib / get_s))
                    if provider == providers[-1]:
                        local_first = _first_read_ms(port)
                        rows.append(("local", local_first, "page cache warm", mib / _get_s(port)))
                finally:
                    process.terminate()
                    process.wait(30)
                if store is not None:
                    store.stop()
                    store = None
        finally:
            if store is not None:
                store.stop()
        print(f"{size_mib} MiB file, smbclient get over 127.0.0.1 (SMB 3.1.1, server signing desired)")
        print(f"{'source':<10} {'first 64 KiB READ':>18} {'get throughput':>16}  notes")
        for name, first_ms, notes, throughput in rows:
            print(f"{name:<10} {first_ms:>15.1f} ms {throughput:>11.0f} MiB/s  {notes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--providers", default="directory,s3")
    args = parser.parse_args()
    run(args.size_mib, args.providers.split(","))


if __name__ == "__main__":
    main()
