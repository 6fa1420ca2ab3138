"""`smbsrv user ...`, driven through argparse as the CLI will drive it."""

import argparse
import io
import pathlib
import stat
from collections.abc import Iterator

import pytest

from smbsrv.auth.usercmd import add_user_parser
from smbsrv.auth.users import UserDB, nt_hash


class Session:
    """Parses and runs `user` commands with fake streams and a scripted password prompt."""

    def __init__(self, default_file: pathlib.Path) -> None:
        self.parser = argparse.ArgumentParser(prog="smbsrv")
        add_user_parser(self.parser.add_subparsers(dest="command", required=True), default_file)
        self.prompts: list[str] = []
        self.answers: Iterator[str] = iter(())
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()

    def prompt(self, text: str) -> str:
        self.prompts.append(text)
        return next(self.answers)

    def run(self, *argv: str, stdin: str = "", answers: tuple[str, ...] = ()) -> int:
        from smbsrv.auth.usercmd import run

        args = self.parser.parse_args(["user", *argv])
        assert args.func is run
        self.answers = iter(answers)
        return run(args, stdin=io.StringIO(stdin), stdout=self.stdout, stderr=self.stderr, prompt=self.prompt)


@pytest.fixture
def users_file(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "users"


@pytest.fixture
def cli(users_file: pathlib.Path) -> Session:
    return Session(users_file)


def test_add_with_prompt_asks_twice(cli: Session, users_file: pathlib.Path) -> None:
    assert cli.run("add", "alice", "--unix-user", "nobody", answers=("s3cret", "s3cret")) == 0
    assert len(cli.prompts) == 2
    user = UserDB.load(users_file).lookup("alice")
    assert user is not None and user.nt_hash == nt_hash("s3cret") and user.unix_user == "nobody"
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert b"s3cret" not in users_file.read_bytes()


def test_add_with_mismatched_prompts_fails(cli: Session, users_file: pathlib.Path) -> None:
    assert cli.run("add", "alice", answers=("one", "two")) == 1
    assert "do not match" in cli.stderr.getvalue()
    assert not users_file.exists()


def test_add_from_stdin_and_option(cli: Session, users_file: pathlib.Path) -> None:
    assert cli.run("add", "alice", "--password-stdin", "--unix-user", "nobody", stdin="from stdin\n") == 0
    assert cli.run("add", "bob", "--password", "from option", "--unix-user", "nobody") == 0
    db = UserDB.load(users_file)
    assert db.lookup("alice").nt_hash == nt_hash("from stdin")  # type: ignore[union-attr]
    assert db.lookup("bob").nt_hash == nt_hash("from option")  # type: ignore[union-attr]
    assert cli.prompts == []


def test_password_sources_are_exclusive(cli: Session) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.run("add", "alice", "--password", "x", "--password-stdin")
    assert exit_info.value.code == 2


def test_empty_password_refused(cli: Session, users_file: pathlib.Path) -> None:
    assert cli.run("add", "alice", "--password-stdin", stdin="\n") == 1
    assert not users_file.exists()


def test_add_existing_user_fails_without_prompting(cli: Session) -> None:
    assert cli.run("add", "alice", "--password", "x", "--unix-user", "nobody") == 0
    assert cli.run("add", "ALICE", answers=("y", "y")) == 1
    assert cli.prompts == []
    assert "already exists" in cli.stderr.getvalue()


def test_add_warns_about_a_missing_unix_account(cli: Session) -> None:
    assert cli.run("add", "ghost", "--password", "x", "--unix-user", "no-such-account-xyz") == 0
    assert "does not exist" in cli.stderr.getvalue()


def test_passwd_and_del(cli: Session, users_file: pathlib.Path) -> None:
    assert cli.run("add", "alice", "--password", "old", "--unix-user", "nobody") == 0
    assert cli.run("passwd", "Alice", answers=("new", "new")) == 0
    assert UserDB.load(users_file).lookup("alice").nt_hash == nt_hash("new")  # type: ignore[union-attr]
    assert cli.run("del", "alice") == 0
    assert UserDB.load(users_file).names() == []
    assert cli.run("del", "alice") == 1
    assert cli.run("passwd", "alice", answers=("x", "x")) == 1
    assert "no such user" in cli.stderr.getvalue()


def test_list_shows_accounts_but_no_hashes(cli: Session) -> None:
    assert cli.run("add", "alice", "--password", "pw-a", "--unix-user", "nobody") == 0
    assert cli.run("add", "ghost", "--password", "pw-g", "--unix-user", "no-such-account-xyz") == 0
    assert cli.run("list") == 0
    lines = cli.stdout.getvalue().splitlines()
    assert lines[0].startswith("alice\tnobody\tuid=65534 gid=65534")
    assert lines[1] == "ghost\tno-such-account-xyz\t(no such Unix account)"
    assert nt_hash("pw-a").hex() not in cli.stdout.getvalue().lower()


def test_users_file_option_overrides_the_default(cli: Session, tmp_path: pathlib.Path) -> None:
    other = tmp_path / "other-users"
    assert (
        cli.run("add", "alice", "--users-file", str(other), "--password", "x", "--unix-user", "nobody") == 0
    )
    assert other.exists() and not (tmp_path / "users").exists()


def test_unreadable_file_is_reported(cli: Session, tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("this is not a users file\n")
    assert cli.run("list", "--users-file", str(bad)) == 1
    assert "NAME:NT_HASH:UNIX_USER" in cli.stderr.getvalue()


def test_action_is_required(cli: Session) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.parser.parse_args(["user"])
    assert exit_info.value.code == 2
