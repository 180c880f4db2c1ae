"""The error types medbench raises: user errors carry a location and a hint."""

from __future__ import annotations

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
