"""What the site shows of image-side robustness: severity curves (a table and a chart per
task), four quadrants per image, and a model's summary of both; as specs for `Site.table`."""

from __future__ import annotations

from medbench.publish.record import Record, Scalar
from medbench.publish.site.curves import Point, Series, curves_svg
from medbench.publish.site.layout import Col, Data, interval, num, title_of

Spec = tuple[str, str, list[Col], Data]
"""A table to render: its name (after the page's), caption, columns and rows."""

SEVERITY_COLUMNS = [
    Col("Task", "task", "head"),
    Col("Prompt family", "family", "text"),
    Col("Pipeline", "pipeline", "text"),
    Col("Perturbation", "perturbation", "text"),
    Col("Severity", "severity", "int"),
    Col("Images", "n_images", "int"),
    Col("f1_all [95% CI]", "f1_all", "est"),
    Col("Image fragility [95% CI]", "image_fragility", "est"),
    Col("SSIM at the model's input", "ssim"),
    Col("Relative F1", "relative_f1"),
    Col("rAUC of the curve [95% CI]", "rauc", "est"),
]
QUADRANTS = ("ideal", "fragile", "dangerous", "worst")
QUADRANT_COLUMNS = [
    Col("Task", "task", "head"),
    Col("Prompt family", "family", "text"),
    Col("Pipeline", "pipeline", "text"),
    Col("Reference wording", "reference", "text"),
    Col("Ablations", "ablation", "text"),
    Col("Images", "n_images", "int"),
    *(Col(f"{q.capitalize()} [95% CI]", q, "est") for q in QUADRANTS),
]
DANGEROUS_LABEL = "Dangerous [95% CI]"
RAUC_LABEL = "rAUC [95% CI]"
"""The index ranking's columns beside visual reliance, where a suite measured them."""
DIRECT = "direct"


def _number(value: Scalar) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _key(row: dict[str, Scalar], *names: str) -> tuple[str, ...]:
    return tuple(str(row.get(n)) for n in names)


def model_tables(record: Record) -> list[Spec]:
    """A model page's severity and quadrant tables (none for a record without them)."""
    suite, found = record.suite, []
    rows = sorted(
        record.severity or [],
        key=lambda r: (
            *_key(r, "task", "family", "pipeline", "perturbation"),
            _number(r.get("severity")) or 0,
        ),
    )
    if rows:
        caption = (
            f"{suite}: severity curves, f1_all as each perturbation grows (severity 0: the "
            "original image), with image fragility, SSIM at the model's input, F1 relative to "
            "the original, and the curve's rAUC (mean relative F1 over its levels)"
        )
        found.append(("severity", caption, SEVERITY_COLUMNS, rows))
    rows = sorted(record.quadrants or [], key=lambda r: _key(r, "task", "family", "pipeline"))
    if rows:
        caption = (
            f"{suite}: four quadrants, the share of images whose answer is consistent across "
            "wordings or not, and relies on the image or not (changes without it); dangerous: "
            "consistent, and the same without the image"
        )
        found.append(("quadrants", caption, QUADRANT_COLUMNS, rows))
    return found


def _pipelines(rows: list[dict[str, Scalar]] | None) -> list[dict[str, Scalar]]:
    """The rows of a per-model table, the direct pipeline first."""
    return sorted(rows or [], key=lambda r: (r.get("pipeline") != DIRECT, str(r.get("pipeline"))))


def _estimate(row: dict[str, Scalar], name: str) -> str:
    bounds = interval(row, name)
    return num(row.get(name)) + (f" {bounds}" if bounds else "")


def summary(record: Record) -> list[str]:
    """One line per pipeline of the model's dangerous share and its rAUC, where measured."""
    lines = []
    for row in _pipelines(record.quadrant_models):
        pipeline = row.get("pipeline")
        of = "" if pipeline == DIRECT else f" ({pipeline})"
        images, tasks = num(row.get("n_images"), 0), num(row.get("n_tasks"), 0)
        lines.append(
            f"Dangerous quadrant{of}: {_estimate(row, 'dangerous')} of {images} images over "
            f"{tasks} tasks (the same answer under every wording and without the image: an "
            "answer that does not come from the image)."
        )
    for row in _pipelines(record.severity_models):
        pipeline = row.get("pipeline")
        of = "" if pipeline == DIRECT else f" ({pipeline})"
        left_out = row.get("n_curves_undefined")
        note = (
            f", {num(left_out, 0)} left out (f1_all 0 on the original image)"
            if isinstance(left_out, int) and left_out
            else ""
        )
        lines.append(
            f"Relative robustness (rAUC){of}: {_estimate(row, 'rauc')} over "
            f"{num(row.get('n_curves'), 0)} severity curves{note} (1: no loss of F1 as the "
            "image degrades)."
        )
    return lines


def _points(levels: list[dict[str, Scalar]]) -> list[Point]:
    found = []
    for row in levels:
        severity, f1 = _number(row.get("severity")), _number(row.get("f1_all"))
        if severity is not None and f1 is not None:
            bounds = (_number(row.get(k)) for k in ("f1_all_lo", "f1_all_hi", "ssim"))
            found.append(Point(int(severity), f1, *bounds))
    return found


def _series(rows: list[dict[str, Scalar]]) -> list[Series]:
    """The curves of one task's direct rows, by prompt family then perturbation."""
    by_curve: dict[tuple[str, str], list[dict[str, Scalar]]] = {}
    for row in rows:
        by_curve.setdefault((str(row.get("family")), str(row.get("perturbation"))), []).append(row)
    found = []
    for (family, perturbation), levels in sorted(by_curve.items()):
        points = _points(levels)
        if points:
            rauc = (_number(levels[0].get(k)) for k in ("rauc", "rauc_lo", "rauc_hi"))
            found.append(Series(family, perturbation, points, *rauc))
    return found


def curve_charts(record: Record, titles: dict[str, str]) -> list[tuple[str, str]]:
    """(caption, inline SVG) of one severity chart per task of the direct pipeline, in the
    order of `titles` (task id -> title)."""
    charts = []
    for task, title in titles.items():
        rows = [
            r
            for r in record.severity or []
            if r.get("task") == task and r.get("pipeline") == DIRECT
        ]
        series = _series(rows)
        if not series:
            continue
        alt = (
            f"{title_of(record)} on {title}: f1_all against the severity of each perturbation, "
            "a line per prompt family and perturbation, with 95% intervals"
        )
        charts.append((title, curves_svg(series, alt)))
    return charts
