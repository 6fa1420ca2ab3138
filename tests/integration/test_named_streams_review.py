"""Review of the named-streams change (ed633c6, 545af2c, ff1fbcd): sequences where smbsrv loses or corrupts data,
bypasses a share mode, or keeps state it should not. Each test runs the same client sequence on Samba 4.17 with
`vfs objects = streams_xattr` and on smbsrv when Samba is the yardstick (tests/integration/test_named_streams.py's
runner), or on smbsrv alone with the spec reason when Samba has no answer to copy. A test marked xfail(strict)
is a known bug of smbsrv: the mark goes with the fix.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests import builders as b
from tests.conftest import serving_account
from tests.differential.run import Runner, servers
from tests.integration.test_named_streams import (
    FILE_SHARE_READ,
    STREAMS_XATTR,
    _both,
    _make,
    _rename,
    _xattr,
)

pytestmark = [
    pytest.mark.skipif(shutil.which("smbd") is None, reason="Samba's smbd is not installed (apt-get install samba)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="both servers run as root serving a non-root account"),
]


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    account = serving_account()
    assert account is not None
    with servers(account.pw_name, (account.pw_uid, account.pw_gid), samba_share_lines=STREAMS_XATTR) as pair:
        yield pair


@pytest.mark.xfail(reason="BUG: a stream renamed to '::$DATA' replaces the file's data (truncate + write) past "
                          "other opens' share modes and oplocks; Samba 4.17 leaves the file and the stream as they "
                          "were", strict=True)
def test_stream_renamed_onto_the_default_stream_keeps_the_file_data(runner: Runner) -> None:
    """FileRenameInformation ":$DATA"/"::$DATA" with ReplaceIfExists through a stream handle of a file that has
    data, while another client holds the file open sharing only read: the file keeps its data ([MS-FSA]
    2.1.5.15.12.1 replaces the default stream only when it is empty; Samba 4.17 answers SUCCESS and changes
    nothing) and its stream stays."""
    for side, client, base in _both(runner):
        other = side.clients[1]
        _make(client, f"{base}\\f", b"base data")
        _make(client, f"{base}\\f:s", b"SSS")
        held = other.open(f"{base}\\f", desired_access=b.GENERIC_READ, share_access=FILE_SHARE_READ)
        _rename(client, f"{base}\\f:s", "::$DATA", replace=True)
        assert other.close_file(held) == b.STATUS_SUCCESS
        assert (side.share_dir / base / "f").read_bytes() == b"base data", side.name
        assert _xattr(side, f"{base}/f", "s") == b"SSS\x00", side.name
