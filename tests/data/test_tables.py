"""Table data sources (parquet, Hugging Face datasets) and per-sample closed-VQA questions."""

from __future__ import annotations

import hashlib
import json
import re
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medbench.data.tablerows import ColumnError
from medbench.errors import DataError, Issue
from medbench.run.plan import Plan, make_plan
from medbench.spec.loading import load_specs
from tests.image_bombs import png_declaring, tiff_declaring, zero_bmp
from tests.spec_tree import make_project, vqa_project

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path / "home"))


def _images(project: Path) -> list[tuple[Path, str]]:
    base = project / "data" / "sample" / "pneumonia_cxr"
    return [(p, p.parent.name) for p in sorted(base.glob("*/*.jpg"))]


def _rows(project: Path) -> list[dict[str, Any]]:
    return [
        {
            "image": {"bytes": path.read_bytes(), "path": path.name},
            "label": {"pneumonia": "PNEUMONIA", "normal": "NORMAL"}[label],
            "name": path.relative_to(path.parent.parent).with_suffix("").as_posix(),
            "patient": path.stem[:6],
        }
        for path, label in _images(project)
    ]


def _schema() -> pa.Schema:
    return pa.schema(
        [("image", IMAGE), ("label", pa.string()), ("name", pa.string()), ("patient", pa.string())]
    )


def _table_task(project: Path, source: str) -> None:
    """The shipped pneumonia task with its `sample` source replaced by `source`."""
    path = project / "specs" / "tasks" / "pneumonia_cxr.yaml"
    text = path.read_text()
    head, rest = text.split("  sample:\n", 1)
    tail = rest[rest.index("  full:\n") :]
    body = "".join(f"    {line}\n" for line in source.splitlines())
    path.write_text(f"{head}  sample:\n{body}{tail}")


MAPPED = """image_column: image
label_column: label
id_column: name
label_map: {PNEUMONIA: pneumonia, NORMAL: normal}
group: {column: patient}"""


def _plan(project: Path) -> Plan:
    return make_plan(load_specs(project / "specs"), "t", models_dir=project / "models")


def _keys(plan: Plan) -> dict[tuple[str, str, str, str], str]:
    return {(j.model, j.family, j.variant, j.sample): j.key for j in plan.jobs}


def test_tables_parquet_source_gives_the_image_folder_cache_keys(tmp_path: Path) -> None:
    project = make_project(tmp_path, limit_per_class=None)
    folder_keys = _keys(_plan(project))
    pq.write_table(
        pa.Table.from_pylist(_rows(project), schema=_schema()), project / "data" / "t.parquet"
    )
    _table_task(project, f"format: parquet\npath: data/t.parquet\n{MAPPED}")
    plan = _plan(project)
    assert _keys(plan) == folder_keys and len(folder_keys) > 0
    samples = plan.samples["pneumonia_cxr"]
    assert {s.group for s in samples} == {r["patient"] for r in _rows(project)}
    assert all(s.path.name == f"{s.sha256}.jpg" for s in samples)  # stored by content


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet_folder"])
def test_tables_hf_local_dataset_gives_the_image_folder_cache_keys(
    tmp_path: Path, layout: str
) -> None:
    import datasets

    project = make_project(tmp_path, limit_per_class=None)
    folder_keys = _keys(_plan(project))
    rows = _rows(project)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=["NORMAL", "PNEUMONIA"]),
            "name": datasets.Value("string"),
            "patient": datasets.Value("string"),
        }
    )
    as_class = [{**r, "label": ["NORMAL", "PNEUMONIA"].index(r["label"])} for r in rows]
    dataset = datasets.Dataset.from_list(as_class, features=features)
    target = project / "data" / "ds"
    if layout == "save_to_disk":
        datasets.DatasetDict({"test": dataset}).save_to_disk(str(target))
        extra = "split: test\n"
    else:
        target.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=_schema()), target / "test-0.parquet")
        extra = ""
    _table_task(project, f"format: hf\npath: data/ds\n{extra}{MAPPED}")
    assert _keys(_plan(project)) == folder_keys


