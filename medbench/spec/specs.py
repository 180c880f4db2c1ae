"""Spec models: what a YAML file under `specs/` may say, validated by pydantic."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from medbench.spec.grouping import MAX_PATTERN, check_pattern

SCHEMA_VERSION = 1
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
API_KEY_ENV_PATTERN = r"^(OPENAI_API_KEY|MEDBENCH_[A-Z0-9_]+_API_KEY)$"
"""The environment variables a spec may name as its API key: nothing else is ever read."""

Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=80)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
VariantRef = Annotated[
    str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$", max_length=161)
]
"""A variant of a prompt family, written `family/variant`."""
REVISION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
"""A branch or tag name (components joined by `/`, none starting with `.`) or a commit sha."""


def check_revision(value: str) -> str:
    """`value` if it is a branch, tag or commit sha; never a path (no `..`, no leading `/`)."""
    if len(value) > 200 or not REVISION_RE.match(value) or ".." in value or value.endswith(".lock"):
        raise ValueError(
            f"not a branch, tag or 40-character commit sha, got {value[:60]!r}; a revision is "
            "never a path"
        )
    return value


Revision = Annotated[str, AfterValidator(check_revision)]
REPO_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
"""A Hugging Face repository id, `owner/name`."""
Column = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ .-]*$", max_length=64)]
"""A column of a dataset table, by name (data, never code)."""
TABLE_FORMATS = ("hf", "parquet")
"""Data source formats read as tables of rows, images held as bytes in a column."""


class _Spec(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        str_strip_whitespace=True,
    )


class LabelSpec(_Spec):
    """One class of a task."""

    id: Id
    """Stable identifier of the class, as in the dataset folder names."""
    name: Text
    """Display name shown to the model in prompts, e.g. `no tumor`."""
    aliases: tuple[Text, ...] = ()
    """Extra words the answer parser accepts for this class."""
    positive: StrictBool = False
    """True for a class that counts as the finding being present (yes/no prompts)."""
    signs: tuple[Text, ...] = ()
    """Clinical signs of this class, offered by `guided` prompt variants."""


class GroupSpec(_Spec):
    """How a data source's images fall into groups (patients, source images), so that the
    bootstrap resamples whole groups."""

    pattern: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    """A regular expression searched in each file name without its suffix: its capturing
    group (or, without one, the whole match) names the image's group, e.g.
    `^(person\\d+)` for Kermany's `person100_bacteria_475.jpeg`. Every name must match."""
    column: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)
    """For csv manifests: the column naming each image's group."""

    @field_validator("pattern")
    @classmethod
    def _bounded(cls, value: str | None) -> str | None:
        if value is not None:
            check_pattern(value)
        return value

    @model_validator(mode="after")
    def _one_way(self) -> GroupSpec:
        if (self.pattern is None) == (self.column is None):
            raise ValueError("a group needs exactly one of `pattern` or `column`")
        return self

    def describe(self) -> str:
        """How the groups are read, in words (stored in records)."""
        return f"pattern {self.pattern}" if self.pattern is not None else f"column {self.column}"


