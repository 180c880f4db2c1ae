"""Answers no model gave: what a sidecar's texts show when they were written, not generated.

A record cannot prove that its answers came from its model (a sidecar whose texts and parses
are rewritten together re-derives consistently), but some rewritings leave marks that no model
run can leave. Each check below says why its mark is impossible for a model (a problem) or only
unusual (a note, so that a genuinely strong model is never refused):

- one request, several answers: under a `no_image` ablation every image of a task is asked the
  same request (the same cache key), and the run stores one answer per key; different answers
  there were not all produced by a run (a problem);
- the labels' own words: every answer on the original images, under every wording, is its
  image's true label verbatim. A perfect model answering "Glioma" as asked does exactly this
  (the quickstart's demonstration models have seen their test images), so it is a note;
- the same long text under every wording: a long free-text answer is generated token by token
  from its prompt, and a changed prompt changes some token of it; a long text that is specific
  to one image yet byte-identical under every distinct prompt, for every image of a task, was
  pasted (a problem; for a quarter of the images, a note). Stock replies that many images share
  (a refusal, a disclaimer) are what real models repeat, and are left out;
- a baseline that refuses always answers with one text (`always_refuse`); the other baselines
  are re-derived whole from the baseline backend where the specs are at hand (`reask`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pandas as pd

from medbench.publish.rederive import Findings

if TYPE_CHECKING:
    from medbench.publish.record import Record
    from medbench.spec import TaskSpec
    from medbench.spec.loading import SpecSet

MIN_IMAGES = 8
"""Fewest images of a task for a pattern over "every image" to count: below it, a few images
can share any pattern by chance."""
LONG_TEXT = 60
"""Characters from which a free-text answer is long: a prompt change changes some token of it
(short answers, "Glioma." or "Yes.", are legitimately the same under every wording). The real
closed answers kept as parser cases run to 121 characters at the 90th percentile: long answers
are common, and they follow their prompt (a lettered wording is answered with a letter, a
guided one echoes its signs)."""
ECHO_NOTE_SHARE = 0.25
"""Share of a task's images echoed under every wording from which a note is given."""
_EDGES = re.compile(r"^[\s\"'*`.:;,!]+|[\s\"'*`.:;,!]+$")


def _direct(answers: pd.DataFrame, model: str) -> pd.DataFrame:
    """The model's direct answers that a model gave (no errors), first replicates only."""
    rows = answers[
        (answers["model"] == model) & (answers["pipeline"] == "direct") & answers["error"].isna()
    ]
    return rows[rows["replicate"] == 0]


def _transforms(record: Record) -> dict[str, str]:
    return {"original": "original", **(record.layout.image_variants or {})}


def one_request_one_answer(
    sidecar: str, record: Record, answers: pd.DataFrame, per_sample: set[str]
) -> list[str]:
    """Rows asked without an image (one request for every image of a task and wording) whose
    texts differ; `per_sample` names the tasks that ask each image its own question."""
    if record.model.get("backend") == "baseline":
        return []  # a baseline keeps each image's own key under every image variant
    blind = {v for v, t in _transforms(record).items() if t == "no_image"}
    rows = _direct(answers, record.model_id)
    rows = rows[rows["image_variant"].isin(blind) & ~rows["task"].isin(per_sample)]
    problems = []
    for (task, family, variant, image), group in rows.groupby(
        ["task", "family", "variant", "image_variant"], sort=True
    ):
        texts = group["text"].fillna("")
        if texts.nunique() < 2:
            continue
        copied = (group["status"] == "answer") & (group["parsed"] == group["truth"])
        how = "; each is its image's true label" if bool(copied.all()) else ""
        problems.append(
            f"{sidecar}: text: {len(group)} images of {task} asked with {family}/{variant} "
            f"under image variant '{image}' got {texts.nunique()} different answers{how}. "
            "Without an image every image is one request, and a run stores one answer per "
            "request: these answers were not all given by the model"
        )
    return problems


def _plain(text: str) -> str:
    return _EDGES.sub("", " ".join(text.split())).casefold()


def _label_words(task: TaskSpec, kind: str) -> dict[str, set[str]]:
    """Each truth's own words (name, aliases, id) as the parser's options would show them."""
    if kind == "yes_no":
        return {"yes": {"yes"}, "no": {"no"}}
    return {
        label.id: {_plain(w) for w in (label.id, label.name, *label.aliases)}
        for label in task.labels
    }


