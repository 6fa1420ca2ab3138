"""CHANGE_NOTIFY requests for the raw client (tests/builders.py) and their FILE_NOTIFY_INFORMATION records."""

from __future__ import annotations

import struct

from smbsrv.fscc import notify as records
from tests import builders as b

ALL = 0x00000FFF
NAMES = 0x00000003  # FILE_NAME | DIR_NAME
WATCH_TREE = 0x0001
ADDED, REMOVED, MODIFIED, OLD_NAME, NEW_NAME = 1, 2, 3, 4, 5
STATUS_NOTIFY_CLEANUP = 0x0000010B
STATUS_NOTIFY_ENUM_DIR = 0x0000010C


def notify_body(file_id: tuple[int, int], output_length: int = 4096, completion_filter: int = ALL,
                flags: int = 0) -> bytes:
    """[MS-SMB2] 2.2.35 CHANGE_NOTIFY Request."""
    return struct.pack("<HHIQQII", 32, flags, output_length, file_id[0], file_id[1], completion_filter, 0)


def send_notify(client: b.Client, file_id: tuple[int, int], **kwargs: int) -> int:
    """Send CHANGE_NOTIFY; returns its message id (the caller receives the interim and final answers)."""
    (message_id,) = client.send(b.Req(b.SMB2_CHANGE_NOTIFY, notify_body(file_id, **kwargs)))
    return message_id


def pending_notify(client: b.Client, file_id: tuple[int, int], **kwargs: int) -> tuple[int, b.Response]:
    """A CHANGE_NOTIFY that must go async: its message id and the interim response."""
    message_id = send_notify(client, file_id, **kwargs)
    interim = client.receive(message_id, skip_pending=False)
    assert b.status_name(interim.status) == "STATUS_PENDING", status(interim)
    return message_id, interim


def status(response: b.Response) -> str:
    if response.status == STATUS_NOTIFY_CLEANUP:
        return "STATUS_NOTIFY_CLEANUP"
    if response.status == STATUS_NOTIFY_ENUM_DIR:
        return "STATUS_NOTIFY_ENUM_DIR"
    return b.status_name(response.status)


def changes(response: b.Response) -> list[tuple[int, str]]:
    assert status(response) == "STATUS_SUCCESS", status(response)
    return records.decode(b.output_buffer(response))


def collect_until(client: b.Client, file_id: tuple[int, int], wanted: tuple[int, str], limit: int = 50,
                  seen: list[tuple[int, str]] | None = None, **kwargs: int) -> list[tuple[int, str]]:
    """Issue CHANGE_NOTIFY requests one after another and gather their records until `wanted` is among them
    (changes made by local processes arrive through the kernel feed, a moment after the fact)."""
    seen = list(seen or [])
    for _ in range(limit):
        if wanted in seen:
            return seen
        message_id = send_notify(client, file_id, **kwargs)
        seen += changes(client.receive(message_id))
        if wanted in seen:
            return seen
    raise AssertionError(f"{wanted} never reported; saw {seen}")
