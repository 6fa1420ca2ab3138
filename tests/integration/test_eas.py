"""Extended attributes over the wire ([MS-FSCC] 2.4.15, [MS-SMB2] 2.2.13.2.1, 2.2.37): the ExtA create context,
SET_INFO and QUERY_INFO FileFullEaInformation, FileEaInformation, and the statuses Windows gives."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from smbsrv.fscc.ea import EaEntry, decode_full_ea_list, encode_full_ea_list, encode_get_ea_list
from smbsrv.wire.status import NtStatus
from tests import builders as b
from tests.conftest import SmbServer

FILE_EA_INFORMATION = 7
FILE_FULL_EA_INFORMATION = 15
SL_RESTART_SCAN, SL_RETURN_SINGLE_ENTRY, SL_INDEX_SPECIFIED = 0x01, 0x02, 0x04
WSL = [EaEntry(b"$LXUID", b"\xe8\x03\x00\x00"), EaEntry(b"$LXMOD", b"\xa4\x21\x00\x00"),
       EaEntry(b"$LXDEV", b"\x01\x00\x00\x00\x03\x00\x00\x00")]


def _name(status: int) -> str:
    return NtStatus(status).name


@pytest.fixture
def client(module_server: SmbServer) -> Iterator[b.Client]:
    with b.connect(module_server.host, module_server.port, module_server.user, module_server.password) as c:
        yield c


def _new(client: b.Client, eas: list[EaEntry] | None = None) -> tuple[str, tuple[int, int]]:
    name = f"ea-{uuid.uuid4().hex[:10]}"
    contexts = b.create_context(b"ExtA", encode_full_ea_list(eas)) if eas else b""
    response = client.create(name, desired_access=b.GENERIC_READ | b.GENERIC_WRITE, disposition=b.FILE_CREATE,
                              contexts=contexts)
    assert response.status == b.STATUS_SUCCESS, _name(response.status)
    return name, b.create_file_id(response.body)


def _query(client: b.Client, file_id: tuple[int, int], **kwargs: object) -> b.Response:
    return client.query_info(file_id, b.SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION, **kwargs)


def _entries(response: b.Response) -> list[EaEntry]:
    assert response.status in (b.STATUS_SUCCESS, b.STATUS_BUFFER_OVERFLOW), _name(response.status)
    return decode_full_ea_list(b.output_buffer(response))


def test_create_context_sets_the_eas(module_server: SmbServer, client: b.Client) -> None:
    name, file_id = _new(client, WSL)
    assert _entries(_query(client, file_id)) == WSL
    # Stored in one xattr of the file itself, never as anything the server interprets.
    assert os.getxattr(module_server.share_path / name, "user.smbsrv.eas")
    client.close_file(file_id)


def test_set_replace_delete_and_names_fold_case(client: b.Client) -> None:
    _, file_id = _new(client)
    assert _name(_query(client, file_id).status) == "STATUS_NO_EAS_ON_FILE"
    assert client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION,
                           encode_full_ea_list([EaEntry(b"user.Colour", b"blue"), EaEntry(b"B", b"1")])
                           ).status == b.STATUS_SUCCESS
    assert client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION,
                           encode_full_ea_list([EaEntry(b"USER.COLOUR", b"red"), EaEntry(b"b", b"")])
                           ).status == b.STATUS_SUCCESS
    assert _entries(_query(client, file_id)) == [EaEntry(b"user.Colour", b"red")]
    size = client.query_info(file_id, b.SMB2_0_INFO_FILE, FILE_EA_INFORMATION)
    assert b.output_buffer(size) == (8 + 11 + 1 + 3 + 3 & ~3).to_bytes(4, "little")
    client.close_file(file_id)


def test_query_by_name_single_entry_and_index(client: b.Client) -> None:
    _, file_id = _new(client, WSL)
    wanted = encode_get_ea_list([b"$lxdev", b"$MISSING"])
    assert _entries(_query(client, file_id, input_buffer=wanted)) == [
        EaEntry(b"$LXDEV", WSL[2].value), EaEntry(b"$MISSING", b"")]
    walk = [_entries(_query(client, file_id, flags=SL_RETURN_SINGLE_ENTRY | (SL_RESTART_SCAN if i == 0 else 0)))
            for i in range(3)]
    assert walk == [[entry] for entry in WSL]
    assert _name(_query(client, file_id, flags=SL_RETURN_SINGLE_ENTRY).status) == "STATUS_NO_MORE_EAS"
    assert _entries(_query(client, file_id, flags=SL_INDEX_SPECIFIED | SL_RETURN_SINGLE_ENTRY,
                           additional_information=2)) == [WSL[1]]
    assert _name(_query(client, file_id, flags=SL_INDEX_SPECIFIED, additional_information=9).status) == (
        "STATUS_NONEXISTENT_EA_ENTRY")
    client.close_file(file_id)


def test_small_buffers(client: b.Client) -> None:
    _, file_id = _new(client, WSL)
    first = len(encode_full_ea_list(WSL[:1]))
    assert _name(_query(client, file_id, output_length=first - 1).status) == "STATUS_BUFFER_TOO_SMALL"
    partial = _query(client, file_id, output_length=first + 8)
    assert _name(partial.status) == "STATUS_BUFFER_OVERFLOW"
    assert _entries(partial) == WSL[:1]
    client.close_file(file_id)


@pytest.mark.parametrize("bad_name", [b"a*b", b"a:b", b"x\x01", b""])
def test_invalid_names(client: b.Client, bad_name: bytes) -> None:
    _, file_id = _new(client)
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION,
                               encode_full_ea_list([EaEntry(bad_name, b"v")]))
    assert _name(response.status) == "STATUS_INVALID_EA_NAME"
    client.close_file(file_id)


def test_inconsistent_list_and_rights(client: b.Client) -> None:
    _, file_id = _new(client)
    broken = bytearray(encode_full_ea_list([EaEntry(b"A", b"v")]))
    broken[0] = 3  # NextEntryOffset not a multiple of 4
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION, bytes(broken))
    assert _name(response.status) == "STATUS_EA_LIST_INCONSISTENT"
    client.close_file(file_id)
    name, file_id = _new(client, WSL)
    client.close_file(file_id)
    read_only = client.open(name, desired_access=b.FILE_READ_DATA)
    assert _name(_query(client, read_only).status) == "STATUS_ACCESS_DENIED"
    response = client.set_info(read_only, b.SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION,
                               encode_full_ea_list([EaEntry(b"A", b"v")]))
    assert _name(response.status) == "STATUS_ACCESS_DENIED"
    client.close_file(read_only)


def test_create_with_bad_ea_name_creates_nothing(module_server: SmbServer, client: b.Client) -> None:
    name = f"ea-{uuid.uuid4().hex[:10]}"
    response = client.create(name, desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE,
                             contexts=b.create_context(b"ExtA", encode_full_ea_list([EaEntry(b"a?b", b"v")])))
    assert _name(response.status) == "STATUS_INVALID_EA_NAME"
    assert not (module_server.share_path / name).exists()


def test_too_large_for_the_inode(client: b.Client) -> None:
    _, file_id = _new(client)
    huge = [EaEntry(b"BIG%d" % i, os.urandom(60000)) for i in range(2)]
    response = client.set_info(file_id, b.SMB2_0_INFO_FILE, FILE_FULL_EA_INFORMATION, encode_full_ea_list(huge))
    assert _name(response.status) == "STATUS_EA_TOO_LARGE"
    client.close_file(file_id)
