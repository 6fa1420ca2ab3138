"""The users file: SMB account names, their NT hashes and the Unix accounts they act as.

File format (UTF-8 text, one account a line, `#` starts a comment line):

    NAME:NT_HASH:UNIX_USER

NT_HASH is the 32-hex-digit NT one-way function of the password ([MS-NLMP] 3.3.1 NTOWFv1: MD4 of the
UTF-16LE password), the secret NTLMv2 needs; the plaintext is never stored. MD4 is not offered by
`cryptography` (and OpenSSL 3 disables it), so the hash comes from impacket's `compute_nthash`, which uses
pycryptodomex's MD4; impacket is already a dependency of the project. The file is written atomically (temporary
file in the same directory, fsync, rename) with mode 0600, since an NT hash is as good as the password to NTLM.

Names are matched case-insensitively, as Windows and Samba do. A user's Unix account (by default the account of
the same name) is resolved with pwd/grp when the user is looked up, so changes to /etc/passwd and /etc/group
apply at the next logon. If that Unix account does not exist:
- when the server runs as root, the user cannot log on (lookup returns None and a warning is logged): acting as
  some fallback identity would hand out another account's file access;
- when the server runs unprivileged, every user acts as the server's own uid anyway, so the user maps to the
  server process's uid, gid and groups. This is what makes `--user NAME:PASSWORD` work for a plain user.
"""

import dataclasses
import logging
import os
import pathlib
import pwd
import re
import tempfile
from collections.abc import Iterable

from impacket.ntlm import compute_nthash  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

NT_HASH_SIZE = 16
FILE_MODE = 0o600
_HEADER = (
    "# smbsrv users file: NAME:NT_HASH:UNIX_USER (NT hash = MD4 of the UTF-16LE password).\n"
    "# Managed with `smbsrv user add|del|passwd|list`; keep it mode 0600.\n"
)

# Characters Windows refuses in account names, plus ':' (our separator) and control characters.
_BAD_NAME_CHARS = re.compile(r'["/\\\[\]:;|=,+*?<>\x00-\x1f\x7f]')
_BAD_UNIX_NAME_CHARS = re.compile(r"[:\s\x00-\x1f\x7f]")
_MAX_NAME_LENGTH = 64


class UserDBError(ValueError):
    """A malformed users file, an invalid name, or an add/remove that conflicts with the current entries."""


def nt_hash(password: str) -> bytes:
    """NTOWFv1: MD4 of the UTF-16LE password ([MS-NLMP] 3.3.1)."""
    return bytes(compute_nthash(password))


def validate_name(name: str) -> None:
    if not name or name != name.strip():
        raise UserDBError(f"invalid user name {name!r}: empty or with leading/trailing spaces")
    if len(name) > _MAX_NAME_LENGTH or _BAD_NAME_CHARS.search(name):
        raise UserDBError(f"invalid user name {name!r}")


def validate_unix_user(unix_user: str) -> None:
    if not unix_user or _BAD_UNIX_NAME_CHARS.search(unix_user):
        raise UserDBError(f"invalid Unix account name {unix_user!r}")


@dataclasses.dataclass(frozen=True)
class User:
    """An authenticated account and the Unix identity it acts as, resolved at lookup time."""

    name: str
    nt_hash: bytes = dataclasses.field(repr=False)
    unix_user: str
    uid: int
    gid: int
    groups: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    nt_hash: bytes = dataclasses.field(repr=False)
    unix_user: str


def _key(name: str) -> str:
    return name.casefold()


