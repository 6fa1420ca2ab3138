"""A concurrent soak over real sockets: many clients of two Unix accounts on one shared directory at once.

Several raw clients (tests/builders.py; they acknowledge oplock and lease breaks as they arrive) and smbprotocol
clients run seeded random operations against one directory of the share: opens with every disposition and
random share modes and access, byte-range locks (also blocking ones), leases and oplocks with their breaks,
writes of known patterns to ranges each client owns, renames, deletes, delete-on-close, listings, change
notify with and without CANCEL, and abrupt disconnects with requests outstanding (a durable handle left
behind, a pending CHANGE_NOTIFY and a blocked LOCK, WRITEs not yet answered). [MS-SMB2] 3.3.5 promises each of
them an answer or a closed connection; afterwards:

- the server logged no handler bug (conftest's markers) and no answer was a status outside what the operation
  may get (STATUS_INTERNAL_ERROR is never one of them);
- the daemon's open fds come back to what they were after a warm-up round once every client is gone (so the
  fds of opens, watches, locks and durable handles of dropped connections are all released), its threads to
  that too or at most to its I/O executor's bound, and its resident memory is printed beside the baseline;
- nothing outside the share changed: a symlink inside the shared directory points at a directory next to the
  share, which the clients try to reach through it, with "..", and by renaming onto it;
- every byte a client was told was written is on disk: each client's own file (read back over SMB and from
  disk) and its own range of one file all clients write to at once.

SMBSRV_SOAK_SECONDS (default 20) sets the length of the run and SMBSRV_SOAK_SEED its seed; a failure prints the
seed, which replays the same choices (the interleaving of the clients is the scheduler's).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import random
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

from smbprotocol.connection import Connection
from smbprotocol.exceptions import SMBException, SMBResponseException
from smbprotocol.open import (
    CreateDisposition,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

from tests import builders as b
from tests.conftest import (
    PASSWORD,
    USER,
    SmbServer,
    assert_no_server_bugs,
    serving_account,
    start_server,
    stop_server,
)
from tests.integration.notify_helpers import notify_body
from tests.integration.test_multichannel import _bind, _negotiate

SECONDS = float(os.environ.get("SMBSRV_SOAK_SECONDS", "20"))
# SMBSRV_SOAK_CLIENTS=N runs N raw and N/2 smbprotocol clients.
RAW_CLIENTS = int(os.environ.get("SMBSRV_SOAK_CLIENTS", "4"))
SMBPROTOCOL_CLIENTS = max(1, RAW_CLIENTS // 2)
MULTICHANNEL_CLIENTS = max(1, RAW_CLIENTS // 4)
RANGE = 64 * 1024  # each client's slice of the common file
OWN_SIZE = 2 * 1024 * 1024
POOL = [f"pool{index}" for index in range(6)]
DIRECTORY = "shared"
SECOND_PASSWORD = "Soak-Pass-2"
UNSOLICITED = 0xFFFFFFFFFFFFFFFF
SMB2_OPLOCK_BREAK = 0x12
LEASE_RWH = 0x7
SMB2_OPLOCK_LEVEL_II, SMB2_OPLOCK_LEVEL_BATCH, SMB2_OPLOCK_LEVEL_LEASE = 0x01, 0x09, 0xFF
FILE_SUPERSEDE, FILE_OPEN, FILE_CREATE, FILE_OPEN_IF, FILE_OVERWRITE, FILE_OVERWRITE_IF = range(6)
SHARED_LOCK, EXCLUSIVE_LOCK, UNLOCK, FAIL_IMMEDIATELY = 1, 2, 4, 0x10
READ_WRITE_DELETE = b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE
FSCTL_SRV_REQUEST_RESUME_KEY, FSCTL_SRV_COPYCHUNK_WRITE = 0x00140078, 0x001480F2

# What an operation of the chaos part may be answered with; anything else is a finding.
EXPECTED = {
    b.STATUS_SUCCESS, b.STATUS_PENDING, b.STATUS_NO_MORE_FILES, b.STATUS_STOPPED_ON_SYMLINK,
    b.STATUS_ACCESS_DENIED, b.STATUS_OBJECT_NAME_NOT_FOUND, b.STATUS_OBJECT_NAME_COLLISION,
    b.STATUS_OBJECT_PATH_NOT_FOUND, b.STATUS_SHARING_VIOLATION, b.STATUS_FILE_LOCK_CONFLICT,
    b.STATUS_LOCK_NOT_GRANTED, b.STATUS_DELETE_PENDING, b.STATUS_RANGE_NOT_LOCKED, b.STATUS_CANCELLED,
    b.STATUS_FILE_IS_A_DIRECTORY, b.STATUS_NOT_A_DIRECTORY, b.STATUS_FILE_CLOSED, b.STATUS_CANNOT_DELETE,
    b.STATUS_OBJECT_NAME_INVALID, b.STATUS_END_OF_FILE, b.STATUS_NO_SUCH_FILE,
    0x0000010B,  # STATUS_NOTIFY_CLEANUP: a watch whose handle closed
    0x0000010C,  # STATUS_NOTIFY_ENUM_DIR
    0xC000003B,  # STATUS_OBJECT_PATH_SYNTAX_BAD ("..")
    b.STATUS_DIRECTORY_NOT_EMPTY, b.STATUS_NOT_SUPPORTED,
    # A pool name may be a directory: overwriting dispositions (Samba's open_directory), READ, WRITE and LOCK
    # on it, and a listing buffer too small for one entry.
    b.STATUS_INVALID_PARAMETER, b.STATUS_INVALID_DEVICE_REQUEST, b.STATUS_INFO_LENGTH_MISMATCH,
}


def pattern(seed: int, *key: int, length: int) -> bytes:
    """Bytes that name who wrote them and when: a torn or misplaced write shows up as a mismatch."""
    stem = hashlib.sha256(struct.pack(f"<q{len(key)}q", seed, *key)).digest()
    return (stem * (length // len(stem) + 1))[:length]


@dataclass
class Findings:
    seed: int
    items: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, text: str) -> None:
        with self.lock:
            self.items.append(text)

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def check(self, what: str, status: int) -> int:
        self.count(what if status == b.STATUS_SUCCESS else f"{what} refused")
        if status not in EXPECTED:
            self.add(f"{what}: {b.status_name(status)}")
        return status


@dataclass
class SoakClient(b.Client):
    """The raw client, acknowledging every oplock and lease break as soon as it arrives ([MS-SMB2] 3.2.5.19):
    a client that is waiting for its own answer must not hold up another client's open for the break timeout."""

    acks: ClassVar[list[int]] = [0, 0]  # breaks acknowledged, breaks seen (all clients)
    _ack_ids: set[int] = field(default_factory=set)

    def receive_message(self) -> list[b.Response]:
        kept = []
        for response in super().receive_message():
            if response.header.message_id == UNSOLICITED and response.header.command == SMB2_OPLOCK_BREAK:
                self._acknowledge(response)
            elif response.header.message_id in self._ack_ids and response.header.command == SMB2_OPLOCK_BREAK:
                self._ack_ids.discard(response.header.message_id)
            else:
                kept.append(response)
        return kept

    def write(self, file_id: tuple[int, int], offset: int, data: bytes) -> b.Response:
        return self.request(b.SMB2_WRITE, b.write_body(file_id, offset, data), credit_charge=charge(len(data)))

    def read(self, file_id: tuple[int, int], offset: int, length: int) -> b.Response:
        return self.request(b.SMB2_READ, b.read_body(file_id, offset, length), credit_charge=charge(length))

    def _acknowledge(self, notification: b.Response) -> None:
        body = notification.body
        SoakClient.acks[1] += 1
        (structure_size,) = struct.unpack_from("<H", body, 0)
        if structure_size == 44:  # lease break notification, 2.2.23.2: ack only when asked
            _, _, flags, key, _, new_state = struct.unpack_from("<HHI16sII", body, 0)
            if not flags & 1:
                return
            ack = struct.pack("<HHI16sIQ", 36, 0, 0, key, new_state, 0)
        else:  # oplock break notification, 2.2.23.1: the ack names the level it was broken to
            ack = struct.pack("<HBBI16s", 24, body[2], 0, 0, body[8:24])
        SoakClient.acks[0] += 1
        (message_id,) = self.send(b.Req(SMB2_OPLOCK_BREAK, ack))
        self._ack_ids.add(message_id)


