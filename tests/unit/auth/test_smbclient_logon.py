"""Samba's smbclient logs on to a minimal SMB 3.1.1 responder built from smbsrv.auth and smbsrv.crypto.

The responder (test-only, loopback, one connection) answers NEGOTIATE and SESSION_SETUP with our Authenticator,
keeps the preauth integrity hash, derives the session keys, signs the final SESSION_SETUP response and checks
the signature of the TREE_CONNECT that follows, which it refuses with STATUS_BAD_NETWORK_NAME. smbclient only
gets that far if it accepted our SPNEGO/NTLMv2 tokens, our mechListMIC and our signature: an independent
client checks the whole chain (NTLM session key -> preauth hash -> KDF -> signing) in both directions.
"""

import os
import shutil
import socket
import struct
import subprocess
import threading

import pytest

from smbsrv.auth.authenticator import Authenticator
from smbsrv.auth.errors import AuthError
from smbsrv.auth.users import UserDB
from smbsrv.crypto import preauth
from smbsrv.crypto.kdf import derive_session_keys
from smbsrv.crypto.signing import Signer, make_signer

pytestmark = pytest.mark.skipif(shutil.which("smbclient") is None, reason="smbclient is not installed")

PASSWORD = "Tr0ub4dor&3"
HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")
NEGOTIATE, SESSION_SETUP, TREE_CONNECT = 0x00, 0x01, 0x03
STATUS_SUCCESS = 0x00000000
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016
STATUS_LOGON_FAILURE = 0xC000006D
STATUS_BAD_NETWORK_NAME = 0xC00000CC
STATUS_NOT_SUPPORTED = 0xC00000BB
SESSION_ID = 0x0000100000000041