class UserDB:
    """The accounts the server accepts. `path` is None for an in-memory database (command-line users)."""

    def __init__(self, path: pathlib.Path | None = None, entries: Iterable[_Entry] = ()) -> None:
        self.path = path
        self._entries: dict[str, _Entry] = {}
        for entry in entries:
            if _key(entry.name) in self._entries:
                raise UserDBError(f"user {entry.name!r} listed twice")
            self._entries[_key(entry.name)] = entry

    # -- loading and saving --

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "UserDB":
        """Read a users file; a missing file is an empty database that save() will create."""
        file_path = pathlib.Path(path)
        try:
            with open(file_path, encoding="utf-8") as stream:
                mode = os.fstat(stream.fileno()).st_mode
                text = stream.read()
        except FileNotFoundError:
            return cls(file_path)
        if mode & 0o077:
            log.warning(
                "users file %s is readable by group or others (mode %o); it holds NT hashes",
                file_path,
                mode & 0o777,
            )
        return cls(file_path, _parse(text, file_path))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], unix_user: str | None = None) -> "UserDB":
        """An in-memory database from (name, password) pairs, e.g. `--user NAME:PASSWORD` flags.

        Each user acts as the Unix account of its own name unless `unix_user` names one account for all. Under a
        root server an account that does not exist cannot log on (see the module docstring).
        """
        db = cls(None)
        for name, password in pairs:
            db.add(name, password, unix_user)
        return db

    def save(self) -> None:
        """Write the file atomically with mode 0600."""
        if self.path is None:
            raise UserDBError("this user database is in memory only")
        lines = [_HEADER]
        for entry in sorted(self._entries.values(), key=lambda e: _key(e.name)):
            lines.append(f"{entry.name}:{entry.nt_hash.hex().upper()}:{entry.unix_user}\n")
        directory = self.path.parent
        # mkstemp creates the file with mode 0600 from the start, so the hashes are never briefly world-readable.
        fd, temp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write("".join(lines))
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp_name, self.path)
        except BaseException:
            try:
                os.unlink(temp_name)
            except FileNotFoundError:
                pass
            raise
        directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory_fd)  # make the rename itself durable
        finally:
            os.close(directory_fd)

    # -- editing --

    def add(self, name: str, password: str, unix_user: str | None = None) -> None:
        validate_name(name)
        unix_user = name if unix_user is None else unix_user
        validate_unix_user(unix_user)
        if _key(name) in self._entries:
            raise UserDBError(f"user {self._entries[_key(name)].name!r} already exists")
        self._entries[_key(name)] = _Entry(name, nt_hash(password), unix_user)

    def set_password(self, name: str, password: str) -> None:
        entry = self._entry(name)
        self._entries[_key(name)] = dataclasses.replace(entry, nt_hash=nt_hash(password))

    def remove(self, name: str) -> None:
        self._entry(name)
        del self._entries[_key(name)]

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[_key(name)]
        except KeyError:
            raise UserDBError(f"no such user {name!r}") from None

    # -- queries --

    def names(self) -> list[str]:
        return sorted((entry.name for entry in self._entries.values()), key=_key)

    def unix_user_of(self, name: str) -> str:
        return self._entry(name).unix_user

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._entries

    def lookup(self, name: str) -> User | None:
        """The account `name` (any case) with its Unix identity resolved now, or None (see module docstring)."""
        entry = self._entries.get(_key(name))
        if entry is None:
            return None
        try:
            account = pwd.getpwnam(entry.unix_user)
        except KeyError:
            if os.geteuid() != 0:
                return User(
                    entry.name,
                    entry.nt_hash,
                    entry.unix_user,
                    os.getuid(),
                    os.getgid(),
                    tuple(os.getgroups()),
                )
            log.warning(
                "user %r maps to Unix account %r, which does not exist; logon refused",
                entry.name,
                entry.unix_user,
            )
            return None
        groups = tuple(os.getgrouplist(account.pw_name, account.pw_gid))
        return User(entry.name, entry.nt_hash, entry.unix_user, account.pw_uid, account.pw_gid, groups)


def _parse(text: str, path: pathlib.Path) -> list[_Entry]:
    entries = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 3:
            raise UserDBError(f"{path}:{number}: expected NAME:NT_HASH:UNIX_USER")
        name, hash_hex, unix_user = fields
        try:
            hash_value = bytes.fromhex(hash_hex)
        except ValueError:
            hash_value = b""
        if len(hash_value) != NT_HASH_SIZE:
            raise UserDBError(f"{path}:{number}: NT hash must be 32 hex digits")
        try:
            validate_name(name)
            validate_unix_user(unix_user)
        except UserDBError as error:
            raise UserDBError(f"{path}:{number}: {error}") from None
        entries.append(_Entry(name, hash_value, unix_user))
    return entries
