"""SESSION_SETUP authentication: security buffer in, security buffer out ([MS-SMB2] 3.3.5.5.3; [MS-SPNG]; [MS-NLMP]).

Why our own acceptor and not pyspnego's `spnego.server`: pyspnego reads credentials only from the file named by
the NTLM_USER_FILE environment variable (one process-wide file, plaintext passwords or smbpasswd lines) and knows
no guest mapping, anonymous policy or Unix identity. The server needs per-server user databases holding NT hashes,
map-to-guest, and raw NTLMSSP next to SPNEGO. So the messages and the state machine are written here
(smbsrv.auth.ntlm, smbsrv.auth.spnego) and all cryptography comes from `cryptography`.

Framing follows the client:
- a token starting "NTLMSSP\\0" is raw NTLMSSP (cifs.ko's default `sec=ntlmssp`), answered in raw NTLMSSP;
- a token starting 0x60 (InitialContextToken), 0xA0 (bare NegTokenInit) or 0xA1 (NegTokenResp) is SPNEGO,
  answered with NegTokenResp: accept-incomplete carrying the CHALLENGE, then accept-completed.

mechListMIC (RFC 4178 5, as Windows and Samba do it): when the client's final NegTokenResp carries a mechListMIC
and the logon produced a session key, it is checked against the client's MechTypeList and our own mechListMIC is
returned with accept-completed. When NTLMSSP was not the client's first choice, the first reply says request-mic
and the MIC becomes mandatory (downgrade protection). Guest and anonymous logons have no key, so no MIC either way.
"""

import dataclasses
import enum

from smbsrv.auth import spnego
from smbsrv.auth.errors import AuthError
from smbsrv.auth.ntlm import NTLMSSP_SIGNATURE, NtlmAcceptor, NtlmOutcome, NtlmState, TargetNames
from smbsrv.auth.spnego import NTLMSSP_OID, NegState, NegTokenInit, NegTokenResp
from smbsrv.auth.users import User, UserDB

__all__ = ["AuthError", "AuthExchange", "AuthResult", "Authenticator"]


@dataclasses.dataclass(frozen=True)
class AuthResult:
    """The outcome of a completed exchange. session_key is None for guest and anonymous logons."""

    user: User | None
    is_guest: bool
    is_anonymous: bool
    session_key: bytes | None = dataclasses.field(repr=False)
    account_name: str = ""  # the name the client presented, for logs
    domain_name: str = ""


class _Framing(enum.Enum):
    RAW_NTLMSSP = 1
    SPNEGO = 2


class Authenticator:
    """Per-server authentication policy; hands out one AuthExchange per SESSION_SETUP sequence."""

    def __init__(
        self, users: UserDB, server_name: str, allow_guest: bool, allow_anonymous: bool = False
    ) -> None:
        self.users = users
        self.server_name = server_name
        self.allow_guest = allow_guest
        self.allow_anonymous = allow_anonymous
        self._names = TargetNames.for_server(server_name)
        # Kerberos is not offered: listing only NTLMSSP keeps clients from sending optimistic Kerberos tokens.
        self._negotiate_token = spnego.encode_neg_token_init2([NTLMSSP_OID])

    def negotiate_token(self) -> bytes:
        """The SPNEGO NegTokenInit2 for the NEGOTIATE response's security buffer ([MS-SMB2] 3.3.5.4)."""
        return self._negotiate_token

    def new_exchange(self, *, reauthentication: bool = False) -> "AuthExchange":
        """`reauthentication`: the exchange re-authenticates a valid session ([MS-SMB2] 3.3.5.5.3). An anonymous
        logon is then accepted whatever the policy, as Samba 4.17 accepts it (smbtorture smb2.session.reauth2/3):
        it can only lower what the session holds (its handles keep the access granted when they were opened,
        later requests act as the guest account), while a new anonymous session still follows the policy."""
        acceptor = NtlmAcceptor(
            self.users, self._names, allow_guest=self.allow_guest,
            allow_anonymous=self.allow_anonymous or reauthentication,
        )
        return AuthExchange(acceptor, self._negotiate_token)


