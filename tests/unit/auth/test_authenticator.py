"""NTLMv2 logons driven by real client implementations (pyspnego, impacket) against our acceptor."""

import struct

import pytest
import spnego
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from impacket import ntlm as impacket_ntlm

from smbsrv.auth.authenticator import Authenticator, AuthError, AuthExchange
from smbsrv.auth.ntlm import MSV_AV_FLAG_MIC_PRESENT, MsvAvFlags, parse_av_pairs
from smbsrv.auth.spnego import NTLMSSP_OID, NegState, NegTokenResp, decode_token, encode_neg_token_resp
from smbsrv.auth.users import UserDB

from .conftest import PASSWORD

KRB5_OID = bytes.fromhex("2a864886f712010202")  # 1.2.840.113554.1.2.2


def with_policy(users: UserDB, *, guest: bool = False, anonymous: bool = False) -> Authenticator:
    return Authenticator(users, "testsrv", allow_guest=guest, allow_anonymous=anonymous)


def pyspnego_logon(
    authenticator: Authenticator, user: str, password: str, protocol: str, *, send_hint: bool = True
) -> tuple[AuthExchange, spnego.ContextProxy]:
    """Run a whole exchange the way an SMB client would, returning both ends."""
    client = spnego.client(user, password, hostname="testsrv", protocol=protocol)
    exchange = authenticator.new_exchange()
    hint = authenticator.negotiate_token() if protocol == "negotiate" and send_hint else None
    token = client.step(hint)
    while True:
        assert token is not None
        out = exchange.step(token)
        if exchange.complete:
            if out:
                client.step(out)
            return exchange, client
        token = client.step(out)


def ntlm_tokens(user: str, password: str) -> tuple[spnego.ContextProxy, bytes]:
    client = spnego.client(user, password, hostname="testsrv", protocol="ntlm")
    negotiate = client.step()
    assert negotiate is not None
    return client, negotiate


# -- successful logons --


@pytest.mark.parametrize("protocol", ["ntlm", "negotiate"])
def test_correct_password_and_equal_session_keys(authenticator: Authenticator, protocol: str) -> None:
    exchange, client = pyspnego_logon(authenticator, "alice", PASSWORD, protocol)
    result = exchange.result
    assert result.user is not None and result.user.name == "alice"
    assert result.user.unix_user == "nobody" and result.user.uid == 65534
    assert not result.is_guest and not result.is_anonymous
    assert result.session_key is not None and len(result.session_key) == 16
    assert result.session_key == client.session_key
    assert client.complete  # under SPNEGO the client also accepted our mechListMIC


def test_spnego_without_the_negotiate_hint(authenticator: Authenticator) -> None:
    exchange, client = pyspnego_logon(authenticator, "alice", PASSWORD, "negotiate", send_hint=False)
    assert exchange.result.session_key == client.session_key


def test_raw_ntlmssp_in_gets_raw_out_and_spnego_gets_spnego(authenticator: Authenticator) -> None:
    _, negotiate = ntlm_tokens("alice", PASSWORD)
    assert authenticator.new_exchange().step(negotiate).startswith(b"NTLMSSP\x00\x02\x00\x00\x00")
    spnego_client = spnego.client("alice", PASSWORD, hostname="testsrv", protocol="negotiate")
    first = spnego_client.step(authenticator.negotiate_token())
    assert first is not None
    reply = authenticator.new_exchange().step(first)
    message = decode_token(reply)
    assert isinstance(message, NegTokenResp)
    assert message.neg_state is NegState.ACCEPT_INCOMPLETE
    assert message.supported_mech == NTLMSSP_OID
    assert message.response_token is not None and message.response_token.startswith(b"NTLMSSP\x00\x02")


@pytest.mark.parametrize("name", ["ALICE", "Alice", "TESTSRV\\alice", "WORKGROUP\\aLiCe"])
def test_user_names_match_case_insensitively_with_any_domain(authenticator: Authenticator, name: str) -> None:
    exchange, client = pyspnego_logon(authenticator, name, PASSWORD, "ntlm")
    assert exchange.result.user is not None and exchange.result.user.name == "alice"
    assert exchange.result.session_key == client.session_key