def _issues(project: Path) -> list[str]:
    from medbench.data.checks import check_data

    issues: list[Issue] = check_data(load_specs(project / "specs"), None, ["pneumonia_cxr"])
    return [str(i).replace(str(project) + "/", "") for i in issues]


@pytest.mark.parametrize(
    ("change", "expected"),  # (file, "field: problem")
    [
        (
            {"label_column": "diagnosis"},
            (
                "specs/tasks/pneumonia_cxr.yaml:",
                "data.sample.label_column: data/t.parquet: no column 'diagnosis'",
            ),
        ),
        (
            {"image_column": "name"},
            (
                "specs/tasks/pneumonia_cxr.yaml:",
                "data.sample.image_column: "
                "data/t.parquet: column 'name' holds string, expected an image",
            ),
        ),
        (
            {"label_map": "{PNEUMONIA: pneumonia}"},
            (
                "specs/tasks/pneumonia_cxr.yaml:",
                "data.sample.label_column: "
                "data/t.parquet: row 0: label 'NORMAL' is not a label of task 'pneumonia_cxr'",
            ),
        ),
    ],
    ids=["missing-column", "wrong-type", "unmapped-label"],
)
def test_tables_validate_locates_each_problem_at_its_field(
    tmp_path: Path, change: dict[str, str], expected: tuple[str, str]
) -> None:
    project = make_project(tmp_path)
    pq.write_table(
        pa.Table.from_pylist(_rows(project), schema=_schema()), project / "data" / "t.parquet"
    )
    fields = dict(line.split(": ", 1) for line in MAPPED.splitlines()) | change
    _table_task(
        project,
        "format: parquet\npath: data/t.parquet\n"
        + "\n".join(f"{k}: {v}" for k, v in fields.items()),
    )
    found = _issues(project)
    where, message = expected
    assert len(found) == 1, found
    assert found[0].startswith(where) and f" {message}" in found[0], found


def test_tables_path_outside_the_data_root_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    outside = tmp_path / "elsewhere.parquet"
    pq.write_table(pa.Table.from_pylist(_rows(project), schema=_schema()), outside)
    (project / "data" / "link.parquet").symlink_to(outside)
    _table_task(project, f"format: parquet\npath: data/link.parquet\n{MAPPED}")
    from medbench.errors import SpecError

    with pytest.raises(SpecError, match=r"data.sample.path: 'data/link.parquet' resolves outside"):
        load_specs(project / "specs")


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face hub cache, the hub offline."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def _dataset_ref(cache: Path, repo: str, revision: str, text: str) -> Path:
    refs = cache / f"datasets--{repo.replace('/', '--')}" / "refs"
    (refs / revision).parent.mkdir(parents=True, exist_ok=True)
    (refs / revision).write_text(text)
    return refs


def test_tables_hub_branch_offline_without_local_copy_says_to_pin_a_sha(hub_cache: Path) -> None:
    from medbench.data.tables import resolve_dataset_revision

    sha = "a" * 40
    assert resolve_dataset_revision("org/ds", sha.upper()) == sha
    _dataset_ref(hub_cache, "org/other", "main", "b" * 40)  # another dataset's ref
    with pytest.raises(DataError) as caught:
        resolve_dataset_revision("org/ds", "main")
    assert str(caught.value) == (
        "org/ds@main: cannot resolve the revision to a commit sha offline (no local copy). "
        "Download the dataset first, or pin `revision` to the 40-character commit sha."
    )


def test_tables_hub_branch_offline_reads_the_local_cache_ref(hub_cache: Path) -> None:
    from medbench.data.tables import resolve_dataset_revision

    _dataset_ref(hub_cache, "org/ds", "main", "c" * 40 + "\n")
    _dataset_ref(hub_cache, "org/ds", "release/v1", "d" * 40)
    (hub_cache / "models--org--ds" / "refs").mkdir(parents=True)
    (hub_cache / "models--org--ds" / "refs" / "main").write_text("e" * 40)  # a model's, not ours
    assert resolve_dataset_revision("org/ds", "main") == "c" * 40
    assert resolve_dataset_revision("org/ds", "release/v1") == "d" * 40