def charge(length: int) -> int:
    """CreditCharge of a READ or WRITE ([MS-SMB2] 3.1.5.2): one credit per started 64 KiB."""
    return max(1, (length + 65535) // 65536)


def raw_client(server: SmbServer, user: str, password: str, client_guid: bytes | None = None) -> SoakClient:
    client = SoakClient(server.host, server.port, timeout_s=60).connect()
    try:
        assert client.negotiate(client_guid=client_guid or uuid.uuid4().bytes).status == b.STATUS_SUCCESS
        assert client.session_setup(user, password) == b.STATUS_SUCCESS
        assert client.tree_connect(server.share).status == b.STATUS_SUCCESS
    except BaseException:
        client.close()
        raise
    return client


def lease_context(key: bytes, state: int) -> bytes:
    """[MS-SMB2] 2.2.13.2.8 SMB2_CREATE_REQUEST_LEASE_V2."""
    return b.create_context(b"RqLs", struct.pack("<16sIIQ16sHH", key, state, 0, 0, bytes(16), 0, 0))


def durable_context(create_guid: bytes, timeout_ms: int) -> bytes:
    """[MS-SMB2] 2.2.13.2.11 SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2."""
    return b.create_context(b"DH2Q", struct.pack("<II8s16s", timeout_ms, 0, bytes(8), create_guid))


def reconnect_context(file_id: tuple[int, int], create_guid: bytes) -> bytes:
    """[MS-SMB2] 2.2.13.2.12 SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2."""
    return b.create_context(b"DH2C", struct.pack("<QQ16sI", *file_id, create_guid, 0))


class RawWorker:
    """One raw client: its own durable, leased file (model in memory), its slice of the common file, and chaos
    on the pool names."""

    def __init__(self, index: int, server: SmbServer, user: str, password: str, seed: int,
                 findings: Findings) -> None:
        self.index, self.server, self.user, self.password = index, server, user, password
        self.seed = seed
        self.rng = random.Random(seed * 1000 + index)
        self.findings = findings
        self.client_guid = uuid.uuid4().bytes
        self.client = self.connect()
        self.generation = 0
        self.own_name = f"{DIRECTORY}\\raw{index}.dat"
        self.own_model = bytearray()
        self.own_create_guid = uuid.uuid4().bytes
        self.own_lease_key = uuid.uuid4().bytes
        self.own_id = self._open_own(FILE_CREATE)
        self.common_model = bytearray(RANGE)
        self.common_lease_key = uuid.uuid4().bytes
        self.common_id: tuple[int, int] | None = None
        self.extra: list[b.Client] = []

    # Whether this client asks for leases and oplocks (and so durable handles) at all.
    caching = True

    def connect(self) -> SoakClient:
        return raw_client(self.server, self.user, self.password, self.client_guid)

    # -- own file --------------------------------------------------------------------------------------

    def _open_own(self, disposition: int, reconnect: tuple[int, int] | None = None) -> tuple[int, int]:
        contexts = b.chain_contexts(reconnect_context(reconnect, self.own_create_guid) if reconnect else
                         durable_context(self.own_create_guid, 2000), lease_context(self.own_lease_key, LEASE_RWH))
        response = self.client.create(self.own_name, desired_access=READ_WRITE_DELETE, disposition=disposition,
                                      share_access=b.FILE_SHARE_ALL,
                                      oplock=SMB2_OPLOCK_LEVEL_LEASE if self.caching else 0,
                                      contexts=contexts if self.caching else b"")
        if response.status != b.STATUS_SUCCESS:
            raise AssertionError(f"raw{self.index}: open own file ({'reconnect' if reconnect else disposition}): "
                                 f"{b.status_name(response.status)}")
        return b.create_file_id(response.body)

    def write_own(self) -> None:
        offset = self.rng.randrange(0, OWN_SIZE - 1)
        # Now and then a WRITE large enough for the transport's bulk path (a task whose disk write overlaps
        # the next receive, in a worker thread).
        largest = 1 << 20 if self.rng.random() < 0.1 else 70000
        length = self.rng.randint(1, min(OWN_SIZE - offset, largest))
        self.generation += 1
        data = pattern(self.seed, self.index, 1, self.generation, length=length)
        response = self.client.write(self.own_id, offset, data)
        if response.status != b.STATUS_SUCCESS:
            self.findings.add(f"raw{self.index}: WRITE own: {b.status_name(response.status)}")
            return
        if len(self.own_model) < offset:
            self.own_model += bytes(offset - len(self.own_model))
        self.own_model[offset:offset + length] = data
        self.findings.count("write own")

    def read_own(self) -> None:
        if not self.own_model:
            return
        offset = self.rng.randrange(0, len(self.own_model))
        length = self.rng.randint(1, 1 << 20 if self.rng.random() < 0.1 else 70000)
        response = self.client.read(self.own_id, offset, length)
        if response.status != b.STATUS_SUCCESS:
            self.findings.add(f"raw{self.index}: READ own: {b.status_name(response.status)}")
            return
        if b.read_data(response) != bytes(self.own_model[offset:offset + length]):
            self.findings.add(f"raw{self.index}: READ own at {offset}+{length} differs from what was written")
        self.findings.count("read own")

    def truncate_own(self) -> None:
        size = self.rng.randrange(0, OWN_SIZE)
        response = self.client.set_info(self.own_id, 1, b.FILE_END_OF_FILE_INFORMATION, struct.pack("<Q", size))
        if response.status != b.STATUS_SUCCESS:
            self.findings.add(f"raw{self.index}: truncate own: {b.status_name(response.status)}")
            return
        del self.own_model[size:]
        self.own_model += bytes(size - len(self.own_model))
        self.findings.count("truncate own")

    def rename_own(self) -> None:
        target = f"{DIRECTORY}\\raw{self.index}.{'dat' if self.own_name.endswith('alt') else 'alt'}"
        response = self.client.set_info(self.own_id, 1, b.FILE_RENAME_INFORMATION, b.rename_info(target, True))
        if response.status != b.STATUS_SUCCESS:
            self.findings.add(f"raw{self.index}: rename own: {b.status_name(response.status)}")
            return
        self.own_name = target
        self.findings.count("rename own")

    def drop_and_reconnect(self) -> None:
        """Close the socket with requests outstanding (a WRITE that rewrites what is there, a CHANGE_NOTIFY, a
        LOCK that waits), then take the durable handle back on a new connection ([MS-SMB2] 3.3.5.9.12)."""
        client = self.client
        self.common_id = None  # goes with the connection (or stays durable until its timeout)
        requests = []
        if self.own_model:
            offset = self.rng.randrange(0, len(self.own_model))
            data = bytes(self.own_model[offset:offset + 65536])
            requests.append(b.Req(b.SMB2_WRITE, b.write_body(self.own_id, offset, data), credit_charge=charge(len(data))))
        directory = client.create(DIRECTORY, desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
        if directory.status == b.STATUS_SUCCESS:
            requests.append(b.Req(b.SMB2_CHANGE_NOTIFY, notify_body(b.create_file_id(directory.body), flags=1)))
        try:
            for req in requests:
                client.send(req)
        except b.ConnectionDropped:
            pass
        if self.rng.random() < 0.5:
            time.sleep(self.rng.random() * 0.05)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset
        client.close()
        old_id = self.own_id
        self.client = self.connect()
        deadline = time.monotonic() + 10
        while True:
            response = self.client.create(
                self.own_name, desired_access=READ_WRITE_DELETE, disposition=FILE_OPEN, oplock=SMB2_OPLOCK_LEVEL_LEASE,
                contexts=b.chain_contexts(reconnect_context(old_id, self.own_create_guid),
                               lease_context(self.own_lease_key, LEASE_RWH)))
            if response.status == b.STATUS_SUCCESS:
                self.own_id = b.create_file_id(response.body)
                self.findings.count("durable reconnect")
                return
            # The server may not have seen the old connection go yet ([MS-SMB2] 3.3.5.9.12: the open is
            # still connected), in which case it answers STATUS_OBJECT_NAME_NOT_FOUND: try again.
            if response.status != b.STATUS_OBJECT_NAME_NOT_FOUND or time.monotonic() > deadline:
                self.findings.add(f"raw{self.index}: durable reconnect: {b.status_name(response.status)}")
                self.own_create_guid = uuid.uuid4().bytes
                self.own_id = self._open_own(FILE_OPEN)
                return
            time.sleep(0.05)

    # -- the common file -------------------------------------------------------------------------------

    def write_common(self) -> None:
        """A WRITE to this client's slice of the file everyone writes, through a handle kept open under an
        RWH lease (one key per client) or a batch oplock: every other client's open and write breaks it."""
        if self.common_id is None or self.rng.random() < 0.2:
            if self.common_id is not None:
                self.client.close_file(self.common_id)
                self.common_id = None
            lease = self.rng.random() < 0.7
            oplock = (SMB2_OPLOCK_LEVEL_LEASE if lease else SMB2_OPLOCK_LEVEL_BATCH) if self.caching else 0
            response = self.client.create(f"{DIRECTORY}\\common.dat", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                          share_access=b.FILE_SHARE_ALL, oplock=oplock,
                                          contexts=lease_context(self.common_lease_key, LEASE_RWH)
                                          if oplock == SMB2_OPLOCK_LEVEL_LEASE else b"")
            if response.status != b.STATUS_SUCCESS:
                self.findings.add(f"raw{self.index}: open common: {b.status_name(response.status)}")
                return
            self.common_id = b.create_file_id(response.body)
        file_id = self.common_id
        offset = self.rng.randrange(0, RANGE)
        length = self.rng.randint(1, RANGE - offset)
        self.generation += 1
        data = pattern(self.seed, self.index, 2, self.generation, length=length)
        response = self.client.write(file_id, self.index * RANGE + offset, data)
        if response.status == b.STATUS_SUCCESS:
            self.common_model[offset:offset + length] = data
            self.findings.count("write common")
        else:
            self.findings.add(f"raw{self.index}: WRITE common: {b.status_name(response.status)}")

    # -- chaos on shared names -------------------------------------------------------------------------

    def chaos(self) -> None:
        rng, client = self.rng, self.client
        name = f"{DIRECTORY}\\{rng.choice(POOL)}"
        kind = rng.randrange(8)
        if kind == 0:  # every way out of the share
            target = rng.choice(("escape\\victim.txt", "escape", "..\\outside\\victim.txt", "..\\..\\x"))
            response = client.create(f"{DIRECTORY}\\{target}" if not target.startswith("..") else target,
                                     desired_access=READ_WRITE_DELETE, disposition=rng.choice((1, 3, 5)))
            self.findings.check("escape", response.status)
            if response.status == b.STATUS_SUCCESS:
                file_id = b.create_file_id(response.body)
                self.findings.check("escape rename", client.set_info(
                    file_id, 1, b.FILE_RENAME_INFORMATION,
                    b.rename_info(f"{DIRECTORY}\\escape\\moved", True)).status)
                client.close_file(file_id)
            return
        if kind == 1:  # a listing, in a random class and a small buffer now and then
            response = client.create(DIRECTORY, desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE,
                                     oplock=SMB2_OPLOCK_LEVEL_LEASE if rng.random() < 0.3 and self.caching else 0,
                                     contexts=lease_context(uuid.uuid4().bytes, 3) if rng.random() < 0.3 else b"")
            if self.findings.check("list open", response.status) != b.STATUS_SUCCESS:
                return
            file_id = b.create_file_id(response.body)
            for _ in range(rng.randint(1, 4)):
                response = client.query_directory(file_id, rng.choice(("*", "pool*", "raw?.*")),
                                                  info_class=rng.choice((1, 2, 3, 0x0C, 0x25, 0x26)),
                                                  output_length=rng.choice((200, 4096, 65536)))
                if self.findings.check("list", response.status) != b.STATUS_SUCCESS:
                    break
            client.close_file(file_id)
            return
        if kind == 2:  # change notify, answered by a change, a CANCEL or a close
            response = client.create(DIRECTORY, desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
            if self.findings.check("notify open", response.status) != b.STATUS_SUCCESS:
                return
            file_id = b.create_file_id(response.body)
            (message_id,) = client.send(b.Req(b.SMB2_CHANGE_NOTIFY, notify_body(file_id, flags=rng.randint(0, 1))))
            if rng.random() < 0.5:
                client.send(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=message_id))
                self.findings.check("notify cancelled", client.receive(message_id).status)
                client.close_file(file_id)
            else:
                client.close_file(file_id)
                self.findings.check("notify closed", client.receive(message_id).status)
            return
        if kind == 3:  # pool names as directories: children, tree watches, renames and deletes around them
            self.directory_chaos(name)
            return
        # An open of a pool name with random disposition, sharing, access, caching and options.
        access = rng.choice((b.GENERIC_READ, READ_WRITE_DELETE, b.DELETE | b.FILE_READ_ATTRIBUTES,
                             b.GENERIC_WRITE, b.MAXIMUM_ALLOWED))
        oplock = rng.choice((0, SMB2_OPLOCK_LEVEL_II, SMB2_OPLOCK_LEVEL_BATCH, SMB2_OPLOCK_LEVEL_LEASE)) \
            if self.caching else 0
        contexts = lease_context(uuid.uuid4().bytes, rng.choice((1, 3, 5, 7))) if oplock == 0xFF else b""
        options = rng.choice((0, 0, b.FILE_NON_DIRECTORY_FILE, b.FILE_DELETE_ON_CLOSE))
        response = client.create(name, desired_access=access, disposition=rng.randrange(6), options=options,
                                 share_access=rng.randrange(8), oplock=oplock, contexts=contexts)
        if self.findings.check("pool open", response.status) != b.STATUS_SUCCESS:
            return
        file_id = b.create_file_id(response.body)
        for _ in range(rng.randint(0, 4)):
            step = rng.randrange(10)
            if step == 0:
                status = client.write(file_id, rng.randrange(0, 1 << 20), rng.randbytes(rng.randint(1, 5000))).status
            elif step == 1:
                status = client.read(file_id, rng.randrange(0, 1 << 20), rng.randint(1, 70000)).status
            elif step == 2:
                flags = rng.choice((SHARED_LOCK, EXCLUSIVE_LOCK)) | (FAIL_IMMEDIATELY if rng.random() < 0.7 else 0)
                offset, length = rng.randrange(0, 100), rng.randint(1, 50)
                (message_id,) = client.send(b.Req(b.SMB2_LOCK, b.lock_body(file_id, [(offset, length, flags)])))
                if not flags & FAIL_IMMEDIATELY:
                    time.sleep(0.01)  # a blocking lock that waits is cancelled
                    client.send(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=message_id))
                status = client.receive(message_id).status
                if status == b.STATUS_SUCCESS and rng.random() < 0.5:
                    status = client.request(b.SMB2_LOCK, b.lock_body(file_id, [(offset, length, UNLOCK)])).status
            elif step == 3:
                status = client.set_info(file_id, 1, b.FILE_RENAME_INFORMATION,
                                         b.rename_info(f"{DIRECTORY}\\{rng.choice(POOL)}", rng.random() < 0.5)).status
            elif step == 4:
                status = client.set_info(file_id, 1, b.FILE_DISPOSITION_INFORMATION,
                                         b.disposition_info(rng.random() < 0.7)).status
            elif step == 6:  # a hard link under another pool name ([MS-FSCC] 2.4.27)
                status = client.set_info(file_id, 1, b.FILE_LINK_INFORMATION,
                                         b.rename_info(f"{DIRECTORY}\\{rng.choice(POOL)}", rng.random() < 0.5)).status
            elif step == 7:  # an extended attribute ([MS-FSCC] 2.4.15)
                value = rng.randbytes(rng.randint(0, 300))
                status = client.set_info(file_id, 1, 15, struct.pack("<IBBH", 0, 0, 4, len(value)) + b"user\0" + value).status
            elif step == 8:  # a server-side copy of this client's own file into the pool file ([MS-SMB2] 3.3.5.15.6)
                status = self._copy_own_into(file_id)
            else:
                status = client.query_info(file_id, 1, rng.choice((4, 5, 18, 34, 35))).status
            if status == 0x80000005:  # STATUS_BUFFER_OVERFLOW of a long FileAllInformation
                status = b.STATUS_SUCCESS
            self.findings.check(f"pool step {step}", status)
        self.findings.check("pool close", client.close_file(file_id))

    def _copy_own_into(self, target: tuple[int, int]) -> int:
        response = self.client.request(b.SMB2_IOCTL, b.ioctl_body(self.own_id, FSCTL_SRV_REQUEST_RESUME_KEY,
                                                                  max_output=32))
        if response.status != b.STATUS_SUCCESS:
            return response.status
        (output_offset,) = struct.unpack_from("<I", response.body, 32)  # [MS-SMB2] 2.2.32 OutputOffset
        key = response.body[output_offset - b.HEADER_SIZE:][:24]
        chunks = b"".join(struct.pack("<QQII", self.rng.randrange(0, 1 << 20), self.rng.randrange(0, 1 << 20),
                                      self.rng.randint(1, 300000), 0) for _ in range(self.rng.randint(1, 3)))
        copy = key + struct.pack("<II", len(chunks) // 24, 0) + chunks
        status = self.client.request(b.SMB2_IOCTL, b.ioctl_body(target, FSCTL_SRV_COPYCHUNK_WRITE, copy,
                                                                max_output=12)).status
        # A chunk past the end of the source (STATUS_INVALID_VIEW_SIZE, 3.3.5.15.6), or a target opened without
        # read access: refusals the request may get.
        refusals = (0xC000001F, b.STATUS_END_OF_FILE, b.STATUS_ACCESS_DENIED)
        return b.STATUS_SUCCESS if status in refusals else status

    def directory_chaos(self, name: str) -> None:
        rng, client = self.rng, self.client
        response = client.create(name, desired_access=READ_WRITE_DELETE, disposition=rng.choice((1, 2, 3)),
                                 options=b.FILE_DIRECTORY_FILE, share_access=rng.choice((7, 7, 3, 1)))
        if self.findings.check("dir open", response.status) != b.STATUS_SUCCESS:
            return
        directory = b.create_file_id(response.body)
        watch = None
        if rng.random() < 0.5:  # a tree watch that the changes below (or the close) answer
            (watch,) = client.send(b.Req(b.SMB2_CHANGE_NOTIFY, notify_body(directory, flags=1)))
        children = []
        for _ in range(rng.randint(0, 3)):
            child = f"{name}\\{rng.choice(('a', 'b', 'sub'))}"
            response = client.create(child, desired_access=READ_WRITE_DELETE, disposition=rng.choice((2, 3, 5)),
                                     options=b.FILE_DIRECTORY_FILE if child.endswith("sub") else 0,
                                     oplock=rng.choice((0, SMB2_OPLOCK_LEVEL_BATCH)) if self.caching else 0)
            if self.findings.check("dir child", response.status) == b.STATUS_SUCCESS:
                children.append(b.create_file_id(response.body))
        for _ in range(rng.randint(1, 3)):
            step = rng.randrange(4)
            if step == 0:  # renaming a directory with open files below it
                status = client.set_info(directory, 1, b.FILE_RENAME_INFORMATION,
                                         b.rename_info(f"{DIRECTORY}\\{rng.choice(POOL)}", rng.random() < 0.3)).status
            elif step == 1:
                status = client.set_info(directory, 1, b.FILE_DISPOSITION_INFORMATION, b.disposition_info()).status
            elif step == 2 and children:
                status = client.set_info(rng.choice(children), 1, b.FILE_DISPOSITION_INFORMATION,
                                         b.disposition_info()).status
            else:
                status = client.query_directory(directory, "*", output_length=rng.choice((100, 65536))).status
            self.findings.check(f"dir step {step}", status)
        for child in children:
            self.findings.check("dir child close", client.close_file(child))
        self.findings.check("dir close", client.close_file(directory))
        if watch is not None:
            self.findings.check("dir watch", client.receive(watch).status)

    def abandon(self) -> None:
        """Another connection of the same user that leaves everything behind: a durable leased open, a blocked
        LOCK, a pending CHANGE_NOTIFY and unanswered WRITEs, then a reset."""
        rng = self.rng
        client = raw_client(self.server, self.user, self.password)
        try:
            name = f"{DIRECTORY}\\{rng.choice(POOL)}"
            response = client.create(name, desired_access=READ_WRITE_DELETE, disposition=FILE_OPEN_IF,
                                     oplock=SMB2_OPLOCK_LEVEL_LEASE,
                                     contexts=b.chain_contexts(durable_context(uuid.uuid4().bytes, 1000),
                                                    lease_context(uuid.uuid4().bytes, LEASE_RWH)))
            self.findings.check("abandon open", response.status)
            requests = []
            file_id = None
            if response.status == b.STATUS_SUCCESS:
                file_id = b.create_file_id(response.body)
                requests += [b.Req(b.SMB2_LOCK, b.lock_body(file_id, [(0, 10, EXCLUSIVE_LOCK | FAIL_IMMEDIATELY)])),
                             b.Req(b.SMB2_LOCK, b.lock_body(file_id, [(5, 10, EXCLUSIVE_LOCK)])),
                             b.Req(b.SMB2_WRITE, b.write_body(file_id, 0, rng.randbytes(300000)),
                                   credit_charge=charge(300000))]
            directory = client.create(DIRECTORY, desired_access=b.GENERIC_READ, options=b.FILE_DIRECTORY_FILE)
            if directory.status == b.STATUS_SUCCESS:
                requests.append(b.Req(b.SMB2_CHANGE_NOTIFY, notify_body(b.create_file_id(directory.body))))
            for req in requests:
                client.send(req)
            if file_id is not None and rng.random() < 0.3:  # half of a large WRITE: the reset comes mid-message
                message, _ = client.build(b.Req(b.SMB2_WRITE, b.write_body(file_id, 0, bytes(1 << 20)),
                                                credit_charge=16))
                assert client.sock is not None
                client.sock.sendall(struct.pack(">I", len(message)) + bytes(message[:len(message) // 2]))
            ending = rng.randrange(4)
            if ending == 0:  # the session or the tree goes while all of it is outstanding
                client.send(b.Req(b.SMB2_LOGOFF, b.echo_body()))
            elif ending == 1:
                client.send(b.Req(b.SMB2_TREE_DISCONNECT, b.echo_body()))
            if rng.random() < 0.5:
                time.sleep(rng.random() * 0.02)
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (b.ConnectionDropped, OSError):
            pass
        finally:
            client.close()
        self.findings.count("abandon")

    def step(self) -> None:
        choice = self.rng.random()
        if choice < 0.25:
            self.write_own()
        elif choice < 0.35:
            self.read_own()
        elif choice < 0.38:
            self.truncate_own()
        elif choice < 0.41:
            self.rename_own()
        elif choice < 0.44:
            self.drop_and_reconnect()
        elif choice < 0.47:
            self.abandon()
        elif choice < 0.6:
            self.write_common()
        else:
            self.chaos()

    def abort(self) -> None:
        self.client.close()

    def finish(self) -> None:
        assert self.client.close_file(self.own_id) == b.STATUS_SUCCESS
        if self.common_id is not None:
            assert self.client.close_file(self.common_id) == b.STATUS_SUCCESS
        self.client.close()


class MultichannelWorker(RawWorker):
    """A raw client with two channels of one session ([MS-SMB2] 3.3.5.5.2): every operation goes out on either;
    a channel is reset now and then with a WRITE outstanding and a new one bound in its place, while the
    handles go on through the other. It asks for no leases or oplocks: a break sent on the channel it is not
    reading would wait for the break timeout."""

    caching = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # A binding is signed with Session.SigningKey, the first channel's ([MS-SMB2] 3.2.4.1.1), whichever
        # channels are left by then.
        self.session = SimpleNamespace(session_id=self.client.session_id, signer=self.client.signer,
                                       tree_id=self.client.tree_id)
        self.channels = [self.client, self._bound()]

    def connect(self) -> SoakClient:
        client = SoakClient(self.server.host, self.server.port, timeout_s=60).connect()
        assert _negotiate(client, (0x0311,), client_guid=self.client_guid).status == b.STATUS_SUCCESS
        assert client.session_setup(self.user, self.password) == b.STATUS_SUCCESS
        client.sign_requests = True
        assert client.tree_connect(self.server.share).status == b.STATUS_SUCCESS
        return client

    def _bound(self) -> SoakClient:
        channel = SoakClient(self.server.host, self.server.port, timeout_s=60).connect()
        assert _negotiate(channel, (0x0311,), client_guid=self.client_guid).status == b.STATUS_SUCCESS
        response = _bind(channel, self.session, self.user, self.password)  # type: ignore[arg-type]
        assert response.status == b.STATUS_SUCCESS, f"binding: {b.status_name(response.status)}"
        self.findings.count("channel bound")
        return channel

    def drop_and_reconnect(self) -> None:
        """Reset one channel with an idempotent WRITE outstanding; the session and its opens stay on the other
        ([MS-SMB2] 3.3.7.1), and a new channel is bound in its place."""
        index = self.rng.randrange(2)
        lost, kept = self.channels[index], self.channels[1 - index]
        if self.own_model:
            offset = self.rng.randrange(0, len(self.own_model))
            data = bytes(self.own_model[offset:offset + 65536])
            lost.send(b.Req(b.SMB2_WRITE, b.write_body(self.own_id, offset, data), credit_charge=charge(len(data))))
        assert lost.sock is not None
        lost.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        lost.close()
        self.client = kept
        self.channels = [kept, self._bound()]
        self.findings.count("channel reset")

    def abandon(self) -> None:
        self.drop_and_reconnect()

    def step(self) -> None:
        self.client = self.rng.choice(self.channels)
        super().step()

    def finish(self) -> None:
        super().finish()
        self.abort()

    def abort(self) -> None:
        for channel in self.channels:
            channel.close()


class SmbprotocolWorker:
    """One smbprotocol client (its own receiver thread, credits, signing or encryption): a file of its own
    written in known patterns and read back, and opens and listings of the pool names."""

    def __init__(self, index: int, server: SmbServer, user: str, password: str, seed: int,
                 findings: Findings) -> None:
        self.index, self.seed, self.findings = index, seed, findings
        self.rng = random.Random(seed * 1000 + 500 + index)
        self.connection = Connection(uuid.uuid4(), server.host, server.port, require_signing=index % 2 == 0)
        self.connection.connect(timeout=30)
        # Every other client seals its messages ([MS-SMB2] 3.1.4.3): transforms under concurrency too.
        self.session = Session(self.connection, user, password, auth_protocol="ntlm",
                               require_encryption=index % 2 == 1)
        self.session.connect()
        self.tree = TreeConnect(self.session, f"\\\\{server.host}\\{server.share}")
        self.tree.connect()
        self.name = f"{DIRECTORY}\\sp{index}.dat"
        self.model = bytearray()
        self.generation = 0
        self.handle = self._open(self.name, CreateDisposition.FILE_CREATE,
                                 FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE)

    def _open(self, name: str, disposition: int, access: int, share: int = 7) -> Open:
        handle = Open(self.tree, name)
        handle.create(ImpersonationLevel.Impersonation, access, 0x80, share, disposition, 0)
        return handle

    def step(self) -> None:
        rng = self.rng
        choice = rng.random()
        try:
            if choice < 0.4:
                offset = rng.randrange(0, OWN_SIZE)
                self.generation += 1
                data = pattern(self.seed, 100 + self.index, self.generation, length=rng.randint(1, 65536))
                self.handle.write(data, offset)
                if len(self.model) < offset:
                    self.model += bytes(offset - len(self.model))
                self.model[offset:offset + len(data)] = data
                self.findings.count("smbprotocol write")
            elif choice < 0.6 and self.model:
                offset = rng.randrange(0, len(self.model))
                length = min(rng.randint(1, 65536), len(self.model) - offset)
                if self.handle.read(offset, length) != bytes(self.model[offset:offset + length]):
                    self.findings.add(f"sp{self.index}: READ at {offset}+{length} differs from what was written")
                self.findings.count("smbprotocol read")
            elif choice < 0.8:
                directory = Open(self.tree, DIRECTORY)
                directory.create(ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.GENERIC_READ, 0x10,
                                 7, CreateDisposition.FILE_OPEN, 1)
                try:
                    directory.query_directory("*", 0x25)
                finally:
                    directory.close()
                self.findings.count("smbprotocol list")
            else:
                share = rng.choice((0, ShareAccess.FILE_SHARE_READ, 7))
                handle = self._open(f"{DIRECTORY}\\{rng.choice(POOL)}", rng.choice((1, 3, 5)),
                                    rng.choice((FilePipePrinterAccessMask.GENERIC_READ,
                                                FilePipePrinterAccessMask.GENERIC_ALL)), share)
                handle.close()
                self.findings.count("smbprotocol pool open")
        except SMBResponseException as exc:
            self.findings.check("smbprotocol", int(exc.status))

    def finish(self) -> None:
        self.handle.close()
        self.session.disconnect()
        self.connection.disconnect(True)

    def abort(self) -> None:
        self.connection.disconnect(True)


# -- the daemon from outside ------------------------------------------------------------------------------------

@dataclass
class Usage:
    fds: int
    threads: int
    rss_kib: int


def usage(pid: int) -> Usage:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return Usage(fds, threads, rss)


def thread_bound(baseline: Usage) -> int:
    """The daemon's default executor (large WRITEs, copychunk) keeps its idle workers, up to min(32, CPUs + 4)
    of them, as concurrent.futures does: the peak of concurrent large writes may leave more than the warm-up
    did, but never more than that pool beside the event loop and one more thread (the kernel change feed)."""
    return max(baseline.threads, min(32, (os.cpu_count() or 1) + 4) + 2)


def settled_usage(pid: int, baseline: Usage | None, wait_s: float) -> Usage:
    """The daemon's usage once it stops falling (or has reached `baseline`): disconnected durable opens wait
    for their timeout, idle worker threads for theirs."""
    deadline = time.monotonic() + wait_s
    last = usage(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = usage(pid)
        if baseline is not None and now.fds <= baseline.fds and now.threads <= thread_bound(baseline):
            return now
        last = now
    return last


def tree_snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every name below `root` with its mode, size, mtime and a hash of its content."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for entry in dirs + files:
            path = Path(directory, entry)
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
            found[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return found


def run_workers(workers: list[RawWorker | SmbprotocolWorker], seconds: float, findings: Findings) -> None:
    deadline = time.monotonic() + seconds

    def loop(worker: RawWorker | SmbprotocolWorker) -> None:
        try:
            while time.monotonic() < deadline:
                worker.step()
            worker.finish()
        except (AssertionError, SMBException, b.ConnectionDropped, OSError, ValueError) as exc:
            findings.add(f"{type(worker).__name__}: {type(exc).__name__}: {exc}")
            worker.abort()  # what it left open goes with its connections, as for any client that dies

    threads = [threading.Thread(target=loop, args=(worker,), daemon=True) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
        if thread.is_alive():
            findings.add("a client did not finish within 120 s of the end: a request never completed")


def test_concurrent_soak(tmp_path: Path, second_account: str | None) -> None:
    seed = int(os.environ.get("SMBSRV_SOAK_SEED", "0")) or random.randrange(1, 1 << 31)
    findings = Findings(seed)
    share = tmp_path / "share"
    shared = share / DIRECTORY
    outside = tmp_path / "outside"
    shared.mkdir(parents=True)
    outside.mkdir()
    (outside / "victim.txt").write_bytes(b"outside the share")
    users = [(USER, PASSWORD)] + ([(second_account, SECOND_PASSWORD)] if second_account else [])
    server = start_server(share, tmp_path / "server.log", users=tuple(users))
    try:
        # Both accounts create in the shared directory; the common file is everyone's to write.
        shared.chmod(0o777)
        (shared / "escape").symlink_to(outside)
        common = shared / "common.dat"
        common.write_bytes(bytes(RANGE * (RAW_CLIENTS + MULTICHANNEL_CLIENTS)))
        account = serving_account()
        if account is not None:
            os.lchown(common, account.pw_uid, account.pw_gid)
            os.lchown(shared / "escape", account.pw_uid, account.pw_gid)
        common.chmod(0o666)
        outside_before = tree_snapshot(outside)

        def accounts(index: int) -> tuple[str, str]:
            return users[index % len(users)]

        def round_of(seconds: float, round_seed: int) -> list[RawWorker | SmbprotocolWorker]:
            workers: list[RawWorker | SmbprotocolWorker] = []
            workers += [RawWorker(i, server, *accounts(i), round_seed, findings) for i in range(RAW_CLIENTS)]
            workers += [MultichannelWorker(RAW_CLIENTS + i, server, *accounts(i), round_seed, findings)
                        for i in range(MULTICHANNEL_CLIENTS)]
            workers += [SmbprotocolWorker(i, server, *accounts(i + 1), round_seed, findings)
                        for i in range(SMBPROTOCOL_CLIENTS)]
            run_workers(workers, seconds, findings)
            return workers

        # A warm-up round makes the daemon import, cache and start what it keeps for good (worker threads,
        # buffer pools); its files are gone before the real round.
        for worker in round_of(2, seed + 1):
            if isinstance(worker, RawWorker):
                for suffix in ("dat", "alt"):
                    (shared / f"raw{worker.index}.{suffix}").unlink(missing_ok=True)
            else:
                (shared / f"sp{worker.index}.dat").unlink()
        common.write_bytes(bytes(RANGE * (RAW_CLIENTS + MULTICHANNEL_CLIENTS)))
        baseline = settled_usage(server.process.pid, None, 4)
        workers = round_of(SECONDS, seed)
        after = settled_usage(server.process.pid, baseline, 20)
        print(f"soak seed {seed}: {SECONDS} s, {RAW_CLIENTS} raw + {MULTICHANNEL_CLIENTS} two-channel raw + "
              f"{SMBPROTOCOL_CLIENTS} smbprotocol clients, "
              f"{len(users)} account(s); operations {dict(sorted(findings.counts.items()))}; "
              f"breaks seen {SoakClient.acks[1]}, acknowledged {SoakClient.acks[0]}; "
              f"baseline {baseline}, after {after}")

        problems = list(findings.items)
        for worker in workers:
            if isinstance(worker, RawWorker):
                on_disk = (share / worker.own_name.replace("\\", "/")).read_bytes()
                if on_disk != bytes(worker.own_model):
                    problems.append(f"raw{worker.index}: own file on disk differs from what was written "
                                    f"({len(on_disk)} vs {len(worker.own_model)} bytes)")
                if common.read_bytes()[worker.index * RANGE:(worker.index + 1) * RANGE] != bytes(worker.common_model):
                    problems.append(f"raw{worker.index}: its range of the common file differs from what was written")
            else:
                on_disk = (shared / f"sp{worker.index}.dat").read_bytes()
                if on_disk != bytes(worker.model):
                    problems.append(f"sp{worker.index}: file on disk differs from what was written")
        if account is not None:
            # Every name the clients made belongs to one of the two accounts: a step that ran as the server
            # (root) would have left a root-owned file.
            owners = {account.pw_uid} | ({pwd.getpwnam(second_account).pw_uid} if second_account else set())
            for directory, dirs, files in os.walk(share):
                for entry in dirs + files:
                    st = os.lstat(os.path.join(directory, entry))
                    if st.st_uid not in owners:
                        problems.append(f"{os.path.join(directory, entry)} is owned by uid {st.st_uid}")
        if tree_snapshot(outside) != outside_before:
            problems.append("the directory outside the share changed")
        if sorted(p.name for p in tmp_path.iterdir()) != ["outside", "server.log", "share"]:
            problems.append(f"names next to the share: {sorted(p.name for p in tmp_path.iterdir())}")
        if after.fds > baseline.fds:
            problems.append(f"open fds {after.fds} > baseline {baseline.fds}: "
                            f"{sorted(os.readlink(f'/proc/{server.process.pid}/fd/{fd}') for fd in os.listdir(f'/proc/{server.process.pid}/fd'))}")
        if after.threads > thread_bound(baseline):
            problems.append(f"threads {after.threads} > baseline {baseline.threads} and the executor's bound")
        assert server.process.poll() is None, "the server died"
        assert not problems, f"soak seed {seed} (SMBSRV_SOAK_SEED={seed} replays it):\n" + "\n".join(problems[:40])
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)

