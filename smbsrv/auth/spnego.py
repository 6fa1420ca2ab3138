"""SPNEGO tokens, the DER subset we need (RFC 4178 4.2; [MS-SPNG] 2.2 NegTokenInit2; RFC 2743 3.1 framing).

    InitialContextToken ::= [APPLICATION 0] IMPLICIT SEQUENCE { thisMech OID 1.3.6.1.5.5.2, innerToken }
    NegotiationToken    ::= CHOICE { negTokenInit [0] NegTokenInit, negTokenResp [1] NegTokenResp }
    NegTokenInit        ::= SEQUENCE { mechTypes [0] MechTypeList, reqFlags [1] ContextFlags OPTIONAL,
                                       mechToken [2] OCTET STRING OPTIONAL, mechListMIC [3] OCTET STRING OPTIONAL }
    NegTokenInit2       ::= SEQUENCE { mechTypes [0], reqFlags [1], mechToken [2], negHints [3] NegHints,
                                       mechListMIC [4] }      -- the server's hint in the NEGOTIATE response
    NegHints            ::= SEQUENCE { hintName [0] GeneralString OPTIONAL, hintAddress [1] OCTET STRING OPTIONAL }
    NegTokenResp        ::= SEQUENCE { negState [0] ENUMERATED OPTIONAL, supportedMech [1] OID OPTIONAL,
                                       responseToken [2] OCTET STRING OPTIONAL, mechListMIC [3] OCTET STRING OPTIONAL }

Mechanism OIDs are kept as their DER content bytes. The MechTypeList is also kept exactly as received, because
the mechListMIC is computed over those bytes.
"""

import dataclasses
import enum

from smbsrv.auth.errors import AuthError

# DER content bytes of the OIDs we name.
SPNEGO_OID = bytes.fromhex("2b0601050502")  # 1.3.6.1.5.5.2
NTLMSSP_OID = bytes.fromhex("2b06010401823702020a")  # 1.3.6.1.4.1.311.2.2.10

# RFC 4178 4.2.1: "customary" hint name that Windows and Samba put into NegTokenInit2.
HINT_NAME = b"not_defined_in_RFC4178@please_ignore"

_TAG_INTEGER_ENUMERATED = 0x0A
_TAG_OCTET_STRING = 0x04
_TAG_OID = 0x06
_TAG_SEQUENCE = 0x30
_TAG_GENERAL_STRING = 0x1B
_TAG_APPLICATION_0 = 0x60
_TAG_NEG_TOKEN_INIT = 0xA0
_TAG_NEG_TOKEN_RESP = 0xA1


def _context(number: int) -> int:
    return 0xA0 | number  # [n] EXPLICIT, constructed


class NegState(enum.IntEnum):
    ACCEPT_COMPLETED = 0
    ACCEPT_INCOMPLETE = 1
    REJECT = 2
    REQUEST_MIC = 3


# -- DER reading --


def _read_tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Return (tag, content_start, content_end) of the element at `pos`; definite lengths only (DER)."""
    if pos + 2 > end:
        raise AuthError("truncated SPNEGO token")
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise AuthError("bad DER length in SPNEGO token")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise AuthError("SPNEGO element runs past its container")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    children = []
    pos = start
    while pos < end:
        tag, content_start, content_end = _read_tlv(data, pos, end)
        children.append((tag, content_start, content_end))
        pos = content_end
    return children


def _expect(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    found, start, stop = _read_tlv(data, pos, end)
    if found != tag:
        raise AuthError(f"SPNEGO {what}: expected tag {tag:#04x}, found {found:#04x}")
    return start, stop


def _explicit_octet_string(data: bytes, start: int, end: int, what: str) -> bytes:
    inner_start, inner_end = _expect(data, start, end, _TAG_OCTET_STRING, what)
    return data[inner_start:inner_end]


# -- DER writing --


def _tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        header = bytes([tag, length])
    else:
        size = (length.bit_length() + 7) // 8
        header = bytes([tag, 0x80 | size]) + length.to_bytes(size, "big")
    return header + content


def encode_mech_type_list(mech_types: list[bytes]) -> bytes:
    return _tlv(_TAG_SEQUENCE, b"".join(_tlv(_TAG_OID, oid) for oid in mech_types))


# -- tokens --


@dataclasses.dataclass(frozen=True)
class NegTokenInit:
    mech_types: tuple[bytes, ...]
    mech_type_list_der: bytes  # the MechTypeList SEQUENCE as received, input of the mechListMIC
    mech_token: bytes | None
    mech_list_mic: bytes | None


@dataclasses.dataclass(frozen=True)
class NegTokenResp:
    neg_state: NegState | None
    supported_mech: bytes | None
    response_token: bytes | None
    mech_list_mic: bytes | None


def decode_token(token: bytes) -> NegTokenInit | NegTokenResp:
    """Decode a client's SPNEGO token: a framed or bare NegTokenInit, or a NegTokenResp."""
    data = bytes(token)
    end = len(data)
    if not data:
        raise AuthError("empty SPNEGO token")
    if data[0] == _TAG_APPLICATION_0:
        start, stop = _expect(data, 0, end, _TAG_APPLICATION_0, "InitialContextToken")
        oid_start, oid_end = _expect(data, start, stop, _TAG_OID, "thisMech")
        if data[oid_start:oid_end] != SPNEGO_OID:
            raise AuthError("InitialContextToken is not SPNEGO")
        inner_start, inner_end = _expect(data, oid_end, stop, _TAG_NEG_TOKEN_INIT, "negTokenInit")
        return _decode_neg_token_init(data, inner_start, inner_end)
    if data[0] == _TAG_NEG_TOKEN_INIT:
        inner_start, inner_end = _expect(data, 0, end, _TAG_NEG_TOKEN_INIT, "negTokenInit")
        return _decode_neg_token_init(data, inner_start, inner_end)
    if data[0] == _TAG_NEG_TOKEN_RESP:
        inner_start, inner_end = _expect(data, 0, end, _TAG_NEG_TOKEN_RESP, "negTokenResp")
        return _decode_neg_token_resp(data, inner_start, inner_end)
    raise AuthError(f"unknown SPNEGO token tag {data[0]:#04x}")


