"""srvsvc through impacket's client ([MS-SRVS] 3.1.4.8, 3.1.4.10, 3.1.4.17)."""

from __future__ import annotations

import pytest
from impacket.dcerpc.v5 import srvs
from impacket.dcerpc.v5.dtypes import NULL
from impacket.dcerpc.v5.rpcrt import DCERPCException

from smbsrv.rpc.pipes import PipeServerInfo, ShareEntry
from smbsrv.rpc.srvsvc import (
    ERROR_INVALID_LEVEL,
    PLATFORM_ID_NT,
    STYPE_DISKTREE,
    STYPE_IPC,
    STYPE_SPECIAL,
    NERR_NetNameNotFound,
)

from .rpc_client import SERVER, SHARES, bound_dce


def _names(entries: list[dict[str, object]], field: str) -> list[object]:
    return [entry[field] for entry in entries]


def test_share_enum_level_1_lists_every_share_with_type_and_comment() -> None:
    dce = bound_dce()
    response = srvs.hNetrShareEnum(dce, 1)
    container = response["InfoStruct"]["ShareInfo"]["Level1"]
    assert response["InfoStruct"]["Level"] == 1
    assert container["EntriesRead"] == len(SHARES)
    assert response["TotalEntries"] == len(SHARES)
    entries = container["Buffer"]
    assert _names(entries, "shi1_netname") == [share.name + "\x00" for share in SHARES]
    assert _names(entries, "shi1_type") == [STYPE_DISKTREE, STYPE_DISKTREE, STYPE_IPC | STYPE_SPECIAL]
    assert _names(entries, "shi1_remark") == [share.comment + "\x00" for share in SHARES]
    assert response["ResumeHandle"] == 0
    assert response["ErrorCode"] == 0


@pytest.mark.parametrize("level", [0, 2, 501, 502])
def test_share_enum_other_levels(level: int) -> None:
    dce = bound_dce()
    response = srvs.hNetrShareEnum(dce, level)
    entries = response["InfoStruct"]["ShareInfo"][f"Level{level}"]["Buffer"]
    assert _names(entries, f"shi{level}_netname") == [share.name + "\x00" for share in SHARES]
    if level in (2, 502):
        assert entries[0][f"shi{level}_path"] == "C:\\srv\\data\x00"
        assert entries[0][f"shi{level}_max_uses"] == 0xFFFFFFFF


def test_share_enum_level_503_without_resume_handle() -> None:
    dce = bound_dce()
    request = srvs.NetrShareEnum()
    request["ServerName"] = NULL
    request["PreferedMaximumLength"] = 0xFFFFFFFF
    request["ResumeHandle"] = NULL
    request["InfoStruct"]["Level"] = 503
    request["InfoStruct"]["ShareInfo"]["tag"] = 503
    request["InfoStruct"]["ShareInfo"]["Level503"]["Buffer"] = NULL
    dce.call(request.opnum, request)
    answer = dce.recv()
    # No resume handle in, none out: a NULL pointer and then ERROR_SUCCESS end the stub.
    assert answer[-8:] == bytes(8)
    response = srvs.NetrShareEnumResponse(answer)
    entries = response["InfoStruct"]["ShareInfo"]["Level503"]["Buffer"]
    assert _names(entries, "shi503_servername") == ["*\x00"] * len(SHARES)


def test_share_enum_unknown_level_is_error_invalid_level() -> None:
    dce = bound_dce()
    request = srvs.NetrShareEnum()
    request["ServerName"] = NULL
    request["PreferedMaximumLength"] = 0xFFFFFFFF
    request["ResumeHandle"] = 0
    request["InfoStruct"]["Level"] = 1
    request["InfoStruct"]["ShareInfo"]["tag"] = 1
    request["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"] = NULL
    stub = bytearray(request.getData())
    # After the NULL ServerName pointer comes Level: 7 no longer matches the union's arm 1.
    stub[4:8] = (7).to_bytes(4, "little")
    dce.call(15, bytes(stub))
    answer = dce.recv()
    assert int.from_bytes(answer[-4:], "little") == ERROR_INVALID_LEVEL


def test_share_enum_resume_handle_skips_entries() -> None:
    dce = bound_dce()
    response = srvs.hNetrShareEnum(dce, 1, resumeHandle=2)
    entries = response["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"]
    assert _names(entries, "shi1_netname") == ["IPC$\x00"]
    assert response["ResumeHandle"] == 0


def test_share_enum_with_a_filled_input_container() -> None:
    # The container is [in,out]: a client may send entries, which the server must read past.
    dce = bound_dce()
    request = srvs.NetrShareEnum()
    request["ServerName"] = "\\\\host\x00"
    request["PreferedMaximumLength"] = 0xFFFFFFFF
    request["ResumeHandle"] = 0
    request["InfoStruct"]["Level"] = 2
    request["InfoStruct"]["ShareInfo"]["tag"] = 2
    item = srvs.SHARE_INFO_2()
    item["shi2_netname"] = "x\x00"
    item["shi2_remark"] = "y\x00"
    item["shi2_path"] = "z\x00"
    item["shi2_passwd"] = NULL
    request["InfoStruct"]["ShareInfo"]["Level2"]["EntriesRead"] = 1
    request["InfoStruct"]["ShareInfo"]["Level2"]["Buffer"].append(item)
    response = dce.request(request)
    assert response["InfoStruct"]["ShareInfo"]["Level2"]["EntriesRead"] == len(SHARES)


