"""The pair table: each medical model against its base, per task and family, with paired
intervals, the test of paired correctness and Holm's adjustment across tasks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medbench.score import metrics
from medbench.score.answers import ScoringLayout
from medbench.score.matrices import Group, Matrix, _est


def _pair(
    a: Matrix, b: Matrix
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any] | None]:
    """The two models' answer matrices, the truth and the clusters over the images both
    answered."""
    common, ia, ib = np.intersect1d(np.array(a[2]), np.array(b[2]), return_indices=True)
    return a[0][ia], b[0][ib], a[1][ia], None if a[3] is None else a[3][ia]


def _score_pairs(matrices: dict[Group, Matrix], layout: ScoringLayout) -> pd.DataFrame:
    rows = []
    for model, base in layout.pairs:
        for group in sorted(g for g in matrices if g[0] == model):
            _, task, family, pipeline = group
            other = matrices.get((base, task, family, pipeline))
            if other is None:
                continue
            ma, mb, truth, groups = _pair(matrices[group], other)
            if len(truth) == 0:
                continue
            classes, variants = layout.classes[task][family], layout.variants[family]
            base_row: dict[str, Any] = {"model": model, "base": base, "task": task}
            base_row |= {"family": family, "pipeline": pipeline, "n": len(truth)}
            for j, variant in enumerate(variants):
                diff = metrics.paired_f1_difference(
                    truth,
                    ma[:, j],
                    mb[:, j],
                    len(classes),
                    seed=layout.seed,
                    n_boot=layout.n_boot,
                    groups=groups,
                )
                right_a, right_b = ma[:, j] == truth, mb[:, j] == truth
                # Obuchowski's test only where images share a cluster: it is asymptotic,
                # McNemar's exact test is exact for independent images.
                if groups is not None and len(set(groups)) < len(groups):
                    test = metrics.mcnemar_clustered(right_a, right_b, groups, seed=layout.seed)
                else:
                    test = metrics.mcnemar_exact(right_a, right_b)
                rows.append(
                    {
                        **base_row,
                        "variant": variant,
                        **_est("f1_diff", diff),
                        "mcnemar_p": test.p_value,
                        "test": test.method,
                        "n01": test.n01,
                        "n10": test.n10,
                    }
                )
            if len(variants) >= 2:
                frag = metrics.paired_disagreement_difference(
                    ma, mb, seed=layout.seed, n_boot=layout.n_boot, groups=groups
                )
                rows.append({**base_row, "variant": "*", **_est("fragility_diff", frag)})
    return _with_holm(pd.DataFrame(rows))


def _with_holm(pairs: pd.DataFrame) -> pd.DataFrame:
    """`mcnemar_p_holm`: each p adjusted by Holm's method across the tasks of its (pair,
    family, pipeline, variant): the pair table asks one question per task."""
    if pairs.empty or "mcnemar_p" not in pairs.columns:
        return pairs
    keys = ["model", "base", "family", "pipeline", "variant"]
    adjusted = pairs.groupby(keys, sort=False)["mcnemar_p"].transform(metrics.holm)
    return pairs.assign(mcnemar_p_holm=adjusted)