@pytest.mark.parametrize("signing_required", [False, True])  # True adds KEY_EXCH
def test_impacket_ntlmv2_client(authenticator: Authenticator, signing_required: bool) -> None:
    exchange = authenticator.new_exchange()
    negotiate = impacket_ntlm.getNTLMSSPType1("WS", "", signingRequired=signing_required, use_ntlmv2=True)
    challenge = exchange.step(negotiate.getData())
    authenticate, exported_session_key = impacket_ntlm.getNTLMSSPType3(
        negotiate, challenge, "alice", PASSWORD, "TESTSRV", use_ntlmv2=True
    )
    assert exchange.step(authenticate.getData()) == b""
    assert exchange.complete
    assert exchange.result.session_key == exported_session_key


# -- refused logons --


@pytest.mark.parametrize("protocol", ["ntlm", "negotiate"])
def test_wrong_password_is_refused(authenticator: Authenticator, protocol: str) -> None:
    with pytest.raises(AuthError) as error:
        pyspnego_logon(authenticator, "alice", "not the password", protocol)
    assert error.value.status.name == "STATUS_LOGON_FAILURE"


def test_another_users_password_is_refused(authenticator: Authenticator) -> None:
    with pytest.raises(AuthError):
        pyspnego_logon(authenticator, "bob", PASSWORD, "ntlm")


@pytest.mark.parametrize("protocol", ["ntlm", "negotiate"])
def test_unknown_user_is_refused(authenticator: Authenticator, protocol: str) -> None:
    with pytest.raises(AuthError):
        pyspnego_logon(authenticator, "mallory", PASSWORD, protocol)


def test_user_without_a_unix_account_is_refused_by_a_root_server(users: UserDB) -> None:
    users.add("ghost", "pw-ghost", unix_user="no-such-unix-account-xyz")
    with pytest.raises(AuthError):
        pyspnego_logon(with_policy(users), "ghost", "pw-ghost", "ntlm")


def test_ntlmv1_is_refused(authenticator: Authenticator) -> None:
    exchange = authenticator.new_exchange()
    negotiate = impacket_ntlm.getNTLMSSPType1("WS", "", use_ntlmv2=False)
    challenge = exchange.step(negotiate.getData())
    authenticate, _ = impacket_ntlm.getNTLMSSPType3(
        negotiate, challenge, "alice", PASSWORD, "", use_ntlmv2=False
    )
    assert len(authenticate["ntlm"]) == 24
    with pytest.raises(AuthError, match="NTLMv1"):
        exchange.step(authenticate.getData())


# -- guest and anonymous --


def test_unknown_user_maps_to_guest_when_allowed(users: UserDB) -> None:
    exchange, _ = pyspnego_logon(with_policy(users, guest=True), "mallory", "whatever", "ntlm")
    result = exchange.result
    assert result.is_guest and not result.is_anonymous
    assert result.user is None and result.session_key is None
    assert result.account_name == "mallory"


def test_unknown_user_maps_to_guest_under_spnego(users: UserDB) -> None:
    # The client sends a mechListMIC we cannot check without its password; a guest logon has no key, so the
    # final answer carries no MIC (as for Samba's map-to-guest).
    exchange, _ = pyspnego_logon(with_policy(users, guest=True), "mallory", "whatever", "negotiate")
    assert exchange.result.is_guest and exchange.result.session_key is None


def test_wrong_password_of_a_known_user_never_becomes_guest(users: UserDB) -> None:
    with pytest.raises(AuthError):
        pyspnego_logon(with_policy(users, guest=True), "alice", "typo", "ntlm")


def impacket_anonymous(authenticator: Authenticator) -> AuthExchange:
    exchange = authenticator.new_exchange()
    negotiate = impacket_ntlm.getNTLMSSPType1("", "", use_ntlmv2=True)
    challenge = exchange.step(negotiate.getData())
    authenticate, _ = impacket_ntlm.getNTLMSSPType3(negotiate, challenge, "", "", "", use_ntlmv2=True)
    assert authenticate["ntlm"] in (b"", "") and authenticate["user_name"] == b""
    exchange.step(authenticate.getData())
    return exchange


def test_anonymous_when_allowed(users: UserDB) -> None:
    exchange = impacket_anonymous(with_policy(users, anonymous=True))
    result = exchange.result
    assert result.is_anonymous and not result.is_guest
    assert result.user is None and result.session_key is None


