"""Ad hoc models: `--model hf:ORG/NAME[@REV]` for a quick look without writing a spec.

An ad hoc model is the spec a contributor would write with only `repo` and `revision` (every
other field at its default), so its answers share their cache keys with that spec's. It
exists for one command: it is in no spec file, so `medbench publish` never finds it.
"""

from __future__ import annotations

import re
from dataclasses import replace

from medbench.errors import UsageError
from medbench.spec.loading import SpecSet
from medbench.spec.model import ModelSpec

PREFIX = "hf:"
_REF = re.compile(r"^hf:(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)(?:@(?P<rev>[A-Za-z0-9_.\-/]+))?$")


def is_adhoc(ref: str) -> bool:
    """Whether a `--model` value names a hub model rather than a spec id."""
    return ref.startswith(PREFIX)


def adhoc_id(repo: str) -> str:
    """The model id an ad hoc model gets: its repository, lower-cased, `/` as `--`."""
    return re.sub(r"[^a-z0-9._-]", "-", repo.lower().replace("/", "--")).strip("-._")


def adhoc_spec(ref: str, base: str | None = None) -> ModelSpec:
    """The model spec of `hf:ORG/NAME[@REV]` (revision `main` when left out)."""
    match = _REF.fullmatch(ref)
    if match is None:
        raise UsageError(
            "expected hf:ORG/NAME or hf:ORG/NAME@REVISION (a branch, tag or commit sha).",
            f"--model {ref}",
        )
    repo = match["repo"]
    fields = {
        "schema_version": 1,
        "kind": "model",
        "id": adhoc_id(repo),
        "title": f"{repo} (ad hoc, no spec)",
        "backend": "hf",
        "family": "adhoc",
        "repo": repo,
        "revision": match["rev"] or "main",
    }
    if base is not None:
        fields.update(base=base, medical=True)
    return ModelSpec.model_validate(fields)


def with_adhoc_models(
    specs: SpecSet, suite_id: str, models: list[str] | None, base: str | None
) -> tuple[SpecSet, list[str] | None]:
    """The spec set with the ad hoc models of `models` (and `base`) added to the suite, and the
    model selection naming them by id. Without an ad hoc model, both come back unchanged."""
    refs = list(models or ())
    if base is not None and not any(is_adhoc(r) for r in refs):
        raise UsageError("--base pairs an ad hoc model: give --model hf:ORG/NAME as well.")
    if not any(is_adhoc(r) for r in refs):
        return specs, models
    added: dict[str, ModelSpec] = {}
    base_id = None
    if base is not None:
        base_spec = adhoc_spec(base if is_adhoc(base) else f"{PREFIX}{base}")
        base_id = base_spec.id
        added[base_id] = base_spec
    chosen: list[str] = []
    for ref in refs:
        spec = adhoc_spec(ref, base_id) if is_adhoc(ref) else None
        if spec is not None:
            added[spec.id] = spec
        chosen.append(spec.id if spec is not None else ref)
    clash = sorted(set(added) & set(specs.models))
    if clash:
        raise UsageError(
            f"ad hoc model {clash[0]}: a spec with this id exists; use --model {clash[0]}."
        )
    suite = specs.suite(suite_id)
    listed = (*suite.models, *(m for m in added if m not in suite.models))
    suites = {**specs.suites, suite_id: suite.model_copy(update={"models": listed})}
    chosen += [base_id] if base_id is not None and base_id not in chosen else []
    return replace(specs, models={**specs.models, **added}, suites=suites), chosen


__all__ = ["PREFIX", "adhoc_id", "adhoc_spec", "is_adhoc", "with_adhoc_models"]
