"""Per-thread identity switching (needs root: the tests fail, not skip, without it)."""

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from smbsrv.fs import identity

NOBODY = 65534
T = TypeVar("T")


@pytest.fixture
def public_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="smbsrv-identity-"))
    os.chmod(base, 0o755)  # mkdtemp's 0700 would stop uid 65534 from reaching anything inside
    pub = base / "pub"
    pub.mkdir()
    os.chmod(pub, 0o1777)
    try:
        yield pub
    finally:
        shutil.rmtree(base)


def in_thread(fn: Callable[[], T]) -> T:
    """Run fn on a fresh thread (so this thread's credentials are never touched) and return its result."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread and re-raised there
            box["error"] = exc
        finally:
            identity.become_root()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def test_requires_root() -> None:
    assert identity.running_as_root(), "these tests must run as root"


def test_create_as_nobody_owns_the_file(public_dir: Path) -> None:
    def create() -> int:
        identity.become(NOBODY, NOBODY, ())
        fd = os.open(public_dir / "mine", os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        return os.stat(public_dir / "mine").st_uid

    assert in_thread(create) == NOBODY
    assert os.stat(public_dir / "mine").st_gid == NOBODY


def test_root_only_file_is_not_readable_after_become(public_dir: Path) -> None:
    secret = public_dir / "secret"
    secret.write_text("root only")
    os.chmod(secret, 0o600)

    def read_as_nobody() -> str:
        identity.become(NOBODY, NOBODY, ())
        try:
            return secret.read_text()
        except PermissionError:
            return "denied"

    assert in_thread(read_as_nobody) == "denied"
    assert secret.read_text() == "root only"  # this thread is still root


def test_supplementary_groups_are_per_thread(public_dir: Path) -> None:
    group_file = public_dir / "group-readable"
    group_file.write_text("group")
    os.chown(group_file, 0, 4242)
    os.chmod(group_file, 0o040)
    ready = threading.Event()
    release = threading.Event()

    def hold_identity() -> bool:
        identity.become(NOBODY, NOBODY, (4242,))
        ready.set()
        release.wait(10)
        return group_file.read_text() == "group"

    box: list[bool] = []
    worker = threading.Thread(target=lambda: box.append(in_thread(hold_identity)))
    worker.start()
    assert ready.wait(10)
    try:
        # While the other thread is uid 65534 with group 4242, this thread keeps uid 0 and its own groups.
        assert 4242 not in os.getgroups()
        probe = public_dir / "made-by-root"
        probe.write_text("x")
        assert os.stat(probe).st_uid == 0
    finally:
        release.set()
        worker.join()
    assert box == [True]

    def without_group() -> str:
        identity.become(NOBODY, NOBODY, ())
        try:
            return group_file.read_text()
        except PermissionError:
            return "denied"

    assert in_thread(without_group) == "denied"


def test_repeated_become_makes_no_system_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def check() -> int:
        identity.become(NOBODY, NOBODY, ())
        calls = 0
        real = identity._switch

        def counting(*args: object) -> None:
            nonlocal calls
            calls += 1
            real(*args)  # type: ignore[arg-type]

        real_to_server = identity._to_server

        def counting_to_server() -> None:
            nonlocal calls
            calls += 1
            real_to_server()

        monkeypatch.setattr(identity, "_switch", counting)
        monkeypatch.setattr(identity, "_to_server", counting_to_server)
        identity.become(NOBODY, NOBODY, ())
        identity.become(NOBODY, NOBODY, ())
        identity.become(1000, 1000, ())
        identity.become_root()
        identity.become_root()
        return calls

    before = identity.current()
    assert in_thread(check) == 2
    assert identity.current() == before  # the switches stayed on the other thread


def test_become_root_restores_access(public_dir: Path) -> None:
    secret = public_dir / "secret2"
    secret.write_text("x")
    os.chmod(secret, 0o600)

    def flip() -> str:
        identity.become(NOBODY, NOBODY, ())
        identity.become_root()
        return secret.read_text()

    assert in_thread(flip) == "x"


def test_acting_as_ends_as_the_server(public_dir: Path) -> None:
    secret = public_dir / "secret3"
    secret.write_text("x")
    os.chmod(secret, 0o600)

    def scoped() -> tuple[str, str]:
        with identity.acting_as(NOBODY, NOBODY, ()):
            try:
                inside = secret.read_text()
            except PermissionError:
                inside = "denied"
            with identity.as_server():
                server_inside = secret.read_text()  # the server's own I/O inside a client's step
            try:
                secret.read_text()
                raise AssertionError("as_server() did not give the client's identity back")
            except PermissionError:
                pass
        return inside, server_inside + secret.read_text()

    assert in_thread(scoped) == ("denied", "xx")


def test_lazy_import_while_acting_as_a_client_runs_as_the_server(tmp_path: Path) -> None:
    """A module in a directory only root can read is imported from a thread acting as nobody (issue 11: the
    Python installation may be root's alone)."""
    private = Path(tempfile.mkdtemp(prefix="smbsrv-private-"))
    os.chmod(private, 0o700)
    (private / "smbsrv_lazy_probe.py").write_text("VALUE = 42\n")
    import sys

    sys.path.insert(0, str(private))
    try:
        def lazily() -> object:
            with identity.acting_as(NOBODY, NOBODY, ()):
                try:
                    import smbsrv_lazy_probe
                except ImportError as exc:
                    return exc
                return smbsrv_lazy_probe.VALUE

        identity.install_import_guard()
        assert in_thread(lazily) == 42
    finally:
        sys.path.remove(str(private))
        sys.modules.pop("smbsrv_lazy_probe", None)
        shutil.rmtree(private)


def test_worker_threads_start_as_the_server(public_dir: Path) -> None:
    """A thread spawned by a thread acting as a client inherits that identity; become_root as the initializer
    gives the worker the server's identity back."""
    from concurrent.futures import ThreadPoolExecutor

    secret = public_dir / "secret4"
    secret.write_text("x")
    os.chmod(secret, 0o600)

    def spawn_from_client() -> str:
        with identity.acting_as(NOBODY, NOBODY, ()):
            pool = ThreadPoolExecutor(max_workers=1, initializer=identity.become_root)
            future = pool.submit(secret.read_text)
        try:
            return future.result()
        finally:
            pool.shutdown()

    assert in_thread(spawn_from_client) == "x"
