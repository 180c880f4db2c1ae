"""Prompt family specs: the wordings (variants) a task's question is asked in."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    StrictBool,
    model_validator,
)

from medbench.spec.common import Id, Text, _absent, _Spec

VariantKind = Literal[
    "wording",
    "guided",
    "persona",
    "format",
    "terse",
    "option_order",
    "lettered",
    "reasoning",
    "image_position",
]

ImagePosition = Literal["before_text", "after_text"]
"""Where the image goes in the user turn: before the text (medbench's default, Gemma 3's card)
or after it (MedGemma's card)."""


class VariantSpec(_Spec):
    """One wording of a prompt family."""

    id: Id
    kind: VariantKind
    """What this variant changes against the reference."""
    system: str | None = None
    """Optional system prompt (folded into the first user turn for models without a system role)."""
    template: Text
    """Jinja2 template of the user text (sandboxed; see the README for its variables)."""
    option_order: Literal["spec", "reversed"] = "spec"
    """Order the answer options are offered in."""
    lettered: StrictBool = False
    """Offer options as `A. ...`, `B. ...` and accept letters as answers."""
    image_position: ImagePosition = "before_text"
    """Where the image goes in the user turn: `before_text` (the default) or `after_text`. Part
    of the cache key only when `after_text`; a text-only prompt (a diagnosis from a description)
    has no image to place, so an `after_text` variant is left out of the describe pipeline's
    diagnoses."""

    @model_validator(mode="after")
    def _kind_changes_something(self) -> VariantSpec:
        if self.kind == "image_position" and "image_position" not in self.model_fields_set:
            raise ValueError(
                "a variant of kind `image_position` needs `image_position: after_text` (or "
                "`before_text`): without it, it asks exactly what its wording does"
            )
        return self


class PromptFamilySpec(_Spec):
    """A set of prompt variants asking the same question in different ways."""

    schema_version: Literal[1]
    kind: Literal["prompt_family"]
    id: Id
    title: Text
    description: str = ""
    answer: Literal["label", "yes_no", "text"]
    """`label`: one of the task's classes; `yes_no`: is the finding present; `text`: free text."""
    reference: Id
    """The variant the others are compared against."""
    max_new_tokens: int | None = Field(default=None, ge=1, le=8192, exclude_if=_absent)
    """The most new tokens a model may write for this family's prompts (a description needs
    many more than a closed answer), capped by the model's own `generation.max_new_tokens`;
    absent: the model's. Part of the cache key only where it changes a model's budget."""
    variants: tuple[VariantSpec, ...] = Field(min_length=2)

    def text_variants(self) -> tuple[VariantSpec, ...]:
        """The variants a prompt without an image (a diagnosis from a description) is asked in:
        one that only moves the image would ask exactly what its wording does."""
        return tuple(v for v in self.variants if v.image_position == "before_text")

    @model_validator(mode="after")
    def _variants_consistent(self) -> PromptFamilySpec:
        ids = [v.id for v in self.variants]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate variant id {dupes[0]!r}")
        if self.reference not in ids:
            raise ValueError(
                f"reference variant {self.reference!r} is not among the variants ({', '.join(ids)})"
            )
        return self