class AuthExchange:
    """One authentication exchange: feed each SESSION_SETUP security buffer to step().

    step() returns the security buffer of the response. When `complete` turns True the logon succeeded and
    `result` is set (the response status is then STATUS_SUCCESS, otherwise STATUS_MORE_PROCESSING_REQUIRED).
    A refused logon raises AuthError; the exchange is then finished and further steps raise too.
    """

    def __init__(self, acceptor: NtlmAcceptor, negotiate_token: bytes) -> None:
        self._ntlm = acceptor
        self._negotiate_token = negotiate_token
        self._framing: _Framing | None = None
        self._mech_type_list_der: bytes | None = None
        self._mic_required = False
        self._supported_mech_sent = False
        self._negotiate_token_resent = False
        self._failed = False
        self._result: AuthResult | None = None

    @property
    def complete(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> AuthResult:
        if self._result is None:
            raise RuntimeError("authentication exchange is not complete")
        return self._result

    def step(self, token: bytes) -> bytes:
        if self._failed or self._result is not None:
            raise AuthError("authentication exchange already finished")
        try:
            return self._step(bytes(token))
        except AuthError:
            self._failed = True
            raise

    def _step(self, token: bytes) -> bytes:
        if self._framing is None:
            if not token:
                # An empty first buffer asks for the mechanism list again, as Samba answers it.
                if self._negotiate_token_resent:
                    raise AuthError("empty security buffer")
                self._negotiate_token_resent = True
                return self._negotiate_token
            if token.startswith(NTLMSSP_SIGNATURE):
                self._framing = _Framing.RAW_NTLMSSP
            elif token[0] in (0x60, 0xA0, 0xA1):
                self._framing = _Framing.SPNEGO
            else:
                raise AuthError(f"unrecognised security buffer (first byte {token[0]:#04x})")
        if self._framing is _Framing.RAW_NTLMSSP:
            return self._step_raw(token)
        return self._step_spnego(token)

    # -- raw NTLMSSP --

    def _step_raw(self, token: bytes) -> bytes:
        if self._ntlm.state is NtlmState.EXPECT_NEGOTIATE:
            return self._ntlm.accept_negotiate(token)
        outcome = self._ntlm.accept_authenticate(token)
        self._finish(outcome)
        return b""

    # -- SPNEGO --

    def _step_spnego(self, token: bytes) -> bytes:
        message = spnego.decode_token(token)
        if isinstance(message, NegTokenInit):
            return self._on_neg_token_init(message)
        return self._on_neg_token_resp(message)

    def _on_neg_token_init(self, message: NegTokenInit) -> bytes:
        if self._mech_type_list_der is not None or self._ntlm.state is not NtlmState.EXPECT_NEGOTIATE:
            raise AuthError("second SPNEGO NegTokenInit in one exchange")
        if NTLMSSP_OID not in message.mech_types:
            raise AuthError("client offers no mechanism we support (NTLMSSP only)")
        self._mech_type_list_der = message.mech_type_list_der
        preferred = message.mech_types[0] == NTLMSSP_OID
        self._supported_mech_sent = True
        if preferred and message.mech_token and message.mech_token.startswith(NTLMSSP_SIGNATURE):
            challenge = self._ntlm.accept_negotiate(message.mech_token)
            return spnego.encode_neg_token_resp(
                NegState.ACCEPT_INCOMPLETE, supported_mech=NTLMSSP_OID, response_token=challenge
            )
        # The optimistic token (if any) is for another mechanism. Select NTLMSSP and let the client start it;
        # RFC 4178 5 then asks for the MIC exchange, since the client's preferred mechanism was passed over.
        self._mic_required = not preferred
        state = NegState.REQUEST_MIC if self._mic_required else NegState.ACCEPT_INCOMPLETE
        return spnego.encode_neg_token_resp(state, supported_mech=NTLMSSP_OID)

    def _on_neg_token_resp(self, message: NegTokenResp) -> bytes:
        if message.neg_state is NegState.REJECT:
            raise AuthError("client rejected the negotiation")
        inner = message.response_token
        if not inner:
            raise AuthError("SPNEGO NegTokenResp without a responseToken")
        if message.supported_mech is not None and message.supported_mech != NTLMSSP_OID:
            raise AuthError("client selected a mechanism other than NTLMSSP")

        if self._ntlm.state is NtlmState.EXPECT_NEGOTIATE:
            challenge = self._ntlm.accept_negotiate(inner)
            supported_mech = None if self._supported_mech_sent else NTLMSSP_OID
            self._supported_mech_sent = True
            return spnego.encode_neg_token_resp(
                NegState.ACCEPT_INCOMPLETE, supported_mech=supported_mech, response_token=challenge
            )

        outcome = self._ntlm.accept_authenticate(inner)
        mic_out = None
        if outcome.session_key is not None:
            if message.mech_list_mic is not None:
                mech_list = self._mech_type_list_der
                if mech_list is None:
                    # The client skipped NegTokenInit, so the mechanism list was implicitly just NTLMSSP.
                    mech_list = spnego.encode_mech_type_list([NTLMSSP_OID])
                if not self._ntlm.verify(mech_list, message.mech_list_mic):
                    raise AuthError(f"SPNEGO mechListMIC mismatch for {outcome.account_name!r}")
                mic_out = self._ntlm.sign(mech_list)
            elif self._mic_required:
                raise AuthError("SPNEGO mechListMIC required but missing")
        self._finish(outcome)
        return spnego.encode_neg_token_resp(NegState.ACCEPT_COMPLETED, mech_list_mic=mic_out)

    def _finish(self, outcome: NtlmOutcome) -> None:
        self._result = AuthResult(
            user=outcome.user,
            is_guest=outcome.is_guest,
            is_anonymous=outcome.is_anonymous,
            session_key=outcome.session_key,
            account_name=outcome.account_name,
            domain_name=outcome.domain_name,
        )
