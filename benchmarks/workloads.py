"""The workloads, each measured against one running server in one run.

Transfers and metadata workloads use Samba's C client, smbclient, with `-m SMB3` (dialect 3.1.1), so the
client is not the bottleneck; they are timed inside the connected session (see smbclient_session). The
connect-latency and idle-connection workloads use benchmarks.rawsmb, because smbclient's process start would
hide the connect and 200 smbclient processes would measure the client's memory rather than the server's.

Server CPU is the process tree's utime+stime (with reaped children) read just before the timed block and
just after it, while the clients wait idle at a gate; peak memory is the tree's summed RSS sampled every
100 ms during the block.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import statistics
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from benchmarks import procstat
from benchmarks.rawsmb import SmbConnection
from benchmarks.servers import Endpoint
from benchmarks.smbclient_session import SmbclientSession

MIB = 1 << 20
GIB = 1 << 30
MB = 1_000_000
_COPY_CHUNK_BYTES = 8 * MIB
# Free page reporting runs two seconds after a free (see prime_page_allocator); small quick-mode files skip it.
_PAGE_REPORTING_SETTLE_S = 2.5
_SETTLE_BYTES = 256 * MIB
# smbclient's own transfer report, "(12345.6 kb/s)" after a put and "(12345.6 KiloBytes/sec)" after a get,
# where a kilobyte is 1024 bytes (source3/client/client.c).
_CLIENT_RATE = re.compile(r"\((\d+(?:\.\d+)?) (?:kb/s|KiloBytes/sec)\)")


class WorkloadError(RuntimeError):
    """A run did not complete or its result did not check out."""


@dataclass(frozen=True)
class Sizes:
    write_bytes: int
    create_files: int
    list_entries: int
    stat_files: int
    parallel_clients: int
    parallel_bytes: int
    connects: int
    idle_connections: int


FULL_SIZES = Sizes(
    write_bytes=GIB,
    create_files=2000,
    list_entries=10_000,
    stat_files=2000,
    parallel_clients=8,
    parallel_bytes=128 * MIB,
    connects=50,
    idle_connections=200,
)
QUICK_SIZES = Sizes(
    write_bytes=16 * MIB,
    create_files=200,
    list_entries=1000,
    stat_files=200,
    parallel_clients=8,
    parallel_bytes=16 * MIB,
    connects=10,
    idle_connections=20,
)


def copy_prefix(source: Path, target: Path, length: int) -> None:
    """Write length bytes taken from the start of source (wrapping around) into a new file target."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        remaining = length
        while remaining:
            chunk = src.read(min(remaining, _COPY_CHUNK_BYTES))
            if not chunk:
                src.seek(0)
                continue
            dst.write(chunk)
            remaining -= len(chunk)


def prime_page_allocator(directory: Path, length: int) -> None:
    """Let earlier frees be reported, then write `length` bytes of zeros to a scratch file and delete it, just
    before a timed write.

    These machines are VMs with virtio-balloon free page reporting: memory the guest frees (the pages of the
    previous run's deleted 1 GiB file) is handed back to the hypervisor by a worker that runs two seconds after
    the free, and the next first touch of each page faults in the host. A put that lands on such pages spent 75%
    of its server CPU in copy_folio_from_iter_atomic and ran at 0.4 instead of 1.2 GB/s, for Samba and smbsrv
    alike. Pages freed a moment ago are still backed and are the ones the page cache gets next, but only if the
    worker does not fire during the put. Dirty data of earlier fixtures is written back first, so that
    writeback does not free or contend for pages during the timed put either."""
    if length >= _SETTLE_BYTES:
        os.sync()
        time.sleep(_PAGE_REPORTING_SETTLE_S)
    scratch = directory / "prime-page-allocator.tmp"
    zeros = bytes(_COPY_CHUNK_BYTES)
    try:
        with open(scratch, "wb") as f:
            f.writelines(zeros for _ in range(0, length, len(zeros)))
    finally:
        scratch.unlink(missing_ok=True)


def warm_page_cache(paths: list[Path]) -> None:
    """Read the files a read workload will fetch, untimed, so both servers serve them from the page cache:
    these VMs reclaim cold page-cache pages in the background (DAMON), and fixtures made minutes earlier were
    otherwise partly read from disk, at a cost that fell on whichever server came first."""
    buffer = bytearray(_COPY_CHUNK_BYTES)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass


