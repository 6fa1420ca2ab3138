"""Debian's smbclient (Samba 4.17) against the real daemon over loopback: the "core server" issue.

Covers directory listing ([MS-SMB2] 2.2.33 QUERY_DIRECTORY, [MS-FSCC] 2.4 directory classes, wildcards per
[MS-FSA] 2.1.4.4), bulk READ/WRITE ([MS-SMB2] 2.2.19/2.2.21), namespace changes (CREATE, SET_INFO
FileRenameInformation / FileDispositionInformation, [MS-FSCC] 2.4.34.2 and 2.4.11), `allinfo` (QUERY_INFO with
FileAllInformation, FileStreamInformation, FileAlternateNameInformation), `setmode` (FileBasicInformation
attributes), share enumeration over IPC$ (srvsvc NetShareEnumAll) and signed sessions ([MS-SMB2] 3.1.4.1).

smbclient's `-c` exit status only reflects the last command, so every run is also checked for NT_STATUS_ text.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, USER, SmbServer, assert_no_server_bugs, start_server, stop_server

# -m SMB3 negotiates 3.1.1 with this server; -m SMB2 caps the client at 2.1 (SMB2_10).
PROTOCOLS = ("SMB3", "SMB2")

# One line of `ls` output: two spaces, the name padded to 35 columns, the attribute letters, the size, the mtime.
_LS_LINE = re.compile(r"^  (?P<name>.+?)\s+(?P<attrs>[A-Z]*)\s+(?P<size>\d+)\s+"
                      r"(?P<date>\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})$")
_ALLINFO_TIME = re.compile(r"^(?P<field>create_time|access_time|write_time|change_time):\s+(?P<value>.+) UTC$")
_ALLINFO_ATTRS = re.compile(r"^attributes: (?P<letters>[A-Z]*) \((?P<hex>[0-9a-f]+)\)$")
_ALLINFO_STREAM = re.compile(r"^stream: \[(?P<name>[^\]]*)\], (?P<size>\d+) bytes$")

FILE_ATTRIBUTE_READONLY = 0x01
FILE_ATTRIBUTE_DIRECTORY = 0x10
FILE_ATTRIBUTE_ARCHIVE = 0x20

CHUNK = 4 * 1024 * 1024


def run(server: SmbServer, commands: str, protocol: str, *extra: str, timeout: float = 300) -> str:
    """Run smbclient, insist on exit status 0 and no NT_STATUS_ error anywhere in the output."""
    result = server.smbclient(commands, "-m", protocol, *extra, timeout=timeout)
    output = result.stdout + result.stderr
    assert "NT_STATUS_" not in output, f"smbclient reported an error for {commands!r}:\n{output}"
    return result.stdout


def run_expecting_error(server: SmbServer, commands: str, protocol: str, *extra: str) -> str:
    result = server.smbclient(commands, "-m", protocol, *extra, check=False)
    return result.stdout + result.stderr


def ls_entries(output: str) -> dict[str, tuple[str, int]]:
    """Map name -> (attribute letters, size) for every entry of an `ls` listing, '.' and '..' included."""
    entries: dict[str, tuple[str, int]] = {}
    for line in output.splitlines():
        match = _LS_LINE.match(line)
        if match:
            assert match["name"] not in entries, f"{match['name']!r} listed twice"
            entries[match["name"]] = (match["attrs"], int(match["size"]))
    return entries


def allinfo(output: str) -> dict[str, object]:
    """Parse `allinfo` output into times (datetime, UTC), attribute letters and value, and streams."""
    info: dict[str, object] = {"streams": {}}
    for line in output.splitlines():
        if match := _ALLINFO_TIME.match(line):
            info[match["field"]] = datetime.strptime(match["value"], "%a %b %d %H:%M:%S %Y").replace(
                tzinfo=UTC)
        elif match := _ALLINFO_ATTRS.match(line):
            info["attr_letters"] = match["letters"]
            info["attributes"] = int(match["hex"], 16)
        elif match := _ALLINFO_STREAM.match(line):
            streams = info["streams"]
            assert isinstance(streams, dict)
            streams[match["name"]] = int(match["size"])
    return info


def write_random_file(path: Path, size: int) -> str:
    """Fill `path` with `size` random bytes and return their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        remaining = size
        while remaining:
            chunk = os.urandom(min(CHUNK, remaining))
            digest.update(chunk)
            file.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize(("protocol", "dialect"), [("SMB3", "0311"), ("SMB2", "0210"), ("SMB3_00", "0300"),
                                                 ("SMB3_02", "0302"), ("SMB2_02", "0202")])
