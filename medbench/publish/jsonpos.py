"""Where a value sits in a JSON text: 1-based line and column of a path of keys and indices.

Records arrive as JSON by pull request; their problems are reported as `file:line:col` like a
spec's, so that a reviewer finds the line. The JSON module gives no positions, so this walks
the text along the path, skipping the values it passes with the standard decoder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

_DECODER = json.JSONDecoder()
_WS = " \t\n\r"


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _member(text: str, pos: int, part: str | int) -> tuple[int, int] | None:
    """Where the key (or item) and the value of `part` start in the object or array at `pos`."""
    opener = text[pos]
    pos = _skip(text, pos + 1)
    index = 0
    while pos < len(text) and text[pos] not in "}]":
        start = pos
        if opener == "{":
            key, pos = _DECODER.raw_decode(text, pos)
            pos = _skip(text, _skip(text, pos) + 1)  # past the colon
            found = key == part
        else:
            found = index == part
        if found:
            return start, pos
        _, pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip(text, pos + 1)
        index += 1
    return None


def position(text: str, loc: Sequence[str | int], *, at_key: bool = False) -> tuple[int, int]:
    """Line and column of the deepest value of `loc` found in `text` (of its key if `at_key`;
    1, 1 on invalid JSON)."""
    pos = _skip(text, 0)
    try:
        for i, part in enumerate(loc):
            if pos >= len(text) or text[pos] not in "{[":
                break
            found = _member(text, pos, part)
            if found is None:
                break
            pos = found[0] if at_key and i == len(loc) - 1 else found[1]
    except (ValueError, IndexError):
        pass
    return line_col(text, pos)


def line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of offset `pos` of `text`."""
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


class _Open:
    """An object or array being read: the keys it has shown, and the member now read."""

    def __init__(self, is_object: bool) -> None:
        self.is_object, self.wants_key, self.keys = is_object, is_object, set[str]()
        self.part: str | int = 0


def repeated_key(text: str) -> tuple[list[str | int], int] | None:
    """The path and offset of the first key that an object of `text` repeats (the JSON module
    keeps the last of two and says nothing), or None; linear in the text, and only for text
    that is valid JSON."""
    if not _has_repeat(text):
        return None
    stack: list[_Open] = []
    pos = _skip(text, 0)
    while pos < len(text):
        top = stack[-1] if stack else None
        if text[pos] in "}]":
            stack.pop()
            pos = _after_value(text, pos + 1, stack)
        elif top is not None and top.wants_key:
            key, end = _DECODER.raw_decode(text, pos)
            if key in top.keys:
                return [*(o.part for o in stack[:-1]), key], pos
            top.keys.add(key)
            top.part, top.wants_key = key, False
            pos = _skip(text, _skip(text, end) + 1)  # past the colon
        elif text[pos] in "{[":
            stack.append(_Open(text[pos] == "{"))
            pos = _skip(text, pos + 1)
        else:
            _, end = _DECODER.raw_decode(text, pos)
            pos = _after_value(text, end, stack)
    return None


def _after_value(text: str, pos: int, stack: list[_Open]) -> int:
    pos = _skip(text, pos)
    if pos < len(text) and text[pos] == "," and stack:
        top = stack[-1]
        if top.is_object:
            top.wants_key = True
        else:
            top.part = int(top.part) + 1
        pos = _skip(text, pos + 1)
    return pos


class _Repeated(Exception):
    pass


def _no_repeat(pairs: list[tuple[str, object]]) -> dict[str, object]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _Repeated
    return found


def _has_repeat(text: str) -> bool:
    """Whether an object of `text` repeats a key (False for text that is not valid JSON: its
    parser reports that)."""
    try:
        json.loads(text, object_pairs_hook=_no_repeat)
    except _Repeated:
        return True
    except (ValueError, RecursionError):
        pass
    return False
