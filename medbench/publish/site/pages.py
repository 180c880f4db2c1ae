"""The site being built (`Site`: files, tables, cells) and the model pages; the pair table."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import replace

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from medbench import __version__
from medbench.publish.records import Record, Scalar
from medbench.publish.rederive import spec_changes
from medbench.publish.site import reliance
from medbench.publish.site.charts import heatmap_svg
from medbench.publish.site.layout import (
    FAMILY_METRICS,
    LABELS,
    RANKED,
    SITE_DIR,
    Cell,
    Col,
    Data,
    ModelPage,
    Page,
    Section,
    Table,
    mean,
    num,
    title_of,
)
from medbench.publish.site.likelihood import calibration_table, reliability_figures
from medbench.spec.loading import SpecSet


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
        return found + (("local, unpublished",) if (suite, model) in self.local else ())

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
                hover=f"{text} ({v})",
            )
        if not col.numeric:
            return Cell("–" if v is None else str(v), header=col.kind == "head", task=col.task)
        sort = "" if v is None or isinstance(v, bool | str) else f"{v:.9g}"
        lo, hi = row.get(f"{col.key}_lo"), row.get(f"{col.key}_hi")
        ci = (
            f"[{num(lo)}, {num(hi)}]"
            if col.kind == "est" and lo is not None and hi is not None
            else None
        )
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
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in data)
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
        return Table(name, caption, columns, rows, sorted_by, order, csv_href, json_href, note)


RUNGS = (
    "chance",
    "no_image",
    "direct",
    "likelihood",
    "described",
    "probe_vision",
    "probe_projected",
    "pixel",
)
"""The ladder's rungs from the bottom up, by column prefix: the order of its table."""


def ladder_keys(rows: list[dict[str, Scalar]]) -> list[str]:
    """A ladder table's columns: the task, each rung's columns in rung order, the reading."""

    def rung(key: str) -> tuple[int, str]:
        found = [i for i, prefix in enumerate(RUNGS) if key.startswith(prefix)]
        return (found[0] if found else len(RUNGS), key)

    present = {k for r in rows for k in r} - {"task", "reading"}
    tail = ["reading"] if any("reading" in r for r in rows) else []
    return ["task", *sorted(present, key=rung), *tail]


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


def _noise_mark(above: Scalar) -> Scalar:
    """`yes`, or a warning that the fragility is not above the measured noise floor."""
    if above is None:
        return None
    return "yes" if above else "no: within the noise floor"


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
        Col("McNemar p", "mcnemar_p"),
        Col("Δ fragility [95% CI]", "fragility_diff", "est", better="lower"),
    ]
    caption = (
        f"{suite}: pair summary, medical model minus its base per task and prompt family "
        "(paired bootstrap CIs; toned where the interval excludes 0)"
    )
    return site.table(name, root, caption, columns, data, row_task=True, suite=suite)


