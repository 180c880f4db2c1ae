"""The results folder of a suite: the scored tables as files, byte-identical for the same input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from medbench.scoring import SCORES_SCHEMA_VERSION, ScoreTables, ScoringLayout, finite

RESULT_FILES = (
    "answers.parquet",
    "scores.csv",
    "fragility.csv",
    "pairs.csv",
    "models.csv",
    "layout.json",
    "summary.json",
)
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
    answers.sort_values(order).to_parquet(out / "answers.parquet", index=False)
    _csv(tables.scores, out / "scores.csv")
    _csv(tables.fragility, out / "fragility.csv")
    _csv(tables.pairs, out / "pairs.csv")
    _csv(tables.models, out / "models.csv")
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
    return [out / name for name in RESULT_FILES]
