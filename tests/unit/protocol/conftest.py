"""The sans-IO server the protocol tests drive: one connected peer (session, tree, a file and a directory open),
closed after the test. Tests that need another setup (another account, a shared server) define their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.sans_io import Peer, SansIoServer


@pytest.fixture()
def peer() -> Iterator[Peer]:
    server = SansIoServer()
    connected = server.connect()
    try:
        yield connected
    finally:
        connected.close()
        server.close()
