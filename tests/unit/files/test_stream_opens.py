"""FileTable and named streams: a stream's opens are kept under the file's key plus the stream's name (their own
sharing and delete-pending), and they hold the file's name, so a delete pending on it waits for them too
([MS-FSA] 2.1.5.5; smbtorture smb2.streams.delete)."""

from __future__ import annotations

from smbsrv.files import FileTable
from smbsrv.fs.handle import StreamHandle
from smbsrv.protocol.objects import Open
from tests.unit.files import test_links

FILE = (1, 40)
STREAM = (1, 40, "S")


def stream_open(*components: str, delete: bool = False) -> Open:
    open_ = test_links.make_open(FILE, *components, delete=delete)
    open_.handle = StreamHandle(key=STREAM, stream="s")
    return open_


def test_stream_opens_are_kept_apart_from_the_file() -> None:
    table = FileTable()
    of_file, of_stream = test_links.make_open(FILE, "f"), stream_open("f")
    table.add(of_file)
    table.add(of_stream)
    assert table.opens(FILE) == [of_file]
    assert table.opens(STREAM) == [of_stream]
    assert table.stream_opens(FILE) == [of_stream]
    table.close(of_stream)
    assert table.stream_opens(FILE) == []
    table.close(of_file)
    assert table.get(FILE) is None and table.get(STREAM) is None


def test_a_deleted_file_goes_at_the_close_of_its_last_stream_open() -> None:
    table = FileTable()
    of_stream, deleting = stream_open("f"), test_links.make_open(FILE, "f", delete=True)
    table.add(of_stream)
    table.add(deleting)
    effects = table.close(deleting)
    assert not effects.delete_now  # the stream's open still holds the name
    root = deleting.tree.share_root
    assert table.is_name_delete_pending(FILE, root, ("f",))
    effects = table.close(of_stream)
    assert effects.delete_file_name and effects.file_deleter is not None
    assert not effects.delete_now  # the stream itself was not deleted
    assert table.get(FILE) is None


def test_a_stream_open_of_another_name_does_not_hold_this_one() -> None:
    table = FileTable()
    of_stream, deleting = stream_open("other link"), test_links.make_open(FILE, "f", delete=True)
    table.add(of_stream)
    table.add(deleting)
    assert table.close(deleting).delete_now
    assert not table.close(of_stream).delete_file_name


def test_a_stream_delete_is_the_streams_own() -> None:
    table = FileTable()
    of_file, doomed_stream = test_links.make_open(FILE, "f"), stream_open("f", delete=True)
    table.add(of_file)
    table.add(doomed_stream)
    effects = table.close(doomed_stream)
    assert effects.delete_now and not effects.delete_file_name  # the stream goes, the file stays
    assert not table.is_name_delete_pending(FILE, of_file.tree.share_root, ("f",))
    assert not table.close(of_file).delete_now


def test_a_renamed_stream_keeps_holding_the_file_name() -> None:
    table = FileTable()
    of_stream, deleting = stream_open("f"), test_links.make_open(FILE, "f", delete=True)
    table.add(of_stream)
    table.add(deleting)
    table.rekey(of_stream, (1, 40, "T"))
    assert not table.close(deleting).delete_now
    assert table.close(of_stream).delete_file_name
