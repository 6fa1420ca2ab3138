"""Fixtures for the auth tests: a user database whose accounts map to Unix accounts that exist here."""

import pytest

from smbsrv.auth.authenticator import Authenticator
from smbsrv.auth.users import UserDB

PASSWORD = "Sécret-Pässword1"


@pytest.fixture
def users() -> UserDB:
    db = UserDB(None)
    db.add("alice", PASSWORD, unix_user="nobody")
    db.add("bob", "other password", unix_user="root")
    return db


@pytest.fixture
def authenticator(users: UserDB) -> Authenticator:
    return Authenticator(users, "testsrv", allow_guest=False, allow_anonymous=False)
