"""The error types medbench raises: user errors carry a location and a hint."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

EXIT_FAILED = 1
"""Exit status of a command whose work failed: jobs that failed, a verify that found problems."""
EXIT_USAGE = 2
"""Exit status of a command given something it cannot use: a bad option or argument, an
unknown id, a missing folder, a spec or data source that does not validate."""


class MedbenchError(Exception):
    """Base class of every error medbench reports to a user without a traceback."""

    exit_code: ClassVar[int] = EXIT_FAILED
    """The status the command line exits with (see `EXIT_FAILED`, `EXIT_USAGE`)."""


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

    exit_code = EXIT_USAGE

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.path, i.line, i.col, i.field, i.problem))
        super().__init__("\n".join(str(i) for i in self.issues))


class DataError(MedbenchError):
    """A dataset source is missing, malformed or holds labels the task does not define."""

    exit_code = EXIT_USAGE


class UsageError(MedbenchError):
    """A command was given an option or argument it cannot use: `where: problem. hint`, where
    `where` is the option (`--suite`) or argument; the command line names the command if the
    raiser could not."""

    exit_code = EXIT_USAGE

    def __init__(self, problem: str, where: str = "") -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)


class UnknownIdError(UsageError):
    """An id given to a command (a suite, a model, a task) that is not among the known ones.

    Without `where`, the command line names the option that was given the id."""

    def __init__(
        self, kind: str, value: str, known: Sequence[str], scope: str = "", where: str = ""
    ) -> None:
        self.kind = kind
        self.value = value
        close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
        if close:
            hint = f"Did you mean '{close[0]}'?"
        elif known:
            hint = f"Choose from: {', '.join(known[:12])}{', ...' if len(known) > 12 else ''}."
        else:
            hint = f"No {kind}s are defined."
        a = "an" if kind[:1] in "aeiou" else "a"
        super().__init__(
            f"{value!r} is not {a} {kind}{f' {scope}' if scope else ''}. {hint}", where
        )


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
