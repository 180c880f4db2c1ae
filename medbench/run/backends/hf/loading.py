"""Load a Hugging Face checkpoint: where it lives, whether transformers reads it, device, dtype."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# This package is the backend that needs torch; load_backend imports it only when it is used.
import torch  # noqa: TID253
from transformers import (  # noqa: TID253
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)
from transformers.utils import logging as hf_logging  # noqa: TID253

from medbench.data import SHA_RE, hf_cache_dir
from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext
from medbench.run.identity import resolve_hub_revision
from medbench.spec import ModelSpec

CONVERT_HINT = (
    "Convert it first with `medbench convert llava-med SRC DST`, then point `path:` at DST "
    "(with `checkpoint_format: hf`)."
)


@dataclass
class Loaded:
    """A model ready for generation, with what turns messages into its inputs."""

    model: Any
    processor: Any
    """The processor of a vision-language model, or the tokenizer of a text-only model."""
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else the CPU; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise BackendError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(f"device {name!r} was asked for, but CUDA is not available here")
    return device


def resolve_dtype(spec: ModelSpec, device: torch.device) -> torch.dtype:
    """The spec's dtype; `auto` is float32 on CPU and bfloat16 on CUDA.

    On a GPU without bfloat16, `auto` is float16, except for Gemma 3, which overflows in float16
    and gets float32.
    """
    if spec.dtype != "auto":
        dtype: torch.dtype = getattr(torch, spec.dtype)
        return dtype
    if device.type != "cuda":
        return torch.float32
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32 if spec.family == "gemma3" else torch.float16


def checkpoint_source(spec: ModelSpec, context: BackendContext) -> tuple[str, str | None]:
    """The folder or hub repository to load, and the commit sha to load (None for a folder).

    A hub model loads the sha its identity resolved, never the branch: a branch can move
    between planning and loading, and the answers are filed under the planned sha.
    """
    if context.checkpoint_dir is not None:
        return str(context.checkpoint_dir), None
    if spec.repo is not None:
        sha = context.revision or resolve_hub_revision(spec.repo, spec.revision)
        if not SHA_RE.fullmatch(sha):
            raise BackendError(
                f"model {spec.id}: loading needs a resolved commit sha, got revision {sha!r}"
            )
        return spec.repo, sha
    raise BackendError(
        f"model {spec.id}: a `path:` or `tiny:` model needs its checkpoint folder resolved "
        "before loading, but BackendContext.checkpoint_dir is not set"
    )


def check_format(spec: ModelSpec, source: str) -> None:
    """Refuse checkpoints transformers cannot load, with what to do instead."""
    if spec.checkpoint_format == "llava_original":
        raise BackendError(
            f"model {spec.id}: `checkpoint_format: llava_original` is the original LLaVA code's "
            f"layout, which transformers cannot load. {CONVERT_HINT}"
        )
    config = Path(source) / "config.json"
    if not config.is_file():
        return
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as e:
        raise BackendError(f"model {spec.id}: cannot read {config}: {e}") from e
    if model_type == "llava_mistral":
        raise BackendError(_llava_mistral_message(spec, source))


def _llava_mistral_message(spec: ModelSpec, source: str) -> str:
    return (
        f"model {spec.id}: {source} holds a `llava_mistral` checkpoint (the original LLaVA-Med "
        f"code's layout), which transformers cannot load. {CONVERT_HINT}"
    )


def device_placement(spec: ModelSpec, device: torch.device) -> dict[str, Any]:
    """The `device_map` argument of `from_pretrained`: the spec's strategy for a model spread
    over several GPUs (accelerate places it; medbench never moves it), else the one GPU to
    load straight onto; nothing on the CPU, where a plain load and `.to` will do."""
    if spec.device_map is not None:
        return {"device_map": spec.device_map}
    return {"device_map": str(device)} if device.type == "cuda" else {}


def quiet_weight_loading_bars() -> None:
    """Hide transformers' own bars (loading weights), which would interleave with medbench's
    progress, but keep the hub's download bars on unless the user turned them off
    (HF_HUB_DISABLE_PROGRESS_BARS): a first download of a real model takes minutes."""
    from huggingface_hub.utils.tqdm import are_progress_bars_disabled, enable_progress_bars

    hub_bars_off = are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # also turns the hub's off
    if not hub_bars_off:
        enable_progress_bars()


def load(spec: ModelSpec, context: BackendContext) -> Loaded:
    """Load the processor (or tokenizer) and the model, in eval mode on the resolved device."""
    quiet_weight_loading_bars()
    if spec.checkpoint_format == "llava_original":
        check_format(spec, "")  # refused before anything is resolved or downloaded
    source, revision = checkpoint_source(spec, context)
    check_format(spec, source)
    device = resolve_device(context.device)
    dtype = resolve_dtype(spec, device)
    options: dict[str, Any] = {"revision": revision, "trust_remote_code": spec.trust_remote_code}
    if revision is not None:
        # The folder the revision was resolved against: identity and loading see one cache.
        options["cache_dir"] = str(hf_cache_dir())
    placement = device_placement(spec, device)
    try:
        if spec.text_only:
            processor = AutoTokenizer.from_pretrained(source, **options)
            tokenizer = processor
            model_class: Any = AutoModelForCausalLM
        else:
            processor = AutoProcessor.from_pretrained(source, **options)  # type: ignore[no-untyped-call]
            tokenizer = processor.tokenizer
            model_class = AutoModelForImageTextToText
        model = model_class.from_pretrained(source, dtype=dtype, **placement, **options)
    except (
        Exception
    ) as e:  # from_pretrained fails in many ways; the user needs the reason, not a trace
        if "llava_mistral" in str(e):
            raise BackendError(_llava_mistral_message(spec, source)) from e
        where = f"{source}@{revision}" if revision else source
        raise BackendError(f"model {spec.id}: cannot load {where}: {type(e).__name__}: {e}") from e
    if getattr(processor, "chat_template", None) is None:
        raise BackendError(f"model {spec.id}: {source} has no chat template; medbench needs one")
    if spec.adapter is not None:
        from medbench.run.backends.hf.adapters import apply_adapter

        model = apply_adapter(model, spec, context)
    if not placement:
        model.to(device)
    elif spec.device_map is not None:
        # Spread over several devices, the inputs go where the token embeddings are.
        device = model.get_input_embeddings().weight.device
    model.eval()
    # Batched generation is only correct with the prompt flush against the first new token.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Loaded(model, processor, tokenizer, device, dtype)
