"""Model specs: which weights (hub, local, tiny, hosted), how they generate, and their pair."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from medbench.spec.common import (
    API_KEY_ENV_PATTERN,
    REPO_PATTERN,
    Id,
    Revision,
    Seed,
    Text,
    VariantRef,
    _absent,
    _Spec,
)


class GenerationSpec(_Spec):
    """Decoding parameters: part of the cache key."""

    max_new_tokens: int = Field(default=128, ge=1, le=8192)
    do_sample: StrictBool = False
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: Seed | None = None
    """Sampling seed (0 to 2**32-1); only meaningful with `do_sample: true`."""


class TinySpec(_Spec):
    """A small local model medbench builds on first use (tests and the quickstart)."""

    arch: Literal["llava", "llava_next", "gemma3", "text"]
    seed: Seed = 0
    train: StrictBool = False
    """Fine-tune on the sample images so the model answers in words (a demonstration model)."""
    train_variants: tuple[VariantRef, ...] = ()
    """Prompt variants (`family/variant`) the demonstration model is trained on."""
    train_tasks: tuple[Id, ...] = ()
    """Tasks whose `sample` images the demonstration model is trained on (and only those)."""
    steps: int = Field(default=300, ge=0, le=5000)
    """Optimizer steps of the fine-tuning."""
    lr: float = Field(default=3e-3, gt=0.0, le=1.0)
    """Peak AdamW learning rate (linear warm-up over the first tenth of the steps, then decay)."""
    batch_size: int = Field(default=16, ge=1, le=256)
    """Training examples per step."""
    init_from: Id | None = None
    """A trained tiny model of the same architecture whose weights this one starts from."""

    @model_validator(mode="after")
    def _training_fields(self) -> TinySpec:
        if self.train and not self.train_variants:
            raise ValueError("`train: true` needs `train_variants` (the wordings to learn)")
        if self.train and not self.train_tasks:
            raise ValueError("`train: true` needs `train_tasks` (the tasks whose sample it learns)")
        if self.train_tasks and not self.train:
            raise ValueError("`train_tasks` needs `train: true`")
        if self.init_from is not None and not self.train:
            raise ValueError("`init_from` needs `train: true`")
        return self


class OpenAISpec(_Spec):
    """An OpenAI-compatible chat-completions endpoint."""

    base_url: Text
    model: Text
    api_key_env: str | None = Field(default=None, pattern=API_KEY_ENV_PATTERN)
    """Name of the environment variable holding the key (never the key itself):
    `OPENAI_API_KEY` or `MEDBENCH_<NAME>_API_KEY`, so that a spec cannot read other secrets."""
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    max_concurrency: int = Field(default=4, ge=1, le=256)
    max_retries: int = Field(default=5, ge=0, le=20)
    snapshot: str | None = Field(default=None, min_length=1, max_length=200)
    """The model snapshot the server reports (e.g. a dated name). Pinned here, it goes into
    the cache key as is and every answer served under another name fails; left out,
    `medbench run` asks the endpoint and records it beside the cache, and `plan`, `score`
    and `check` use the recorded one (they never contact the endpoint)."""
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    """For reasoning models: how much hidden reasoning to spend (sent as `reasoning_effort`;
    part of the cache key). Left out, the provider's default (GPT-5.1: `none`)."""
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1, le=128000)
    """For reasoning models: the token budget of hidden reasoning plus the visible answer,
    sent as `max_completion_tokens` instead of `generation.max_new_tokens` (part of the
    cache key). An answer left empty because the budget ran out is a failed job."""


DeviceMap = Literal["auto", "balanced", "balanced_low_0", "sequential"]
"""accelerate's strategies for spreading one model over the visible GPUs (then CPU memory)."""


class AdapterSpec(_Spec):
    """A PEFT adapter (LoRA and its kin) applied over a model's base weights."""

    repo: str | None = Field(default=None, pattern=REPO_PATTERN)
    """Hugging Face repository id of the adapter (a PEFT `adapter_config.json` and weights)."""
    revision: Revision = "main"
    """Branch, tag or commit of `repo`; the cache key and records use the resolved commit sha."""
    path: str | None = None
    """Local adapter folder instead of a repository (in the data root or `${MEDBENCH_DATA}`)."""

    @model_validator(mode="after")
    def _one_source(self) -> AdapterSpec:
        if (self.repo is None) == (self.path is None):
            raise ValueError("an adapter needs exactly one of `repo` or `path`")
        if self.path is not None and "revision" in self.model_fields_set:
            raise ValueError("`revision` needs an adapter `repo`; a `path` adapter is hashed")
        return self


class ImageInputSpec(_Spec):
    """How the model's processor makes its input from an image file, where its family's rule
    does not apply (see `medbench.data.variants.views`): image variants are applied there."""

    fit: Literal["squash", "crop", "pad", "shortest", "file"]
    """`squash`: resized to `width` x `height`; `crop`: shortest side to `width`, centre crop;
    `pad`: centred on a square of the processor's mean colour, then resized; `shortest`:
    within `height` x `height`, then shortest side to `width`; `file`: unknown, so image
    variants are applied to the file at its own resolution."""
    width: StrictInt = Field(default=336, ge=8, le=8192)
    height: StrictInt = Field(default=336, ge=8, le=8192)


