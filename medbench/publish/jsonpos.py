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
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1
