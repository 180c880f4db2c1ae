"""Severity curves as SVG: f1_all against severity, one line per (prompt family, perturbation).

Built element by element from the allow-lists below (each element and attribute is checked as
it is written), every text escaped and every number formatted here, so that no record text
becomes markup. One chart per task, 360 units wide with text of 12 units or more: on a phone's
358 px its text stays at 11.9 px or more. Lines differ by dash and marker shape as well as by
colour (classes `s0`..`s5` and `d0`..`d3` in style.css).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

ELEMENTS = frozenset({"svg", "title", "desc", "g", "line", "polyline", "path", "text"})
ATTRIBUTES = frozenset(
    {"class", "role", "viewBox", "x", "y", "x1", "x2", "y1", "y2", "points", "d"}
    | {"text-anchor", "transform"}
)
WIDTH = 360
LEFT, RIGHT, TOP, PLOT_H = 50, 14, 12, 170
KEY_TOP = TOP + PLOT_H + 50
"""Where the key below the axes starts; each line's entry takes two rows of text."""
ENTRY_H = 38
MAX_CHARS = 40
"""Longest text of a key row (longer: cut, and whole in the line's tooltip)."""
COLOURS, SHAPES = 6, 4
"""Colour classes `s0`..`s5`; dash and marker shape `d0`..`d3`."""
Scale = Callable[[float], float]


@dataclass(frozen=True)
class Point:
    """One severity level of a curve."""

    severity: int
    f1: float
    lo: float | None
    hi: float | None
    ssim: float | None


@dataclass(frozen=True)
class Series:
    """One curve: a perturbation of one prompt family, its levels and its rAUC."""

    family: str
    perturbation: str
    points: list[Point]
    rauc: float | None
    rauc_lo: float | None
    rauc_hi: float | None


def _el(name: str, attrs: dict[str, str] | None = None, body: Sequence[str] = ()) -> str:
    """One element; `body` is markup made by `_el`, or text escaped by `_esc`."""
    if name not in ELEMENTS:
        raise ValueError(f"element '{name}' is not allowed in a severity chart")
    shown = ""
    for key, value in (attrs or {}).items():
        if key not in ATTRIBUTES:
            raise ValueError(f"attribute '{key}' is not allowed in a severity chart")
        shown += f' {key}="{html.escape(value, quote=True)}"'
    return f"<{name}{shown}>{''.join(body)}</{name}>" if body else f"<{name}{shown}/>"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _f(value: float) -> str:
    return f"{value:.1f}"


def _line(cls: str, x1: float, x2: float, y1: float, y2: float) -> str:
    return _el("line", {"class": cls, "x1": _f(x1), "x2": _f(x2), "y1": _f(y1), "y2": _f(y2)})


def _label(cls: str, x: float, y: float, text: str, anchor: str = "start") -> str:
    attrs = {"class": cls, "x": _f(x), "y": _f(y), "text-anchor": anchor}
    return _el("text", attrs, [_esc(text)])


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def _interval(lo: float | None, hi: float | None) -> str:
    return "" if lo is None or hi is None else f" [{lo:.2f}, {hi:.2f}]"


def _marker(shape: int, x: float, y: float, r: float = 4.5) -> str:
    """The path of a circle, square, triangle or diamond centred on (x, y)."""
    corners = {
        1: [(-0.9, -0.9), (0.9, -0.9), (0.9, 0.9), (-0.9, 0.9)],
        2: [(0.0, -1.2), (1.1, 0.8), (-1.1, 0.8)],
        3: [(0.0, -1.2), (1.0, 0.0), (0.0, 1.2), (-1.0, 0.0)],
    }.get(shape)
    if corners is None:
        return f"M{_f(x - r)} {_f(y)}a{r} {r} 0 1 0 {2 * r} 0a{r} {r} 0 1 0 {-2 * r} 0Z"
    return "M" + "L".join(f"{_f(x + dx * r)} {_f(y + dy * r)}" for dx, dy in corners) + "Z"


def _name(series: Series) -> str:
    """The prompt family and rAUC of a line: the second row of its key entry."""
    rauc = "–" if series.rauc is None else f"{series.rauc:.2f}"
    return f"{series.family}: rAUC {rauc}{_interval(series.rauc_lo, series.rauc_hi)}"


