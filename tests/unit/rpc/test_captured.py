"""What `smbclient -L` sends, replayed, and our answers checked with Samba's own NDR parser.

The PDUs below were captured on loopback from smbclient 4.17.12 (Debian 12) listing the shares of smbd
4.17.12: the client binds srvsvc and calls NetShareEnumAll (opnum 15) level 1 through FSCTL_PIPE_TRANSCEIVE.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from impacket.dcerpc.v5 import rpcrt

from smbsrv.rpc.srvsvc import ERROR_INVALID_LEVEL, NERR_NetNameNotFound

from .rpc_client import SERVER, SHARES, open_srvsvc

SMBCLIENT_BIND = bytes.fromhex(
    "05000b03100000004800000001000000b810b810000000000100000000000100c84f324b7016d30112785a47bf6ee188"
    "03000000045d888aeb1cc9119fe808002b10486002000000"
)
SMBD_BIND_ACK = bytes.fromhex(
    "05000c03100000004400000001000000b810b810166e00000d005c706970655c73727673766300000100000000000000"
    "045d888aeb1cc9119fe808002b10486002000000"
)
SMBCLIENT_NET_SHARE_ENUM_ALL = bytes.fromhex(
    "05000003100000005c000000020000004400000000000f00000002000a000000000000000a0000003100320037002e00"
    "30002e0030002e00310000000100000001000000040002000000000000000000ffffffff0800020000000000"
)

SAMBA_PYTHON = Path("/usr/bin/python3")
SAMBA_NDR_SCRIPT = Path(__file__).with_name("samba_ndr.py")


def _samba_available() -> bool:
    if not SAMBA_PYTHON.exists() or shutil.which(str(SAMBA_PYTHON)) is None:
        return False
    probe = subprocess.run(
        [str(SAMBA_PYTHON), "-c", "import samba.dcerpc.srvsvc"], capture_output=True, timeout=60, check=False
    )
    return probe.returncode == 0


needs_samba = pytest.mark.skipif(
    not _samba_available(), reason="Samba's Python bindings (python3-samba) missing"
)


def _samba_decode(operation: str, stub: bytes, level: int = 0) -> dict[str, Any]:
    job = json.dumps({"operation": operation, "level": level, "stub": stub.hex()})
    done = subprocess.run(
        [str(SAMBA_PYTHON), str(SAMBA_NDR_SCRIPT)],
        input=job,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _response_stub(pdus: list[bytes]) -> bytes:
    for pdu in pdus:
        assert pdu[2] == rpcrt.MSRPC_RESPONSE
    return b"".join(pdu[24:] for pdu in pdus)


def test_smbclient_bind_gets_the_answer_smbd_gives() -> None:
    pipe = open_srvsvc()
    ours = pipe.transceive(SMBCLIENT_BIND, 4280)
    # Same type, flags, call id, fragment sizes and context result as smbd; the association group id and the
    # secondary address spelling ("\PIPE\srvsvc" as Windows writes it, smbd says "\pipe\srvsvc") may differ.
    assert ours[:4] == SMBD_BIND_ACK[:4]
    assert ours[12:20] == SMBD_BIND_ACK[12:20]
    ours_ack = rpcrt.MSRPCBindAck(ours)
    smbd_ack = rpcrt.MSRPCBindAck(SMBD_BIND_ACK)
    assert ours_ack["SecondaryAddr"].lower() == smbd_ack["SecondaryAddr"]
    assert ours_ack["ctx_items"] == smbd_ack["ctx_items"]


@pytest.mark.parametrize("max_out", [4280, 1024])
def test_smbclient_share_enum_replay(max_out: int) -> None:
    pipe = open_srvsvc()
    pipe.transceive(SMBCLIENT_BIND, 4280)
    first = pipe.transceive(SMBCLIENT_NET_SHARE_ENUM_ALL, max_out)
    # What a client does after STATUS_BUFFER_OVERFLOW: read the rest of the message.
    while pipe.current_message_remaining():
        first += pipe.read(max_out)
    assert struct.unpack_from("<H", first, 8)[0] == len(first)
    assert struct.unpack_from("<I", first, 12)[0] == 2  # call_id of the captured request
    assert first[3] & 3 == 3  # one fragment
    stub = _response_stub([first])
    assert int.from_bytes(stub[-4:], "little") == 0


@needs_samba
def test_samba_ndr_decodes_share_enum_all() -> None:
    pipe = open_srvsvc()
    pipe.write(SMBCLIENT_BIND)
    pipe.read(4280)
    pipe.write(SMBCLIENT_NET_SHARE_ENUM_ALL)
    decoded = _samba_decode("NetShareEnumAll", _response_stub([pipe.read(65536)]))
    assert decoded["werror"] == 0
    assert decoded["level"] == 1
    assert decoded["count"] == decoded["totalentries"] == len(SHARES)
    assert [(s["name"], s["type"], s["comment"]) for s in decoded["shares"]] == [
        (share.name, share.share_type, share.comment) for share in SHARES
    ]
    assert decoded["resume_handle"] == 0


@needs_samba
def test_samba_ndr_decodes_share_enum_all_with_an_unknown_level() -> None:
    # A Samba client marshals a level without an arm as the discriminant alone (its IDL's empty default).
    stub = SMBCLIENT_NET_SHARE_ENUM_ALL[24:]
    container = bytes.fromhex("0100000001000000040002000000000000000000")
    assert stub.count(container) == 1
    stub = stub.replace(container, bytes.fromhex("0700000007000000"))
    decoded = _samba_decode("NetShareEnumAll", _call(15, stub))
    assert decoded["werror"] == ERROR_INVALID_LEVEL
    assert decoded["level"] == 7
    assert decoded["count"] is None


def _call(opnum: int, stub: bytes) -> bytes:
    pipe = open_srvsvc()
    pipe.write(SMBCLIENT_BIND)
    pipe.read(4280)
    request = rpcrt.MSRPCRequestHeader()
    request["call_id"] = 2
    request["op_num"] = opnum
    request["alloc_hint"] = len(stub)
    request["pduData"] = stub
    pipe.write(request.get_packet())
    return _response_stub([pipe.read(65536)])


def _get_info_stub(name: str, level: int) -> bytes:
    units = (name + "\x00").encode("utf-16-le")
    count = len(units) // 2
    body = struct.pack("<I", 0) + struct.pack("<III", count, 0, count) + units
    body += bytes(-len(body) % 4)
    return body + struct.pack("<I", level)


@needs_samba
@pytest.mark.parametrize("level", [0, 1, 2, 501, 502, 1005])
def test_samba_ndr_decodes_share_get_info(level: int) -> None:
    decoded = _samba_decode("NetShareGetInfo", _call(16, _get_info_stub("DATA", level)), level)
    assert decoded["werror"] == 0
    info = decoded["info"]
    if level == 1005:
        assert info["dfs_flags"] == 0
        return
    assert info["name"] == "data"
    if level in (2, 502):
        assert info["path"] == "C:\\srv\\data"
        assert info["max_users"] == 0xFFFFFFFF


@needs_samba
def test_samba_ndr_decodes_share_get_info_errors() -> None:
    missing = _samba_decode("NetShareGetInfo", _call(16, _get_info_stub("nope", 1)), 1)
    assert missing == {"info": None, "werror": NERR_NetNameNotFound}
    bad_level = _samba_decode("NetShareGetInfo", _call(16, _get_info_stub("data", 7)), 7)
    assert bad_level["werror"] == ERROR_INVALID_LEVEL


@needs_samba
@pytest.mark.parametrize("level", [100, 101, 102])
def test_samba_ndr_decodes_server_get_info(level: int) -> None:
    stub = struct.pack("<II", 0, level)
    decoded = _samba_decode("NetSrvGetInfo", _call(21, stub), level)
    assert decoded["werror"] == 0
    assert decoded["info"]["server_name"] == SERVER.server_name
    assert decoded["info"]["platform_id"] == 500
