"""CHANGE_NOTIFY against the daemon with raw requests ([MS-SMB2] 2.2.35/2.2.36, 3.3.5.19; [MS-FSA] 2.1.5.10):
the interim response, the records and their relative paths for tree watches, the bounded buffer
(STATUS_NOTIFY_ENUM_DIR), STATUS_NOTIFY_CLEANUP on CLOSE/TREE_DISCONNECT/LOGOFF, CANCEL, refusals (also in the
middle of a compound), changes made by local processes (the kernel feed), and what a watcher must never learn."""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.conftest import SmbServer, serving_account
from tests.integration.notify_helpers import (
    ADDED,
    MODIFIED,
    NAMES,
    NEW_NAME,
    OLD_NAME,
    REMOVED,
    WATCH_TREE,
    changes,
    collect_until,
    notify_body,
    pending_notify,
    send_notify,
    status,
)

_DIR_READ = b.GENERIC_READ
STATUS_INTERNAL_ERROR = 0xC00000E5


@pytest.fixture
def other(server: SmbServer) -> Iterator[b.Client]:
    """A second connection: the one that makes the changes."""
    with b.connect(server.host, server.port, server.user, server.password) as connected:
        yield connected


@pytest.fixture
def folder(client: b.Client) -> str:
    """A fresh directory of the share, made through SMB (so the test account owns it)."""
    name = f"n-{uuid.uuid4().hex[:10]}"
    assert client.close_file(client.open(name, disposition=b.FILE_CREATE, options=b.FILE_DIRECTORY_FILE)) == 0
    return name


def _open_dir(client: b.Client, name: str, access: int = _DIR_READ) -> tuple[int, int]:
    return client.open(name, desired_access=access, options=b.FILE_DIRECTORY_FILE)


def _touch(client: b.Client, name: str) -> None:
    assert client.close_file(client.open(name, desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE)) == 0


def _mkdir(client: b.Client, name: str) -> None:
    assert client.close_file(client.open(name, disposition=b.FILE_CREATE, options=b.FILE_DIRECTORY_FILE)) == 0


def _owned_by_account(path: Path) -> None:
    account = serving_account()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


# -- the interim response and the records ------------------------------------------------------------------------

def test_interim_response_then_the_change(client: b.Client, other: b.Client, folder: str) -> None:
    handle = _open_dir(client, folder)
    message_id, interim = pending_notify(client, handle)
    assert interim.header.is_async and interim.header.async_id != 0
    assert interim.header.credits >= 1  # the interim response grants the credits ([MS-SMB2] 3.3.4.2)
    _touch(other, f"{folder}\\new.txt")
    final = client.receive(message_id, skip_pending=False)
    assert final.header.is_async and final.header.async_id == interim.header.async_id
    assert changes(final) == [(ADDED, "new.txt")]


def test_exact_actions_for_this_servers_operations(client: b.Client, other: b.Client, folder: str) -> None:
    handle = _open_dir(client, folder)
    seen: list[tuple[int, str]] = []

    def step(action: object) -> list[tuple[int, str]]:
        message_id, _ = pending_notify(client, handle)
        action()  # type: ignore[operator]
        got = changes(client.receive(message_id))
        seen.extend(got)
        return got

    assert step(lambda: _mkdir(other, f"{folder}\\sub")) == [(ADDED, "sub")]
    file_id = other.open(f"{folder}\\f.txt", desired_access=b.GENERIC_READ | b.GENERIC_WRITE | b.DELETE,
                         disposition=b.FILE_CREATE)
    assert changes(client.receive(send_notify(client, handle))) == [(ADDED, "f.txt")]
    assert step(lambda: other.write(file_id, 0, b"data")) == [(MODIFIED, "f.txt")]
    # A rename inside the directory: both names in one response, then the file's own MODIFIED (Samba).
    got = step(lambda: other.set_info(file_id, 1, b.FILE_RENAME_INFORMATION, b.rename_info(f"{folder}\\g.txt")))
    assert got[:2] == [(OLD_NAME, "f.txt"), (NEW_NAME, "g.txt")]

    def delete() -> None:
        assert other.set_info(file_id, 1, b.FILE_DISPOSITION_INFORMATION, b.disposition_info()).status == 0
        assert other.close_file(file_id) == 0

    assert step(delete) == [(REMOVED, "g.txt")]


