"""The error types medbench raises: user errors carry a location and a hint."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


class MedbenchError(Exception):
    """Base class of every error medbench reports to a user without a traceback."""


@dataclass(frozen=True)
class Issue:
    """One located problem in a spec file: `path:line:col: field: problem. hint`."""

    path: str
    line: int
    col: int
    field: str
    problem: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.col}"
        field = f" {self.field}:" if self.field else ""
        hint = f" {self.hint}" if self.hint else ""
        return f"{where}:{field} {self.problem}{hint}"


class SpecError(MedbenchError):
    """One or more problems in spec files, all reported at once."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.path, i.line, i.col, i.field, i.problem))
        super().__init__("\n".join(str(i) for i in self.issues))


class DataError(MedbenchError):
    """A dataset source is missing, malformed or holds labels the task does not define."""


class BackendError(MedbenchError):
    """A model backend cannot be loaded or reached."""


class CacheError(MedbenchError):
    """The answer cache cannot be opened, read or written."""


class RecordError(MedbenchError):
    """A leaderboard record is malformed or does not match its sidecar."""


_WORKFLOW_COMMAND = re.compile(r"^([ \t]*)(?=::)", re.M)


def printable(text: str) -> str:
    """`text` safe to print to a terminal or a CI log: control and invisible characters (an
    escape sequence, a bidi override, a zero-width space) written as `\\x1b`-style escapes, and
    a line that would start with `::` (a GitHub workflow command) led by a backslash. Newlines
    and tabs are kept."""
    out = "".join(
        ch if ch in "\n\t" or unicodedata.category(ch) not in _HIDDEN else _escape(ch)
        for ch in text
    )
    return _WORKFLOW_COMMAND.sub(lambda m: f"{m.group(1)}\\", out) if "::" in out else out


_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Unicode categories that print as nothing or act on the terminal: controls, formats (zero-width
and bidi characters), surrogates, private use, line and paragraph separators."""


def _escape(ch: str) -> str:
    code = ord(ch)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )
