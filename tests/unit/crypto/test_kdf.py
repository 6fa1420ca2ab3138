"""SP800-108 KDF and session key derivation ([MS-SMB2] 3.1.4.2, 3.3.5.5.3)."""

import hashlib
import hmac

import pytest
from smbprotocol.session import Session as SmbprotocolSession

from smbsrv.crypto.kdf import SessionKeys, derive_key, derive_session_keys


def smbprotocol_kdf(key: bytes, label: bytes, context: bytes, length: int = 16) -> bytes:
    # smbprotocol's client-side KDF, an independent implementation to cross-check against; `self` is unused.
    return SmbprotocolSession._smb3kdf(None, key, label, context, length=length)  # type: ignore[arg-type]


def test_derive_key_is_hmac_sha256_over_counter_label_context_length() -> None:
    key = bytes(range(16))
    expected = hmac.new(
        key, b"\x00\x00\x00\x01" + b"Lbl\x00" + b"\x00" + b"Ctx" + b"\x00\x00\x00\x80", hashlib.sha256
    )
    assert derive_key(key, b"Lbl\x00", b"Ctx") == expected.digest()[:16]


def test_derive_key_256_bits_changes_the_length_field() -> None:
    key = bytes(range(16))
    long_key = derive_key(key, b"SMBS2CCipherKey\x00", b"c" * 64, 256)
    assert len(long_key) == 32
    assert long_key[:16] != derive_key(key, b"SMBS2CCipherKey\x00", b"c" * 64, 128)


def test_smb300_published_vectors(ms_vectors: dict[str, bytes]) -> None:
    keys = derive_session_keys(0x0300, ms_vectors["smb300_session_key"], None, 1)
    assert keys.decryption_key == ms_vectors["smb300_c2s_key"]
    assert keys.encryption_key == ms_vectors["smb300_s2c_key"]


def test_smb302_uses_the_same_labels(ms_vectors: dict[str, bytes]) -> None:
    assert derive_session_keys(0x0302, ms_vectors["smb300_session_key"], None, 0) == derive_session_keys(
        0x0300, ms_vectors["smb300_session_key"], None, 1
    )


def test_smb311_published_vectors(ms_vectors: dict[str, bytes]) -> None:
    keys = derive_session_keys(0x0311, ms_vectors["smb311_session_key"], ms_vectors["smb311_preauth_hash"], 2)
    assert keys.decryption_key == ms_vectors["smb311_c2s_key"]
    assert keys.encryption_key == ms_vectors["smb311_s2c_key"]
    signing = derive_session_keys(0x0311, ms_vectors["preauth_session_key"], ms_vectors["preauth_hash_5"], 2)
    assert signing.signing_key == ms_vectors["preauth_signing_key"]


def test_smb30_signing_and_application_keys_match_smbprotocol() -> None:
    session_key = bytes.fromhex("00112233445566778899aabbccddeeff")
    keys = derive_session_keys(0x0300, session_key, None, 0)
    assert keys.signing_key == smbprotocol_kdf(session_key, b"SMB2AESCMAC\x00", b"SmbSign\x00")
    assert keys.application_key == smbprotocol_kdf(session_key, b"SMB2APP\x00", b"SmbRpc\x00")


@pytest.mark.parametrize("cipher_id", [3, 4])
def test_aes256_keys_come_from_the_full_session_key(cipher_id: int) -> None:
    # A Kerberos-sized 32-byte session key: signing uses its first 16 bytes, the AES-256 keys use all of it.
    session_key = bytes(range(32))
    preauth_hash = bytes(range(64))
    keys = derive_session_keys(0x0311, session_key, preauth_hash, cipher_id)
    assert keys.encryption_key == smbprotocol_kdf(session_key, b"SMBS2CCipherKey\x00", preauth_hash, 32)
    assert keys.decryption_key == smbprotocol_kdf(session_key, b"SMBC2SCipherKey\x00", preauth_hash, 32)
    assert keys.signing_key == smbprotocol_kdf(session_key[:16], b"SMBSigningKey\x00", preauth_hash)
    assert keys.application_key == smbprotocol_kdf(session_key[:16], b"SMBAppKey\x00", preauth_hash)


def test_aes128_uses_truncated_key_and_128_bits() -> None:
    session_key = bytes(range(32))
    preauth_hash = bytes(range(64))
    keys = derive_session_keys(0x0311, session_key, preauth_hash, 2)
    assert keys.encryption_key == smbprotocol_kdf(session_key[:16], b"SMBS2CCipherKey\x00", preauth_hash, 16)


def test_smb2x_signs_with_the_padded_session_key() -> None:
    keys = derive_session_keys(0x0210, b"\x01" * 8, None, 0)
    assert keys.signing_key == b"\x01" * 8 + b"\x00" * 8
    assert keys.application_key == keys.signing_key
    assert keys.encryption_key is None and keys.decryption_key is None


def test_311_requires_the_preauth_hash() -> None:
    with pytest.raises(ValueError):
        derive_session_keys(0x0311, b"k" * 16, None, 0)


def test_aes256_refused_before_311() -> None:
    with pytest.raises(ValueError):
        derive_session_keys(0x0300, b"k" * 16, None, 4)


def test_repr_hides_keys() -> None:
    keys = SessionKeys(b"\xaa" * 16, None, None, b"\xbb" * 16)
    assert "aa" not in repr(keys) and "170" not in repr(keys)