def test_tree_watch_reports_paths_relative_to_the_watched_directory(client: b.Client, other: b.Client,
                                                                    folder: str) -> None:
    _mkdir(other, f"{folder}\\a")
    _mkdir(other, f"{folder}\\a\\b")
    _mkdir(other, f"{folder}\\c")
    tree = _open_dir(client, folder)
    flat = _open_dir(client, folder)
    tree_id, _ = pending_notify(client, tree, flags=WATCH_TREE, completion_filter=NAMES)
    flat_id, _ = pending_notify(client, flat, completion_filter=NAMES)
    _touch(other, f"{folder}\\a\\b\\deep.txt")
    assert changes(client.receive(tree_id)) == [(ADDED, "a\\b\\deep.txt")]
    # Moved to another directory: REMOVED there and ADDED here, as Windows and Samba report a move.
    moving = other.open(f"{folder}\\a\\b\\deep.txt", desired_access=b.DELETE)
    tree_id = send_notify(client, tree, flags=WATCH_TREE, completion_filter=NAMES)
    assert other.set_info(moving, 1, b.FILE_RENAME_INFORMATION, b.rename_info(f"{folder}\\c\\moved.txt")).status == 0
    assert other.close_file(moving) == 0
    assert changes(client.receive(tree_id)) == [(REMOVED, "a\\b\\deep.txt"), (ADDED, "c\\moved.txt")]
    # The watch without WATCH_TREE saw none of that, only a change in the directory itself.
    _touch(other, f"{folder}\\top.txt")
    assert changes(client.receive(flat_id)) == [(ADDED, "top.txt")]


# -- the buffer between requests ---------------------------------------------------------------------------------

def test_too_small_output_buffer_answers_enum_dir(client: b.Client, other: b.Client, folder: str) -> None:
    handle = _open_dir(client, folder)
    # 12 bytes of record header + 2 per character: "longer-name.txt" needs 42, the request allows 16.
    message_id, _ = pending_notify(client, handle, output_length=16)
    _touch(other, f"{folder}\\longer-name.txt")
    assert status(client.receive(message_id)) == "STATUS_NOTIFY_ENUM_DIR"


def test_buffer_overflow_between_requests_answers_enum_dir_once(server: SmbServer, client: b.Client,
                                                               other: b.Client, folder: str) -> None:
    handle = _open_dir(client, folder)
    message_id, _ = pending_notify(client, handle, output_length=1024)
    _touch(other, f"{folder}\\first.txt")
    assert changes(client.receive(message_id)) == [(ADDED, "first.txt")]
    # No request is waiting now: the changes are buffered, within the first request's 1 KiB. 200 names of
    # 40 bytes are more than that, so the buffer gives up and remembers only that it overflowed.
    for index in range(200):
        _touch(other, f"{folder}\\overflowing-{index:04}.txt")
    assert status(client.receive(send_notify(client, handle, output_length=1024))) == "STATUS_NOTIFY_ENUM_DIR"
    # Afterwards the watch works as before.
    message_id, _ = pending_notify(client, handle, output_length=1024)
    _touch(other, f"{folder}\\after.txt")
    assert changes(client.receive(message_id)) == [(ADDED, "after.txt")]


# -- the end of a waiting request --------------------------------------------------------------------------------

def test_close_completes_the_request_with_notify_cleanup(client: b.Client, folder: str) -> None:
    handle = _open_dir(client, folder)
    message_id, _ = pending_notify(client, handle)
    assert client.close_file(handle) == b.STATUS_SUCCESS
    assert status(client.receive(message_id)) == "STATUS_NOTIFY_CLEANUP"


@pytest.mark.parametrize("cancel_by", ["async_id", "message_id"])
def test_cancel_completes_with_cancelled_and_the_watch_goes_on(client: b.Client, other: b.Client, folder: str,
                                                             cancel_by: str) -> None:
    handle = _open_dir(client, folder)
    message_id, interim = pending_notify(client, handle)
    if cancel_by == "async_id":
        client.send(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=0, async_id=interim.header.async_id))
    else:
        client.send(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=message_id))
    assert status(client.receive(message_id)) == "STATUS_CANCELLED"
    message_id, _ = pending_notify(client, handle)
    _touch(other, f"{folder}\\later.txt")
    assert changes(client.receive(message_id)) == [(ADDED, "later.txt")]


def test_cancel_sent_with_the_request_leaves_nothing_queued(client: b.Client, other: b.Client,
                                                           folder: str) -> None:
    """CHANGE_NOTIFY and its CANCEL in one TCP write: the request ends STATUS_CANCELLED and the next change
    goes to the next request, not to the cancelled one (smbtorture smb2.notify.double)."""
    handle = _open_dir(client, folder)
    notify_message, (message_id,) = client.build(b.Req(b.SMB2_CHANGE_NOTIFY, notify_body(handle)))
    cancel_message, _ = client.build(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=message_id))
    frame = struct.Struct(">I")
    assert client.sock is not None
    client.sock.sendall(frame.pack(len(notify_message)) + notify_message + frame.pack(len(cancel_message))
                        + cancel_message)
    assert status(client.receive(message_id)) == "STATUS_CANCELLED"
    message_id, _ = pending_notify(client, handle)
    _touch(other, f"{folder}\\next.txt")
    assert changes(client.receive(message_id)) == [(ADDED, "next.txt")]


