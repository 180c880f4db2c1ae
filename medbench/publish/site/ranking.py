"""The index: the ranking by all-variants kappa, the per-task table, the chart and the pairs."""

from __future__ import annotations

from dataclasses import replace

from medbench import __version__
from medbench.publish.record import Record, Scalar
from medbench.publish.site.context import Site, _pairs, _triple
from medbench.publish.site.layout import (
    HEADLINE,
    LABELS,
    RANKED,
    Col,
    Data,
    IndexPage,
    Section,
    Table,
    file_stem,
    mean,
    title_of,
)
from medbench.publish.site.reliance import RELIANCE_LABEL, pair_table
from medbench.publish.site.robustness import DANGEROUS_LABEL, RAUC_LABEL
from medbench.publish.site.scatter import Mark, scatter_svg
from medbench.publish.site.whole import whole_data
from medbench.score import order_key, rank_rows


def has_skill(row: dict[str, Scalar]) -> bool:
    """Whether a model's headline interval lies above 0 (without an interval: its value)."""
    value, lo = row.get(HEADLINE), row.get(f"{HEADLINE}_lo")
    if isinstance(lo, float | int) and not isinstance(lo, bool):
        return float(lo) > 0
    return isinstance(value, float | int) and not isinstance(value, bool) and float(value) > 0


rank_key = order_key
"""The order of the ranking: the terminal summary's (`medbench.score.order_key`)."""


GATED = ("fragility_index", "dangerous", "rauc")
"""Columns a model without skill shows as "–" (sorted last): never changing an uninformative
answer is no robustness, and an answer that changes with the image is no merit when the
answer is a guess (a random pick seeded by the image is never dangerous)."""


def _robustness(record: Record) -> dict[str, Scalar]:
    """The direct pipeline's dangerous share and rAUC, with their CIs, where measured."""
    found: dict[str, Scalar] = {}
    for table, name in (("quadrant_models", "dangerous"), ("severity_models", "rauc")):
        for row in getattr(record, table) or []:
            if row.get("pipeline") == "direct":
                found |= {k: row.get(k) for k in _triple(name)}
    return found


def ranked_rows(records: list[Record]) -> Data:
    """One row per model (the direct pipeline: described pipelines are rungs of their model,
    shown on its page), ranked by `medbench.score.rank_rows`: `rank` the position,
    `rank_best`/`rank_worst` the range its 95% interval allows, `rank_range` its text. A
    model without skill shows no fragility, dangerous share or rAUC (each reads "–" and sorts
    last)."""
    data: Data = []
    for record in records:
        for row in record.models:
            if row.get("pipeline") != "direct":
                continue
            found: dict[str, Scalar] = {
                "model": record.model_id,
                "pipeline": "direct",
                "title": title_of(record),
                "test_model": record.test_model,
                **{k: row.get(k) for name in RANKED for k in _triple(name)},
                **{
                    k: row.get(k)
                    for k in _triple("visual_reliance")
                    if row.get("visual_reliance") is not None
                },
            }
            found |= _robustness(record)
            if found.get(HEADLINE) is not None and not has_skill(found):
                for name in (n for n in GATED if n in found):
                    found.update(dict.fromkeys(_triple(name)))
            data.append(found)
    return [
        {
            "rank": rank.position,
            "rank_best": rank.best,
            "rank_worst": rank.worst,
            "rank_range": rank.text,
            **row,
        }
        for row, rank in rank_rows(data)
    ]


