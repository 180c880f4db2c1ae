"""The published figures stay legible on a phone: at most MAX_WIDTH wide, text 10 pt or more,
so that scaled to a 358 px column their text is at least 11 px."""

from __future__ import annotations

import re

import numpy as np
import pytest

from medbench.publish.site import heatmap_svg
from medbench.score.likelihood.reliability import reliability_svg, runs
from medbench.score.probe import tsne_svg
from medbench.score.svgfigure import MAX_WIDTH, wrap_title

PHONE = 358
"""The width of a 390 px phone's content column, in CSS px."""


def smallest_text_at_phone_width(svg: str) -> float:
    """The smallest text of `svg`, in CSS px, when the figure is scaled to the phone column
    (never scaled up)."""
    width = float(re.search(r'viewBox="0 0 ([\d.]+)', svg).group(1))  # type: ignore[union-attr]
    natural = width * 4 / 3  # matplotlib's user unit is the point
    sizes = [float(s) for s in re.findall(r"font-size: ([\d.]+)px", svg)]
    return min(sizes) * 4 / 3 * min(1.0, PHONE / natural)


def test_runs_group_neighbouring_bins_and_break_at_empty_ones() -> None:
    assert runs([0, 1, 3, 4, 5, 8]) == [[0, 1], [2, 3, 4], [5]]
    assert runs([]) == []


def test_reliability_svg_is_legible_at_390_px_and_keeps_its_whole_title() -> None:
    rng = np.random.default_rng(0)
    probs = np.array([[0.95, 0.05]] * 30 + [[0.55, 0.45]] * 10)
    truth = rng.integers(0, 2, 40)
    title = "tiny-gemma3-med on pneumonia_cxr: reliability of option probabilities (likelihood)"
    svg = reliability_svg([("closed_diagnosis", probs, truth)], title)
    assert smallest_text_at_phone_width(svg) >= 11
    assert "option probabilities" in svg.split("</title>", 1)[1]  # drawn, wrapped, not cut


def test_tsne_svg_is_legible_at_390_px() -> None:
    x = np.random.default_rng(0).normal(size=(8, 4))
    labels = ["normal", "pneumonia"] * 4
    marks = ["right", "wrong", "refused", "flipped"] * 2
    svg = tsne_svg(x, labels, marks, "tiny-gemma3-med on pneumonia_cxr: t-SNE of embeddings")
    assert smallest_text_at_phone_width(svg) >= 11


@pytest.mark.parametrize("tasks", [2, 4])
def test_heatmap_svg_is_legible_at_390_px(tasks: int) -> None:
    variants = [f"closed_diagnosis/{v}" for v in ("plain", "guided", "persona", "reversed")]
    grid: list[list[float | None]] = [[0.5] * tasks for _ in variants]
    columns = ["brain_tumor_mri", "pneumonia_cxr", "skin_lesion", "histopathology"][:tasks]
    svg = heatmap_svg(grid, variants, columns, "f1_all").decode()  # type: ignore[arg-type]
    assert smallest_text_at_phone_width(svg) >= 11


def test_wrap_title_breaks_at_words_within_the_width() -> None:
    lines = wrap_title("a reliability diagram of option probabilities " * 3, MAX_WIDTH).split("\n")
    assert len(lines) > 1 and all(not line.startswith(" ") for line in lines)
    assert " ".join(lines).split() == ("a reliability diagram of option probabilities " * 3).split()
