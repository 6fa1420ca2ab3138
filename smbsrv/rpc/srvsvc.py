"""The srvsvc interface ([MS-SRVS]) as far as share browsing needs it.

Three operations, all over NDR 2.0 with this package's own NDR reader and writer ([MS-SRVS] 3.1.4):
- NetrShareEnum (opnum 15, [MS-SRVS] 3.1.4.8): levels 0, 1, 2, 501, 502, 503; what `smbclient -L` and
  impacket's listShares() call with level 1;
- NetrShareGetInfo (opnum 16, [MS-SRVS] 3.1.4.10): levels 0, 1, 2, 501, 502, 503, 1005;
- NetrServerGetInfo (opnum 21, [MS-SRVS] 3.1.4.17): levels 100, 101, 102.

Every other opnum faults with nca_s_op_rng_error. Stub data that does not decode faults with
rpc_x_bad_stub_data. Failures the operation defines itself (unknown level, unknown share) come back as the
call's WERROR result, as Windows answers them.
"""

from __future__ import annotations

import enum
import uuid
from typing import TYPE_CHECKING

from smbsrv.rpc.association import RpcFault
from smbsrv.rpc.ndr import NdrError, NdrReader, NdrWriter
from smbsrv.rpc.pdu import NCA_S_OP_RNG_ERROR, RPC_X_BAD_STUB_DATA, SyntaxId

if TYPE_CHECKING:
    from smbsrv.rpc.pipes import PipeServerInfo, ShareEntry

# [MS-SRVS] 1.9: srvsvc, version 3.0.
SRVSVC_SYNTAX = SyntaxId(uuid.UUID("4b324fc8-1670-01d3-1278-5a47bf6ee188"), 3, 0)

OPNUM_NETR_SHARE_ENUM = 15
OPNUM_NETR_SHARE_GET_INFO = 16
OPNUM_NETR_SERVER_GET_INFO = 21

# Share types, [MS-SRVS] 2.2.2.4. The IPC$ share is STYPE_IPC | STYPE_SPECIAL (0x80000003).
STYPE_DISKTREE = 0x00000000
STYPE_PRINTQ = 0x00000001
STYPE_DEVICE = 0x00000002
STYPE_IPC = 0x00000003
STYPE_TEMPORARY = 0x40000000
STYPE_SPECIAL = 0x80000000

# Results ([MS-ERREF] 2.2 Win32 error codes; NERR_NetNameNotFound from [MS-SRVS] 3.1.4.10).
ERROR_SUCCESS = 0
ERROR_INVALID_LEVEL = 0x0000007C
NERR_NetNameNotFound = 0x00000906  # spelled as in [MS-SRVS]

# [MS-SRVS] 2.2.4.24: no limit on concurrent uses.
SHI_USES_UNLIMITED = 0xFFFFFFFF

# [MS-SRVS] 2.2.2.6 and 2.2.2.7, for SERVER_INFO_10x.
PLATFORM_ID_NT = 500
SV_TYPE_WORKSTATION = 0x00000001
SV_TYPE_SERVER = 0x00000002
SV_TYPE_SERVER_NT = 0x00008000
# The version a current Windows server announces (sv101_version_major.minor).
SERVER_VERSION_MAJOR = 10
SERVER_VERSION_MINOR = 0
SV_NODISC = 0xFFFFFFFF  # [MS-SRVS] 2.2.4.42 sv102_disc: no auto-disconnect
SV_VISIBLE = 0


class _Kind(enum.Enum):
    """How one member of an info structure is marshalled."""

    U32 = enum.auto()  # DWORD
    WSTR = enum.auto()  # [string] wchar_t*, a unique pointer
    BYTES = enum.auto()  # [size_is(previous member)] unsigned char*, a unique pointer


_W, _U, _B = _Kind.WSTR, _Kind.U32, _Kind.BYTES

# Member kinds of SHARE_INFO_x, [MS-SRVS] 2.2.4.22 to 2.2.4.29; the level's values below follow this order.
_SHARE_INFO_KINDS: dict[int, tuple[_Kind, ...]] = {
    0: (_W,),  # netname
    1: (_W, _U, _W),  # netname, type, remark
    2: (_W, _U, _W, _U, _U, _U, _W, _W),  # ... permissions, max_uses, current_uses, path, passwd
    501: (_W, _U, _W, _U),  # netname, type, remark, flags
    502: (_W, _U, _W, _U, _U, _U, _W, _W, _U, _B),  # level 2, then reserved, security_descriptor
    503: (
        _W,
        _U,
        _W,
        _U,
        _U,
        _U,
        _W,
        _W,
        _W,
        _U,
        _B,
    ),  # level 2, then servername, reserved, security_descriptor
    1005: (_U,),  # flags
}
_SHARE_ENUM_LEVELS = frozenset((0, 1, 2, 501, 502, 503))
_SHARE_GET_INFO_LEVELS = frozenset((0, 1, 2, 501, 502, 503, 1005))
_SERVER_INFO_LEVELS = frozenset((100, 101, 102))