class DataSourceSpec(_Spec):
    """Where a task's images live and how labels are read."""

    format: Literal["imagefolder", "csv", "parquet", "hf"]
    """`imagefolder`: `<path>/<label folder>/<image>`; `csv`: a `path,label` manifest;
    `parquet`: one parquet file, a row per sample with the image's bytes in a column; `hf`: a
    Hugging Face dataset, from the Hub (`repo`, `revision`, `split`) or saved on disk (`path`: a
    `save_to_disk` folder or a folder of parquet files)."""
    path: Text | None = None
    """Folder (imagefolder, hf on disk), manifest file (csv) or parquet file, relative to the
    repository's data root, or starting with `${MEDBENCH_DATA}`. Not with `repo`."""
    repo: str | None = Field(default=None, pattern=REPO_PATTERN, max_length=200)
    """For `hf`: the dataset's Hub repository, `owner/name` (read from the local Hugging Face
    cache; loading scripts are never run)."""
    revision: Revision | None = None
    """For `hf` with `repo`: a branch, tag or commit sha, resolved to the commit sha (recorded)."""
    split: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=64)
    """For `hf`: the split to read (needed with `repo`, and for a saved dataset of several
    splits)."""
    image_column: Column | None = None
    """For `hf` and `parquet`: the column holding each image (an `Image` feature, or bytes)."""
    label_column: Column | None = None
    """For `hf` and `parquet`: the column holding each answer: a label (mapped by `label_map`),
    `yes`/`no` for a yes/no task, or the correct option (its text or letter) for a
    multiple-choice task."""
    id_column: Column | None = None
    """For `hf` and `parquet`: the column naming each sample (unique); none: the row number."""
    question_column: Column | None = None
    """For `hf` and `parquet`: the column holding each sample's own question (closed VQA);
    templates then see it as `question` and `sample.question`."""
    options_column: Column | None = None
    """For `hf` and `parquet` multiple-choice tasks: the column holding each sample's list of
    options, offered in place of the task's labels."""
    options_columns: tuple[Column, ...] = Field(default=(), max_length=8)
    """For `hf` and `parquet` multiple-choice tasks whose data holds one option per column
    (e.g. `choice a` to `choice d`): those columns, in letter order. A leading letter that
    repeats the option's position (`A:`, `B.`) is dropped. Not with `options_column`."""
    unlabelled: Literal["error", "skip"] = "error"
    """For `hf` and `parquet`: what a row whose label no label takes is: an `error`, or left
    out (`skip`, e.g. the open questions of a VQA set whose closed ones the task asks)."""
    label_map: dict[str, Id] = {}
    """Folder or manifest label -> task label id, where the dataset names classes differently."""
    exclude: tuple[str, ...] = ()
    """Folder or manifest labels to skip (classes the task leaves out)."""
    task_column: str | None = None
    """For csv manifests of several tasks: the column naming the task (other rows are skipped)."""
    homepage: str | None = None
    """Where users download the dataset."""
    license: str | None = None
    """The dataset's licence, in words."""
    layout: str | None = None
    """The folder layout users must arrange after downloading."""
    group: GroupSpec | None = None
    """Which images belong together (one patient, one source image); none: all independent."""

    @model_validator(mode="after")
    def _group_column(self) -> DataSourceSpec:
        if (
            self.group is not None
            and self.group.column is not None
            and self.format == "imagefolder"
        ):
            raise ValueError("`group.column` needs a manifest or a table; use `group.pattern` here")
        if self.format in TABLE_FORMATS:
            return self._table_fields()
        if self.path is None:
            raise ValueError(f"`format: {self.format}` needs a `path`")
        table_only = ("repo", "revision", "split", "image_column", "label_column", "id_column")
        per_sample = ("question_column", "options_column", "options_columns")
        given = [n for n in (*table_only, *per_sample) if getattr(self, n)]
        if given:
            raise ValueError(f"`{given[0]}` needs `format: hf` or `format: parquet`")
        return self

    @property
    def has_options(self) -> bool:
        """Whether the source reads each sample's own options."""
        return self.options_column is not None or bool(self.options_columns)

    def _table_fields(self) -> DataSourceSpec:
        if self.options_column is not None and self.options_columns:
            raise ValueError("give one of `options_column` or `options_columns`, not both")
        if len(self.options_columns) == 1:
            raise ValueError("`options_columns` needs at least two columns")
        if self.image_column is None or self.label_column is None:
            raise ValueError(f"`format: {self.format}` needs `image_column` and `label_column`")
        if self.format == "parquet" or self.repo is None:
            if self.path is None or self.repo is not None:
                where = "a `path`" if self.format == "parquet" else "one of `repo` or `path`"
                raise ValueError(f"`format: {self.format}` needs {where}")
            if self.revision is not None or (self.format == "parquet" and self.split):
                raise ValueError("`revision` needs `format: hf` with a `repo`")
            return self
        if self.path is not None:
            raise ValueError("give one of `repo` or `path`, not both")
        if self.revision is None or self.split is None:
            raise ValueError("a Hub dataset (`repo`) needs a `revision` and a `split`")
        return self

    @property
    def location(self) -> str:
        """Where the data is, in words: the path, or `repo@revision:split`."""
        if self.repo is not None:
            return f"{self.repo}@{self.revision}:{self.split}"
        return self.path or ""


MAX_QUESTION = 2000
"""Characters of one sample's question (a table's, or a task's own)."""
MAX_OPTION = 300
"""Characters of one option of a multiple-choice sample."""
MAX_OPTIONS = 8
"""Options one multiple-choice sample may offer (letters A to H)."""
YES_NO_LABELS = ({"id": "yes", "name": "yes", "positive": True}, {"id": "no", "name": "no"})
"""The labels of a yes/no task, implied by `answer_type: yes_no`."""


