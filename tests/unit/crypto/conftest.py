"""Shared fixtures for the crypto tests: the Microsoft test vectors in tests/vectors/crypto_smb3_ms_vectors.txt."""

import pathlib

import pytest

VECTOR_FILE = pathlib.Path(__file__).parents[2] / "vectors" / "crypto_smb3_ms_vectors.txt"


def load_vectors(path: pathlib.Path = VECTOR_FILE) -> dict[str, bytes]:
    vectors: dict[str, bytes] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(" = ")
        vectors[name] = bytes.fromhex(value)
    return vectors


@pytest.fixture(scope="session")
def ms_vectors() -> dict[str, bytes]:
    return load_vectors()
