"""Fixtures shared by the integration tests that run one client against Samba and smbsrv side by side."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import serving_account
from tests.differential.run import STREAMS_SAMBA_LINES, Runner, servers


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    """Samba 4.17 and smbsrv, both run as root serving the same non-root account from sibling directories
    (tests/differential/run.py). Samba has vfs_streams_xattr, as `python -m tests.differential.run` starts it:
    the sequences without streams answer the same as without the module (seeds 1-12000 measured), and the
    named-stream tests need it."""
    account = serving_account()
    assert account is not None
    with servers(account.pw_name, (account.pw_uid, account.pw_gid), samba_share_lines=STREAMS_SAMBA_LINES) as pair:
        yield pair
