"""8.3 short names: the hash-based mangling Samba 4.17 does by default ("mangled names = yes", mangle_hash2.c).

A name that is already 8.3 is its own short name. Any other name gets `Lhhhhh~h.EXT` ([MS-FSCC] 2.1.5.2.1
for what a short name may hold; the scheme itself is Samba's, so both servers give a file the same short
name): L is the name's first character when it is a letter, digit or one of `_-$~` (else `_`), upper-cased;
the six h are a 31-bit hash of the part before the extension in base 36 (digits, then A-Z), the lowest digit
after the `~`; EXT is the extension upper-cased when it is 1-3 such characters, and there is none otherwise.

The hash: Fowler/Noll/Vo 1 over the upper-cased UTF-8 bytes (at most 255), starting from 0xa6b93095 with the
prime 0x01000193, each byte XORed in as a C `char` (so bytes above 0x7f sign-extended), the top bit cleared.
Upper-casing is Windows' one-to-one table (fs/name_index.fold), so the short name does not depend on case.

Opening by a short name works in two ways, only for a component that does not exist and looks mangled (8 to
12 characters, `~` at 6, hash digits around it): the names this server recently handed out as short names
(FileAlternateNameInformation, directory listings) are remembered, short -> long, as Samba's prefix cache; a
name not remembered costs one scan of its directory, comparing each entry's short name. A remembered long
name is used even when it no longer exists, as Samba does: creating a file by the short name it had gives it
its long name back (smbtorture smb2.mangle).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from functools import lru_cache

from smbsrv.fs.name_index import fold

_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FNV_INIT = 0xA6B93095
_FNV_PRIME = 0x01000193
_HASH_BYTES = 255  # Samba hashes at most an fstring's worth

# Characters a mangled name's lead and extension may keep (Samba's FLAG_ASCII).
_KEEP = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-$~")
_BASECHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# Never in an 8.3 name: controls and the characters Windows forbids, wildcards, and what forces a short name.
_NOT_8_3 = frozenset(chr(c) for c in range(0x20)) | frozenset('*\\/?<>|":') | frozenset(" +,[];=")
_RESERVED = ("AUX", "CON", "NUL", "PRN", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10)))

REMEMBERED_NAMES = 16384


def is_reserved(name: str) -> bool:
    """A DOS device name, alone or with an extension (COM1, con.txt): always mangled."""
    head = name.split(".", 1)[0].upper()
    return head in _RESERVED


def is_8_3(name: str) -> bool:
    """Samba's is_8_3: at most 8 characters, or at most 8, a dot and 1 to 3; printable ASCII without the
    characters above. '.' and '..' are 8.3."""
    if name in (".", ".."):
        return True
    if len(name) > 12 or not name.isascii() or not name.isprintable():
        return False
    base, dot, extension = name.partition(".")
    if not dot:
        if len(name) > 8:
            return False
    elif len(base) > 8 or not 1 <= len(extension) <= 3 or "." in extension:
        return False
    return not any(c in _NOT_8_3 for c in name)


def _is_legal(name: str) -> bool:
    """Samba's is_legal_name: no forbidden character, not ending in a dot (except '.', '..') or a space."""
    if any(c in '*\\/?<>|":' or ord(c) < 0x20 for c in name):
        return False
    if name in (".", ".."):
        return True
    return not name.endswith(".") and not name.endswith(" ")


def _hash(prefix: str) -> int:
    value = _FNV_INIT
    for byte in fold(prefix).encode("utf-8", "surrogateescape")[:_HASH_BYTES]:
        value = (value * _FNV_PRIME) & 0xFFFFFFFF
        value ^= byte if byte < 0x80 else byte | 0xFFFFFF00
    return value & 0x7FFFFFFF


@lru_cache(maxsize=8192)
def short_name(name: str) -> str:
    """The 8.3 name of `name`: itself (as given) when it is a legal 8.3 name, else its mangled form."""
    if not is_reserved(name) and _is_legal(name) and is_8_3(name):
        return name
    dot = name.rfind(".")
    extension = name[dot + 1:] if dot >= 0 else ""
    if dot < 0 or not 1 <= len(extension) <= 3 or any(c not in _KEEP for c in extension):
        dot, extension = -1, ""  # no usable extension: it is hashed with the rest
    lead = name[0] if name and name[0] in _KEEP else "_"
    value = _hash(name if dot < 0 else name[:dot])
    digits = [_BASE36[value % 36]]
    for _ in range(5):
        value //= 36
        digits.append(_BASE36[value % 36])
    # digits[0] is the lowest: it goes after the '~'; the next five fill positions 5 down to 1.
    mangled = lead.upper() + "".join(reversed(digits[1:])) + "~" + digits[0]
    return mangled + ("." + extension.upper() if extension else "")


def looks_mangled(component: str) -> bool:
    """Samba's is_mangled_component: the shape of a name short_name() makes up (case ignored)."""
    if not 8 <= len(component) <= 12 or component[6] != "~":
        return False
    if len(component) > 8 and (component[8] != "." or any(c not in _KEEP for c in component[9:])):
        return False
    return component[0] in _KEEP and all(c in _BASECHARS for c in component[1:6] + component[7])


class ShortNames:
    """Short names this server handed out, short (folded) -> long, most recent REMEMBERED_NAMES of them."""

    def __init__(self, limit: int = REMEMBERED_NAMES) -> None:
        self._names: OrderedDict[str, str] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()
        self.scans = 0  # directory scans done for names not remembered; the tests read it

    def short_name(self, name: str) -> str:
        """short_name(name), remembered when it had to be made up."""
        short = short_name(name)
        if short != name:
            key = short.upper()
            with self._lock:
                self._names[key] = name
                self._names.move_to_end(key)
                if len(self._names) > self._limit:
                    self._names.popitem(last=False)
        return short

    def listing_name(self, name: str) -> str:
        """What a directory entry's ShortName holds: "" for a name that is 8.3 itself, else its short name."""
        return "" if is_8_3(name) else self.short_name(name)

    def long_name(self, dir_fd: int, component: str) -> str | None:
        """The long name `component` stands for in the directory `dir_fd`, when it looks mangled: the
        remembered one, else an entry of the directory whose short name it is; None when neither."""
        if not looks_mangled(component):
            return None
        key = component.upper()
        with self._lock:
            remembered = self._names.get(key)
        if remembered is not None:
            return remembered
        return self._scan(dir_fd, key)

    def _scan(self, dir_fd: int, key: str) -> str | None:
        self.scans += 1
        try:
            list_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            entries = os.listdir(list_fd)
        except OSError:
            return None
        finally:
            os.close(list_fd)
        for entry in sorted(entries):  # two long names with one short name: the same one every time
            if short_name(entry).upper() == key:
                return entry
        return None
