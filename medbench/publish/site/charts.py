"""Pre-rendered SVG charts: byte-reproducible (fixed hash salt, no date), with a <title>."""

from __future__ import annotations

import html
import io
import re

from medbench.publish.record import Scalar


def heatmap_svg(grid: list[list[Scalar]], rows: list[str], columns: list[str], title: str) -> bytes:
    """A heatmap of values in [0, 1] as reproducible SVG (vector, no date) with a `<title>`;
    a row label `family/variant` longer than 16 characters breaks after its slash."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    values = np.array([[np.nan if v is None else v for v in r] for r in grid], dtype=float)
    # Fixed margins from the label lengths (inches at 10 pt): a layout engine costs 3x the
    # drawing. Text stays 10 pt and the figure narrow (rows are the many prompt variants,
    # columns the few tasks), so that scaled to a phone's width its text stays legible.
    shown = [label.replace("/", "/\n", 1) if len(label) > 16 else label for label in rows]
    lines = max((label.count("\n") + 1 for label in shown), default=1)
    left = 0.2 + 0.075 * max((len(part) for r in shown for part in r.split("\n")), default=1)
    bottom = 0.3 + 0.055 * max(map(len, columns), default=1)
    cell_h = 0.22 + 0.17 * lines
    width, height = left + 0.5 * len(columns) + 0.75, bottom + cell_h * len(rows) + 0.15
    with matplotlib.rc_context(
        {"svg.hashsalt": "medbench", "svg.fonttype": "none", "font.size": 10}
    ):
        figure = Figure(figsize=(width, height))
        right = (width - 0.7) / width
        figure.subplots_adjust(left / width, bottom / height, right, 1 - 0.15 / height)
        axes = figure.add_subplot()
        masked = np.ma.masked_invalid(values)  # type: ignore[no-untyped-call,unused-ignore]
        mesh = axes.pcolormesh(masked, cmap="viridis", vmin=0.0, vmax=1.0)
        for (i, j), v in np.ndenumerate(values):
            text = "–" if np.isnan(v) else f"{v:.2f}"
            colour = "black" if v > 0.6 else "white"
            axes.text(j + 0.5, i + 0.5, text, ha="center", va="center", color=colour)
        axes.set_xticks(np.arange(len(columns)) + 0.5, columns, rotation=35, ha="right")
        axes.set_yticks(np.arange(len(rows)) + 0.5, shown)
        axes.invert_yaxis()
        colorbar = figure.add_axes(
            (right + 0.08 / width, bottom / height, 0.1 / width, cell_h * len(rows) / height)
        )
        figure.colorbar(mesh, cax=colorbar, label="f1_all")
        buffer = io.StringIO()
        figure.savefig(
            buffer,
            format="svg",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    svg = re.sub(r"<!DOCTYPE[^>]*>\n?", "", buffer.getvalue())  # its DTD address is never needed
    svg = re.sub(
        r"(<svg[^>]*>)",
        lambda m: f"{m.group(1)}\n <title>{html.escape(title)}</title>",
        svg,
        count=1,
    )
    return svg.encode("utf-8")