OPTION_LETTERS = "abcdefgh"
"""The label ids of a multiple-choice task's options, by position in the data."""


def option_labels(count: int = MAX_OPTIONS) -> tuple[dict[str, str], ...]:
    """The labels of a multiple-choice task: one per option letter, by position in the data."""
    letters = OPTION_LETTERS[:count]
    return tuple({"id": letter, "name": f"option {letter.upper()}"} for letter in letters)


class TaskSpec(_Spec):
    """A closed-form classification task on medical images."""

    schema_version: Literal[1]
    kind: Literal["task"]
    id: Id
    title: Text
    description: str = ""
    modality: Text
    """Imaging modality in words, e.g. `chest X-ray`; available to templates."""
    difficulty: int = Field(ge=1, le=10)
    """Rank by difficulty, 1 = easiest."""
    question: Text
    """The diagnostic question, e.g. `Does this chest X-ray show pneumonia?`."""
    finding: Text | None = None
    """The positive finding in words, used by yes/no prompts, e.g. `pneumonia` (required when a
    yes/no prompt family is asked of the task)."""
    answer_type: Literal["label", "yes_no", "multiple_choice"] = "label"
    """`label`: one of the task's `labels`; `yes_no`: a closed yes/no question (labels `yes`,
    positive, and `no` are implied); `multiple_choice`: one of each sample's own options
    (`options_column`), the label being the correct option's letter in the data's order (labels
    `a` to `h` are implied)."""
    labels: tuple[LabelSpec, ...] = Field(min_length=2)
    """The classes (implied, and not to be written, for `yes_no` and `multiple_choice`)."""
    data: dict[Literal["sample", "full"], DataSourceSpec]

    @model_validator(mode="before")
    @classmethod
    def _implied_labels(cls, data: object) -> object:
        if not isinstance(data, dict) or data.get("answer_type") in (None, "label"):
            return data
        if "labels" in data:
            raise ValueError(
                f"`answer_type: {data['answer_type']}` implies the labels: drop `labels`"
            )
        implied = YES_NO_LABELS if data["answer_type"] == "yes_no" else option_labels()
        return {**data, "labels": implied}

    @model_validator(mode="after")
    def _labels_consistent(self) -> TaskSpec:
        ids = [label.id for label in self.labels]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate label id {dupes[0]!r}")
        names = [n.lower() for label in self.labels for n in (label.name, *label.aliases)]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise ValueError(f"label name or alias {clash[0]!r} is used by two labels")
        if self.answer_type != "multiple_choice":
            if not any(label.positive for label in self.labels):
                raise ValueError("no label has `positive: true`; mark the finding's class(es)")
            if all(label.positive for label in self.labels):
                raise ValueError("every label is positive; at least one must be negative")
        return self._per_sample_consistent()

    def _per_sample_consistent(self) -> TaskSpec:
        asked = {name: s.question_column is not None for name, s in self.data.items()}
        if len(set(asked.values())) > 1:
            raise ValueError("either every data source has a `question_column` or none has")
        for name, source in self.data.items():
            tabular = source.format in TABLE_FORMATS
            if self.answer_type == "multiple_choice" and not source.has_options:
                raise ValueError(
                    f"`answer_type: multiple_choice` needs `data.{name}.options_column` "
                    "(or `options_columns`)"
                )
            if self.answer_type != "multiple_choice" and source.has_options:
                raise ValueError(
                    f"`data.{name}` reads options, which need `answer_type: multiple_choice`"
                )
            if self.answer_type != "label" and not tabular:
                raise ValueError(f"`answer_type: {self.answer_type}` needs `hf` or `parquet` data")
        return self

    @property
    def per_sample(self) -> bool:
        """Whether each sample brings its own question or options (closed VQA)."""
        return self.answer_type == "multiple_choice" or any(
            s.question_column is not None for s in self.data.values()
        )


VariantKind = Literal[
    "wording",
    "guided",
    "persona",
    "format",
    "terse",
    "option_order",
    "lettered",
    "reasoning",
]


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
    variants: tuple[VariantSpec, ...] = Field(min_length=2)

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


