"""Reliability diagrams: accuracy against confidence per bin, one line per prompt family, as
byte-reproducible SVG (fixed hash salt, no date) with a `<title>`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medbench.score.metrics import ECE_BINS, confidence
from medbench.score.svgfigure import figure_style, figure_svg

Curve = tuple[str, NDArray[Any], NDArray[Any]]
"""(legend name, probabilities (N, K), truth indices (N,))."""


def bin_points(
    probs: NDArray[Any], truth: NDArray[Any], bins: int = ECE_BINS
) -> tuple[list[float], list[float], list[int]]:
    """Per non-empty bin (the ECE's bins): mean confidence, accuracy and size."""
    pred, conf = confidence(probs)
    correct = pred == truth
    which = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    xs, ys, ns = [], [], []
    for b in range(bins):
        inside = which == b
        if inside.any():
            xs.append(float(conf[inside].mean()))
            ys.append(float(correct[inside].mean()))
            ns.append(int(inside.sum()))
    return xs, ys, ns


def reliability_svg(curves: Sequence[Curve], title: str) -> str:
    """The diagram of each curve against the diagonal of perfect calibration."""
    from matplotlib.figure import Figure

    with figure_style():
        figure = Figure(figsize=(4.2, 3.6))
        figure.subplots_adjust(0.13, 0.12, 0.97, 0.9)
        axes = figure.add_subplot()
        axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="calibrated")
        for name, probs, truth in curves:
            xs, ys, ns = bin_points(probs, truth)
            axes.plot(xs, ys, marker="o", markersize=3, linewidth=1, label=f"{name} (n={sum(ns)})")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_xlabel("confidence (top option probability)")
        axes.set_ylabel("accuracy")
        axes.set_title(title, fontsize=8, loc="left")
        axes.legend(loc="upper left", fontsize=7)
        return figure_svg(figure, title)


__all__ = ["Curve", "bin_points", "reliability_svg"]
