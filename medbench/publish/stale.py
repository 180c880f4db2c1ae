"""Stale records: published records made with other specs than today's (a prompt variant added,
a task or model spec edited), found by their spec hashes, and which of them can be rerun here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medbench.errors import RecordError
from medbench.publish.reading import read_record, record_paths
from medbench.publish.record import _display
from medbench.publish.rederive import spec_changes

if TYPE_CHECKING:
    from medbench.spec.loading import SpecSet

REPUBLISH = "medbench republish"
"""The maintainer's one command that reruns and republishes what went stale."""


@dataclass(frozen=True)
class StaleRecord:
    """A published record whose specs changed since it was made."""

    path: Path
    suite: str
    model: str
    test_model: bool
    """Whether it was published as a test model (with `--allow-test-models`)."""
    changed: tuple[str, ...]
    """The spec references that differ from today's (`prompt_family/closed_diagnosis`), sorted;
    one gone from today's specs reads `task/x (gone)`."""

    @property
    def display(self) -> str:
        """The record's path as the user gave it (relative where it can be)."""
        return _display(self.path)

    def line(self) -> str:
        """`leaderboard/s/m.json: stale: prompt_family/f changed since it was published`."""
        return f"{self.display}: stale: {', '.join(self.changed)} changed since it was published"


def stale_records(leaderboard: Path, specs: SpecSet) -> list[StaleRecord]:
    """Every record under `leaderboard` whose spec hashes differ from today's specs, sorted by
    path. A record that does not read is left to `medbench verify`, which reports it."""
    stale = []
    for path in record_paths(leaderboard):
        try:
            record = read_record(path)
        except RecordError:
            continue
        changes = spec_changes(record, specs)
        if changes:
            changed = tuple(ref if today else f"{ref} (gone)" for ref, _, today in changes)
            stale.append(
                StaleRecord(path, record.suite, record.model_id, record.test_model, changed)
            )
    return stale


def why_not_rerun(record: StaleRecord, specs: SpecSet) -> str | None:
    """Why today's specs cannot rerun a stale record's model on its suite (None: they can, if
    the model itself is available here; `make_plan` says when it is not)."""
    suite = specs.suites.get(record.suite)
    if suite is None:
        return f"its suite '{record.suite}' is not among today's specs"
    if record.model not in specs.models:
        return f"its model '{record.model}' has no spec today"
    if record.model not in suite.models:
        return f"its model '{record.model}' is no longer in suite '{record.suite}'"
    if specs.models[record.model].test_model and not record.test_model:
        return (
            f"its model '{record.model}' is a test model today but was published as a real "
            "result; publish it by hand (`medbench publish --allow-test-models`) if it should be"
        )
    return None


def stale_warnings(leaderboard: Path, specs: SpecSet) -> list[str]:
    """What `medbench validate` says of the records that today's specs make stale: one line
    per record naming the specs that changed, then the command that reruns and republishes
    them (empty when none is stale)."""
    stale = stale_records(leaderboard, specs)
    if not stale:
        return []
    folder = _display(leaderboard)
    return [
        *(record.line() for record in stale),
        f"{len(stale)} published record(s) are stale (`medbench verify` fails on a changed "
        f"prompt family): rerun and republish them with `{REPUBLISH} {folder}` "
        "(`--dry-run` lists what it would do).",
    ]