class ModelSpec(_Spec):
    """A model to evaluate, and how to load it."""

    schema_version: Literal[1]
    kind: Literal["model"]
    id: Id
    title: Text
    description: str = ""
    backend: Literal["hf", "baseline", "openai", "vllm"]
    """`hf`: transformers; `vllm`: in-process vLLM on a GPU (the `vllm` extra), with the same
    checkpoint fields and prompt settings as `hf`; `openai`: an OpenAI-compatible endpoint;
    `baseline`: a reference answerer without a model."""
    family: Id
    """Architecture family, e.g. `gemma3`, `llava`."""
    base: Id | None = None
    """The general model this one was fine-tuned from: the two form a pair."""
    medical: StrictBool = False
    """Fine-tuned for medicine."""
    repo: str | None = Field(default=None, pattern=REPO_PATTERN)
    """Hugging Face repository id."""
    revision: Revision = "main"
    """Branch, tag or commit; the cache key and records use the resolved commit sha."""
    path: str | None = None
    """Local checkpoint folder instead of a repository (in the data root or `${MEDBENCH_DATA}`)."""
    checkpoint_format: Literal["hf", "llava_original"] = "hf"
    """`llava_original`: the original LLaVA code's layout, which must be converted first."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    adapter: AdapterSpec | None = Field(default=None, exclude_if=_absent)
    """A PEFT adapter applied over the weights (`hf` backend), merged into them at load time;
    its resolved sha (hub) or file hash (path) is part of the cache key. Its pair is the same
    weights without it: name that model in `base`."""
    device_map: DeviceMap | None = Field(default=None, exclude_if=_absent)
    """Spread a model too big for one GPU over all visible GPUs with accelerate (`hf` backend):
    passed to `from_pretrained` as `device_map`. Not part of the cache key (placement does not
    change the answers beyond numerical noise); recorded with the model spec in records.
    Absent: the whole model on the run's `--device`."""
    generation: GenerationSpec = GenerationSpec()
    trust_remote_code: StrictBool = False
    """Refused unless the model id is on `specs/allow_remote_code.txt`."""
    baseline: (
        Literal["chance", "majority", "always_positive", "always_refuse", "stable_random"] | None
    ) = None
    tiny: TinySpec | None = None
    openai: OpenAISpec | None = None
    test_model: StrictBool = False
    """Random or demonstration weights: never published as a real result."""
    text_only: StrictBool = False
    """A text-only language model (a diagnoser in the describe pipeline)."""
    system_prompt: Literal["template", "fold_into_user", "none"] = "template"
    """Where a variant's system prompt goes. `template`: a system turn, rendered however the
    model's chat template renders one (an error if the template refuses or drops it; an `openai`
    endpoint sends a system message, and its server's template places it unchecked);
    `fold_into_user`: the system text, a blank line, then the user text, in the user turn;
    `none`: dropped. A model and its `base` must use the same handling, and `template` only
    when both have the same `family` (the same chat template); part of the cache key."""
    default_system: Text | None = Field(default=None, exclude_if=_absent)
    """The system text the model's own evaluations used, sent when a prompt variant has none (a
    variant's own, e.g. a persona, replaces it, as LLaVA's conversation code does). It enters
    the cache key as the rendered messages' system text; a model and its `base` must agree."""
    image_preprocess: Literal["processor", "pad_square", "pad_square_grey"] = "processor"
    """How images reach the model's processor. `processor`: as they are, so the checkpoint's
    processor resizes (LLaVA-1.5's crops non-square images to a centred square); `pad_square`:
    first padded to a centred square with the processor's mean colour, as the original LLaVA-1.5
    evaluation code did; `pad_square_grey`: the same, but a greyscale (`L`) file is padded with
    one grey, `int(255 * mean(image_mean))` (114 for CLIP), as LLaVA-Med's `process_images` pads
    it before converting to RGB. An `openai` endpoint pads the image bytes it sends, with CLIP's
    mean colour (the server's processor is out of reach). Set it to what the model's own
    evaluation used; part of the cache key unless `processor`."""

    image_input: ImageInputSpec | None = Field(default=None, exclude_if=_absent)
    """The model's input image geometry, where its `family`'s documented one (LLaVA 336-px
    crop or pad, LLaVA-NeXT tiles, Gemma 3 896-px squash, an API's 768-px rule) is not it.
    Image variants are applied at the model's input, so this is part of their images' keys."""

    @model_validator(mode="after")
    def _backend_fields(self) -> ModelSpec:
        if self.backend == "baseline" and self.baseline is None:
            raise ValueError(
                "backend `baseline` needs `baseline: "
                "chance|majority|always_positive|always_refuse|stable_random`"
            )
        if self.backend != "baseline" and self.baseline is not None:
            raise ValueError("`baseline` is only allowed with `backend: baseline`")
        if self.backend == "openai" and self.openai is None:
            raise ValueError("backend `openai` needs an `openai:` block (base_url, model)")
        if (
            self.backend in ("hf", "vllm")
            and sum(x is not None for x in (self.repo, self.path, self.tiny)) != 1
        ):
            raise ValueError(
                f"backend `{self.backend}` needs exactly one of `repo`, `path` or `tiny`"
            )
        if self.backend != "hf" and (self.adapter is not None or self.device_map is not None):
            raise ValueError("`adapter` and `device_map` only apply to `backend: hf` models")
        if self.tiny is not None and not self.test_model:
            raise ValueError("a `tiny` model must be marked `test_model: true`")
        if self.base == self.id:
            raise ValueError("`base` names the model itself")
        if self.backend == "baseline" and (
            self.system_prompt != "template" or self.image_preprocess != "processor"
        ):
            raise ValueError(
                "`system_prompt` and `image_preprocess` only apply to models (`backend: hf`, "
                "`vllm` or `openai`)"
            )
        return self
