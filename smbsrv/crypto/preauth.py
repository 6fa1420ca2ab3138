"""SMB 3.1.1 preauthentication integrity hash ([MS-SMB2] 3.3.5.4, 3.3.5.5; 2.2.3.1.1).

H starts as 64 zero bytes and becomes SHA-512(H ‖ message) for each NEGOTIATE / SESSION_SETUP message, taken
without the 4-byte Direct TCP prefix. The connection folds in NEGOTIATE request and response; each session
starts from the connection's value and folds in its SESSION_SETUP requests and every response except the
final STATUS_SUCCESS one.
"""

import hashlib

PREAUTH_INITIAL = bytes(64)


def update(hash_value: bytes, message: bytes | bytearray | memoryview) -> bytes:
    """Return SHA-512(hash_value ‖ message) ([MS-SMB2] 3.3.5.4)."""
    if len(hash_value) != 64:
        raise ValueError("preauth integrity hash values are 64 bytes (SHA-512)")
    digest = hashlib.sha512(hash_value)
    digest.update(message)  # a view is hashed in place; SESSION_SETUP messages are never copied here
    return digest.digest()