@pytest.mark.parametrize("command", [b.SMB2_TREE_DISCONNECT, b.SMB2_LOGOFF])
def test_tree_disconnect_and_logoff_complete_with_notify_cleanup(server: SmbServer, command: int) -> None:
    with b.connect(server.host, server.port, server.user, server.password) as client:
        handle = _open_dir(client, "")
        message_id, _ = pending_notify(client, handle)
        (ending,) = client.send(b.Req(command, struct.pack("<HH", 4, 0)))
        assert status(client.receive(message_id)) == "STATUS_NOTIFY_CLEANUP"
        assert status(client.receive(ending)) == "STATUS_SUCCESS"


def test_connection_loss_drops_the_request(server: SmbServer, other: b.Client, folder: str) -> None:
    client = b.connect(server.host, server.port, server.user, server.password)
    handle = _open_dir(client, folder)
    pending_notify(client, handle)
    client.close()
    # The server forgets the watch with the connection: changes afterwards reach nobody and break nothing.
    for index in range(5):
        _touch(other, f"{folder}\\x{index}.txt")


# -- refusals ---------------------------------------------------------------------------------------------------

def test_refusals(client: b.Client, folder: str) -> None:
    _touch(client, f"{folder}\\plain.txt")
    on_file = client.open(f"{folder}\\plain.txt")
    assert status(client.receive(send_notify(client, on_file))) == "STATUS_INVALID_PARAMETER"
    # Without FILE_LIST_DIRECTORY a watch would list the directory: refused ([MS-SMB2] 3.3.5.19).
    attributes_only = _open_dir(client, folder, access=b.FILE_READ_ATTRIBUTES)
    assert status(client.receive(send_notify(client, attributes_only))) == "STATUS_ACCESS_DENIED"
    # Above the negotiated MaxTransactSize (8 MiB here): STATUS_INVALID_PARAMETER (smb2.notify.valid-req).
    handle = _open_dir(client, folder)
    too_long = send_notify(client, handle, output_length=16 * 1024 * 1024)
    assert status(client.receive(too_long)) == "STATUS_INVALID_PARAMETER"


# -- changes made by local processes -----------------------------------------------------------------------------

def test_local_changes_are_reported_once(server: SmbServer, client: b.Client, other: b.Client,
                                        folder: str) -> None:
    handle = _open_dir(client, folder)
    # The watch exists from its first request on ([MS-FSA] 2.1.5.10): changes before it are nobody's.
    message_id, _ = pending_notify(client, handle, completion_filter=NAMES)
    _touch(other, f"{folder}\\via-smb.txt")
    local = server.share_path / folder / "via-shell.txt"
    local.write_bytes(b"x")
    seen = collect_until(client, handle, (ADDED, "via-shell.txt"), seen=changes(client.receive(message_id)),
                         completion_filter=NAMES)
    # The server's own create is reported by the server, and its kernel event is dropped: once, not twice.
    assert seen.count((ADDED, "via-smb.txt")) == 1
    os.rename(local, local.with_name("renamed-locally.txt"))
    seen = collect_until(client, handle, (NEW_NAME, "renamed-locally.txt"), completion_filter=NAMES)
    assert (OLD_NAME, "via-shell.txt") in seen
    local.with_name("renamed-locally.txt").unlink()
    assert (REMOVED, "renamed-locally.txt") in collect_until(client, handle, (REMOVED, "renamed-locally.txt"),
                                                             completion_filter=NAMES)


def test_a_watcher_never_learns_names_it_could_not_list(server: SmbServer, client: b.Client,
                                                       folder: str) -> None:
    """A tree watch reports nothing from a directory its account cannot list (here root's 0700 directory
    made locally), and nothing outside the share."""
    if serving_account() is None:
        pytest.skip("needs the root server acting as the test account")
    base = server.share_path / folder
    handle = _open_dir(client, folder)
    message_id, _ = pending_notify(client, handle, flags=WATCH_TREE, completion_filter=NAMES)
    secret = base / "secret"
    secret.mkdir(mode=0o700)  # root's, as the test runs as root
    open_dir = base / "open"
    open_dir.mkdir()
    _owned_by_account(open_dir)
    (secret / "hidden.txt").write_bytes(b"x")
    (server.share_path.parent / f"outside-{folder}.txt").write_bytes(b"x")
    (open_dir / "visible.txt").write_bytes(b"x")
    seen = collect_until(client, handle, (ADDED, "open\\visible.txt"), seen=changes(client.receive(message_id)),
                         flags=WATCH_TREE, completion_filter=NAMES)
    assert (ADDED, "secret") in seen  # the directory's own name is in a directory the watcher can list
    assert not [name for _, name in seen if name.startswith("secret\\") or "outside" in name], seen


