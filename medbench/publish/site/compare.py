"""The image-level comparison viewer: per suite and task, one image at a time, every model's
answer under every wording (and image variant), side by side, the changed answers marked.

A page per slice of `PAGE_SIZE` images, for all the suite's models and for each pair (a
medical model beside its base). A cell is *changed* when the model's answer differs from its
answer to the family's reference wording on the original image. Only the bundled sample's
images are copied (their licences allow it); other images are named by their id.
"""

from __future__ import annotations

from dataclasses import dataclass

from medbench import __version__
from medbench.publish.record import Record
from medbench.publish.site.context import Site
from medbench.publish.site.flips import sample_images
from medbench.publish.site.layout import Page, file_stem, title_of
from medbench.publish.site.samples import thumbnail

PAGE_SIZE = 6
"""Images per page: a few phone screens each."""
MAX_IMAGES = 300
"""Most images shown per task and view (50 pages); the rest are in the records' sidecars."""
ORIGINAL = "original"
MAX_TIP = 300
"""Longest raw answer shown on hover."""


@dataclass(frozen=True)
class Answer:
    text: str
    """What the parser read: a label, `refusal`, `unparseable` or – (not asked)."""
    raw: str
    changed: bool
    right: bool


@dataclass(frozen=True)
class Wording:
    """One row: a family's variant on one image variant."""

    family: str
    variant: str
    image_variant: str
    reference: bool
    answers: list[Answer]
    """One per model, in the page's model order."""


@dataclass(frozen=True)
class Shown:
    sample: str
    truth: str
    src: str | None
    rows: list[Wording]
    n_changed: int


@dataclass(frozen=True)
class ComparePage(Page):
    task: str
    task_title: str
    models: list[tuple[str, str]]
    """(id, title) of each column."""
    images: list[Shown]
    pages: list[tuple[str, str]]
    """(href, text) of every page of this view, the current one included."""
    current: int
    views: list[tuple[str, str]]
    """(href, text) of the task's other views: all models, each pair."""
    n_images: int
    n_hidden: int = 0
    """Images past `MAX_IMAGES`, not shown."""


def compare_path(suite: str, task: str, view: str = "all", page: int = 1) -> str:
    """The path of a viewer page from the site root (`view`: `all` or `<medical>-vs-<base>`)."""
    return f"compare/{file_stem(suite, task, view, str(page))}.html"


def _outcome(row: dict[str, object]) -> str:
    return str(row["parsed"]) if row["status"] == "answer" else str(row["status"])


Row = dict[str, object]


def _answers(site: Site, record: Record, task: str) -> dict[tuple[str, str, str, str], Row]:
    """(sample, family, variant, image variant) -> the answer row (direct, first replicate)."""
    frame = site.answers.get((record.suite, record.model_id))
    if frame is None:
        return {}
    rows = frame[(frame["task"] == task) & (frame["pipeline"] == "direct")]
    rows = rows[rows["status"] != "error"]
    if "replicate" in rows.columns:  # the noise floor's second answer is not a wording
        rows = rows[rows["replicate"].fillna(0) == 0]
    image = rows["image_variant"].fillna(ORIGINAL) if "image_variant" in rows else ORIGINAL
    rows = rows.assign(image_variant=image)
    found: dict[tuple[str, str, str, str], Row] = {}
    for entry in rows.to_dict("records"):
        r = {str(k): v for k, v in entry.items()}
        found[(str(r["sample"]), str(r["family"]), str(r["variant"]), str(r["image_variant"]))] = r
    return found


