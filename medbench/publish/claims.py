"""What a record says about its model, against the model's spec: the spec is the truth.

The site shows a record's `model` block (title, publisher, medical or not, base) and its
`test_model` badge; a record edited by hand could otherwise call a baseline "MedGemma" or drop
a demonstration model's badge. `verify` compares both with `specs/models/<id>.yaml`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