def test_anonymous_becomes_guest_when_only_guest_is_allowed(users: UserDB) -> None:
    result = impacket_anonymous(with_policy(users, guest=True)).result
    assert result.is_guest and not result.is_anonymous and result.session_key is None


def test_anonymous_refused_by_default(authenticator: Authenticator) -> None:
    with pytest.raises(AuthError, match="anonymous"):
        impacket_anonymous(authenticator)


# -- integrity: the NTLM MIC and the SPNEGO mechListMIC --


def authenticate_for(exchange: AuthExchange, user: str, password: str) -> bytearray:
    client, negotiate = ntlm_tokens(user, password)
    authenticate = client.step(exchange.step(negotiate))
    assert authenticate is not None
    return bytearray(authenticate)


def av_flags_of(authenticate: bytes | bytearray) -> int:
    length, _, offset = struct.unpack_from("<HHI", authenticate, 20)
    av_pairs = parse_av_pairs(authenticate[offset + 16 + 28 : offset + length])
    return int.from_bytes(av_pairs.get(MsvAvFlags, b"\x00\x00\x00\x00"), "little")


def test_pyspnego_sends_an_ntlm_mic(authenticator: Authenticator) -> None:
    authenticate = authenticate_for(authenticator.new_exchange(), "alice", PASSWORD)
    assert av_flags_of(authenticate) & MSV_AV_FLAG_MIC_PRESENT


@pytest.mark.parametrize("offset", [72, 80, 87])
def test_tampered_mic_is_refused(authenticator: Authenticator, offset: int) -> None:
    exchange = authenticator.new_exchange()
    authenticate = authenticate_for(exchange, "alice", PASSWORD)
    authenticate[offset] ^= 0x01
    with pytest.raises(AuthError, match="MIC"):
        exchange.step(bytes(authenticate))


def test_mic_covers_fields_outside_the_ntlmv2_response(authenticator: Authenticator) -> None:
    # The VERSION field (@64) is not part of NTProofStr's input; only the MIC catches a change there.
    exchange = authenticator.new_exchange()
    authenticate = authenticate_for(exchange, "alice", PASSWORD)
    authenticate[64] ^= 0x01
    with pytest.raises(AuthError, match="MIC"):
        exchange.step(bytes(authenticate))


def test_tampered_mech_list_mic_is_refused(authenticator: Authenticator) -> None:
    client = spnego.client("alice", PASSWORD, hostname="testsrv", protocol="negotiate")
    exchange = authenticator.new_exchange()
    first = client.step(authenticator.negotiate_token())
    assert first is not None
    final = client.step(exchange.step(first))
    assert final is not None
    message = decode_token(final)
    assert isinstance(message, NegTokenResp) and message.mech_list_mic is not None
    tampered = bytearray(final)
    checksum_at = final.rindex(message.mech_list_mic) + 4
    tampered[checksum_at] ^= 0x01
    with pytest.raises(AuthError, match="mechListMIC"):
        exchange.step(bytes(tampered))


def kerberos_first_init(mech_token: bytes) -> bytes:
    # A NegTokenInit preferring Kerberos, with an optimistic (fake) Kerberos token, built by hand.
    from smbsrv.auth.spnego import SPNEGO_OID, _tlv, encode_mech_type_list

    mech_types = _tlv(0xA0, encode_mech_type_list([KRB5_OID, NTLMSSP_OID]))
    body = mech_types + _tlv(0xA2, _tlv(0x04, mech_token))
    return _tlv(0x60, _tlv(0x06, SPNEGO_OID) + _tlv(0xA0, _tlv(0x30, body)))


