"""The part of NDR 2.0 ([C706] 14, little-endian) that the srvsvc calls use.

Only 32-bit integers, unique and full pointers (a 4-byte referent id, [C706] 14.3.10), [string] wchar_t
pointers (conformant varying arrays of UTF-16 code units, [C706] 14.3.4.2 and [MS-RPCE] 2.2.5.3.4.2) and
conformant byte arrays ([C706] 14.3.3.2). Everything the srvsvc structures contain is 4-byte aligned, so the
reader and writer align to 4 only.

Deferred pointees ([C706] 14.3.12.3) are placed by the caller: it writes the scalars of a construct first and
then the pointees, in the same order as their pointers.
"""

from __future__ import annotations

import struct

_U32 = struct.Struct("<I")
_VARYING_HEAD = struct.Struct("<III")  # max_count, offset, actual_count

# First referent id handed out; Windows and Samba count from 0x00020000 in steps of 4 as well, which keeps
# captures easy to compare.
_FIRST_REFERENT_ID = 0x00020000


class NdrError(Exception):
    """Stub data that does not decode as the expected [in] parameters."""


class NdrReader:
    """Bounds-checked reader over one request's stub data."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.offset = 0

    def _take(self, size: int) -> int:
        """Reserve `size` bytes at the current offset and return where they start."""
        start = self.offset
        if size < 0 or start + size > len(self._data):
            raise NdrError(f"stub data too short: need {size} bytes at {start}, have {len(self._data)}")
        self.offset = start + size
        return start

    def align4(self) -> None:
        self._take(-self.offset % 4)

    def u32(self) -> int:
        self.align4()
        (value,) = _U32.unpack_from(self._data, self._take(4))
        return int(value)

    def pointer(self) -> bool:
        """A unique or full pointer: True when its referent follows (the referent id is not zero)."""
        return self.u32() != 0

    def wide_string(self) -> str:
        """The referent of a [string] wchar_t*: max_count, offset, actual_count, then the code units.

        The terminating NUL that the client counts is dropped. Lone surrogates are kept (surrogatepass) so that
        any byte string decodes; such a name simply matches no share.
        """
        self.align4()
        max_count, first, actual_count = _VARYING_HEAD.unpack_from(self._data, self._take(_VARYING_HEAD.size))
        if first != 0 or actual_count > max_count:
            raise NdrError("inconsistent conformant varying string")
        start = self._take(2 * actual_count)
        text = self._data[start : self.offset].decode("utf-16-le", errors="surrogatepass")
        return text.removesuffix("\x00")

    def byte_array(self) -> bytes:
        """The referent of a [size_is(n)] byte*: max_count then the bytes."""
        size = self.u32()
        start = self._take(size)
        return self._data[start : self.offset]

    def unique_wide_string(self) -> str | None:
        """A [string, unique] wchar_t* parameter at top level: the pointer, then its referent at once."""
        return self.wide_string() if self.pointer() else None


class NdrWriter:
    """Builds one response's stub data."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._next_referent_id = _FIRST_REFERENT_ID

    def align4(self) -> None:
        self._buf += bytes(-len(self._buf) % 4)

    def u32(self, value: int) -> None:
        self.align4()
        self._buf += _U32.pack(value)

    def pointer(self, present: bool) -> None:
        """A unique pointer: a fresh non-zero referent id, or 0 for NULL."""
        if present:
            self.u32(self._next_referent_id)
            self._next_referent_id += 4
        else:
            self.u32(0)

    def wide_string(self, text: str) -> None:
        """The referent of a [string] wchar_t*, NUL-terminated as the [string] attribute requires."""
        units = (text + "\x00").encode("utf-16-le", errors="surrogatepass")
        count = len(units) // 2
        self.align4()
        self._buf += _VARYING_HEAD.pack(count, 0, count)
        self._buf += units

    def byte_array(self, data: bytes) -> None:
        """The referent of a [size_is(n)] byte*."""
        self.u32(len(data))
        self._buf += data

    def getvalue(self) -> bytes:
        return bytes(self._buf)
