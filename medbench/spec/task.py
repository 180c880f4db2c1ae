"""Task specs: the question, the labels and the data sources of one classification task."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from medbench.spec.common import REPO_PATTERN, Id, LabelName, Revision, Text, VisibleText, _Spec
from medbench.spec.grouping import MAX_PATTERN, check_pattern

Column = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ .-]*$", max_length=64)]
"""A column of a dataset table, by name (data, never code)."""
TABLE_FORMATS = ("hf", "parquet")
"""Data source formats read as tables of rows, images held as bytes in a column."""


class LabelSpec(_Spec):
    """One class of a task."""

    id: Id
    """Stable identifier of the class, as in the dataset folder names."""
    name: LabelName
    """Display name shown to the model in prompts, e.g. `no tumor`."""
    aliases: tuple[LabelName, ...] = ()
    """Extra words the answer parser accepts for this class."""
    positive: StrictBool = False
    """True for a class that counts as the finding being present (yes/no prompts)."""
    signs: tuple[VisibleText, ...] = ()
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
    by: Literal["content"] | None = None
    """`content`: group the evaluated images by what they show, not by name: images that are
    rotations by multiples of 90 degrees or flips of one another (after re-encoding) share a
    group, found by a perceptual hash (`medbench.data.contentgroups`), e.g. LC25000's
    augmented copies of one original. Computed when the samples are loaded."""

    @field_validator("pattern")
    @classmethod
    def _bounded(cls, value: str | None) -> str | None:
        if value is not None:
            check_pattern(value)
        return value

    @model_validator(mode="after")
    def _one_way(self) -> GroupSpec:
        if [self.pattern, self.column, self.by].count(None) != 2:
            raise ValueError("a group needs exactly one of `pattern`, `column` or `by`")
        return self

    def describe(self) -> str:
        """How the groups are read, in words (stored in records)."""
        if self.by == "content":
            return "content: rotations and flips of one image"
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
