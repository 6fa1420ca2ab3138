"""Server CPU of one request path without sockets: the numbers docs/performance.md gives as "sans-IO".

End-to-end runs (scripts/bench) move by 30% with what else the two cores do; the request path driven in a loop
through tests/fuzz/sans_io.py (a logged-on connection, messages signed with the session key as a client signs
them, no transport) is stable to a few percent, so an A/B of a change to the handlers is made here:

    python3 -m benchmarks.sans_io stat --files 3000 [--warm] [--profile]   # cifs.ko's stat compound
    python3 -m benchmarks.sans_io list --files 10000 [--cold] [--profile]  # smbclient's ls of a directory

`stat` sends what cifs.ko sends for a stat(2) it has no cached answer for: one related compound of CREATE
(FILE_READ_ATTRIBUTES, open existing, no contexts) + QUERY_INFO FileAllInformation + CLOSE per file; `--warm`
visits every file once first (rounds 2-3 of scripts/bench, stat storms). `list` lists a directory of empty files
with FileIdBothDirectoryInformation into 64 KiB responses, five times; `--cold` empties the DOS-attribute cache
before each listing (a first listing). Run from the repository root, as root or any user; prints microseconds of
process CPU per compound or per entry.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from collections.abc import Callable
from typing import Any

from smbsrv.fs import dos_attrs
from smbsrv.fscc.file_info import FileInformationClass
from tests import builders as b
from tests.fuzz.sans_io import Peer, SansIoServer, parse_buffers

_RELATED = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
_FILE_READ_ATTRIBUTES = 0x80
_FILE_LIST_DIRECTORY_AND_READ_ATTRIBUTES = 0x81
_SHARE_ALL = 7
_FILE_DIRECTORY_FILE = 1
_SMB2_RESTART_SCANS = 1
_LISTINGS = 5


def _send(peer: Peer, *requests: b.Req) -> list[Any]:
    message, _ = peer.builder.build(*requests, sign=True)
    return parse_buffers(peer.server.loop.run_until_complete(peer.connection.handle_message(message)))


def _make_files(peer: Peer, directory: str, count: int) -> None:
    path = peer.server.share_path / directory
    path.mkdir()
    for index in range(count):
        os.close(os.open(path / f"file-{index:05d}", os.O_CREAT | os.O_WRONLY, 0o644))


def _stat_compound(peer: Peer, name: str) -> None:
    responses = _send(
        peer,
        b.Req(b.SMB2_CREATE, b.create_body(name, desired_access=_FILE_READ_ATTRIBUTES, share_access=_SHARE_ALL)),
        b.Req(b.SMB2_QUERY_INFO, b.query_info_body(_RELATED, b.SMB2_0_INFO_FILE,
                                                   FileInformationClass.FileAllInformation, 4096), related=True),
        b.Req(b.SMB2_CLOSE, b.close_body(_RELATED), related=True))
    assert [response.status for response in responses] == [0, 0, 0], responses


def _listing(peer: Peer, directory: str) -> None:
    opened = _send(peer, b.Req(b.SMB2_CREATE, b.create_body(
        directory, desired_access=_FILE_LIST_DIRECTORY_AND_READ_ATTRIBUTES, share_access=_SHARE_ALL,
        options=_FILE_DIRECTORY_FILE)))[0]
    file_id = b.create_file_id(opened.body)
    flags = _SMB2_RESTART_SCANS
    while _send(peer, b.Req(b.SMB2_QUERY_DIRECTORY, b.query_directory_body(
            file_id, info_class=FileInformationClass.FileIdBothDirectoryInformation, flags=flags)))[0].status == 0:
        flags = 0
    _send(peer, b.Req(b.SMB2_CLOSE, b.close_body(file_id)))


def _timed(work: Callable[[], None], profile: bool) -> float:
    """Process CPU seconds of `work`; with `profile`, its cProfile summary is printed too."""
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    work()
    if profiler is not None:
        profiler.disable()
    elapsed = time.process_time() - started
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=("stat", "list"))
    parser.add_argument("--files", type=int, default=None, help="files (stat: 3000, list: 10000)")
    parser.add_argument("--warm", action="store_true", help="stat: visit every file once before timing")
    parser.add_argument("--cold", action="store_true", help="list: empty the DOS-attribute cache each time")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary of the timed part")
    args = parser.parse_args(argv)
    server = SansIoServer()
    peer = server.connect()
    peer.builder.signer = peer.connection.sessions[peer.session_id].signer
    try:
        if args.workload == "stat":
            count = args.files or 3000
            _make_files(peer, "stat", count)
            names = [f"stat\\file-{index:05d}" for index in range(count)]
            if args.warm:
                for name in names:
                    _stat_compound(peer, name)

            def stats() -> None:
                for name in names:
                    _stat_compound(peer, name)

            elapsed = _timed(stats, args.profile)
            print(f"{elapsed / count * 1e6:.1f} us of CPU per stat compound ({count} files)")
        else:
            count = args.files or 10000
            _make_files(peer, "list", count)
            _listing(peer, "list")  # the directory's own caches settle

            def listings() -> None:
                for _ in range(_LISTINGS):
                    if args.cold:
                        dos_attrs._cache.clear()  # what a first listing finds: nothing read yet
                    _listing(peer, "list")

            elapsed = _timed(listings, args.profile)
            print(f"{elapsed / _LISTINGS / count * 1e6:.2f} us of CPU per entry ({count} entries, "
                  f"{'cold' if args.cold else 'warm'})")
    finally:
        peer.close()
        server.close()


if __name__ == "__main__":
    main()
