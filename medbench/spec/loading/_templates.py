"""Checks of a prompt family's templates: every variant renders, within the sandbox's budgets,
for every task it may be asked with (the longest question, options and description included)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from medbench.errors import Issue
from medbench.spec.loading._document import Document
from medbench.spec.loading._explain import suggest
from medbench.spec.prompt import PromptFamilySpec
from medbench.spec.prompts import TEMPLATE_VARIABLES, SampleQuestion, marked_context, render_text
from medbench.spec.sandbox import BudgetError
from medbench.spec.task import MAX_OPTIONS, TaskSpec

LONG_DESCRIPTION = "The image shows a finding that the model describes at length. " * 480
"""What validation renders `description` as, besides empty: a diagnose prompt meets model
output of up to thousands of words, and a template must stay within budget for it too."""


def _check_family(
    doc: Document, family: PromptFamilySpec, tasks: list[TaskSpec]
) -> Iterator[Issue]:
    for i, variant in enumerate(family.variants):
        if variant.kind == "lettered" and not variant.lettered:
            yield doc.issue(("variants", i, "kind"), "a `lettered` variant needs `lettered: true`.")
        if variant.lettered and family.answer == "text":
            hint = "Letters need options: use `answer: label` or `yes_no`, or drop `lettered`."
            yield doc.issue(
                ("variants", i, "lettered"), "lettered, but the family has `answer: text`.", hint
            )
        reported: set[tuple[str, str]] = set()
        for task, description in ((t, d) for t in tasks for d in (None, LONG_DESCRIPTION)):
            asked = _placeholder_question(task)
            context, values = marked_context(family, variant, task, description, asked)
            for field in ("system", "template"):
                source = getattr(variant, field)
                if (field, "budget") in reported:
                    continue  # a render over its time budget is not run again
                problem = _render_problem(source, context, values) if source else None
                if problem is not None and problem[0].startswith("over the template budget"):
                    reported.add((field, "budget"))
                if problem is not None and (field, problem[0]) not in reported:
                    reported.add((field, problem[0]))
                    long = " with a long description" if description else ""
                    text = f"{problem[0]} (rendering for task '{task.id}'{long})."
                    yield doc.issue(("variants", i, field), text, problem[1])


def _placeholder_question(task: TaskSpec) -> SampleQuestion | None:
    """What a template meets for a closed-VQA task's sample: a long question and, for
    multiple choice, the most options of the longest length the data may hold."""
    if not task.per_sample:
        return None
    from medbench.spec.task import MAX_OPTION, MAX_QUESTION

    options = ("o" * MAX_OPTION,) * MAX_OPTIONS if task.answer_type == "multiple_choice" else ()
    return SampleQuestion("q" * MAX_QUESTION, options)


def _render_problem(
    source: str, context: dict[str, Any], values: dict[str, str]
) -> tuple[str, str] | None:
    try:
        render_text(source, context, values)
    except TemplateSyntaxError as e:
        where = f" on template line {e.lineno}" if "\n" in source.strip() else ""
        return f"template syntax error{where}: {(e.message or '').rstrip('.')}", ""
    except UndefinedError as e:
        match = re.fullmatch(r"'(\w+)' is undefined", e.message or "")
        if match is None:
            return f"undefined value: {(e.message or '').rstrip('.')}", ""
        name = match.group(1)
        if name in TEMPLATE_VARIABLES:
            return f"undefined variable '{name}'", f"The task has no `{name}`: add it to the task."
        hint = suggest(name, list(TEMPLATE_VARIABLES), "Template variables")
        return f"undefined variable '{name}'", hint
    except BudgetError as e:
        hint = "Prompt templates render short text quickly: remove the loop or the size."
        return f"over the template budget: {(e.message or '').rstrip('.')}", hint
    except SecurityError as e:
        hint = "Templates may only read the template variables."
        return f"not allowed in the sandbox: {(e.message or '').rstrip('.')}", hint
    except TemplateError as e:
        return f"template error: {(e.message or '').rstrip('.')}", ""
    except Exception as e:  # a template is user input: any failure is a spec problem
        return f"rendering failed: {type(e).__name__}: {e}", ""
    return None
