"""The flip viewer: per model and task, the images whose answer changed across variants.

Each flipped image shows every variant's prompt (rendered from today's specs, when the site
is built with them), the raw answer and the parse rule that fired. Images of the bundled
sample, whose licences allow redistribution, are copied beside the page as thumbnails; for
other data the page names the image by its id only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medbench import __version__
from medbench.data import Sample
from medbench.errors import DataError
from medbench.publish.record import Record
from medbench.publish.rederive import record_samples
from medbench.publish.site.context import Site
from medbench.publish.site.layout import Page, file_stem
from medbench.publish.site.samples import sample_files, thumbnail
from medbench.score import original_only
from medbench.spec.loading import SpecSet

MAX_IMAGES = 200
"""Most flipped images listed per (model, task) page; the rest are counted."""


@dataclass(frozen=True)
class Answer:
    """One variant's answer to an image."""

    variant: str
    system: str | None
    prompt: str | None
    """The rendered user prompt; None when the site was built without specs."""
    text: str
    parsed: str
    rule: str


@dataclass(frozen=True)
class FlippedImage:
    sample: str
    truth: str
    thumbnail: str | None
    answers: list[Answer]


@dataclass(frozen=True)
class FlipGroup:
    """The flipped images of one prompt family."""

    family: str
    n_images: int
    images: list[FlippedImage]
    n_hidden: int = 0


@dataclass(frozen=True)
class FlipPage(Page):
    model: str
    model_title: str
    task: str
    task_title: str
    groups: list[FlipGroup]


def flip_path(record: Record, task: str) -> str:
    """The flip viewer's path from the site root."""
    return f"flips/{file_stem(record.suite, record.model_id, task)}.html"


def _outcome(row: dict[str, object]) -> str:
    status = str(row["status"])
    return str(row["parsed"]) if status == "answer" else status


def _prompts(
    specs: SpecSet | None, task: str, family: str, sample: Sample | None
) -> dict[str, tuple[str | None, str | None]]:
    """variant -> (system, user prompt) as the model received them, from today's specs; a
    closed-VQA sample's own question and options (none shown where it cannot be read)."""
    if specs is None or task not in specs.tasks or family not in specs.families:
        return {}
    from medbench.spec import TemplateError, asked_of, render

    spec, task_spec = specs.families[family], specs.tasks[task]
    if task_spec.per_sample and sample is None:
        return {}
    asked = asked_of(task_spec, sample)
    found: dict[str, tuple[str | None, str | None]] = {}
    for variant in spec.variants:
        try:
            rendered = render(spec, variant, task_spec, (), asked=asked)
        except TemplateError:
            continue
        found[variant.id] = (rendered.messages.system, rendered.messages.text)
    return found


def _asked_samples(specs: SpecSet | None, record: Record, task: str) -> dict[str, Sample]:
    """sample id -> sample, for a task whose samples bring their own question or options (read
    from the record's data, at its recorded commit); empty where the data is not here."""
    if specs is None or task not in specs.tasks or not specs.tasks[task].per_sample:
        return {}
    spec = specs.tasks[task]
    if record.dataset.source not in spec.data:
        return {}
    try:
        return {s.id: s for s in record_samples(spec, record, specs)}
    except (DataError, OSError):  # e.g. full data not on this machine: no prompts shown
        return {}


def sample_images(specs: SpecSet | None, record: Record, task: str) -> dict[str, Path]:
    """sample id -> image file, for the bundled sample only (its licences allow copies)."""
    if specs is None or record.dataset.source != "sample":
        return {}
    return {i: path for i, (path, _) in sample_files(specs, task).items()}


def flipped(answers: pd.DataFrame) -> list[tuple[str, str, str, list[dict[str, object]]]]:
    """(family, sample, truth, rows) of every image whose outcome differs across the
    variants of a family (direct pipeline, original images, failed jobs left out), sorted."""
    answers = original_only(answers)
    rows = answers[(answers["pipeline"] == "direct") & (answers["status"] != "error")]
    if "replicate" in rows.columns:  # the noise floor's second answer is not a wording
        rows = rows[rows["replicate"].fillna(0) == 0]
    found = []
    for (family, sample), group in rows.groupby(["family", "sample"], sort=True):
        records = [
            {str(k): v for k, v in r.items()}
            for r in group.sort_values("variant").to_dict("records")
        ]
        if len({_outcome(r) for r in records}) > 1:
            found.append((str(family), str(sample), str(records[0]["truth"]), records))
    return found


def flip_page(
    record: Record,
    task: str,
    answers: pd.DataFrame,
    specs: SpecSet | None,
    files: dict[str, bytes],
    base: tuple[str, str, str],
) -> FlipPage:
    """The flip viewer of one record and task; thumbnails are added to `files`.

    `base` is (task title, build date, version).
    """
    mine = answers[answers["task"] == task]
    pictures = sample_images(specs, record, task)
    asked = _asked_samples(specs, record, task)
    order = {f: record.layout.variants.get(f, []) for f in record.layout.variants}
    groups: dict[str, list[FlippedImage]] = {}
    counts: dict[str, int] = {}
    for family, sample, truth, rows in flipped(mine):
        counts[family] = counts.get(family, 0) + 1
        if counts[family] > MAX_IMAGES:
            continue
        prompts = _prompts(specs, task, family, asked.get(sample))
        rows.sort(
            key=lambda r: (
                order.get(family, []).index(str(r["variant"]))
                if str(r["variant"]) in order.get(family, [])
                else 99
            )
        )
        shown = [
            Answer(
                variant=str(r["variant"]),
                system=prompts.get(str(r["variant"]), (None, None))[0],
                prompt=prompts.get(str(r["variant"]), (None, None))[1],
                text=r["text"] if isinstance(r["text"], str) else "",
                parsed=_outcome(r),
                rule=str(r["rule"]),
            )
            for r in rows
        ]
        groups.setdefault(family, []).append(
            FlippedImage(sample, truth, thumbnail(pictures.get(sample), task, sample, files), shown)
        )
    n_images = {str(f): int(n) for f, n in mine.groupby("family")["sample"].nunique().items()}
    title, date, version = base
    return FlipPage(
        title=f"Flipped answers: {record.model.get('title') or record.model_id} on {title}",
        root="../",
        build_date=date,
        version=version,
        sections=[],
        model=record.model_id,
        model_title=str(record.model.get("title") or record.model_id),
        task=task,
        task_title=title,
        groups=[
            FlipGroup(f, n_images.get(f, 0), images, max(0, counts[f] - MAX_IMAGES))
            for f, images in sorted(groups.items())
        ],
    )


def flip_pages(site: Site) -> None:
    """A flip viewer per record and task; their links go to `site.flip_links`."""
    for record in site.records:
        answers = site.answers.get((record.suite, record.model_id))
        if answers is None:
            continue
        for task in sorted(record.tasks, key=site.tasks.index):
            base = (site.task_title(task), site.build_date, __version__)
            page = flip_page(record, task, answers, site.specs, site.files, base)
            path = flip_path(record, task)
            site.page(path, "flips.html", page)
            n = sum(len(g.images) + g.n_hidden for g in page.groups)
            text = f"{site.task_title(task)}: {n} image{'s' if n != 1 else ''} flipped"
            site.flip_links.setdefault((record.suite, record.model_id), []).append((path, text))
