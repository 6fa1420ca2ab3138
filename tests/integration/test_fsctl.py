"""FSCTL_SRV_REQUEST_RESUME_KEY and FSCTL_VALIDATE_NEGOTIATE_INFO against the daemon ([MS-SMB2] 2.2.31.4,
2.2.32.3, 2.2.32.6, 3.3.5.15.6, 3.3.5.15.12), as raw requests (tests/builders.py) because real clients send
them only with their own values. Compared with Samba 4.17 in the same setup.
"""

from __future__ import annotations

import struct
import uuid

import pytest

from tests import builders as b
from tests.conftest import SmbServer

FSCTL_SRV_REQUEST_RESUME_KEY = 0x00140078
FSCTL_VALIDATE_NEGOTIATE_INFO = 0x00140204


def ioctl_output(response: b.Response) -> bytes:
    """OutputOffset(4)@32, OutputCount(4)@36 of an IOCTL response ([MS-SMB2] 2.2.32)."""
    offset, count = struct.unpack_from("<II", response.body, 32)
    return response.body[offset - b.HEADER_SIZE:offset - b.HEADER_SIZE + count]


# -- resume key ------------------------------------------------------------------------------------------------

def test_resume_key_reply_layout(smb_server: SmbServer) -> None:
    """[MS-SMB2] 2.2.32.3: ResumeKey (24 bytes), ContextLength (4) = 0, and the 4 bytes of Context Windows and
    Samba send along: 32 bytes in all, as smbtorture's ndr parser (req_resume_key_rsp) expects. The key
    differs per open and stays the same for one open; an output buffer under 32 bytes is BUFFER_TOO_SMALL
    (Samba 4.17 the same)."""
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        keys = []
        for name in ("one.bin", "two.bin"):
            file_id = client.open(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                                  disposition=b.FILE_OVERWRITE_IF)
            for _ in range(2):
                response = client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, FSCTL_SRV_REQUEST_RESUME_KEY,
                                                                     max_output=32))
                assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
                assert struct.unpack_from("<I", response.body, 4)[0] == FSCTL_SRV_REQUEST_RESUME_KEY
                output = ioctl_output(response)
                assert len(output) == 32
                key, context_length, context = output[:24], *struct.unpack_from("<II", output, 24)
                assert (context_length, context) == (0, 0)
                keys.append(key)
            for too_small in (24, 16):
                response = client.request(b.SMB2_IOCTL, b.ioctl_body(file_id, FSCTL_SRV_REQUEST_RESUME_KEY,
                                                                     max_output=too_small))
                assert response.status == b.STATUS_BUFFER_TOO_SMALL
            assert client.close_file(file_id) == b.STATUS_SUCCESS
        assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2]


# -- VALIDATE_NEGOTIATE_INFO ---------------------------------------------------------------------------------------

def _validate_body(capabilities: int, guid: bytes, security_mode: int, dialects: tuple[int, ...]) -> bytes:
    """[MS-SMB2] 2.2.31.4."""
    return struct.pack("<I16sHH", capabilities, guid, security_mode, len(dialects)) + b"".join(
        struct.pack("<H", dialect) for dialect in dialects)


def _connect(server: SmbServer, dialects: tuple[int, ...], guid: bytes) -> b.Client:
    client = b.Client(server.host, server.port).connect()
    assert client.negotiate(dialects, client_guid=guid).status == b.STATUS_SUCCESS
    assert client.session_setup(server.user, server.password) == b.STATUS_SUCCESS
    client.sign_requests = True  # the request must be signed ([MS-SMB2] 3.2.4.20.12 / 3.3.5.15.12)
    assert client.tree_connect(server.share).status == b.STATUS_SUCCESS
    return client


def _validate(client: b.Client, body: bytes) -> b.Response | None:
    """The response, or None when the server dropped the connection instead."""
    client.send(b.Req(b.SMB2_IOCTL, b.ioctl_body(b.RELATED_FILE_ID, FSCTL_VALIDATE_NEGOTIATE_INFO, body,
                                                 max_output=24)))
    try:
        return client.receive_message()[0]
    except b.ConnectionDropped:
        return None


@pytest.mark.parametrize("dialects", [(0x0300, 0x0302), (0x0202, 0x0210, 0x0300)], ids=["3.0.2", "3.0"])
def test_validate_negotiate_matching(smb_server: SmbServer, dialects: tuple[int, ...]) -> None:
    """What the client sent in NEGOTIATE comes back validated with the server's values ([MS-SMB2] 2.2.32.6),
    the same values as the NEGOTIATE response."""
    guid = uuid.uuid4().bytes
    with _connect(smb_server, dialects, guid) as client:
        assert client.negotiate_response is not None
        negotiate = client.negotiate_response.body
        security_mode, dialect = struct.unpack_from("<HH", negotiate, 2)
        server_guid = negotiate[8:24]
        (capabilities,) = struct.unpack_from("<I", negotiate, 24)
        response = _validate(client, _validate_body(0, guid, b.SMB2_NEGOTIATE_SIGNING_ENABLED, dialects))
        assert response is not None and response.status == b.STATUS_SUCCESS
        assert response.header.flags & b.SMB2_FLAGS_SIGNED
        assert ioctl_output(response) == struct.pack("<I16sHH", capabilities, server_guid, security_mode, dialect)


@pytest.mark.parametrize("mismatch", ["capabilities", "guid", "security_mode", "dialects"])
def test_validate_negotiate_mismatch_drops_the_connection(smb_server: SmbServer, mismatch: str) -> None:
    """[MS-SMB2] 3.3.5.15.12: any field that differs from what NEGOTIATE carried means a downgrade attack, and
    the server terminates the connection without answering (Samba 4.17 the same)."""
    dialects = (0x0300, 0x0302)
    guid = uuid.uuid4().bytes
    values = {"capabilities": 0, "guid": guid, "security_mode": b.SMB2_NEGOTIATE_SIGNING_ENABLED,
              "dialects": dialects}
    values[mismatch] = {"capabilities": 0x40, "guid": uuid.uuid4().bytes,
                        "security_mode": b.SMB2_NEGOTIATE_SIGNING_REQUIRED, "dialects": (0x0300,)}[mismatch]
    with _connect(smb_server, dialects, guid) as client:
        assert _validate(client, _validate_body(values["capabilities"], values["guid"],  # type: ignore[arg-type]
                                                values["security_mode"], values["dialects"])) is None  # type: ignore[arg-type]
    b.assert_serves_fresh_client(smb_server.host, smb_server.port, smb_server.user, smb_server.password)


def test_validate_negotiate_on_311_drops_the_connection(smb_server: SmbServer) -> None:
    """[MS-SMB2] 3.3.5.15.12: on 3.1.1 (which has preauth integrity instead) the server MUST terminate the
    connection, even for matching values. Samba 4.17 answers it with SUCCESS; smbsrv follows the spec."""
    dialects = b.DIALECTS_ALL
    guid = uuid.uuid4().bytes
    with _connect(smb_server, dialects, guid) as client:
        assert _validate(client, _validate_body(0, guid, b.SMB2_NEGOTIATE_SIGNING_ENABLED, dialects)) is None
