"""What a task page shows beyond scores: the question, classes with signs, every wording as
rendered, example images of the bundled sample, the dataset's link and licence."""

from __future__ import annotations

from dataclasses import dataclass, field

from medbench.loading import SpecSet
from medbench.site.samples import sample_files, thumbnail

EXAMPLES_PER_CLASS = 2


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


def task_details(
    specs: SpecSet, task: str, families: list[str], files: dict[str, bytes]
) -> TaskDetails | None:
    """The details of a task from today's specs (None when the specs lack it)."""
    from medbench.prompts import TemplateError, render

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
