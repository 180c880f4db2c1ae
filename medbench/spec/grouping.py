"""Sample groups (patients, source images): the bounded name patterns that declare them."""

# A pattern arrives in a stranger's spec and runs on every file name of a dataset, with
# Python's backtracking `re`, which has no timeout. So only patterns that cannot backtrack
# exponentially are accepted: no repetition of a part that itself repeats or alternates
# (`(a+)+`, `(a|ab)*`), no back-references; with names of at most 255 characters the work
# per name is then polynomial in a short pattern.

from __future__ import annotations

import importlib
import re
from typing import Any

MAX_PATTERN = 200
"""Longest accepted group pattern, in characters."""
MAX_NAME = 255
"""Longest file name a pattern is matched against (longer names are a data error)."""

_parser: Any = importlib.import_module("re._parser")
_constants: Any = importlib.import_module("re._constants")
_REPEATS = {_constants.MAX_REPEAT, _constants.MIN_REPEAT, _constants.POSSESSIVE_REPEAT}


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-patterns of one parsed regex node."""
    if op == _constants.SUBPATTERN:
        return [av[-1]]
    if op in _REPEATS:
        return [av[2]]
    if op == _constants.BRANCH:
        return list(av[1])
    if op in (_constants.ASSERT, _constants.ASSERT_NOT):
        return [av[1]]
    if op == _constants.ATOMIC_GROUP:
        return [av]
    return []


def _risky(pattern: Any, inside_repeat: bool) -> str | None:
    for op, av in pattern:
        if op in (_constants.GROUPREF, _constants.GROUPREF_EXISTS):
            return "back-references are not allowed"
        if inside_repeat and (op in _REPEATS or op == _constants.BRANCH):
            return "a repeated part must not itself repeat or alternate (e.g. `(a+)+`, `(a|ab)*`)"
        for child in _children(op, av):
            found = _risky(child, inside_repeat or op in _REPEATS)
            if found:
                return found
    return None


def check_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a group pattern, or raise ValueError saying why it is refused."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"the pattern has {len(pattern)} characters, at most {MAX_PATTERN}")
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"not a valid regular expression: {e}") from e
    if compiled.groups > 1:
        raise ValueError(f"the pattern has {compiled.groups} capturing groups, at most 1")
    problem = _risky(_parser.parse(pattern), False)
    if problem:
        raise ValueError(problem)
    return compiled


def group_of(compiled: re.Pattern[str], name: str) -> str | None:
    """The group a file name (without suffix) belongs to: the pattern's capturing group if it
    has one, else the whole match; None when the pattern does not match."""
    if len(name) > MAX_NAME:
        return None
    found = compiled.search(name)
    if found is None:
        return None
    value = found.group(1) if compiled.groups else found.group(0)
    return value or None
