"""Where a hostile request's choices come from, and the field values they favour.

A `Source` makes each choice: hypothesis (`HypothesisSource`), atheris (`ProviderSource`) or a seeded
`random.Random` (`RandomSource`), so the property tests, the fuzz harnesses and their plain-loop fallback share
one generator (tests/fuzz/requests.py, tests/fuzz/payloads.py).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

_SPECIAL_32 = (0, 1, 2, 7, 8, 15, 16, 63, 64, 65, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
               0x10001, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF8, 0xFFFFFFFF)
_SPECIAL_64 = _SPECIAL_32 + (0x100000000, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF,
                             0xFFFFFFFFFFFFFFFE, 0x7FFFFFFFFFFFF000)


class Source(Protocol):
    def integer(self, low: int, high: int) -> int: ...

    def raw(self, max_size: int) -> bytes: ...


class HypothesisSource:
    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self._st = st
        self._data = data

    def integer(self, low: int, high: int) -> int:
        return int(self._data.draw(self._st.integers(low, high)))

    def raw(self, max_size: int) -> bytes:
        return bytes(self._data.draw(self._st.binary(max_size=max_size)))


class ProviderSource:
    """atheris.FuzzedDataProvider: once the input is used up every choice is the lowest one."""

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    def integer(self, low: int, high: int) -> int:
        return int(self._provider.ConsumeIntInRange(low, high))

    def raw(self, max_size: int) -> bytes:
        return bytes(self._provider.ConsumeBytes(self._provider.ConsumeIntInRange(0, max_size)))


class RandomSource:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def integer(self, low: int, high: int) -> int:
        return self._rng.randint(low, high)

    def raw(self, max_size: int) -> bytes:
        return self._rng.randbytes(self._rng.randint(0, max_size))


def choice(src: Source, options: Sequence[T]) -> T:
    return options[src.integer(0, len(options) - 1)]


def value(src: Source, bits: int = 32, near: Sequence[int] = ()) -> int:
    """A field value: special (boundaries), near a given length or offset (off by a little), or any."""
    limit = (1 << bits) - 1
    kind = src.integer(0, 3)
    if kind == 0:
        return choice(src, [v for v in (_SPECIAL_64 if bits == 64 else _SPECIAL_32) if v <= limit])
    if kind == 1 and near:
        return max(0, min(limit, choice(src, near) + src.integer(-9, 9)))
    if kind == 2:
        return src.integer(0, min(4096, limit))
    return src.integer(0, limit)
