"""The results folder of a suite: score a plan, write the tables as files (byte-identical for
the same input)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from medbench.run import step
from medbench.score.answers import ScoringLayout
from medbench.score.scoring import SCORES_SCHEMA_VERSION, ScoreTables, finite

if TYPE_CHECKING:
    from medbench.run import Cache, Plan
    from medbench.run.backends import BackendContext
    from medbench.spec.loading import SpecSet

RESULT_FILES = (
    "answers.parquet",
    "scores.csv",
    "fragility.csv",
    "pairs.csv",
    "models.csv",
    "layout.json",
    "summary.json",
)
IMAGE_FILES = (
    "image_variants.csv",
    "reliance.csv",
    "reliance_pairs.csv",
    "severity.csv",
    "severity_models.csv",
    "quadrants.csv",
    "quadrant_models.csv",
)
"""Written only where some answers saw image variants (transforms or ablations) and the table
has rows: reliance and quadrants need an ablation, severity curves a variant with a severity."""
PROBE_FILES = ("probe.csv", "ladder.csv", "tsne/")
"""Written by the probe stage (`medbench run` on a suite with `probe:`)."""


def _csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n", float_format="%.10g")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {str(k): finite(v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def write_results(
    out: Path,
    suite: str,
    answers: pd.DataFrame,
    tables: ScoreTables,
    layout: ScoringLayout,
    test_models: list[str],
) -> list[Path]:
    """Write every result file of a suite into `out` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    order = ["model", "task", "family", "variant", "pipeline", "sample", "replicate"]
    order += ["image_variant"] if "image_variant" in answers.columns else []
    answers.sort_values(order).to_parquet(out / "answers.parquet", index=False)
    _csv(tables.scores, out / "scores.csv")
    _csv(tables.fragility, out / "fragility.csv")
    _csv(tables.pairs, out / "pairs.csv")
    _csv(tables.models, out / "models.csv")
    written = [out / name for name in RESULT_FILES]
    for name in IMAGE_FILES:
        frame = getattr(tables, name.removesuffix(".csv"))
        if not frame.empty:
            _csv(frame, out / name)
            written.append(out / name)
        else:
            (out / name).unlink(missing_ok=True)  # left by an earlier run with image variants
    dump = {"sort_keys": True, "indent": 2, "ensure_ascii": False, "allow_nan": False}
    (out / "layout.json").write_text(json.dumps(layout.to_json(), **dump) + "\n")  # type: ignore[arg-type]
    summary = {
        "schema_version": SCORES_SCHEMA_VERSION,
        "suite": suite,
        "test_models": sorted(test_models),
        "n_answers": len(answers),
        "n_failed": int((answers["status"] == "error").sum()),
        "models": _records(tables.models),
    }
    (out / "summary.json").write_text(json.dumps(summary, **dump) + "\n")  # type: ignore[arg-type]
    return written


@dataclass(frozen=True)
class ScoredSuite:
    """What scoring a plan produced: the results folder, its tables and what is missing."""

    out: Path
    answers: pd.DataFrame
    tables: ScoreTables
    layout: ScoringLayout
    missing: int
    """Planned answers not in the cache yet."""
    test_models: set[str]
    ladder: pd.DataFrame | None = None
    """The knowledge ladder, when the probe stage ran."""
    likelihood_lines: tuple[str, ...] = ()
    """What the likelihood stage did and found, when the suite has one."""


def score_suite(
    specs: SpecSet,
    plan: Plan,
    cache: Cache,
    results: Path,
    probe_context: BackendContext | None = None,
    likelihood_context: BackendContext | None = None,
) -> ScoredSuite:
    """Score a plan's cached answers into `results/<suite>/`; with `probe_context`, also run
    the suite's probe stage (it may load the models); score the likelihood stage, computing
    its missing option scores with `likelihood_context`."""
    from medbench.score.answers import collect_answers, make_layout
    from medbench.score.scoring import score_answers

    with step("scoring the answers"):
        answers = collect_answers(specs, plan, cache)
        layout = make_layout(specs, plan)
        tables = score_answers(as_sidecar_rows(answers), layout)
        out = results / plan.suite.id
        test_models = {m for m in plan.models if specs.models[m].test_model}
        write_results(out, plan.suite.id, answers, tables, layout, sorted(test_models))
    planned = {
        (j.evaluated, j.task, j.family, j.variant, j.pipeline, j.sample)
        for j in plan.jobs
        if specs.families[j.family].answer != "text"
    }
    ladder = None
    scores = tables.scores
    lines: tuple[str, ...] = ()
    if plan.suite.likelihood is not None:
        from medbench.score.likelihood import ladder_scores, run_likelihood_stage, summary_lines

        with step("likelihood stage"):
            result = run_likelihood_stage(
                specs, plan, cache, answers, layout, out, likelihood_context
            )
        lines = tuple(summary_lines(result))
        scores = pd.concat([scores, ladder_scores(result)], ignore_index=True)
    if probe_context is not None and plan.suite.probe is not None:
        from medbench.score.probe.ladder import run_probe_stage

        with step("probe stage"):
            ladder = run_probe_stage(
                specs, plan, cache.path, answers, scores, out, probe_context, tables.reliance
            )
    missing = len(planned) - len(answers)
    return ScoredSuite(out, answers, tables, layout, missing, test_models, ladder, lines)


def as_sidecar_rows(answers: pd.DataFrame) -> pd.DataFrame:
    """The rows as a record's sidecar holds them (sorted, as text), which is what publishing
    them scores: `medbench run`'s local site then reuses these tables (`score_answers`
    remembers them). The rows as they are when the sidecar's CSV does not give them back
    (answer text holding a carriage return)."""
    from medbench.score.sidecar import answers_csv, read_answers_csv

    try:
        rows = read_answers_csv(answers_csv(answers))
    except ValueError:
        return answers
    return rows if len(rows) == len(answers) else answers