def test_tables_hub_ref_outside_the_cache_refs_is_not_followed(
    hub_cache: Path, tmp_path: Path
) -> None:
    from medbench.data.tables import resolve_dataset_revision

    refs = _dataset_ref(hub_cache, "org/ds", "other", "c" * 40)
    outside = tmp_path / "planted"
    outside.write_text("f" * 40)
    (refs / "main").symlink_to(outside)
    with pytest.raises(DataError, match=r"^org/ds@main: cannot resolve the revision .* offline"):
        resolve_dataset_revision("org/ds", "main")


def test_tables_hub_ref_without_a_sha_is_refused(hub_cache: Path) -> None:
    from medbench.data.tables import resolve_dataset_revision

    refs = _dataset_ref(hub_cache, "org/ds", "main", "not a commit")
    with pytest.raises(DataError) as caught:
        resolve_dataset_revision("org/ds", "main")
    assert str(caught.value) == (
        f"org/ds@main: the Hugging Face cache's ref {refs / 'main'} does not hold a commit sha."
    )


def test_tables_hub_dataset_sha_is_planned_scored_recorded_and_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_cache: Path
) -> None:
    import datasets
    from typer.testing import CliRunner

    from medbench.cli import app
    from medbench.publish.reading import read_record
    from medbench.publish.site.pages import _provenance
    from medbench.publish.verify import verify_records
    from medbench.score.answers import make_layout

    project = make_project(tmp_path)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.Value("string"),
            "name": datasets.Value("string"),
            "patient": datasets.Value("string"),
        }
    )
    hub = datasets.Dataset.from_list(_rows(project), features=features)
    asked: list[tuple[str, str | None, str | None]] = []

    def load_dataset(repo: str, revision: str | None = None, split: str | None = None) -> Any:
        asked.append((repo, revision, split))
        return hub

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    sha, later = "c" * 40, "d" * 40
    refs = _dataset_ref(hub_cache, "org/cxr", "main", sha)
    _table_task(project, f"format: hf\nrepo: org/cxr\nrevision: main\nsplit: test\n{MAPPED}")
    plan = _plan(project)
    assert plan.dataset_revisions == {"pneumonia_cxr": sha}
    assert set(asked) == {("org/cxr", sha, "test")}
    specs = load_specs(project / "specs")
    assert make_layout(specs, plan).to_json()["dataset_revisions"] == {"pneumonia_cxr": sha}

    monkeypatch.chdir(project)
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "answers.sqlite"))
    done = CliRunner().invoke(app, ["run", "specs", "--suite", "t"])
    assert done.exit_code == 0, done.output
    layout = json.loads(Path("results/t/layout.json").read_text())
    assert layout["dataset_revisions"] == {"pneumonia_cxr": sha}
    records = Path("results/t/leaderboard")
    raw = json.loads((records / "t" / "baseline-chance.json").read_text())
    assert raw["dataset"]["revisions"] == {"pneumonia_cxr": sha}
    assert "dataset_revisions" not in raw["layout"]  # recorded once, with the dataset
    record = read_record(records / "t" / "baseline-chance.json")
    assert ("Dataset revisions", f"pneumonia_cxr {sha}") in _provenance(record)
    (refs / "main").write_text(later)  # the branch moved on: verify reads the recorded commit
    asked.clear()
    assert verify_records(records, specs) == []
    assert {revision for _, revision, _ in asked} == {sha}


def test_tables_shipped_records_without_hub_data_are_written_unchanged() -> None:
    from medbench.publish.reading import read_record, record_json
    from tests.spec_tree import REPO

    shipped = sorted((REPO / "leaderboard").rglob("*.json"))
    assert shipped
    for path in shipped:
        record = read_record(path)
        assert record.dataset.revisions is None
        assert record_json(record) == path.read_text(encoding="utf-8"), path  # no `revisions`


def test_tables_hub_source_needs_revision_and_split() -> None:
    from pydantic import ValidationError

    from medbench.spec.task import DataSourceSpec

    with pytest.raises(ValidationError, match="needs a `revision` and a `split`"):
        DataSourceSpec.model_validate(
            {"format": "hf", "repo": "org/ds", "image_column": "i", "label_column": "l"}
        )
    with pytest.raises(ValidationError, match="not both"):
        DataSourceSpec.model_validate(
            {
                "format": "hf",
                "repo": "org/ds",
                "revision": "main",
                "split": "test",
                "path": "data/x",
                "image_column": "i",
                "label_column": "l",
            }
        )


