"""The users file: NT hashes only, mode 0600, atomic rewrite, case-insensitive lookup, Unix identity."""

import logging
import os
import pathlib
import stat

import pytest

from smbsrv.auth import users as users_module
from smbsrv.auth.users import UserDB, UserDBError, nt_hash

PASSWORD = "Pa55word-that-must-not-leak"


def test_nt_hash_matches_ms_nlmp_example() -> None:
    # [MS-NLMP] 4.2.2.1.2: NTOWFv1("Password")
    assert nt_hash("Password") == bytes.fromhex("a4f49c406510bdcab6824ee7c30fd852")


def test_missing_file_is_an_empty_database(tmp_path: pathlib.Path) -> None:
    db = UserDB.load(tmp_path / "users")
    assert len(db) == 0 and db.names() == []
    assert not (tmp_path / "users").exists()


def test_save_load_round_trip_mode_0600_and_no_plaintext(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "users"
    db = UserDB.load(path)
    db.add("alice", PASSWORD, unix_user="nobody")
    db.add("Bob", "bob's password")
    db.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    for secret in (PASSWORD, "bob's password"):
        assert secret.encode() not in raw
        assert secret.encode("utf-16-le") not in raw
    assert nt_hash(PASSWORD).hex().upper().encode() in raw

    loaded = UserDB.load(path)
    assert loaded.names() == ["alice", "Bob"]
    assert loaded.unix_user_of("alice") == "nobody"
    assert loaded.unix_user_of("bob") == "Bob"
    assert [p.name for p in tmp_path.iterdir()] == ["users"]  # no temporary files left behind


def test_save_tightens_an_existing_loose_file(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users"
    path.write_text("alice:" + nt_hash("x").hex() + ":nobody\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        db = UserDB.load(path)
    assert "readable by group or others" in caplog.text
    db.set_password("alice", "y")
    db.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert UserDB.load(path).lookup("alice") is not None


def test_save_replaces_the_file_atomically(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "users"
    db = UserDB.load(path)
    db.add("alice", PASSWORD, unix_user="nobody")
    db.save()
    inode_before = path.stat().st_ino
    db.add("carol", "pw", unix_user="nobody")
    db.save()
    assert path.stat().st_ino != inode_before  # a new file renamed over the old one, never rewritten in place


def test_failed_save_leaves_old_file_and_no_temporary(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "users"
    db = UserDB.load(path)
    db.add("alice", PASSWORD, unix_user="nobody")
    db.save()
    before = path.read_bytes()
    db.add("carol", "pw")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(users_module.os, "replace", broken_replace)
    with pytest.raises(OSError):
        db.save()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["users"]


def test_lookup_is_case_insensitive_and_resolves_the_unix_account() -> None:
    db = UserDB(None)
    db.add("Alice", PASSWORD, unix_user="nobody")
    user = db.lookup("aLICE")
    assert user is not None
    assert user.name == "Alice" and user.nt_hash == nt_hash(PASSWORD)
    assert (user.unix_user, user.uid, user.gid) == ("nobody", 65534, 65534)
    assert 65534 in user.groups
    assert db.lookup("nobody-else") is None
    assert "aLiCe" in db


def test_root_account_groups() -> None:
    db = UserDB(None)
    db.add("admin", PASSWORD, unix_user="root")
    user = db.lookup("admin")
    assert user is not None and user.uid == 0 and user.gid == 0 and 0 in user.groups


def test_default_unix_user_is_the_same_name() -> None:
    db = UserDB(None)
    db.add("root", PASSWORD)
    user = db.lookup("ROOT")
    assert user is not None and user.unix_user == "root" and user.uid == 0


def test_missing_unix_account_refused_when_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users_module.os, "geteuid", lambda: 0)
    db = UserDB(None)
    db.add("ghost", PASSWORD, unix_user="no-such-account-xyz")
    assert db.lookup("ghost") is None


def test_missing_unix_account_acts_as_the_server_when_unprivileged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users_module.os, "geteuid", lambda: 1000)
    db = UserDB(None)
    db.add("ghost", PASSWORD, unix_user="no-such-account-xyz")
    user = db.lookup("ghost")
    assert user is not None
    assert (user.uid, user.gid, user.groups) == (os.getuid(), os.getgid(), tuple(os.getgroups()))


def test_names_differing_only_in_case_are_one_user() -> None:
    db = UserDB(None)
    db.add("alice", PASSWORD)
    with pytest.raises(UserDBError, match="already exists"):
        db.add("ALICE", "other")


def test_set_password_and_remove() -> None:
    db = UserDB(None)
    db.add("alice", "old", unix_user="nobody")
    db.set_password("Alice", "new")
    user = db.lookup("alice")
    assert user is not None and user.nt_hash == nt_hash("new")
    db.remove("ALICE")
    assert db.lookup("alice") is None and len(db) == 0
    with pytest.raises(UserDBError, match="no such user"):
        db.remove("alice")
    with pytest.raises(UserDBError, match="no such user"):
        db.set_password("alice", "x")


@pytest.mark.parametrize("name", ["", " alice", "alice ", "a:b", "a/b", "a\\b", "a\nb", "x" * 65, "a*", "a?"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(UserDBError):
        UserDB(None).add(name, PASSWORD)


@pytest.mark.parametrize("unix_user", ["", "a b", "a:b", "a\n"])
def test_invalid_unix_names_are_refused(unix_user: str) -> None:
    with pytest.raises(UserDBError):
        UserDB(None).add("alice", PASSWORD, unix_user=unix_user)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("alice:00:nobody\n", "32 hex digits"),
        ("alice:" + "zz" * 16 + ":nobody\n", "32 hex digits"),
        ("alice:" + "00" * 16 + "\n", "NAME:NT_HASH:UNIX_USER"),
        ("alice:" + "00" * 16 + ":nobody:extra\n", "NAME:NT_HASH:UNIX_USER"),
        ("a*b:" + "00" * 16 + ":nobody\n", "invalid user name"),
        ("alice:" + "00" * 16 + ":nobody\nALICE:" + "11" * 16 + ":root\n", "listed twice"),
    ],
)
def test_malformed_files_are_refused(tmp_path: pathlib.Path, content: str, message: str) -> None:
    path = tmp_path / "users"
    path.write_text("# comment\n\n" + content)
    with pytest.raises(UserDBError, match=message):
        UserDB.load(path)


def test_line_numbers_in_errors(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "users"
    path.write_text("# header\nalice:" + "00" * 16 + ":nobody\nbroken line\n")
    with pytest.raises(UserDBError, match=r"users:3:"):
        UserDB.load(path)


def test_from_pairs_is_in_memory() -> None:
    db = UserDB.from_pairs([("alice", "pw1"), ("bob", "pw:with:colons")], unix_user="nobody")
    user = db.lookup("BOB")
    assert user is not None and user.nt_hash == nt_hash("pw:with:colons") and user.unix_user == "nobody"
    assert UserDB.from_pairs([("root", "pw")]).unix_user_of("root") == "root"
    with pytest.raises(UserDBError, match="in memory"):
        db.save()


def test_repr_hides_the_hash() -> None:
    db = UserDB(None)
    db.add("alice", PASSWORD, unix_user="nobody")
    user = db.lookup("alice")
    assert user is not None
    assert nt_hash(PASSWORD).hex() not in repr(user)
    assert repr(nt_hash(PASSWORD)) not in repr(user)
