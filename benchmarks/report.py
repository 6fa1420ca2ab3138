"""Collecting run results, and presenting them as a table on stdout and as a JSON document.

The ratio is always smbsrv / Samba of the medians; the "better" column says which direction is good (for
throughput higher, for latency and memory lower). CPU is server CPU seconds per GiB moved or per thousand
operations, median over rounds; peak RSS is the largest summed RSS of the server's process tree seen in any
round.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from benchmarks.workloads import MIB, Measurement, Workload

SERVER_LABELS = {"smbsrv": "smbsrv", "samba": "Samba"}
FOOTNOTES = [
    "ratio: smbsrv median / Samba median.",
    "CPU: server process-tree CPU seconds (user+system, reaped children included) per GiB moved,",
    "  or per 1,000 operations (files, entries, connections).",
    "RSS: peak summed RSS of the server's process tree. It counts pages shared between Samba's forked",
    "  processes once per process, so idle_conns reports the proportional set size (PSS) instead.",
    "connect: median wall time of negotiate + session setup + tree connect + logoff (Python raw-socket client).",
]
SIGNING_LABELS = {"default": "signing as each server defaults", "required": "signing required on both sides"}


@dataclass
class ServerResult:
    measurements: list[Measurement] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [m.value for m in self.measurements]

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.measurements else None

    @property
    def cpu_per_unit(self) -> float | None:
        per_unit = [m.cpu_s / m.work_units for m in self.measurements if m.work_units]
        return statistics.median(per_unit) if per_unit else None

    @property
    def peak_rss_mib(self) -> float | None:
        return max(m.peak_rss_bytes for m in self.measurements) / MIB if self.measurements else None

    def to_json(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "values": self.values,
            "cpu_s_per_unit": self.cpu_per_unit,
            "cpu_s": [m.cpu_s for m in self.measurements],
            "peak_rss_MiB": self.peak_rss_mib,
            "extra": [m.extra for m in self.measurements],
            "errors": self.errors,
        }


@dataclass
class WorkloadResult:
    workload: Workload
    signing: str
    servers: dict[str, ServerResult]

    @property
    def key(self) -> str:
        return self.workload.name if self.signing == "default" else f"{self.workload.name}/signed"

    @property
    def ratio(self) -> float | None:
        ours = self.servers.get("smbsrv")
        theirs = self.servers.get("samba")
        if ours is None or theirs is None or ours.median is None or not theirs.median:
            return None
        return ours.median / theirs.median

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload.name,
            "title": self.workload.title,
            "signing": self.signing,
            "unit": self.workload.unit,
            "higher_is_better": self.workload.higher_is_better,
            "cpu_unit": f"s/{self.workload.work_unit}",
            "ratio_smbsrv_to_samba": self.ratio,
            "servers": {name: result.to_json() for name, result in self.servers.items()},
        }


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cell(result: ServerResult | None, value: float | None) -> str:
    if result is None:
        return "n/a"
    if result.errors and not result.measurements:
        return "error"
    return _number(value)


def format_table(results: list[WorkloadResult], servers: list[str], loopback: dict[str, Any]) -> str:
    lines: list[str] = []
    if "MBps" in loopback:
        lines.append(
            f"Loopback TCP reference (iperf3, 1 stream, {loopback['seconds']} s, 127.0.0.1): "
            f"{_number(loopback['MBps'])} MB/s"
        )
    else:
        lines.append(f"Loopback TCP reference: unavailable ({loopback.get('error', 'not measured')})")
    header = (
        ["workload", "unit"]
        + [SERVER_LABELS[s] for s in servers]
        + ["ratio", "better"]
        + [f"CPU {SERVER_LABELS[s]}" for s in servers]
        + ["CPU per"]
        + [f"RSS {SERVER_LABELS[s]}" for s in servers]
    )
    for signing in dict.fromkeys(r.signing for r in results):
        rows = [header]
        for result in (r for r in results if r.signing == signing):
            per_server = [result.servers.get(s) for s in servers]
            ratio = result.ratio
            rows.append(
                [result.workload.name, result.workload.unit]
                + [_cell(r, r.median if r else None) for r in per_server]
                + [
                    "-" if ratio is None else f"{ratio:.2f}x",
                    "higher" if result.workload.higher_is_better else "lower",
                ]
                + [_cell(r, r.cpu_per_unit if r else None) for r in per_server]
                + [f"s/{result.workload.work_unit}"]
                + [
                    _cell(r, r.peak_rss_mib if r else None)
                    + ("" if r is None or r.peak_rss_mib is None else " MiB")
                    for r in per_server
                ]
            )
        widths = [max(len(row[col]) for row in rows) for col in range(len(header))]
        lines.append("")
        lines.append(f"== {SIGNING_LABELS.get(signing, signing)} ==")
        for index, row in enumerate(rows):
            cells = [
                cell.ljust(widths[col]) if col < 2 else cell.rjust(widths[col])
                for col, cell in enumerate(row)
            ]
            lines.append("  ".join(cells).rstrip())
            if index == 0:
                lines.append("  ".join("-" * w for w in widths))
    errors = [
        f"  {result.key} {SERVER_LABELS[name]}: {error}"
        for result in results
        for name, server_result in result.servers.items()
        for error in dict.fromkeys(server_result.errors)
    ]
    if errors:
        lines.append("")
        lines.append("Errors:")
        lines.extend(errors)
    lines.append("")
    lines.extend(FOOTNOTES)
    return "\n".join(lines)