class MiniResponder:
    """Just enough of an SMB 3.1.1 server for a logon; records what it saw."""

    def __init__(self, authenticator: Authenticator, signing_algorithm: int | None) -> None:
        self.authenticator = authenticator
        self.signing_algorithm = signing_algorithm
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(30)
        self.port = self.listener.getsockname()[1]
        self.tree_connect_signature_ok: bool | None = None
        self.logon_error: AuthError | None = None
        self.error: BaseException | None = None
        self.chosen_signing: int | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=30)

    def _serve(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(30)
            try:
                self._handle(connection)
            except (ConnectionError, TimeoutError):
                pass
            except Exception as error:  # noqa: BLE001 - a thread cannot raise into the test; it reads self.error
                self.error = error

    @staticmethod
    def _receive(connection: socket.socket) -> bytes | None:
        prefix = _read_exactly(connection, 4)
        if prefix is None:
            return None
        length = int.from_bytes(prefix[1:], "big")
        return _read_exactly(connection, length)

    @staticmethod
    def _send(connection: socket.socket, message: bytes | bytearray) -> None:
        connection.sendall(len(message).to_bytes(4, "big") + bytes(message))

    def _handle(self, connection: socket.socket) -> None:
        connection_hash = preauth.PREAUTH_INITIAL
        session_hash = b""
        exchange = self.authenticator.new_exchange()
        signer: Signer | None = None
        while True:
            request = self._receive(connection)
            if request is None:
                return
            if request[:4] != b"\xfeSMB":
                raise AssertionError(f"unexpected protocol id {request[:4]!r}")
            fields = HEADER.unpack_from(request, 0)
            command, message_id = fields[4], fields[8]
            if command == NEGOTIATE:
                response = self._negotiate_response(request, message_id)
                connection_hash = preauth.update(preauth.update(connection_hash, request), response)
                session_hash = connection_hash
                self._send(connection, response)
            elif command == SESSION_SETUP:
                session_hash = preauth.update(session_hash, request)
                offset, length = struct.unpack_from("<HH", request, 64 + 12)
                try:
                    out_token = exchange.step(request[offset : offset + length])
                except AuthError as error:
                    self.logon_error = error
                    self._send(
                        connection, _response(SESSION_SETUP, message_id, STATUS_LOGON_FAILURE, _error_body())
                    )
                    continue
                status = STATUS_SUCCESS if exchange.complete else STATUS_MORE_PROCESSING_REQUIRED
                body = struct.pack("<HHHH", 9, 0, 64 + 8, len(out_token)) + out_token
                response = _response(SESSION_SETUP, message_id, status, body)
                if exchange.complete:
                    session_key = exchange.result.session_key
                    assert session_key is not None
                    keys = derive_session_keys(0x0311, session_key, session_hash, 0)
                    signer = make_signer(0x0311, self.chosen_signing, keys.signing_key)
                    signer.sign(response)  # [MS-SMB2] 3.3.5.5.3: the final response is signed
                else:
                    session_hash = preauth.update(session_hash, response)
                self._send(connection, response)
            else:
                if command == TREE_CONNECT and signer is not None:
                    self.tree_connect_signature_ok = bool(fields[6] & 0x8) and signer.verify(request)
                status = STATUS_BAD_NETWORK_NAME if command == TREE_CONNECT else STATUS_NOT_SUPPORTED
                response = _response(command, message_id, status, _error_body())
                if signer is not None:
                    signer.sign(response)
                self._send(connection, response)

    def _negotiate_response(self, request: bytes, message_id: int) -> bytearray:
        dialect_count = struct.unpack_from("<H", request, 64 + 2)[0]
        dialects = struct.unpack_from(f"<{dialect_count}H", request, 64 + 36)
        assert 0x0311 in dialects, dialects
        context_offset, context_count = struct.unpack_from("<IH", request, 64 + 28)
        offered_signing: tuple[int, ...] = ()
        position = context_offset
        for _ in range(context_count):
            context_type, data_length = struct.unpack_from("<HH", request, position)
            if context_type == 0x0008:
                count = struct.unpack_from("<H", request, position + 8)[0]
                offered_signing = struct.unpack_from(f"<{count}H", request, position + 10)
            position += (8 + data_length + 7) & ~7
        if self.signing_algorithm is not None:
            assert self.signing_algorithm in offered_signing, offered_signing
            self.chosen_signing = self.signing_algorithm

        security_buffer = self.authenticator.negotiate_token()
        contexts = [_context(0x0001, struct.pack("<HHH", 1, 32, 0x0001) + os.urandom(32))]
        if self.chosen_signing is not None:
            contexts.append(_context(0x0008, struct.pack("<HH", 1, self.chosen_signing)))
        buffer_offset = 64 + 64
        context_offset = (buffer_offset + len(security_buffer) + 7) & ~7
        body = struct.pack(
            "<HHHH16sIIIIQQHHI",
            65,
            0x0003,  # SIGNING_ENABLED | SIGNING_REQUIRED
            0x0311,
            len(contexts),
            b"smbsrv-unittest!",
            0,
            1 << 16,
            1 << 16,
            1 << 16,
            0,
            0,
            buffer_offset,
            len(security_buffer),
            context_offset,
        )
        padding = bytes(context_offset - buffer_offset - len(security_buffer))
        packed_contexts = b""
        for index, context in enumerate(contexts):
            packed_contexts += context
            if index + 1 < len(contexts):
                packed_contexts += bytes(-len(context) % 8)
        return _response(
            NEGOTIATE, message_id, STATUS_SUCCESS, body + security_buffer + padding + packed_contexts
        )


def _read_exactly(connection: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _context(context_type: int, data: bytes) -> bytes:
    return struct.pack("<HHI", context_type, len(data), 0) + data


def _error_body() -> bytes:
    return struct.pack("<HBBI", 9, 0, 0, 0) + b"\x00"


def _response(command: int, message_id: int, status: int, body: bytes) -> bytearray:
    session_id = 0 if command == NEGOTIATE else SESSION_ID
    header = HEADER.pack(
        b"\xfeSMB", 64, 1, status, command, 32, 0x1, 0, message_id, 0, 0, session_id, bytes(16)
    )
    return bytearray(header + body)


def run_smbclient(port: int, user: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "smbclient",
            "//127.0.0.1/share",
            "-p",
            str(port),
            "-U",
            f"{user}%{password}",
            "--use-kerberos=off",
            "--option=client min protocol=SMB3_11",
            "--option=client max protocol=SMB3_11",
            "--option=client signing=required",
            "-c",
            "ls",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "HOME": "/nonexistent"},
    )


@pytest.fixture
def users() -> UserDB:
    return UserDB.from_pairs([("alice", PASSWORD)], unix_user="nobody")


@pytest.mark.parametrize("signing_algorithm", [None, 0x0001, 0x0002], ids=["cmac-default", "cmac", "gmac"])
def test_smbclient_logs_on_and_verifies_our_signature(users: UserDB, signing_algorithm: int | None) -> None:
    responder = MiniResponder(Authenticator(users, "testsrv", allow_guest=False), signing_algorithm)
    try:
        result = run_smbclient(responder.port, "alice", PASSWORD)
    finally:
        responder.close()
    output = result.stdout + result.stderr
    assert responder.error is None, responder.error
    assert responder.logon_error is None, responder.logon_error
    assert "NT_STATUS_BAD_NETWORK_NAME" in output, output
    assert responder.tree_connect_signature_ok is True


def test_smbclient_with_a_wrong_password_gets_logon_failure(users: UserDB) -> None:
    responder = MiniResponder(Authenticator(users, "testsrv", allow_guest=False), None)
    try:
        result = run_smbclient(responder.port, "alice", "wrong")
    finally:
        responder.close()
    assert responder.error is None, responder.error
    assert responder.logon_error is not None
    assert "NT_STATUS_LOGON_FAILURE" in result.stdout + result.stderr
