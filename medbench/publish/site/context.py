"""What every page of the site is built from: the records by suite and model, the specs, and
the shared look-ups of per-task values, pairs and wordings."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from medbench.publish.claims import contributed
from medbench.publish.record import Record, Scalar
from medbench.publish.rederive import spec_changes
from medbench.publish.site.glossary import definition
from medbench.publish.site.layout import (
    SITE_DIR,
    Cell,
    Col,
    Data,
    Page,
    Table,
    interval,
    mean,
    num,
    title_of,
)
from medbench.score.metrics import MIN_CLUSTERS_ASYMPTOTIC
from medbench.spec.loading import SpecSet

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""How a spreadsheet formula starts: a published CSV text cell never does."""


def csv_cell(value: Scalar) -> Scalar:
    """A cell as a published CSV holds it: null as empty, and a text that a spreadsheet would
    run as a formula quoted with a leading `'` (numbers are written as they are)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class Site:
    """The output being assembled in memory (relative path -> bytes) and what pages share."""

    def __init__(
        self,
        records: list[Record],
        specs: SpecSet | None,
        maps: dict[tuple[str, str], dict[str, bytes]] | None = None,
        local: set[tuple[str, str]] | None = None,
        answers: dict[tuple[str, str], pd.DataFrame] | None = None,
        reliability: dict[tuple[str, str], dict[str, bytes]] | None = None,
    ) -> None:
        self.records, self.specs = records, specs
        self.maps = maps or {}
        """(suite, model) -> task -> t-SNE map SVG, published beside the record."""
        self.reliability = reliability or {}
        """(suite, model) -> task -> reliability diagram SVG, published beside the record."""
        self.local = local or set()
        """(suite, model) of the local, unpublished records (fresh results of `medbench run`)."""
        self.answers = answers or {}
        """(suite, model) -> the record's per-image answer rows (its sidecar)."""
        self.flip_links: dict[tuple[str, str], list[tuple[str, str]]] = {}
        """(suite, model) -> (path from the root, text) of its flip viewers."""
        self.compare_links: dict[tuple[str, str], list[tuple[str, str]]] = {}
        """(suite, task) -> (path from the root, text) of its comparison viewers."""
        self.models = {r.model_id: r for r in records}
        self.stale = {
            (r.suite, r.model_id): tuple(ref for ref, _, _ in changed)
            for r in records
            if specs is not None and (changed := spec_changes(r, specs))
        }
        """(suite, model) -> the specs that changed since the record was made (or are gone)."""
        self.build_date = max((r.date for r in records), default="no records")
        self.files: dict[str, bytes] = {}
        self.env = Environment(
            loader=FileSystemLoader(SITE_DIR / "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        info = {t: i for r in records for t, i in r.tasks.items()}
        self.tasks = sorted(info, key=lambda t: (info[t].difficulty, t))

    def page(self, path: str, template: str, page: Page) -> None:
        self.files[path] = self.env.get_template(template).render(page=page).encode("utf-8")

    def task_title(self, task: str) -> str:
        if self.specs is not None and task in self.specs.tasks:
            return self.specs.tasks[task].title
        return next((r.tasks[task].title for r in self.records if task in r.tasks), task)

    def badges(self, suite: str | None, model: str) -> tuple[str, ...]:
        record = self.models.get(model)
        found: tuple[str, ...] = ("test model",) if record is not None and record.test_model else ()
        found += ("made with older specs",) if (suite, model) in self.stale else ()
        if (suite, model) in self.local:
            return found + ("local, unpublished",)
        return found + (("contributed",) if record is not None and contributed(record) else ())

    def any_contributed(self, suite: str, records: list[Record]) -> bool:
        """Whether any published record of `records` (of `suite`) is contributed."""
        return any(contributed(r) and (suite, r.model_id) not in self.local for r in records)

    def cell(self, col: Col, row: dict[str, Scalar], root: str, suite: str | None = None) -> Cell:
        v = row.get(col.key)
        if col.kind == "model":
            record = self.models.get(str(v))
            pipeline = row.get("pipeline", "direct")
            text = (title_of(record) if record else str(v)) + (
                f" ({pipeline})" if pipeline != "direct" else ""
            )
            href = f"{root}models/{v}.html" if record else None
            return Cell(
                text,
                None,
                None,
                href,
                self.badges(suite, str(v)) if col.badges else (),
                header=col.key == "model",
                task=col.task,
            )
        if not col.numeric:
            return Cell("–" if v is None else str(v), header=col.kind == "head", task=col.task)
        sort = "" if v is None or isinstance(v, bool | str) else f"{v:.9g}"
        if col.kind == "rank":
            return Cell(str(row.get("rank_range") or num(v, 0)), sort, task=col.task)
        lo, hi = row.get(f"{col.key}_lo"), row.get(f"{col.key}_hi")
        ci = interval(row, col.key) if col.kind == "est" else None
        return Cell(
            num(v, 0 if col.kind == "int" else 3), sort, ci, task=col.task, tone=_tone(col, lo, hi)
        )

    def table(
        self,
        name: str,
        root: str,
        caption: str,
        columns: list[Col],
        data: Data,
        *,
        sorted_by: int = 0,
        order: str = "ascending",
        note: str = "",
        row_task: bool = False,
        suite: str | None = None,
    ) -> Table:
        """A table of `data` rows, written beside the pages as `data/<name>.csv` and `.json`."""
        keys = list(dict.fromkeys(k for row in data for k in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in data)
        self.files[f"data/{name}.csv"] = text.getvalue().encode("utf-8")
        self.files[f"data/{name}.json"] = (
            json.dumps(data, sort_keys=True, indent=1) + "\n"
        ).encode()
        rows = [
            (
                str(row["task"]) if row_task else None,
                [self.cell(c, row, root, suite) for c in columns],
            )
            for row in data
        ]
        csv_href, json_href = f"{root}data/{name}.csv", f"{root}data/{name}.json"
        defs = [
            f"{root}methods.html#{anchor}" if (anchor := definition(c.key)) else None
            for c in columns
        ]
        return Table(
            name, caption, columns, rows, sorted_by, order, csv_href, json_href, note, defs
        )


def _tone(col: Col, lo: Scalar, hi: Scalar) -> str | None:
    """`better` or `worse` for a difference whose interval excludes 0, else None."""
    if col.better is None or not isinstance(lo, int | float) or not isinstance(hi, int | float):
        return None
    if lo > 0 or hi < 0:
        return "better" if (lo > 0) == (col.better == "higher") else "worse"
    return None


def _key(*names: str) -> Callable[[dict[str, Scalar]], tuple[str, ...]]:
    return lambda row: tuple(str(row.get(n)) for n in names)


def _per_task(record: Record, table: str, name: str, pipeline: Scalar, task: str) -> float | None:
    """The mean of `name` over a task's rows of a table (label families only for `scores`)."""
    kinds = record.layout.answer_kinds
    return mean(
        row.get(name)
        for row in getattr(record, table)
        if row.get("task") == task
        and row.get("pipeline") == pipeline
        and (table != "scores" or kinds.get(str(row.get("family"))) == "label")
    )


def _triple(name: str) -> list[str]:
    return [name, f"{name}_lo", f"{name}_hi"]


def _noise_mark(row: dict[str, Scalar]) -> Scalar:
    """`yes`; or, when the fragility's interval does not clear the floor's upper bound, that
    the floor was measured on too few images to tell them apart (its point estimate lies below
    the fragility's interval), or that the fragility is within the noise floor."""
    above = row.get("above_noise_floor")
    if above is None:
        return None
    if above:
        return "yes"
    floor, lo, hi = row.get("noise_floor"), row.get("disagreement_lo"), row.get("noise_floor_hi")
    if all(isinstance(x, float | int) for x in (floor, lo, hi)) and float(floor) < float(lo):  # type: ignore[arg-type]
        n = row.get("noise_floor_n")
        n = int(n) if isinstance(n, float | int) and not isinstance(n, bool) else n
        return f"cannot tell: the floor, measured on {n} images, may reach {float(hi):.2f}"  # type: ignore[arg-type]
    return "no: within the noise floor"


def _pairs(site: Site, name: str, root: str, suite: str, model: str | None = None) -> Table | None:
    """Medical model minus its base: reference variant's F1 difference, fragility difference."""
    data: Data = []
    for record in site.records:
        if record.suite != suite:
            continue
        whole = {
            (r.get("task"), r.get("family"), r.get("pipeline")): r
            for r in record.pairs
            if r.get("variant") == "*"
        }
        for row in record.pairs:
            family = row.get("family")
            if row.get("variant") != record.layout.references.get(str(family)):
                continue
            if model is not None and model not in (row.get("model"), row.get("base")):
                continue
            if row.get("pipeline") != "direct":
                continue
            family_row = whole.get((row.get("task"), family, row.get("pipeline")), {})
            prompt = f"{family}/{row.get('variant')}"
            data.append(
                {
                    **row,
                    "prompt": prompt,
                    **{k: family_row.get(k) for k in _triple("fragility_diff")},
                }
            )
    if not data:
        return None
    data.sort(key=_key("model", "base", "task", "family", "pipeline"))
    columns = [
        Col("Medical model", "model", "model", badges=False),
        Col("Base model", "base", "model", badges=False),
        Col("Task", "task", "text"),
        Col("Prompt (family/reference)", "prompt", "text"),
        Col("Δ f1_all [95% CI]", "f1_diff", "est", better="higher"),
        Col("Δ fragility [95% CI]", "fragility_diff", "est", better="lower"),
    ]
    # the index's summary (many pairs) shows the adjusted p; a model's page both
    p_columns = [Col("p (Holm, across tasks)", "mcnemar_p_holm")]
    if model is not None:
        p_columns.insert(0, Col("p (raw)", "mcnemar_p"))
    if any(row.get("test") not in (None, "mcnemar_exact") for row in data):
        p_columns.insert(0, Col("Test", "test", "text"))
    columns[5:5] = p_columns
    caption = (
        f"{suite}: pair summary, medical model minus its base per task and prompt family "
        "(paired bootstrap CIs; for clustered images in fewer than "
        f"{MIN_CLUSTERS_ASYMPTOTIC} clusters, the Δ f1_all CI of the exact cluster swap test; "
        "toned where the interval excludes 0). The test of paired "
        "correctness is McNemar's exact test for independent images; for clustered images "
        f"Obuchowski's (obuchowski) from {MIN_CLUSTERS_ASYMPTOTIC} clusters, the exact cluster "
        "permutation test (cluster_permutation) below; p adjusted by Holm's method across tasks"
    )
    return site.table(name, root, caption, columns, data, row_task=True, suite=suite)


def _variants(record: Record) -> list[tuple[str, str]]:
    return [(f, v) for f in sorted(record.layout.variants) for v in record.layout.variants[f]]
