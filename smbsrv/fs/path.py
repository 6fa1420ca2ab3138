"""A client's file name, validated once: [MS-SMB2] 2.2.13 / 3.3.5.9 Name, [MS-FSCC] 2.1.5 pathname rules.

`SmbPath.parse()` is the only way a name from the wire becomes something the resolver accepts. After it, every
component is a single non-empty name that is not '.' or '..', holds no separator and no NUL, and encodes to UTF-8
(so Linux can store it). Nothing here touches the file system.

Rules and the evidence behind each status (Samba 4.17 probed on loopback; smbtorture smb2.mkdir; [MS-FSCC]):

- Empty name: the share root.
- Leading separator ('\\' or '/'): STATUS_INVALID_PARAMETER, the MUST of [MS-SMB2] 3.3.5.9 (Samba checks both
  characters).
- '..' component: STATUS_OBJECT_PATH_SYNTAX_BAD. smbtorture smb2.mkdir expects it for "..\\..\\.." and Samba
  answers it for any '..' that climbs above the share. Samba folds an inner "a\\..\\b" into "b"; we refuse every
  '..' instead: Windows clients canonicalize before sending, so only hostile or broken clients send one.
- '.' component: STATUS_OBJECT_NAME_INVALID (Samba gives it for "." and "dir\\."; for an inner "a\\.\\b" it looks
  up a file literally named "." and answers PATH_NOT_FOUND). Also refused on POSIX opens, where Samba drops it.
- Empty component from a doubled separator: STATUS_OBJECT_NAME_INVALID ([MS-FSCC] 2.1.5.2: a file name is at
  least one character). Samba silently folds "a\\\\b" into "a\\b"; no client we know sends it.
- One trailing separator is allowed and reported in `has_trailing_separator` ("dir\\"); the caller decides what
  it means for a non-directory ([MS-FSA] 2.1.5.1 says OBJECT_NAME_INVALID; Samba opens the file).
- Characters `"*:<>?|` and 0x01-0x1F, and NUL anywhere: STATUS_OBJECT_NAME_INVALID ([MS-FSCC] 2.1.5.2; Samba
  the same, wildcards included).
- A component longer than 255 UTF-16 code units: STATUS_OBJECT_NAME_INVALID ([MS-FSCC] 2.1.5.2; Samba maps
  ENAMETOOLONG there and smbtorture smb2.mkdir_long_name requires 255 to work). A whole name longer than 32,767
  units (only reachable through 32-bit length fields such as FileRenameInformation) gets the same status, as
  Samba answers ENAMETOOLONG for over-long paths.
- Separators: '\\' is the [MS-FSCC] separator. '/' is also accepted as one on non-POSIX opens because Samba does
  (check_path_syntax treats both alike) and some clients (smbclient with '/' in paths, macOS) rely on it;
  [MS-FSCC] lists '/' as an invalid file name character, so it can never be part of a Windows name anyway.
- Streams (non-POSIX only), in the last component: "name:stream", "name:stream:$DATA", and "name::$DATA", the
  default stream, which yields `stream=None`. "name:$DATA" is a stream *named* "$DATA" (Samba with streams_xattr
  stores it as such). The type is matched case-insensitively; an empty type ("name:s:") or empty stream without
  a type ("name:") is STATUS_OBJECT_NAME_INVALID and any type other than $DATA is STATUS_INVALID_PARAMETER (both
  as Samba). A ':' in a non-final component is STATUS_OBJECT_NAME_INVALID. Stream names may contain wildcards.
- POSIX opens ([POSIX-SMB2]; Samba check_path_syntax_posix): '/' is the only separator; '\\', ':', wildcards and
  control characters are ordinary; NUL, '..', '.', empty components and a leading '/' are still refused.
"""

import re
from dataclasses import dataclass

from smbsrv.errors import SmbError
from smbsrv.wire.status import NtStatus

MAX_COMPONENT_UTF16_UNITS = 255  # [MS-FSCC] 2.1.5.2
MAX_PATH_UTF16_UNITS = 32767  # the largest count a 16-bit byte length can carry

# [MS-FSCC] 2.1.5.2: characters a Windows file name may not hold ('\\' and '/' are separators by then; ':' is
# handled as the stream marker before this runs on the final component).
_INVALID_NAME_CHARS = re.compile(r'[\x00-\x1f"*:<>?|]')
_DEFAULT_STREAM_TYPE = "$DATA"


def _utf16_units(text: str) -> int:
    # Code points above the BMP take two UTF-16 units.
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _too_long(component: str) -> bool:
    n = len(component)
    # A str of n code points is n..2n UTF-16 units; only the middle band needs the exact count.
    if n > MAX_COMPONENT_UTF16_UNITS:
        return True
    return n > MAX_COMPONENT_UTF16_UNITS // 2 and _utf16_units(component) > MAX_COMPONENT_UTF16_UNITS