def _provenance(record: Record, stale: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    env, images = record.environment, record.dataset.n_images
    changed = (
        [("Specs changed since", ", ".join(stale) + " (today's specs differ or are gone)")]
        if stale
        else []
    )
    adapter = [("Adapter revision", record.adapter_revision)] if record.adapter_revision else []
    revisions = record.dataset.revisions or {}
    read_at = (
        [("Dataset revisions", "; ".join(f"{t} {sha}" for t, sha in sorted(revisions.items())))]
        if revisions
        else []
    )
    return [
        ("Revision", record.revision),
        *adapter,
        ("Date", record.date),
        (
            "Images",
            f"{record.dataset.source}: " + ", ".join(f"{t} {n}" for t, n in sorted(images.items())),
        ),
        ("Dataset fingerprint", record.dataset.fingerprint),
        *read_at,
        (
            "medbench",
            f"{record.medbench.version}, commit {record.medbench.git_commit or 'unknown'}"
            + (" (with uncommitted changes)" if record.medbench.git_dirty else ""),
        ),
        (
            "Environment",
            f"Python {env.python}, {env.platform}, torch {env.torch or '–'}, "
            f"transformers {env.transformers or '–'}, GPU {env.gpu_name or 'none'} "
            f"(driver {env.gpu_driver or '–'})",
        ),
        ("Spec hashes", "; ".join(f"{k} {v[:12]}" for k, v in sorted(record.spec_hashes.items()))),
        *changed,
        ("Bootstrap", f"{record.layout.n_boot} resamples, seed {record.layout.seed}"),
    ]


def _variants(record: Record) -> list[tuple[str, str]]:
    return [(f, v) for f in sorted(record.layout.variants) for v in record.layout.variants[f]]


def _reliance_tables(site: Site, record: Record, name: str, root: str) -> list[Table]:
    """The model's image-variant tables and its visual-reliance pairs, where measured."""
    specs = reliance.model_tables(record)
    pairs = reliance.pair_table(site.records, record.suite, record.model_id)
    specs += [pairs] if pairs is not None else []
    return [
        site.table(f"{name}.{table}", root, caption, columns, rows)
        for table, caption, columns, rows in specs
    ]


def _model_section(site: Site, record: Record) -> Section:
    suite, model, root = record.suite, record.model_id, "../"
    name = f"{suite}.{model}"
    scores = sorted(record.scores, key=_key("task", "family", "variant", "pipeline"))
    columns = [
        Col("Task", "task", "head"),
        Col("Prompt family", "family", "text"),
        Col("Variant", "variant", "text"),
        Col("Pipeline", "pipeline", "text"),
        Col("n", "n", "int"),
        Col("f1_all [95% CI]", "f1_all", "est"),
        Col("f1_answered", "f1_answered", "est"),
        Col("Accuracy", "accuracy", "est"),
        Col("Refusal rate", "refusal_rate", "est"),
        Col("Unparseable rate", "unparseable_rate", "est"),
        Col("Chance f1_all", "chance_f1"),
        Col("Below chance", "worse_than_chance", "text"),
    ]
    tables = [
        site.table(
            f"{name}.scores", root, f"{suite}: scores per task and prompt variant", columns, scores
        )
    ]
    fragility = sorted(record.fragility, key=_key("task", "family", "pipeline"))
    columns = [
        Col("Task", "task", "head"),
        Col("Prompt family", "family", "text"),
        Col("Pipeline", "pipeline", "text"),
        Col("Images", "n_images", "int"),
    ]
    columns += [
        Col(m.replace("_", " ").capitalize() + " [95% CI]", m, "est") for m in FAMILY_METRICS
    ]
    if any(r.get("noise_floor") is not None for r in fragility):
        # Beside the disagreement: the noise floor and whether fragility rises above it.
        fragility = [
            {**r, "noise_mark": _noise_mark(r.get("above_noise_floor"))} for r in fragility
        ]
        columns[5:5] = [
            Col("Noise floor [95% CI]", "noise_floor", "est"),
            Col("Above noise floor", "noise_mark", "text"),
        ]
    caption = f"{suite}: fragility across the variants of each prompt family"
    tables.append(site.table(f"{name}.fragility", root, caption, columns, fragility))
    pairs = _pairs(site, f"{name}.pairs", root, suite, model)
    tables += [pairs] if pairs else []
    tables += _reliance_tables(site, record, name, root)
    if len(record.models) > 1:
        rungs = sorted(
            record.models, key=lambda r: (r.get("pipeline") != "direct", str(r.get("pipeline")))
        )
        columns = [Col("Pipeline", "pipeline", "head")]
        columns += [Col(LABELS[m], m, "est") for m in RANKED]
        caption = (
            f"{suite}: the model's rungs: its own answers (direct) and each describe-then-"
            "diagnose pipeline (the model describes, a text model diagnoses)"
        )
        tables.append(site.table(f"{name}.pipelines", root, caption, columns, rungs))
    if record.ladder:
        keys = ladder_keys(record.ladder)
        columns = [Col(k.replace("_", " "), k, "head" if k == "task" else "num") for k in keys]
        caption = (
            f"{suite}: knowledge ladder (chance, generated answers, likelihood answers, describe "
            "then diagnose, probe)"
        )
        tables.append(site.table(f"{name}.ladder", root, caption, columns, list(record.ladder)))
    calibration = calibration_table(site, record, name)
    tables += [calibration] if calibration else []
    tasks = sorted({str(r.get("task")) for r in record.scores}, key=site.tasks.index)
    by_cell = {
        (r.get("task"), r.get("family"), r.get("variant")): r.get("f1_all")
        for r in record.scores
        if r.get("pipeline") == "direct"
    }
    grid = [[by_cell.get((t, f, v)) for f, v in _variants(record)] for t in tasks]
    alt = (
        f"Heatmap of f1_all of {title_of(record)} on suite {suite}: "
        "tasks by prompt variants (numbers in the scores table)"
    )
    chart = f"charts/{name}.svg"
    site.files[chart] = heatmap_svg(grid, tasks, [f"{f}/{v}" for f, v in _variants(record)], alt)
    maps = []
    for task, svg in sorted(site.maps.get((suite, record.model_id), {}).items()):
        path = f"charts/{name}.tsne.{task}.svg"
        site.files[path] = svg
        alt_map = (
            f"t-SNE map of {title_of(record)}'s vision embeddings on {site.task_title(task)}: "
            "colour is the true label, the marker shows right, wrong, refused or flipped answers"
        )
        maps.append((root + path, alt_map, site.task_title(task)))
    section = Section(
        suite,
        tables,
        _provenance(record, site.stale.get((suite, record.model_id), ())),
        root + chart,
        alt,
        record.test_model,
    )
    links = [(root + path, text) for path, text in site.flip_links.get((suite, model), [])]
    return replace(
        section,
        maps=maps,
        reliability=reliability_figures(site, record, name),
        links=links,
        local=(suite, model) in site.local,
    )


def model_pages(site: Site) -> None:
    for model, first in sorted(site.models.items()):
        spec = first.model
        facts = [
            ("Model id", model),
            ("Architecture family", str(spec.get("family", "–"))),
            ("Medical fine-tune", "yes" if spec.get("medical") else "no"),
            ("Base model", str(spec.get("base") or "–")),
        ]
        sections = [_model_section(site, r) for r in site.records if r.model_id == model]
        page = ModelPage(
            title_of(first),
            "../",
            site.build_date,
            __version__,
            sections,
            first.test_model,
            str(spec.get("description") or ""),
            facts,
        )
        site.page(f"models/{model}.html", "model.html", page)
