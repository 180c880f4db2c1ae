"""Task pages: the question, classes with signs, every wording as rendered, example images of
the bundled sample, the dataset's link and licence, and each suite's models on the task."""

from __future__ import annotations

from medbench import __version__
from medbench.publish.record import Record
from medbench.publish.site.context import Site, _per_task, _variants
from medbench.publish.site.layout import (
    Col,
    Data,
    Section,
    TaskClass,
    TaskDetails,
    TaskPage,
    Wording,
    file_stem,
    num,
)
from medbench.publish.site.samples import sample_files, thumbnail
from medbench.spec.loading import SpecSet

EXAMPLES_PER_CLASS = 2


def task_details(
    specs: SpecSet, task: str, families: list[str], files: dict[str, bytes]
) -> TaskDetails | None:
    """The details of a task from today's specs (None when the specs lack it)."""
    from medbench.spec import TemplateError, render

    spec = specs.tasks.get(task)
    if spec is None:
        return None
    wordings = []
    for f in families:
        family = specs.families.get(f)
        if family is None:
            continue
        for variant in family.variants:
            try:
                rendered = render(family, variant, spec, ())
            except TemplateError:
                continue
            wordings.append(
                Wording(
                    f, variant.id, variant.kind, rendered.messages.system, rendered.messages.text
                )
            )
    examples = []
    samples = sample_files(specs, task)
    for label in spec.labels:
        mine = sorted(i for i in samples if samples[i][1] == label.id)[:EXAMPLES_PER_CLASS]
        for sample in mine:
            src = thumbnail(samples[sample][0], task, sample, files)
            if src is not None:
                examples.append((src, f"Example of {label.name} ({sample})"))
    data = spec.data.get("sample") or spec.data.get("full")
    full = spec.data.get("full")
    return TaskDetails(
        question=spec.question,
        description=spec.description,
        classes=[TaskClass(lab.id, lab.name, lab.positive, list(lab.signs)) for lab in spec.labels],
        wordings=wordings,
        examples=examples,
        homepage=(full.homepage if full else None) or (data.homepage if data else None),
        license=(data.license if data else None) or (full.license if full else None),
    )


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
        file_stem(suite, f"task-{task}"),
        "../",
        caption,
        columns,
        data,
        sorted_by=1,
        order="descending",
        note=note,
    )
    compare = [("../" + href, text) for href, text in site.compare_links.get((suite, task), [])]
    return Section(
        suite,
        [table],
        test_models=any(r.test_model for r in records),
        contributed=site.any_contributed(suite, records),
        compare=compare,
    )


def task_pages(site: Site, suites: dict[str, list[Record]]) -> None:
    for task in site.tasks:
        sections = [
            _task_section(site, suite, task, members)
            for suite, records in suites.items()
            if (members := [r for r in records if task in r.tasks])
        ]
        families = sorted({f for r in site.records if task in r.tasks for f in r.layout.variants})
        details = (
            task_details(site.specs, task, families, site.files) if site.specs is not None else None
        )
        facts = _task_facts(site, task)
        homepage = dict(facts).get("Dataset homepage", "")
        page = TaskPage(
            site.task_title(task),
            "../",
            site.build_date,
            __version__,
            sections,
            [f for f in facts if f[0] != "Dataset homepage" or not homepage.startswith("https://")],
            details,
            homepage if homepage.startswith("https://") else None,
        )
        site.page(f"tasks/{task}.html", "task.html", page)
