"""Every distinct prompt the specs may send a model, as reviewers are shown it.

A prompt is rendered per (family, variant, task) by the plan's own functions (`render`, and
`diagnose_messages` for a describe stage's diagnoses), with the values that differ per image
or per model (a sample's own question and options, a model's description) as the marks the
template sees in their place: the template cannot read them, so each rendering here is, with
the marks filled in, the prompt every image and model is sent. What a template can tell apart
is rendered apart: each option count of a multiple-choice task, and a diagnose prompt (with a
description) beside the direct one. A model's default system text, sent where a variant has
none (`for_model`), is listed per model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medbench.run.diagnose import diagnose_messages
from medbench.run.jobs import Prompt
from medbench.spec import (
    DESCRIPTION_MARK,
    MAX_OPTIONS,
    QUESTION_MARK,
    Messages,
    SampleQuestion,
    option_mark,
    render,
)

if TYPE_CHECKING:
    from medbench.spec import PromptFamilySpec, TaskSpec, VariantSpec
    from medbench.spec.loading import SpecSet

MIN_OPTIONS = 2
"""Fewest options a multiple-choice sample offers (`medbench.data` refuses fewer)."""


def shown(messages: Messages) -> str:
    """A prompt's texts as reviewers read them: the system text (if any), then the user text."""
    return (f"[system] {messages.system}\n" if messages.system else "") + messages.text


def _askings(task: TaskSpec) -> list[tuple[str, SampleQuestion | None]]:
    """Each distinct way a task's samples are asked, by name: the task's question, or a
    sample's own question (marked; the task's, shown as it is, where no source gives one)
    with each count of options it may offer."""
    if not task.per_sample:
        return [("", None)]
    own = any(source.question_column is not None for source in task.data.values())
    question = QUESTION_MARK if own else None
    if task.answer_type != "multiple_choice":
        return [("", SampleQuestion(question))]
    return [
        (
            f"{count} options",
            SampleQuestion(question, tuple(option_mark(i + 1) for i in range(count))),
        )
        for count in range(MIN_OPTIONS, MAX_OPTIONS + 1)
    ]


def _variant_prompts(
    family: PromptFamilySpec, variant: VariantSpec, task: TaskSpec, diagnosed: bool
) -> dict[str, str]:
    prompts = {
        case: shown(render(family, variant, task, (), asked=asked).messages)
        for case, asked in _askings(task)
    }
    if diagnosed:
        prompt = Prompt(render(family, variant, task, ()), family.answer, (), None)
        messages = diagnose_messages(prompt, task, family, variant.id, DESCRIPTION_MARK)
        prompts["diagnosed from a description"] = shown(messages)
    return prompts


def prompts_sent(specs: SpecSet) -> dict[tuple[str, str, str, str], str]:
    """(family, variant, task, case) -> the prompt, for every family, variant and task (a
    template that fails to render shows its error); ("model", id, "", "default system") -> a
    model's default system text."""
    diagnosing = {
        f
        for suite in specs.suites.values()
        if suite.describe
        for f in suite.describe.diagnose_families
    }
    prompts: dict[tuple[str, str, str, str], str] = {}
    for family in specs.families.values():
        for variant in family.variants:
            for task in specs.tasks.values():
                key = (family.id, variant.id, task.id)
                try:
                    cases = _variant_prompts(family, variant, task, family.id in diagnosing)
                except Exception as e:  # a template that fails to render is shown, not hidden
                    cases = {"": f"[render error] {type(e).__name__}: {e}"}
                prompts.update({(*key, case): text for case, text in cases.items()})
    for model in specs.models.values():
        if model.default_system is not None:
            prompts[("model", model.id, "", "default system")] = model.default_system
    return prompts
