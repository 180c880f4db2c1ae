"""The site's typed page model: columns, cells, tables, sections and pages, and formatting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from medbench.publish.record import Record, Scalar

SITE_DIR = Path(__file__).resolve().parents[3] / "site"
"""The repository's `site/` folder: `templates/` (Jinja2) and `static/` (CSS, JS, icon)."""
Data = list[dict[str, Scalar]]
SEPARATOR = "~"
"""Joins the parts of a site file's name: no id holds it, so no two models', suites' or tasks'
files share a name (with a dot, model `a.b` of suite `q` met model `b` of suite `q.a`)."""


def file_stem(*parts: str) -> str:
    """The name of a site file (before its extension) from its ids and fixed words."""
    return SEPARATOR.join(parts)


FAMILY_METRICS = (
    "disagreement",
    "prompt_sensitivity",
    "flip_rate",
    "refusal_flip_rate",
    "fleiss_kappa",
    "spread",
    "worst_f1",
)


RANKED = ("all_variants_kappa", "fragility_index", "mean_kappa", "mean_worst_kappa")
"""The ranking's metric columns: the headline first, then what stands beside it. All are
chance-corrected (or, fragility, shown only for a model with skill), so that no sort puts a
model that knows nothing first."""
HEADLINE = RANKED[0]
LABELS = {
    "all_variants_kappa": "All-variants κ [95% CI]",
    "mean_kappa": "Mean κ [95% CI]",
    "mean_worst_kappa": "Worst-variant κ (no CI)",
    "all_variants_f1": "All-variants F1 [95% CI]",
    "fragility_index": "Fragility index [95% CI]",
    "mean_f1_all": "Mean f1_all [95% CI]",
    "mean_worst_f1": "Worst-variant f1_all (no CI)",
}


@dataclass(frozen=True)
class TaskClass:
    id: str
    name: str
    positive: bool
    signs: list[str]


@dataclass(frozen=True)
class Wording:
    family: str
    variant: str
    kind: str
    system: str | None
    text: str


@dataclass(frozen=True)
class TaskDetails:
    question: str
    description: str
    classes: list[TaskClass]
    wordings: list[Wording]
    examples: list[tuple[str, str]] = field(default_factory=list)
    """(src from the site root, alt) of example images."""
    homepage: str | None = None
    license: str | None = None


@dataclass(frozen=True)
class Col:
    """How to show one column: `text`, `int`, `num`, `est` (value [lo, hi]), `rank` (the
    row's `rank_range` text, sorted by its integer `rank`), `model` or `head`."""

    label: str
    key: str
    kind: str = "num"
    task: str | None = None
    """The task of a per-task column (the index's task filter hides it)."""
    better: str | None = None
    """For a difference: `higher` or `lower`; a cell whose CI excludes 0 is toned by it."""
    badges: bool = True
    """For a model column: show its badges (test model, local); off in secondary tables."""

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "num", "est", "rank")


@dataclass(frozen=True)
class Cell:
    text: str
    sort: str | None = None
    ci: str | None = None
    href: str | None = None
    badges: tuple[str, ...] = ()
    header: bool = False
    task: str | None = None
    tone: str | None = None
    """`better` or `worse`: a difference whose CI excludes 0."""
    hover: str | None = None
    """The full text, shown on hover where the cell is cut short."""


@dataclass(frozen=True)
class Table:
    """A server-side sorted table with its caption and its CSV and JSON downloads."""

    id: str
    caption: str
    columns: list[Col]
    rows: list[tuple[str | None, list[Cell]]]
    """(task of the row for the filter, cells)."""
    sorted_by: int
    order: str
    csv: str
    json: str
    note: str = ""
    defs: list[str | None] = field(default_factory=list)
    """Per column, the link to its definition on the methods page (None: none)."""
    row_attrs: list[dict[str, str]] = field(default_factory=list)
    """Per row, `data-*` attributes the index's filters read (model family, kind, test)."""


@dataclass(frozen=True)
class Section:
    """One suite's part of a page."""

    suite: str
    tables: list[Table]
    facts: list[tuple[str, str]] = field(default_factory=list)
    chart: str | None = None
    chart_alt: str = ""
    test_models: bool = False
    contributed: bool = False
    """Whether the section shows published records whose answers are taken on trust."""
    local: bool = False
    """Whether the section shows local, unpublished records."""
    maps: list[tuple[str, str, str]] = field(default_factory=list)
    """t-SNE maps: (src, alt, task title)."""
    reliability: list[tuple[str, str, str]] = field(default_factory=list)
    """Reliability diagrams of the option probabilities: (src, alt, task title)."""
    svg: str | None = None
    """An inline chart, built element by element by `scatter_svg` (no record text unescaped)."""
    chart_key: list[tuple[str, str, str]] = field(default_factory=list)
    """(rank, title, model id) of the chart's marks: what each rank label names."""
    task_charts: list[tuple[str, str, str]] = field(default_factory=list)
    """(task, src, alt) of the chart of one task, shown in place of the all-task chart when
    the index's task filter picks that task."""
    links: list[tuple[str, str]] = field(default_factory=list)
    """(href, text) of pages this section leads to (the flip viewers of a model)."""
    compare: list[tuple[str, str]] = field(default_factory=list)
    """(href, text) of the image-by-image comparison viewers this section leads to."""
    curves: list[tuple[str, str]] = field(default_factory=list)
    """(task title, inline SVG built by `curves_svg`) of the severity chart of each task."""
    summary: list[str] = field(default_factory=list)
    """Lines summing up image-side robustness: the dangerous quadrant and the rAUC."""


@dataclass(frozen=True)
class Page:
    """What every template sees as `page`; subclasses add their own fields."""

    title: str
    root: str
    """The relative path back to the site root: `` or `../`."""
    build_date: str
    version: str
    sections: list[Section]


@dataclass(frozen=True)
class IndexPage(Page):
    tasks: list[tuple[str, str]]
    """(id, title) of every task: the task filter and the task links."""
    modalities: dict[str, str] = field(default_factory=dict)
    """task id -> its imaging modality: the modality filter."""
    families: list[str] = field(default_factory=list)
    """The models' architecture families: the family filter."""


@dataclass(frozen=True)
class ModelPage(Page):
    test_model: bool
    description: str
    facts: list[tuple[str, str]]
    card: list[tuple[str, str, list[tuple[str, str]]]] = field(default_factory=list)
    """The model card: (term, text, links after the text) of what a reader needs first."""
    contributed: bool = False
    """Whether the model's published answers are taken on trust (`claims.contributed`)."""


@dataclass(frozen=True)
class TaskPage(Page):
    facts: list[tuple[str, str]]
    details: TaskDetails | None = None
    """Question, classes, wordings and examples, when the site is built with the specs."""
    homepage: str | None = None
    """The dataset's homepage (an https address only)."""


@dataclass(frozen=True)
class MethodsPage(Page):
    n_boot: list[int]


def num(value: Scalar, digits: int = 3) -> str:
    if value is None or isinstance(value, bool | str):
        return "–" if value is None else str(value)
    return f"{value:.{digits}f}"


def interval(row: dict[str, Scalar], key: str) -> str | None:
    """`key`'s 95% interval in a row, as `[lo, hi]` (None where the row has no bounds)."""
    lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
    return None if lo is None or hi is None else f"[{num(lo)}, {num(hi)}]"


def mean(values: Iterable[Scalar]) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return sum(numbers) / len(numbers) if numbers else None


def title_of(record: Record) -> str:
    title = record.model.get("title")
    return title if isinstance(title, str) and title else record.model_id
