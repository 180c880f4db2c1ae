"""The cost of a plan before it runs: per model, the distinct generations, the prefill tokens,
the decode budget, the likelihood requests and the text-LLM calls; GPU-hours from a
calibration when there is one.

Prefill counts each distinct generation's prompt once (its text tokens and its images' tokens;
the hf backend's shared prefixes and vLLM's prefix caching compute an image's tokens once for
the prompts that open alike: the same system text, the same image, the image before the text);
the decode budget is the sum of each distinct generation's `max_new_tokens` (an upper bound:
answers stop early). Baselines cost nothing and are left out; a diagnoser's calls are counted
with the model whose descriptions it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medbench.run.cost.calibration import Calibration
from medbench.run.cost.images import ImageTokens
from medbench.run.cost.tokens import TextCounter, checkpoint_folder, image_rule
from medbench.run.jobs import Job
from medbench.run.likelihood import PIPELINE as LIKELIHOOD
from medbench.run.likelihood import likelihood_jobs, scored_options
from medbench.run.plan import Plan
from medbench.spec import token_budget

if TYPE_CHECKING:
    from medbench.spec.loading import SpecSet

COUNTS = ("generations", "prefill_tokens", "decode_budget_tokens", "likelihood_requests",
          "llm_calls")  # fmt: skip
"""The figures of each model and of the total, as `--json` names them."""


@dataclass
class ModelCost:
    """What one model's jobs in a plan cost."""

    id: str
    generations: int = 0
    prefill_tokens: int = 0
    decode_budget_tokens: int = 0
    likelihood_requests: int = 0
    llm_calls: int = 0
    likelihood_scored_tokens: int = 0
    likelihood_prefill_tokens: int = 0
    image_tokens: int = 0
    image_rule: str = "none"
    """Where the image-token count came from: `processor config`, `family rule` or `none`."""
    text_tokens: str = "estimate"
    """`tokenizer` (the model's own) or `estimate` (characters / 4)."""
    gpu_hours: float | None = None

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in COUNTS}


@dataclass
class PlanCost:
    """The cost of every (non-baseline) model of a plan, and what it was measured against."""

    models: list[ModelCost]
    gpu: str | None = None
    """The GPU the calibration was measured on (None: no calibration)."""
    placeholders: list[str] = field(default_factory=list)
    """Models counted under a placeholder identity (their revision not resolvable here)."""

    def total(self) -> dict[str, int]:
        return {name: sum(m.counts()[name] for m in self.models) for name in COUNTS}

    @property
    def gpu_hours(self) -> float | None:
        hours = [m.gpu_hours for m in self.models if m.generations or m.likelihood_requests]
        return None if not hours or None in hours else sum(h for h in hours if h is not None)

    def to_json(self) -> dict[str, Any]:
        """The `--json` document: `models[]` and `total` with the `COUNTS` keys; the rest
        (token sources, likelihood tokens, hours) under `details`."""
        return {
            "models": [{"id": m.id, **m.counts()} for m in self.models],
            "total": self.total(),
            "details": {
                "gpu": self.gpu,
                "gpu_hours": self.gpu_hours,
                "placeholder_identities": self.placeholders,
                "models": {
                    m.id: {
                        "image_tokens": m.image_tokens,
                        "image_token_rule": m.image_rule,
                        "text_tokens": m.text_tokens,
                        "likelihood_scored_tokens": m.likelihood_scored_tokens,
                        "likelihood_prefill_tokens": m.likelihood_prefill_tokens,
                        "gpu_hours": m.gpu_hours,
                    }
                    for m in self.models
                },
            },
        }


HOURS_HINT = (
    "GPU-hours: measure this GPU's speeds with `scripts/gpu_check.sh --calibration FILE`, "
    "then add `--calibration FILE`."
)


def report_lines(cost: PlanCost) -> list[str]:
    """The cost as the terminal shows it: a line per model, the total, and what it rests on."""
    lines = [
        f"{'model':<28} {'generations':>11} {'prefill tok':>14} {'decode budget':>14} "
        f"{'likelihood':>10} {'LLM calls':>9}" + ("  GPU-hours" if cost.gpu else "")
    ]

    def row(name: str, counts: dict[str, int], hours: float | None) -> str:
        shown = f"  {hours:9.2f}" if hours is not None else ("  " + "n/a".rjust(9))
        return (
            f"{name:<28} {counts['generations']:>11,} {counts['prefill_tokens']:>14,} "
            f"{counts['decode_budget_tokens']:>14,} {counts['likelihood_requests']:>10,} "
            f"{counts['llm_calls']:>9,}" + (shown if cost.gpu else "")
        )

    for m in cost.models:
        lines.append(row(m.id, m.counts(), m.gpu_hours))
    lines.append(row("total", cost.total(), cost.gpu_hours))
    for m in cost.models:
        lines.append(
            f"{m.id}: image tokens by the {m.image_rule}, text tokens by "
            + ("its tokenizer" if m.text_tokens == "tokenizer" else "an estimate (characters / 4)")
            + f"; likelihood: {m.likelihood_scored_tokens:,} scored option tokens"
        )
    if cost.placeholders:
        lines.append(
            "counted under a placeholder revision (not resolvable here): "
            + ", ".join(cost.placeholders)
        )
    lines.append(
        "decode budget: the sum of each distinct generation's max_new_tokens (an upper bound); "
        "prefill: an image's prefix once per system text where the backend shares it (hf, vllm)"
    )
    if cost.gpu:
        lines.append(f"GPU-hours estimated from speeds measured on {cost.gpu}")
    else:
        lines.append(HOURS_HINT)
    return lines