class GenerationSpec(_Spec):
    """Decoding parameters: part of the cache key."""

    max_new_tokens: int = Field(default=128, ge=1, le=8192)
    do_sample: StrictBool = False
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    """Sampling seed; only meaningful with `do_sample: true`."""


class TinySpec(_Spec):
    """A small local model medbench builds on first use (tests and the quickstart)."""

    arch: Literal["llava", "llava_next", "gemma3", "text"]
    seed: int = 0
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


def _absent(value: object) -> bool:
    """Fields added after records were published are left out of dumps while unset, so that
    the dump (records, remembered batch sizes) of a model not using them stays as it was."""
    return value is None


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


class ModelSpec(_Spec):
    """A model to evaluate, and how to load it."""

    schema_version: Literal[1]
    kind: Literal["model"]
    id: Id
    title: Text
    description: str = ""
    backend: Literal["hf", "baseline", "openai"]
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
    baseline: Literal["chance", "majority", "always_positive"] | None = None
    tiny: TinySpec | None = None
    openai: OpenAISpec | None = None
    test_model: StrictBool = False
    """Random or demonstration weights: never published as a real result."""
    text_only: StrictBool = False
    """A text-only language model (a diagnoser in the describe pipeline)."""
    system_prompt: Literal["template", "fold_into_user", "none"] = "template"
    """Where a variant's system prompt goes (`hf` backend). `template`: a system turn, rendered
    however the model's chat template renders one (an error if the template refuses or drops
    it); `fold_into_user`: the system text, a blank line, then the user text, in the user turn;
    `none`: dropped. A model and its `base` must use the same handling, and `template` only
    when both have the same `family` (the same chat template); part of the cache key."""
    image_preprocess: Literal["processor", "pad_square"] = "processor"
    """How images reach the model's processor (`hf` backend). `processor`: as they are, so the
    checkpoint's processor resizes (LLaVA-1.5's crops non-square images to a centred square);
    `pad_square`: first padded to a centred square with the processor's mean colour, as the
    original LLaVA-1.5 and LLaVA-Med evaluation code did. Set it to what the model's own
    evaluation used; part of the cache key when `pad_square`."""

    @model_validator(mode="after")
    def _backend_fields(self) -> ModelSpec:
        if self.backend == "baseline" and self.baseline is None:
            raise ValueError("backend `baseline` needs `baseline: chance|majority|always_positive`")
        if self.backend != "baseline" and self.baseline is not None:
            raise ValueError("`baseline` is only allowed with `backend: baseline`")
        if self.backend == "openai" and self.openai is None:
            raise ValueError("backend `openai` needs an `openai:` block (base_url, model)")
        if (
            self.backend == "hf"
            and sum(x is not None for x in (self.repo, self.path, self.tiny)) != 1
        ):
            raise ValueError("backend `hf` needs exactly one of `repo`, `path` or `tiny`")
        if self.backend != "hf" and (self.adapter is not None or self.device_map is not None):
            raise ValueError("`adapter` and `device_map` only apply to `backend: hf` models")
        if self.tiny is not None and not self.test_model:
            raise ValueError("a `tiny` model must be marked `test_model: true`")
        if self.base == self.id:
            raise ValueError("`base` names the model itself")
        if self.backend != "hf" and (
            self.system_prompt != "template" or self.image_preprocess != "processor"
        ):
            raise ValueError(
                "`system_prompt` and `image_preprocess` only apply to `backend: hf` models"
            )
        return self


class DescribeStage(_Spec):
    """VLM writes a description; text-only diagnosers answer from the description alone."""

    family: Id
    """A prompt family with `answer: text`."""
    diagnosers: tuple[Id, ...] = Field(min_length=1)
    diagnose_families: tuple[Id, ...] = Field(min_length=1)


class ProbeStage(_Spec):
    """Linear probes on the models' vision-encoder embeddings."""

    embeddings: tuple[Literal["vision", "projected"], ...] = ("vision", "projected")
    folds: int | None = Field(default=None, ge=2, le=20)
    seed: int = 0


class TaskSubset(_Spec):
    """A fixed subset of one task's images that a suite evaluates, and why."""

    per_class: StrictInt = Field(ge=1, le=100000)
    """Images per class, drawn with the suite's `seed` (replaces `limit_per_class` here)."""
    reason: Text
    """Why this task is evaluated on a subset (shown by `medbench plan`)."""


