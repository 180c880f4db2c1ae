"""The README's dataset examples: each is a valid source of the shipped task its comment names,
and reads samples from files that exist (the bundled sample) or that the test makes where the
example names a hypothetical `${MEDBENCH_DATA}` path or a Hub dataset."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ruamel.yaml import YAML

from medbench.data.samples import load_samples
from medbench.spec.loading import load_specs
from medbench.spec.task import DataSourceSpec, TaskSpec
from tests.spec_tree import REPO, full_data_tree

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
Example = tuple[str, str, dict[str, Any], str | None]
"""(task id, source name, source as written, the block's `answer_type` if it gives one)."""


def dataset_examples() -> list[Example]:
    """Every source the README's Datasets section shows, with the task its comment names."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Datasets") : text.index("**Prompt family**")]
    found: list[Example] = []
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        for chunk in block.strip().split("\n\n"):
            named = re.match(r"# ([a-z0-9_]+)\b", chunk)
            assert named is not None, f"README example without its task's name: {chunk[:60]}"
            data = YAML(typ="safe").load(chunk)
            answer_type = data.pop("answer_type", None)
            sources = data.get("data", data)
            found += [(named[1], name, source, answer_type) for name, source in sources.items()]
    return found


EXAMPLES = dataset_examples()


def test_readme_dataset_examples_show_each_way_to_point_at_images() -> None:
    kinds = {(s["format"], "repo" in s) for _, _, s, _ in EXAMPLES}
    assert kinds == {
        ("imagefolder", False),
        ("csv", False),
        ("parquet", False),
        ("hf", True),
        ("hf", False),
    }


def _with_source(task: TaskSpec, name: str, source: dict[str, Any]) -> TaskSpec:
    """The shipped task with `source` as its only data source, validated as a spec is."""
    implied = {"labels"} if task.answer_type != "label" else set()
    fields = task.model_dump(mode="json", exclude={"data", *implied})
    return TaskSpec.model_validate({**fields, "data": {name: source}})


def _table_of_sample(task: TaskSpec) -> pa.Table:
    """The rows of the task's bundled sample table, standing in for the dataset it mirrors."""
    sample = task.data["sample"]
    assert sample.path is not None
    return pq.read_table(REPO / sample.path)


def _as_dataset(table: pa.Table, image_column: str) -> Any:
    import datasets

    features = {
        name: datasets.Image() if name == image_column else datasets.Value("string")
        for name in table.schema.names
    }
    return datasets.Dataset.from_list(table.to_pylist(), features=datasets.Features(features))


def _xray_table(source: DataSourceSpec) -> pa.Table:
    """The bundled chest X-rays as a table with the columns `source` names (raw labels)."""
    assert source.image_column and source.label_column
    raw = {label: name for name, label in source.label_map.items()}
    rows = []
    for path in sorted((REPO / "data" / "sample" / "pneumonia_cxr").glob("*/*.jpg")):
        row: dict[str, Any] = {
            source.image_column: {"bytes": path.read_bytes(), "path": path.name},
            source.label_column: raw.get(path.parent.name, path.parent.name),
        }
        if source.id_column:
            row[source.id_column] = f"{path.parent.name}/{path.stem}"
        if source.group is not None and source.group.column:
            row[source.group.column] = path.stem[:6]
        rows.append(row)
    rows.append({**rows[0], source.label_column: "UNREADABLE"})  # skipped: `unlabelled: skip`
    if source.id_column:
        rows[-1][source.id_column] = "unlabelled"
    types = {name: IMAGE if name == source.image_column else pa.string() for name in rows[0]}
    return pa.Table.from_pylist(rows, schema=pa.schema(list(types.items())))


def _make_data(
    shipped: TaskSpec, source: DataSourceSpec, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the example reads that is not in the repository: a `${MEDBENCH_DATA}` folder or
    file, or a Hub dataset (its branch in a local cache), its rows those of the shipped task's
    bundled sample, which is laid out like the dataset."""
    if source.repo is not None:
        import datasets
        from huggingface_hub import constants

        refs = data / "hub" / f"datasets--{source.repo.replace('/', '--')}" / "refs"
        refs.mkdir(parents=True)
        assert source.revision is not None
        (refs / source.revision).write_text("e" * 40)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(data / "hub"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        hub = _as_dataset(_table_of_sample(shipped), source.image_column or "")

        def load_dataset(repo: str, revision: str, split: str) -> Any:
            assert (repo, revision, split) == (source.repo, "e" * 40, source.split)
            return hub

        monkeypatch.setattr(datasets, "load_dataset", load_dataset)
        return
    assert source.path is not None
    if not source.path.startswith("${MEDBENCH_DATA}"):
        return  # a file of the repository
    target = data / source.path.removeprefix("${MEDBENCH_DATA}/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.format == "imagefolder":
        full_data_tree(data)
    elif source.format == "parquet":
        pq.write_table(_xray_table(source), target)
    elif source.format == "hf":
        import datasets

        table = _as_dataset(_table_of_sample(shipped), source.image_column or "")
        datasets.DatasetDict({source.split or "test": table}).save_to_disk(str(target))


@pytest.mark.parametrize(
    ("task_id", "name", "source", "answer_type"),
    EXAMPLES,
    ids=[f"{t}-{s['format']}{'-hub' if 'repo' in s else ''}" for t, _, s, _ in EXAMPLES],
)
def test_readme_dataset_example_reads_as_a_source_of_its_task(
    task_id: str,
    name: str,
    source: dict[str, Any],
    answer_type: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDBENCH_DATA", str(tmp_path / "data"))
    shipped = load_specs(REPO / "specs").tasks[task_id]
    assert answer_type in (None, shipped.answer_type)
    task = _with_source(shipped, name, source)
    _make_data(shipped, task.data[name], tmp_path / "data", monkeypatch)  # type: ignore[index]
    samples = load_samples(task, name, REPO, hasher=lambda _: "")
    assert len(samples) >= 2
    assert {s.label for s in samples} <= {label.id for label in task.labels}
    assert "unlabelled" not in {s.id for s in samples}
    if task.per_sample:
        assert all(s.question for s in samples)
    if task.answer_type == "multiple_choice":
        assert all(len(s.options) >= 2 for s in samples)
