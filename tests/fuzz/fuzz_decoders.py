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
        from smbsrv.auth import ntlm, spnego
        from smbsrv.auth.errors import AuthError
        from smbsrv.crypto import encryption
        from smbsrv.fscc import duplicate_extents, ea, reparse, security, set_info
        from smbsrv.protocol.errors import ProtocolViolation, SmbError
        from smbsrv.rpc import pipes
        from smbsrv.wire import (
            copychunk,
            create,
            create_contexts,
            header,
            ioctl,
            lock,
            negotiate,
            oplock,
            query,
            readwrite,
            session_setup,
            simple,
            tree_connect,
        )
else:
    from smbsrv.auth import ntlm, spnego
    from smbsrv.auth.errors import AuthError
    from smbsrv.crypto import encryption
    from smbsrv.fscc import duplicate_extents, ea, reparse, security, set_info
    from smbsrv.protocol.errors import ProtocolViolation, SmbError
    from smbsrv.rpc import pipes
    from smbsrv.wire import (
        copychunk,
        create,
        create_contexts,
        header,
        ioctl,
        lock,
        negotiate,
        oplock,
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
_SET_INFO_CLASSES = (4, 10, 11, 13, 14, 15, 16, 19, 20, 64, 65)


def _body(decode: Callable[[memoryview], Any]) -> Callable[[memoryview], Any]:
    """A decoder of a buffer inside a request (no SMB2 header in front): the element past its header."""
    return lambda element: decode(element[64:]) if len(element) >= 64 else None


def _set_info_buffer(element: memoryview) -> Any:
    return set_info.decode(_SET_INFO_CLASSES[element[0] % len(_SET_INFO_CLASSES)], element[1:]) if element else None


def _srvsvc(element: memoryview) -> Any:
    """DCE/RPC bytes written to the srvsvc pipe ([MS-RPCE] 2.2.2, [MS-SRVS] 3.1.4): every answer is read."""
    pipe = pipes.open_pipe("srvsvc", pipes.PipeServerInfo("FUZZ", (
        pipes.ShareEntry("share", 0, "a share", "/srv/share"),
        pipes.ShareEntry("IPC$", 0x80000003, "IPC", ""))))
    assert pipe is not None
    answers = []
    for part in bytes(element).split(b"\xff\xfe\xfd"):  # several writes: fragments and PDUs split anyhow
        pipe.write(part)
        while chunk := pipe.read(4280):
            answers.append(chunk)
    return answers


# Decoders of what a request carries inside its buffers: FSCC structures ([MS-FSCC] 2.1.2, 2.3, 2.4, 2.7),
# security descriptors ([MS-DTYP] 2.4.6), the logon tokens ([RFC 4178], [MS-NLMP] 2.2.1), break
# acknowledgments, copychunk and duplicate-extents inputs, the transform header, and srvsvc over its pipe.
DECODERS += [
    ("oplock_ack", oplock.decode_ack), ("lease_request", _body(lambda data: oplock.decode_lease_request(bytes(data)))),
    ("copychunk", _body(copychunk.decode_copy)), ("duplicate_extents", _body(duplicate_extents.decode)),
    ("duplicate_extents_ex", _body(duplicate_extents.decode_ex)), ("set_info_buffer", _body(_set_info_buffer)),
    ("full_ea_list", _body(ea.decode_full_ea_list)), ("ea_list_to_set", _body(ea.decode_ea_list_to_set)),
    ("get_ea_list", _body(ea.decode_get_ea_list)), ("security_descriptor", _body(security.parse_descriptor)),
    ("reparse", _body(reparse.parse)), ("spnego", _body(lambda data: spnego.decode_token(bytes(data)))),
    ("ntlm_authenticate", _body(lambda data: ntlm.AuthenticateMessage.decode(bytes(data)))),
    ("av_pairs", _body(ntlm.parse_av_pairs)), ("transform", _body(encryption.parse_transform_header)),
    ("durable_v2", _body(lambda data: create_contexts.decode_durable_request_v2(bytes(data)))),
    ("durable_reconnect_v2", _body(lambda data: create_contexts.decode_durable_reconnect_v2(bytes(data)))),
    ("srvsvc", _body(_srvsvc)),
]
# What a decoder may raise besides SmbError and ProtocolViolation: the logon tokens' own refusal, which
# SESSION_SETUP turns into STATUS_LOGON_FAILURE or STATUS_INVALID_PARAMETER.
_REFUSALS: dict[str, tuple[type[Exception], ...]] = {
    "spnego": (AuthError,), "ntlm_authenticate": (AuthError,), "av_pairs": (AuthError,),
}
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
    except (SmbError, ProtocolViolation, *_REFUSALS.get(name, ())):
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
    for name, data in _extra_seeds():
        yield bytes([names.index(name)]) + data


def _extra_seeds() -> Iterator[tuple[str, bytes]]:
    """One well-formed input per buffer decoder, behind a zeroed header where the decoder skips one."""
    head = bytes(64)
    yield "oplock_ack", head + struct.pack("<HBBI16s", 24, 1, 0, 0, bytes(16))
    yield "oplock_ack", head + struct.pack("<HHI16sIQ", 36, 0, 0, b"k" * 16, 3, 0)
    yield "lease_request", head + struct.pack("<16sIIQ16sHH", b"k" * 16, 7, 4, 0, b"p" * 16, 1, 0)
    yield "copychunk", head + bytes(24) + struct.pack("<II", 2, 0) + struct.pack("<QQII", 0, 4096, 4096, 0) * 2
    yield "duplicate_extents", head + struct.pack("<QQQQQ", 1, 2, 0, 4096, 65536)
    yield "duplicate_extents_ex", head + struct.pack("<QQQQQQI4s", 48, 1, 2, 0, 4096, 65536, 0, bytes(4))
    name = "renamed.txt".encode("utf-16-le")
    yield "set_info_buffer", head + bytes([1]) + struct.pack("<B7sQI", 1, bytes(7), 0, len(name)) + name
    yield "set_info_buffer", head + bytes([0]) + struct.pack("<QQQQII", 1, 2, 3, 4, 0x20, 0)
    entry = struct.pack("<IBBH", 0, 0, 4, 5) + b"user\0value"
    yield "full_ea_list", head + entry
    yield "ea_list_to_set", head + entry
    yield "get_ea_list", head + struct.pack("<IB", 0, 4) + b"user\0"
    sid = bytes([1, 2, 0, 0, 0, 0, 0, 5]) + struct.pack("<II", 32, 544)
    ace = struct.pack("<BBHI", 0, 0, 8 + len(sid), 0x1F01FF) + sid
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(ace), 1, 0) + ace
    yield "security_descriptor", head + struct.pack("<BBHIIII", 1, 0, 0x8004, 20, 20 + len(sid), 0,
                                                    20 + 2 * len(sid)) + sid + sid + acl
    target = "dir\\target".encode("utf-16-le")
    data = struct.pack("<HHHHI", 0, len(target), len(target), len(target), 1) + target * 2
    yield "reparse", head + struct.pack("<IHH", 0xA000000C, len(data), 0) + data
    yield "spnego", head + bytes.fromhex("604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa22a04284e544c4d53535000"
                                         "0100000015828862000000000000000000000000000000000a00614a0000000f")
    yield "av_pairs", head + struct.pack("<HH", 2, 8) + "FUZZ".encode("utf-16-le") + struct.pack("<HH", 0, 0)
    cipher = encryption.make_cipher(2, bytes(16), bytes(16))
    yield "transform", head + bytes(cipher.encrypt(7, b"\xfeSMB" + bytes(60)))
    yield "durable_v2", head + struct.pack("<II8s16s", 1000, 0, bytes(8), b"g" * 16)
    yield "durable_reconnect_v2", head + struct.pack("<QQ16sI", 1, 2, b"g" * 16, 0)
    # A DCE/RPC bind to srvsvc 3.0 over NDR, then a NetShareEnumAll request (opnum 15) with a short stub.
    srvsvc = bytes.fromhex("c84f324b7016d30112785a47bf6ee188") + struct.pack("<HH", 3, 0)
    ndr = bytes.fromhex("045d888aeb1cc9119fe808002b104860") + struct.pack("<I", 2)
    bind_body = struct.pack("<HHIBBH", 4280, 4280, 0, 1, 0, 0) + struct.pack("<HBB", 0, 1, 0) + srvsvc + ndr
    bind = struct.pack("<BBBB4sHHI", 5, 0, 11, 3, b"\x10\0\0\0", 16 + len(bind_body), 0, 1) + bind_body
    stub = struct.pack("<I", 0) + struct.pack("<II", 1, 1) + bytes(16)
    request = struct.pack("<BBBB4sHHI", 5, 0, 0, 3, b"\x10\0\0\0", 24 + len(stub), 0, 2) + \
        struct.pack("<IHH", len(stub), 0, 15) + stub
    yield "srvsvc", head + bind + b"\xff\xfe\xfd" + request


def main() -> None:
    assert atheris is not None, "atheris is not installed: use python -m tests.fuzz.run"
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
