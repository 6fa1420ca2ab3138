"""The physical reference: one iperf3 TCP stream over 127.0.0.1 on this machine."""

from __future__ import annotations

import json
import subprocess
import time

from benchmarks.servers import HOST, free_port, stop_process_tree

MB = 1_000_000


def measure_iperf3(seconds: int) -> dict[str, float | str]:
    """Run `iperf3 -s -1` and one `iperf3 -c` for `seconds`; return received MB/s or an error text."""
    port = free_port()
    server = subprocess.Popen(
        ["iperf3", "-s", "-1", "-B", HOST, "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # iperf3 gives no readiness signal we can read unbuffered, and a probe connection would use up the
        # server's single (-1) test, so the client simply retries while the server is still starting.
        for _ in range(20):
            client = subprocess.run(
                ["iperf3", "-c", HOST, "-p", str(port), "-t", str(seconds), "-J"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
                timeout=seconds + 30,
            )
            report = json.loads(client.stdout or b"{}")
            if "error" not in report and client.returncode == 0:
                received = report["end"]["sum_received"]["bits_per_second"] / 8
                return {"MBps": received / MB, "seconds": seconds, "streams": 1}
            if "connect" not in str(report.get("error", "")):
                return {"error": str(report.get("error") or client.stderr.decode(errors="replace"))}
            time.sleep(0.1)
        return {"error": "iperf3 server did not accept connections"}
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        return {"error": f"iperf3 failed: {e}"}
    finally:
        stop_process_tree(server, grace_s=2.0)