# The arms of the switched unions, SHARE_ENUM_UNION, SHARE_INFO and SERVER_INFO ([MS-SRVS] 2.2.3.5 to
# 2.2.3.7); every arm is a unique pointer. A level outside these has no arm in [MS-SRVS], while Samba's IDL
# gives the unions an empty default arm: such a level travels as the discriminant alone, in requests from
# Samba clients and in this server's answers (as smbd answers).
_SHARE_ENUM_UNION_ARMS = _SHARE_ENUM_LEVELS
_SHARE_INFO_ARMS = frozenset((0, 1, 2, 501, 502, 503, 1004, 1005, 1006, 1501))
# fmt: off
_SERVER_INFO_ARMS = frozenset((
    100, 101, 102, 103, 502, 503, 599, 1005, 1010, 1016, 1017, 1018, 1107, 1501, 1502, 1503, 1506,
    1510, 1511, 1512, 1513, 1514, 1515, 1516, 1518, 1523, 1528, 1529, 1530, 1533, 1534, 1535, 1536,
    1538, 1539, 1540, 1541, 1542, 1543, 1544, 1545, 1546, 1547, 1548, 1549, 1550,
    1552, 1553, 1554, 1555, 1556,
))
# fmt: on

_Value = int | str | bytes | None


def _windows_path(path: str) -> str:
    """A local path the way Windows clients expect one in shi2_path: "C:\\srv\\data" for "/srv/data"."""
    if path.startswith("/"):
        return "C:" + path.replace("/", "\\")
    return path


def _share_info_values(level: int, share: ShareEntry) -> tuple[_Value, ...]:
    """The members of SHARE_INFO_`level` for one share, in marshalling order."""
    # Share-level permissions are not used (user-level security), so shi2_permissions is 0 like on Windows;
    # current uses are not counted; there is no share password (NULL) and no security descriptor (NULL).
    base: tuple[_Value, ...] = (share.name, share.share_type, share.comment)
    counts: tuple[_Value, ...] = (0, SHI_USES_UNLIMITED, 0, _windows_path(share.path), None)
    if level == 0:
        return (share.name,)
    if level == 1:
        return base
    if level == 2:
        return base + counts
    if level == 501:
        return base + (0,)  # shi501_flags: no client-side caching flags
    if level == 502:
        return base + counts + (0, None)
    if level == 503:
        return base + counts + ("*", 0, None)  # "*": the share belongs to every server name
    return (0,)  # level 1005: shi1005_flags


def _server_info_values(level: int, server: PipeServerInfo) -> tuple[_Value, ...]:
    """The members of SERVER_INFO_`level` ([MS-SRVS] 2.2.4.40 to 2.2.4.42), in marshalling order."""
    if level == 100:
        return (PLATFORM_ID_NT, server.server_name)
    sv_type = SV_TYPE_WORKSTATION | SV_TYPE_SERVER | SV_TYPE_SERVER_NT
    info_101: tuple[_Value, ...] = (
        PLATFORM_ID_NT,
        server.server_name,
        SERVER_VERSION_MAJOR,
        SERVER_VERSION_MINOR,
        sv_type,
        "",  # sv101_comment
    )
    if level == 101:
        return info_101
    # users (no limit), disc, hidden, announce (s), anndelta (ms), licenses, userpath: Windows' defaults.
    return info_101 + (0xFFFFFFFF, SV_NODISC, SV_VISIBLE, 240, 3000, 0, "C:\\")


def _write_scalars(writer: NdrWriter, values: tuple[_Value, ...]) -> None:
    """The fixed part of a structure: DWORDs in place, a referent id (or NULL) for each pointer."""
    for value in values:
        if isinstance(value, int):
            writer.u32(value)
        else:
            writer.pointer(value is not None)


def _write_pointees(writer: NdrWriter, values: tuple[_Value, ...]) -> None:
    """The deferred referents of a structure's pointers, in member order ([C706] 14.3.12.3)."""
    for value in values:
        if isinstance(value, str):
            writer.wide_string(value)
        elif isinstance(value, bytes):
            writer.byte_array(value)


def _write_empty_arm(writer: NdrWriter, level: int, arms: frozenset[int]) -> None:
    """The union arm of a level this server does not answer: a NULL pointer, or nothing without an arm."""
    if level in arms:
        writer.pointer(False)


def _skip_share_info_array(reader: NdrReader, kinds: tuple[_Kind, ...]) -> None:
    """Read past a conformant array of SHARE_INFO_x that a client sent as [in,out] input.

    Clients send an empty container, but the members have to be read to reach the parameters after it.
    Every element costs at least 4 bytes of input, so a huge max_count fails on the data, not on memory.
    """
    count = reader.u32()
    pointer_kinds: list[_Kind] = []
    for _ in range(count):
        for kind in kinds:
            if kind is _Kind.U32:
                reader.u32()
            elif reader.pointer():
                pointer_kinds.append(kind)
    for kind in pointer_kinds:
        if kind is _Kind.WSTR:
            reader.wide_string()
        else:
            reader.byte_array()