def test_max_protocol_picks_the_dialect(smb_server: SmbServer, protocol: str, dialect: str) -> None:
    # The server must select the highest dialect both sides support ([MS-SMB2] 3.3.5.4).
    run(smb_server, "ls", protocol)
    negotiated = re.findall(r"negotiated dialect (\w+)", smb_server.log_text())
    assert negotiated == [dialect]


# --- listing -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ls_shows_files_directories_and_sizes(smb_server: SmbServer, protocol: str) -> None:
    share = smb_server.share_path
    (share / "hello.txt").write_bytes(b"hello world\n")
    (share / "empty").write_bytes(b"")
    (share / "sub dir").mkdir()
    (share / "sub dir" / "inner.bin").write_bytes(b"x" * 70000)

    entries = ls_entries(run(smb_server, "ls", protocol))
    assert set(entries) == {".", "..", "hello.txt", "empty", "sub dir"}
    assert entries["hello.txt"][1] == 12
    assert entries["empty"][1] == 0
    assert "D" in entries["sub dir"][0]
    assert "D" in entries["."][0] and "D" in entries[".."][0]
    assert "D" not in entries["hello.txt"][0]

    inner = ls_entries(run(smb_server, 'cd "sub dir"; ls', protocol))
    assert set(inner) == {".", "..", "inner.bin"}
    assert inner["inner.bin"][1] == 70000


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ls_of_a_10000_entry_directory_lists_every_entry_once(module_server: SmbServer, protocol: str) -> None:
    # Many QUERY_DIRECTORY rounds: the server must resume where the previous response stopped, with no entry
    # lost or repeated ([MS-SMB2] 3.3.5.18).
    big = module_server.share_path / "big"
    if not big.exists():
        big.mkdir()
        for index in range(10000):
            (big / f"entry-{index:05d}.dat").write_bytes(b"")
    entries = ls_entries(run(module_server, "cd big; ls", protocol))
    names = set(entries) - {".", ".."}
    assert len(names) == 10000
    assert names == {f"entry-{index:05d}.dat" for index in range(10000)}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ls_with_wildcards(smb_server: SmbServer, protocol: str) -> None:
    names = ["a.txt", "b.txt", "abc", "abcd.dat", "axc.txt", "ac", "notes.md", "xabc.txt"]
    for name in names:
        (smb_server.share_path / name).write_bytes(name.encode())

    star_txt = set(ls_entries(run(smb_server, "ls *.txt", protocol)))
    assert star_txt == {"a.txt", "b.txt", "axc.txt", "xabc.txt"}

    question = set(ls_entries(run(smb_server, "ls a?c*", protocol)))
    assert question == {"abc", "abcd.dat", "axc.txt"}

    exact = set(ls_entries(run(smb_server, "ls notes.md", protocol)))
    assert exact == {"notes.md"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ls_of_a_missing_name_reports_no_such_file(smb_server: SmbServer, protocol: str) -> None:
    output = run_expecting_error(smb_server, "ls nothing-here*", protocol)
    assert "NT_STATUS_NO_SUCH_FILE" in output, output


# --- bulk transfer -------------------------------------------------------------------------------------------

def _put_get_roundtrip(server: SmbServer, tmp_path: Path, size: int, protocol: str) -> None:
    local = tmp_path / "local"
    local.mkdir()
    source = local / "source.bin"
    digest = write_random_file(source, size)
    run(server, f'put "{source}" big.bin', protocol, timeout=600)
    # The file on the share is the server's own copy: check it before reading it back.
    assert (server.share_path / "big.bin").stat().st_size == size
    assert sha256_of(server.share_path / "big.bin") == digest
    source.unlink()
    fetched = local / "fetched.bin"
    run(server, f'get big.bin "{fetched}"', protocol, timeout=600)
    assert fetched.stat().st_size == size
    assert sha256_of(fetched) == digest


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_put_get_64_mib_is_byte_identical(smb_server: SmbServer, tmp_path: Path, protocol: str) -> None:
    _put_get_roundtrip(smb_server, tmp_path, 64 * 1024 * 1024, protocol)


@pytest.mark.slow
def test_put_get_1_gib_is_byte_identical(smb_server: SmbServer, tmp_path: Path) -> None:
    _put_get_roundtrip(smb_server, tmp_path, 1024 * 1024 * 1024, "SMB3")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_put_get_odd_sizes(smb_server: SmbServer, tmp_path: Path, protocol: str) -> None:
    # Sizes around the 64 KiB credit unit and the 1 MiB default I/O size: partial last chunks.
    sizes = [1, 65535, 65536, 65537, 1024 * 1024 + 3]
    commands = []
    digests = {}
    for size in sizes:
        path = tmp_path / f"odd-{size}"
        digests[size] = write_random_file(path, size)
        commands.append(f'put "{path}" odd-{size}')
    run(smb_server, "; ".join(commands), protocol)
    back = tmp_path / "back"
    back.mkdir()
    run(smb_server, "; ".join(f'get odd-{size} "{back}/odd-{size}"' for size in sizes), protocol)
    for size in sizes:
        assert sha256_of(smb_server.share_path / f"odd-{size}") == digests[size]
        assert sha256_of(back / f"odd-{size}") == digests[size]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mput_mget_with_prompt_off(smb_server: SmbServer, tmp_path: Path, protocol: str) -> None:
    upload = tmp_path / "upload"
    upload.mkdir()
    digests = {}
    for index in range(5):
        digests[f"m{index}.bin"] = write_random_file(upload / f"m{index}.bin", 1000 * (index + 1))
    (upload / "skip.txt").write_bytes(b"not matched by the mask")

    run(smb_server, f'prompt off; lcd "{upload}"; mput m*.bin', protocol)
    assert sorted(p.name for p in smb_server.share_path.iterdir()) == sorted(digests)
    for name, digest in digests.items():
        assert sha256_of(smb_server.share_path / name) == digest

    download = tmp_path / "download"
    download.mkdir()
    run(smb_server, f'prompt off; lcd "{download}"; mget m*.bin', protocol)
    assert sorted(p.name for p in download.iterdir()) == sorted(digests)
    for name, digest in digests.items():
        assert sha256_of(download / name) == digest


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_get_of_a_missing_file_fails_with_not_found(smb_server: SmbServer, tmp_path: Path, protocol: str) -> None:
    output = run_expecting_error(smb_server, f'get missing.bin "{tmp_path}/missing.bin"', protocol)
    assert "NT_STATUS_OBJECT_NAME_NOT_FOUND" in output, output


def test_parallel_clients_transfer_independently(smb_server: SmbServer, tmp_path: Path) -> None:
    # Four smbclient processes at once: separate connections served concurrently, no data crossing over.
    sources = {}
    for index in range(4):
        path = tmp_path / f"source-{index}.bin"
        sources[index] = (path, write_random_file(path, 8 * 1024 * 1024 + index))
    processes = []
    for index, (path, _) in sources.items():
        fetched = tmp_path / f"fetched-{index}.bin"
        argv = ["smbclient", smb_server.unc, "-p", str(smb_server.port), "-U",
                f"{smb_server.user}%{smb_server.password}", "-m", "SMB3" if index % 2 else "SMB2",
                "-c", f'put "{path}" p{index}.bin; get p{index}.bin "{fetched}"']
        processes.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        for process in processes:
            output, _ = process.communicate(timeout=300)
            assert process.returncode == 0 and "NT_STATUS_" not in output, output
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for index, (_, digest) in sources.items():
        assert sha256_of(smb_server.share_path / f"p{index}.bin") == digest
        assert sha256_of(tmp_path / f"fetched-{index}.bin") == digest


# --- namespace -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mkdir_rmdir(smb_server: SmbServer, protocol: str) -> None:
    run(smb_server, "mkdir newdir; mkdir newdir\\child", protocol)
    assert (smb_server.share_path / "newdir" / "child").is_dir()

    # A directory that is not empty cannot go ([MS-FSA] 2.1.5.4: STATUS_DIRECTORY_NOT_EMPTY).
    output = run_expecting_error(smb_server, "rmdir newdir", protocol)
    assert "NT_STATUS_DIRECTORY_NOT_EMPTY" in output, output
    assert (smb_server.share_path / "newdir").is_dir()

    run(smb_server, "rmdir newdir\\child; rmdir newdir", protocol)
    assert not (smb_server.share_path / "newdir").exists()

    output = run_expecting_error(smb_server, "mkdir existing; mkdir existing", protocol)
    assert "NT_STATUS_OBJECT_NAME_COLLISION" in output, output


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rm_deletes_files_and_masks(smb_server: SmbServer, protocol: str) -> None:
    for name in ("one.tmp", "two.tmp", "keep.dat"):
        (smb_server.share_path / name).write_bytes(b"data")
    run(smb_server, "rm one.tmp", protocol)
    assert not (smb_server.share_path / "one.tmp").exists()
    run(smb_server, "rm *.tmp", protocol)
    assert sorted(p.name for p in smb_server.share_path.iterdir()) == ["keep.dat"]

    # smbclient's rm lists the mask first: QUERY_DIRECTORY finds nothing (STATUS_NO_SUCH_FILE, as Samba 4.17
    # answers on both protocols); a missing directory in the path fails its open (OBJECT_NAME_NOT_FOUND, the
    # same in Samba 4.17).
    output = run_expecting_error(smb_server, "rm nothing.tmp", protocol)
    assert "NT_STATUS_NO_SUCH_FILE listing \\nothing.tmp" in output, output
    output = run_expecting_error(smb_server, "rm nodir/nothing.tmp", protocol)
    assert "NT_STATUS_OBJECT_NAME_NOT_FOUND listing \\nodir\\nothing.tmp" in output, output


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rename_file_and_directory(smb_server: SmbServer, protocol: str) -> None:
    share = smb_server.share_path
    (share / "old.txt").write_bytes(b"contents")
    (share / "olddir").mkdir()
    (share / "olddir" / "f").write_bytes(b"f")
    (share / "other").mkdir()

    run(smb_server, "rename old.txt new.txt; rename olddir newdir; rename new.txt other\\moved.txt", protocol)
    assert not (share / "old.txt").exists() and not (share / "new.txt").exists()
    assert (share / "other" / "moved.txt").read_bytes() == b"contents"
    assert (share / "newdir" / "f").read_bytes() == b"f"
    assert not (share / "olddir").exists()

    # Without -f (replace) smbclient asks not to overwrite: the target must survive.
    (share / "a").write_bytes(b"a")
    (share / "b").write_bytes(b"b")
    output = run_expecting_error(smb_server, "rename a b", protocol)
    assert "NT_STATUS_OBJECT_NAME_COLLISION" in output, output
    assert (share / "b").read_bytes() == b"b" and (share / "a").read_bytes() == b"a"

    run(smb_server, "rename a b -f", protocol)
    assert (share / "b").read_bytes() == b"a" and not (share / "a").exists()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_deltree_removes_a_whole_tree(smb_server: SmbServer, protocol: str) -> None:
    root = smb_server.share_path / "tree"
    for depth_path in (root / "a" / "b" / "c", root / "d"):
        depth_path.mkdir(parents=True)
    for directory in (root, root / "a", root / "a" / "b" / "c", root / "d"):
        for index in range(3):
            (directory / f"file{index}.txt").write_bytes(b"x" * index)
    (smb_server.share_path / "survivor").write_bytes(b"s")

    run(smb_server, "deltree tree", protocol)
    assert not root.exists()
    assert (smb_server.share_path / "survivor").exists()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_names_are_case_insensitive_but_case_preserving(smb_server: SmbServer, tmp_path: Path,
                                                       protocol: str) -> None:
    source = tmp_path / "source.txt"
    source.write_bytes(b"mixed case")
    run(smb_server, f'put "{source}" Hello.TXT', protocol)
    assert [p.name for p in smb_server.share_path.iterdir()] == ["Hello.TXT"]

    fetched = tmp_path / "fetched.txt"
    run(smb_server, f'get hello.txt "{fetched}"', protocol)
    assert fetched.read_bytes() == b"mixed case"
    assert set(ls_entries(run(smb_server, "ls HELLO.txt", protocol))) == {"Hello.TXT"}

    # Another spelling of an existing name is the same file ([MS-FSA] 2.1.5.1: case-insensitive opens).
    output = run_expecting_error(smb_server, "mkdir HELLO.TXT", protocol)
    assert "NT_STATUS_OBJECT_NAME_COLLISION" in output, output

    # A rename that only changes case must change the stored name.
    run(smb_server, "rename Hello.TXT hello.txt", protocol)
    assert [p.name for p in smb_server.share_path.iterdir()] == ["hello.txt"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unicode_and_long_names(smb_server: SmbServer, tmp_path: Path, protocol: str) -> None:
    source = tmp_path / "source.txt"
    source.write_bytes(b"unicode")
    directory = "ünï cödé 日本"
    # U+1F600 is outside the BMP: a surrogate pair in UTF-16, one code point in the UTF-8 file name.
    emoji = "\U0001f600 smile.txt"
    long_name = "L" * 251 + ".txt"  # 255 characters, the longest component Windows allows
    run(smb_server, f'mkdir "{directory}"; put "{source}" "{directory}\\{emoji}"; put "{source}" {long_name}',
        protocol)
    assert (smb_server.share_path / directory / emoji).read_bytes() == b"unicode"
    assert (smb_server.share_path / long_name).read_bytes() == b"unicode"

    listed = ls_entries(run(smb_server, f'cd "{directory}"; ls', protocol))
    assert set(listed) == {".", "..", emoji}
    assert long_name in ls_entries(run(smb_server, "ls", protocol))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_utimes_sets_creation_access_and_write_time(smb_server: SmbServer, protocol: str) -> None:
    path = smb_server.share_path / "times.txt"
    path.write_bytes(b"t")
    # FileBasicInformation with ChangeTime -1 (keep) ([MS-FSCC] 2.4.7).
    info = allinfo(run(smb_server, "utimes times.txt 2020:01:02-03:04:05 2021:02:03-04:05:06 "
                                   "2022:03:04-05:06:07 -1; allinfo times.txt", protocol))
    assert info["create_time"] == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert info["access_time"] == datetime(2021, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert info["write_time"] == datetime(2022, 3, 4, 5, 6, 7, tzinfo=UTC)
    stat = path.stat()
    assert stat.st_atime == datetime(2021, 2, 3, 4, 5, 6, tzinfo=UTC).timestamp()
    assert stat.st_mtime == datetime(2022, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_volume_and_free_space(smb_server: SmbServer, protocol: str) -> None:
    output = run(smb_server, "volume; du", protocol)
    assert re.search(r"^Volume: \|share\| serial number 0x[0-9a-f]+$", output, re.MULTILINE), output
    match = re.search(r"(\d+) blocks of size (\d+)\. (\d+) blocks available", output)
    assert match, output
    total_bytes = int(match[1]) * int(match[2])
    free_bytes = int(match[3]) * int(match[2])
    fs = os.statvfs(smb_server.share_path)
    # FileFsFullSizeInformation / FileFsSizeInformation describe the file system holding the share.
    assert total_bytes == fs.f_blocks * fs.f_frsize
    assert abs(free_bytes - fs.f_bavail * fs.f_frsize) <= 64 * 1024 * 1024


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hardlink(smb_server: SmbServer, protocol: str) -> None:
    (smb_server.share_path / "original.txt").write_bytes(b"linked")
    run(smb_server, "hardlink original.txt link.txt", protocol)
    original, link = smb_server.share_path / "original.txt", smb_server.share_path / "link.txt"
    assert os.path.samefile(original, link)
    assert original.stat().st_nlink == 2
    output = run_expecting_error(smb_server, "hardlink original.txt link.txt", protocol)
    assert "NT_STATUS_OBJECT_NAME_COLLISION" in output, output


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reget_resumes_at_the_end_of_the_local_file(smb_server: SmbServer, tmp_path: Path, protocol: str) -> None:
    # (reput is not tested: smbclient 4.17 writes the rest at offset 0, against Samba too.)
    data = os.urandom(3 * 1024 * 1024 + 4321)
    (smb_server.share_path / "resume.bin").write_bytes(data)
    partial = tmp_path / "partial.bin"
    partial.write_bytes(data[:1_500_017])
    run(smb_server, f'reget resume.bin "{partial}"', protocol)
    assert partial.read_bytes() == data


def test_tar_backup_and_restore(smb_server: SmbServer, tmp_path: Path) -> None:
    share = smb_server.share_path
    (share / "docs" / "deep").mkdir(parents=True)
    contents = {"top.txt": b"top", "docs/a.bin": os.urandom(200_000), "docs/deep/z.txt": b"zzz",
                "docs/empty": b""}
    for name, data in contents.items():
        (share / name).write_bytes(data)
    archive = tmp_path / "backup.tar"
    result = subprocess.run(["smbclient", smb_server.unc, "-p", str(smb_server.port), "-U",
                             f"{smb_server.user}%{smb_server.password}", "-m", "SMB3", "-Tc", str(archive)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    with tarfile.open(archive) as tar:
        members = {member.name.lstrip("./"): member for member in tar.getmembers() if member.isfile()}
        assert set(members) == set(contents)
        for name, data in contents.items():
            extracted = tar.extractfile(members[name])
            assert extracted is not None and extracted.read() == data

    shutil.rmtree(share / "docs")
    (share / "top.txt").unlink()
    result = subprocess.run(["smbclient", smb_server.unc, "-p", str(smb_server.port), "-U",
                             f"{smb_server.user}%{smb_server.password}", "-m", "SMB3", "-Tx", str(archive)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, data in contents.items():
        assert (share / name).read_bytes() == data


# --- allinfo and setmode ------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_allinfo_reports_times_attributes_and_stream(smb_server: SmbServer, protocol: str) -> None:
    path = smb_server.share_path / "info.txt"
    path.write_bytes(b"0123456789")
    mtime = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()
    atime = datetime(2022, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    os.utime(path, (atime, mtime))

    info = allinfo(run(smb_server, "allinfo info.txt", protocol))
    for field in ("create_time", "access_time", "write_time", "change_time"):
        assert field in info, f"allinfo has no {field}: {info}"
    assert info["write_time"] == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert info["access_time"] == datetime(2022, 1, 2, 3, 4, 5, tzinfo=UTC)
    change = info["change_time"]
    assert isinstance(change, datetime)
    assert abs(change.timestamp() - path.stat().st_ctime) < 2
    assert info["attributes"] == FILE_ATTRIBUTE_ARCHIVE and info["attr_letters"] == "A"
    assert info["streams"] == {"::$DATA": 10}

    (smb_server.share_path / "adir").mkdir()
    dir_info = allinfo(run(smb_server, "allinfo adir", protocol))
    assert isinstance(dir_info["attributes"], int) and dir_info["attributes"] & FILE_ATTRIBUTE_DIRECTORY
    assert "D" in str(dir_info["attr_letters"])
    # A directory has no unnamed data stream ([MS-FSCC] 2.4.43).
    assert "::$DATA" not in dir_info["streams"]  # type: ignore[operator]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_setmode_readonly_roundtrip(smb_server: SmbServer, tmp_path: Path, protocol: str) -> None:
    (smb_server.share_path / "ro.txt").write_bytes(b"keep me")

    info = allinfo(run(smb_server, "setmode ro.txt +r; allinfo ro.txt", protocol))
    assert isinstance(info["attributes"], int)
    assert info["attributes"] & FILE_ATTRIBUTE_READONLY, info
    assert "R" in str(info["attr_letters"])

    # Read-only means no write access ([MS-FSA] 2.1.5.1.2.1): opening for writing is refused.
    replacement = tmp_path / "replacement"
    replacement.write_bytes(b"overwritten")
    output = run_expecting_error(smb_server, f'put "{replacement}" ro.txt', protocol)
    assert "NT_STATUS_ACCESS_DENIED" in output, output
    assert (smb_server.share_path / "ro.txt").read_bytes() == b"keep me"

    info = allinfo(run(smb_server, "setmode ro.txt -r; allinfo ro.txt", protocol))
    assert isinstance(info["attributes"], int)
    assert not info["attributes"] & FILE_ATTRIBUTE_READONLY, info
    assert "R" not in str(info["attr_letters"])
    run(smb_server, f'put "{replacement}" ro.txt', protocol)
    assert (smb_server.share_path / "ro.txt").read_bytes() == b"overwritten"


# --- share listing -------------------------------------------------------------------------------------------

def test_share_list_shows_ipc_and_disk_share_with_comment(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    config = tmp_path / "smbsrv.toml"
    config.write_text(f'[server]\nserver_name = "ITEST"\n\n'
                      f'[shares.share]\npath = "{share}"\ncomment = "Integration test share"\n\n'
                      f'[shares.second]\npath = "{share}"\ncomment = "Another one"\n')
    server = start_server(share, tmp_path / "server.log", config=config)
    try:
        for protocol in PROTOCOLS:
            result = subprocess.run(["smbclient", "-L", f"//{server.host}", "-p", str(server.port),
                                     "-U", f"{USER}%{PASSWORD}", "-m", protocol],
                                    capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0, result.stdout + result.stderr
            rows = {}
            for line in result.stdout.splitlines():
                match = re.match(r"^\t(\S+)\s+(Disk|IPC|Printer)\s*(.*)$", line)
                if match:
                    rows[match[1]] = (match[2], match[3].strip())
            assert rows.get("share") == ("Disk", "Integration test share"), result.stdout
            assert rows.get("second") == ("Disk", "Another one"), result.stdout
            assert rows.get("IPC$", ("", ""))[0] == "IPC", result.stdout
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)


def test_wrong_password_is_refused(smb_server: SmbServer) -> None:
    result = smb_server.smbclient("ls", user=f"{USER}%wrong-password", check=False)
    assert result.returncode != 0
    assert "NT_STATUS_LOGON_FAILURE" in result.stdout + result.stderr


# --- signing -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_client_required_signing(smb_server: SmbServer, tmp_path: Path, protocol: str) -> None:
    # --client-protection=sign makes smbclient require signing and check every response signature: a missing or
    # wrong signature fails the command.
    source = tmp_path / "signed.bin"
    digest = write_random_file(source, 3 * 1024 * 1024 + 17)
    fetched = tmp_path / "fetched.bin"
    output = run(smb_server, f'put "{source}" signed.bin; ls; get signed.bin "{fetched}"; allinfo signed.bin; '
                 "mkdir sdir; rename signed.bin sdir\\s.bin; deltree sdir",
                 protocol, "--client-protection=sign")
    assert "signed.bin" in ls_entries(output)
    assert sha256_of(fetched) == digest
    assert not (smb_server.share_path / "sdir").exists()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_required_signing(share_dir: Path, tmp_path: Path, protocol: str) -> None:
    server = start_server(share_dir, tmp_path / "server.log", "--signing", "required")
    try:
        source = tmp_path / "signed.bin"
        digest = write_random_file(source, 2 * 1024 * 1024 + 5)
        fetched = tmp_path / "fetched.bin"
        run(server, f'put "{source}" signed.bin; get signed.bin "{fetched}"; ls', protocol)
        assert sha256_of(fetched) == digest
        run(server, "ls", protocol, "--client-protection=sign")
        # The share list goes over IPC$ on a signed session too.
        result = subprocess.run(["smbclient", "-L", f"//{server.host}", "-p", str(server.port),
                                 "-U", f"{USER}%{PASSWORD}", "-m", protocol],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "IPC$" in result.stdout
    finally:
        stop_server(server.process)
    assert_no_server_bugs(server)
