"""`smbsrv status` shows what each open may cache and the breaks waiting for an acknowledgment (issues 13, 17).

A raw client holds an RWH lease on a file, an RH lease on a directory and a BATCH oplock on another file; a
second client's opens break the file lease and the oplock. While the holder has not acknowledged, status lists
both breaks with their states and the seconds left; after the acknowledgments, none.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from tests import builders as b
from tests.conftest import PASSWORD, USER
from tests.integration.operations_helpers import ops_server
from tests.integration.test_directory_leases import SMB2_GLOBAL_CAP_DIRECTORY_LEASING, lease_v2, open_dir
from tests.integration.test_oplocks import (
    LEVEL_BATCH,
    LEVEL_II,
    LEVEL_LEASE,
    H,
    R,
    W,
    create_req,
    lease_ack,
    lease_response,
    next_break,
    oplock_ack,
)

DIALECTS_3 = (0x0311,)


def test_status_shows_leases_oplocks_and_breaks_in_flight(tmp_path: Path) -> None:
    with ops_server(tmp_path) as ops:
        (tmp_path / "share" / "dir").mkdir()
        server = ops.server
        file_key, dir_key = uuid.uuid4().bytes, uuid.uuid4().bytes
        with b.connect(server.host, server.port, USER, PASSWORD, dialects=DIALECTS_3,
                       capabilities=SMB2_GLOBAL_CAP_DIRECTORY_LEASING) as holder, \
                b.connect(server.host, server.port, USER, PASSWORD, dialects=DIALECTS_3) as other:
            status, body, _ = holder.request(b.SMB2_CREATE, create_req(holder, "leased.txt", LEVEL_LEASE,
                                                                       lease_v2(file_key, R | W | H)).body)
            assert status == b.STATUS_SUCCESS and lease_response(body)[0] == R | W | H
            leased = b.create_file_id(body)
            status, body, _ = holder.request(b.SMB2_CREATE, create_req(holder, "batch.txt", LEVEL_BATCH).body)
            assert status == b.STATUS_SUCCESS and body[2] == LEVEL_BATCH
            batch = b.create_file_id(body)
            granted, body = open_dir(holder, "dir", dir_key)
            assert granted == R | H
            directory = b.create_file_id(body)

            before = ops.status()
            by_id = {entry["file_id"]: entry for entry in before["open_files"]}  # type: ignore[union-attr]
            assert by_id[leased[1]]["oplock"] == "lease"
            assert {k: v for k, v in by_id[leased[1]]["lease"].items() if k != "epoch"} == {
                "key": file_key.hex(), "state": "RWH", "version": 2, "directory": False, "parent_key": None,
                "breaking_to": None, "break_deadline_s": None}
            assert by_id[directory[1]]["lease"]["state"] == "RH" and by_id[directory[1]]["lease"]["directory"]
            assert (by_id[batch[1]]["oplock"], by_id[batch[1]]["lease"]) == ("batch", None)
            assert before["breaks"] == []

            # Two conflicting opens: both wait (STATUS_PENDING) until the holder acknowledges.
            waiting = other.send(create_req(other, "leased.txt", LEVEL_LEASE, lease_v2(uuid.uuid4().bytes, R)),
                                 create_req(other, "batch.txt", LEVEL_BATCH))
            breaks = [next_break(holder), next_break(holder)]
            assert sorted(len(brk.body) for brk in breaks) == [24, 44]
            during = ops.status()
            in_flight = sorted(during["breaks"], key=lambda brk: brk["kind"])  # type: ignore[arg-type]
            assert [{k: v for k, v in brk.items() if k != "deadline_s"} for brk in in_flight] == [
                {"kind": "lease", "key": file_key.hex(), "share": "share", "path": "leased.txt", "from": "RWH",
                 "to": "RH"},
                {"kind": "oplock", "file_id": batch[1], "share": "share", "path": "batch.txt", "from": "batch",
                 "to": "level2"}]
            assert all(0 < brk["deadline_s"] <= 35 for brk in in_flight)
            by_id = {entry["file_id"]: entry for entry in during["open_files"]}  # type: ignore[union-attr]
            assert by_id[leased[1]]["lease"]["breaking_to"] == "RH"
            assert by_id[batch[1]]["breaking_to"] == "level2"
            text = ops.smbsrv("status", "-c", str(ops.config), check=True).stdout
            rows = text.splitlines()
            assert any(f" {leased[1]} " in row and "lease RWH->RH" in row for row in rows), text
            assert any(f" {directory[1]} " in row and "dirlease RH" in row for row in rows), text
            assert any(row.startswith("lease ") and file_key.hex() in row and "share/leased.txt" in row
                       for row in rows), text
            assert any(row.startswith("oplock ") and "batch" in row and "level2" in row for row in rows), text

            assert lease_ack(holder, file_key, R | H).status == b.STATUS_SUCCESS
            assert oplock_ack(holder, batch, LEVEL_II).status == b.STATUS_SUCCESS
            for message_id in waiting:
                assert other.receive(message_id).status == b.STATUS_SUCCESS
            after = ops.status()
            assert after["breaks"] == []
            by_id = {entry["file_id"]: entry for entry in after["open_files"]}  # type: ignore[union-attr]
            assert by_id[leased[1]]["lease"]["state"] == "RH" and by_id[batch[1]]["oplock"] == "level2"
        log = server.log_text()
        # The DEBUG log shows the grants, the breaks sent and their acknowledgments.
        assert f"lease {file_key.hex()} state 7" in log and f"directory lease {dir_key.hex()} state 3" in log
        assert f"lease break {file_key.hex()} from 7 to 3" in log
        assert f"lease break acknowledged: {file_key.hex()} to RH" in log
        assert f"oplock break acknowledged: file id {batch[1]} to level 1" in log