def curves_svg(series: list[Series], title: str) -> str:
    """The chart as an inline SVG element (a string of markup) with its `<title>` and key."""
    top = max([5, *(p.severity for s in series for p in s.points)])
    plot_w, bottom = WIDTH - LEFT - RIGHT, TOP + PLOT_H

    def x(v: float) -> float:
        return LEFT + plot_w * (v + 0.4) / (top + 0.8)

    def y(v: float) -> float:
        return TOP + PLOT_H * (1.0 - min(max(v, 0.0), 1.0))

    axes = []
    for v, text in ((0.0, "0"), (0.25, "0.25"), (0.5, "0.5"), (0.75, "0.75"), (1.0, "1")):
        axes += [_line("grid", LEFT, WIDTH - RIGHT, y(v), y(v))]
        axes += [_label("tick", LEFT - 6, y(v) + 4, text, "end")]
    axes += [_label("tick", x(s), bottom + 18, str(s), "middle") for s in range(top + 1)]
    axes += [
        _line("axis", LEFT, WIDTH - RIGHT, bottom, bottom),
        _label(
            "label", LEFT + plot_w / 2, bottom + 40, "Severity (0: the original image)", "middle"
        ),
        _el(
            "text",
            {"class": "label", "transform": f"translate(15 {_f(bottom - PLOT_H / 2)}) rotate(-90)"}
            | {"text-anchor": "middle"},
            ["f1_all"],
        ),
    ]
    desc = (
        "f1_all (up is better) at each severity of each perturbation, with 95% intervals as "
        "whiskers; the key below names each line, its prompt family and its rAUC."
    )
    height = KEY_TOP + ENTRY_H * len(series) + 4
    return _el(
        "svg",
        {"class": "curves", "role": "img", "viewBox": f"0 0 {WIDTH} {height}"},
        [
            _el("title", body=[_esc(title)]),
            _el("desc", body=[_esc(desc)]),
            _el("g", {"class": "axes"}, axes),
            *(_series(i, s, len(series), x, y) for i, s in enumerate(series)),
            _el("g", {"class": "key"}, [_entry(i, s) for i, s in enumerate(series)]),
        ],
    )


def _style(i: int) -> str:
    return f"s{i % COLOURS} d{i % SHAPES}"


def _series(i: int, series: Series, n: int, fx: Scale, fy: Scale) -> str:
    """A curve's line, whiskers and points (one mark per level), shifted sideways a little so
    that the whiskers of its neighbours do not hide each other."""
    shift = (i - (n - 1) / 2) * min(4.0, 16.0 / n)
    points = sorted(series.points, key=lambda p: p.severity)
    at = [(fx(p.severity) + shift, fy(p.f1)) for p in points]
    body = [_el("title", body=[_esc(f"{series.perturbation} ({_name(series)})")])]
    body += [
        _el("polyline", {"class": "line", "points": " ".join(f"{_f(a)},{_f(b)}" for a, b in at)})
    ]
    body += [
        _line("whisker", px, px, fy(p.lo), fy(p.hi))
        for p, (px, _) in zip(points, at, strict=True)
        if p.lo is not None and p.hi is not None
    ]
    for p, (px, py) in zip(points, at, strict=True):
        ssim = "" if p.ssim is None else f", SSIM {p.ssim:.2f}"
        tip = (
            f"{series.perturbation}, {series.family}, severity {p.severity}: "
            f"f1_all {p.f1:.2f}{_interval(p.lo, p.hi)}{ssim}"
        )
        marker = {"class": "point", "d": _marker(i % SHAPES, px, py)}
        body.append(_el("path", marker, [_el("title", body=[_esc(tip)])]))
    return _el("g", {"class": f"series {_style(i)}"}, body)


def _entry(i: int, series: Series) -> str:
    """The key's entry of a line: a sample of its stroke and marker, its perturbation, then its
    prompt family and rAUC."""
    row = KEY_TOP + ENTRY_H * i + 14
    body = [
        _el("title", body=[_esc(f"{series.perturbation} ({_name(series)})")]),
        _line("line", 8, 40, row - 4, row - 4),
        _el("path", {"class": "swatch", "d": _marker(i % SHAPES, 24, row - 4)}),
        _label("name", 48, row, _clip(series.perturbation)),
        _label("sub", 48, row + 16, _clip(_name(series))),
    ]
    return _el("g", {"class": f"entry {_style(i)}"}, body)