def test_a_watch_follows_its_directory_when_renamed(server: SmbServer, client: b.Client, other: b.Client,
                                                    folder: str) -> None:
    _mkdir(other, f"{folder}\\before")
    handle = _open_dir(client, f"{folder}\\before", access=b.GENERIC_READ)
    message_id, _ = pending_notify(client, handle, completion_filter=NAMES)
    parent = _open_dir(other, folder)
    parent_id, _ = pending_notify(other, parent, completion_filter=NAMES)
    (server.share_path / folder / "before").rename(server.share_path / folder / "after")  # a local rename
    # Once the parent's watch reported the rename, the kernel feed's event has been handled.
    collect_until(other, parent, (NEW_NAME, "after"), seen=changes(other.receive(parent_id)),
                  completion_filter=NAMES)
    _mkdir(other, f"{folder}\\before")  # a new directory of the old name is another directory
    _touch(other, f"{folder}\\before\\not-mine.txt")
    _touch(other, f"{folder}\\after\\mine.txt")
    seen = collect_until(client, handle, (ADDED, "mine.txt"), seen=changes(client.receive(message_id)),
                         completion_filter=NAMES)
    assert (ADDED, "not-mine.txt") not in seen


def test_changes_made_between_requests_are_all_in_the_next_answer(client: b.Client, folder: str) -> None:
    """The client that watches also makes the changes, request after request with no pause (smbtorture
    smb2.notify.dir): the next CHANGE_NOTIFY answers at once with every one of them, in order."""
    handle = _open_dir(client, folder)
    message_id, _ = pending_notify(client, handle, completion_filter=NAMES)
    _touch(client, f"{folder}\\first.txt")
    assert changes(client.receive(message_id)) == [(ADDED, "first.txt")]
    for index in range(9):
        _touch(client, f"{folder}\\test{index}.txt")
    # The last create and the CHANGE_NOTIFY in one TCP write: the server reads the request right after the
    # create, with no event-loop turn in between.
    last = client.open(f"{folder}\\test9.txt", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE)
    close_message, (close_id,) = client.build(b.Req(b.SMB2_CLOSE, b.close_body(last)))
    notify_message, (notify_id,) = client.build(b.Req(b.SMB2_CHANGE_NOTIFY, notify_body(handle, completion_filter=NAMES)))
    frame = struct.Struct(">I")
    assert client.sock is not None
    client.sock.sendall(frame.pack(len(close_message)) + close_message + frame.pack(len(notify_message))
                        + notify_message)
    assert status(client.receive(close_id)) == "STATUS_SUCCESS"
    assert changes(client.receive(notify_id)) == [(ADDED, f"test{index}.txt") for index in range(10)]


def interim2_compound(client: b.Client, folder: str) -> tuple[int, int, int, tuple[int, int]]:
    """CREATE(folder) + CHANGE_NOTIFY + QUERY_INFO(FileBasicInformation), related: smbtorture
    smb2.compound.interim2's compound. Its three statuses and the handle CREATE made."""
    related = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
    ids = client.send(
        b.Req(b.SMB2_CREATE, b.create_body(folder, desired_access=_DIR_READ, options=b.FILE_DIRECTORY_FILE)),
        b.Req(b.SMB2_CHANGE_NOTIFY, notify_body(related, completion_filter=NAMES), related=True),
        b.Req(b.SMB2_QUERY_INFO, b.query_info_body(related, b.SMB2_0_INFO_FILE, 4), related=True))
    create, notify, query = (client.receive(message_id, skip_pending=False) for message_id in ids)
    assert not notify.header.is_async  # answered within the compound, no interim response
    return create.status, notify.status, query.status, b.create_file_id(create.body)


