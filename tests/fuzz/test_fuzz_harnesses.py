"""Each fuzz harness runs for a bounded time in CI and fails on any finding (see tests/fuzz/run.py).

Both engines run: libFuzzer through atheris (coverage-guided; atheris is in the `test` extras) and the mutation
loop over the captured frames, whose seed changes from run to run and is printed in the output, so a failure
names the seed that replays it (SMBSRV_FUZZ_SEED=N). About a minute in all with the default SMBSRV_FUZZ_SECONDS.

The sans-IO harness's promise of one response per compound element is itself tested below: it must pass what
the real server answers and fail when an answer is missing or doubled.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import builders as b
from tests.fuzz import payloads
from tests.fuzz import requests as hostile
from tests.fuzz.run import atheris_available
from tests.fuzz.sans_io import Finding, Peer, SansIoServer, check_one_response_per_element

FSCTL_SRV_COPYCHUNK_WRITE = 0x001480F2

REPO = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("SMBSRV_FUZZ_SECONDS", "15"))
ENGINES = {"atheris": SECONDS, "mutate": max(1, SECONDS * 2 // 3)}


@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("harness", ["decoders", "request_path"])
def test_harness_finds_nothing(harness: str, engine: str, tmp_path: Path) -> None:
    if engine == "atheris" and not atheris_available():
        pytest.fail("atheris is not installed: `pip install -e .[test]` brings it")
    seconds = ENGINES[engine]
    result = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", "--seconds", str(seconds), "--harness", harness,
         "--engine", engine, "--artifacts", str(tmp_path / "artifacts")],
        check=False, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=seconds + 120)
    output = "\n".join(line for line in (result.stdout + result.stderr).splitlines()
                       if not line.startswith("INFO: Instrumenting"))
    print(output[-3000:])  # the seed (mutate) or libFuzzer's "INFO: Seed:" line, kept in the test log
    assert result.returncode == 0, f"the {harness} harness found something ({engine}):\n{output[-10000:]}"
    if engine == "mutate":
        assert "mutated inputs" in output and "seed" in output


# -- the one-response-per-element check --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sans_io() -> Iterator[SansIoServer]:
    server = SansIoServer()
    yield server
    server.close()


def test_real_compounds_pass_the_check(sans_io: SansIoServer) -> None:
    """Related and unrelated compounds, an element that fails in the middle and a CANCEL (no answer) all keep
    the promise on the real request path."""
    with sans_io.connect() as peer:
        outcome = peer.request(b.Req(b.SMB2_ECHO, b.echo_body()), b.Req(b.SMB2_ECHO, b.echo_body()),
                               b.Req(b.SMB2_READ, b.read_body(peer.file_id, 0, 16)))
        assert len(outcome.responses) == 3
        outcome = peer.request(b.Req(b.SMB2_CREATE, b.create_body("missing.txt")),
                               b.Req(b.SMB2_READ, b.read_body(b.RELATED_FILE_ID, 0, 1), related=True),
                               b.Req(b.SMB2_CLOSE, b.close_body(b.RELATED_FILE_ID), related=True))
        assert [response.status for response in outcome.responses] == [b.STATUS_OBJECT_NAME_NOT_FOUND] * 3
        outcome = peer.request(b.Req(b.SMB2_CANCEL, b.cancel_body(), message_id=12345))
        assert outcome.responses == []


def _message(*commands: int) -> bytes:
    builder = b.Client("127.0.0.1", 0)
    message, _ = builder.build(*(b.Req(command, b.echo_body()) for command in commands), sign=False)
    return bytes(message)


def _response(message_id: int, status: int = b.STATUS_SUCCESS, is_async: bool = False) -> b.Response:
    header = b.Header(1, status, b.SMB2_ECHO, 1, 1 | (b.SMB2_FLAGS_ASYNC_COMMAND if is_async else 0), 0,
                      message_id, 7 if is_async else 0, 0, 0, bytes(16))
    return b.Response(status, struct.pack("<HH", 4, 0), header)


def test_check_catches_a_missing_or_doubled_answer() -> None:
    message = _message(b.SMB2_ECHO, b.SMB2_ECHO, b.SMB2_ECHO)
    check_one_response_per_element(message, [_response(0), _response(1), _response(2)])
    # An interim STATUS_PENDING stands in for a final answer still to come.
    check_one_response_per_element(message, [_response(0), _response(1, b.STATUS_PENDING, True), _response(2)])
    with pytest.raises(Finding, match="got 0 responses"):
        check_one_response_per_element(message, [_response(0), _response(2)])
    with pytest.raises(Finding, match="final responses"):
        check_one_response_per_element(message, [_response(0), _response(1), _response(1), _response(2)])
    # The elements after one that went async holding the chain (a CREATE waiting for a break) come later...
    check_one_response_per_element(message, [_response(0, b.STATUS_PENDING, True)])
    # ... but not the ones before it.
    with pytest.raises(Finding, match="got 0 responses"):
        check_one_response_per_element(message, [_response(1, b.STATUS_PENDING, True)])
    # A CANCEL has no response of its own.
    check_one_response_per_element(_message(b.SMB2_ECHO, b.SMB2_CANCEL), [_response(0)])


# -- the generator reaches what it is meant to ----------------------------------------------------------------------

def _statuses(peer: Peer, messages: list[bytes]) -> list[tuple[int, int]]:
    """(Command, Status) of every answer to `messages`, fed in order until the connection drops."""
    answers = []
    for message in messages:
        if peer.dropped:
            break
        outcome = peer.feed(message)
        answers += [(response.header.command, response.status) for response in outcome.responses + outcome.sent_later]
    return answers


def test_generated_sequences_get_past_the_first_check(sans_io: SansIoServer) -> None:
    """Over 60 seeds, each sequence of tests/fuzz/requests.py gets answers that only a request shaped right can
    get: a srvsvc BIND and REQUEST answered (pipe_chain), a CREATE and a related element on its handle that
    succeed (related_chain), and a COPYCHUNK whose source key names the set-up's open (so that it is checked
    past the key lookup, which answers OBJECT_NAME_NOT_FOUND). A generator change that leaves these behind the
    first length check makes the fuzzers test nothing there."""
    seen: set[str] = set()
    for seed in range(60):
        src = hostile.RandomSource(random.Random(seed))
        with sans_io.connect() as peer:
            handles = hostile.Handles(peer.file_id, peer.dir_id, peer.pipe_id, peer.session_id, peer.tree_id,
                                      peer.ipc_tree_id, peer.resume_key, stream_id=peer.stream_id)
            pipe = _statuses(peer, hostile.pipe_chain(src, handles, peer.builder))
            if pipe.count((b.SMB2_IOCTL, b.STATUS_SUCCESS)) + pipe.count((b.SMB2_READ, b.STATUS_SUCCESS)) >= 2:
                seen.add("srvsvc bind and request")
            related = _statuses(peer, hostile.related_chain(src, handles, peer.builder))
            if related[:1] == [(b.SMB2_CREATE, b.STATUS_SUCCESS)] and any(
                    command != b.SMB2_CLOSE and status == b.STATUS_SUCCESS for command, status in related[1:]):
                seen.add("related element on a new handle")
            body = b.ioctl_body(peer.file_id, FSCTL_SRV_COPYCHUNK_WRITE, payloads.copychunk_input(src, handles))
            copy = _statuses(peer, [bytes(peer.builder.build(b.Req(b.SMB2_IOCTL, body), sign=False)[0])])
            if any(status not in (b.STATUS_OBJECT_NAME_NOT_FOUND, b.STATUS_INVALID_PARAMETER)
                   for _, status in copy):
                seen.add("copychunk past the key lookup")
    assert seen == {"srvsvc bind and request", "related element on a new handle", "copychunk past the key lookup"}
