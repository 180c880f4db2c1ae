"""Reliability diagrams: accuracy against confidence per bin, one line per prompt family, as
byte-reproducible SVG (fixed hash salt, no date) with a `<title>`.

Each bin's marker has an area proportional to the answers in it, and a line joins only
neighbouring non-empty bins: an empty range of confidence is a gap, never a line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medbench.score.metrics import ECE_BINS, confidence
from medbench.score.svgfigure import MAX_WIDTH, figure_style, figure_svg, wrap_title

Curve = tuple[str, NDArray[Any], NDArray[Any]]
"""(legend name, probabilities (N, K), truth indices (N,))."""


def bin_points(
    probs: NDArray[Any], truth: NDArray[Any], bins: int = ECE_BINS
) -> tuple[list[float], list[float], list[int]]:
    """Per non-empty bin (the ECE's bins): mean confidence, accuracy and size."""
    xs, ys, ns, _ = _bins(probs, truth, bins)
    return xs, ys, ns


def _bins(
    probs: NDArray[Any], truth: NDArray[Any], bins: int
) -> tuple[list[float], list[float], list[int], list[int]]:
    pred, conf = confidence(probs)
    correct = pred == truth
    which = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    xs, ys, ns, at = [], [], [], []
    for b in range(bins):
        inside = which == b
        if inside.any():
            xs.append(float(conf[inside].mean()))
            ys.append(float(correct[inside].mean()))
            ns.append(int(inside.sum()))
            at.append(b)
    return xs, ys, ns, at


def runs(at: Sequence[int]) -> list[list[int]]:
    """Positions in `at` (sorted bin indices) grouped into runs of neighbouring bins."""
    found: list[list[int]] = []
    for i, b in enumerate(at):
        if found and at[found[-1][-1]] == b - 1:
            found[-1].append(i)
        else:
            found.append([i])
    return found


def reliability_svg(curves: Sequence[Curve], title: str) -> str:
    """The diagram of each curve against the diagonal of perfect calibration."""
    from matplotlib.figure import Figure

    heading = wrap_title(title, MAX_WIDTH - 0.3)
    lines = heading.count("\n") + 1
    height = 3.9 + 0.18 * lines
    with figure_style():
        figure = Figure(figsize=(MAX_WIDTH, height))
        figure.subplots_adjust(0.15, 0.5 / height, 0.97, 1 - (0.2 + 0.18 * lines) / height)
        axes = figure.add_subplot()
        axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="calibrated")
        found = [(name, *_bins(probs, truth, ECE_BINS)) for name, probs, truth in curves]
        most = max([max(ns, default=1) for *_, ns, _ in found] + [1])
        for i, (name, xs, ys, ns, at) in enumerate(found):
            colour = f"C{i % 10}"
            for run in runs(at):
                if len(run) > 1:
                    axes.plot([xs[j] for j in run], [ys[j] for j in run], color=colour, lw=1)
            axes.scatter(
                xs,
                ys,
                s=[8 + 120 * n / most for n in ns],
                color=colour,
                alpha=0.8,
                edgecolors="black",
                linewidths=0.4,
                clip_on=False,  # a bin at confidence 1 is drawn whole
                label=f"{name} (n={sum(ns)})",
            )
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_xlabel("confidence (top option probability)")
        axes.set_ylabel("accuracy")
        axes.set_title(heading, loc="left", fontsize=10)
        axes.legend(loc="upper left", title=f"marker area: answers in the bin (most {most})")
        return figure_svg(figure, title)


__all__ = ["Curve", "bin_points", "reliability_svg", "runs"]
