"""SESSION_SETUP details pinned against the daemon with hand-built NTLMSSP messages ([MS-NLMP] 2.2.1.1,
2.2.1.3, 2.2.2.7), raw NTLMSSP framing (no SPNEGO):

- re-authentication as anonymous switches the session to the anonymous (guest) identity and keeps its handles,
  as Samba 4.17 does (smbtorture smb2.session.reauth2/3); re-authenticating as the user restores it;
- an NTLMv2 response that does not parse is STATUS_INVALID_PARAMETER, as in Samba (smb2.session.ntlmssp_bug14932),
  while a well-formed one with a wrong proof stays STATUS_LOGON_FAILURE.
"""

from __future__ import annotations

import struct

import pytest
import spnego

from tests import builders as b
from tests.conftest import PASSWORD, USER, SmbServer

NTLMSSP_NEGOTIATE_UNICODE = 0x00000001
NTLMSSP_REQUEST_TARGET = 0x00000004
NTLMSSP_NEGOTIATE_NTLM = 0x00000200
NTLMSSP_NEGOTIATE_ANONYMOUS = 0x00000800
NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
FLAGS = NTLMSSP_NEGOTIATE_UNICODE | NTLMSSP_REQUEST_TARGET | NTLMSSP_NEGOTIATE_NTLM | \
    NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
FILE_POSITION_INFORMATION = 14

# smbtorture's smb2.session.ntlmssp_bug14932 NT response: 16 bytes of "proof", then a NetApp client challenge
# whose first AV_PAIR claims 0x8108 bytes.
NETAPP_RESPONSE = bytes.fromhex(
    "abababababababababababababababab"  # NTProofStr
    "0101000000000000" "3f3f3f3f3f3f3f3f" "b8823af1b3dd0815" "00000000"  # the 28 fixed bytes
    "11a20881"  # AvId 0xa211, AvLen 0x8108
    "50382278" "2b9447fe54947bff17275ab4f418badc2c38fd5bfb0ec1851ecc92bb9bb1c4d55314ff8c7649f5459019a2")


def _negotiate_message(flags: int) -> bytes:
    """NEGOTIATE_MESSAGE ([MS-NLMP] 2.2.1.1) with empty domain and workstation."""
    return b"NTLMSSP\x00" + struct.pack("<II", 1, flags) + bytes(16)


def _authenticate_message(flags: int, lm: bytes, nt: bytes, user: str = "", domain: str = "") -> bytes:
    """AUTHENTICATE_MESSAGE ([MS-NLMP] 2.2.1.3) without Version and MIC: payload right after the 64 bytes."""
    payloads = [lm, nt, domain.encode("utf-16-le"), user.encode("utf-16-le"), b"", b""]
    fields = b""
    offset = 64
    for payload in payloads:
        fields += struct.pack("<HHI", len(payload), len(payload), offset)
        offset += len(payload)
    return b"NTLMSSP\x00" + struct.pack("<I", 3) + fields + struct.pack("<I", flags) + b"".join(payloads)


def _setup(client: b.Client, token: bytes, session_id: int) -> b.Response:
    response = client.request(b.SMB2_SESSION_SETUP, b.session_setup_body(token), session_id=session_id,
                              sign=False)
    return response


def _anonymous_reauth(client: b.Client) -> b.Response:
    flags = FLAGS | NTLMSSP_NEGOTIATE_ANONYMOUS
    response = _setup(client, _negotiate_message(flags), client.session_id)
    assert response.status == b.STATUS_MORE_PROCESSING_REQUIRED, b.status_name(response.status)
    return _setup(client, _authenticate_message(flags, b"\x00", b""), client.session_id)


def _user_reauth(client: b.Client) -> b.Response:
    auth = spnego.client(USER, PASSWORD, protocol="ntlm")
    token = auth.step() or b""
    while True:
        response = _setup(client, token, client.session_id)
        if response.status != b.STATUS_MORE_PROCESSING_REQUIRED:
            return response
        token = auth.step(b._security_buffer(response.body)) or b""


