"""What a model receives for each prompt variant of a task: `medbench prompts`.

A transformers model's prompts are rendered with its own chat template (from its checkpoint
folder or the local Hugging Face cache), through the same conversation the backend builds, so
that a user sees the exact text (special tokens, image placeholders, where the system prompt
went) before spending GPU hours. Other backends show the messages they send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medbench.data import Sample, read_samples, sha256_file
from medbench.errors import MedbenchError, UnknownIdError, UsageError
from medbench.run import resolve_identity
from medbench.run.backends import BackendContext
from medbench.spec import (
    ImageRef,
    Messages,
    ModelSpec,
    PromptFamilySpec,
    SuiteSpec,
    TaskSpec,
    VariantSpec,
    asked_of,
    for_model,
    render,
)
from medbench.spec.loading import SpecSet, suggest

IMAGE_PLACEHOLDER = ImageRef("<image>", "0" * 64)
"""The one image of a direct prompt: templates render a placeholder, nothing is decoded."""


@dataclass(frozen=True)
class ReceivedPrompt:
    """One variant as one model receives it."""

    family: str
    variant: str
    kind: str
    text: str
    sample: str | None = None
    """The sample asked, for a task whose samples bring their own question (closed VQA)."""


def select_variants(
    specs: SpecSet, suite: str | None, variant: str | None
) -> list[tuple[PromptFamilySpec, VariantSpec]]:
    """The variants to show: those of the suite's prompt families (every family without a
    suite), or the one `variant` names (`family/variant`, or a variant id of one family)."""
    if suite is not None:
        chosen = specs.suite(suite)
        names = list(chosen.prompt_families)
        if chosen.describe is not None:
            names.append(chosen.describe.family)
    else:
        names = sorted(specs.families)
    pairs = [(specs.family(f), v) for f in names for v in specs.family(f).variants]
    if variant is None:
        return pairs
    family_id, _, variant_id = variant.rpartition("/")
    found = [
        (f, v) for f, v in pairs if v.id == variant_id and (not family_id or f.id == family_id)
    ]
    if len(found) == 1:
        return found
    if not found:
        known = [f"{f.id}/{v.id}" for f, v in pairs]
        scope = f"of suite {suite}" if suite is not None else "in the specs"
        raise UnknownIdError("prompt variant", variant, known, scope)
    raise UsageError(f"variant {variant!r} is in several families: write it family/variant.")


def received_prompts(
    specs: SpecSet,
    model_id: str,
    task_id: str,
    *,
    models_dir: Path,
    suite: str | None = None,
    variant: str | None = None,
    sample: str | None = None,
    hasher: Callable[[Path], str] = sha256_file,
) -> list[ReceivedPrompt]:
    """Every selected variant of `task_id` as `model_id` receives it (with one image); with a
    suite that has a `no_image` image variant, then each variant it asks without the image.

    A task whose samples bring their own question and options (closed VQA) is shown with
    those of `sample` (default: its first) in the suite's data (default: `sample`)."""
    spec = specs.model(model_id)
    task = specs.task(task_id)
    if suite is not None:
        chosen = specs.suite(suite)
        if model_id not in (
            *chosen.models,
            *(chosen.describe.diagnosers if chosen.describe else ()),
        ):
            raise UsageError(f"model {model_id!r} is not in suite {suite!r}.")
    variants = select_variants(specs, suite, variant)
    source = specs.suite(suite).data if suite is not None else "sample"
    picked = _asked_sample(specs, task, source, sample)
    asked = asked_of(task, picked)
    shown = picked.id if picked is not None else None
    show = _shower(spec, specs, models_dir, hasher)
    system = spec.default_system
    received = []
    for family, one in variants:
        images = () if spec.text_only else (IMAGE_PLACEHOLDER,)
        messages = for_model(render(family, one, task, images, asked=asked).messages, system)
        received.append(ReceivedPrompt(family.id, one.id, one.kind, show(messages), shown))
    if suite is not None and not spec.text_only and spec.backend != "baseline":
        for family, one, image_variant in _without_image(specs.suite(suite), variants):
            messages = for_model(render(family, one, task, (), asked=asked).messages, system)
            kind = f"{one.kind}, image variant {image_variant}"
            received.append(ReceivedPrompt(family.id, one.id, kind, show(messages), shown))
    return received


def _asked_sample(specs: SpecSet, task: TaskSpec, source: str, sample: str | None) -> Sample | None:
    """The sample whose own question is shown, for a closed-VQA task (None for the others)."""
    if not task.per_sample:
        if sample is not None:
            raise UsageError(f"task {task.id!r} asks every image the same question: drop --sample.")
        return None
    if source not in task.data:
        raise MedbenchError(f"task {task.id!r} has no {source!r} data to take a question from.")
    samples = read_samples(task, source, specs.root)
    if sample is None:
        return samples[0]
    by_id = {s.id: s for s in samples}
    if sample not in by_id:
        hint = suggest(sample, sorted(by_id), "Its samples")
        raise UsageError(f"task {task.id!r} has no sample {sample!r} in its {source} data. {hint}")
    return by_id[sample]


def _without_image(
    suite: SuiteSpec, variants: list[tuple[PromptFamilySpec, VariantSpec]]
) -> list[tuple[PromptFamilySpec, VariantSpec, str]]:
    """The variants a suite's `no_image` variants ask again, with no image at all."""
    return [
        (family, one, image_variant.id)
        for image_variant in suite.image_variants
        if image_variant.transform == "no_image"
        for family, one in variants
        if family.id in suite.prompt_families
        and family.answer != "text"
        and (suite.image_variant_prompts == "all" or one.id == family.reference)
    ]


def _shower(
    spec: ModelSpec, specs: SpecSet, models_dir: Path, hasher: Callable[[Path], str]
) -> Callable[[Messages], str]:
    if spec.backend != "hf":
        return _as_sent
    from medbench.run.backends.hf import load_template
    from medbench.run.executors import ModelWork, prepare_checkpoint

    identity = resolve_identity(spec, specs.root, models_dir, hasher, specs=specs)
    prepare_checkpoint(ModelWork(spec, identity, []))
    return load_template(spec, identity.context(BackendContext(device="cpu"))).received


def _as_sent(messages: Messages) -> str:
    """The messages an API backend sends (a baseline reads only the options)."""
    lines = [f"[system] {messages.system}"] if messages.system else []
    images = "".join("[image] " for _ in messages.images)
    return "\n".join([*lines, f"[user] {images}{messages.text}"])
