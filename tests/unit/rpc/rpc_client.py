"""Test-side helpers: impacket's DCE/RPC client talking to a NamedPipe through an in-memory transport."""

from __future__ import annotations

import struct
from typing import Any

from impacket.dcerpc.v5 import rpcrt, srvs, transport

from smbsrv.rpc.pipes import NamedPipe, PipeServerInfo, ShareEntry, open_pipe
from smbsrv.rpc.srvsvc import STYPE_DISKTREE, STYPE_IPC, STYPE_SPECIAL

# The transfer syntaxes a client may offer, as impacket spells them.
NDR_SYNTAX = rpcrt.uuidtup_to_bin(("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0"))
NDR64_SYNTAX = rpcrt.uuidtup_to_bin(("71710533-BEBA-4937-8319-B5DBEF9CCC36", "1.0"))
# [MS-RPCE] 3.3.1.5.3: bind time feature negotiation with both features (bitmask 0x03) requested.
BIND_TIME_FEATURES_SYNTAX = rpcrt.uuidtup_to_bin(("6CB71C2C-9812-4540-0300-000000000000", "1.0"))
UNKNOWN_INTERFACE = rpcrt.uuidtup_to_bin(("12345778-1234-ABCD-EF00-0123456789AB", "1.0"))

SHARES = (
    ShareEntry("data", STYPE_DISKTREE, "Team data", "/srv/data"),
    ShareEntry("Public", STYPE_DISKTREE, "Open to everyone", "/srv/public"),
    ShareEntry("IPC$", STYPE_IPC | STYPE_SPECIAL, "IPC Service", ""),
)
SERVER = PipeServerInfo(server_name="SMBSRV", shares=SHARES)


class PipeTransport(transport.DCERPCTransport):  # type: ignore[misc]
    """An impacket transport whose SMB named pipe is a NamedPipe: send() writes, recv() reads one message."""

    def __init__(self, pipe: NamedPipe, read_size: int = 65536) -> None:
        super().__init__("127.0.0.1", 445)
        self.pipe = pipe
        self.read_size = read_size

    def connect(self) -> int:
        return 1

    def disconnect(self) -> int:
        return 1

    def send(self, data: bytes, forceWriteAndx: int = 0, forceRecv: int = 0) -> None:
        self.pipe.write(data)

    def recv(self, forceRecv: int = 0, count: int = 0) -> bytes:
        return self.pipe.read(self.read_size)

    def get_dce_rpc(self) -> rpcrt.DCERPC_v5:
        return rpcrt.DCERPC_v5(self)


def open_srvsvc(server: PipeServerInfo = SERVER) -> NamedPipe:
    pipe = open_pipe("srvsvc", server)
    assert pipe is not None
    return pipe


def bound_dce(server: PipeServerInfo = SERVER) -> Any:
    """An impacket DCERPC_v5 bound to srvsvc on a fresh pipe."""
    dce = PipeTransport(open_srvsvc(server)).get_dce_rpc()
    dce.connect()
    dce.bind(srvs.MSRPC_UUID_SRVS)
    return dce


def context_item(context_id: int, abstract: bytes, *transfer: bytes) -> bytes:
    """One p_cont_elem_t, possibly with several transfer syntaxes (impacket's CtxItem holds just one)."""
    return struct.pack("<HBB", context_id, len(transfer), 0) + abstract + b"".join(transfer)


def bind_pdu(
    items: list[bytes],
    *,
    call_id: int = 1,
    ptype: int = rpcrt.MSRPC_BIND,
    max_xmit_frag: int = 4280,
    max_recv_frag: int = 4280,
    assoc_group: int = 0,
) -> bytes:
    """A bind (or alter_context) PDU built with impacket's header structure."""
    body = struct.pack("<HHIBBH", max_xmit_frag, max_recv_frag, assoc_group, len(items), 0, 0) + b"".join(
        items
    )
    header = rpcrt.MSRPCHeader()
    header["type"] = ptype
    header["call_id"] = call_id
    header["pduData"] = body
    return bytes(header.get_packet())


def request_pdu(opnum: int, stub: bytes, *, call_id: int = 2, ctx_id: int = 0, flags: int = 3) -> bytes:
    """One request fragment built with impacket's request header."""
    request = rpcrt.MSRPCRequestHeader()
    request["flags"] = flags
    request["call_id"] = call_id
    request["ctx_id"] = ctx_id
    request["op_num"] = opnum
    request["alloc_hint"] = len(stub)
    request["pduData"] = stub
    return bytes(request.get_packet())


def read_messages(pipe: NamedPipe) -> list[bytes]:
    """Every queued message, one read each."""
    messages = []
    while pipe.pending_output():
        messages.append(pipe.read(1 << 20))
    return messages


def parse_bind_ack(pdu: bytes) -> Any:
    return rpcrt.MSRPCBindAck(pdu)


def fault_status(pdu: bytes) -> int:
    header = rpcrt.MSRPCRespHeader(pdu)
    assert header["type"] == rpcrt.MSRPC_FAULT
    return int(struct.unpack_from("<I", pdu, 24)[0])