# --- per-sample questions (closed VQA): the shipped medvqa suite on its sample tables ---


def test_tables_per_sample_questions_render_in_every_prompt(tmp_path: Path) -> None:
    plan = _vqa_project_plan(tmp_path)
    mc = plan.samples["pmc_vqa_choice"][0]
    assert len(mc.options) == 4 and not mc.options[0].startswith("A:")  # the letter is dropped
    lettered = plan.prompt("closed_vqa", "lettered", "pmc_vqa_choice", mc.id).rendered
    assert lettered.messages.text.startswith(mc.question or "?")
    assert f"A. {mc.options[0]}" in lettered.messages.text
    reversed_ = plan.prompt("closed_vqa", "reversed", "pmc_vqa_choice", mc.id).rendered
    assert reversed_.options == mc.options[::-1]
    yes_no = plan.samples["vqa_rad_yes_no"]
    questions = {s.question for s in yes_no}
    assert len(questions) > 1 and "What imaging modality is this?" not in questions  # skipped
    texts = {
        plan.prompt("closed_vqa", "plain", "vqa_rad_yes_no", s.id).rendered.messages.text
        for s in yes_no
    }
    assert all(t.endswith("Answer with one of: yes, no.") for t in texts)
    assert len(texts) == len(questions)
    # the same image asked two questions: two jobs, two keys
    keys = [j.key for j in plan.jobs if j.task == "vqa_rad_yes_no" and j.variant == "plain"]
    assert len(set(keys)) == len(keys) == len(yes_no)


def _vqa_project_plan(tmp_path: Path) -> Plan:
    return _plan(vqa_project(tmp_path))


@pytest.mark.parametrize(
    ("reply", "variant", "expected"),
    [
        ("B", "lettered", "b"),
        ("The answer is (C).", "lettered", "c"),
        ("{option}", "plain", "{letter}"),
        ("I think it is {option}.", "reversed", "{letter}"),
        ("I cannot tell from this image.", "plain", None),
    ],
)
def test_tables_multiple_choice_reply_parses_to_its_options_letter(
    tmp_path: Path, reply: str, variant: str, expected: str | None
) -> None:
    from medbench.score.answers import parse_job_answer

    project = vqa_project(tmp_path)
    specs = load_specs(project / "specs")
    plan = _plan(project)
    sample = plan.samples["pmc_vqa_choice"][1]
    prompt = plan.prompt("closed_vqa", variant, "pmc_vqa_choice", sample.id)
    letter = sample.label
    option = sample.options["abcd".index(letter)]
    _, parsed = parse_job_answer(
        reply.format(option=option),
        specs.tasks["pmc_vqa_choice"],
        "label",
        prompt.rendered.options,
        prompt.rendered.lettered,
        prompt.by_option,
    )
    assert parsed == (expected.format(letter=letter) if expected else None)


def test_tables_vqa_suite_scores_and_verifies_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app
    from medbench.publish.verify import verify_records
    from medbench.score.sidecar import read_answers_csv
    from tests.publish.test_rederive import forge

    project = vqa_project(tmp_path, ("baseline-majority", "baseline-chance"))
    monkeypatch.chdir(project)
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "answers.sqlite"))
    done = CliRunner().invoke(app, ["run", "specs", "--suite", "t"])
    assert done.exit_code == 0, done.output
    records = Path("results/t/leaderboard")
    record = records / "t" / "baseline-chance.json"
    answers = read_answers_csv((records / "t" / "baseline-chance.answers.csv.gz").read_bytes())
    mc = answers[answers["task"] == "pmc_vqa_choice"]
    assert set(mc["status"]) == {"answer"} and set(mc["parsed"]) <= set("abcd")
    assert mc["truth"].isin(list("abcd")).all() and 0 < mc["correct"].mean() < 1
    yn = answers[answers["task"] == "vqa_rad_yes_no"]
    assert set(yn["truth"]) == {"yes", "no"}
    specs = load_specs(Path("specs"))
    assert verify_records(records, specs) == []

    def edit(frame: Any) -> None:
        wrong = frame.index[(frame["task"] == "pmc_vqa_choice") & ~frame["correct"]][0]
        frame.loc[wrong, ["parsed", "correct"]] = [frame.loc[wrong, "truth"], True]

    forge(edit, record)
    found = verify_records(records, specs)
    assert len(found) == 1 and "status/parsed: recorded answer" in found[0], found


