"""FileTable: what close() tells the caller to do, has_open_below(), and the opens each user holds."""

from __future__ import annotations

from types import SimpleNamespace

from smbsrv.auth.users import User
from smbsrv.files import FileTable
from smbsrv.fs.handle import FileHandle
from smbsrv.fs.resolver import ShareRoot
from smbsrv.protocol.objects import Open, Session

ROOT = ShareRoot.open("/", case_sensitive=True)  # table.Link compares share roots by their directory
TREE = SimpleNamespace(share_root=ROOT)


def make_open(key: tuple[int, int], *components: str, posix: bool = False, delete: bool = False) -> Open:
    return Open(file_id=(1, 1), tree=TREE, session=Session(session_id=1), granted_access=0x1F01FF,  # type: ignore[arg-type]
                share_access=7, create_options=0, path_components=components, handle=FileHandle(key=key), posix=posix,
                delete_on_close=delete)


def test_delete_waits_for_the_last_open() -> None:
    table = FileTable()
    first, second = make_open((1, 5), "a"), make_open((1, 5), "a")
    table.add(first)
    table.add(second)
    table.set_delete_pending(first, True)
    assert table.is_delete_pending(second)
    assert not table.close(first).delete_now
    assert table.is_delete_pending(second)  # the other opener still sees it
    assert table.close(second).delete_now
    assert table.get((1, 5)) is None


def test_undeleting_clears_the_file_state() -> None:
    table = FileTable()
    first, second = make_open((1, 5), "a"), make_open((1, 5), "a")
    table.add(first)
    table.add(second)
    table.set_delete_pending(first, True)
    table.set_delete_pending(first, False)
    assert not table.is_delete_pending(second)
    assert not table.close(first).delete_now
    assert not table.close(second).delete_now


def test_posix_delete_goes_at_once_when_only_posix_opens_remain() -> None:
    table = FileTable()
    posix, other = make_open((1, 6), "p", posix=True, delete=True), make_open((1, 6), "p", posix=True)
    table.add(posix)
    table.add(other)
    assert table.close(posix).delete_now
    assert not table.close(other).delete_now
    windows = make_open((1, 7), "w")
    posix = make_open((1, 7), "w", posix=True, delete=True)
    table.add(windows)
    table.add(posix)
    assert not table.close(posix).delete_now  # a Windows open remains: the delete is pending
    assert table.close(windows).delete_now


def test_locks_go_with_their_open() -> None:
    table = FileTable()
    first, second = make_open((1, 8), "f"), make_open((1, 8), "f")
    table.add(first)
    state = table.add(second)
    assert state.locks.try_lock(first, 0, 10, True)
    assert not state.locks.try_lock(second, 5, 1, False)
    table.close(first)
    assert state.locks.try_lock(second, 5, 1, False)


def test_has_open_below_follows_adds_closes_and_renames() -> None:
    table = FileTable()
    directory = make_open((1, 1), "d")
    child = make_open((1, 2), "d", "e", "f")
    table.add(directory)
    assert not table.has_open_below(directory)
    table.add(child)
    assert table.has_open_below(directory)
    assert table.has_open_below(make_open((1, 3), "d", "e"))
    assert table.has_open_below(make_open((1, 4)))  # the share root
    table.renamed(child, ("g",))
    assert not table.has_open_below(directory)
    other_share = make_open((1, 9), "d")
    other_share.tree = SimpleNamespace(share_root=ShareRoot.open("/proc", case_sensitive=True))
    table.renamed(child, ("d", "x"))
    assert not table.has_open_below(other_share)
    table.close(child)
    assert not table.has_open_below(directory)
    assert table.has_open_below(make_open((1, 4)))  # the directory itself
    table.close(directory)
    assert not table.has_open_below(make_open((1, 4)))


def _session(user: User | None) -> Session:
    session = Session(session_id=1)
    session.user = user
    return session


def test_opens_are_counted_per_user_over_sessions() -> None:
    alice, bob = (User(name, b"\0" * 16, name, 1000 + index, 1000, ()) for index, name in enumerate(("alice", "bob")))
    first, second, guest = _session(alice), _session(alice), _session(None)
    table = FileTable()
    opens = [make_open((1, 5), "a"), make_open((1, 6), "b"), make_open((1, 6), "b")]
    for open_, session in zip(opens, (first, second, guest)):
        open_.session = session
        table.add(open_)
    assert table.held_by(first) == table.held_by(second) == 2  # both sessions of alice
    assert table.held_by(_session(bob)) == 0
    assert table.held_by(_session(None)) == 1  # guests and anonymous sessions share one count
    table.rekey(opens[0], (1, 7))  # the same open on another file
    assert table.held_by(first) == 2
    table.close(opens[1])
    table.close(opens[1])  # a second close of the same open counts nothing
    assert table.held_by(first) == 1
    first.user = bob  # a re-authentication as another user: the open stays in alice's count until closed
    table.close(opens[0])
    table.close(opens[2])
    assert table.held_by(second) == table.held_by(guest) == table.held_by(first) == 0
