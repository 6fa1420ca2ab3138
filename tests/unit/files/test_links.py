"""FileTable keeps delete-pending per name of a file (table.Link, [MS-FSA] Open.Link.IsDeleted), not per file:
the opens through a file's other hard links neither see a pending delete nor hold it up."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from smbsrv.files import FileTable
from smbsrv.fs.resolver import ShareRoot
from smbsrv.protocol.objects import Open
from tests.unit.files import test_table

KEY = (1, 40)
TREE = SimpleNamespace(share_root=ShareRoot.open("/", case_sensitive=True))


def make_open(key: tuple[int, int], *components: str, **kwargs: bool) -> Open:
    open_ = test_table.make_open(key, *components, **kwargs)
    open_.tree = TREE  # type: ignore[assignment]
    return open_


def test_a_disposition_marks_only_its_name() -> None:
    table = FileTable()
    through_a, through_b = make_open(KEY, "a"), make_open(KEY, "b")
    table.add(through_a)
    table.add(through_b)
    table.set_delete_pending(through_a, True)
    assert table.is_delete_pending(through_a)
    assert not table.is_delete_pending(through_b)
    root = through_a.tree.share_root
    assert table.is_name_delete_pending(KEY, root, ("a",))
    assert not table.is_name_delete_pending(KEY, root, ("b",))
    assert not table.is_name_delete_pending(KEY, ShareRoot.open("/tmp", case_sensitive=True), ("a",))  # another share
    assert not table.is_name_delete_pending((1, 41), root, ("a",))  # another file
    effects = table.close(through_a)  # the last open through a: a goes, b's open stays
    assert effects.delete_now and effects.deleter is not None
    assert not table.close(through_b).delete_now
    assert table.get(KEY) is None


def test_the_name_waits_for_its_own_last_open_only() -> None:
    table = FileTable()
    first_a, second_a, through_b = make_open(KEY, "a"), make_open(KEY, "a"), make_open(KEY, "b")
    for open_ in (first_a, through_b, second_a):
        table.add(open_)
    assert first_a.link is second_a.link is not through_b.link
    table.set_delete_pending(through_b, True)
    assert not table.close(first_a).delete_now
    assert not table.close(second_a).delete_now  # a was never marked
    assert table.close(through_b).delete_now


def test_delete_on_close_marks_the_name_at_close() -> None:
    table = FileTable()
    doomed, other_a, through_b = make_open(KEY, "a", delete=True), make_open(KEY, "a"), make_open(KEY, "b")
    for open_ in (doomed, other_a, through_b):
        table.add(open_)
    assert not table.is_delete_pending(other_a)
    assert not table.close(doomed).delete_now  # other_a still holds a
    assert table.is_delete_pending(other_a) and not table.is_delete_pending(through_b)
    assert table.close(other_a).delete_now
    assert not table.close(through_b).delete_now


def test_a_rename_moves_only_the_opens_of_its_name_with_the_pending_delete() -> None:
    table = FileTable()
    first_a, second_a, through_b = make_open(KEY, "a"), make_open(KEY, "a"), make_open(KEY, "b")
    for open_ in (first_a, second_a, through_b):
        table.add(open_)
    table.set_delete_pending(first_a, True)
    moved = table.renamed(first_a, ("d", "c"))
    assert moved == [first_a, second_a]
    assert through_b.path_components == ("b",) and second_a.path_components == ("d", "c")
    root = first_a.tree.share_root
    assert table.is_name_delete_pending(KEY, root, ("d", "c"))
    assert not table.is_name_delete_pending(KEY, root, ("a",))
    joined = make_open(KEY, "d", "c")  # an open of the new name joins the moved link
    table.add(joined)
    assert joined.link is first_a.link
    directory = make_open((1, 50), "d")
    directory.path_components = ("e",)  # a POSIX rename moved d to e: the name's opens follow
    table.moved_below(directory, ("d",))
    assert table.is_name_delete_pending(KEY, root, ("e", "c"))


def test_posix_delete_counts_only_the_opens_of_its_name() -> None:
    table = FileTable()
    posix = make_open(KEY, "p", posix=True, delete=True)
    windows_other_name = make_open(KEY, "q")
    table.add(posix)
    table.add(windows_other_name)
    assert table.close(posix).delete_now  # a Windows open of another name does not hold p
    assert not table.close(windows_other_name).delete_now


def test_rekey_keeps_the_pending_delete_of_the_name() -> None:
    table = FileTable()
    open_ = make_open(KEY, "h")
    table.add(open_)
    table.set_delete_pending(open_, True)
    table.rekey(open_, (1, 60))
    assert table.get(KEY) is None
    assert table.is_name_delete_pending((1, 60), open_.tree.share_root, ("h",))
    assert table.close(open_).delete_now


def test_shares_are_told_apart_by_their_directory(tmp_path: Path) -> None:
    """Another share is another name; a new ShareRoot of the same directory (a tree connect after a reload that
    changed the share's options, or another spelling of its path) is the same share, as Samba hashes the share's
    canonical path with the name."""
    (tmp_path / "other").mkdir()
    table = FileTable()
    here, there, reloaded = make_open(KEY, "a"), make_open(KEY, "a"), make_open(KEY, "a")
    roots = [ShareRoot.open(str(path), case_sensitive=True)
             for path in (tmp_path, tmp_path / "other", tmp_path / "other" / "..")]
    try:
        for open_, root in zip((here, there, reloaded), roots, strict=True):
            open_.tree = SimpleNamespace(share_root=root)  # type: ignore[assignment]
            table.add(open_)
        assert here.link is reloaded.link is not there.link
        table.set_delete_pending(here, True)
        assert table.is_delete_pending(reloaded) and not table.is_delete_pending(there)
    finally:
        for root in roots:
            root.close()


def test_a_directory_has_one_name_whatever_the_path() -> None:
    """A directory has no hard links: its opens share one Link even through another path to it (a share whose
    root lies inside another share), so a delete pending on it is everyone's."""
    table = FileTable()
    outer, inner = make_open((1, 70), "sub", "d"), make_open((1, 70), "d")
    outer.is_directory = inner.is_directory = True
    table.add(outer)
    table.add(inner)
    assert outer.link is inner.link
    table.set_delete_pending(inner, True)
    assert table.is_delete_pending(outer)
    assert table.is_name_delete_pending((1, 70), TREE.share_root, ("sub", "d"))
    assert not table.close(inner).delete_now
    assert table.close(outer).delete_now


def test_opens_below_count_through_every_share_root_of_the_directory(tmp_path: Path) -> None:
    """A reload gives later tree connects a new ShareRoot of the same directory: a file open below a directory
    through the older one still holds a rename of the directory (has_open_below), and a POSIX rename of the
    directory moves its path (moved_below), so its Link keeps one name and a new open of the moved name
    through the newer ShareRoot still finds it delete-pending."""
    table = FileTable()
    older, newer = (ShareRoot.open(str(tmp_path), case_sensitive=True) for _ in range(2))
    try:
        below, directory = make_open(KEY, "d", "f"), make_open((1, 80), "d")
        directory.is_directory = True
        below.tree = SimpleNamespace(share_root=older)  # type: ignore[assignment]
        directory.tree = SimpleNamespace(share_root=newer)  # type: ignore[assignment]
        table.add(below)
        table.add(directory)
        assert table.has_open_below(directory)
        table.set_delete_pending(below, True)
        directory.path_components = ("e",)
        table.moved_below(directory, ("d",))
        assert below.path_components == ("e", "f")
        assert table.is_name_delete_pending(KEY, newer, ("e", "f"))
    finally:
        older.close()
        newer.close()


def test_a_file_through_a_share_inside_another_is_one_name(tmp_path: Path) -> None:
    """A share whose root lies inside another share's reaches the same name by another path ("sub/f" and "f"):
    one Link, as Samba hashes the share's canonical path with the name, so a delete pending through one share
    holds for the other; a rename through the outer share moves the inner open's path within its own share."""
    (tmp_path / "sub").mkdir()
    outer_root, inner_root = (ShareRoot.open(str(path), case_sensitive=True) for path in (tmp_path, tmp_path / "sub"))
    try:
        table = FileTable()
        outer, inner, other_name = make_open(KEY, "sub", "f"), make_open(KEY, "f"), make_open(KEY, "g")
        outer.tree = SimpleNamespace(share_root=outer_root)  # type: ignore[assignment]
        inner.tree = other_name.tree = SimpleNamespace(share_root=inner_root)  # type: ignore[assignment]
        for open_ in (outer, inner, other_name):
            table.add(open_)
        assert outer.link is inner.link is not other_name.link
        table.set_delete_pending(inner, True)
        assert table.is_name_delete_pending(KEY, outer_root, ("sub", "f"))
        assert not table.is_name_delete_pending(KEY, outer_root, ("sub", "g"))
        table.renamed(outer, ("sub", "h"))
        assert inner.path_components == ("h",)
        assert table.is_name_delete_pending(KEY, inner_root, ("h",))
        table.renamed(outer, ("elsewhere",))  # out of the inner share: its open keeps the name it had there
        assert inner.path_components == ("h",) and outer.path_components == ("elsewhere",)
    finally:
        outer_root.close()
        inner_root.close()