COLUMNS_SOURCE = """    path: data/sample/vqa/pmc_vqa_test.parquet
    image_column: image
    question_column: question
    options_columns: [choice a, choice b, choice c, choice d]
    label_column: answer label
"""


def _list_options_source(project: Path, options_column: str = "options") -> None:
    """The PMC-VQA sample rewritten with its options in one list column (without their `A:`
    letters) and its answer as the correct option's text, read through `options_column`."""
    vqa = project / "data" / "sample" / "vqa"
    table = pq.read_table(vqa / "pmc_vqa_test.parquet")
    choices = zip(*(table.column(f"choice {c}").to_pylist() for c in "abcd"), strict=True)
    options = [[c.split(":", 1)[1] for c in row] for row in choices]
    listed = pa.table(
        {
            "image": table.column("image"),
            "question": table.column("question"),
            "answer": table.column("answer"),
            "options": pa.array(options, pa.list_(pa.string())),
        }
    )
    pq.write_table(listed, vqa / "pmc_list.parquet")
    task = project / "specs" / "tasks" / "pmc_vqa_choice.yaml"
    text = task.read_text()
    assert COLUMNS_SOURCE in text
    task.write_text(
        text.replace(
            COLUMNS_SOURCE,
            "    path: data/sample/vqa/pmc_list.parquet\n    image_column: image\n"
            f"    question_column: question\n    options_column: {options_column}\n"
            "    label_column: answer\n",
        )
    )


def test_tables_options_column_renders_parses_and_scores_like_options_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app
    from medbench.publish.verify import verify_records
    from medbench.score.answers import parse_job_answer
    from medbench.score.sidecar import read_answers_csv

    project = vqa_project(tmp_path, ("baseline-majority", "baseline-chance"))
    by_columns = _plan(project)
    _list_options_source(project)
    plan = _plan(project)
    samples = plan.samples["pmc_vqa_choice"]
    assert [(s.id, s.question, s.options, s.label) for s in samples] == [
        (s.id, s.question, s.options, s.label) for s in by_columns.samples["pmc_vqa_choice"]
    ]
    assert _keys(plan) == _keys(by_columns)  # the same prompts about the same images
    sample = samples[0]
    lettered = plan.prompt("closed_vqa", "lettered", "pmc_vqa_choice", sample.id)
    assert lettered.rendered.messages.text.startswith(sample.question or "?")
    assert f"A. {sample.options[0]}\nB. {sample.options[1]}" in lettered.rendered.messages.text
    specs = load_specs(project / "specs")
    right = sample.options["abcd".index(sample.label)]
    reversed_ = plan.prompt("closed_vqa", "reversed", "pmc_vqa_choice", sample.id)
    _, parsed = parse_job_answer(
        f"It is {right}.",
        specs.tasks["pmc_vqa_choice"],
        "label",
        reversed_.rendered.options,
        reversed_.rendered.lettered,
        reversed_.by_option,
    )
    assert parsed == sample.label

    monkeypatch.chdir(project)
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "answers.sqlite"))
    done = CliRunner().invoke(app, ["run", "specs", "--suite", "t"])
    assert done.exit_code == 0, done.output
    records = Path("results/t/leaderboard")
    answers = read_answers_csv((records / "t" / "baseline-chance.answers.csv.gz").read_bytes())
    mc = answers[answers["task"] == "pmc_vqa_choice"]
    assert (
        set(mc["truth"]) <= set("abcd") and (mc["correct"] == (mc["parsed"] == mc["truth"])).all()
    )
    assert verify_records(records, load_specs(Path("specs"))) == []


