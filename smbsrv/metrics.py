"""Prometheus metrics (optional: `metrics = true`, and the `metrics` extra for prometheus_client).

Per request the server only adds to plain dicts and lists (`Metrics.request`, called by events.py); the
prometheus_client objects are built from them when someone scrapes, by a custom collector. That keeps the
request path at a few dict operations instead of prometheus_client's per-label locks. The HTTP endpoint runs
on the event loop (no extra thread, so it always acts as the server), answers GET /metrics and nothing else,
and listens on 127.0.0.1 unless configured otherwise.

Limits hit that never reach a handler (a refused connection, a credit-window violation, a slow client) are
counted from the transport's log records (`LimitCounter`): those records are the one place they are decided.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from smbsrv.wire.constants import Command
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.protocol.context import RequestContext
    from smbsrv.state import ServerState

log = logging.getLogger(__name__)

# Seconds; a cached metadata request takes ~50 us, an 8 MiB WRITE to disk tens of milliseconds.
BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WRITE_LENGTH = slice(64 + 4, 64 + 8)  # [MS-SMB2] 2.2.21: Length after StructureSize and DataOffset
# STATUS_INSUFFICIENT_RESOURCES / TOO_MANY_OPENED_FILES answers that mean a configured limit was reached.
_LIMIT_STATUS: dict[tuple[int, int], str] = {
    (Command.SESSION_SETUP, NtStatus.STATUS_INSUFFICIENT_RESOURCES): "sessions_per_connection",
    (Command.TREE_CONNECT, NtStatus.STATUS_INSUFFICIENT_RESOURCES): "tree_connects_per_session",
    (Command.CREATE, NtStatus.STATUS_TOO_MANY_OPENED_FILES): "opens_per_session",
}
_HTTP_TIMEOUT_S = 5.0


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[int, int], int] = {}
        self.latency: dict[int, list[float]] = {}  # command -> counts per bucket (+Inf last), then the sum
        self.bytes_read = 0
        self.bytes_written = 0
        self.auth_failures = 0
        self.limits: dict[str, int] = {}

    def request(self, ctx: RequestContext, command: int, status: int, elapsed_s: float, result: Any) -> None:
        key = (command, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.latency.get(command)
        if histogram is None:
            histogram = self.latency[command] = [0.0] * (len(BUCKETS_S) + 2)
        histogram[bisect.bisect_left(BUCKETS_S, elapsed_s)] += 1
        histogram[-1] += elapsed_s
        if status == NtStatus.STATUS_SUCCESS:
            if command == Command.READ and result is not None and result.payload is not None:
                self.bytes_read += len(result.payload)
            elif command == Command.WRITE:
                self.bytes_written += int.from_bytes(ctx.element[_WRITE_LENGTH], "little")
        elif status == NtStatus.STATUS_LOGON_FAILURE and command == Command.SESSION_SETUP:
            self.auth_failures += 1
        else:
            limit = _LIMIT_STATUS.get(key)
            if limit is not None:
                self.limit_hit(limit)

    def limit_hit(self, limit: str) -> None:
        self.limits[limit] = self.limits.get(limit, 0) + 1


class LimitCounter(logging.Filter):
    """Counts the transport's decisions that end a connection for a limit. It only looks at the record's
    template and never drops a record."""

    _TEMPLATES: ClassVar[dict[str, str]] = {
        "connection %d refused: %d connections": "connections",
        "connection %d: dropped: too slow": "timeouts",
    }

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def filter(self, record: logging.LogRecord) -> bool:
        limit = self._TEMPLATES.get(record.msg) if isinstance(record.msg, str) else None
        if limit is None and record.msg == "connection %d: dropped: %s" and "outside window" in str(record.args):
            limit = "credits"
        if limit is not None:
            self.metrics.limit_hit(limit)
        return True


class _Collector:
    """Builds the metric families at scrape time from Metrics and the server state."""

    def __init__(self, metrics: Metrics, state: ServerState) -> None:
        self.metrics = metrics
        self.state = state

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        metrics = self.metrics
        requests = CounterMetricFamily("smbsrv_requests", "SMB2 requests answered, by command and status",
                                       labels=["command", "status"])
        for (command, status), count in sorted(metrics.requests.items()):
            requests.add_metric([_command_name(command), _status_name(status)], count)
        yield requests
        latency = HistogramMetricFamily("smbsrv_request_duration_seconds",
                                        "Time from dispatch to the answer, by command", labels=["command"])
        for command, histogram in sorted(metrics.latency.items()):
            buckets, running = [], 0.0
            for bound, in_bucket in zip((*BUCKETS_S, float("inf")), histogram[:-1]):
                running += in_bucket
                buckets.append((_bound_label(bound), running))
            latency.add_metric([_command_name(command)], buckets, histogram[-1])
        yield latency
        yield CounterMetricFamily("smbsrv_read_bytes", "Bytes returned by READ", value=metrics.bytes_read)
        yield CounterMetricFamily("smbsrv_written_bytes", "Bytes accepted by WRITE", value=metrics.bytes_written)
        yield CounterMetricFamily("smbsrv_auth_failures", "Failed logons (STATUS_LOGON_FAILURE)",
                                  value=metrics.auth_failures)
        limits = CounterMetricFamily("smbsrv_limit_hits", "Requests or connections refused by a configured limit",
                                     labels=["limit"])
        for name in ("connections", "credits", "timeouts", "sessions_per_connection",
                     "tree_connects_per_session", "opens_per_session"):
            limits.add_metric([name], metrics.limits.get(name, 0))
        yield limits
        connections = list(self.state.connections)
        sessions = [s for c in connections for s in list(c.sessions.values()) if s.state == "valid"]
        yield GaugeMetricFamily("smbsrv_connections", "Open client connections", value=len(connections))
        yield GaugeMetricFamily("smbsrv_sessions", "Logged-on sessions", value=len(sessions))
        yield GaugeMetricFamily("smbsrv_tree_connects", "Tree connects",
                                value=sum(len(s.tree_connects) for s in sessions))
        yield GaugeMetricFamily("smbsrv_open_files", "Open handles", value=sum(len(s.opens) for s in sessions))


def _bound_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _command_name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"0x{command:02x}"


def _status_name(status: int) -> str:
    try:
        return NtStatus(status).name
    except ValueError:
        return f"0x{status:08x}"


class MetricsServer:
    """GET /metrics over HTTP/1.0-style one-shot connections, on the event loop."""

    def __init__(self, metrics: Metrics, state: ServerState) -> None:
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(metrics, state))  # type: ignore[arg-type]
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", host if ":" not in host else f"[{host}]", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        try:
            async with asyncio.timeout(_HTTP_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            method, _, rest = head.partition(b" ")
            path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            if method == b"GET" and path == b"/metrics":
                body = generate_latest(self.registry)
                status, content_type = "200 OK", CONTENT_TYPE_LATEST
            else:
                body, status, content_type = b"only GET /metrics\n", "404 Not Found", "text/plain"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


__all__ = ["LimitCounter", "Metrics", "MetricsServer"]
