"""Render a prompt variant for a task and an image into chat messages (sandboxed Jinja2)."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Protocol

from jinja2 import TemplateError

from medbench.spec.model import ModelSpec
from medbench.spec.prompt import ImagePosition, PromptFamilySpec, VariantSpec
from medbench.spec.sandbox import (
    MAX_RENDERED,
    BudgetError,
    PromptEnvironment,
    new_environment,
    render_bounded,
)
from medbench.spec.task import OPTION_LETTERS, TaskSpec

TEMPLATE_VARIABLES = (
    "question",
    "modality",
    "finding",
    "title",
    "options",
    "labels",
    "lettered_options",
    "positive",
    "signs",
    "label_signs",
    "description",
    "sample",
)
"""Names a template may use; `description` is only set for text-only diagnose prompts;
`sample` holds `question` and `options`: the sample's own where its task reads them from the
data (closed VQA), else the task's question and the offered options."""

DESCRIPTION_MARK = "\u27eadescription\u27eb"
QUESTION_MARK = "\u27easample question\u27eb"
_MARK = re.compile("\u27ea(?:description|sample question|option [1-9])\u27eb")
"""What a template sees of a value that differs per image or per model: a model's description,
a sample's own question and options. A template can place such a value but never read it (the
real text is filled in after rendering), so it cannot branch on it: a prompt rendered with the
marks, as `scripts/prompt_diff.py` shows it, is the prompt every image and model is sent."""


def option_mark(number: int) -> str:
    """The mark of a sample's own option `number` (from 1, in the data's order)."""
    return f"\u27eaoption {number}\u27eb"


@dataclass(frozen=True)
class SampleQuestion:
    """A sample's own question and options (closed VQA), as its data source gives them."""

    question: str | None
    options: tuple[str, ...] = ()


class Sample(Protocol):
    """What prompts read of a data sample (`medbench.data.Sample`): its own question and options."""

    @property
    def question(self) -> str | None: ...

    @property
    def options(self) -> tuple[str, ...]: ...


def asked_of(task: TaskSpec, sample: Sample | None) -> SampleQuestion | None:
    """What a sample is asked where its task reads a question or options per sample (closed
    VQA): its own question and options; None where the task's question is asked."""
    if sample is None or not task.per_sample:
        return None
    return SampleQuestion(sample.question, sample.options)


def options_by_letter(asked: SampleQuestion | None, answer: str) -> tuple[tuple[str, str], ...]:
    """For a multiple-choice sample asked by a `label` family: each of its options with the
    label id of its letter (`a` for the first, in the data's order); empty otherwise."""
    if asked is None or not asked.options or answer != "label":
        return ()
    return tuple(zip(asked.options, OPTION_LETTERS, strict=False))


@dataclass(frozen=True)
class ImageRef:
    """An image by path (to read it) and by content (to key it)."""

    path: str
    sha256: str


@dataclass(frozen=True)
class Messages:
    """One chat turn: an optional system prompt, the user text and its images."""

    system: str | None
    text: str
    images: tuple[ImageRef, ...] = ()
    image_position: ImagePosition = "before_text"
    """Where the images go in the user turn, against the text."""

    @property
    def image_after(self) -> bool:
        """Whether the images go after the text (the default is before it)."""
        return self.image_position == "after_text"

    def key_payload(self) -> dict[str, Any]:
        """What of the messages changes the answer: texts and image hashes, never paths."""
        payload: dict[str, Any] = {
            "system": self.system,
            "text": self.text,
            "images": [image.sha256 for image in self.images],
        }
        return placed(payload, self)


def placed(payload: dict[str, Any], messages: Messages) -> dict[str, Any]:
    """A messages key payload with the image position where it is not the default (so that the
    keys of image-first prompts stay what they were before the position existed)."""
    if messages.image_after:
        payload["image_position"] = messages.image_position
    return payload


def for_model(messages: Messages, default_system: str | None) -> Messages:
    """The messages a model is sent: its default system text where the variant gives none (a
    variant's own system text, e.g. a persona's, replaces the default)."""
    if messages.system is not None or default_system is None:
        return messages
    return replace(messages, system=default_system)


def token_budget(model: ModelSpec, family: PromptFamilySpec) -> int | None:
    """The most new tokens `model` may write for `family`'s prompts where that differs from the
    model's own `generation.max_new_tokens`: the family's budget capped by the model's. None
    where the model's own applies (no family budget, a larger one, or a baseline)."""
    if family.max_new_tokens is None or model.backend == "baseline":
        return None
    budget = min(family.max_new_tokens, model.generation.max_new_tokens)
    return budget if budget != model.generation.max_new_tokens else None


def budgeted(payload: dict[str, Any], budget: int | None) -> dict[str, Any]:
    """A model identity's key payload with a family's token budget in its decoding parameters
    (unchanged without one: a family budget enters the key only where it changes the answer)."""
    if budget is None or "generation" not in payload:
        return payload
    return {**payload, "generation": {**payload["generation"], "max_new_tokens": budget}}


@dataclass(frozen=True)
class Rendered:
    """A rendered variant: the messages and the answer options in the order offered."""

    messages: Messages
    options: tuple[str, ...]
    lettered: bool


@lru_cache(maxsize=1)
def environment() -> PromptEnvironment:
    """The one Jinja environment for prompts: sandboxed and bounded (`medbench.spec.sandbox`)."""
    return new_environment()