def test_tables_options_column_that_is_not_a_list_is_located(tmp_path: Path) -> None:
    from medbench.data.checks import check_data

    project = vqa_project(tmp_path)
    _list_options_source(project, options_column="question")
    found = check_data(load_specs(project / "specs"), None, ["pmc_vqa_choice"])
    assert len(found) == 1, found
    path = project / "data" / "sample" / "vqa" / "pmc_list.parquet"
    assert (found[0].field, found[0].problem) == (
        "data.sample.options_column",
        f"{path}: column 'question' holds string, expected a list of strings.",
    )


def test_tables_empty_question_is_located_at_the_question_column(tmp_path: Path) -> None:
    from medbench.data.checks import check_data

    project = vqa_project(tmp_path)
    path = project / "data" / "sample" / "vqa" / "vqa_rad_test.parquet"
    table = pq.read_table(path)
    questions = table.column("question").to_pylist()
    questions[2] = "   "
    table = table.set_column(table.schema.get_field_index("question"), "question", [questions])
    pq.write_table(table, path)
    found = check_data(load_specs(project / "specs"), None, ["vqa_rad_yes_no"])
    assert len(found) == 1, found
    assert found[0].path.endswith("specs/tasks/vqa_rad_yes_no.yaml")
    assert (found[0].field, found[0].problem) == (
        "data.sample.question_column",
        f"{path}: row 2: needs a question of 1 to 2000 characters.",
    )


def test_tables_vqa_suite_refuses_stages_that_read_fixed_labels(tmp_path: Path) -> None:
    from medbench.errors import SpecError

    project = vqa_project(tmp_path)
    suite = project / "specs" / "suites" / "t.yaml"
    suite.write_text(suite.read_text() + "likelihood: {}\nprobe: {}\n")
    with pytest.raises(SpecError) as caught:
        load_specs(project / "specs")
    text = str(caught.value)
    assert "specs/suites/t.yaml" in text and "likelihood: task 'vqa_rad_yes_no' asks" in text
    assert "probe: task 'vqa_rad_yes_no' asks a question per sample" in text


def test_tables_yes_no_family_cannot_ask_a_multiple_choice_task(tmp_path: Path) -> None:
    from medbench.errors import SpecError

    project = vqa_project(tmp_path)
    suite = project / "specs" / "suites" / "t.yaml"
    suite.write_text(
        suite.read_text().replace(
            "prompt_families: [closed_vqa]", "prompt_families: [closed_vqa, finding_present]"
        )
    )
    with pytest.raises(
        SpecError, match="yes/no family 'finding_present' cannot ask multiple-choice"
    ):
        load_specs(project / "specs")


SECONDS = 5.0
"""Wall-clock bound of reading one hostile table (generous for a busy 2-core machine)."""


@dataclass
class _Reads:
    """What reading parquet files asked of pyarrow: each file's columns, and the most bytes Arrow
    held (beyond what it held before) while a batch was out."""

    columns: list[Any] = field(default_factory=list)
    batch_rows: list[int] = field(default_factory=list)
    arrow_bytes: int = 0


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> _Reads:
    seen = _Reads()
    iter_batches = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, *args: Any, **kwargs: Any) -> Iterator[Any]:
        seen.columns.append(kwargs.get("columns"))
        before = pa.total_allocated_bytes()
        for batch in iter_batches(self, *args, **kwargs):
            seen.arrow_bytes = max(seen.arrow_bytes, pa.total_allocated_bytes() - before)
            seen.batch_rows.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    return seen


def _hostile(
    project: Path,
    rows: list[dict[str, Any]] | pa.Table,
    schema: pa.Schema | None = None,
    **options: Any,
) -> Path:
    """The task's sample source made a parquet file of `rows`, compressed as the Hub's are."""
    path = project / "data" / "t.parquet"
    table = (
        rows
        if isinstance(rows, pa.Table)
        else pa.Table.from_pylist(rows, schema=schema or _schema())
    )
    pq.write_table(table, path, compression="zstd", **options)
    _table_task(project, f"format: parquet\npath: data/t.parquet\n{MAPPED}")
    return path


def _problems(project: Path) -> list[tuple[str, str]]:
    """What `validate` says of the task's data: (field, problem)."""
    from medbench.data.checks import check_data

    found = check_data(load_specs(project / "specs"), None, ["pneumonia_cxr"])
    return [(issue.field, issue.problem) for issue in found]