def test_reauthentication_as_anonymous_and_back(smb_server: SmbServer) -> None:
    with b.connect(smb_server.host, smb_server.port, USER, PASSWORD) as client:
        file_id = client.open("mine.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE,
                              disposition=b.FILE_OVERWRITE_IF)
        response = _anonymous_reauth(client)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        assert response.header.session_id == client.session_id
        assert struct.unpack_from("<H", response.body, 2)[0] == 0  # SessionFlags: none, as Samba
        # The handle keeps the access it was opened with.
        assert client.query_info(file_id, b.SMB2_0_INFO_FILE, FILE_POSITION_INFORMATION).status == b.STATUS_SUCCESS
        assert client.write(file_id, 0, b"still mine").status == b.STATUS_SUCCESS
        # New work runs as the anonymous identity (the guest account), which may not write into the user's
        # 0755 share directory.
        assert client.create("anon.txt", desired_access=b.GENERIC_WRITE,
                             disposition=b.FILE_CREATE).status == b.STATUS_ACCESS_DENIED
        response = _user_reauth(client)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        other = client.open("back.txt", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE)
        assert client.close_file(other) == b.STATUS_SUCCESS
        assert client.close_file(file_id) == b.STATUS_SUCCESS


def test_new_anonymous_logon_still_follows_the_policy(smb_server: SmbServer) -> None:
    """Only a re-authentication may become anonymous; without a guest_ok share a new anonymous session is
    refused as before."""
    with b.Client(smb_server.host, smb_server.port).connect() as client:
        assert client.negotiate().status == b.STATUS_SUCCESS
        flags = FLAGS | NTLMSSP_NEGOTIATE_ANONYMOUS
        response = _setup(client, _negotiate_message(flags), 0)
        assert response.status == b.STATUS_MORE_PROCESSING_REQUIRED
        response = _setup(client, _authenticate_message(flags, b"\x00", b""), response.header.session_id)
        assert response.status == b.STATUS_LOGON_FAILURE, b.status_name(response.status)


def _blob(fixed_extra: bytes = b"", pairs: bytes = b"\x00\x00\x00\x00") -> bytes:
    """NTProofStr (16, wrong) + NTLMv2_CLIENT_CHALLENGE: RespType, HiRespType, reserved, time, challenge,
    reserved, then `pairs`."""
    return bytes(16) + struct.pack("<BBHIQ8sI", 1, 1, 0, 0, 0, b"clientch", 0) + fixed_extra + pairs


@pytest.mark.parametrize(("user", "nt_response", "status"), [
    (USER, NETAPP_RESPONSE, b.STATUS_INVALID_PARAMETER),
    ("nobody-known", NETAPP_RESPONSE, b.STATUS_INVALID_PARAMETER),  # malformed before any account is looked at
    (USER, _blob(pairs=struct.pack("<HH", 2, 40) + bytes(10)), b.STATUS_INVALID_PARAMETER),  # AvLen past the end
    (USER, _blob(pairs=b"\x02\x00"), b.STATUS_INVALID_PARAMETER),  # 2 bytes: not even one AV_PAIR header
    (USER, bytes(30), b.STATUS_INVALID_PARAMETER),  # longer than NTLMv1, shorter than the fixed NTLMv2 part
    (USER, _blob(), b.STATUS_LOGON_FAILURE),  # well-formed, wrong proof
    (USER, _blob(pairs=struct.pack("<HH", 2, 4) + b"ABCD" + bytes(4) + b"xy"), b.STATUS_LOGON_FAILURE),
])
def test_malformed_ntlmv2_response(smb_server: SmbServer, user: str, nt_response: bytes, status: int) -> None:
    with b.Client(smb_server.host, smb_server.port).connect() as client:
        assert client.negotiate().status == b.STATUS_SUCCESS
        response = _setup(client, _negotiate_message(FLAGS), 0)
        assert response.status == b.STATUS_MORE_PROCESSING_REQUIRED
        token = _authenticate_message(FLAGS, bytes(24), nt_response, user=user, domain="WORKGROUP")
        response = _setup(client, token, response.header.session_id)
        assert response.status == status, b.status_name(response.status)
