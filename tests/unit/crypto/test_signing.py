"""SMB2 signing ([MS-SMB2] 3.1.4.1), cross-checked against smbprotocol's client-side signer."""

import os
import struct
import types

import pytest
from smbprotocol.connection import Connection as SmbprotocolConnection

from smbsrv.crypto.signing import (
    AesCmacSigner,
    AesGmacSigner,
    HmacSha256Signer,
    gmac_nonce,
    make_signer,
)

KEY = bytes.fromhex("73fe7a9a77bef0bde49c650d8ccb5f76")
HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")


def build_message(
    *,
    command: int = 0x05,
    flags: int = 0,
    message_id: int = 7,
    body: bytes = b"",
    signature: bytes = b"\x00" * 16,
) -> bytearray:
    header = HEADER.pack(
        b"\xfeSMB", 64, 1, 0, command, 1, flags, 0, message_id, 0, 1, 0x1122334455667788, signature
    )
    return bytearray(header + body)


def smbprotocol_signature(dialect: int, algorithm_id: int | None, message: bytes) -> bytes:
    # smbprotocol's Connection._generate_signature only reads these two attributes of the connection.
    fake_connection = types.SimpleNamespace(dialect=dialect, signing_algorithm_id=algorithm_id)
    (flags,) = struct.unpack_from("<I", message, 16)
    (command,) = struct.unpack_from("<H", message, 12)
    (message_id,) = struct.unpack_from("<Q", message, 24)
    generate = SmbprotocolConnection._generate_signature
    return generate(fake_connection, message, KEY, message_id, bool(flags & 1), command)  # type: ignore[arg-type]


CASES = [
    (0x0202, None, HmacSha256Signer),
    (0x0210, None, HmacSha256Signer),
    (0x0300, None, AesCmacSigner),
    (0x0302, None, AesCmacSigner),
    (0x0311, None, AesCmacSigner),
    (0x0311, 0, HmacSha256Signer),
    (0x0311, 1, AesCmacSigner),
    (0x0311, 2, AesGmacSigner),
]


@pytest.mark.parametrize(("dialect", "algorithm_id", "signer_type"), CASES)
def test_algorithm_choice(dialect: int, algorithm_id: int | None, signer_type: type) -> None:
    assert type(make_signer(dialect, algorithm_id, KEY)) is signer_type


def test_pre_311_dialects_ignore_a_signing_algorithm_id() -> None:
    assert type(make_signer(0x0300, 2, KEY)) is AesCmacSigner
    assert type(make_signer(0x0210, 1, KEY)) is HmacSha256Signer


def test_unknown_algorithm_id_is_refused() -> None:
    with pytest.raises(ValueError):
        make_signer(0x0311, 7, KEY)


@pytest.mark.parametrize(("dialect", "algorithm_id", "signer_type"), CASES)
@pytest.mark.parametrize(("flags", "command"), [(0x1, 0x05), (0x0, 0x05), (0x0, 0x0C), (0x3, 0x0C)])
def test_signature_matches_smbprotocol(
    dialect: int, algorithm_id: int | None, signer_type: type, flags: int, command: int
) -> None:
    message = build_message(command=command, flags=flags, message_id=0x1234, body=os.urandom(97))
    make_signer(dialect, algorithm_id, KEY).sign(message)
    (signed_flags,) = struct.unpack_from("<I", message, 16)
    assert signed_flags == flags | 0x8
    assert bytes(message[48:64]) == smbprotocol_signature(dialect, algorithm_id, bytes(message))


def test_gmac_nonce_layout() -> None:
    request = memoryview(build_message(flags=0, message_id=0x0102030405060708))
    assert gmac_nonce(request) == bytes.fromhex("0807060504030201") + b"\x00\x00\x00\x00"
    response = memoryview(build_message(flags=0x1 | 0x8, message_id=5))
    assert gmac_nonce(response) == (5).to_bytes(8, "little") + b"\x01\x00\x00\x00"
    cancel = memoryview(build_message(command=0x0C, flags=0x2, message_id=9))
    assert gmac_nonce(cancel) == (9).to_bytes(8, "little") + b"\x02\x00\x00\x00"
    cancel_response = memoryview(build_message(command=0x0C, flags=0x1, message_id=9))
    assert gmac_nonce(cancel_response) == (9).to_bytes(8, "little") + b"\x03\x00\x00\x00"


