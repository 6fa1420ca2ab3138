"""Search patterns ([MS-FSA] 2.1.4.4): spec cases, DOS wildcards, and a check against a direct recursive reading
of the algorithm."""

import functools
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbsrv.fscc import wildcard
from smbsrv.fscc.wildcard import compile_pattern


def reference(pattern: str, name: str) -> bool:
    """[MS-FSA] 2.1.4.4 read literally, as a memoized recursion over (pattern index, name index)."""
    if name == "":
        return False
    if pattern in ("*", "*.*"):
        return True
    final_dot = name.rfind(".")

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(name)
        token = pattern[i]
        at_end = j == len(name)
        if token == "*":
            return match(i + 1, j) or (not at_end and match(i, j + 1))
        if token == "?":
            return not at_end and match(i + 1, j + 1)
        if token == "<":
            if match(i + 1, j):
                return True
            if at_end:
                return False
            if j == final_dot:
                return match(i + 1, j + 1)  # it may take the final '.', and stops there
            return match(i, j + 1)
        if token == ">":
            if at_end or name[j] == ".":
                return match(i + 1, j)
            return match(i + 1, j + 1)
        if token == '"':
            if at_end:
                return match(i + 1, j)
            return name[j] == "." and match(i + 1, j + 1)
        return not at_end and name[j] == token and match(i + 1, j + 1)

    return match(0, 0)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "anything", True),
        ("*", ".", True),
        ("*", "..", True),
        ("*", "", False),
        ("*.*", "noextension", True),  # Part 1: "*.*" matches every name
        ("*.*", "a.b", True),
        ("*.txt", "a.txt", True),
        ("*.txt", ".txt", True),
        ("*.txt", "a.txt.bak", False),
        ("*.txt", "txt", False),
        ("*.", "abc.", True),
        ("*.", "abc", False),
        ("<.txt", "a.txt", True),
        ("<.txt", "a.b.txt", True),
        ("<.txt", "atxt", False),
        ("<.b", "a.b.c", False),  # DOS_STAR never crosses the final '.'
        ("<", "ab", True),
        ("<", "a.b", False),
        ("<.", "a.b.", True),
        ('<"*', "abc", True),  # the DOS form of "*.*"
        ('<"*', "a.b", True),
        ("a?c", "abc", True),
        ("a?c", "a.c", True),
        ("a?c", "ac", False),
        ("a?c", "abbc", False),
        ('a"', "a", True),
        ('a"', "a.", True),
        ('a"', "ab", False),
        ('a"b', "a.b", True),
        ('a"b', "ab", False),
        ("a>>", "a", True),
        ("a>>", "ab", True),
        ("a>>", "abc", True),
        ("a>>", "abcd", False),
        (">>>.txt", "ab.txt", True),
        (">>>.txt", "abc.txt", True),
        (">>>.txt", "abcd.txt", False),
        ("a>.b", "a.b", True),
        ("a>.b", "ax.b", True),
        ("a>c", "ac", False),  # DOS_QM only skips at a '.' or the end
        ("a*b*c*d", "aXbYcZd", True),
        ("a*b*c*d", "aXbYcZ", False),
        ("**x", "abx", True),
        ("file.txt", "file.txt", True),
        ("file.txt", "file.txt2", False),
    ],
)
def test_spec_cases(pattern: str, name: str, expected: bool) -> None:
    assert compile_pattern(pattern, case_sensitive=True)(name) is expected
    assert reference(pattern, name) is expected


@pytest.mark.parametrize(
    ("pattern", "name", "insensitive", "sensitive"),
    [
        ("File.TXT", "file.txt", True, False),
        ("*.TXT", "a.txt", True, False),
        ("A?C", "abc", True, False),
        ("<.Txt", "x.y.TXT", True, False),
        ("a*B*c*D", "AxbXCxd", True, False),  # the many-star path
        ("ÄBC", "äbc", True, False),
        ("SS", "ß", False, False),  # no length-changing case mapping
        ("abc", "abc", True, True),
    ],
)
def test_case(pattern: str, name: str, insensitive: bool, sensitive: bool) -> None:
    assert compile_pattern(pattern, case_sensitive=False)(name) is insensitive
    assert compile_pattern(pattern, case_sensitive=True)(name) is sensitive


def test_empty_pattern_matches_nothing_real() -> None:
    assert compile_pattern("", True)("a") is False


def test_hostile_pattern_is_fast() -> None:
    matcher = compile_pattern("*a*a*a*a*a*a*a*a*b", case_sensitive=False)
    name = "a" * 255
    start = time.monotonic()
    assert matcher(name) is False
    assert time.monotonic() - start < 1.0
    dos = compile_pattern("<a<a<a<a<a<b", case_sensitive=True)
    start = time.monotonic()
    assert dos("a." * 127) is False
    assert time.monotonic() - start < 1.0


PATTERN_CHARS = st.sampled_from(list('ab.*?<>"A'))
NAME_CHARS = st.sampled_from(list("ab.Ab"))


@settings(max_examples=1500, deadline=None)
@given(st.text(PATTERN_CHARS, min_size=1, max_size=8), st.text(NAME_CHARS, min_size=1, max_size=8))
def test_matches_the_reference(pattern: str, name: str) -> None:
    assert compile_pattern(pattern, case_sensitive=True)(name) == reference(pattern, name)
    assert compile_pattern(pattern, case_sensitive=False)(name) == reference(pattern.upper(), name.upper())


@settings(max_examples=1500, deadline=None)
@given(st.text(PATTERN_CHARS, min_size=1, max_size=10), st.text(NAME_CHARS, min_size=1, max_size=10))
def test_both_engines_match_the_reference(pattern: str, name: str) -> None:
    # compile_pattern picks the regex or the simulation by the number of stars; check each engine on all input.
    if pattern in ("*", "*.*"):
        return
    expected = reference(pattern, name)
    assert wildcard._simulate(pattern, name) == expected
    assert (re.fullmatch(wildcard._to_regex(pattern), name, re.DOTALL) is not None) == expected
