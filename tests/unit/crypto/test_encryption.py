"""Transform messages ([MS-SMB2] 2.2.41, 3.1.4.3) against Microsoft's vectors, plus round trips and tampering."""

import os
import struct

import pytest

from smbsrv.crypto.encryption import make_cipher, parse_transform_header
from smbsrv.protocol.errors import ProtocolViolation

KEY_SIZES = {1: 16, 2: 16, 3: 32, 4: 32}


def cipher_pair(cipher_id: int):  # type: ignore[no-untyped-def]
    """A server-side cipher and the matching client-side one (keys swapped)."""
    c2s, s2c = os.urandom(KEY_SIZES[cipher_id]), os.urandom(KEY_SIZES[cipher_id])
    return make_cipher(cipher_id, s2c, c2s), make_cipher(cipher_id, c2s, s2c)


@pytest.mark.parametrize(("prefix", "cipher_id"), [("smb300", 1), ("smb311", 2)])
def test_decrypts_published_client_request(ms_vectors: dict[str, bytes], prefix: str, cipher_id: int) -> None:
    server = make_cipher(cipher_id, ms_vectors[f"{prefix}_s2c_key"], ms_vectors[f"{prefix}_c2s_key"])
    session_id, plaintext = server.decrypt(memoryview(ms_vectors[f"{prefix}_c2s_transform"]))
    assert session_id == int.from_bytes(ms_vectors[f"{prefix}_session_id"], "big")
    assert plaintext == ms_vectors[f"{prefix}_c2s_plaintext"]


@pytest.mark.parametrize(("prefix", "cipher_id"), [("smb300", 1), ("smb311", 2)])
def test_reproduces_published_server_response(
    ms_vectors: dict[str, bytes], prefix: str, cipher_id: int
) -> None:
    server = make_cipher(cipher_id, ms_vectors[f"{prefix}_s2c_key"], ms_vectors[f"{prefix}_c2s_key"])
    expected = ms_vectors[f"{prefix}_s2c_transform"]
    session_id = int.from_bytes(ms_vectors[f"{prefix}_session_id"], "big")
    # Reuse the published nonce through the private hook; encrypt() itself never takes a nonce from outside.
    transform = server._seal(session_id, ms_vectors[f"{prefix}_s2c_plaintext"], expected[20:36])
    assert bytes(transform) == expected


@pytest.mark.parametrize("cipher_id", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [0, 1, 64, 4099, 8 << 20])
def test_round_trip(cipher_id: int, size: int) -> None:
    server, client = cipher_pair(cipher_id)
    message = os.urandom(size)
    transform = server.encrypt(0x1000000000025, memoryview(message))
    assert len(transform) == 52 + size
    header = parse_transform_header(transform)
    assert header.session_id == 0x1000000000025
    assert header.original_message_size == size
    assert header.flags == 1
    assert transform[:4] == b"\xfdSMB"
    session_id, plaintext = client.decrypt(memoryview(transform))
    assert session_id == 0x1000000000025
    assert plaintext == message


@pytest.mark.parametrize("cipher_id", [1, 2, 3, 4])
def test_nonces_never_repeat_and_fit_the_cipher(cipher_id: int) -> None:
    server, _ = cipher_pair(cipher_id)
    used = 11 if cipher_id in (1, 3) else 12
    nonces = [parse_transform_header(server.encrypt(1, b"x" * 70)).nonce for _ in range(2000)]
    assert len(set(nonces)) == len(nonces)
    assert all(nonce[used:] == bytes(16 - used) for nonce in nonces)


def test_two_ciphers_with_one_key_draw_different_nonces() -> None:
    key = os.urandom(16)
    first = parse_transform_header(make_cipher(2, key, key).encrypt(1, b"m")).nonce
    second = parse_transform_header(make_cipher(2, key, key).encrypt(1, b"m")).nonce
    assert first != second


TAMPER_OFFSETS = [4, 19, 20, 31, 36, 40, 42, 44, 51, 52, 60, 99]


@pytest.mark.parametrize("cipher_id", [1, 2, 3, 4])
@pytest.mark.parametrize("offset", TAMPER_OFFSETS)
def test_any_changed_byte_is_detected(cipher_id: int, offset: int) -> None:
    server, client = cipher_pair(cipher_id)
    transform = server.encrypt(5, os.urandom(48))
    transform[offset] ^= 0x01
    with pytest.raises(ProtocolViolation):
        client.decrypt(memoryview(transform))


def test_wrong_key_is_detected() -> None:
    server, _ = cipher_pair(2)
    stranger = make_cipher(2, os.urandom(16), os.urandom(16))
    with pytest.raises(ProtocolViolation):
        stranger.decrypt(server.encrypt(1, b"secret" * 20))


def test_own_output_does_not_decrypt_with_own_decryption_key() -> None:
    server, _ = cipher_pair(4)
    with pytest.raises(ProtocolViolation):
        server.decrypt(server.encrypt(1, b"reflected message"))


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\xfdSMB" + bytes(47),
        b"\xfeSMB" + bytes(48 + 16),
    ],
)
def test_malformed_headers(bad: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        parse_transform_header(bad)
    with pytest.raises(ProtocolViolation):
        cipher_pair(2)[0].decrypt(bad)


def test_truncated_and_extended_messages_are_refused() -> None:
    server, client = cipher_pair(2)
    transform = server.encrypt(3, os.urandom(100))
    with pytest.raises(ProtocolViolation):
        client.decrypt(transform[:-1])
    with pytest.raises(ProtocolViolation):
        client.decrypt(transform + b"\x00")


def test_flags_other_than_encrypted_are_refused() -> None:
    server, client = cipher_pair(2)
    transform = server.encrypt(3, os.urandom(100))
    struct.pack_into("<H", transform, 42, 0)
    with pytest.raises(ProtocolViolation):
        client.decrypt(transform)


def test_key_sizes_are_checked() -> None:
    with pytest.raises(ValueError):
        make_cipher(4, os.urandom(16), os.urandom(16))
    with pytest.raises(ValueError):
        make_cipher(1, os.urandom(32), os.urandom(32))
    with pytest.raises(ValueError):
        make_cipher(9, os.urandom(16), os.urandom(16))