def truth_in_its_own_words(
    sidecar: str, record: Record, answers: pd.DataFrame, specs: SpecSet
) -> list[str]:
    """Notes on the tasks where every answer on the original images, under every wording of
    every family, is its image's true label word for word."""
    rows = _direct(answers, record.model_id)
    rows = rows[rows["image_variant"] == "original"]
    notes = []
    for task_id, group in rows.groupby("task", sort=True):
        task = specs.tasks.get(str(task_id))
        if task is None or group["sample"].nunique() < MIN_IMAGES or group["truth"].nunique() < 2:
            continue
        words = {
            family: _label_words(task, record.layout.answer_kinds.get(str(family), "label"))
            for family in set(group["family"])
        }
        if all(
            _plain(str(text)) in words[family].get(str(truth), set())
            for text, truth, family in zip(
                group["text"].fillna(""), group["truth"], group["family"], strict=True
            )
        ):
            notes.append(
                f"{sidecar}: task {task_id}: every answer ({len(group)}, under every wording) is "
                "its image's true label, word for word: a perfect model answers so, and so do "
                "labels copied into the texts; verify cannot tell them apart"
            )
    return notes


def _distinct_prompts(task: TaskSpec, family_id: str, specs: SpecSet) -> list[str]:
    """One variant per distinct rendering of the family for the task (two variants that render
    the same text are one request and share one answer)."""
    from medbench.spec import render

    family = specs.families[family_id]
    seen: dict[tuple[str | None, str], str] = {}
    for variant in family.variants:
        messages = render(family, variant, task, ()).messages
        seen.setdefault((messages.system, messages.text), variant.id)
    return sorted(seen.values())


def echoed_texts(sidecar: str, record: Record, answers: pd.DataFrame, specs: SpecSet) -> Findings:
    """Long image-specific texts that are byte-identical under every distinct prompt of a
    family: a problem for every image of a task, a note for a quarter of them."""
    out = Findings()
    rows = _direct(answers, record.model_id)
    rows = rows[rows["image_variant"] == "original"]
    for (task_id, family_id), group in rows.groupby(["task", "family"], sort=True):
        task = specs.tasks.get(str(task_id))
        if task is None or task.per_sample or family_id not in specs.families:
            continue
        variants = set(_distinct_prompts(task, str(family_id), specs))
        group = group[group["variant"].isin(variants)]
        if group["variant"].nunique() < 2 or group["sample"].nunique() < MIN_IMAGES:
            continue
        texts = group["text"].fillna("").astype(str)
        shared = texts.groupby(texts).transform(lambda t: t.index.size)
        per_image = group.assign(text=texts, shared=shared).groupby("sample", sort=True)
        echoed = sum(_echoed(part, len(variants)) for _, part in per_image)
        n = group["sample"].nunique()
        said = (
            f"{sidecar}: text: {echoed} of {n} images of {task_id} got the same long answer "
            f"(at least {LONG_TEXT} characters, given to no other image) under each of "
            f"{group['variant'].nunique()} different prompts of {family_id}"
        )
        if echoed == n:
            out.problems.append(
                f"{said}; a changed prompt changes a generated text: these texts were not "
                "generated from their prompts"
            )
        elif echoed >= ECHO_NOTE_SHARE * n:
            out.notes.append(f"{said}; unusual for a model: read them")
    return out


def _echoed(part: Any, n_variants: int) -> bool:
    """Whether one image's answers are one long text of its own under every distinct prompt."""
    texts = set(part["text"])
    if len(texts) != 1 or part["variant"].nunique() != n_variants:
        return False
    (text,) = texts
    return len(text) >= LONG_TEXT and int(part["shared"].max()) == len(part)


def refusing_baseline(sidecar: str, record: Record, answers: pd.DataFrame) -> list[str]:
    """An `always_refuse` baseline answers every question with its one refusal text."""
    from medbench.run.backends import REFUSAL_TEXT

    if record.model.get("backend") != "baseline" or record.model.get("baseline") != (
        "always_refuse"
    ):
        return []
    rows = _direct(answers, record.model_id)
    other = rows[rows["text"].fillna("") != REFUSAL_TEXT]
    if other.empty:
        return []
    first = other.iloc[0]
    return [
        f"{sidecar}: text: {len(other)} of {len(rows)} answers of a baseline that always refuses "
        f"are not its refusal (first: {first['task']}/{first['family']}/{first['variant']}/"
        f"{first['sample']}: {str(first['text'])[:60]!r}); a baseline answers deterministically"
    ]


def check_forgery(
    sidecar: str, record: Record, answers: pd.DataFrame, specs: SpecSet | None
) -> Findings:
    """Every mark of written answers the sidecar shows (see the module's docstring); those that
    need the tasks' labels and prompts only with `specs`."""
    out = Findings(problems=refusing_baseline(sidecar, record, answers))
    if specs is None:
        return out
    per_sample = {t.id for t in specs.tasks.values() if t.per_sample}
    out.problems += one_request_one_answer(sidecar, record, answers, per_sample)
    echoes = echoed_texts(sidecar, record, answers, specs)
    out.problems += echoes.problems
    out.notes += truth_in_its_own_words(sidecar, record, answers, specs) + echoes.notes
    return out


__all__ = [
    "LONG_TEXT",
    "MIN_IMAGES",
    "check_forgery",
    "echoed_texts",
    "one_request_one_answer",
    "refusing_baseline",
    "truth_in_its_own_words",
]
