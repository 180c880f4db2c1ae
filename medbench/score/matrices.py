"""Answers as code matrices per (model, task, family): the form the metrics read."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medbench.score import metrics
from medbench.score.answers import ScoringLayout


def _groups(frame: pd.DataFrame, keys: list[str]) -> dict[tuple[str, ...], NDArray[Any]]:
    if frame.empty:
        return {}
    found: dict[Any, Any] = frame.groupby(keys, sort=True).indices
    return {tuple(str(k) for k in key): np.asarray(index) for key, index in found.items()}


def _encode(answers: pd.DataFrame, layout: ScoringLayout) -> pd.DataFrame:
    """The scored rows (failed jobs left out) with integer codes: `_t` truth, `_p` answer
    (a class index, REFUSAL or UNPARSEABLE), computed once per (task, family)."""
    ok = answers[answers["status"] != "error"].reset_index(drop=True)
    truth = np.zeros(len(ok), dtype=np.int64)
    pred = np.full(len(ok), metrics.UNPARSEABLE, dtype=np.int64)
    status = ok["status"].to_numpy()
    for (task, family), index in _groups(ok, ["task", "family"]).items():
        classes = layout.classes[task][family]
        truth[index] = pd.Categorical(ok["truth"].to_numpy()[index], categories=classes).codes
        parsed = pd.Categorical(ok["parsed"].to_numpy()[index], categories=classes).codes
        pred[index] = np.where(
            status[index] == "refusal",
            metrics.REFUSAL,
            np.where((status[index] == "answer") & (parsed >= 0), parsed, metrics.UNPARSEABLE),
        )
    return ok.assign(_t=truth, _p=pred)


def _est(prefix: str, e: metrics.Estimate) -> dict[str, float]:
    return {prefix: e.value, f"{prefix}_lo": e.lo, f"{prefix}_hi": e.hi}


def _matrix(frame: pd.DataFrame, variants: list[str], clustered: bool) -> Matrix:
    """(images x variants) answer codes over the images answered under every variant,
    rows sorted by sample id; `frame` holds encoded rows of one (model, task, family)."""
    samples, sample_index = np.unique(frame["sample"].to_numpy(dtype=str), return_inverse=True)
    column = pd.Categorical(frame["variant"].to_numpy(), categories=variants).codes
    matrix = np.full((len(samples), len(variants)), metrics.UNPARSEABLE, dtype=np.int64)
    seen = np.zeros((len(samples), len(variants)), dtype=bool)
    matrix[sample_index, column] = frame["_p"].to_numpy()
    seen[sample_index, column] = True
    truth = np.zeros(len(samples), dtype=np.int64)
    truth[sample_index] = frame["_t"].to_numpy()
    complete = seen.all(axis=1)
    groups: NDArray[Any] | None = None
    if clustered:
        labels = np.empty(len(samples), dtype=object)
        labels[sample_index] = _group_labels(frame)
        groups = labels[complete]
    return matrix[complete], truth[complete], [str(s) for s in samples[complete]], groups


def _group_labels(frame: pd.DataFrame) -> NDArray[Any]:
    """Each row's cluster label: its `group`, or its sample id where it has none."""
    group = frame["group"].to_numpy(dtype=object)
    sample = frame["sample"].to_numpy(dtype=object)
    missing = pd.isna(group)
    return np.where(missing, "sample:" + sample.astype(str), "group:" + group.astype(str))


Group = tuple[str, str, str, str]
"""(model, task, family, pipeline)."""
Matrix = tuple[NDArray[Any], NDArray[Any], list[str], NDArray[Any] | None]
"""Answer codes (images x variants), truth codes, sample ids, cluster labels (None for an
unclustered task): complete images only."""
