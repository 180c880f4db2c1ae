"""The likelihood job kind: one model scoring every offered option of one prompt and image.

A likelihood job mirrors a direct job of a closed family (`label` or `yes_no`) of a model
that can be scored (a local hf vision-language model). Its content key holds what changes the
scores and nothing else: the job kind and format, the scoring mode, the model's identity less
its decoding parameters (teacher forcing never decodes), the rendered messages with image
hashes, and the option strings in the order offered. Generation keys are unchanged. Its answer
is stored in the answer cache as JSON (`LikelihoodAnswer`).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from medbench.run.backends.base import Request
from medbench.run.cache import content_key
from medbench.run.jobs import Job, Prompt
from medbench.run.plan import Plan
from medbench.spec import ORIGINAL_IMAGE, ModelSpec

if TYPE_CHECKING:
    from medbench.spec.loading import SpecSet

LIKELIHOOD_FORMAT = 1
"""Part of every likelihood key and of the stored answer: bump when either changes meaning."""
MODE = "reply_tokens_cased"
"""The hf scoring mode: the sum of the log-probabilities of the tokens the chat template's
assistant turn adds for the option beyond the generation prompt (its separator included, its
end-of-turn not), teacher-forced; log-sum-exp over the option as offered and capitalised (see
`medbench.run.backends.hf.replies`). Was `option_tokens` (the option's bare text appended)."""
FIRST_TOKEN_MODE = "first_token_logprobs"
"""The openai scoring mode: the log-probability of the first answer token being the option,
read from the endpoint's `top_logprobs` (single-token options only; see
`medbench.run.backends.openai_api.logprobs`)."""
MODES = {"hf": MODE, "openai": FIRST_TOKEN_MODE}
"""The scoring mode of each backend that scores options (part of the key)."""
PIPELINE = "likelihood"
CLOSED = ("label", "yes_no")


def can_score(spec: ModelSpec) -> tuple[bool, str]:
    """Whether medbench can score options with this model, and if not, why."""
    if spec.backend == "baseline":
        return False, "a baseline has no likelihoods"
    if spec.backend not in MODES:
        return False, f"the {spec.backend} backend does not score options"
    if spec.text_only:
        return False, "a text-only model cannot read the images"
    return True, ""


def scored_options(prompt: Prompt) -> tuple[str, ...]:
    """The option strings to score: what the prompt asks the model to reply with (the letters
    of a lettered variant, else the offered option texts), in the order offered."""
    options = prompt.rendered.options
    if prompt.rendered.lettered:
        return tuple(string.ascii_uppercase[: len(options)])
    return options


def likelihood_key(
    job_key_payload: dict[str, Any], options: tuple[str, ...], mode: str = MODE
) -> str:
    """The content key of a likelihood job from its model and messages payload."""
    return content_key(
        {
            "job": PIPELINE,
            "likelihood_format": LIKELIHOOD_FORMAT,
            "mode": mode,
            "options": list(options),
            **job_key_payload,
        }
    )


def likelihood_jobs(plan: Plan, specs: SpecSet) -> tuple[list[Job], dict[str, str]]:
    """One likelihood job per direct job of a closed family of a scorable model about an
    original image (not an image variant), and the models left out with the reason
    (baselines are left out silently)."""
    skipped: dict[str, str] = {}
    jobs: list[Job] = []
    for job in plan.jobs:
        if job.pipeline != "direct" or specs.families[job.family].answer not in CLOSED:
            continue
        if job.image_variant != ORIGINAL_IMAGE:
            continue
        spec = specs.models[job.model]
        ok, why = can_score(spec)
        if not ok:
            if spec.backend != "baseline":
                skipped[job.model] = why
            continue
        prompt = plan.prompt_of(job)
        messages = plan.request(job).messages
        model = {k: v for k, v in plan.identities[job.model].payload.items() if k != "generation"}
        key = likelihood_key(
            {"model": model, "messages": messages.key_payload()},
            scored_options(prompt),
            MODES[spec.backend],
        )
        jobs.append(replace(job, key=key, pipeline=PIPELINE))
    return jobs, skipped


def likelihood_request(plan: Plan, job: Job) -> Request:
    """The backend request of a likelihood job: its messages and the options to score."""
    request = plan.request(job)
    options = scored_options(plan.prompt_of(job))
    return replace(request, key=job.key, options=options)


@dataclass(frozen=True)
class LikelihoodAnswer:
    """The stored scores of one likelihood job."""

    options: tuple[str, ...]
    total: tuple[float, ...]
    n_tokens: tuple[int, ...]
    merged: tuple[bool, ...]
    mode: str = MODE
    unscored: tuple[str | None, ...] = ()
    """Per option, why it has no score (None: scored); empty when every option has one."""

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-token (length-normalised) log-likelihoods."""
        return tuple(t / max(1, n) for t, n in zip(self.total, self.n_tokens, strict=True))

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "likelihood_format": LIKELIHOOD_FORMAT,
            "mode": self.mode,
            "options": list(self.options),
            "total": list(self.total),
            "n_tokens": list(self.n_tokens),
            "merged": list(self.merged),
        }
        if self.unscored:  # absent when every option is scored (every hf answer)
            data["unscored"] = list(self.unscored)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LikelihoodAnswer:
        data = json.loads(text)
        mode = data.get("mode")
        if data.get("likelihood_format") != LIKELIHOOD_FORMAT or mode not in MODES.values():
            raise ValueError("a stored likelihood of another format or mode")
        return cls(
            tuple(str(o) for o in data["options"]),
            tuple(float(t) for t in data["total"]),
            tuple(int(n) for n in data["n_tokens"]),
            tuple(bool(m) for m in data["merged"]),
            str(mode),
            tuple(None if u is None else str(u) for u in data.get("unscored", [])),
        )


__all__ = [
    "CLOSED",
    "FIRST_TOKEN_MODE",
    "LIKELIHOOD_FORMAT",
    "MODE",
    "MODES",
    "PIPELINE",
    "LikelihoodAnswer",
    "can_score",
    "likelihood_jobs",
    "likelihood_key",
    "likelihood_request",
    "scored_options",
]