def test_gmac_signature_depends_on_the_direction() -> None:
    signer = make_signer(0x0311, 2, KEY)
    request = build_message(flags=0, body=b"x" * 10)
    response = build_message(flags=0, body=b"x" * 10)
    struct.pack_into("<I", response, 16, 1)
    signer.sign(request)
    signer.sign(response)
    assert request[48:64] != response[48:64]


@pytest.mark.parametrize(("dialect", "algorithm_id", "signer_type"), CASES)
def test_verify_accepts_and_leaves_the_buffer_alone(
    dialect: int, algorithm_id: int | None, signer_type: type
) -> None:
    signer = make_signer(dialect, algorithm_id, KEY)
    message = build_message(flags=0x1, body=os.urandom(200))
    signer.sign(message)
    received = bytes(message)
    assert signer.verify(message)
    assert signer.verify(memoryview(received))  # read-only buffers work too
    assert bytes(message) == received


@pytest.mark.parametrize(("dialect", "algorithm_id", "signer_type"), CASES)
@pytest.mark.parametrize("offset", [0, 12, 16, 24, 40, 48, 63, 64, 150])
def test_verify_rejects_any_changed_byte(
    dialect: int, algorithm_id: int | None, signer_type: type, offset: int
) -> None:
    signer = make_signer(dialect, algorithm_id, KEY)
    message = build_message(body=os.urandom(100))
    signer.sign(message)
    message[offset] ^= 0x40
    assert not signer.verify(message)


def test_verify_with_the_wrong_key_fails() -> None:
    message = build_message(body=b"hello")
    make_signer(0x0311, 1, KEY).sign(message)
    assert not make_signer(0x0311, 1, bytes(16)).verify(message)


def test_signature_field_is_ignored_when_signing() -> None:
    signer = make_signer(0x0300, None, KEY)
    clean = build_message(body=b"abc")
    dirty = build_message(body=b"abc", signature=b"\xff" * 16)
    signer.sign(clean)
    signer.sign(dirty)
    assert clean == dirty


def test_short_messages() -> None:
    signer = make_signer(0x0300, None, KEY)
    assert not signer.verify(b"\xfeSMB" + bytes(40))
    with pytest.raises(ValueError):
        signer.sign(bytearray(63))


def test_signs_one_compound_element_in_place() -> None:
    # Two elements in one buffer; only the second one is handed to the signer.
    first = build_message(body=b"A" * 8)
    second = build_message(message_id=8, body=b"B" * 8)
    chain = bytearray(first + second)
    signer = make_signer(0x0311, 2, KEY)
    signer.sign(memoryview(chain)[len(first) :])
    assert chain[: len(first)] == first
    assert signer.verify(memoryview(chain)[len(first) :])
    assert not signer.verify(chain)  # the first element was never signed


@pytest.mark.parametrize("algorithm_id", [0, 1, 2])
def test_eight_mebibyte_message(algorithm_id: int) -> None:
    signer = make_signer(0x0311, algorithm_id, KEY)
    message = build_message(flags=1, body=os.urandom(8 << 20))
    signer.sign(message)
    assert bytes(message[48:64]) == smbprotocol_signature(0x0311, algorithm_id, bytes(message))
    assert signer.verify(message)


@pytest.mark.parametrize("algorithm_id", [0, 1, 2])
@pytest.mark.parametrize("piece", [1, 1000, 65536, 300_000])
def test_signature_fed_in_pieces_matches(algorithm_id: int, piece: int) -> None:
    signer = make_signer(0x0311, algorithm_id, KEY)
    message = build_message(body=os.urandom(700_000))
    signer.sign(message)
    view = memoryview(message)
    running = signer.begin(view[:64])
    for start in range(64, len(message), piece):
        running.update(view[start:start + piece])
    computed = running.finish()
    assert computed == bytes(message[48:64])
    assert signer.verify(message, computed)
    assert not signer.verify(message, bytes(16))
