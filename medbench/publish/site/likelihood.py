"""The likelihood stage on a model page: reliability diagrams and the calibration table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medbench.publish.record import Record
from medbench.publish.site.layout import Col, Data, Table, file_stem, title_of

if TYPE_CHECKING:
    from medbench.publish.site.context import Site

CALIBRATION_COLUMNS = [
    Col("Task", "task", "head"),
    Col("Prompt family", "family", "text"),
    Col("Variant", "variant", "text"),
    Col("Pipeline", "pipeline", "text"),
    Col("n", "n", "int"),
    Col("Accuracy", "accuracy"),
    Col("Mean confidence", "mean_confidence"),
    Col("ECE", "ece"),
    Col("Brier", "brier"),
    Col("AURC", "aurc"),
]


def reliability_figures(site: Site, record: Record, name: str) -> list[tuple[str, str, str]]:
    """Write the record's reliability diagrams (already rebuilt from the SVG allow-list) into
    the site; (src, alt, task title) of each, in task order."""
    figures = []
    for task, svg in sorted(site.reliability.get((record.suite, record.model_id), {}).items()):
        path = f"charts/{file_stem(name, 'reliability', task)}.svg"
        site.files[path] = svg
        alt = (
            f"Reliability diagram of {title_of(record)} on {site.task_title(task)}: accuracy "
            "against the top option's probability, per bin, a line per prompt family"
        )
        figures.append(("../" + path, alt, site.task_title(task)))
    return figures


def calibration_table(site: Site, record: Record, name: str) -> Table | None:
    """ECE, Brier and AURC per task, family and variant (`*`: every variant pooled)."""
    if not record.calibration:
        return None
    rows: Data = sorted(
        (dict(r) for r in record.calibration),
        key=lambda r: tuple(str(r.get(k)) for k in ("task", "family", "pipeline", "variant")),
    )
    caption = (
        f"{record.suite}: calibration of the option probabilities (softmax over the offered "
        "options): ECE over 10 equal-width bins, Brier score, area under the risk-coverage "
        "curve; variant * pools every variant of the family"
    )
    return site.table(file_stem(name, "calibration"), "../", caption, CALIBRATION_COLUMNS, rows)


__all__ = ["CALIBRATION_COLUMNS", "calibration_table", "reliability_figures"]
