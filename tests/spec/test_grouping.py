"""Sample groups: bounded name patterns, and the groups data sources give their samples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medbench.data.samples import load_samples
from medbench.errors import DataError
from medbench.spec.grouping import check_pattern, group_of
from medbench.spec.loading import load_specs
from medbench.spec.task import TaskSpec

REPO = Path(__file__).resolve().parents[2]
KERMANY = r"^(person\d+|(?:NORMAL2-)?IM-\d+)"


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        # the full Kermany test set's names (chest_xray/test/{NORMAL,PNEUMONIA})
        ("person100_bacteria_475", "person100"),
        ("person1_virus_6", "person1"),
        ("IM-0001-0001", "IM-0001"),
        ("NORMAL2-IM-0007-0001", "NORMAL2-IM-0007"),
        # and the bundled sample's
        ("person1035_virus_1729", "person1035"),
        ("IM-0656-0001-0001", "IM-0656"),
    ],
)
def test_group_of_names_the_kermany_patient(name: str, patient: str) -> None:
    assert group_of(check_pattern(KERMANY), name) == patient


def test_group_of_without_a_capturing_group_is_the_whole_match() -> None:
    assert group_of(check_pattern(r"^[a-z]+\d+"), "lungaca12_rot90") == "lungaca12"
    assert group_of(check_pattern(r"^[a-z]+\d+"), "_x") is None


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"^((?:\w+)+)_", "a repeated part must not itself repeat or alternate"),
        (r"^(a|ab)*$", "a repeated part must not itself repeat or alternate"),
        (r"^(?>(\d+)*)", "a repeated part must not itself repeat or alternate"),
        (r"^(\w)\1", "back-references are not allowed"),
        (r"^(a)(b)", "the pattern has 2 capturing groups, at most 1"),
        ("^[a", "not a valid regular expression: unterminated character set at position 1"),
        ("a" * 201, "the pattern has 201 characters, at most 200"),
    ],
)
def test_check_pattern_refuses_patterns_that_could_backtrack_or_mean_two_things(
    pattern: str, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        check_pattern(pattern)


def test_shipped_pneumonia_sample_gives_each_image_its_patient() -> None:
    specs = load_specs(REPO / "specs")
    samples = load_samples(specs.tasks["pneumonia_cxr"], "sample", REPO, hasher=lambda p: "0")
    groups = {s.id: s.group for s in samples}
    assert groups["pneumonia/person1035_virus_1729"] == "person1035"
    assert groups["normal/NORMAL2-IM-0429-0001"] == "NORMAL2-IM-0429"
    # the sample README: every image is from a different patient
    assert len(set(groups.values())) == len(samples) == 32


def _task(source: dict[str, object]) -> TaskSpec:
    return TaskSpec.model_validate(
        {
            "schema_version": 1,
            "kind": "task",
            "id": "cxr",
            "title": "t",
            "modality": "chest X-ray",
            "difficulty": 1,
            "question": "q?",
            "finding": "pneumonia",
            "labels": [
                {"id": "pneumonia", "name": "pneumonia", "positive": True},
                {"id": "normal", "name": "normal"},
            ],
            "data": {"sample": source},
        }
    )


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff")


def test_load_samples_rejects_a_name_the_pattern_does_not_match(tmp_path: Path) -> None:
    _image(tmp_path / "data" / "d" / "pneumonia" / "person3_virus_9.jpeg")
    _image(tmp_path / "data" / "d" / "normal" / "scan-17.jpeg")
    task = _task({"format": "imagefolder", "path": "data/d", "group": {"pattern": KERMANY}})
    expected = (
        f"{tmp_path / 'data' / 'd' / 'normal' / 'scan-17.jpeg'}: the file name 'scan-17' does "
        f"not match the source's group pattern {KERMANY!r}. Fix the pattern so that every image "
        "has a group."
    )
    with pytest.raises(DataError, match=f"^{re.escape(expected)}$"):
        load_samples(task, "sample", tmp_path, hasher=lambda p: "0")


def test_load_samples_reads_groups_from_a_csv_column(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        _image(tmp_path / "data" / "m" / name)
    (tmp_path / "data" / "m" / "manifest.csv").write_text(
        "path,label,lesion\na.png,pneumonia,L1\nb.png,normal,L1\nc.png,normal,L2\n"
    )
    source = {"format": "csv", "path": "data/m/manifest.csv", "group": {"column": "lesion"}}
    samples = load_samples(_task(source), "sample", tmp_path, hasher=lambda p: "0")
    assert [(s.id, s.group) for s in samples] == [("a", "L1"), ("b", "L1"), ("c", "L2")]


def test_load_samples_rejects_a_manifest_without_the_group_column(tmp_path: Path) -> None:
    _image(tmp_path / "data" / "m" / "a.png")
    (tmp_path / "data" / "m" / "manifest.csv").write_text("path,label\na.png,normal\n")
    source = {"format": "csv", "path": "data/m/manifest.csv", "group": {"column": "lesion"}}
    expected = f"{tmp_path / 'data' / 'm' / 'manifest.csv'}: manifest lacks column(s) lesion."
    with pytest.raises(DataError, match=f"^{re.escape(expected)}$"):
        load_samples(_task(source), "sample", tmp_path, hasher=lambda p: "0")


def test_load_samples_without_a_group_leaves_samples_ungrouped(tmp_path: Path) -> None:
    _image(tmp_path / "data" / "d" / "normal" / "scan-17.jpeg")
    _image(tmp_path / "data" / "d" / "pneumonia" / "scan-18.jpeg")
    samples = load_samples(_task({"format": "imagefolder", "path": "data/d"}), "sample", tmp_path)
    assert [s.group for s in samples] == [None, None]
