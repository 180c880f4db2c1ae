"""The index chart: headline score against fragility, one mark per ranked model, as SVG.

Built element by element from a fixed vocabulary (svg, title, desc, g, line, circle, rect,
path, text, defs, marker), every text escaped and every number formatted here, so the
markup holds nothing a record could inject. Each mark has its `<title>`; CI whiskers run
along both axes; an arrow joins each medical model to its base; baselines are squares.
A mark is labelled by its rank (the key below the chart names the models): marks that sit
together share one label, so labels never overlap each other or a long title.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass

WIDTH, HEIGHT = 440, 340
"""With 14-unit text (style.css), scaled to a phone's 358 px the text is 11.4 px."""
LEFT, RIGHT, TOP, BOTTOM = 58, 26, 14, 58


@dataclass(frozen=True)
class Mark:
    """One ranked model on the chart."""

    model: str
    title: str
    score: float
    score_lo: float | None
    score_hi: float | None
    fragility: float
    fragility_lo: float | None
    fragility_hi: float | None
    baseline: bool
    base: str | None = None
    """The model this one was fine-tuned from, when it is on the chart too."""
    skill: bool = True
    """Whether its headline interval lies above 0; without skill it shows no fragility."""
    rank: int = 0
    """The mark's label: its rank in the table (0: none)."""


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _f(value: float) -> str:
    return f"{value:.1f}"


def _limit(marks: list[Mark]) -> float:
    """The fragility axis's upper end: a round step above the largest whisker."""
    top = max([m.fragility_hi or m.fragility for m in marks] + [0.05])
    return min(1.0, math.ceil(top * 10 + 0.5) / 10)


STANDALONE_STYLE = (
    "<style>svg{font:14px system-ui,sans-serif}.grid{stroke:#e5e8eb}.label{font-weight:600}"
    ".whisker{stroke:#57606a;stroke-width:1.5}.mark circle{fill:#0b5cad}"
    ".mark.baseline rect{fill:#9aa4ad;stroke:#57606a}.mark text{fill:#1b1f24;font-weight:700}"
    ".pair{stroke:#8a4b00;stroke-width:2}.arrowhead{fill:#8a4b00}</style>"
)
"""The site's chart rules (style.css), for a chart written as a file of its own."""


def scatter_svg(marks: list[Mark], caption: str, *, standalone: bool = False) -> str:
    """The chart as an inline SVG element (a string of markup); `standalone`: as a file of its
    own (an `<img>`), with its namespace, size and style, and ids of its own."""
    x_max = _limit(marks)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(v: float) -> float:
        return LEFT + plot_w * min(max(v, 0.0), x_max) / x_max

    def y(v: float) -> float:
        return TOP + plot_h * (1.0 - min(max(v, 0.0), 1.0))

    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        if standalone
        else '<svg class="chart" '
    )
    out = [
        f'{head}role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'aria-labelledby="chart-title chart-desc">',
        f'<title id="chart-title">{_esc(caption)}</title>',
        '<desc id="chart-desc">Up is better (more images right under every wording); '
        "left is better (answers change less when the prompt is reworded). Squares are "
        "baselines; an arrow runs from a general model to its medical fine-tune.</desc>",
        STANDALONE_STYLE if standalone else "",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'class="arrowhead"/></marker></defs>',
        '<g class="axes">',
    ]
    for i in range(6):
        v = i / 5
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_f(y(v))}" y2="{_f(y(v))}"/>'
        )
        out.append(f'<text x="{LEFT - 6}" y="{_f(y(v) + 5)}" text-anchor="end">{v:.1f}</text>')
    steps = round(x_max * 10)
    for i in range(steps + 1):
        v = i / 10
        if steps > 5 and i % 2:
            continue
        gx = _f(x(v))
        out.append(f'<line class="grid" x1="{gx}" x2="{gx}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>')
        out.append(
            f'<text x="{_f(x(v))}" y="{HEIGHT - BOTTOM + 20}" text-anchor="middle">{v:.1f}</text>'
        )
    out += [
        f'<text class="label" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 10}" '
        'text-anchor="middle">Fragility index (lower is better)</text>',
        f'<text class="label" transform="translate(18 {TOP + plot_h / 2:.1f}) rotate(-90)" '
        'text-anchor="middle">All-variants kappa (higher is better)</text>',
        "</g>",
    ]
    at = {m.model: m for m in marks}
    for mark in marks:
        base = at.get(mark.base or "")
        if base is None:
            continue
        x1, y1, x2, y2 = x(base.fragility), y(base.score), x(mark.fragility), y(mark.score)
        length = math.hypot(x2 - x1, y2 - y1)
        if length > 2 * GAP:  # end at the mark's edge, so that the arrowhead shows
            dx, dy = (x2 - x1) * GAP / length, (y2 - y1) * GAP / length
            x1, y1, x2, y2 = x1 + dx, y1 + dy, x2 - dx, y2 - dy
        out.append(
            f'<line class="pair" x1="{_f(x1)}" y1="{_f(y1)}" '
            f'x2="{_f(x2)}" y2="{_f(y2)}" marker-end="url(#arrow)">'
            f"<title>{_esc(base.title)} to its medical fine-tune {_esc(mark.title)}</title></line>"
        )
    labels = _labels(marks, x, y)
    for mark in sorted(marks, key=lambda m: (-m.score, m.fragility, m.model)):
        out.append(_mark(mark, x, y, labels.get(mark.model)))
    out.append("</svg>")
    return "\n".join(out)