@pytest.mark.parametrize("send_mic", [True, False])
def test_ntlm_as_second_choice_requires_the_mech_list_mic(
    authenticator: Authenticator, send_mic: bool
) -> None:
    exchange = authenticator.new_exchange()
    reply = decode_token(exchange.step(kerberos_first_init(b"\x60\x03\x06\x01\x00")))
    assert isinstance(reply, NegTokenResp)
    assert reply.neg_state is NegState.REQUEST_MIC
    assert reply.supported_mech == NTLMSSP_OID and reply.response_token is None

    client, negotiate = ntlm_tokens("alice", PASSWORD)
    reply = decode_token(
        exchange.step(encode_neg_token_resp(NegState.ACCEPT_INCOMPLETE, response_token=negotiate))
    )
    assert isinstance(reply, NegTokenResp) and reply.response_token is not None
    assert reply.supported_mech is None  # only the first reply names the mechanism
    authenticate = client.step(reply.response_token)
    assert authenticate is not None

    from smbsrv.auth.spnego import encode_mech_type_list

    mech_list = encode_mech_type_list([KRB5_OID, NTLMSSP_OID])
    mic = client.sign(mech_list) if send_mic else None
    final = encode_neg_token_resp(NegState.ACCEPT_INCOMPLETE, response_token=authenticate, mech_list_mic=mic)
    if not send_mic:
        with pytest.raises(AuthError, match="mechListMIC required"):
            exchange.step(final)
        return
    reply = decode_token(exchange.step(final))
    assert isinstance(reply, NegTokenResp) and reply.neg_state is NegState.ACCEPT_COMPLETED
    assert reply.mech_list_mic is not None
    client.verify(mech_list, reply.mech_list_mic)  # raises if our MIC is wrong
    assert exchange.result.session_key == client.session_key


# -- sequencing and malformed input --


def test_authenticate_before_negotiate_is_refused(authenticator: Authenticator) -> None:
    authenticate = authenticate_for(authenticator.new_exchange(), "alice", PASSWORD)
    with pytest.raises(AuthError):
        authenticator.new_exchange().step(bytes(authenticate))


def test_second_negotiate_is_refused(authenticator: Authenticator) -> None:
    exchange = authenticator.new_exchange()
    _, negotiate = ntlm_tokens("alice", PASSWORD)
    exchange.step(negotiate)
    with pytest.raises(AuthError):
        exchange.step(negotiate)


def test_exchange_is_dead_after_success_or_failure(authenticator: Authenticator) -> None:
    exchange, _ = pyspnego_logon(authenticator, "alice", PASSWORD, "ntlm")
    with pytest.raises(AuthError):
        exchange.step(b"NTLMSSP\x00\x03\x00\x00\x00")
    failed = authenticator.new_exchange()
    with pytest.raises(AuthError):
        failed.step(b"\x99garbage")
    with pytest.raises(AuthError):
        failed.step(ntlm_tokens("alice", PASSWORD)[1])


def test_result_before_completion_is_an_error(authenticator: Authenticator) -> None:
    exchange = authenticator.new_exchange()
    assert not exchange.complete
    with pytest.raises(RuntimeError):
        _ = exchange.result


def test_empty_first_buffer_gets_the_mechanism_list(authenticator: Authenticator) -> None:
    exchange = authenticator.new_exchange()
    assert exchange.step(b"") == authenticator.negotiate_token()
    with pytest.raises(AuthError):
        exchange.step(b"")


def test_spnego_without_ntlmssp_is_refused(authenticator: Authenticator) -> None:
    from smbsrv.auth.spnego import SPNEGO_OID, _tlv, encode_mech_type_list

    body = _tlv(0xA0, encode_mech_type_list([KRB5_OID]))
    token = _tlv(0x60, _tlv(0x06, SPNEGO_OID) + _tlv(0xA0, _tlv(0x30, body)))
    with pytest.raises(AuthError, match="NTLMSSP"):
        authenticator.new_exchange().step(token)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_arbitrary_first_tokens_only_raise_auth_error(authenticator: Authenticator, data: bytes) -> None:
    try:
        authenticator.new_exchange().step(data)
    except AuthError:
        pass


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    position=st.integers(min_value=0, max_value=10_000),
    value=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=0, max_value=10_000),
)
def test_mangled_authenticate_only_raises_auth_error(
    authenticator: Authenticator, position: int, value: int, cut: int
) -> None:
    exchange = authenticator.new_exchange()
    authenticate = authenticate_for(exchange, "alice", PASSWORD)
    authenticate[position % len(authenticate)] = value
    mangled = bytes(authenticate[: max(8, len(authenticate) - cut % 64)])
    try:
        exchange.step(mangled)
    except AuthError:
        return
    assert exchange.result.session_key is not None  # an unchanged byte may still leave a valid message