def _decode_neg_token_init(data: bytes, start: int, end: int) -> NegTokenInit:
    seq_start, seq_end = _expect(data, start, end, _TAG_SEQUENCE, "NegTokenInit")
    mech_types: list[bytes] = []
    mech_type_list_der = b""
    mech_token = None
    mech_list_mic = None
    for tag, content_start, content_end in _children(data, seq_start, seq_end):
        if tag == _context(0):
            list_tag, list_start, list_end = _read_tlv(data, content_start, content_end)
            if list_tag != _TAG_SEQUENCE:
                raise AuthError("SPNEGO mechTypes is not a SEQUENCE")
            mech_type_list_der = data[content_start:list_end]
            for oid_tag, oid_start, oid_end in _children(data, list_start, list_end):
                if oid_tag != _TAG_OID:
                    raise AuthError("SPNEGO mechTypes holds a non-OID")
                mech_types.append(data[oid_start:oid_end])
        elif tag == _context(2):
            mech_token = _explicit_octet_string(data, content_start, content_end, "mechToken")
        elif tag in (_context(3), _context(4)):
            # [3] is mechListMIC in RFC 4178's NegTokenInit but negHints in NegTokenInit2: tell them by content.
            inner_tag = data[content_start] if content_start < content_end else None
            if inner_tag == _TAG_OCTET_STRING:
                mech_list_mic = _explicit_octet_string(data, content_start, content_end, "mechListMIC")
        # [1] reqFlags and anything unknown carry nothing we act on.
    if not mech_types:
        raise AuthError("SPNEGO NegTokenInit without mechTypes")
    return NegTokenInit(tuple(mech_types), mech_type_list_der, mech_token, mech_list_mic)


def _decode_neg_token_resp(data: bytes, start: int, end: int) -> NegTokenResp:
    seq_start, seq_end = _expect(data, start, end, _TAG_SEQUENCE, "NegTokenResp")
    neg_state = None
    supported_mech = None
    response_token = None
    mech_list_mic = None
    for tag, content_start, content_end in _children(data, seq_start, seq_end):
        if tag == _context(0):
            value_start, value_end = _expect(
                data, content_start, content_end, _TAG_INTEGER_ENUMERATED, "negState"
            )
            value = int.from_bytes(data[value_start:value_end], "big")
            try:
                neg_state = NegState(value)
            except ValueError:
                raise AuthError(f"unknown SPNEGO negState {value}") from None
        elif tag == _context(1):
            oid_start, oid_end = _expect(data, content_start, content_end, _TAG_OID, "supportedMech")
            supported_mech = data[oid_start:oid_end]
        elif tag == _context(2):
            response_token = _explicit_octet_string(data, content_start, content_end, "responseToken")
        elif tag == _context(3):
            mech_list_mic = _explicit_octet_string(data, content_start, content_end, "mechListMIC")
    return NegTokenResp(neg_state, supported_mech, response_token, mech_list_mic)


def encode_neg_token_init2(mech_types: list[bytes], hint_name: bytes = HINT_NAME) -> bytes:
    """The server's NegTokenInit2 for the NEGOTIATE response ([MS-SPNG] 2.2.1), framed as InitialContextToken."""
    neg_hints = _tlv(_TAG_SEQUENCE, _tlv(_context(0), _tlv(_TAG_GENERAL_STRING, hint_name)))
    body = _tlv(_context(0), encode_mech_type_list(mech_types)) + _tlv(_context(3), neg_hints)
    inner = _tlv(_TAG_NEG_TOKEN_INIT, _tlv(_TAG_SEQUENCE, body))
    return _tlv(_TAG_APPLICATION_0, _tlv(_TAG_OID, SPNEGO_OID) + inner)


def encode_neg_token_resp(
    neg_state: NegState,
    *,
    supported_mech: bytes | None = None,
    response_token: bytes | None = None,
    mech_list_mic: bytes | None = None,
) -> bytes:
    """A NegTokenResp (RFC 4178 4.2.2); absent fields are left out."""
    body = _tlv(_context(0), _tlv(_TAG_INTEGER_ENUMERATED, bytes([neg_state])))
    if supported_mech is not None:
        body += _tlv(_context(1), _tlv(_TAG_OID, supported_mech))
    if response_token is not None:
        body += _tlv(_context(2), _tlv(_TAG_OCTET_STRING, response_token))
    if mech_list_mic is not None:
        body += _tlv(_context(3), _tlv(_TAG_OCTET_STRING, mech_list_mic))
    return _tlv(_TAG_NEG_TOKEN_RESP, _tlv(_TAG_SEQUENCE, body))