def offered_options(
    task: TaskSpec,
    variant: VariantSpec,
    family: PromptFamilySpec,
    asked: SampleQuestion | None = None,
) -> tuple[str, ...]:
    """The answers a variant offers: label names (in its order), yes/no, or a multiple-choice
    sample's own options (in its order)."""
    if family.answer == "yes_no":
        return ("yes", "no")
    if family.answer == "text":
        return ()
    names = (
        asked.options
        if asked is not None and asked.options
        else tuple(label.name for label in task.labels)
    )
    return names[::-1] if variant.option_order == "reversed" else names


def template_context(
    task: TaskSpec,
    options: tuple[str, ...],
    description: str | None = None,
    asked: SampleQuestion | None = None,
) -> dict[str, Any]:
    """The variables a template sees for a task (and a sample's own question, if any)."""
    question = asked.question if asked is not None and asked.question else task.question
    letters = string.ascii_uppercase
    positive = [label for label in task.labels if label.positive]
    # A task without a finding leaves `finding` undefined: a template using it fails to render.
    finding = {"finding": task.finding} if task.finding is not None else {}
    return {
        "question": question,
        "sample": {"question": question, "options": list(options)},
        "modality": task.modality,
        **finding,
        "title": task.title,
        "options": list(options),
        "labels": list(options),
        "lettered_options": [f"{letters[i]}. {o}" for i, o in enumerate(options)],
        "positive": [label.name for label in positive],
        "signs": [sign for label in positive for sign in label.signs],
        # Only the classes that have signs: a class without any would render an empty clause
        # ("normal: .") in a guided prompt.
        "label_signs": [
            {"name": label.name, "signs": list(label.signs)} for label in task.labels if label.signs
        ],
        "description": description if description is not None else "",
    }


def hidden(
    task: TaskSpec, description: str | None, asked: SampleQuestion | None
) -> tuple[str | None, SampleQuestion | None, dict[str, str]]:
    """The description and the sample's question as a template sees them (marks in place of
    the values that differ per image or per model), and each mark's value."""
    values: dict[str, str] = {}
    if description is not None:  # a diagnose prompt's, even empty: one rendering for all
        values[DESCRIPTION_MARK] = description
        description = DESCRIPTION_MARK
    if asked is not None:
        # A sample without its own question is asked the task's: marked all the same, so that
        # the rendering never depends on which samples have one.
        values[QUESTION_MARK] = asked.question or task.question
        marks = tuple(option_mark(i + 1) for i in range(len(asked.options)))
        values.update(zip(marks, asked.options, strict=True))
        asked = SampleQuestion(QUESTION_MARK, marks)
    return description, asked, values


def marked_context(
    family: PromptFamilySpec,
    variant: VariantSpec,
    task: TaskSpec,
    description: str | None = None,
    asked: SampleQuestion | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """What a variant's template sees (the per-image and per-model values as marks), and the
    values `render_text` fills in for the marks."""
    shown, seen, values = hidden(task, description, asked)
    return template_context(task, offered_options(task, variant, family, seen), shown, seen), values


def fill(text: str, values: dict[str, str]) -> str:
    """A rendering with each mark replaced by its value, in one pass (a value holding a mark
    is not filled again); bounded as the rendering itself is."""
    if not values:
        return text
    marks = _MARK.findall(text)
    size = len(text) + sum(len(values.get(m, m)) - len(m) for m in marks)
    if size > MAX_RENDERED:  # counted before anything is built
        raise BudgetError(f"the template renders over {MAX_RENDERED} characters")
    return _MARK.sub(lambda m: values.get(m.group(0), m.group(0)), text).strip()


@lru_cache(maxsize=4096)
def _compile(source: str) -> Any:
    return environment().from_string(source)


def render_text(source: str, context: dict[str, Any], values: dict[str, str] | None = None) -> str:
    """Render one template string, then fill in the marked `values` (see `hidden`); raises
    jinja2.TemplateError on any problem."""
    return fill(render_bounded(_compile(source), context).strip(), values or {})


def render(
    family: PromptFamilySpec,
    variant: VariantSpec,
    task: TaskSpec,
    images: tuple[ImageRef, ...],
    description: str | None = None,
    asked: SampleQuestion | None = None,
) -> Rendered:
    """Render a variant for a task (or one of its samples' own question) and its image(s).

    The template sees the description and a sample's own question and options only as marks
    (`hidden`), filled in after rendering: it cannot branch on them."""
    options = offered_options(task, variant, family, asked)
    context, values = marked_context(family, variant, task, description, asked)
    text = render_text(variant.template, context, values)
    system = render_text(variant.system, context, values) if variant.system else None
    return Rendered(
        Messages(system, text, images, variant.image_position), options, variant.lettered
    )


__all__ = [
    "DESCRIPTION_MARK",
    "MAX_RENDERED",
    "QUESTION_MARK",
    "TEMPLATE_VARIABLES",
    "ImageRef",
    "Messages",
    "Rendered",
    "SampleQuestion",
    "TemplateError",
    "asked_of",
    "budgeted",
    "environment",
    "fill",
    "for_model",
    "hidden",
    "marked_context",
    "offered_options",
    "option_mark",
    "options_by_letter",
    "placed",
    "render",
    "render_text",
    "template_context",
    "token_budget",
]
