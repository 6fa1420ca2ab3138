"""The Prometheus endpoint against the daemon, scraped during and after a workload (issue 17).

The workload's requests are known exactly, so the counters must match them exactly: requests by command and
status, the latency histogram's counts, bytes written and read, the failed logon, the open-handle limit, and the
gauges of connections, sessions and open files.
"""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests import builders as b
from tests.conftest import PASSWORD, USER
from tests.integration.operations_helpers import ops_server

WRITES = 20
CHUNK = 1000
MAX_OPENS = 4


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)  # type: ignore[no-any-return]


def test_metrics_during_a_workload(tmp_path: Path) -> None:
    with ops_server(tmp_path, metrics=True, metrics_port=0, max_opens_per_session=MAX_OPENS) as ops:
        server = ops.server
        match = ops.wait_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
        url = f"http://127.0.0.1:{match.group(1)}/metrics"
        halfway, scraped = threading.Event(), threading.Event()
        errors: list[BaseException] = []
        with b.connect(server.host, server.port, USER, PASSWORD, sign=True) as client:
            handle = client.open("data.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                 disposition=b.FILE_CREATE)

            def workload() -> None:
                try:
                    for index in range(WRITES):
                        assert client.write(handle, index * CHUNK, bytes([index]) * CHUNK).status == 0
                        if index == WRITES // 2:
                            halfway.set()
                            assert scraped.wait(10)
                    assert len(b.read_data(client.read(handle, 0, WRITES * CHUNK))) == WRITES * CHUNK
                except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
                    errors.append(exc)
                    halfway.set()

            worker = threading.Thread(target=workload)
            worker.start()
            assert halfway.wait(20)
            during = _scrape(url)
            scraped.set()
            worker.join(30)
            assert not errors, errors
            # Mid-workload: the writes so far are counted, and the one connection with its session and handle.
            assert WRITES // 2 <= _value(during, "smbsrv_requests_total", command="WRITE",
                                         status="STATUS_SUCCESS") < WRITES
            assert _value(during, "smbsrv_sessions") == 1 and _value(during, "smbsrv_open_files") == 1

            # The per-session open limit, hit once.
            extra = [client.open(f"extra{i}", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE)
                     for i in range(MAX_OPENS - 1)]
            refused = client.create("one-too-many", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE)
            assert refused.status == 0xC000011F  # STATUS_TOO_MANY_OPENED_FILES
            # A failed logon from a second connection.
            with b.Client(server.host, server.port).connect() as intruder:
                intruder.negotiate()
                assert b.status_name(intruder.session_setup(USER, "wrong")) == "STATUS_LOGON_FAILURE"
            after = _scrape(url)
            for file_id in [handle, *extra]:
                client.close_file(file_id)

    assert _value(after, "smbsrv_requests_total", command="WRITE", status="STATUS_SUCCESS") == WRITES
    assert _value(after, "smbsrv_requests_total", command="READ", status="STATUS_SUCCESS") == 1
    assert _value(after, "smbsrv_requests_total", command="CREATE", status="STATUS_SUCCESS") == MAX_OPENS
    assert _value(after, "smbsrv_requests_total", command="CREATE", status="STATUS_TOO_MANY_OPENED_FILES") == 1
    assert _value(after, "smbsrv_requests_total", command="SESSION_SETUP", status="STATUS_LOGON_FAILURE") == 1
    assert _value(after, "smbsrv_request_duration_seconds_count", command="WRITE") == WRITES
    assert _value(after, "smbsrv_request_duration_seconds_bucket", command="WRITE", le="+Inf") == WRITES
    assert 0 < _value(after, "smbsrv_request_duration_seconds_sum", command="WRITE") < 10
    assert _value(after, "smbsrv_written_bytes_total") == WRITES * CHUNK
    assert _value(after, "smbsrv_read_bytes_total") == WRITES * CHUNK
    assert _value(after, "smbsrv_auth_failures_total") == 1
    assert _value(after, "smbsrv_limit_hits_total", limit="opens_per_session") == 1
    assert _value(after, "smbsrv_limit_hits_total", limit="connections") == 0
    assert _value(after, "smbsrv_sessions") == 1 and _value(after, "smbsrv_tree_connects") == 1
    assert _value(after, "smbsrv_open_files") == MAX_OPENS
    assert _value(after, "smbsrv_connections") in (1, 2)  # the intruder's connection may still be closing


def test_connection_limit_is_counted(tmp_path: Path) -> None:
    with ops_server(tmp_path, metrics=True, metrics_port=0, max_connections=1) as ops:
        server = ops.server
        port = ops.wait_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1)
        url = f"http://127.0.0.1:{port}/metrics"
        with b.connect(server.host, server.port, USER, PASSWORD):
            with b.Client(server.host, server.port).connect() as refused:
                assert refused.is_dropped()
            ops.wait_log(r"connection \d+ refused")
            assert _value(_scrape(url), "smbsrv_limit_hits_total", limit="connections") == 1


def test_a_request_refused_instead_of_going_async_is_counted(tmp_path: Path) -> None:
    """A blocking LOCK in the middle of a compound is answered STATUS_INTERNAL_ERROR at once (protocol/
    connection.py, [MS-SMB2] 3.3.5.2.7) and never completes: it is counted with that status all the same."""
    exclusive, fail_immediately, unlock = 0x02, 0x10, 0x04
    related = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
    with ops_server(tmp_path, metrics=True, metrics_port=0) as ops:
        server = ops.server
        port = ops.wait_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1)
        with b.connect(server.host, server.port, USER, PASSWORD) as holder, \
                b.connect(server.host, server.port, USER, PASSWORD) as client:
            held = holder.open("locked", desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=b.FILE_CREATE)
            assert holder.request(b.SMB2_LOCK, b.lock_body(held, [(0, 10, exclusive | fail_immediately)])).status == 0
            ids = client.send(
                b.Req(b.SMB2_CREATE, b.create_body("locked", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                                   disposition=b.FILE_OPEN)),
                b.Req(b.SMB2_LOCK, b.lock_body(related, [(0, 10, exclusive)]), related=True),
                b.Req(b.SMB2_CLOSE, b.close_body(related), related=True))
            statuses = [client.receive(message_id, skip_pending=False).status for message_id in ids]
            assert statuses == [0, 0xC00000E5, 0]  # STATUS_INTERNAL_ERROR for the LOCK
            assert holder.request(b.SMB2_LOCK, b.lock_body(held, [(0, 10, unlock)])).status == 0
            samples = _scrape(f"http://127.0.0.1:{port}/metrics")
    assert _value(samples, "smbsrv_requests_total", command="LOCK", status="STATUS_INTERNAL_ERROR") == 1
    assert _value(samples, "smbsrv_request_duration_seconds_count", command="LOCK") == 3  # with the holder's two
    assert _value(samples, "smbsrv_requests_total", command="LOCK", status="STATUS_SUCCESS") == 2


def test_metrics_are_off_unless_configured_and_404_elsewhere(tmp_path: Path) -> None:
    with ops_server(tmp_path) as ops:
        assert "metrics on" not in ops.server.log_text()
    base = tmp_path / "on"
    base.mkdir()
    with ops_server(base, metrics=True, metrics_port=0) as ops:
        port = int(ops.wait_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
            raise AssertionError("expected 404")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    assert re.search(r'metrics_listen = "127\.0\.0\.1"', Path("conf/smbsrv.toml").read_text())
