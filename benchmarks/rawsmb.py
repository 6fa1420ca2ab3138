"""A minimal blocking SMB 3.1.1 client that measures connection setup and holds idle connections.

It sends only the messages a connect needs (and, for the stat workload, one compound per file, below):
- NEGOTIATE ([MS-SMB2] 2.2.3, 2.2.4) offering dialect 3.1.1 with the SMB2_PREAUTH_INTEGRITY_CAPABILITIES
  context (2.2.3.1.1);
- SESSION_SETUP ([MS-SMB2] 2.2.5, 2.2.6) carrying SPNEGO/NTLM tokens from pyspnego;
- TREE_CONNECT ([MS-SMB2] 2.2.9, 2.2.10);
- LOGOFF ([MS-SMB2] 2.2.7).

Keys follow [MS-SMB2] 3.2.5.3.1: preauth integrity hash (3.2.5.2), SP800-108 counter-mode KDF with HMAC-SHA256
(3.1.4.2), and AES-CMAC signing (3.1.4.1) since no SMB2_SIGNING_CAPABILITIES context is offered.

Why not smbprotocol: it starts a receiver thread per connection and does more work per message, so on a
2-core machine its own cost would be a large part of a measurement of a few milliseconds. Why not smbclient:
its process start (35-45 ms) dwarfs the connect itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct

import spnego
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

SMB2_NEGOTIATE = 0x0000
SMB2_SESSION_SETUP = 0x0001
SMB2_LOGOFF = 0x0002
SMB2_TREE_CONNECT = 0x0003
SMB2_CREATE = 0x0005
SMB2_CLOSE = 0x0006
SMB2_QUERY_INFO = 0x0010

SMB2_FLAGS_ASYNC_COMMAND = 0x00000002
SMB2_FLAGS_SIGNED = 0x00000008
SMB2_FLAGS_RELATED_OPERATIONS = 0x00000004

SMB2_NEGOTIATE_SIGNING_ENABLED = 0x0001
SMB2_NEGOTIATE_SIGNING_REQUIRED = 0x0002

SMB2_PREAUTH_INTEGRITY_CAPABILITIES = 0x0001
SHA_512 = 0x0001
SMB_3_1_1 = 0x0311

STATUS_SUCCESS = 0x00000000
STATUS_PENDING = 0x00000103
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016

# [MS-SMB2] 2.2.1.2 SMB2 Packet Header - SYNC (the same 64 bytes serve the ASYNC form for our reads).
_HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")
_PROTOCOL_ID = b"\xfeSMB"
_SIGNATURE_OFFSET = 48
_FLAGS_OFFSET = 16
# [MS-SMB2] 2.2.3 NEGOTIATE request, fixed part.
_NEGOTIATE_REQUEST = struct.Struct("<HHHHI16sIHH")
# [MS-SMB2] 2.2.3.1 NEGOTIATE_CONTEXT header.
_NEGOTIATE_CONTEXT = struct.Struct("<HHI")
# [MS-SMB2] 2.2.3.1.1 SMB2_PREAUTH_INTEGRITY_CAPABILITIES with one hash algorithm.
_PREAUTH_CAPABILITIES = struct.Struct("<HHH")
# [MS-SMB2] 2.2.4 NEGOTIATE response, fixed part up to NegotiateContextOffset.
_NEGOTIATE_RESPONSE = struct.Struct("<HHHH16sIIIIQQHHI")
# [MS-SMB2] 2.2.5 SESSION_SETUP request, fixed part.
_SESSION_SETUP_REQUEST = struct.Struct("<HBBIIHHQ")
# [MS-SMB2] 2.2.6 SESSION_SETUP response, fixed part.
_SESSION_SETUP_RESPONSE = struct.Struct("<HHHH")
# [MS-SMB2] 2.2.9 TREE_CONNECT request, fixed part.
_TREE_CONNECT_REQUEST = struct.Struct("<HHHH")
# [MS-SMB2] 2.2.7 LOGOFF request.
_LOGOFF_REQUEST = struct.Struct("<HH")
# [MS-SMB2] 2.2.13 CREATE request, fixed part (the name follows at offset 120).
_CREATE_REQUEST = struct.Struct("<HBBIQQIIIIIHHII")
# [MS-SMB2] 2.2.37 QUERY_INFO request without its (empty) input buffer.
_QUERY_INFO_REQUEST = struct.Struct("<HBBIHHIII16s")
# [MS-SMB2] 2.2.15 CLOSE request.
_CLOSE_REQUEST = struct.Struct("<HHI16s")
# The FileId a related request carries: take the one the CREATE before it made ([MS-SMB2] 3.2.4.1.4).
_CHAIN_FILE_ID = b"\xff" * 16
_FILE_READ_ATTRIBUTES = 0x00000080
_FILE_SHARE_ALL = 0x00000007
_FILE_OPEN = 0x00000001
_SMB2_0_INFO_FILE = 0x01
_FILE_ALL_INFORMATION = 18
_QUERY_OUTPUT_BYTES = 4096
_NETBIOS_LENGTH = struct.Struct(">I")
_KDF_COUNTER = struct.Struct(">I")

_PREAUTH_SALT_LENGTH = 32
_SIGNING_KEY_LABEL = b"SMBSigningKey\x00"


class SmbConnectError(RuntimeError):
    """The server refused or broke one step of the connect."""


def derive_signing_key(session_key: bytes, preauth_hash: bytes) -> bytes:
    """[MS-SMB2] 3.1.4.2 with SP800-108 counter mode: one HMAC-SHA256 block, L = 128 bits."""
    data = _KDF_COUNTER.pack(1) + _SIGNING_KEY_LABEL + b"\x00" + preauth_hash + _KDF_COUNTER.pack(128)
    return hmac.new(session_key, data, hashlib.sha256).digest()[:16]


class SmbConnection:
    """One TCP connection: negotiate, authenticate, tree connect, log off. Blocking and single-threaded."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        signing_required: bool = False,
        timeout_s: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.signing_required = signing_required
        self.timeout_s = timeout_s
        self.sock: socket.socket | None = None
        self.message_id = 0
        self.session_id = 0
        self.tree_id = 0
        self.signing_key: bytes | None = None
        self.dialect = 0
        self.server_signing_required = False
        self._cmac_template: tuple[bytes, CMAC] | None = None  # (signing key, its keyed CMAC)

    # -- framing ---------------------------------------------------------------------------------------

    def _send(self, message: bytes | bytearray) -> None:
        assert self.sock is not None
        # [MS-SMB2] 2.1: Direct TCP transport, a zero byte and a 24-bit big-endian length.
        self.sock.sendall(_NETBIOS_LENGTH.pack(len(message)) + message)

    def _recv_exact(self, length: int) -> bytes:
        assert self.sock is not None
        buf = bytearray(length)
        view = memoryview(buf)
        got = 0
        while got < length:
            n = self.sock.recv_into(view[got:])
            if n == 0:
                raise SmbConnectError("server closed the connection")
            got += n
        return bytes(buf)

    def _recv(self) -> tuple[int, bytes]:
        """Return (status, message) of the next final response, skipping interim STATUS_PENDING ones."""
        while True:
            length = _NETBIOS_LENGTH.unpack(self._recv_exact(4))[0] & 0x00FFFFFF
            message = self._recv_exact(length)
            if message[:4] != _PROTOCOL_ID:
                raise SmbConnectError(f"unexpected protocol id {message[:4]!r}")
            fields = _HEADER.unpack_from(message)
            status, flags = fields[3], fields[6]
            if status == STATUS_PENDING and flags & SMB2_FLAGS_ASYNC_COMMAND:
                continue
            return status, message

    def _header(self, command: int, credit_request: int = 1) -> bytes:
        header = _HEADER.pack(
            _PROTOCOL_ID,
            64,
            1,
            0,
            command,
            credit_request,
            0,
            0,
            self.message_id,
            0,
            self.tree_id,
            self.session_id,
            bytes(16),
        )
        self.message_id += 1
        return header

    def _sign(self, message: bytearray) -> None:
        """[MS-SMB2] 3.1.4.1: AES-128-CMAC over the message with the flag set and the signature zeroed. The AES
        key schedule is done once per signing key, as a kernel client keeps it: the client's own cost stays
        small next to the server's on two shared cores."""
        assert self.signing_key is not None
        if self._cmac_template is None or self._cmac_template[0] != self.signing_key:
            self._cmac_template = (self.signing_key, CMAC(algorithms.AES(self.signing_key)))
        flags = struct.unpack_from("<I", message, _FLAGS_OFFSET)[0] | SMB2_FLAGS_SIGNED
        struct.pack_into("<I", message, _FLAGS_OFFSET, flags)
        message[_SIGNATURE_OFFSET : _SIGNATURE_OFFSET + 16] = bytes(16)
        mac = self._cmac_template[1].copy()
        mac.update(bytes(message))
        message[_SIGNATURE_OFFSET : _SIGNATURE_OFFSET + 16] = mac.finalize()

    # -- the steps of a connect ------------------------------------------------------------------------

    def connect(self, share: str) -> None:
        """TCP connect, NEGOTIATE, SESSION_SETUP until success, TREE_CONNECT to \\\\host\\share."""
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        preauth_hash = self._negotiate()
        self._session_setup(preauth_hash)
        self._tree_connect(share)

    def _security_mode(self) -> int:
        mode = SMB2_NEGOTIATE_SIGNING_ENABLED
        if self.signing_required:
            mode |= SMB2_NEGOTIATE_SIGNING_REQUIRED
        return mode

    def _negotiate(self) -> bytes:
        dialects = struct.pack("<H", SMB_3_1_1)
        fixed_end = 64 + _NEGOTIATE_REQUEST.size + len(dialects)
        # [MS-SMB2] 2.2.3: the first negotiate context is 8-byte aligned.
        context_offset = (fixed_end + 7) & ~7
        salt = os.urandom(_PREAUTH_SALT_LENGTH)
        preauth = _PREAUTH_CAPABILITIES.pack(1, len(salt), SHA_512) + salt
        body = _NEGOTIATE_REQUEST.pack(
            36,
            1,
            self._security_mode(),
            0,
            0,
            os.urandom(16),
            context_offset,
            1,
            0,
        )
        context = _NEGOTIATE_CONTEXT.pack(SMB2_PREAUTH_INTEGRITY_CAPABILITIES, len(preauth), 0) + preauth
        request = self._header(SMB2_NEGOTIATE) + body + dialects
        request += bytes(context_offset - len(request)) + context
        self._send(request)
        status, response = self._recv()
        if status != STATUS_SUCCESS:
            raise SmbConnectError(f"NEGOTIATE failed with status 0x{status:08x}")
        fixed = _NEGOTIATE_RESPONSE.unpack_from(response, 64)
        self.dialect = fixed[2]
        self.server_signing_required = bool(fixed[1] & SMB2_NEGOTIATE_SIGNING_REQUIRED)
        if self.dialect != SMB_3_1_1:
            raise SmbConnectError(f"server chose dialect 0x{self.dialect:04x}, expected 3.1.1")
        # [MS-SMB2] 3.2.5.2: the connection's hash covers the NEGOTIATE request and response.
        value = hashlib.sha512(bytes(64) + request).digest()
        return hashlib.sha512(value + response).digest()

    def _session_setup(self, connection_hash: bytes) -> None:
        context = spnego.client(
            self.username,
            self.password,
            hostname=self.host,
            service="cifs",
            protocol="negotiate",
        )
        token = context.step()
        preauth_hash = connection_hash
        while True:
            assert token is not None
            offset = 64 + _SESSION_SETUP_REQUEST.size
            body = _SESSION_SETUP_REQUEST.pack(25, 0, self._security_mode(), 0, 0, offset, len(token), 0)
            request = self._header(SMB2_SESSION_SETUP, credit_request=8) + body + token
            self._send(request)
            # [MS-SMB2] 3.2.5.3.1: every request and every non-final response extends the session hash.
            preauth_hash = hashlib.sha512(preauth_hash + request).digest()
            status, response = self._recv()
            self.session_id = _HEADER.unpack_from(response)[11]
            _, _, buffer_offset, buffer_length = _SESSION_SETUP_RESPONSE.unpack_from(response, 64)
            server_token = response[buffer_offset : buffer_offset + buffer_length]
            if status == STATUS_MORE_PROCESSING_REQUIRED:
                preauth_hash = hashlib.sha512(preauth_hash + response).digest()
                token = context.step(server_token)
                continue
            if status != STATUS_SUCCESS:
                raise SmbConnectError(f"SESSION_SETUP failed with status 0x{status:08x}")
            if server_token and not context.complete:
                context.step(server_token)
            break
        session_key = context.session_key
        self.signing_key = derive_signing_key(session_key[:16].ljust(16, b"\x00"), preauth_hash)

    def _tree_connect(self, share: str) -> None:
        path = f"\\\\{self.host}\\{share}".encode("utf-16-le")
        offset = 64 + _TREE_CONNECT_REQUEST.size
        request = bytearray(
            self._header(SMB2_TREE_CONNECT) + _TREE_CONNECT_REQUEST.pack(9, 0, offset, len(path)) + path
        )
        # [MS-SMB2] 3.2.4.1.1: with 3.1.1 a TREE_CONNECT in an authenticated session MUST be signed.
        self._sign(request)
        self._send(request)
        status, response = self._recv()
        if status != STATUS_SUCCESS:
            raise SmbConnectError(f"TREE_CONNECT failed with status 0x{status:08x}")
        self.tree_id = _HEADER.unpack_from(response)[10]

    def stat(self, path: str) -> None:
        """What cifs.ko sends for a stat(2) it has no cached answer for: CREATE (FILE_READ_ATTRIBUTES, open
        existing, no create contexts) + QUERY_INFO FileAllInformation + CLOSE as one related compound
        ([MS-SMB2] 3.2.4.1.4), one round trip. Requests are signed when either side requires signing, as a
        client does ([MS-SMB2] 3.2.4.1.1); the responses are not verified (both servers get the same client)."""
        name = path.encode("utf-16-le")
        create = bytearray(self._header(SMB2_CREATE) + _CREATE_REQUEST.pack(
            57, 0, 0, 2, 0, 0, _FILE_READ_ATTRIBUTES, 0, _FILE_SHARE_ALL, _FILE_OPEN, 0,
            64 + _CREATE_REQUEST.size, len(name), 0, 0) + (name or b"\0"))
        create += bytes(-len(create) % 8)
        query = bytearray(self._header(SMB2_QUERY_INFO) + _QUERY_INFO_REQUEST.pack(
            41, _SMB2_0_INFO_FILE, _FILE_ALL_INFORMATION, _QUERY_OUTPUT_BYTES, 0, 0, 0, 0, 0, _CHAIN_FILE_ID))
        close = bytearray(self._header(SMB2_CLOSE) + _CLOSE_REQUEST.pack(24, 0, 0, _CHAIN_FILE_ID))
        # NextCommand of the first two, the related flag of the last two: both are covered by the signature.
        struct.pack_into("<I", create, 20, len(create))
        struct.pack_into("<I", query, 20, len(query))
        for element in (query, close):
            struct.pack_into("<I", element, _FLAGS_OFFSET, SMB2_FLAGS_RELATED_OPERATIONS)
        if self.signing_required or self.server_signing_required:
            for element in (create, query, close):
                self._sign(element)
        self._send(create + query + close)
        _, response = self._recv()
        position = 0
        while True:
            fields = _HEADER.unpack_from(response, position)
            if fields[3] != STATUS_SUCCESS:
                raise SmbConnectError(f"stat of {path}: command {fields[4]} failed with status 0x{fields[3]:08x}")
            if not fields[7]:
                break
            position += fields[7]

    def logoff(self) -> None:
        """Send LOGOFF (signed, which is always allowed once a session has a key) and close the socket."""
        try:
            request = bytearray(self._header(SMB2_LOGOFF) + _LOGOFF_REQUEST.pack(4, 0))
            self._sign(request)
            self._send(request)
            status, _ = self._recv()
            if status != STATUS_SUCCESS:
                raise SmbConnectError(f"LOGOFF failed with status 0x{status:08x}")
        finally:
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