def _rows(
    records: list[Record], found: list[dict[tuple[str, str, str, str], Row]], sample: str
) -> list[Wording]:
    keys = sorted(
        {k[1:] for answers in found for k in answers if k[0] == sample},
        key=lambda k: (k[0], _order(records, k[0], k[1]), k[2] != ORIGINAL, k[2]),
    )
    out = []
    for family, variant, image_variant in keys:
        cells = []
        for record, answers in zip(records, found, strict=True):
            row = answers.get((sample, family, variant, image_variant))
            reference = record.layout.references.get(family)
            base = answers.get((sample, family, str(reference), ORIGINAL))
            if row is None:
                cells.append(Answer("–", "", False, False))
                continue
            text = _outcome(row)
            raw = row["text"] if isinstance(row["text"], str) else ""
            changed = base is not None and _outcome(base) != text
            cells.append(Answer(text, raw[:MAX_TIP], changed, bool(row.get("correct"))))
        ref = all(r.layout.references.get(family) == variant for r in records)
        out.append(
            Wording(family, variant, image_variant, ref and image_variant == ORIGINAL, cells)
        )
    return out


def _order(records: list[Record], family: str, variant: str) -> int:
    variants = records[0].layout.variants.get(family, [])
    return variants.index(variant) if variant in variants else len(variants)


def _view_pages(
    site: Site,
    suite: str,
    task: str,
    view: str,
    records: list[Record],
    views: list[tuple[str, str]],
) -> None:
    found = [_answers(site, r, task) for r in records]
    every = sorted({k[0] for answers in found for k in answers})
    samples = every[:MAX_IMAGES]
    truths = {k[0]: str(row["label"]) for answers in found for k, row in answers.items()}
    pictures = sample_images(site.specs, records[0], task)
    chunks = [samples[i : i + PAGE_SIZE] for i in range(0, len(samples), PAGE_SIZE)] or [[]]
    pages = [
        (
            compare_path(suite, task, view, n).split("/", 1)[1],
            f"{n}: {chunk[0]} – {chunk[-1]}" if chunk else str(n),
        )
        for n, chunk in enumerate(chunks, start=1)
    ]
    title = site.task_title(task)
    for n, chunk in enumerate(chunks, start=1):
        images = []
        for sample in chunk:
            rows = _rows(records, found, sample)
            src = thumbnail(pictures.get(sample), task, sample, site.files)
            changed = sum(a.changed for r in rows for a in r.answers)
            images.append(Shown(sample, truths.get(sample, "–"), src, rows, changed))
        heading = "every model" if view == "all" else " and ".join(title_of(r) for r in records)
        page = ComparePage(
            title=f"Answers image by image: {title}, {heading}",
            root="../",
            build_date=site.build_date,
            version=__version__,
            sections=[],
            task=task,
            task_title=title,
            models=[(r.model_id, title_of(r)) for r in records],
            images=images,
            pages=pages,
            current=n,
            views=views,
            n_images=len(samples),
            n_hidden=len(every) - len(samples),
        )
        site.page(compare_path(suite, task, view, n), "compare.html", page)


def pairs_of(records: list[Record]) -> list[tuple[Record, Record]]:
    """(base, medical) of each pair among `records`."""
    by_id = {r.model_id: r for r in records}
    return [
        (by_id[str(r.model.get("base"))], r)
        for r in records
        if r.model.get("medical") and str(r.model.get("base")) in by_id
    ]


def compare_pages(site: Site) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Write every viewer page; (suite, task) -> (path from the root, text) of its views."""
    links: dict[tuple[str, str], list[tuple[str, str]]] = {}
    suites = sorted({r.suite for r in site.records})
    for suite in suites:
        records = [r for r in site.records if r.suite == suite]
        for task in site.tasks:
            mine = [r for r in records if task in r.tasks and (suite, r.model_id) in site.answers]
            if not mine:
                continue
            views = [(compare_path(suite, task, "all"), "every model")]
            pairs = pairs_of(mine)
            views += [
                (
                    compare_path(suite, task, f"{med.model_id}-vs-{base.model_id}"),
                    f"{title_of(base)} against its medical fine-tune {title_of(med)}",
                )
                for base, med in pairs
            ]
            relative = [("../" + href, text) for href, text in views]
            _view_pages(site, suite, task, "all", mine, relative)
            for base, med in pairs:
                _view_pages(
                    site, suite, task, f"{med.model_id}-vs-{base.model_id}", [base, med], relative
                )
            links[(suite, task)] = views
    site.compare_links = links
    return links
