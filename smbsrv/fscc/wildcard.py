"""QUERY_DIRECTORY search patterns.

[MS-FSA] 2.1.4.4 "Algorithm for Determining if a FileName Is in an Expression": `*` (zero or more characters),
`?` (exactly one), and the DOS forms `<` DOS_STAR (zero or more characters, never past the final '.', which it
may consume last), `>` DOS_QM (one character, or nothing when at a '.' or the end of the name; a run of them
stops together) and `"` DOS_DOT (a '.', or nothing at the end of the name). Part 1 of the algorithm: "*" and
"*.*" match every name, "*" followed by a literal compares the tail, an empty name matches nothing.

Case-insensitive matching upper-cases both sides one character at a time (close to the NTFS upcase table;
Python's mapping may differ for a few characters). Patterns with few stars compile to a regular expression;
patterns with many use a position-set simulation that cannot backtrack exponentially on hostile input.
"""

import re
from collections.abc import Callable

DOS_STAR = "<"
DOS_QM = ">"
DOS_DOT = '"'
WILDCARD_CHARACTERS = frozenset('*?<>"')

# Above this many star-like tokens, a backtracking regex can take polynomial time of high degree on a
# 255-character name; the simulation is linear in (name length x pattern length).
_MAX_REGEX_STARS = 2

Matcher = Callable[[str], bool]


def _fold(text: str) -> str:
    upper = text.upper()
    if len(upper) == len(text):
        return upper
    # A few characters upper-case to two (German sharp s); keep those as they are so positions line up.
    return "".join(u if len(u := c.upper()) == 1 else c for c in text)


def _match_any_name(name: str) -> bool:
    return name != ""


def _has_wildcards(text: str) -> bool:
    return not WILDCARD_CHARACTERS.isdisjoint(text)


def _to_regex(pattern: str) -> str:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        elif ch == DOS_DOT:
            parts.append(r"(?:\.|\Z)")
        elif ch == DOS_STAR:
            # Any character except the final '.', then optionally that final '.' itself.
            parts.append(r"(?:(?!\.[^.]*\Z).)*(?:\.(?=[^.]*\Z))?")
        elif ch == DOS_QM:
            run = 1
            while i + run < len(pattern) and pattern[i + run] == DOS_QM:
                run += 1
            # n non-dots, or fewer when a '.' or the end of the name comes first.
            parts.append(rf"(?:[^.]{{{run}}}|[^.]{{0,{run - 1}}}(?=\.|\Z))")
            i += run
            continue
        else:
            parts.append(re.escape(ch))
        i += 1
    return "".join(parts)


def _simulate(pattern: str, name: str) -> bool:
    """Run the pattern as a set of positions over the name (Thompson-style); see the module docstring."""
    end = len(pattern)
    name_len = len(name)
    final_dot = name.rfind(".")

    def closure(states: set[int], pos: int) -> set[int]:
        at_end = pos == name_len
        at_dot = not at_end and name[pos] == "."
        work = list(states)
        while work:
            i = work.pop()
            if i == end:
                continue
            token = pattern[i]
            epsilon = (
                token in ("*", DOS_STAR)
                or (token == DOS_QM and (at_end or at_dot))
                or (token == DOS_DOT and at_end)
            )
            if epsilon and i + 1 not in states:
                states.add(i + 1)
                work.append(i + 1)
        return states

    states = closure({0}, 0)
    for pos, ch in enumerate(name):
        following: set[int] = set()
        for i in states:
            if i == end:
                continue
            token = pattern[i]
            if token == "*":
                following.add(i)
            elif token == DOS_STAR:
                following.add(i + 1 if pos == final_dot else i)
            elif token == "?":
                following.add(i + 1)
            elif token == DOS_QM:
                if ch != ".":
                    following.add(i + 1)
            elif token == DOS_DOT:
                if ch == ".":
                    following.add(i + 1)
            elif token == ch:
                following.add(i + 1)
        if not following:
            return False
        states = closure(following, pos + 1)
    return end in states


def compile_pattern(pattern: str, case_sensitive: bool) -> Matcher:
    """Return a predicate name -> bool for `pattern` ([MS-FSA] 2.1.4.4)."""
    if pattern in ("*", "*.*"):
        return _match_any_name
    if pattern == "":
        # Part 1: an empty expression matches only an empty name, and names are never empty.
        return lambda name: name == ""
    # Consecutive stars mean the same as one and would only slow the matchers down.
    pattern = re.sub(r"\*{2,}", "*", pattern)
    key = pattern if case_sensitive else _fold(pattern)

    if not _has_wildcards(key):
        if case_sensitive:
            return lambda name: name == key
        return lambda name: len(name) == len(key) and _fold(name) == key

    if key[0] == "*" and not _has_wildcards(key[1:]):
        tail = key[1:]
        if case_sensitive:
            return lambda name: name != "" and name.endswith(tail)
        return lambda name: name != "" and _fold(name).endswith(tail)

    stars = key.count("*") + key.count(DOS_STAR)
    if stars <= _MAX_REGEX_STARS:
        regex = re.compile(_to_regex(key), re.DOTALL)
        if case_sensitive:
            return lambda name: name != "" and regex.fullmatch(name) is not None
        return lambda name: name != "" and regex.fullmatch(_fold(name)) is not None

    if case_sensitive:
        return lambda name: name != "" and _simulate(key, name)
    return lambda name: name != "" and _simulate(key, _fold(name))
