"""Model pages: one per (suite, model), with its scores by task and wording, pairs, reliance,
the knowledge ladder and provenance."""

from __future__ import annotations

from dataclasses import replace

from medbench import __version__
from medbench.publish.record import Record, Scalar
from medbench.publish.site import reliance, robustness
from medbench.publish.site.card import model_card
from medbench.publish.site.charts import heatmap_svg
from medbench.publish.site.context import Site, _key, _noise_mark, _pairs, _variants
from medbench.publish.site.layout import (
    FAMILY_METRICS,
    LABELS,
    RANKED,
    SEPARATOR,
    Col,
    ModelPage,
    Section,
    Table,
    file_stem,
    title_of,
)
from medbench.publish.site.likelihood import calibration_table, reliability_figures

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


def _reliance_tables(site: Site, record: Record, name: str, root: str) -> list[Table]:
    """The model's image-variant tables, its visual-reliance pairs, severity curves and four
    quadrants, where measured."""
    specs = reliance.model_tables(record)
    pairs = reliance.pair_table(site.records, record.suite, record.model_id)
    specs += [pairs] if pairs is not None else []
    specs += robustness.model_tables(record)
    return [
        site.table(file_stem(name, table), root, caption, columns, rows)
        for table, caption, columns, rows in specs
    ]


def _model_section(site: Site, record: Record) -> Section:
    suite, model, root = record.suite, record.model_id, "../"
    name = file_stem(suite, model)
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
            file_stem(name, "scores"),
            root,
            f"{suite}: scores per task and prompt variant",
            columns,
            scores,
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
        fragility = [{**r, "noise_mark": _noise_mark(r)} for r in fragility]
        columns[5:5] = [
            Col("Noise floor [95% CI]", "noise_floor", "est"),
            Col("Above noise floor", "noise_mark", "text"),
        ]
    caption = f"{suite}: fragility across the variants of each prompt family"
    tables.append(site.table(file_stem(name, "fragility"), root, caption, columns, fragility))
    pairs = _pairs(site, file_stem(name, "pairs"), root, suite, model)
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
        tables.append(site.table(file_stem(name, "pipelines"), root, caption, columns, rungs))
    if record.ladder:
        keys = ladder_keys(record.ladder)
        columns = [Col(k.replace("_", " "), k, "head" if k == "task" else "num") for k in keys]
        caption = (
            f"{suite}: knowledge ladder (chance, generated answers, likelihood answers, describe "
            "then diagnose, probe)"
        )
        tables.append(
            site.table(file_stem(name, "ladder"), root, caption, columns, list(record.ladder))
        )
    calibration = calibration_table(site, record, name)
    tables += [calibration] if calibration else []
    tasks = sorted({str(r.get("task")) for r in record.scores}, key=site.tasks.index)
    by_cell = {
        (r.get("task"), r.get("family"), r.get("variant")): r.get("f1_all")
        for r in record.scores
        if r.get("pipeline") == "direct"
    }
    grid = [[by_cell.get((t, f, v)) for t in tasks] for f, v in _variants(record)]
    alt = (
        f"Heatmap of f1_all of {title_of(record)} on suite {suite}: "
        "prompt variants by tasks (numbers in the scores table)"
    )
    chart = f"charts/{name}.svg"
    site.files[chart] = heatmap_svg(grid, [f"{f}/{v}" for f, v in _variants(record)], tasks, alt)
    maps = []
    for task, svg in sorted(site.maps.get((suite, record.model_id), {}).items()):
        path = f"charts/{file_stem(name, 'tsne', task)}.svg"
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
    compare = []
    for task in tasks:
        views = site.compare_links.get((suite, task), [])
        mine = [
            v
            for v in views[1:]
            if f"{SEPARATOR}{model}-vs-" in v[0] or f"-vs-{model}{SEPARATOR}" in v[0]
        ]
        compare += [(root + href, f"{site.task_title(task)}: {text}") for href, text in views[:1]]
        compare += [(root + href, f"{site.task_title(task)}: {text}") for href, text in mine]
    return replace(
        section,
        maps=maps,
        reliability=reliability_figures(site, record, name),
        links=links,
        compare=compare,
        local=(suite, model) in site.local,
        curves=robustness.curve_charts(record, {t: site.task_title(t) for t in tasks}),
        summary=robustness.summary(record),
    )


def model_pages(site: Site) -> None:
    for model, first in sorted(site.models.items()):
        spec = first.model
        card = model_card(site, model)
        facts = [(term, text) for term, text, _ in card]
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
            card,
            contributed=site.any_contributed(first.suite, [first]),
        )
        site.page(f"models/{model}.html", "model.html", page)
