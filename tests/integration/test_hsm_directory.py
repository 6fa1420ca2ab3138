"""Placeholders of a `directory` provider (a cold-tier directory) seen through smbclient and raw requests.

Files are released with the real `smbsrv hsm release` CLI next to the running daemon; provider requests are
counted from the daemon's log (tests/integration/hsm_helpers.py).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import assert_no_server_bugs
from tests.integration.hsm_helpers import (
    FILE_ATTRIBUTE_OFFLINE,
    FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS,
    FILE_OPEN_NO_RECALL,
    FILE_SUPPORTS_REMOTE_STORAGE,
    MARK_XATTR,
    STATUS_CLOUD_FILE_PROVIDER_NOT_RUNNING,
    STATUS_CLOUD_FILE_UNSUCCESSFUL,
    has_no_data,
    hsm_cli,
    hsm_server,
    is_placeholder,
    make_file,
    requests,
    write_config,
)

FILE_BASIC_INFORMATION = 4
FILE_STANDARD_INFORMATION = 5
FILE_END_OF_FILE_INFORMATION = 20
FILE_FULL_EA_INFORMATION = 15
FILE_FS_ATTRIBUTE_INFORMATION = 5
SMB2_0_INFO_FILESYSTEM = 2
STATUS_NO_EAS_ON_FILE = 0xC0000052


@pytest.fixture
def cold(tmp_path: Path) -> Path:
    path = tmp_path / "cold"
    path.mkdir()
    return path


@pytest.fixture
def share(tmp_path: Path) -> Path:
    path = tmp_path / "share"
    path.mkdir()
    return path


def _keys(cold: Path, **extra: object) -> dict[str, object]:
    return {"hsm_provider": "directory", "hsm_directory": str(cold), **extra}


def _attributes(client: b.Client, file_id: tuple[int, int]) -> int:
    response = client.query_info(file_id, b.SMB2_0_INFO_FILE, FILE_BASIC_INFORMATION)
    assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
    return struct.unpack_from("<I", b.output_buffer(response), 32)[0]


def test_listing_and_allinfo_show_the_real_size_without_fetching(tmp_path: Path, share: Path, cold: Path) -> None:
    data = make_file(share / "big.bin", 3 * 1024 * 1024 + 17)
    with hsm_server(tmp_path, share, **_keys(cold)) as (server, config):
        out = hsm_cli(config, "release", str(share / "big.bin")).stdout
        assert "released 3145745 bytes" in out
        st = os.stat(share / "big.bin")
        assert st.st_size == len(data) and has_no_data(share / "big.bin") and is_placeholder(share / "big.bin")
        listing = server.smbclient("ls big.bin; allinfo big.bin").stdout
        # smbclient shows OFFLINE as "o" in a listing; allinfo gives the whole attribute word.
        assert re.search(r"big\.bin\s+Ao\s+3145745 ", listing), listing
        assert "attributes: OA (401020)" in listing and "stream: [::$DATA], 3145745 bytes" in listing, listing
        with b.connect(server.host, server.port, server.user, server.password) as client:
            file_id = client.open("big.bin", desired_access=b.FILE_READ_ATTRIBUTES)
            attributes = _attributes(client, file_id)
            assert attributes & FILE_ATTRIBUTE_OFFLINE and attributes & FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS
            assert not attributes & 0x400, "no reparse point is exposed (docs/hsm.md)"
            fs = client.query_info(file_id, SMB2_0_INFO_FILESYSTEM, FILE_FS_ATTRIBUTE_INFORMATION)
            assert struct.unpack_from("<I", b.output_buffer(fs))[0] & FILE_SUPPORTS_REMOTE_STORAGE
            client.close_file(file_id)
        # Metadata only: nothing was asked of the provider, nothing changed on disk.
        assert requests(server) == []
        assert is_placeholder(share / "big.bin") and has_no_data(share / "big.bin")
        assert_no_server_bugs(server)


def test_get_hydrates_byte_for_byte_once(tmp_path: Path, share: Path, cold: Path) -> None:
    data = make_file(share / "f.bin", 5 * 1024 * 1024 + 3)
    mtime = os.stat(share / "f.bin").st_mtime_ns
    with hsm_server(tmp_path, share, **_keys(cold)) as (server, config):
        hsm_cli(config, "release", str(share / "f.bin"))
        assert os.stat(share / "f.bin").st_mtime_ns == mtime
        out = tmp_path / "out.bin"
        server.smbclient(f"get f.bin {out}")
        assert out.read_bytes() == data
        assert [r[1] for r in requests(server)] == ["get"]
        # The file is whole and local again, the mark is gone, the mtime is the one it always had.
        assert not is_placeholder(share / "f.bin")
        assert (share / "f.bin").read_bytes() == data
        assert os.stat(share / "f.bin").st_mtime_ns == mtime
        server.smbclient(f"get f.bin {out}")
        assert len(requests(server)) == 1
        listing = server.smbclient("allinfo f.bin").stdout
        assert "attributes: A (20)" in listing, listing
        assert_no_server_bugs(server)


def test_two_clients_reading_one_placeholder_cause_one_fetch(tmp_path: Path, share: Path, cold: Path) -> None:
    size = 96 * 1024 * 1024
    data = make_file(share / "shared.bin", size)
    with hsm_server(tmp_path, share, **_keys(cold, hsm_range_first_bytes=1 << 30)) as (server, config):
        hsm_cli(config, "release", str(share / "shared.bin"))
        clients = [b.connect(server.host, server.port, server.user, server.password) for _ in range(2)]
        try:
            ids = [c.open("shared.bin") for c in clients]
            assert requests(server) == []  # CREATE does not hydrate
            results: dict[int, bytes] = {}
            barrier = threading.Barrier(2)

            def read(index: int) -> None:
                barrier.wait()
                response = clients[index].read(ids[index], size - 65536, 65536)
                results[index] = b.read_data(response) if response.status == b.STATUS_SUCCESS else b""

            threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert results == {0: data[-65536:], 1: data[-65536:]}
            assert [r[1] for r in requests(server)] == ["get"]
            for client, file_id in zip(clients, ids):
                client.close_file(file_id)
        finally:
            for client in clients:
                client.close()
        assert (share / "shared.bin").read_bytes() == data
        assert_no_server_bugs(server)


def test_file_open_no_recall_opens_and_reads_without_hydrating(tmp_path: Path, share: Path, cold: Path) -> None:
    data = make_file(share / "nr.bin", 2 * 1024 * 1024)
    with hsm_server(tmp_path, share, **_keys(cold)) as (server, config):
        hsm_cli(config, "release", str(share / "nr.bin"))
        with b.connect(server.host, server.port, server.user, server.password) as client:
            file_id = client.open("nr.bin", options=FILE_OPEN_NO_RECALL)
            assert _attributes(client, file_id) & FILE_ATTRIBUTE_OFFLINE
            standard = b.output_buffer(client.query_info(file_id, b.SMB2_0_INFO_FILE, FILE_STANDARD_INFORMATION))
            assert struct.unpack_from("<q", standard, 8)[0] == len(data)
            assert requests(server) == []
            # A READ through it is served from the provider by range; the file is not recalled.
            response = client.read(file_id, 4096, 8192)
            assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
            assert b.read_data(response) == data[4096:12288]
            client.close_file(file_id)
        assert [r[1:] for r in requests(server)] == [("get-range", requests(server)[0][2], 4096, 8192)]
        assert is_placeholder(share / "nr.bin") and has_no_data(share / "nr.bin")
        assert_no_server_bugs(server)


def test_large_placeholder_first_read_is_answered_by_range(tmp_path: Path, share: Path, cold: Path) -> None:
    data = make_file(share / "large.bin", 24 * 1024 * 1024)
    with hsm_server(tmp_path, share, **_keys(cold, hsm_range_first_bytes=1024 * 1024)) as (server, config):
        hsm_cli(config, "release", str(share / "large.bin"))
        with b.connect(server.host, server.port, server.user, server.password) as client:
            file_id = client.open("large.bin")
            response = client.read(file_id, 10 * 1024 * 1024, 65536)
            assert b.read_data(response) == data[10 * 1024 * 1024:10 * 1024 * 1024 + 65536]
            client.close_file(file_id)
        ops = [r[1] for r in requests(server)]
        assert ops[0] in ("get-range", "get") and "get" in ops and ops.count("get") == 1
        # The background hydration completes on its own.
        for _ in range(100):
            if not is_placeholder(share / "large.bin"):
                break
            threading.Event().wait(0.1)
        assert (share / "large.bin").read_bytes() == data
        assert_no_server_bugs(server)


def test_write_and_truncate_hydrate_first(tmp_path: Path, share: Path, cold: Path) -> None:
    data = make_file(share / "w.bin", 300000)
    make_file(share / "t.bin", 300000, seed=2)
    make_file(share / "z.bin", 300000, seed=3)
    with hsm_server(tmp_path, share, **_keys(cold)) as (server, config):
        hsm_cli(config, "release", str(share / "w.bin"), str(share / "t.bin"), str(share / "z.bin"))
        with b.connect(server.host, server.port, server.user, server.password) as client:
            file_id = client.open("w.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
            assert client.write(file_id, 100, b"XYZ").status == b.STATUS_SUCCESS
            client.close_file(file_id)
            file_id = client.open("t.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
            assert client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_END_OF_FILE_INFORMATION,
                                   struct.pack("<q", 1000)).status == b.STATUS_SUCCESS
            client.close_file(file_id)
            requests_before = len(requests(server))
            file_id = client.open("z.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
            assert client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_END_OF_FILE_INFORMATION,
                                   struct.pack("<q", 0)).status == b.STATUS_SUCCESS
            client.close_file(file_id)
        assert (share / "w.bin").read_bytes() == data[:100] + b"XYZ" + data[103:]
        assert (share / "t.bin").read_bytes() == make_file(tmp_path / "t.ref", 300000, seed=2)[:1000]
        # Truncation to zero fetches nothing: the placeholder simply becomes an empty local file.
        assert len(requests(server)) == requests_before == 2
        assert (share / "z.bin").read_bytes() == b"" and not is_placeholder(share / "z.bin")
        assert_no_server_bugs(server)


def test_provider_down_answers_not_running_and_changes_nothing(tmp_path: Path, share: Path, cold: Path) -> None:
    make_file(share / "d.bin", 100000)
    with hsm_server(tmp_path, share, **_keys(cold)) as (server, config):
        hsm_cli(config, "release", str(share / "d.bin"))
        before = os.stat(share / "d.bin")
        mark = os.getxattr(share / "d.bin", MARK_XATTR)
        cold.rename(tmp_path / "cold-unmounted")  # the cold tier went away
        try:
            with b.connect(server.host, server.port, server.user, server.password) as client:
                file_id = client.open("d.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
                response = client.read(file_id, 0, 4096)
                assert response.status == STATUS_CLOUD_FILE_PROVIDER_NOT_RUNNING, b.status_name(response.status)
                response = client.write(file_id, 0, b"new")
                assert response.status == STATUS_CLOUD_FILE_PROVIDER_NOT_RUNNING, b.status_name(response.status)
                # Metadata keeps working.
                assert _attributes(client, file_id) & FILE_ATTRIBUTE_OFFLINE
                client.close_file(file_id)
            listing = server.smbclient("ls d.bin").stdout
            assert "100000" in listing
            status = hsm_cli(config, "status").stdout
            assert "unavailable" in status and "d.bin: 100000 bytes" in status
        finally:
            (tmp_path / "cold-unmounted").rename(cold)
        after = os.stat(share / "d.bin")
        assert (after.st_size, after.st_blocks, after.st_mtime_ns) == (before.st_size, before.st_blocks, before.st_mtime_ns)
        assert has_no_data(share / "d.bin")
        assert os.getxattr(share / "d.bin", MARK_XATTR) == mark
        assert_no_server_bugs(server)


def test_missing_object_answers_unsuccessful(tmp_path: Path, share: Path, cold: Path) -> None:
    make_file(share / "m.bin", 5000)
    with hsm_server(tmp_path, share, **_keys(cold)) as (server, config):
        hsm_cli(config, "release", str(share / "m.bin"))
        for entry in cold.rglob("*"):
            if entry.is_file():
                entry.unlink()
        with b.connect(server.host, server.port, server.user, server.password) as client:
            file_id = client.open("m.bin")
            response = client.read(file_id, 0, 100)
            assert response.status == STATUS_CLOUD_FILE_UNSUCCESSFUL, b.status_name(response.status)
            client.close_file(file_id)
        assert is_placeholder(share / "m.bin") and has_no_data(share / "m.bin")
        assert_no_server_bugs(server)


def test_corrupt_object_is_refused_and_punched_out(tmp_path: Path, share: Path, cold: Path) -> None:
    make_file(share / "c.bin", 50000)
    with hsm_server(tmp_path, share, **_keys(cold)) as (server, config):
        hsm_cli(config, "release", str(share / "c.bin"))
        stored = next(entry for entry in cold.rglob("*") if entry.is_file())
        damaged = bytearray(stored.read_bytes())
        damaged[1000] ^= 0xFF
        stored.write_bytes(bytes(damaged))
        with b.connect(server.host, server.port, server.user, server.password) as client:
            file_id = client.open("c.bin")
            response = client.read(file_id, 0, 100)
            assert response.status == STATUS_CLOUD_FILE_UNSUCCESSFUL, b.status_name(response.status)
            client.close_file(file_id)
        assert is_placeholder(share / "c.bin") and has_no_data(share / "c.bin")
        assert_no_server_bugs(server)


def test_clients_cannot_create_or_see_marks(tmp_path: Path, share: Path, cold: Path) -> None:
    make_file(share / "p.bin", 4096)
    make_file(share / "plain.bin", 4096)
    with hsm_server(tmp_path, share, **_keys(cold)) as (server, config):
        hsm_cli(config, "release", str(share / "p.bin"))
        mark = os.getxattr(share / "p.bin", MARK_XATTR)
        with b.connect(server.host, server.port, server.user, server.password) as client:
            # The mark is not among a placeholder's EAs.
            file_id = client.open("p.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
            response = client.query_info(file_id, b.SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION)
            assert response.status == STATUS_NO_EAS_ON_FILE, b.status_name(response.status)
            client.close_file(file_id)
            # An EA named like the mark is an EA like any other: no file becomes (or stops being) a placeholder.
            for name in ("plain.bin", "p.bin"):
                file_id = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
                ea = struct.pack("<IBBH", 0, 0, len(MARK_XATTR), len(mark)) + MARK_XATTR.encode() + b"\0" + mark
                assert client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION,
                                       ea).status == b.STATUS_SUCCESS
                client.close_file(file_id)
            # Nor does the attribute: RECALL_ON_DATA_ACCESS and OFFLINE set by a client are only attributes.
            file_id = client.open("plain.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
            basic = struct.pack("<qqqqI4x", 0, 0, 0, 0, FILE_ATTRIBUTE_OFFLINE | FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS)
            client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_BASIC_INFORMATION, basic)
            assert b.read_data(client.read(file_id, 0, 16)) == (share / "plain.bin").read_bytes()[:16]
            client.close_file(file_id)
        assert not is_placeholder(share / "plain.bin")
        assert os.getxattr(share / "p.bin", MARK_XATTR) == mark
        assert requests(server) == []
        assert_no_server_bugs(server)


def test_release_refuses_an_open_file_and_cli_status(tmp_path: Path, share: Path, cold: Path) -> None:
    make_file(share / "busy.bin", 10000)
    with hsm_server(tmp_path, share, **_keys(cold)) as (server, config):
        with b.connect(server.host, server.port, server.user, server.password) as client:
            file_id = client.open("busy.bin")
            result = hsm_cli(config, "release", str(share / "busy.bin"), check=False)
            assert result.returncode == 1 and "open elsewhere" in result.stdout, result.stdout
            assert not is_placeholder(share / "busy.bin")
            client.close_file(file_id)
        hsm_cli(config, "release", str(share / "busy.bin"))
        out = hsm_cli(config, "status").stdout
        assert "share share: provider directory (share): ok" in out and "busy.bin: 10000 bytes" in out
        result = hsm_cli(config, "release", str(tmp_path / "elsewhere"), check=False)
        assert result.returncode == 1 and "not inside a share with hsm_provider" in result.stderr
        assert_no_server_bugs(server)


def test_release_policy_by_age_and_size(tmp_path: Path, share: Path, cold: Path) -> None:
    make_file(share / "old-big.bin", 200000)
    make_file(share / "old-small.bin", 100)
    make_file(share / "new-big.bin", 200000)
    week_ago = os.stat(share / "old-big.bin").st_mtime - 8 * 86400
    for name in ("old-big.bin", "old-small.bin"):
        os.utime(share / name, (week_ago, week_ago))
    with hsm_server(tmp_path, share, **_keys(cold, hsm_release_after_days=7, hsm_release_min_bytes=1000)) as (
            server, config):
        hsm_cli(config, "release", "--policy")
        assert [is_placeholder(share / n) for n in ("old-big.bin", "old-small.bin", "new-big.bin")] == [
            True, False, False]
        assert os.stat(share / "old-big.bin").st_mtime == week_ago
        assert_no_server_bugs(server)


def test_config_keys_are_validated(tmp_path: Path, share: Path) -> None:
    for keys, message in (({"hsm_provider": "tape"}, "hsm_provider: must be directory or s3"),
                          ({"hsm_provider": "directory"}, "hsm_directory: missing"),
                          ({"hsm_provider": "directory", "hsm_directory": str(share / "cold")},
                           "hsm_directory: must lie outside the share"),
                          ({"hsm_provider": "s3"}, "hsm_s3_bucket: missing"),
                          ({"hsm_fanotify": True}, "hsm_fanotify: needs hsm_provider"),
                          ({"hsm_provider": "directory", "hsm_directory": "/x", "hsm_release_min_bytes": -1},
                           "hsm_release_min_bytes: must be at least 0")):
        config = write_config(tmp_path, share, **keys)
        result = subprocess.run([sys.executable, "-m", "smbsrv", "check-config", str(config)], check=False,
                                capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
        assert result.returncode == 1 and message in result.stderr, result.stderr
    shutil.rmtree(tmp_path / "state", ignore_errors=True)


def test_copychunk_source_and_zero_data_hydrate_first(tmp_path: Path, share: Path, cold: Path) -> None:
    from tests.integration.test_copychunk import FSCTL_SRV_COPYCHUNK, copychunk, resume_key

    data = make_file(share / "src.bin", 300000)
    zero = make_file(share / "zero.bin", 300000, seed=4)
    with hsm_server(tmp_path, share, **_keys(cold)) as (server, config):
        hsm_cli(config, "release", str(share / "src.bin"), str(share / "zero.bin"))
        with b.connect(server.host, server.port, server.user, server.password) as client:
            source = client.open("src.bin")
            target = client.open("dst.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                 disposition=b.FILE_CREATE)
            status, written = copychunk(client, target, resume_key(client, source), [(1000, 0, 200000)],
                                        code=FSCTL_SRV_COPYCHUNK)
            assert status == b.STATUS_SUCCESS and written == (1, 0, 200000), (b.status_name(status), written)
            client.close_file(source)
            client.close_file(target)
            # FSCTL_SET_ZERO_DATA on a placeholder: the rest of the file must come back, the range be zeros.
            file_id = client.open("zero.bin", desired_access=b.GENERIC_READ | b.GENERIC_WRITE)
            response = client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, 0x000980C8,
                                                                 struct.pack("<qq", 4096, 8192), max_output=0))
            assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
            client.close_file(file_id)
        assert (share / "dst.bin").read_bytes() == data[1000:201000]
        assert not is_placeholder(share / "src.bin") and (share / "src.bin").read_bytes() == data
        assert (share / "zero.bin").read_bytes() == zero[:4096] + bytes(4096) + zero[8192:]
        assert [r[1] for r in requests(server)] == ["get", "get"]
        assert_no_server_bugs(server)