def test_share_enum_with_no_shares() -> None:
    dce = bound_dce(PipeServerInfo("EMPTY", ()))
    response = srvs.hNetrShareEnum(dce, 1)
    assert response["InfoStruct"]["ShareInfo"]["Level1"]["EntriesRead"] == 0
    assert response["TotalEntries"] == 0


@pytest.mark.parametrize("level", [0, 1, 2, 501, 502, 1005])
def test_share_get_info_levels(level: int) -> None:
    dce = bound_dce()
    response = srvs.hNetrShareGetInfo(dce, "PUBLIC\x00", level)  # share names compare case-insensitively
    info = response["InfoStruct"][f"ShareInfo{level}"]
    assert response["InfoStruct"]["tag"] == level
    if level == 1005:
        assert info["shi1005_flags"] == 0
        return
    assert info[f"shi{level}_netname"] == "Public\x00"
    if level != 0:
        assert info[f"shi{level}_type"] == STYPE_DISKTREE
        assert info[f"shi{level}_remark"] == "Open to everyone\x00"
    if level in (2, 502):
        assert info[f"shi{level}_path"] == "C:\\srv\\public\x00"
        assert info[f"shi{level}_passwd"] == b""  # how impacket shows a NULL pointer


def test_share_get_info_missing_share_is_nerr_net_name_not_found() -> None:
    dce = bound_dce()
    with pytest.raises(srvs.DCERPCSessionError) as caught:
        srvs.hNetrShareGetInfo(dce, "nosuchshare\x00", 1)
    assert caught.value.get_error_code() == NERR_NetNameNotFound == 2310


def test_share_get_info_unknown_level() -> None:
    dce = bound_dce()
    with pytest.raises(srvs.DCERPCSessionError) as caught:
        srvs.hNetrShareGetInfo(dce, "data\x00", 1501)
    assert caught.value.get_error_code() == ERROR_INVALID_LEVEL


def test_share_get_info_non_ascii_name() -> None:
    server = PipeServerInfo("S", (ShareEntry("Données", STYPE_DISKTREE, "café ☕", "/srv/d"),))
    dce = bound_dce(server)
    response = srvs.hNetrShareGetInfo(dce, "DONNÉES\x00", 1)
    assert response["InfoStruct"]["ShareInfo1"]["shi1_remark"] == "café ☕\x00"


@pytest.mark.parametrize("level", [100, 101, 102])
def test_server_get_info_levels(level: int) -> None:
    dce = bound_dce()
    response = srvs.hNetrServerGetInfo(dce, level)
    info = response["InfoStruct"][f"ServerInfo{level}"]
    assert info[f"sv{level}_platform_id"] == PLATFORM_ID_NT
    assert info[f"sv{level}_name"] == SERVER.server_name + "\x00"
    if level >= 101:
        assert info[f"sv{level}_type"] & 0x8003 == 0x8003  # workstation, server, NT server
        assert info[f"sv{level}_version_major"] == 10


def test_server_get_info_unknown_level() -> None:
    dce = bound_dce()
    with pytest.raises(srvs.DCERPCSessionError) as caught:
        srvs.hNetrServerGetInfo(dce, 1005)
    assert caught.value.get_error_code() == ERROR_INVALID_LEVEL


def test_unknown_opnum_faults_with_op_rng_error() -> None:
    dce = bound_dce()
    dce.call(99, b"")
    with pytest.raises(DCERPCException, match="nca_s_op_rng_error"):
        dce.recv()
    # A fault does not break the association: the next call works.
    assert srvs.hNetrShareEnum(dce, 1)["ErrorCode"] == 0


def test_unimplemented_srvsvc_opnum_faults_too() -> None:
    dce = bound_dce()
    with pytest.raises(DCERPCException, match="nca_s_op_rng_error"):
        srvs.hNetrSessionEnum(dce, NULL, NULL, 10)


def test_truncated_stub_faults_with_bad_stub_data() -> None:
    dce = bound_dce()
    dce.call(16, b"\x00\x00\x02\x00\x05\x00")
    with pytest.raises(DCERPCException, match="rpc_x_bad_stub_data"):
        dce.recv()


def test_fragmented_request_is_reassembled() -> None:
    dce = bound_dce()
    dce.set_max_fragment_size(8)  # impacket then sends the stub 8 bytes per request fragment
    response = srvs.hNetrShareGetInfo(dce, "data\x00", 2)
    assert response["InfoStruct"]["ShareInfo2"]["shi2_remark"] == "Team data\x00"