class SrvsvcInterface:
    """srvsvc for one pipe open, answering from a snapshot of the server's shares."""

    syntax = SRVSVC_SYNTAX

    def __init__(self, server: PipeServerInfo) -> None:
        self._server = server

    def call(self, opnum: int, stub: bytes) -> bytes:
        if opnum == OPNUM_NETR_SHARE_ENUM:
            operation = self._netr_share_enum
        elif opnum == OPNUM_NETR_SHARE_GET_INFO:
            operation = self._netr_share_get_info
        elif opnum == OPNUM_NETR_SERVER_GET_INFO:
            operation = self._netr_server_get_info
        else:
            raise RpcFault(NCA_S_OP_RNG_ERROR)
        try:
            return operation(NdrReader(stub))
        except NdrError as error:
            raise RpcFault(RPC_X_BAD_STUB_DATA) from error

    def _find_share(self, name: str) -> ShareEntry | None:
        # Share names compare case-insensitively ([MS-SRVS] 3.1.1.1 and 3.1.4.10).
        wanted = name.casefold()
        for share in self._server.shares:
            if share.name.casefold() == wanted:
                return share
        return None

    def _netr_share_enum(self, reader: NdrReader) -> bytes:
        """NetrShareEnum, [MS-SRVS] 3.1.4.8."""
        reader.unique_wide_string()  # ServerName: any name reaching this pipe means this server
        level = reader.u32()  # SHARE_ENUM_STRUCT.Level
        tag = reader.u32()  # the SHARE_ENUM_UNION discriminant
        if tag in _SHARE_ENUM_UNION_ARMS and reader.pointer():  # the SHARE_INFO_x_CONTAINER
            reader.u32()  # EntriesRead
            if reader.pointer():  # Buffer
                _skip_share_info_array(reader, _SHARE_INFO_KINDS[tag])
        reader.u32()  # PreferedMaximumLength: every share fits in one answer, so it is not needed
        has_resume_handle = reader.pointer()
        resume_handle = reader.u32() if has_resume_handle else 0

        writer = NdrWriter()
        writer.u32(level)
        writer.u32(level)
        if level != tag or level not in _SHARE_ENUM_LEVELS:
            _write_empty_arm(writer, level, _SHARE_ENUM_UNION_ARMS)
            writer.u32(0)  # TotalEntries
            error = ERROR_INVALID_LEVEL
        else:
            # The resume handle is the index of the next share; the answer always runs to the end.
            shares = self._server.shares[resume_handle:]
            rows = [_share_info_values(level, share) for share in shares]
            writer.pointer(True)
            writer.u32(len(rows))  # EntriesRead
            writer.pointer(bool(rows))
            if rows:
                writer.u32(len(rows))  # the array's max_count
                for row in rows:
                    _write_scalars(writer, row)
                for row in rows:
                    _write_pointees(writer, row)
            writer.u32(len(rows))  # TotalEntries
            error = ERROR_SUCCESS
        writer.pointer(has_resume_handle)
        if has_resume_handle:
            writer.u32(0)  # 0: the enumeration is complete
        writer.u32(error)
        return writer.getvalue()

    def _netr_share_get_info(self, reader: NdrReader) -> bytes:
        """NetrShareGetInfo, [MS-SRVS] 3.1.4.10."""
        reader.unique_wide_string()  # ServerName
        net_name = reader.wide_string()  # [in, string] WCHAR*: a top-level reference pointer, no referent id
        level = reader.u32()

        writer = NdrWriter()
        writer.u32(level)  # the SHARE_INFO union discriminant
        share = self._find_share(net_name)
        # The level is checked before the name, in the order [MS-SRVS] 3.1.4.10 lists the checks.
        if level not in _SHARE_GET_INFO_LEVELS:
            _write_empty_arm(writer, level, _SHARE_INFO_ARMS)
            writer.u32(ERROR_INVALID_LEVEL)
        elif share is None:
            writer.pointer(False)
            writer.u32(NERR_NetNameNotFound)
        else:
            values = _share_info_values(level, share)
            writer.pointer(True)
            _write_scalars(writer, values)
            _write_pointees(writer, values)
            writer.u32(ERROR_SUCCESS)
        return writer.getvalue()

    def _netr_server_get_info(self, reader: NdrReader) -> bytes:
        """NetrServerGetInfo, [MS-SRVS] 3.1.4.17."""
        reader.unique_wide_string()  # ServerName
        level = reader.u32()

        writer = NdrWriter()
        writer.u32(level)  # the SERVER_INFO union discriminant
        if level not in _SERVER_INFO_LEVELS:
            _write_empty_arm(writer, level, _SERVER_INFO_ARMS)
            writer.u32(ERROR_INVALID_LEVEL)
        else:
            values = _server_info_values(level, self._server)
            writer.pointer(True)
            _write_scalars(writer, values)
            _write_pointees(writer, values)
            writer.u32(ERROR_SUCCESS)
        return writer.getvalue()
