"""What a record says about itself, against what makes it: its model against the model's spec
(the spec is the truth), its run against the record and its sidecar.

The site shows a record's `model` block (title, publisher, medical or not, base) and its
`test_model` badge; a record edited by hand could otherwise call a baseline "MedGemma" or drop
a demonstration model's badge. `verify` compares both with `specs/models/<id>.yaml`. The `run`
block names the run that made the answers; it must name this record's suite, medbench build and
answers (`reask` compares the answers' cache keys with today's plan).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from medbench.publish.reask import answered
from medbench.publish.record import _show
from medbench.publish.rederive import Findings

if TYPE_CHECKING:
    from medbench.publish.record import Record
    from medbench.spec.loading import SpecSet


def check_model(display: str, record: Record, specs: SpecSet) -> Findings:
    """Every field of the record's `model` block and its `test_model` flag that differs from
    today's spec of the model (a key one side lacks counts as null)."""
    out = Findings()
    spec = specs.models.get(record.model_id)
    if spec is None:
        out.problems.append(
            f"{display}: model: no spec of model '{record.model_id}' today; a record is "
            f"published with its model's spec (specs/models/{record.model_id}.yaml)"
        )
        return out
    where = specs.files[("model", record.model_id)].path.as_posix()
    hint = "the spec is the truth: republish the model from it"
    if record.test_model != spec.test_model:
        out.problems.append(
            f"{display}: test_model: recorded {_show(record.test_model)}, {where} says "
            f"{_show(spec.test_model)}; {hint}"
        )
    truth: dict[str, Any] = spec.model_dump(mode="json")
    for key in sorted(set(truth) | set(record.model)):
        mine, theirs = record.model.get(key), truth.get(key)
        if mine != theirs or type(mine) is not type(theirs):
            out.problems.append(
                f"{display}: model.{key}: recorded {_show(mine)}, {where} says {_show(theirs)}; "
                f"{hint}"
            )
    return out


REPRODUCED_BACKENDS = frozenset({"baseline"})
"""Backends whose every answer `verify` re-derives itself (the baseline backend is
deterministic and needs no weights): a record of any other backend is contributed."""


def contributed(record: Record) -> bool:
    """Whether a record's answers are taken on trust: every record but a baseline's, whose
    answers `verify` asks its backend for again, one by one. A pull request cannot make a record
    look reproduced: `verify` compares the record's model block with the model's spec, and a
    baseline's answers that its backend does not give fail."""
    return record.model.get("backend") not in REPRODUCED_BACKENDS


def check_run(display: str, record: Record, answers: pd.DataFrame) -> list[str]:
    """Where the record's `run` does not name this record's suite, medbench build or number of
    direct answers (none for a record of schema version 3, which names no run)."""
    run = record.run
    if run is None:
        return []
    claims = [
        ("suite", run.suite, record.suite, "the record's suite"),
        ("medbench_version", run.medbench_version, record.medbench.version, "medbench.version"),
        ("git_commit", run.git_commit, record.medbench.git_commit, "medbench.git_commit"),
        ("n_answers", run.n_answers, len(answered(answers, record.model_id)), "the sidecar holds"),
    ]
    return [
        f"{display}: run.{name}: recorded {_show(mine)}, {what} {_show(truth)}; a record names "
        "the run that made its answers: republish it from that run"
        for name, mine, truth, what in claims
        if mine != truth
    ]