class NoiseFloorSpec(_Spec):
    """Measure the numerical noise floor of fragility: each model answers its reference
    variants a second time, for a seeded subset of images, in other batches."""

    images_per_task: StrictInt = Field(ge=1, le=100_000)
    """How many images of each task (a seeded subset, the same for every model) to replicate."""


class LikelihoodStage(_Spec):
    """Option log-likelihoods: which offered option does the model itself find most likely?"""

    answer: Literal["total", "mean"] = "total"
    """The normalisation whose argmax is the likelihood answer on the ladder: `total` (the sum
    of the option's token log-probabilities) or `mean` (per token). Both are reported."""


ORIGINAL_IMAGE = "original"
"""The image-variant id of the untouched image (never an `image_variants` id)."""


def _not_original(value: str) -> str:
    if value == ORIGINAL_IMAGE:
        raise ValueError(f"`{ORIGINAL_IMAGE}` names the untouched image; choose another id")
    return value


ImageVariantId = Annotated[Id, AfterValidator(_not_original)]
Seed = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]


class _ImageVariant(_Spec):
    id: ImageVariantId
    """Names the variant in answers and tables; unique in the suite, never `original`."""


class JpegVariant(_ImageVariant):
    """Re-encode as JPEG at a quality (compression artefacts)."""

    transform: Literal["jpeg"]
    quality: StrictInt = Field(ge=1, le=95)
    """JPEG quality, 1 (worst) to 95."""


class ResizeVariant(_ImageVariant):
    """Scale down, then back up to the original size (lost resolution)."""

    transform: Literal["resize"]
    scale: StrictFloat = Field(ge=0.05, lt=1.0)
    """Size of the intermediate image as a fraction of each side."""
    resample: Literal["nearest", "bilinear", "bicubic", "lanczos"] = "bicubic"
    """Resampling filter, both ways."""


class RotateVariant(_ImageVariant):
    """Rotate about the centre, keeping the size; the uncovered corners are black."""

    transform: Literal["rotate"]
    degrees: StrictFloat = Field(ge=-180.0, le=180.0)
    """Angle, counter-clockwise."""


class FlipVariant(_ImageVariant):
    """Mirror the image."""

    transform: Literal["flip"]
    axis: Literal["horizontal", "vertical"] = "horizontal"
    """`horizontal`: left and right swap; `vertical`: top and bottom swap."""


class CropVariant(_ImageVariant):
    """Keep a centred part of the image (at its own size: the model's processor resizes)."""

    transform: Literal["crop"]
    fraction: StrictFloat = Field(ge=0.1, lt=1.0)
    """Fraction of the width and of the height kept."""


class ContrastVariant(_ImageVariant):
    """Scale the contrast about the mean grey (Pillow's `ImageEnhance.Contrast`)."""

    transform: Literal["contrast"]
    factor: StrictFloat = Field(ge=0.0, le=4.0)
    """1 keeps the image; below 1 flattens it, above 1 stretches it."""


class BrightnessVariant(_ImageVariant):
    """Scale the brightness (Pillow's `ImageEnhance.Brightness`)."""

    transform: Literal["brightness"]
    factor: StrictFloat = Field(ge=0.0, le=4.0)
    """1 keeps the image; below 1 darkens it, above 1 brightens it."""


class GammaVariant(_ImageVariant):
    """Apply a gamma curve: `255 * (v / 255) ** gamma` per channel."""

    transform: Literal["gamma"]
    gamma: StrictFloat = Field(ge=0.1, le=10.0)
    """Below 1 brightens the shadows, above 1 darkens them."""


class GaussianNoiseVariant(_ImageVariant):
    """Add seeded Gaussian noise to every pixel."""

    transform: Literal["gaussian_noise"]
    sigma: StrictFloat = Field(gt=0.0, le=128.0)
    """Standard deviation, in grey levels of 0 to 255."""
    seed: Seed | None = None
    """Noise seed (mixed with each image's hash); left out, the suite's `seed`."""


class BlurVariant(_ImageVariant):
    """Gaussian blur."""

    transform: Literal["blur"]
    radius: StrictFloat = Field(gt=0.0, le=50.0)
    """Blur radius in pixels."""


class NoImageVariant(_ImageVariant):
    """Ablation: the same prompt with no image at all."""

    transform: Literal["no_image"]