GAP = 8.0
"""How far a pair's arrow stops short of each mark's centre (a mark's radius is 6)."""
NEAR = 12.0
"""Marks closer than this (in chart units) share one label."""


def _labels(
    marks: list[Mark], fx: Callable[[float], float], fy: Callable[[float], float]
) -> dict[str, tuple[float, float, str]]:
    """model -> (x, y, text) of the one label of each group of marks that sit together (the
    first of the group carries it); a label is moved down until it clears the ones before."""
    groups: list[list[Mark]] = []
    for mark in sorted(marks, key=lambda m: (m.rank, m.model)):
        at = (fx(mark.fragility), fy(mark.score))
        for group in groups:
            first = group[0]
            if math.dist(at, (fx(first.fragility), fy(first.score))) < NEAR:
                group.append(mark)
                break
        else:
            groups.append([mark])
    found: dict[str, tuple[float, float, str]] = {}
    placed: list[tuple[float, float, float]] = []
    for group in groups:
        first = group[0]
        text = ",".join(str(m.rank) for m in group if m.rank)
        if not text:
            continue
        lx, ly = fx(first.fragility) + 9, fy(first.score) - 7
        if lx + 9 * len(text) > WIDTH:  # near the right edge: the label goes to the left
            lx = fx(first.fragility) - 9 - 8.5 * len(text)
        ly = max(ly, TOP + 12)
        width = 8.5 * len(text)
        while any(abs(lx - px) < max(width, pw) and abs(ly - py) < 15 for px, py, pw in placed):
            ly += 15
        placed.append((lx, ly, width))
        found[first.model] = (lx, ly, text)
    return found


def _interval(lo: float | None, hi: float | None) -> str:
    return "" if lo is None or hi is None else f" [{lo:.3f}, {hi:.3f}]"


def _mark(
    mark: Mark,
    fx: Callable[[float], float],
    fy: Callable[[float], float],
    label: tuple[float, float, str] | None,
) -> str:
    cx, cy = fx(mark.fragility), fy(mark.score)
    kind = "baseline" if mark.baseline else "model"
    fragility = (
        f"{mark.fragility:.3f}{_interval(mark.fragility_lo, mark.fragility_hi)}"
        if mark.skill
        else "– (no skill: never changing an uninformative answer is no robustness)"
    )
    tip = (
        f"{mark.title}{' (baseline)' if mark.baseline else ''}: all-variants kappa "
        f"{mark.score:.3f}{_interval(mark.score_lo, mark.score_hi)}, fragility index {fragility}"
    )
    parts = [
        f'<g class="mark {kind}" data-model="{_esc(mark.model)}">',
        f"<title>{_esc(tip)}</title>",
    ]
    if mark.score_lo is not None and mark.score_hi is not None:
        parts.append(
            f'<line class="whisker" x1="{_f(cx)}" x2="{_f(cx)}" '
            f'y1="{_f(fy(mark.score_lo))}" y2="{_f(fy(mark.score_hi))}"/>'
        )
    if mark.fragility_lo is not None and mark.fragility_hi is not None:
        parts.append(
            f'<line class="whisker" x1="{_f(fx(mark.fragility_lo))}" '
            f'x2="{_f(fx(mark.fragility_hi))}" y1="{_f(cy)}" y2="{_f(cy)}"/>'
        )
    if mark.baseline:
        parts.append(f'<rect x="{_f(cx - 5)}" y="{_f(cy - 5)}" width="10" height="10"/>')
    else:
        parts.append(f'<circle cx="{_f(cx)}" cy="{_f(cy)}" r="6"/>')
    if label is not None:
        lx, ly, text = label
        parts.append(f'<text x="{_f(lx)}" y="{_f(ly)}">{_esc(text)}</text>')
    parts.append("</g>")
    return "".join(parts)
