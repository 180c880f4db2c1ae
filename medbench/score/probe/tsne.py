"""A t-SNE map of one model's image embeddings on one task, as byte-reproducible SVG.

Points are coloured by true label and shaped by how the model answered the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medbench.score.svgfigure import MAX_WIDTH, figure_style, figure_svg, wrap_title

MARKS: dict[str, tuple[str, str]] = {
    "right": ("o", "right"),
    "wrong": ("X", "wrong"),
    "refused": ("s", "refused"),
    "flipped": ("^", "right, flips"),
    "unknown": ("D", "no answer"),
}
"""Mark -> (matplotlib marker, legend text)."""
DRAWING = 2
"""The map's drawing, part of its memo key: bump when the same input draws differently."""
COLOURS = (
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
    "#66a61e",
    "#e6ab02",
    "#a6761d",
    "#666666",
)
MIN_TSNE_POINTS = 4
"""Fewer points are laid out on a line: t-SNE needs more points than its perplexity."""


def tsne_positions(x: NDArray[Any], seed: int = 0) -> NDArray[Any]:
    """2-D t-SNE of standardised rows (PCA start, fixed seed, one thread: reproducible)."""
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]

    n = len(x)
    if n < MIN_TSNE_POINTS:
        return np.column_stack([np.arange(n, dtype=np.float64), np.zeros(n)])
    scaled = StandardScaler().fit_transform(np.asarray(x, dtype=np.float64))
    # Perplexity near n spreads every point evenly; a third of n keeps clusters visible.
    perplexity = min(30.0, max(1.0, (n - 1) / 3))
    # One thread: Barnes-Hut sums forces in parallel, and the order of a sum changes its bits.
    with threadpool_limits(limits=1):
        tsne = TSNE(
            n_components=2,
            perplexity=perplexity,
            init="pca",
            random_state=seed,
            n_jobs=1,
        )
        positions: NDArray[Any] = tsne.fit_transform(scaled)
    return positions


def tsne_svg(
    x: NDArray[Any],
    labels: Sequence[str],
    marks: Sequence[str],
    title: str,
    seed: int = 0,
) -> str:
    """The t-SNE map as SVG text, byte-identical for the same input and seed.

    `marks` holds one of `right`, `wrong`, `refused`, `flipped` or `unknown` per row. Rows with
    non-finite features (images that could not be embedded) are left out.
    """
    if not len(x) == len(labels) == len(marks):
        raise ValueError(
            f"expected one label and one mark per row; got {len(x)} rows, "
            f"{len(labels)} labels and {len(marks)} marks"
        )
    unknown = sorted(set(marks) - set(MARKS))
    if unknown:
        raise ValueError(f"unknown mark {unknown[0]!r}; expected one of {', '.join(MARKS)}")
    features = np.asarray(x, dtype=np.float64).reshape(len(labels), -1)
    keep = [bool(row.size and np.isfinite(row).all()) for row in features]
    positions = tsne_positions(features[np.asarray(keep, dtype=bool)], seed)
    kept_labels = [label for label, k in zip(labels, keep, strict=True) if k]
    kept_marks = [mark for mark, k in zip(marks, keep, strict=True) if k]
    return _draw(positions, kept_labels, kept_marks, title)


def _draw(positions: NDArray[Any], labels: list[str], marks: list[str], title: str) -> str:
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    classes = sorted(set(labels))
    colour = {c: COLOURS[i % len(COLOURS)] for i, c in enumerate(classes)}
    with figure_style():
        # The legend goes below the map, two columns, so that the figure stays MAX_WIDTH wide
        # (legible when scaled to a phone); the title wraps at word boundaries.
        heading = wrap_title(title, MAX_WIDTH - 0.3)
        kinds = [m for m in MARKS if m in marks]
        legend_rows = (len(classes) + len(kinds) + 1) // 2 + 1
        top, plot, bottom = 0.2 + 0.18 * (heading.count("\n") + 1), 3.6, 0.3 + 0.2 * legend_rows
        height = top + plot + bottom
        figure = Figure(figsize=(MAX_WIDTH, height))
        figure.subplots_adjust(
            0.1 / MAX_WIDTH, bottom / height, 1 - 0.1 / MAX_WIDTH, 1 - top / height
        )
        axes = figure.add_subplot()
        for mark, (marker, _) in MARKS.items():
            for c in classes:
                rows = [
                    i
                    for i, (lab, m) in enumerate(zip(labels, marks, strict=True))
                    if lab == c and m == mark
                ]
                if rows:
                    axes.scatter(
                        positions[rows, 0],
                        positions[rows, 1],
                        c=colour[c],
                        marker=marker,
                        s=28,
                        linewidths=0.4,
                        edgecolors="black",
                    )
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(heading, loc="left", fontsize=10)
        handles = [
            Line2D([], [], color=colour[c], marker="o", linestyle="", label=c) for c in classes
        ]
        handles += [
            Line2D([], [], color="grey", marker=MARKS[mark][0], linestyle="", label=MARKS[mark][1])
            for mark in kinds
        ]
        figure.legend(
            handles=handles,
            loc="lower left",
            bbox_to_anchor=(0.1 / MAX_WIDTH, 0.05 / height),
            ncols=2,
            title="colour: true label; marker: answer",
            frameon=False,
        )
        return figure_svg(figure, title)


__all__ = ["MARKS", "tsne_positions", "tsne_svg"]
