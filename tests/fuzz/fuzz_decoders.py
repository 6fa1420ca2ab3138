"""Fuzz harness (a): every request decoder of smbsrv/wire/ on one input ([MS-SMB2] 2.2).

The first byte of an input picks the decoder, the rest is the element it decodes (header included, as the
connection hands it over). A decoder may return a request or raise SmbError / ProtocolViolation; any other
exception is a finding, and so is a decoded buffer that is shorter than the length the request declares.

Run with atheris (`python -m tests.fuzz.fuzz_decoders -max_total_time=20`), or without it through
`python -m tests.fuzz.run`, which falls back to a seeded random loop when atheris cannot be imported.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import atheris  # type: ignore[import-untyped]
except ImportError:  # the plain random loop of tests/fuzz/run.py needs none of it
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["smbsrv"]):
        from smbsrv.protocol.errors import ProtocolViolation, SmbError
        from smbsrv.wire import (
            create,
            create_contexts,
            header,
            ioctl,
            lock,
            negotiate,
            query,
            readwrite,
            session_setup,
            simple,
            tree_connect,
        )
else:
    from smbsrv.protocol.errors import ProtocolViolation, SmbError
    from smbsrv.wire import (
        create,
        create_contexts,
        header,
        ioctl,
        lock,
        negotiate,
        query,
        readwrite,
        session_setup,
        simple,
        tree_connect,
    )

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def _chain(element: memoryview) -> Any:
    return create_contexts.decode_chain(element[64:])


def _header(element: memoryview) -> Any:
    # decode_header's contract: the caller has checked that 64 bytes are there.
    return header.decode_header(element) if len(element) >= 64 else None


DECODERS: list[tuple[str, Callable[[memoryview], Any]]] = [
    ("negotiate", negotiate.decode_request), ("session_setup", session_setup.decode_request),
    ("logoff", session_setup.decode_logoff), ("tree_connect", tree_connect.decode_request),
    ("tree_disconnect", tree_connect.decode_disconnect), ("create", create.decode_request),
    ("close", create.decode_close), ("flush", readwrite.decode_flush), ("read", readwrite.decode_read),
    ("write", readwrite.decode_write), ("lock", lock.decode_request), ("ioctl", ioctl.decode_request),
    ("echo", simple.decode_echo), ("query_directory", query.decode_query_directory),
    ("change_notify", query.decode_change_notify), ("query_info", query.decode_query_info),
    ("set_info", query.decode_set_info), ("create_contexts", _chain), ("header", _header),
]
# (attribute, Offset position and format, Length position and format), body-relative ([MS-SMB2] 2.2.x).
_BUFFERS: dict[str, tuple[str, int, str, int, str]] = {
    "session_setup": ("security_buffer", 12, "<H", 14, "<H"), "create": ("name", 44, "<H", 46, "<H"),
    "ioctl": ("input", 24, "<I", 28, "<I"), "query_directory": ("file_name", 24, "<H", 26, "<H"),
    "query_info": ("input_buffer", 8, "<H", 12, "<I"), "set_info": ("buffer", 8, "<H", 4, "<I"),
    "write": ("data", 2, "<H", 4, "<I"),
}


def one_input(data: bytes) -> None:
    if not data:
        return
    name, decode = DECODERS[data[0] % len(DECODERS)]
    element = memoryview(data[1:])
    try:
        decoded = decode(element)
    except (SmbError, ProtocolViolation):
        return
    if name in _BUFFERS and decoded is not None:
        attribute, _, _, length_at, length_fmt = _BUFFERS[name]
        (length,) = struct.unpack_from(length_fmt, element, 64 + length_at)
        handed_out = len(getattr(decoded, attribute))
        if handed_out != length:
            raise AssertionError(f"{name}.{attribute}: {handed_out} bytes handed out, {length} declared")


def seeds() -> Iterator[bytes]:
    """Each captured request (tests/vectors/smb2_*.hex) behind the selector byte of its decoder."""
    names = [name for name, _ in DECODERS]
    for path in sorted(VECTORS.glob("smb2_*.hex")):
        name = path.stem.removeprefix("smb2_")
        if name not in names:
            continue
        lines = path.read_text().splitlines()
        frame = bytes.fromhex("".join(line.strip() for line in lines if not line.startswith("#")))
        yield bytes([names.index(name)]) + frame
        yield bytes([names.index("header")]) + frame


def main() -> None:
    assert atheris is not None, "atheris is not installed: use python -m tests.fuzz.run"
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