def make_empty_files(directory: Path, count: int, prefix: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        os.close(os.open(directory / f"{prefix}-{index:05d}", os.O_CREAT | os.O_WRONLY, 0o644))


@dataclass
class Fixtures:
    """Client-side inputs on tmpfs, created once: the incompressible source file and a dir of empty files."""

    root: Path
    source_file: Path
    empty_dir: Path

    @classmethod
    def create(cls, root: Path, sizes: Sizes) -> Fixtures:
        source = root / "source.bin"
        with open(source, "wb") as f:
            remaining = sizes.write_bytes
            while remaining:
                # Random bytes, so neither a compressing transport nor a sparse-aware path can shortcut.
                chunk = os.urandom(min(remaining, 64 * MIB))
                f.write(chunk)
                remaining -= len(chunk)
        empty_dir = root / "empty"
        make_empty_files(empty_dir, sizes.create_files, "new")
        return cls(root, source, empty_dir)


@dataclass
class RunContext:
    """Everything one run of one workload against one server needs."""

    endpoint: Endpoint
    signing_required: bool
    workdir: Path
    sizes: Sizes
    fixtures: Fixtures
    run_id: str
    timeout_s: float


@dataclass
class Measurement:
    value: float
    work_units: float
    cpu_s: float
    peak_rss_bytes: int
    extra: dict[str, float | int | str] = field(default_factory=dict)


@dataclass
class SessionsResult:
    elapsed_s: float
    cpu_s: float
    peak_rss_bytes: int
    outputs: list[str]
    timer_overhead_s: float

    def timing(self) -> dict[str, float | int | str]:
        return {"elapsed_s": self.elapsed_s, "timer_overhead_s": self.timer_overhead_s}


def run_sessions(
    ctx: RunContext,
    name: str,
    scripts: list[tuple[list[str], list[str]]],
    fail_on_status: bool = True,
) -> SessionsResult:
    """Run smbclient sessions (setup, timed commands) together; time from the first start to the last end."""
    sessions = [
        SmbclientSession(
            ctx.endpoint,
            ctx.workdir,
            f"{name}-{ctx.run_id}-{index}",
            setup,
            commands,
            ctx.signing_required,
            ctx.timeout_s,
        )
        for index, (setup, commands) in enumerate(scripts)
    ]
    pid = ctx.endpoint.pid
    try:
        for session in sessions:
            session.start()
        for session in sessions:
            session.wait_ready()
        with procstat.ServerUsage(pid) as usage:
            for session in sessions:
                session.release()
            for session in sessions:
                session.wait_done()
        for session in sessions:
            session.finish(fail_on_status)
        elapsed_s = max(s.end_time for s in sessions) - min(s.start_time for s in sessions)
        outputs = [session.timed_output() for session in sessions]
        timer_overhead_s = statistics.median(session.timer_overhead_s for session in sessions)
    except RuntimeError as e:
        raise WorkloadError(str(e)) from e
    finally:
        for session in sessions:
            session.close()
    return SessionsResult(elapsed_s, usage.cpu_s, usage.peak_bytes, outputs, timer_overhead_s)


class Workload:
    """One workload: untimed preparation of the share, then one measured run per call of run()."""

    name: ClassVar[str]
    title: ClassVar[str]
    unit: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    # "GiB": CPU seconds per GiB moved; "1k ops": CPU seconds per thousand operations.
    work_unit: ClassVar[str] = "1k ops"

    def prepare(self, share_dir: Path, sizes: Sizes, fixtures: Fixtures) -> None:
        """Lay out the server-side files directly on disk; not timed."""

    def run(self, ctx: RunContext) -> Measurement:
        raise NotImplementedError


def _client_rate_mbps(output: str) -> float:
    match = _CLIENT_RATE.search(output)
    return float(match.group(1)) * 1024 / MB if match else float("nan")


class SequentialWrite(Workload):
    name = "seq_write"
    title = "sequential write, new file (put from /dev/shm)"
    unit = "MB/s"
    work_unit = "GiB"

    def run(self, ctx: RunContext) -> Measurement:
        size = ctx.sizes.write_bytes
        # A fresh name every run: overwriting pays for a truncate inside the timed open.
        remote = f"write-{ctx.run_id}.bin"
        written = ctx.endpoint.share_dir / remote
        prime_page_allocator(ctx.workdir, size)
        try:
            result = run_sessions(ctx, self.name, [([], [f"put {ctx.fixtures.source_file} {remote}"])])
            if not written.exists() or written.stat().st_size != size:
                raise WorkloadError(f"{remote} does not have {size} bytes after the put")
        finally:
            written.unlink(missing_ok=True)
        return Measurement(
            size / result.elapsed_s / MB,
            size / GIB,
            result.cpu_s,
            result.peak_rss_bytes,
            {**result.timing(), "client_reported_MBps": _client_rate_mbps(result.outputs[0])},
        )


class SequentialRead(Workload):
    name = "seq_read"
    title = "sequential read (get to /dev/null)"
    unit = "MB/s"
    work_unit = "GiB"

    def prepare(self, share_dir: Path, sizes: Sizes, fixtures: Fixtures) -> None:
        copy_prefix(fixtures.source_file, share_dir / "read.bin", sizes.write_bytes)

    def run(self, ctx: RunContext) -> Measurement:
        size = ctx.sizes.write_bytes
        warm_page_cache([ctx.endpoint.share_dir / "read.bin"])
        result = run_sessions(ctx, self.name, [([], ["get read.bin /dev/null"])])
        return Measurement(
            size / result.elapsed_s / MB,
            size / GIB,
            result.cpu_s,
            result.peak_rss_bytes,
            {**result.timing(), "client_reported_MBps": _client_rate_mbps(result.outputs[0])},
        )


class CreateFiles(Workload):
    name = "create_files"
    title = "create+close of empty files, one connection (mput)"
    unit = "files/s"

    def run(self, ctx: RunContext) -> Measurement:
        count = ctx.sizes.create_files
        directory = f"create-{ctx.run_id}"
        on_disk = ctx.endpoint.share_dir / directory
        setup = [f"mkdir {directory}", f"cd {directory}", f"lcd {ctx.fixtures.empty_dir}", "prompt"]
        try:
            result = run_sessions(ctx, self.name, [(setup, ["mput *"])])
            created = len(os.listdir(on_disk)) if on_disk.is_dir() else 0
            if created != count:
                raise WorkloadError(f"{created} of {count} files were created")
        finally:
            shutil.rmtree(on_disk, ignore_errors=True)
        return Measurement(
            count / result.elapsed_s,
            count / 1000,
            result.cpu_s,
            result.peak_rss_bytes,
            result.timing(),
        )


class ListDirectory(Workload):
    name = "list_dir"
    title = "listing of one large directory (ls)"
    unit = "entries/s"

    def prepare(self, share_dir: Path, sizes: Sizes, fixtures: Fixtures) -> None:
        make_empty_files(share_dir / f"list-{sizes.list_entries}", sizes.list_entries, "entry")

    def run(self, ctx: RunContext) -> Measurement:
        count = ctx.sizes.list_entries
        result = run_sessions(ctx, self.name, [([f"cd list-{count}"], ["ls"])])
        listed = result.outputs[0].count("entry-")
        if listed != count:
            raise WorkloadError(f"ls showed {listed} of {count} entries")
        return Measurement(
            count / result.elapsed_s,
            count / 1000,
            result.cpu_s,
            result.peak_rss_bytes,
            result.timing(),
        )


class StatFiles(Workload):
    name = "stat_files"
    title = "allinfo of files, one connection (many round trips per file)"
    unit = "files/s"

    def prepare(self, share_dir: Path, sizes: Sizes, fixtures: Fixtures) -> None:
        make_empty_files(share_dir / f"stat-{sizes.stat_files}", sizes.stat_files, "file")

    def run(self, ctx: RunContext) -> Measurement:
        count = ctx.sizes.stat_files
        commands = [f"allinfo file-{index:05d}" for index in range(count)]
        # allinfo prints the status of queries it can live without (alternate name, for one); the times
        # come from the query that must succeed, so that line is what we count.
        result = run_sessions(ctx, self.name, [([f"cd stat-{count}"], commands)], fail_on_status=False)
        output = result.outputs[0]
        answered = output.count("create_time:")
        if answered != count:
            first_error = next((line for line in output.splitlines() if "NT_STATUS_" in line), "")
            raise WorkloadError(f"allinfo answered for {answered} of {count} files {first_error.strip()}")
        return Measurement(
            count / result.elapsed_s,
            count / 1000,
            result.cpu_s,
            result.peak_rss_bytes,
            {**result.timing(), "status_lines": output.count("NT_STATUS_")},
        )


class CompoundStat(Workload):
    """stat(2) as cifs.ko sends it: CREATE + QUERY_INFO (FileAllInformation) + CLOSE in one compound, one round
    trip per file, from benchmarks.rawsmb (smbclient never compounds these; `ls -l`, find, make and git status
    on a Linux mount are storms of exactly this)."""

    name = "stat_compound"
    title = "stat of files as the Linux client does it (CREATE+QUERY_INFO+CLOSE compound, raw client)"
    unit = "files/s"

    def prepare(self, share_dir: Path, sizes: Sizes, fixtures: Fixtures) -> None:
        make_empty_files(share_dir / f"cstat-{sizes.stat_files}", sizes.stat_files, "file")

    def run(self, ctx: RunContext) -> Measurement:
        count = ctx.sizes.stat_files
        names = [f"cstat-{count}\\file-{index:05d}" for index in range(count)]
        connection = _connect(ctx)
        pid = ctx.endpoint.pid
        try:
            connection.stat(names[0])  # the first open of the directory pays for lookups both servers cache
            client_before_s = time.process_time()
            with procstat.ServerUsage(pid) as usage:
                started = time.perf_counter()
                for name in names:
                    connection.stat(name)
                elapsed_s = time.perf_counter() - started
            client_cpu_s = time.process_time() - client_before_s
            connection.logoff()
        except (OSError, RuntimeError) as e:
            connection.close()
            raise WorkloadError(f"stat failed: {e}") from e
        return Measurement(
            count / elapsed_s,
            count / 1000,
            usage.cpu_s,
            usage.peak_bytes,
            {"elapsed_s": elapsed_s, "client_cpu_us_per_file": client_cpu_s / count * 1e6},
        )


class ParallelRead(Workload):
    name = "parallel_read"
    title = "parallel clients, each reading its own file"
    unit = "MB/s"
    work_unit = "GiB"

    def prepare(self, share_dir: Path, sizes: Sizes, fixtures: Fixtures) -> None:
        for index in range(sizes.parallel_clients):
            copy_prefix(fixtures.source_file, share_dir / f"parallel-{index}.bin", sizes.parallel_bytes)

    def run(self, ctx: RunContext) -> Measurement:
        clients = ctx.sizes.parallel_clients
        total = clients * ctx.sizes.parallel_bytes
        warm_page_cache([ctx.endpoint.share_dir / f"parallel-{index}.bin" for index in range(clients)])
        scripts: list[tuple[list[str], list[str]]] = [
            ([], [f"get parallel-{index}.bin /dev/null"]) for index in range(clients)
        ]
        result = run_sessions(ctx, self.name, scripts)
        return Measurement(
            total / result.elapsed_s / MB,
            total / GIB,
            result.cpu_s,
            result.peak_rss_bytes,
            result.timing(),
        )


def _connect(ctx: RunContext) -> SmbConnection:
    connection = SmbConnection(
        ctx.endpoint.host,
        ctx.endpoint.port,
        ctx.endpoint.username,
        ctx.endpoint.password,
        signing_required=ctx.signing_required,
        timeout_s=ctx.timeout_s,
    )
    try:
        connection.connect(ctx.endpoint.share)
    except (OSError, RuntimeError) as e:
        connection.close()
        raise WorkloadError(f"connect failed: {e}") from e
    return connection


class ConnectLatency(Workload):
    name = "connect"
    title = "negotiate + session setup + tree connect + logoff (Python raw-socket client)"
    unit = "ms"
    higher_is_better = False

    def run(self, ctx: RunContext) -> Measurement:
        count = ctx.sizes.connects
        pid = ctx.endpoint.pid
        times_s: list[float] = []
        client_before_s = time.process_time()
        with procstat.ServerUsage(pid) as usage:
            for _ in range(count):
                started = time.perf_counter()
                connection = _connect(ctx)
                try:
                    connection.logoff()
                except (OSError, RuntimeError) as e:
                    raise WorkloadError(f"logoff failed: {e}") from e
                times_s.append(time.perf_counter() - started)
            client_cpu_s = time.process_time() - client_before_s
            # Let the server finish tearing the last connection down (Samba: its child exits and is reaped).
            time.sleep(0.3)
        return Measurement(
            statistics.median(times_s) * 1000,
            count / 1000,
            usage.cpu_s,
            usage.peak_bytes,
            {
                "mean_ms": statistics.fmean(times_s) * 1000,
                "min_ms": min(times_s) * 1000,
                "client_cpu_ms_per_connect": client_cpu_s / count * 1000,
            },
        )


class IdleConnections(Workload):
    name = "idle_conns"
    title = "server memory (PSS) holding idle authenticated connections"
    unit = "MiB"
    higher_is_better = False

    def run(self, ctx: RunContext) -> Measurement:
        count = ctx.sizes.idle_connections
        pid = ctx.endpoint.pid
        pss_before = procstat.tree_pss_bytes(pid)
        rss_before = procstat.tree_rss_bytes(pid)
        connections: list[SmbConnection] = []
        try:
            with procstat.ServerUsage(pid) as usage:
                started = time.perf_counter()
                for _ in range(count):
                    connections.append(_connect(ctx))
                open_s = time.perf_counter() - started
                usage.stop()
                # Let allocations settle; a server may finish per-connection work after the last reply.
                time.sleep(1.0)
                pss = rss = 0
                for _ in range(3):
                    pids = procstat.tree_pids(pid)
                    pss = max(pss, procstat.pss_bytes(pids))
                    rss = max(rss, procstat.rss_bytes(pids))
                    time.sleep(0.3)
        finally:
            for connection in connections:
                try:
                    connection.logoff()
                except (OSError, RuntimeError):
                    connection.close()
        return Measurement(
            pss / MIB,
            count / 1000,
            usage.cpu_s,
            usage.peak_bytes,
            {
                "connections": count,
                "rss_MiB": rss / MIB,
                "pss_before_MiB": pss_before / MIB,
                "rss_before_MiB": rss_before / MIB,
                "pss_per_connection_KiB": (pss - pss_before) / count / 1024,
                "open_all_s": open_s,
            },
        )


class ServerSideCopy(Workload):
    """A copy of a file into a new file of the same share that never leaves the server: smbclient's scopy
    sends FSCTL_SRV_REQUEST_RESUME_KEY and FSCTL_SRV_COPYCHUNK_WRITE (16 MiB per request), what cifs.ko does
    for copy_file_range(2) and Windows Explorer for a copy within a share."""

    name = "server_copy"
    title = "server-side copy into a new file of the share (scopy: COPYCHUNK)"
    unit = "MB/s"
    work_unit = "GiB"
    source_name = "copy-source.bin"

    def prepare(self, share_dir: Path, sizes: Sizes, fixtures: Fixtures) -> None:
        copy_prefix(fixtures.source_file, share_dir / self.source_name, sizes.write_bytes)

    def commands(self, ctx: RunContext, remote: str) -> list[str]:
        return [f"scopy {self.source_name} {remote}"]

    def run(self, ctx: RunContext) -> Measurement:
        size = ctx.sizes.write_bytes
        remote = f"{self.name}-{ctx.run_id}.bin"
        copied = ctx.endpoint.share_dir / remote
        warm_page_cache([ctx.endpoint.share_dir / self.source_name])
        prime_page_allocator(ctx.workdir, size)
        try:
            result = run_sessions(ctx, self.name, [([], self.commands(ctx, remote))])
            if not copied.exists() or copied.stat().st_size != size:
                raise WorkloadError(f"{remote} does not have {size} bytes after the copy")
        finally:
            copied.unlink(missing_ok=True)
            self.cleanup(ctx, remote)
        return Measurement(size / result.elapsed_s / MB, size / GIB, result.cpu_s, result.peak_rss_bytes,
                           result.timing())

    def cleanup(self, ctx: RunContext, remote: str) -> None:
        """Nothing is left on the client side."""


class ClientSideCopy(ServerSideCopy):
    """The same copy done by the client, as a client without server-side copy does it: the file is read into
    the client (a get to tmpfs) and written back as the new file (a put), both in the timed block."""

    name = "client_copy"
    title = "the same copy by the client: get to tmpfs, then put (READ + WRITE)"

    def _local(self, ctx: RunContext, remote: str) -> Path:
        return ctx.fixtures.root / remote

    def commands(self, ctx: RunContext, remote: str) -> list[str]:
        local = self._local(ctx, remote)
        return [f"get {self.source_name} {local}", f"put {local} {remote}"]

    def cleanup(self, ctx: RunContext, remote: str) -> None:
        self._local(ctx, remote).unlink(missing_ok=True)


class _LeasingConnection(SmbConnection):
    """benchmarks.rawsmb's connection plus what a caching client needs: CREATE with a v2 lease context, READ,
    CLOSE, a CREATE+READ+CLOSE compound, and a non-blocking look for an unsolicited break. Every request is
    signed (always allowed once the session has a key, so both servers see the same client)."""

    _CREATE = struct.Struct("<HBBIQQIIIIIHHII")
    _LEASE_CONTEXT = struct.Struct("<IHHHHI4s4x16sIIQ16sHH")  # header, "RqLs", SMB2_CREATE_REQUEST_LEASE_V2
    _READ = struct.Struct("<HBBIQ16sIIIHHB")
    _CLOSE = struct.Struct("<HHI16s")
    _CHAIN = b"\xff" * 16
    _RELATED = 0x00000004

    def _element(self, command: int, body: bytes) -> bytearray:
        # rawsmb's header asks for one credit; a request of up to 64 KiB is charged one.
        return bytearray(self._header(command, credit_request=8) + body)

    def _create(self, path: str, lease_key: bytes | None) -> bytearray:
        name = path.encode("utf-16-le")
        contexts = b""
        if lease_key is not None:
            contexts = self._LEASE_CONTEXT.pack(0, 16, 4, 0, 24, 52, b"RqLs", lease_key, 3, 0, 0, bytes(16), 0, 0)
        padded = name + bytes(-len(name) % 8) if contexts else (name or b"\0")
        body = self._CREATE.pack(57, 0, 0xFF if contexts else 0, 2, 0, 0, 0x00120089, 0, 7, 1, 0x40,
                                 64 + self._CREATE.size, len(name), 64 + self._CREATE.size + len(padded)
                                 if contexts else 0, len(contexts)) + padded + contexts
        return self._element(5, body)

    def _read(self, file_id: bytes, length: int) -> bytearray:
        return self._element(8, self._READ.pack(49, 0x50, 0, length, 0, file_id, 0, 0, 0, 0, 0, 0))

    def _close(self, file_id: bytes) -> bytearray:
        return self._element(6, self._CLOSE.pack(24, 0, 0, file_id))

    def _exchange(self, *elements: bytearray) -> list[tuple[int, int, bytes]]:
        """Send the elements (a related compound when several), return (command, status, body) of each."""
        for index, element in enumerate(elements):
            if index + 1 < len(elements):
                element += bytes(-len(element) % 8)
                struct.pack_into("<I", element, 20, len(element))
            if index:
                struct.pack_into("<I", element, 16, struct.unpack_from("<I", element, 16)[0] | self._RELATED)
            self._sign(element)
        self._send(b"".join(elements))
        replies = []
        while len(replies) < len(elements):
            _, message = self._recv()
            position = 0
            while True:
                command, status, next_command = (struct.unpack_from("<H", message, position + 12)[0],
                                                 struct.unpack_from("<I", message, position + 8)[0],
                                                 struct.unpack_from("<I", message, position + 20)[0])
                if struct.unpack_from("<Q", message, position + 24)[0] == 0xFFFFFFFFFFFFFFFF:
                    raise WorkloadError("an unexpected break arrived during a request")
                end = position + next_command if next_command else len(message)
                replies.append((command, status, message[position + 64:end]))
                if not next_command:
                    break
                position += next_command
        for command, status, _ in replies:
            if status != 0:
                raise WorkloadError(f"command {command} failed with status 0x{status:08x}")
        return replies

    def open_leased(self, path: str, lease_key: bytes) -> tuple[bytes, int]:
        """Open for reading asking for an RH lease: (FileId, granted lease state; 0 without a lease)."""
        (_, _, body), = self._exchange(self._create(path, lease_key))
        file_id = body[64:80]
        state = 0
        if body[2] == 0xFF:
            offset, length = struct.unpack_from("<II", body, 80)
            context = body[offset - 64:offset - 64 + length]
            data_offset = struct.unpack_from("<H", context, 10)[0]
            state = struct.unpack_from("<I", context, data_offset + 16)[0]
        return file_id, state

    def read(self, file_id: bytes, length: int) -> bytes:
        (_, _, body), = self._exchange(self._read(file_id, length))
        offset, count = body[2], struct.unpack_from("<I", body, 4)[0]
        return body[offset - 64:offset - 64 + count]

    def close_file(self, file_id: bytes) -> None:
        self._exchange(self._close(file_id))

    def open_read_close(self, path: str, length: int) -> bytes:
        """What a client without a lease does for every open, read and close: one compound round trip."""
        _, (_, _, body), _ = self._exchange(self._create(path, None), self._read(self._CHAIN, length),
                                            self._close(self._CHAIN))
        offset, count = body[2], struct.unpack_from("<I", body, 4)[0]
        return body[offset - 64:offset - 64 + count]

    def break_pending(self) -> bool:
        """Whether anything arrived unasked (a lease break): a caching client looks before it trusts its cache."""
        assert self.sock is not None
        readable, _, _ = select.select([self.sock], [], [], 0)  # (recv would first wait out the timeout)
        return bool(readable)


class LeaseReread(Workload):
    """The client-side gain of a lease: a client re-opening and re-reading a 64 KiB file as an application
    does (open, read, close, 20,000 times). With an RH lease it keeps the handle (H) and the data (R) and
    answers every later open and read itself, looking only for a break before each; where no lease is
    granted it must do a CREATE+READ+CLOSE round trip each time (measured too, as `uncached_per_s`). The
    value is re-reads per second with what the server granted; `gain` is that over the uncached rate."""

    name = "lease_reread"
    title = "re-open and re-read a 64 KiB file, client caching under an RH lease (raw client)"
    unit = "re-reads/s"
    _SIZE = 64 * 1024

    def prepare(self, share_dir: Path, sizes: Sizes, fixtures: Fixtures) -> None:
        copy_prefix(fixtures.source_file, share_dir / "lease-reread.bin", self._SIZE)

    def run(self, ctx: RunContext) -> Measurement:
        count = 10 * ctx.sizes.stat_files
        expected = (ctx.endpoint.share_dir / "lease-reread.bin").read_bytes()
        connection = _LeasingConnection(ctx.endpoint.host, ctx.endpoint.port, ctx.endpoint.username,
                                        ctx.endpoint.password, signing_required=ctx.signing_required,
                                        timeout_s=ctx.timeout_s)
        pid = ctx.endpoint.pid
        try:
            connection.connect(ctx.endpoint.share)
            started = time.perf_counter()
            for _ in range(count // 20):
                if connection.open_read_close("lease-reread.bin", self._SIZE) != expected:
                    raise WorkloadError("uncached read returned other data")
            uncached_per_s = count // 20 / (time.perf_counter() - started)
            # Not timed: the share's first lease (smbsrv then starts its change feed, once per server).
            warm_id, _ = connection.open_leased("lease-reread.bin", os.urandom(16))
            connection.close_file(warm_id)
            round_trips = 0
            with procstat.ServerUsage(pid) as usage:
                started = time.perf_counter()
                file_id, state = connection.open_leased("lease-reread.bin", os.urandom(16))
                cache = connection.read(file_id, self._SIZE)
                round_trips += 2
                cached = state & 0x3 == 0x3  # R and H: the data and the handle may both be kept
                if not cached:
                    connection.close_file(file_id)
                    round_trips += 1
                for _ in range(count - 1):
                    if cached and not connection.break_pending():
                        data = cache
                    else:
                        data = connection.open_read_close("lease-reread.bin", self._SIZE)
                        round_trips += 1
                    if data != expected:
                        raise WorkloadError("re-read returned other data")
                elapsed_s = time.perf_counter() - started
            if cached:
                connection.close_file(file_id)
            connection.logoff()
        except (OSError, RuntimeError) as e:
            connection.close()
            raise WorkloadError(f"lease re-read failed: {e}") from e
        rate = count / elapsed_s
        return Measurement(rate, count / 1000, usage.cpu_s, usage.peak_bytes, {
            "elapsed_s": elapsed_s, "lease_state": state, "server_round_trips": round_trips,
            "uncached_per_s": uncached_per_s, "gain": rate / uncached_per_s})


WORKLOADS: list[Workload] = [
    SequentialWrite(),
    SequentialRead(),
    CreateFiles(),
    ListDirectory(),
    StatFiles(),
    CompoundStat(),
    ParallelRead(),
    ConnectLatency(),
    IdleConnections(),
    ServerSideCopy(),
    ClientSideCopy(),
    LeaseReread(),
]