def _ranking(site: Site, suite: str, data: Data) -> Table:
    """Models ranked by the headline score, with fragility, mean and worst f1_all beside it."""
    columns = [Col("Rank", "rank", "rank"), Col("Model", "model", "model")]
    columns += [Col(LABELS[name], name, "est") for name in RANKED]
    caption = (
        f"{suite}: models ranked by all-variants kappa, highest first (chance-corrected: an "
        "image counts as right only if every wording of the question answers it right, and a "
        "constant, refusing or random model scores about 0; mean over tasks); models whose "
        "interval does not lie above 0 come last, without a fragility; a rank a–b is a range: "
        "the models whose 95% intervals overlap this one's could stand above or below it"
    )
    beside = []  # the fragility index's neighbours: what the image does to the answers
    if any(row.get("visual_reliance") is not None for row in data):
        beside.append(Col(RELIANCE_LABEL, "visual_reliance", "est"))
        caption += "; visual reliance: the share of answers that change without the image"
    if any("dangerous" in row for row in data):
        beside.append(Col(DANGEROUS_LABEL, "dangerous", "est"))
        caption += (
            "; dangerous: the share of images answered the same under every wording and "
            "without the image (lower is better; none without skill)"
        )
    if any("rauc" in row for row in data):
        beside.append(Col(RAUC_LABEL, "rauc", "est"))
        caption += (
            "; rAUC: F1 on degraded images relative to the original image (higher is better; "
            "none without skill)"
        )
    columns[4:4] = beside
    table = site.table(
        file_stem(suite, "ranking"),
        "",
        caption,
        columns,
        data,
        sorted_by=2,
        order="descending",
        suite=suite,
    )
    return replace(table, row_attrs=[model_attrs(site, str(r["model"])) for r in data])


def _per_task_table(
    site: Site, suite: str, records: list[Record], tasks: list[str], ranked: Data
) -> Table:
    """The ranking's models with the all-variants kappa of each task (disagreement per task is on
    each model's page, in its fragility table)."""
    order = {str(r["model"]): r for r in ranked}
    data: Data = []
    for record in records:
        if record.model_id not in order:
            continue
        rank = order[record.model_id]
        row: dict[str, Scalar] = {
            "rank": rank["rank"],
            "rank_range": rank["rank_range"],
            "model": record.model_id,
        }
        for t in tasks:
            row[f"{HEADLINE}.{t}"] = _task_mean(record, "fragility", HEADLINE, t)
            row[f"fragility_index.{t}"] = _task_mean(record, "fragility", "disagreement", t)
        data.append(row)
    data.sort(key=lambda r: int(r["rank"] or 0))
    columns = [Col("Rank", "rank", "rank"), Col("Model", "model", "model", badges=False)]
    for t in tasks:
        title = site.task_title(t)
        columns += [
            Col(f"{title}: all-variants kappa", f"{HEADLINE}.{t}", task=t),
            Col(f"{title}: fragility", f"fragility_index.{t}", task=t),
        ]
    caption = (
        f"{suite}: all-variants kappa and fragility index per task (kappa: mean over label "
        "prompt families; fragility: mean disagreement over the task's families)"
    )
    table = site.table(file_stem(suite, "per-task"), "", caption, columns, data, suite=suite)
    return replace(table, row_attrs=[model_attrs(site, str(r["model"])) for r in data])


def model_attrs(site: Site, model: str) -> dict[str, str]:
    """What the index's row filters read of a model: its family, kind and test flag."""
    spec = site.models[model].model
    kind = "medical" if spec.get("medical") else "general"
    kind = "baseline" if kind == "general" and spec.get("backend") == "baseline" else kind
    test = "yes" if site.models[model].test_model else "no"
    return {"family": str(spec.get("family") or "–"), "kind": kind, "test": test}


def _task_mean(record: Record, table: str, name: str, task: str) -> float | None:
    """The mean of `name` over a task's direct rows (label families only for the F1s)."""
    kinds = record.layout.answer_kinds
    label_only = name != "disagreement"
    return mean(
        row.get(name)
        for row in getattr(record, table)
        if row.get("task") == task
        and row.get("pipeline") == "direct"
        and (not label_only or kinds.get(str(row.get("family"))) == "label")
    )


def chart_key(ranked: Data) -> list[tuple[str, str, str]]:
    """(rank, title, model) of each model on the chart: the key to its rank labels."""
    return [
        (str(r["rank"]), str(r["title"]), str(r["model"]))
        for r in ranked
        if isinstance(r.get(HEADLINE), float | int)
    ]