SHARING_BACKENDS = ("hf", "vllm")
"""Backends that compute the prefix an image's prompts share once."""


def decode_budget(specs: SpecSet, job: Job) -> int:
    """The most tokens a job may generate: its family's budget, capped by the model's own."""
    model = specs.models[job.model]
    return token_budget(model, specs.families[job.family]) or model.generation.max_new_tokens


def plan_cost(
    plan: Plan,
    specs: SpecSet,
    calibration: Calibration | None = None,
    folder_of: Callable[[str], Path | None] | None = None,
) -> PlanCost:
    """The cost of `plan`'s jobs per model (see the module). `folder_of` finds a model's files
    (default: its checkpoint folder or its local Hugging Face snapshot)."""

    def files(model: str) -> Path | None:
        if folder_of is not None:
            return folder_of(model)
        identity, spec = plan.identities[model], specs.models[model]
        return checkpoint_folder(identity.checkpoint_dir, spec.repo, identity.revision)

    scored, _ = likelihood_jobs(plan, specs)
    by_model: dict[str, list[Job]] = {}
    for job in [*plan.jobs, *scored]:
        by_model.setdefault(job.model, []).append(job)
    stage = plan.suite.describe
    per_description = 0
    if stage is not None:
        diagnosers = [d for d in stage.diagnosers if d in plan.identities]
        variants = sum(len(specs.families[f].text_variants()) for f in stage.diagnose_families)
        per_description = len(diagnosers) * variants
    costs: list[ModelCost] = []
    for model in plan.models:
        if specs.models[model].backend == "baseline":
            continue
        cost = _model_cost(plan, specs, model, by_model.get(model, []), files(model))
        cost.llm_calls = per_description * sum(
            j.pipeline == "describe" for j in by_model.get(model, [])
        )
        if calibration is not None and model in calibration.models:
            speed = calibration.models[model]
            seconds = (cost.prefill_tokens + cost.likelihood_prefill_tokens) / (
                speed.prefill_tokens_per_s
            ) + cost.decode_budget_tokens / speed.decode_tokens_per_s
            cost.gpu_hours = seconds / 3600
        costs.append(cost)
    placeholders = sorted(m for m in plan.unavailable if m in plan.identities)
    gpu = calibration.gpu if calibration is not None else None
    return PlanCost(costs, gpu, placeholders)


def _model_cost(
    plan: Plan, specs: SpecSet, model: str, jobs: list[Job], folder: Path | None
) -> ModelCost:
    """One model's generations and likelihood requests, counted (see the module)."""
    spec = specs.models[model]
    rule = None if spec.text_only else image_rule(spec.family, folder)
    text = TextCounter(folder)
    images = ImageTokens(plan, rule)
    cost = ModelCost(model, image_rule=rule.source if rule else "none", text_tokens=text.source)
    seen: set[str] = set()
    # A shared prefix is computed once: the system text and the image open an image-first
    # prompt, so the wordings of one image share its image tokens (vLLM's prefix caching; the
    # hf backend's shared prefixes, the runner keeping an image's prompts in one batch)
    shares = spec.backend in SHARING_BACKENDS and not spec.text_only
    prefixes: set[tuple[str | None, str, str, str]] = set()
    for job in jobs:
        prompt = plan.prompt_of(job)
        messages = prompt.rendered.messages
        prompt_tokens = text.count((messages.system or "") + messages.text)
        if job.pipeline == LIKELIHOOD:
            options = sum(text.count(o) for o in scored_options(prompt))
            cost.likelihood_requests += 1
            cost.likelihood_scored_tokens += options
            cost.likelihood_prefill_tokens += images.of(job) + prompt_tokens + options
            continue
        if job.key in seen:
            continue
        seen.add(job.key)
        image = images.of(job)
        if shares and not messages.image_after:  # text first: its prefix is its own
            system = None if spec.system_prompt == "none" else messages.system
            prefix = (system, job.task, job.sample, job.image_variant)
            image = 0 if prefix in prefixes else image
            prefixes.add(prefix)
        cost.generations += 1
        cost.image_tokens += image
        cost.prefill_tokens += image + prompt_tokens
        cost.decode_budget_tokens += decode_budget(specs, job)
    return cost
