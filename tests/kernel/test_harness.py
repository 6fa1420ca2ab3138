"""Fast checks of the cifs.ko test harness itself (no guest boot): console parsing, the kernel-log rules,
the cpio writer, module dependency ordering and the namespace relay."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from tests.kernel.cpio import CpioWriter
from tests.kernel.image import ImageBuildError, select_modules
from tests.kernel.kernel_log import check_kernel_log
from tests.kernel.netns import NetNamespace, TcpRelay
from tests.kernel.vm import parse_console

CONSOLE = (
    "\x1bc\x1b[?7l\x1b[2JSeaBIOS (version 1.16.2)\r\n"
    "Probing EDD (edd=off to disable)... o\x1bc\x1b[?7l\x1b[2JSMBTEST-BOOTED 1.80\r\n"
    "SMBTEST-BEGIN 2.40\r\n"
    "PASS 3.1.1/strict/mount 0.16\r\n"
    "FAIL 3.1.1/strict/chmod 0.08 rc=1\r\n"
    "| check failed: write bit not back\r\n"
    "| second line\r\n"
    "PASS 3.1.1/strict/flock 0.17\r\n"
    "PASS 3.1.1/strict/twice 0.1\r\n"
    "FAIL 3.1.1/strict/twice 0.1 rc=1\r\n"
    "| this log line belongs to twice\r\n"
    "SMBTEST-END 9.50\r\n"
    "SMBTEST-DMESG-BEGIN\r\n"
    "[    0.000000] Linux version 6.1.0\r\n"
    "PASS not/a/step/inside/dmesg\r\n"
    "SMBTEST-DMESG-END\r\n"
    "SMBTEST-EXIT 1\r\n"
    "[    9.9] reboot: Power down\r\n"
)


def test_parse_console_steps_and_marks() -> None:
    result = parse_console(CONSOLE)
    assert result.steps == {
        "3.1.1/strict/mount": True,
        "3.1.1/strict/chmod": False,
        "3.1.1/strict/flock": True,
        "3.1.1/strict/twice": False,
    }
    assert result.failed_steps == ["3.1.1/strict/chmod", "3.1.1/strict/twice"]
    assert result.failure_logs["3.1.1/strict/chmod"] == ["check failed: write bit not back", "second line"]
    assert result.failure_logs["3.1.1/strict/twice"] == ["this log line belongs to twice"]
    assert result.exit_code == 1
    assert result.guest_marks_s == {"BOOTED": 1.8, "BEGIN": 2.4, "END": 9.5}
    assert result.dmesg == ["[    0.000000] Linux version 6.1.0", "PASS not/a/step/inside/dmesg"]


def test_parse_console_without_exit_marker() -> None:
    result = parse_console("SMBTEST-BEGIN 2.0\nPASS a 0.1\n[ 3.0] Kernel panic - not syncing\n")
    assert result.exit_code == -1
    assert result.steps == {"a": True}


def _dmesg(*lines: str) -> list[str]:
    return [f"[{index:5d}.000000] {line}" for index, line in enumerate(lines)]


def test_kernel_log_flags_unexpected_cifs_error() -> None:
    problems, allowed = check_kernel_log(_dmesg(
        "SMBTEST-STEP 3.0/strict/rename",
        "CIFS: Attempting to mount \\\\10.0.2.2\\share",
        "CIFS: VFS: \\\\10.0.2.2 Close unmatched open for MID:42",
    ), "smbsrv")
    assert [entry.step for entry in problems] == ["3.0/strict/rename"]
    assert not allowed


def test_kernel_log_expected_stretch_only_covers_listed_messages() -> None:
    problems, allowed = check_kernel_log(_dmesg(
        "SMBTEST-STEP negative/wrong_password",
        "SMBTEST-EXPECTED-ERRORS-BEGIN wrong_password",
        "CIFS: VFS: \\\\10.0.2.2 Send error in SessSetup = -13",
        "CIFS: VFS: cifs_mount failed w/return code = -13",
        "CIFS: VFS: \\\\10.0.2.2 sign fail cmd 0x3 message id 0x2",
        "SMBTEST-EXPECTED-ERRORS-END wrong_password",
        "CIFS: VFS: cifs_mount failed w/return code = -13",
    ), "smbsrv")
    assert len(allowed) == 2
    assert [entry.line for entry in problems] == [
        "CIFS: VFS: \\\\10.0.2.2 sign fail cmd 0x3 message id 0x2",
        "CIFS: VFS: cifs_mount failed w/return code = -13",
    ]


@pytest.mark.parametrize(
    ("server", "step", "hex_line", "is_allowed"),
    [
        ("samba", "2.1/none/hardlink", "00000000: 424d53fe 00000040 00000000 00000012  .SMB@...........", True),
        ("samba", "2.1/none/rename", "00000000: 424d53fe 00000040 00000000 00000012  .SMB@...........", False),
        ("samba", "2.1/none/hardlink", "00000000: 424d53fe 00000040 00000000 00000008  .SMB@...........", False),
        # smbsrv breaks leases too (files/oplocks.py): the same noise, and only there.
        ("smbsrv", "2.1/none/hardlink", "00000000: 424d53fe 00000040 00000000 00000012  .SMB@...........", True),
        ("smbsrv", "2.1/none/rename", "00000000: 424d53fe 00000040 00000000 00000012  .SMB@...........", False),
        ("other", "2.1/none/hardlink", "00000000: 424d53fe 00000040 00000000 00000012  .SMB@...........", False),
    ],
)
def test_kernel_log_hardlink_lease_noise(server: str, step: str, hex_line: str, is_allowed: bool) -> None:
    problems, allowed = check_kernel_log(_dmesg(
        f"SMBTEST-STEP {step}",
        "CIFS: VFS: \\\\10.0.2.2 No task to wake, unknown frame received! NumMids 1",
        hex_line,
    ), server)
    assert (len(allowed), len(problems)) == ((1, 0) if is_allowed else (0, 1))


def test_kernel_log_flags_kernel_warnings() -> None:
    problems, _ = check_kernel_log(_dmesg("SMBTEST-STEP x/y/z", "WARNING: CPU: 0 PID: 1 at fs/smb/client/file.c:1"),
                                   "samba")
    assert len(problems) == 1


def _read_newc(data: bytes) -> dict[str, tuple[int, bytes, int, int]]:
    """name -> (mode, data, rdev_major, rdev_minor), checking the layout rules of the format."""
    members: dict[str, tuple[int, bytes, int, int]] = {}
    offset = 0
    while True:
        assert data[offset:offset + 6] == b"070701"
        fields = [int(data[offset + 6 + 8 * i:offset + 14 + 8 * i], 16) for i in range(13)]
        mode, file_size, rdev_major, rdev_minor, name_size = fields[1], fields[6], fields[9], fields[10], fields[11]
        name_start = offset + 110
        name = data[name_start:name_start + name_size - 1].decode()
        assert data[name_start + name_size - 1] == 0
        data_start = (name_start + name_size + 3) & ~3
        if name == "TRAILER!!!":
            return members
        members[name] = (mode, data[data_start:data_start + file_size], rdev_major, rdev_minor)
        offset = (data_start + file_size + 3) & ~3


def test_cpio_writer_layout() -> None:
    archive = CpioWriter()
    archive.add_file("a/b/file.txt", b"hello", perm=0o600)
    archive.add_symlink("bin/sh", "busybox")
    archive.add_char_device("dev/console", 5, 1)
    data = archive.finish()
    assert len(data) % 512 == 0
    members = _read_newc(data)
    assert list(members) == ["a", "a/b", "a/b/file.txt", "bin", "bin/sh", "dev", "dev/console"]
    assert members["a/b/file.txt"][:2] == (stat.S_IFREG | 0o600, b"hello")
    assert members["bin/sh"][:2] == (stat.S_IFLNK | 0o777, b"busybox")
    assert members["dev/console"][0] == stat.S_IFCHR | 0o600
    assert members["dev/console"][2:] == (5, 1)
    assert stat.S_ISDIR(members["a/b"][0])


def _fake_module(root: Path, relative: str, depends: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF junk\0license=GPL\0depends=" + depends.encode() + b"\0vermagic=6.1\0")


def test_select_modules_orders_dependencies_first(tmp_path: Path) -> None:
    _fake_module(tmp_path, "kernel/fs/cifs.ko", "netfs,cifs_md4")
    _fake_module(tmp_path, "kernel/fs/netfs.ko", "")
    _fake_module(tmp_path, "kernel/fs/cifs_md4.ko", "")
    _fake_module(tmp_path, "kernel/net/virtio-net.ko", "netfs")
    (tmp_path / "modules.builtin").write_text("kernel/crypto/aes_generic.ko\n")
    ordered = [relative for relative, _ in select_modules(tmp_path, ("cifs", "virtio_net", "aes_generic"))]
    assert ordered == ["kernel/fs/netfs.ko", "kernel/fs/cifs_md4.ko", "kernel/fs/cifs.ko", "kernel/net/virtio-net.ko"]


def test_select_modules_rejects_missing_and_cycles(tmp_path: Path) -> None:
    _fake_module(tmp_path, "kernel/a.ko", "b")
    _fake_module(tmp_path, "kernel/b.ko", "a")
    with pytest.raises(ImageBuildError, match="cycle"):
        select_modules(tmp_path, ("a",))
    with pytest.raises(ImageBuildError, match="not found"):
        select_modules(tmp_path, ("nope",))


def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    return server


def _echo_once(server: socket.socket) -> None:
    connection, _ = server.accept()
    with connection:
        connection.sendall(connection.recv(100).upper())


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_relay_reaches_only_the_relayed_port() -> None:
    relayed, other = _listener(), _listener()
    with relayed, other:
        port = relayed.getsockname()[1]
        echo = threading.Thread(target=_echo_once, args=(relayed,), daemon=True)
        echo.start()
        with NetNamespace() as namespace, TcpRelay(namespace, port, port):
            with namespace.socket() as inside:
                inside.settimeout(10)
                inside.connect(("127.0.0.1", port))
                inside.sendall(b"ping")
                assert inside.recv(100) == b"PING"
            # The host's other listener is not visible from inside the namespace.
            with namespace.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", other.getsockname()[1])) != 0
        echo.join(timeout=5)
        assert not Path(namespace.path).exists()