def test_a_notify_in_the_middle_of_a_compound_fails_and_leaves_no_watch(client: b.Client, other: b.Client,
                                                                       folder: str) -> None:
    """A CHANGE_NOTIFY that would go async with a request after it in its compound is answered
    STATUS_INTERNAL_ERROR at once, as Windows does ([MS-SMB2] 3.3.5.2.7, <262>; smbtorture
    smb2.compound.interim2), and the QUERY_INFO after it is answered as usual. It leaves no watch: a change
    made afterwards reaches no request, and the handle's next CHANGE_NOTIFY starts a watch of its own (it waits,
    and reports only what changed after it). Samba 4.17 (benchmarks/servers.py SambaServer, same client)
    answers STATUS_SUCCESS, STATUS_CANCELLED, STATUS_SUCCESS: it cancels the request (smb2_server.c
    smbd_smb2_request_pending_queue) and keeps its watch, so that next CHANGE_NOTIFY answers at once with
    early.txt."""
    create, notify, query, handle = interim2_compound(client, folder)
    assert (b.status_name(create), hex(notify), b.status_name(query)) == (
        "STATUS_SUCCESS", hex(STATUS_INTERNAL_ERROR), "STATUS_SUCCESS")
    _touch(other, f"{folder}\\early.txt")
    message_id, _ = pending_notify(client, handle, completion_filter=NAMES)
    _touch(other, f"{folder}\\late.txt")
    assert changes(client.receive(message_id)) == [(ADDED, "late.txt")]
    # Nothing else answered the failed request meanwhile.
    assert client.request(b.SMB2_ECHO, b.echo_body()).status == b.STATUS_SUCCESS
    assert not [response for response in client._stash if response.header.command == b.SMB2_CHANGE_NOTIFY]
    assert client.close_file(handle) == b.STATUS_SUCCESS


def test_the_first_change_alone_answers_a_request_read_with_it(client: b.Client, folder: str) -> None:
    """The CHANGE_NOTIFY and, in the same TCP write, CREATE + WRITE + CLOSE of a new file (a client that makes
    its change as soon as the interim response is out; the server reads it all at once): the request is queued
    before anything after it runs, so the ADDED alone answers it and the MODIFIED waits for the next request
    (smbtorture smb2.notify.valid-req wants exactly one change; it got two when the request joined the watch
    only at its task's first step, after the requests read with it)."""
    handle = _open_dir(client, folder)
    notify_message, (notify_id,) = client.build(b.Req(b.SMB2_CHANGE_NOTIFY, notify_body(handle)))
    change_message, change_ids = client.build(
        b.Req(b.SMB2_CREATE, b.create_body(f"{folder}\\made.txt", desired_access=b.GENERIC_WRITE,
                                           disposition=b.FILE_CREATE)),
        b.Req(b.SMB2_WRITE, b.write_body(b.RELATED_FILE_ID, 0, b"data"), related=True),
        b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True))
    frame = struct.Struct(">I")
    assert client.sock is not None
    client.sock.sendall(frame.pack(len(notify_message)) + notify_message + frame.pack(len(change_message))
                        + change_message)
    assert [status(client.receive(message_id)) for message_id in change_ids] == ["STATUS_SUCCESS"] * 3
    assert changes(client.receive(notify_id)) == [(ADDED, "made.txt")]
    assert changes(client.receive(send_notify(client, handle))) == [(MODIFIED, "made.txt")]


def test_stream_actions(client: b.Client, other: b.Client, folder: str) -> None:
    """Named streams (docs/streams.md) report FILE_ACTION_ADDED_STREAM, MODIFIED_STREAM and REMOVED_STREAM for
    "file:stream" to a watch of FILE_NOTIFY_CHANGE_STREAM_NAME | STREAM_SIZE | STREAM_WRITE ([MS-FSCC] 2.7.1);
    the file itself is not reported as added or changed."""
    added_stream, removed_stream, modified_stream = 6, 7, 8
    streams_filter = 0x200 | 0x400 | 0x800
    _touch(other, f"{folder}\\f")
    handle = _open_dir(client, folder)

    def step(action: object) -> list[tuple[int, str]]:
        message_id, _ = pending_notify(client, handle, completion_filter=streams_filter)
        action()  # type: ignore[operator]
        return changes(client.receive(message_id))

    stream: list[tuple[int, int]] = []
    assert step(lambda: stream.append(other.open(f"{folder}\\f:s", desired_access=b.GENERIC_WRITE | b.DELETE,
                                                 disposition=b.FILE_CREATE))) == [(added_stream, "f:s")]
    assert step(lambda: other.write(stream[0], 0, b"zone")) == [(modified_stream, "f:s")]
    disposition = b.disposition_info()
    assert other.set_info(stream[0], b.SMB2_0_INFO_FILE, b.FILE_DISPOSITION_INFORMATION,
                          disposition).status == b.STATUS_SUCCESS
    assert step(lambda: other.close_file(stream[0])) == [(removed_stream, "f:s")]