def _read(project: Path, images: Path) -> Callable[[], object]:
    """Reads the task's table source, storing its images in `images`."""
    from medbench.data.tables import read_table_source

    task = load_specs(project / "specs").tasks["pneumonia_cxr"]
    path = project / "data" / "t.parquet"
    return lambda: read_table_source(task, task.data["sample"], path, images)


def _bounded(run: Callable[[], object]) -> tuple[object, float, float]:
    """What `run` returned or raised, its seconds, and the megabytes Python held at its peak."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result: object = run()
    except DataError as e:
        result = e
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return result, seconds, peak


def test_tables_parquet_unused_column_is_never_read(tmp_path: Path, reads: _Reads) -> None:
    # before, a 512 MiB value in a column no field names was read whole: 2.2 GB at `validate`
    project = make_project(tmp_path)
    rows = _rows(project)
    rows[0]["scan"] = b"\0" * (64 << 20)
    path = _hostile(project, rows, _schema().append(pa.field("scan", pa.binary())))
    del rows
    assert path.stat().st_size < 1 << 20
    found, seconds, peak = _bounded(_read(project, tmp_path / "images"))
    assert isinstance(found, list) and len(found) == len(_images(project))
    assert reads.columns == [["image.bytes", "label", "name", "patient"]]
    assert reads.arrow_bytes < 16 << 20 and peak < 16 and seconds < SECONDS, (
        reads.arrow_bytes,
        peak,
        seconds,
    )


def test_tables_parquet_compression_bomb_is_refused_from_its_metadata(
    tmp_path: Path, reads: _Reads
) -> None:
    # before, 8 such BMPs in a 507 KB file took 2.3 GB and wrote 457 MB at `validate`
    project = make_project(tmp_path)
    rows = _rows(project)
    for i, side in enumerate((2828, 2827, 2826)):  # 24 MB of black pixels each
        rows[i]["image"] = {"bytes": zero_bmp(side), "path": None}
    path = _hostile(project, rows)
    del rows
    assert path.stat().st_size < 1 << 20
    [(where, problem)] = _problems(project)
    assert where == "data.sample.path"
    assert re.fullmatch(
        rf"{re.escape(str(path))}: the named columns decompress from [\d.]+ KiB to \d\d\.\d MiB, "
        r"over 100 times their size on disk \(and over 64\.0 MiB\)\. "
        r"Store the images compressed \(PNG or JPEG\)\.",
        problem,
    ), problem
    images = tmp_path / "images"
    refused, seconds, peak = _bounded(_read(project, images))
    assert isinstance(refused, ColumnError) and str(refused) == problem
    assert reads.columns == [] and not images.exists()
    assert seconds < SECONDS and peak < 16, (seconds, peak)


def test_tables_parquet_value_repeated_on_many_rows_is_refused_as_it_decodes(
    tmp_path: Path, reads: _Reads
) -> None:
    # stored once in the column's dictionary, an 8 MB image on 320 rows passes the metadata's
    # sizes; before, it was read as 2.5 GB of bytes per batch of 256 rows (8.3 GB, 41 s)
    project = make_project(tmp_path)
    rows = [{k: v for k, v in row.items() if k != "image"} for row in _rows(project) * 10]
    table = pa.Table.from_pylist(rows, schema=_schema().remove(0))
    repeated = pa.DictionaryArray.from_arrays(pa.array([0] * len(rows)), [zero_bmp(1633)])
    nulls = pa.nulls(len(rows), pa.string())
    table = table.add_column(
        0, "image", pa.StructArray.from_arrays([repeated, nulls], ["bytes", "path"])
    )
    path = _hostile(project, table, store_schema=False)  # read back as plain binary
    del rows, table, repeated
    [(where, problem)] = _problems(project)
    assert where == "data.sample.path"
    assert re.fullmatch(
        rf"{re.escape(str(path))}: the named columns decode to over 64\.0 MiB from [\d.]+ KiB on "
        r"disk \(at most 100 times it\): a value repeats on many rows, or the file's metadata "
        r"understates its sizes\.",
        problem,
    ), problem
    images = tmp_path / "images"
    refused, seconds, peak = _bounded(_read(project, images))
    assert isinstance(refused, ColumnError) and str(refused) == problem and not images.exists()
    assert reads.arrow_bytes < 32 << 20 and peak < 16 and seconds < SECONDS, (
        reads.arrow_bytes,
        peak,
        seconds,
    )


@pytest.mark.parametrize(
    ("bound", "field", "problem"),
    [
        (
            "MAX_COLUMN_CHUNK_BYTES",
            "data.sample.image_column",
            r"column 'image', row group 0: [\d.]+ KiB uncompressed, over the 64\.0 KiB one column "
            r"may hold in a row group\. Write the file in smaller row groups\.",
        ),
        (
            "MAX_TABLE_BYTES",
            "data.sample.path",
            r"the named columns hold [\d.]+ KiB uncompressed, over the 64\.0 KiB one file may "
            r"hold\. Split the table into files\.",
        ),
    ],
    ids=["column-chunk", "file"],
)
def test_tables_parquet_over_a_size_bound_is_refused_before_reading(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reads: _Reads,
    bound: str,
    field: str,
    problem: str,
) -> None:
    from medbench.data import tablefiles

    monkeypatch.setattr(tablefiles, bound, 64 << 10)  # the sample's images hold 400 KiB
    project = make_project(tmp_path)
    path = _hostile(project, _rows(project))
    [(where, said)] = _problems(project)
    assert where == field
    assert re.fullmatch(rf"{re.escape(str(path))}: {problem}", said), said
    assert reads.columns == []


def test_tables_parquet_batch_rows_are_sized_from_the_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: _Reads
) -> None:
    from medbench.data import tablefiles

    monkeypatch.setattr(tablefiles, "MAX_BATCH_BYTES", 64 << 10)  # a few of the sample's images
    project = make_project(tmp_path)
    _hostile(project, _rows(project))
    found = _read(project, tmp_path / "images")()
    assert isinstance(found, list) and len(found) == sum(reads.batch_rows) == 32
    assert 1 < max(reads.batch_rows) < 16, reads.batch_rows


@pytest.mark.parametrize(
    ("bomb", "reason"),
    [
        (png_declaring(100_000, 100_000), "over the pixel limit (100000 x 100000 > 50000000)"),
        (
            tiff_declaring(16, 16, tile=46_336),
            "over the pixel limit (TIFF tiles of 46336 x 46336 > 50000000)",
        ),
    ],
    ids=["png-size", "tiff-tiles"],
)
def test_tables_image_over_the_pixel_limit_is_refused_before_it_is_stored(
    tmp_path: Path, bomb: bytes, reason: str
) -> None:
    project = make_project(tmp_path)
    rows = _rows(project)
    rows[3]["image"] = {"bytes": bomb, "path": None}
    path = _hostile(project, rows)
    problem = f"{path}: row 3: the image is {reason}."
    assert _problems(project) == [("data.sample.image_column", problem)]
    images = tmp_path / "images"
    refused, seconds, peak = _bounded(_read(project, images))
    assert isinstance(refused, ColumnError) and str(refused) == problem
    stored = sorted(p.name.split(".")[0] for p in images.iterdir())
    assert len(stored) == 3 and hashlib.sha256(bomb).hexdigest() not in stored
    assert seconds < SECONDS and peak < 16, (seconds, peak)


def test_tables_text_cell_over_its_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    rows = _rows(project)
    rows[5]["name"] = "x" * (1 << 20)
    path = _hostile(project, rows)
    problem = f"{path}: row 5: column 'name' holds 1048576 bytes, over the 65536 of a text cell."
    assert _problems(project) == [("data.sample.id_column", problem)]


def test_tables_image_over_its_byte_bound_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medbench.data import tablerows

    monkeypatch.setattr(tablerows, "MAX_IMAGE_BYTES", 1000)  # each sample image holds more
    project = make_project(tmp_path)
    path = _hostile(project, _rows(project))
    problem = f"{path}: row 0: the image is over 1000 bytes."
    assert _problems(project) == [("data.sample.image_column", problem)]
