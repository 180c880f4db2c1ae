"""Page builders: rankings, model, task and methods pages from the records."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import replace

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from medbench import __version__
from medbench.loading import SpecSet
from medbench.records import Record, Scalar
from medbench.site.charts import heatmap_svg
from medbench.site.layout import (
    FAMILY_METRICS,
    SITE_DIR,
    Cell,
    Col,
    Data,
    IndexPage,
    ModelPage,
    Page,
    Section,
    Table,
    TaskPage,
    mean,
    num,
    title_of,
)


class Site:
    """The output being assembled in memory (relative path -> bytes) and what pages share."""

    def __init__(
        self,
        records: list[Record],
        specs: SpecSet | None,
        maps: dict[tuple[str, str], dict[str, bytes]] | None = None,
    ) -> None:
        self.records, self.specs = records, specs
        self.maps = maps or {}
        """(suite, model) -> task -> t-SNE map SVG, published beside the record."""
        self.models = {r.model_id: r for r in records}
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

    def cell(self, col: Col, row: dict[str, Scalar], root: str) -> Cell:
        v = row.get(col.key)
        if col.kind == "model":
            record = self.models.get(str(v))
            pipeline = row.get("pipeline", "direct")
            text = (title_of(record) if record else str(v)) + (
                f" ({pipeline})" if pipeline != "direct" else ""
            )
            href = f"{root}models/{v}.html" if record else None
            badge = "test model" if record and record.test_model else None
            return Cell(text, None, None, href, badge, header=col.key == "model", task=col.task)
        if not col.numeric:
            return Cell("–" if v is None else str(v), header=col.kind == "head", task=col.task)
        sort = "" if v is None or isinstance(v, bool | str) else f"{v:.9g}"
        lo, hi = row.get(f"{col.key}_lo"), row.get(f"{col.key}_hi")
        ci = (
            f"[{num(lo)}, {num(hi)}]"
            if col.kind == "est" and lo is not None and hi is not None
            else None
        )
        return Cell(num(v, 0 if col.kind == "int" else 3), sort, ci, task=col.task)

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
            (str(row["task"]) if row_task else None, [self.cell(c, row, root) for c in columns])
            for row in data
        ]
        csv_href, json_href = f"{root}data/{name}.csv", f"{root}data/{name}.json"
        return Table(name, caption, columns, rows, sorted_by, order, csv_href, json_href, note)


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


def _ranking(site: Site, suite: str, records: list[Record], tasks: list[str], by: str) -> Table:
    """Models ranked by fragility index (lowest first) or by mean `f1_all` (highest first)."""
    first, second = ["fragility_index", "mean_f1_all"][:: 1 if by == "fragility" else -1]
    table, metric = ("fragility", "disagreement") if by == "fragility" else ("scores", "f1_all")
    sign = 1.0 if by == "fragility" else -1.0
    data: Data = []
    for record in records:
        for row in record.models:
            p = row.get("pipeline")
            data.append(
                {
                    "model": record.model_id,
                    "pipeline": p,
                    "title": title_of(record),
                    "test_model": record.test_model,
                    **{k: row.get(k) for k in _triple(first) + _triple(second)},
                    **{f"{metric}.{t}": _per_task(record, table, metric, p, t) for t in tasks},
                }
            )

    def rank_key(row: dict[str, Scalar]) -> tuple[bool, float, float, str, str]:
        a, b = row.get(first), row.get(second)
        a_ = sign * a if isinstance(a, float | int) else 0.0
        b_ = -sign * b if isinstance(b, float | int) else 0.0
        return a is None, a_, b_, str(row["model"]), str(row["pipeline"])

    data = [{"rank": i, **row} for i, row in enumerate(sorted(data, key=rank_key), start=1)]
    labels = {"fragility_index": "Fragility index [95% CI]", "mean_f1_all": "Mean f1_all [95% CI]"}
    columns = [Col("Rank", "rank", "int"), Col("Model", "model", "model")]
    columns += [Col(labels[first], first, "est"), Col(labels[second], second, "est")]
    columns += [Col(f"{site.task_title(t)}: {metric}", f"{metric}.{t}", task=t) for t in tasks]
    if by == "fragility":
        caption = (
            f"{suite}: models ranked by fragility index, lowest first "
            "(per task: mean disagreement over prompt families)"
        )
    else:
        caption = (
            f"{suite}: models ranked by mean f1_all over tasks, highest first "
            "(per task: mean f1_all over the variants of label families)"
        )
    order = "ascending" if by == "fragility" else "descending"
    return site.table(f"{suite}.ranking-{by}", "", caption, columns, data, sorted_by=2, order=order)


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
            family_row = whole.get((row.get("task"), family, row.get("pipeline")), {})
            data.append({**row, **{k: family_row.get(k) for k in _triple("fragility_diff")}})
    if not data:
        return None
    data.sort(key=_key("model", "base", "task", "family", "pipeline"))
    columns = [
        Col("Medical model", "model", "model"),
        Col("Base model", "base", "model"),
        Col("Task", "task", "text"),
        Col("Prompt family", "family", "text"),
        Col("Reference variant", "variant", "text"),
        Col("f1_all difference [95% CI]", "f1_diff", "est"),
        Col("McNemar p", "mcnemar_p"),
        Col("Fragility difference [95% CI]", "fragility_diff", "est"),
    ]
    caption = (
        f"{suite}: medical model minus its base, per task and prompt family "
        "(paired bootstrap CIs, McNemar's exact test)"
    )
    return site.table(name, root, caption, columns, data, row_task=True)


def index_page(site: Site, suites: dict[str, list[Record]]) -> None:
    sections = []
    for suite, records in suites.items():
        tasks = [t for t in site.tasks if any(t in r.tasks for r in records)]
        tables = [
            _ranking(site, suite, records, tasks, "fragility"),
            _ranking(site, suite, records, tasks, "f1"),
        ]
        pairs = _pairs(site, f"{suite}.pairs", "", suite)
        tables += [pairs] if pairs else []
        sections.append(Section(suite, tables, test_models=any(r.test_model for r in records)))
    titles = [(t, site.task_title(t)) for t in site.tasks]
    site.page(
        "index.html",
        "index.html",
        IndexPage("Leaderboard", "", site.build_date, __version__, sections, titles),
    )


def _provenance(record: Record) -> list[tuple[str, str]]:
    env, images = record.environment, record.dataset.n_images
    return [
        ("Revision", record.revision),
        ("Date", record.date),
        (
            "Images",
            f"{record.dataset.source}: " + ", ".join(f"{t} {n}" for t, n in sorted(images.items())),
        ),
        ("Dataset fingerprint", record.dataset.fingerprint),
        (
            "medbench",
            f"{record.medbench.version}, commit {record.medbench.git_commit or 'unknown'}",
        ),
        (
            "Environment",
            f"Python {env.python}, {env.platform}, torch {env.torch or '–'}, "
            f"transformers {env.transformers or '–'}, GPU {env.gpu_name or 'none'} "
            f"(driver {env.gpu_driver or '–'})",
        ),
        ("Spec hashes", "; ".join(f"{k} {v[:12]}" for k, v in sorted(record.spec_hashes.items()))),
        ("Bootstrap", f"{record.layout.n_boot} resamples, seed {record.layout.seed}"),
    ]


def _variants(record: Record) -> list[tuple[str, str]]:
    return [(f, v) for f in sorted(record.layout.variants) for v in record.layout.variants[f]]


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
    if record.ladder:
        keys = ["task", *sorted({k for r in record.ladder for k in r} - {"task"})]
        columns = [Col(k.replace("_", " "), k, "head" if k == "task" else "num") for k in keys]
        caption = f"{suite}: knowledge ladder (closed, describe then diagnose, probe, chance)"
        tables.append(site.table(f"{name}.ladder", root, caption, columns, list(record.ladder)))
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
    section = Section(suite, tables, _provenance(record), root + chart, alt, record.test_model)
    return replace(section, maps=maps)


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


def _task_facts(site: Site, task: str) -> list[tuple[str, str]]:
    record = next(r for r in site.records if task in r.tasks)
    info, source = record.tasks[task], record.dataset.source
    modality, difficulty, homepage, licence = (
        info.modality,
        info.difficulty,
        info.homepage,
        info.license,
    )
    if site.specs is not None and task in site.specs.tasks:
        spec = site.specs.tasks[task]
        modality, difficulty = spec.modality, spec.difficulty
        data = spec.data.get(source)
        homepage, licence = (
            (data.homepage, data.license) if data is not None else (homepage, licence)
        )
    return [
        ("Task id", task),
        ("Modality", modality),
        ("Difficulty", f"{difficulty} (1 = easiest)"),
        ("Data source", source),
        ("Dataset homepage", homepage or "–"),
        ("Licence", licence or "–"),
    ]


def _task_section(site: Site, suite: str, task: str, records: list[Record]) -> Section:
    variants = _variants(records[0])
    data: Data = []
    for record in records:
        scores = {
            (r.get("family"), r.get("variant"), r.get("pipeline")): r
            for r in record.scores
            if r.get("task") == task
        }
        for row in record.models:
            p = row.get("pipeline")
            cells = {f"{f}/{v}": scores.get((f, v, p), {}) for f, v in variants}
            data.append(
                {
                    "model": record.model_id,
                    "pipeline": p,
                    "mean_f1_all": _per_task(record, "scores", "f1_all", p, task),
                    "disagreement": _per_task(record, "fragility", "disagreement", p, task),
                    **{
                        f"{k}{s}": c.get(f"f1_all{s}")
                        for k, c in cells.items()
                        for s in ("", "_lo", "_hi")
                    },
                }
            )
    data.sort(
        key=lambda r: (r["mean_f1_all"] is None, -float(r["mean_f1_all"] or 0.0), str(r["model"]))
    )
    columns = [
        Col("Model", "model", "model"),
        Col("Mean f1_all (label families)", "mean_f1_all"),
        Col("Mean disagreement", "disagreement"),
    ]
    columns += [Col(f"{f}/{v}: f1_all [95% CI]", f"{f}/{v}", "est") for f, v in variants]
    chance = sorted(
        {
            (str(s.get("family")), num(s.get("chance_f1")))
            for r in records
            for s in r.scores
            if s.get("task") == task
        }
    )
    note = "Chance f1_all: " + ", ".join(f"{f} {c}" for f, c in chance) + "."
    caption = f"{suite}: models by prompt variant, f1_all with 95% CI"
    table = site.table(
        f"{suite}.task-{task}",
        "../",
        caption,
        columns,
        data,
        sorted_by=1,
        order="descending",
        note=note,
    )
    return Section(suite, [table], test_models=any(r.test_model for r in records))


def task_pages(site: Site, suites: dict[str, list[Record]]) -> None:
    for task in site.tasks:
        sections = [
            _task_section(site, suite, task, members)
            for suite, records in suites.items()
            if (members := [r for r in records if task in r.tasks])
        ]
        page = TaskPage(
            site.task_title(task),
            "../",
            site.build_date,
            __version__,
            sections,
            _task_facts(site, task),
        )
        site.page(f"tasks/{task}.html", "task.html", page)
