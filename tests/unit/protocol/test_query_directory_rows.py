"""QUERY_DIRECTORY packs most entries straight from the stat (commands/query_directory.py, the fast path) and the
rest through FileInfo and the class encoders (fscc/directory.py). The two must give the same bytes for every
class, every kind of entry and every buffer size: each listing here is made twice, once as the server makes it
and once with the fast path switched off, and compared whole ([MS-FSCC] 2.4; [MS-SMB2] 3.3.5.18)."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import pytest

from smbsrv.commands import query_directory
from smbsrv.fs import dos_attrs
from smbsrv.fscc import attributes as fattr
from smbsrv.fscc.file_info import FileInformationClass as C
from tests import builders as b
from tests.fuzz.sans_io import Peer, SansIoServer, parse_buffers

CLASSES = (C.FileDirectoryInformation, C.FileFullDirectoryInformation, C.FileBothDirectoryInformation,
           C.FileNamesInformation, C.FileIdBothDirectoryInformation, C.FileIdFullDirectoryInformation,
           C.FileIdExtdDirectoryInformation)
STATUS_NO_MORE_FILES = 0x80000006
SMB2_RESTART_SCANS = 0x01
SMB2_RETURN_SINGLE_ENTRY = 0x02


@pytest.fixture()
def peer() -> Iterator[Peer]:
    server = SansIoServer()
    peer = server.connect()
    root = server.share_path
    (root / "plain.txt").write_bytes(b"x" * 5000)
    (root / ".dotfile").write_bytes(b"")
    (root / "subdir").mkdir()
    (root / "ünïcödé-名前.txt").write_bytes(b"u")
    marked = root / "marked.txt"
    marked.write_bytes(b"m")
    fd = os.open(marked, os.O_RDONLY)
    try:  # stored DOS attributes and a CreationTime
        dos_attrs.write(fd, dos_attrs.DosInfo(fattr.FILE_ATTRIBUTE_READONLY | fattr.FILE_ATTRIBUTE_HIDDEN,
                                              130_000_000_000_000_000))
    finally:
        os.close(fd)
    changed = root / "changed.txt"
    changed.write_bytes(b"c")
    fd = os.open(changed, os.O_RDONLY)
    try:  # a client-set ChangeTime, valid while the file is as it was
        dos_attrs.write(fd, dos_attrs.DosInfo(fattr.FILE_ATTRIBUTE_ARCHIVE, 0, 131_000_000_000_000_000,
                                              dos_attrs.change_anchor(os.fstat(fd))))
    finally:
        os.close(fd)
    old = root / "old.txt"
    old.write_bytes(b"o")
    os.utime(old, ns=(-2_000_000_000_000_000_000, -1_000_000_000_000_000_000))  # 1906 and 1938
    os.symlink("plain.txt", root / "link")
    os.mkfifo(root / "fifo")
    for index in range(600):  # more than 64 KiB of entries: the buffer grows within one response
        (root / "subdir" / f"entry-{index:03d}-{'n' * (index % 40)}").write_bytes(b"")
    try:
        yield peer
    finally:
        peer.close()
        server.close()


def _send(peer: Peer, *requests: b.Req) -> list:  # type: ignore[type-arg]
    message, _ = peer.builder.build(*requests)
    return parse_buffers(peer.server.loop.run_until_complete(peer.connection.handle_message(message)))


def _listing(peer: Peer, directory: str, info_class: int, output_length: int, flags: int = 0) -> list[bytes]:
    """Every response of one enumeration, as (status, body) bytes."""
    responses = _send(peer, b.Req(b.SMB2_CREATE, b.create_body(directory, desired_access=0x81, share_access=7,
                                                                options=1)))
    assert responses[0].status == 0
    file_id = b.create_file_id(responses[0].body)
    out = []
    first = True
    try:
        while len(out) < 2000:
            body = b.query_directory_body(file_id, info_class=info_class, output_length=output_length,
                                          flags=flags | (SMB2_RESTART_SCANS if first else 0))
            charge = (output_length + 65535) // 65536
            response = _send(peer, b.Req(b.SMB2_QUERY_DIRECTORY, body, credit_charge=charge))[0]
            first = False
            out.append(struct.pack("<I", response.status) + response.body)
            if response.status != 0:
                break
    finally:
        _send(peer, b.Req(b.SMB2_CLOSE, b.close_body(file_id)))
    return out


@pytest.mark.parametrize("info_class", CLASSES)
@pytest.mark.parametrize(("directory", "output_length", "flags"), [
    ("", 65536, 0), ("subdir", 65536, 0), ("subdir", 700, 0), ("", 300, 0), ("subdir", 1 << 20, 0),
    ("subdir", 65536, SMB2_RETURN_SINGLE_ENTRY)])
def test_the_fast_path_packs_what_fileinfo_packs(peer: Peer, monkeypatch: pytest.MonkeyPatch, info_class: int,
                                                  directory: str, output_length: int, flags: int) -> None:
    # The open data.bin and dir (the harness holds them) go through write_time and the slow path in both runs.
    _send(peer, b.Req(b.SMB2_WRITE, b.write_body(peer.file_id, 0, b"written")))
    _listing(peer, directory, info_class, output_length, flags)  # the directory's atime settles
    fast = _listing(peer, directory, info_class, output_length, flags)
    monkeypatch.setattr(query_directory, "row_packer", lambda *args: None)
    slow = _listing(peer, directory, info_class, output_length, flags)
    assert fast == slow
    assert struct.unpack_from("<I", fast[-1])[0] == STATUS_NO_MORE_FILES
    assert len(fast) > (2 if output_length < 1000 or flags else 1)
    if output_length > 65536 and directory:
        assert len(fast) == 2  # all in one response, larger than the first buffer but for names only
        assert len(fast[0]) > 65536 or info_class == C.FileNamesInformation


@pytest.mark.parametrize("fast", [True, False])
def test_an_entry_is_never_split_and_the_last_is_not_padded(peer: Peer, monkeypatch: pytest.MonkeyPatch,
                                                             fast: bool) -> None:
    """Four FileNamesInformation entries of 18 bytes start at 0, 24, 48 and 72: a buffer holds an entry only
    whole, the ones before it 8-byte aligned, and the last one unpadded ([MS-SMB2] 3.3.5.18); a buffer too
    small for the first entry is STATUS_INFO_LENGTH_MISMATCH."""
    if not fast:
        monkeypatch.setattr(query_directory, "row_packer", lambda *args: None)
    sized = peer.server.share_path / "sized"
    sized.mkdir()
    for name in ("abc", "abd", "abe", "abf"):
        (sized / name).write_bytes(b"")
    opened = _send(peer, b.Req(b.SMB2_CREATE, b.create_body("sized", desired_access=0x81, share_access=7,
                                                             options=1)))[0]
    file_id = b.create_file_id(opened.body)
    for output_length, count in ((17, 0), (18, 1), (41, 1), (42, 2), (65, 2), (66, 3), (89, 3), (90, 4)):
        body = b.query_directory_body(file_id, "ab*", C.FileNamesInformation, SMB2_RESTART_SCANS, output_length)
        response = _send(peer, b.Req(b.SMB2_QUERY_DIRECTORY, body))[0]
        if count == 0:
            assert response.status == 0xC0000004  # STATUS_INFO_LENGTH_MISMATCH
            continue
        assert response.status == 0
        offset, length = struct.unpack_from("<HI", response.body, 2)
        entries = response.body[offset - 64:offset - 64 + length]
        assert length == 24 * (count - 1) + 18 <= output_length
        starts = [0]
        while next_offset := struct.unpack_from("<I", entries, starts[-1])[0]:
            starts.append(starts[-1] + next_offset)
        assert starts == [24 * index for index in range(count)]
    _send(peer, b.Req(b.SMB2_CLOSE, b.close_body(file_id)))