def _fail(status: NtStatus) -> SmbError:
    return SmbError(status)


@dataclass(frozen=True, slots=True)
class SmbPath:
    """A validated name relative to the share root. `components` is empty for the root itself."""

    components: tuple[str, ...]
    stream: str | None = None
    has_trailing_separator: bool = False

    @property
    def is_root(self) -> bool:
        return not self.components

    @property
    def name(self) -> str:
        """The last component ('' for the root)."""
        return self.components[-1] if self.components else ""

    def parent(self) -> "SmbPath":
        return SmbPath(self.components[:-1])

    def child(self, name: str, *, posix: bool = False) -> "SmbPath":
        """This path plus one more component, validated like a parsed one."""
        extra = SmbPath.parse(name, posix=posix)
        if len(extra.components) != 1 or extra.stream is not None:
            raise _fail(NtStatus.STATUS_OBJECT_NAME_INVALID)
        return SmbPath(self.components + extra.components)

    def __str__(self) -> str:
        text = "\\".join(self.components)
        if self.stream is not None:
            text += ":" + self.stream
        return text

    @classmethod
    def parse(cls, name: str, *, posix: bool) -> "SmbPath":
        """Validate `name` (already decoded by smbsrv.wire.buffer.decode_utf16) and split it; raises SmbError."""
        if not name:
            return _ROOT
        if "\x00" in name:
            raise _fail(NtStatus.STATUS_OBJECT_NAME_INVALID)
        if len(name) > MAX_PATH_UTF16_UNITS // 2 and _utf16_units(name) > MAX_PATH_UTF16_UNITS:
            raise _fail(NtStatus.STATUS_OBJECT_NAME_INVALID)
        if not name.isascii():
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate smuggled in by a lenient decoder
                raise _fail(NtStatus.STATUS_OBJECT_NAME_INVALID) from None

        if posix:
            parts = name.split("/")
        else:
            parts = name.replace("/", "\\").split("\\")
        if parts[0] == "":
            # [MS-SMB2] 3.3.5.9: "If the file name length is greater than zero and the first character is a
            # path separator character, the server MUST fail the request with STATUS_INVALID_PARAMETER."
            raise _fail(NtStatus.STATUS_INVALID_PARAMETER)
        trailing = parts[-1] == ""
        if trailing:
            parts.pop()

        stream: str | None = None
        if not posix:
            last = parts[-1]
            colon = last.find(":")
            if colon >= 0:
                if trailing:  # "file:stream\\": Samba refuses a separator after the stream part
                    raise _fail(NtStatus.STATUS_OBJECT_NAME_INVALID)
                parts[-1] = last[:colon]
                stream = _parse_stream(last[colon + 1 :])

        # Hot path (every CREATE): one pass per rule rather than a call per component.
        if ".." in parts:
            raise _fail(NtStatus.STATUS_OBJECT_PATH_SYNTAX_BAD)
        if "" in parts or "." in parts:
            raise _fail(NtStatus.STATUS_OBJECT_NAME_INVALID)
        for part in parts:
            if len(part) > MAX_COMPONENT_UTF16_UNITS // 2 and _too_long(part):
                raise _fail(NtStatus.STATUS_OBJECT_NAME_INVALID)
        # Separators are not in the class, so the joined components can be searched at once.
        if not posix and _INVALID_NAME_CHARS.search("\\".join(parts)) is not None:
            raise _fail(NtStatus.STATUS_OBJECT_NAME_INVALID)
        return cls(tuple(parts), stream, trailing)


_ROOT = SmbPath(())


def _parse_stream(spec: str) -> str | None:
    """`spec` is what follows the first ':' of the last component; returns the stream name or None (default)."""
    stream_name, colon, stream_type = spec.partition(":")
    if colon:
        if stream_type == "" or ":" in stream_type:
            raise _fail(NtStatus.STATUS_OBJECT_NAME_INVALID)
        if stream_type.upper() != _DEFAULT_STREAM_TYPE:
            # Samba answers INVALID_PARAMETER for "$INDEX_ALLOCATION" and any unknown type.
            raise _fail(NtStatus.STATUS_INVALID_PARAMETER)
        if stream_name == "":
            return None  # "name::$DATA" is the file itself
    elif stream_name == "":
        raise _fail(NtStatus.STATUS_OBJECT_NAME_INVALID)  # "name:"
    if _too_long(stream_name):
        raise _fail(NtStatus.STATUS_OBJECT_NAME_INVALID)
    return stream_name
