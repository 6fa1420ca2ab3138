"""Preauth integrity hash against Microsoft's published 3.1.1 exchange ([MS-SMB2] 3.3.5.4)."""

import pytest

from smbsrv.crypto import preauth
from smbsrv.crypto.kdf import SMB311_SIGNING_LABEL, derive_key

CHAIN = [
    ("preauth_negotiate_request", "preauth_hash_1"),
    ("preauth_negotiate_response", "preauth_hash_2"),
    ("preauth_session_setup_request_1", "preauth_hash_3"),
    ("preauth_session_setup_response_1", "preauth_hash_4"),
    ("preauth_session_setup_request_2", "preauth_hash_5"),
]


def test_initial_value_is_64_zero_bytes() -> None:
    assert preauth.PREAUTH_INITIAL == b"\x00" * 64


def test_published_hash_chain(ms_vectors: dict[str, bytes]) -> None:
    value = preauth.PREAUTH_INITIAL
    for message_name, expected_name in CHAIN:
        value = preauth.update(value, ms_vectors[message_name])
        assert value == ms_vectors[expected_name], message_name


def test_accepts_views_without_changing_the_result(ms_vectors: dict[str, bytes]) -> None:
    message = ms_vectors["preauth_negotiate_request"]
    framed = bytearray(b"\x00\x00\x00\xae" + message)
    from_view = preauth.update(preauth.PREAUTH_INITIAL, memoryview(framed)[4:])
    assert from_view == ms_vectors["preauth_hash_1"]


def test_signing_key_from_final_hash(ms_vectors: dict[str, bytes]) -> None:
    key = derive_key(ms_vectors["preauth_session_key"], SMB311_SIGNING_LABEL, ms_vectors["preauth_hash_5"])
    assert key == ms_vectors["preauth_signing_key"]


def test_rejects_wrong_hash_size() -> None:
    with pytest.raises(ValueError):
        preauth.update(b"\x00" * 32, b"x")
