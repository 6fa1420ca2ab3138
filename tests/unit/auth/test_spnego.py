"""SPNEGO token codec (RFC 4178, [MS-SPNG]), cross-checked against pyspnego's ASN.1 parser."""

import pytest
import spnego
from hypothesis import given
from hypothesis import strategies as st
from spnego._spnego import NegTokenInit as PyNegTokenInit
from spnego._spnego import NegTokenResp as PyNegTokenResp
from spnego._spnego import unpack_token

from smbsrv.auth.errors import AuthError
from smbsrv.auth.spnego import (
    HINT_NAME,
    NTLMSSP_OID,
    NegState,
    NegTokenInit,
    NegTokenResp,
    decode_token,
    encode_neg_token_init2,
    encode_neg_token_resp,
)

NTLMSSP_DOTTED = "1.3.6.1.4.1.311.2.2.10"


def test_negotiate_token_as_pyspnego_reads_it() -> None:
    token = encode_neg_token_init2([NTLMSSP_OID])
    parsed = unpack_token(token)
    assert isinstance(parsed, PyNegTokenInit)
    assert parsed.mech_types == [NTLMSSP_DOTTED]
    assert parsed.hint_name == HINT_NAME
    assert parsed.mech_token is None


def test_negotiate_token_bytes() -> None:
    # Hand-checked DER: [APPLICATION 0] { OID spnego, [0] SEQUENCE { [0] SEQUENCE { OID ntlmssp },
    # [3] SEQUENCE { [0] GeneralString hint } } }
    expected = (
        bytes.fromhex("604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa32a3028a0261b24")
        + HINT_NAME
    )
    assert encode_neg_token_init2([NTLMSSP_OID]) == expected


@pytest.mark.parametrize(
    ("state", "fields"),
    [
        (
            NegState.ACCEPT_INCOMPLETE,
            {"supported_mech": NTLMSSP_OID, "response_token": b"NTLMSSP\x00" + b"x" * 300},
        ),
        (NegState.ACCEPT_COMPLETED, {"mech_list_mic": b"\x01" + b"\x00" * 15}),
        (NegState.ACCEPT_COMPLETED, {}),
        (NegState.REQUEST_MIC, {"supported_mech": NTLMSSP_OID}),
    ],
)
def test_neg_token_resp_round_trip_and_pyspnego(state: NegState, fields: dict[str, bytes]) -> None:
    token = encode_neg_token_resp(state, **fields)
    parsed = unpack_token(token)
    assert isinstance(parsed, PyNegTokenResp)
    assert parsed.neg_state is not None and int(parsed.neg_state) == int(state)
    assert parsed.response_token == fields.get("response_token")
    assert parsed.mech_list_mic == fields.get("mech_list_mic")
    assert (parsed.supported_mech is not None) == ("supported_mech" in fields)
    ours = decode_token(token)
    assert ours == NegTokenResp(
        state, fields.get("supported_mech"), fields.get("response_token"), fields.get("mech_list_mic")
    )


def test_decodes_pyspnego_client_init() -> None:
    client = spnego.client("u", "p", hostname="h", protocol="negotiate")
    token = client.step(encode_neg_token_init2([NTLMSSP_OID]))
    assert token is not None
    message = decode_token(token)
    assert isinstance(message, NegTokenInit)
    assert NTLMSSP_OID in message.mech_types
    assert message.mech_token is not None and message.mech_token.startswith(b"NTLMSSP\x00\x01")
    assert message.mech_type_list_der.startswith(b"\x30")
    assert message.mech_type_list_der in token


def test_bare_neg_token_init_without_gss_framing() -> None:
    framed = encode_neg_token_init2([NTLMSSP_OID])
    bare = framed[framed.index(b"\xa0\x3e") :]
    message = decode_token(bare)
    assert isinstance(message, NegTokenInit) and message.mech_types == (NTLMSSP_OID,)


@pytest.mark.parametrize(
    "token",
    [
        b"",
        b"\x60",
        b"\x60\x05\x06\x03\x2a\x03\x04",  # wrong thisMech OID
        b"\x60\x84\xff\xff\xff\xff",  # length beyond the buffer
        b"\x60\x80\x00\x00",  # indefinite length is not DER
        b"\xa1\x03\x30\x01",  # sequence runs past its container
        b"\xa1\x05\x30\x03\xa0\x01\x0a",  # negState without its value
        b"\xa1\x07\x30\x05\xa0\x03\x0a\x01\x09",  # unknown negState
        b"\xa0\x02\x30\x00",  # NegTokenInit without mechTypes
        b"\x30\x00",
    ],
)
def test_malformed_tokens(token: bytes) -> None:
    with pytest.raises(AuthError):
        decode_token(token)


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_auth_error(data: bytes) -> None:
    try:
        decode_token(data)
    except AuthError:
        pass


@given(st.binary(max_size=100).map(lambda b: b"\x60" + bytes([len(b)]) + b if len(b) < 128 else b"\x60\x00"))
def test_random_framed_bytes_only_raise_auth_error(data: bytes) -> None:
    try:
        decode_token(data)
    except AuthError:
        pass