def _chart(site: Site, suite: str, ranked: Data) -> str:
    """The index chart of a suite's ranked models."""
    on_chart = {str(r["model"]) for r in ranked if r.get(HEADLINE) is not None}
    marks = []
    for row in ranked:
        model = str(row["model"])
        score, frag = row.get(HEADLINE), row.get("fragility_index")
        if model not in on_chart or not isinstance(score, float | int):
            continue
        spec = site.models[model].model
        base = spec.get("base")

        def opt(name: str, r: dict[str, Scalar] = row) -> float | None:
            v = r.get(name)
            return float(v) if isinstance(v, float | int) and not isinstance(v, bool) else None

        marks.append(
            Mark(
                model=model,
                title=str(row["title"]),
                score=float(score),
                score_lo=opt(f"{HEADLINE}_lo"),
                score_hi=opt(f"{HEADLINE}_hi"),
                fragility=float(frag) if isinstance(frag, float | int) else 0.0,
                fragility_lo=opt("fragility_index_lo"),
                fragility_hi=opt("fragility_index_hi"),
                baseline=spec.get("backend") == "baseline",
                base=str(base) if isinstance(base, str) and base in on_chart else None,
                skill=has_skill(row),
                rank=rank if isinstance(rank := row.get("rank"), int) else 0,
            )
        )
    caption = (
        f"{suite}: all-variants kappa against fragility index, one mark per ranked model "
        "(a model without skill at fragility 0)"
    )
    return scatter_svg(marks, caption)


def _task_charts(
    site: Site, suite: str, records: list[Record], tasks: list[str], ranked: Data
) -> list[tuple[str, str, str]]:
    """One chart per task (its all-variants kappa against its mean disagreement, no intervals),
    written as a file: (task, src, alt) of each."""
    rank = {str(r["model"]): r["rank"] for r in ranked}
    found = []
    for task in tasks:
        marks = []
        for record in records:
            score = _task_mean(record, "fragility", HEADLINE, task)
            frag = _task_mean(record, "fragility", "disagreement", task)
            if record.model_id not in rank or score is None or frag is None:
                continue
            spec = record.model
            base = spec.get("base")
            marks.append(
                Mark(
                    model=record.model_id,
                    title=title_of(record),
                    score=score,
                    score_lo=None,
                    score_hi=None,
                    fragility=frag,
                    fragility_lo=None,
                    fragility_hi=None,
                    baseline=spec.get("backend") == "baseline",
                    base=str(base) if isinstance(base, str) else None,
                    rank=int(str(rank[record.model_id])),
                )
            )
        if not marks:
            continue
        on_chart = {m.model for m in marks}
        marks = [m if m.base in on_chart else replace(m, base=None) for m in marks]
        alt = f"{suite}: all-variants kappa against fragility on {site.task_title(task)}"
        path = f"charts/{file_stem(suite, 'chart', task)}.svg"
        site.files[path] = scatter_svg(marks, alt, standalone=True).encode("utf-8")
        found.append((task, path, alt))
    return found


def index_page(site: Site, suites: dict[str, list[Record]]) -> None:
    sections = []
    for suite, records in suites.items():
        tasks = [t for t in site.tasks if any(t in r.tasks for r in records)]
        ranked = ranked_rows(records)
        tables = [
            _ranking(site, suite, ranked),
            _per_task_table(site, suite, records, tasks, ranked),
        ]
        pairs = _pairs(site, file_stem(suite, "pairs"), "", suite)
        tables += [pairs] if pairs else []
        found = pair_table(records, suite)
        if found is not None:
            table, caption, columns, rows = found
            tables.append(
                site.table(file_stem(suite, table), "", caption, columns, rows, suite=suite)
            )
        sections.append(
            Section(
                suite,
                tables,
                test_models=any(r.test_model for r in records),
                contributed=site.any_contributed(suite, records),
                local=any((suite, r.model_id) in site.local for r in records),
                svg=_chart(site, suite, ranked),
                chart_key=chart_key(ranked),
                task_charts=_task_charts(site, suite, records, tasks, ranked),
                compare=[
                    (links[0][0], site.task_title(t))
                    for t in tasks
                    if (links := site.compare_links.get((suite, t)))
                ],
            )
        )
    titles = [(t, site.task_title(t)) for t in site.tasks]
    modalities = {
        t: next(r.tasks[t].modality for r in site.records if t in r.tasks) for t in site.tasks
    }
    families = sorted({str(r.model.get("family") or "–") for r in site.records})
    page = IndexPage(
        "Leaderboard", "", site.build_date, __version__, sections, titles, modalities, families
    )
    whole_data(site)
    site.page("index.html", "index.html", page)
