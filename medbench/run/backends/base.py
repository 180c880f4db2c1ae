"""The Backend protocol: a loaded model that answers batches of requests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from medbench.spec import Messages


@dataclass(frozen=True)
class Request:
    """One generation request: the content key and what the model sees."""

    key: str
    messages: Messages
    options: tuple[str, ...] = ()
    """The answers the prompt offered (used by baselines only)."""
    positive_options: tuple[str, ...] = ()
    """Options that mean the finding is present (used by baselines only)."""
    majority_option: str | None = None
    """The most frequent true answer in the evaluated data (used by the majority baseline)."""
    max_new_tokens: int | None = None
    """This request's token budget where its prompt family's differs from the model's own
    `generation.max_new_tokens` (None: the model's)."""


@dataclass(frozen=True)
class Output:
    """A model's answer to one request, or the reason it has none."""

    text: str | None
    error: str | None = None
    seconds: float = 0.0
    image_processor: str | None = None
    """What turned the request's images into pixels, `backend:Class` (e.g.
    `pil:CLIPImageProcessorPil`); None without images. Stored with the answer."""
    batch_size: int | None = None
    """How many requests the model answered together with this one; None: the batch sent."""
    precision: str | None = None
    """The dtype the model computed in (e.g. `bfloat16`); None where unknown."""
    logprobs: tuple[tuple[str, float], ...] | None = None
    """The first answer token's most likely tokens with their log-probabilities, when they
    were asked for and the endpoint returned them (openai option scoring); None otherwise."""


@dataclass(frozen=True)
class OptionScores:
    """The log-likelihood of each option of one request, or the reason there is none."""

    options: tuple[str, ...]
    total: tuple[float, ...] = ()
    """Sum of the option's token log-probabilities (natural log)."""
    n_tokens: tuple[int, ...] = ()
    merged: tuple[bool, ...] = ()
    """Whether appending the option changed the prompt's last tokens (it was tokenised alone)."""
    error: str | None = None
    seconds: float = 0.0
    unscored: tuple[str | None, ...] = ()
    """Per option, why the backend could not score it (None: scored); empty when every option
    was. An option with a reason has no meaningful `total`."""

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-token (length-normalised) log-likelihoods."""
        return tuple(t / max(1, n) for t, n in zip(self.total, self.n_tokens, strict=True))


@dataclass(frozen=True)
class BackendContext:
    """Run-wide settings a backend needs to load: device, batch size, where checkpoints live."""

    device: str = "auto"
    """`auto` (CUDA if present, else CPU), `cpu`, `cuda`, `cuda:N`."""
    batch_size: int | None = None
    """None = `auto`: the backend's own choice (the HF backend finds the largest that fits)."""
    checkpoint_dir: Path | None = None
    """For `path:` and `tiny:` models: the resolved local checkpoint folder."""
    revision: str | None = None
    """For `repo:` models: the commit sha the model's identity resolved (what the cache keys
    hold); loading uses exactly it. None: resolved again at load time."""
    adapter_dir: Path | None = None
    """For a model with a local (`path`) adapter: the resolved adapter folder."""
    adapter_revision: str | None = None
    """For a model with a hub adapter: the adapter's commit sha its identity resolved (loading
    uses exactly it). None: resolved again at load time."""
    decode_threads: int = 2
    state_dir: Path | None = None
    """Where backends remember what they learn about this machine (the auto batch sizes):
    the answer cache's folder. None: nothing is remembered."""
    extra: dict[str, str] = field(default_factory=dict)


class Backend(Protocol):
    """A loaded model. Outputs must not depend on how requests are batched."""

    def generate(self, requests: Sequence[Request]) -> list[Output]:
        """Answer each request, in order; a per-request failure is an Output with `error`."""
        ...

    def close(self) -> None:
        """Free the model (GPU memory, threads, connections)."""
        ...