class BlankVariant(_ImageVariant):
    """Ablation: a uniform image of the original's size and mean colour."""

    transform: Literal["blank"]


class MismatchedVariant(_ImageVariant):
    """Ablation: the image of another sample of the same task, of another class (a seeded
    pairing; never an image of the sample's own class)."""

    transform: Literal["mismatched"]
    seed: Seed | None = None
    """Pairing seed; left out, the suite's `seed`."""


class NoiseVariant(_ImageVariant):
    """Ablation: pure uniform noise of the original's size, seeded per image."""

    transform: Literal["noise"]
    seed: Seed | None = None
    """Noise seed (mixed with each image's hash); left out, the suite's `seed`."""


ImageVariantSpec = Annotated[
    JpegVariant
    | ResizeVariant
    | RotateVariant
    | FlipVariant
    | CropVariant
    | ContrastVariant
    | BrightnessVariant
    | GammaVariant
    | GaussianNoiseVariant
    | BlurVariant
    | NoImageVariant
    | BlankVariant
    | MismatchedVariant
    | NoiseVariant,
    Field(discriminator="transform"),
]
"""One image variant of a suite: a transform of the image, or an ablation, by `transform`."""
IMAGE_TRANSFORMS = (
    *("jpeg", "resize", "rotate", "flip", "crop", "contrast", "brightness", "gamma"),
    *("gaussian_noise", "blur"),
)
"""Image variants that change the image's pixels."""
IMAGE_ABLATIONS = ("no_image", "blank", "mismatched", "noise")
"""Image variants that take the image's content away."""


class SuiteSpec(_Spec):
    """Which tasks x prompt families x models to run, on which data."""

    schema_version: Literal[1]
    kind: Literal["suite"]
    id: Id
    title: Text
    description: str = ""
    data: Literal["sample", "full"]
    tasks: tuple[Id, ...] = Field(min_length=1)
    prompt_families: tuple[Id, ...] = Field(min_length=1)
    models: tuple[Id, ...] = Field(min_length=1)
    limit_per_class: int | None = Field(default=None, ge=1)
    """Subsample at most this many images per class (seeded)."""
    seed: int = 0
    subsets: dict[Id, TaskSubset] = {}
    """Tasks evaluated on a fixed, stated subset of their images, by task id."""
    describe: DescribeStage | None = None
    probe: ProbeStage | None = None
    noise_floor: NoiseFloorSpec | None = None
    """Replicate the reference variants to measure how often answers change with batching alone."""
    likelihood: LikelihoodStage | None = None
    """Score each offered option's log-likelihood (closed families, hf models)."""
    image_variants: tuple[ImageVariantSpec, ...] = Field(default=(), max_length=64)
    """Transformed images and image ablations, each asked with the same prompts as the
    original image (see `image_variant_prompts`)."""
    image_variant_prompts: Literal["reference", "all"] = "reference"
    """Which variants of each (closed) prompt family the image variants are asked with:
    each family's `reference` variant (the default, to bound the cost) or all of them."""

    @model_validator(mode="after")
    def _no_repeats(self) -> SuiteSpec:
        for name in ("tasks", "prompt_families", "models"):
            items: tuple[str, ...] = getattr(self, name)
            dupes = sorted({i for i in items if items.count(i) > 1})
            if dupes:
                raise ValueError(f"{name} lists {dupes[0]!r} twice")
        ids = [v.id for v in self.image_variants]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"image_variants lists {dupes[0]!r} twice")
        unknown = sorted(set(self.subsets) - set(self.tasks))
        if unknown:
            raise ValueError(
                f"subsets names {unknown[0]!r}, which is not among the suite's tasks "
                f"({', '.join(self.tasks)})"
            )
        return self

    def limit_per_class_of(self, task: str) -> int | None:
        """Images per class evaluated for `task`: its subset's, else the suite's limit."""
        subset = self.subsets.get(task)
        return subset.per_class if subset is not None else self.limit_per_class


Spec = Annotated[TaskSpec | PromptFamilySpec | ModelSpec | SuiteSpec, Field(discriminator="kind")]
SPEC_KINDS: dict[str, type[_Spec]] = {
    "task": TaskSpec,
    "prompt_family": PromptFamilySpec,
    "model": ModelSpec,
    "suite": SuiteSpec,
}
