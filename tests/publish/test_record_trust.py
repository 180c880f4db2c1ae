"""Tests of what a record may not smuggle past `verify`: repeated keys and rows, impossible
dates, numbers beyond what a reader holds exactly, and sidecar cells that overflow."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

import medbench.atomic
from medbench.commands.leaderboard import publish, verify
from medbench.errors import RecordError
from medbench.publish.local import check_markers, publish_results
from medbench.publish.reading import read_record
from medbench.publish.verify import verify_records
from medbench.run import ModelIdentity
from medbench.run.cache import Cache
from medbench.run.loop import run_plan
from medbench.run.plan import make_plan
from medbench.score import answers_csv, read_answers_csv
from medbench.score.report import score_and_report
from medbench.spec.loading import load_specs
from tests.leaderboard_data import model_spec, publish_synthetic
from tests.spec_tree import make_project

TASKS = ["brain_tumor_mri", "pneumonia_cxr"]
SPECS = [
    model_spec("gen"),
    model_spec("med", base="gen", medical=True),
    model_spec("tiny", test_model=True),
]


@pytest.fixture(scope="module")
def published_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("published") / "leaderboard"
    publish_synthetic(folder, SPECS, TASKS, n_images=12, n_boot=20)
    return folder


@pytest.fixture
def board(published_once: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(published_once, tmp_path / "leaderboard")
    monkeypatch.chdir(tmp_path)
    return Path("leaderboard")


def edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def line_of(path: Path, start: str) -> int:
    """The number of the first line of `path` that starts with `start`."""
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(start))


def test_read_record_repeated_key_is_refused_at_its_line(board: Path) -> None:
    path = board / "quickstart" / "tiny.json"
    text = path.read_text()
    path.write_text(
        text.replace('\n  "test_model": true', '\n  "test_model": false,\n  "test_model": true')
    )
    line = line_of(path, '  "test_model": true')
    message = (
        f"leaderboard/quickstart/tiny.json:{line}:3: test_model: the key is repeated in its "
        "object; write each key once (a JSON reader keeps only the last)"
    )
    with pytest.raises(RecordError, match=f"^{re.escape(message)}$"):
        read_record(path)
    assert verify_records(board) == [message]


def test_read_record_repeated_key_inside_a_row_names_the_row(board: Path) -> None:
    path = board / "quickstart" / "tiny.json"
    path.write_text(path.read_text().replace('"f1_all": ', '"f1_all": 1.0, "f1_all": ', 1))
    [problem] = verify_records(board)
    assert problem.endswith(
        ": scores[0].f1_all: the key is repeated in its object; write each key once (a JSON "
        "reader keeps only the last)"
    )


def test_read_record_repeated_row_is_refused(board: Path) -> None:
    path = board / "quickstart" / "gen.json"
    edit(path, lambda d: d["scores"].append(dict(d["scores"][0])))
    rows = json.loads(path.read_text())["scores"]
    row, line = rows[0], line_of(path, '  "scores": [')
    [problem] = verify_records(board)
    assert problem == (
        f"leaderboard/quickstart/gen.json:{line}:13: scores: rows 0 and "
        f"{len(rows) - 1} are the same row (model=gen, "
        f"task={row['task']}, family={row['family']}, variant={row['variant']}, "
        "pipeline=direct); publish each row once"
    )


@pytest.mark.parametrize(
    ("date", "problem"),
    [
        (
            "9999-12-31",
            'date: a date in the future, got "9999-12-31"; a record says when it was made',
        ),
        ("2026-02-30", 'date: not a real date, got "2026-02-30"; write YYYY-MM-DD'),
        ("1970-01-01", 'date: a date before medbench existed, got "1970-01-01"'),
    ],
)
def test_read_record_impossible_date_is_refused(board: Path, date: str, problem: str) -> None:
    path = board / "quickstart" / "gen.json"
    edit(path, lambda d: d.update(date=date))
    line = line_of(path, '  "date": ')
    assert verify_records(board) == [f"leaderboard/quickstart/gen.json:{line}:11: {problem}"]


def test_read_record_integer_beyond_2_53_is_refused(board: Path) -> None:
    path = board / "quickstart" / "gen.json"
    edit(path, lambda d: d["scores"][1].update(n=10**30))
    line = line_of(path, '      "n": 1000000000000000000000000000000')
    assert verify_records(board) == [
        f"leaderboard/quickstart/gen.json:{line}:12: scores[1].n: expected a whole number within "
        "±2**53, got 1000000000000000000000000000000"
    ]


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        (
            "replicate",
            str(10**30),
            "expected a whole number below 10**9, got '1000000000000000000000000000000'",
        ),
        ("image_ssim", "=1+2", "expected an SSIM between -1 and 1, got '=1+2'"),
    ],
    ids=["integer_overflow", "ssim_out_of_range"],
)
def test_verify_records_sidecar_bad_cell_is_a_problem(
    board: Path, column: str, value: str, problem: str
) -> None:
    folder = board / "quickstart"
    sidecar = folder / "tiny.answers.csv.gz"
    lines = gzip.decompress(sidecar.read_bytes()).decode().split("\r\n")
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index(column)] = value
    lines[1] = ",".join(cells)
    sidecar.write_bytes(gzip.compress("\r\n".join(lines).encode(), mtime=0))
    digest = hashlib.sha256(sidecar.read_bytes()).hexdigest()
    edit(folder / "tiny.json", lambda d: d["sidecar"].update(sha256=digest))
    assert verify_records(board) == [
        "leaderboard/quickstart/tiny.json: sidecar.path: tiny.answers.csv.gz is not a valid "
        f"sidecar: row 1: column '{column}': {problem}"
    ]


@pytest.fixture
def project_board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with specs whose two baselines' records are published into leaderboard/t."""
    project = make_project(
        tmp_path,
        tasks=("pneumonia_cxr",),
        families=("closed_diagnosis",),
        models=("baseline-chance", "baseline-majority"),
        limit_per_class=2,
    )
    monkeypatch.chdir(project)
    specs = load_specs(Path("specs"))
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models")
        run_plan(plan, specs, cache, progress=False)
        score_and_report(specs, plan, cache, Path("results"), Console(quiet=True))
    publish_results(specs, "t", Path("results"), Path("leaderboard"))
    return Path("leaderboard")


def test_verify_records_model_block_must_match_the_model_spec(project_board: Path) -> None:
    path = project_board / "t" / "baseline-chance.json"
    assert verify_records(project_board, load_specs(Path("specs"))) == []

    def claim(data: dict[str, Any]) -> None:
        data["model"].update(title="MedGemma 27B (Google)", medical=True)
        data.update(test_model=True)

    edit(path, claim)
    spec = "specs/models/baseline-chance.yaml"
    hint = "the spec is the truth: republish the model from it"
    assert verify_records(project_board, load_specs(Path("specs"))) == [
        f"leaderboard/t/baseline-chance.json: test_model: recorded true, {spec} says false; {hint}",
        f"leaderboard/t/baseline-chance.json: model.medical: recorded true, {spec} says false; "
        f"{hint}",
        f'leaderboard/t/baseline-chance.json: model.title: recorded "MedGemma 27B (Google)", '
        f'{spec} says "Baseline: chance"; {hint}',
    ]


def test_verify_records_model_without_a_spec_is_a_problem(project_board: Path) -> None:
    Path("specs/models/baseline-majority.yaml").unlink()
    Path("specs/suites/t.yaml").write_text(
        Path("specs/suites/t.yaml").read_text().replace(", baseline-majority", "")
    )
    problems = verify_records(project_board, load_specs(Path("specs")))
    assert (
        "leaderboard/t/baseline-majority.json: model: no spec of model 'baseline-majority' "
        "today; a record is published with its model's spec "
        "(specs/models/baseline-majority.yaml)"
    ) in problems


def test_write_record_interrupted_leaves_the_old_record_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = tmp_path / "leaderboard"
    [path] = publish_synthetic(board, [model_spec("gen")], TASKS, n_images=6, n_boot=10)
    before = {p.name: p.read_bytes() for p in path.parent.iterdir()}

    def interrupted(source: object, target: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(medbench.atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        publish_synthetic(board, [model_spec("gen")], TASKS, n_images=6, n_boot=10, seed=1)
    assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == before


@pytest.mark.parametrize(
    ("folder", "hint"),
    [
        ("empty", "give the leaderboard folder, which holds `<suite>/<model>.json` records"),
        (
            "leaderboard/quickstart",
            "it looks like one suite's folder: give its leaderboard, `medbench verify leaderboard`",
        ),
    ],
)
def test_verify_command_nothing_verified_is_an_error(board: Path, folder: str, hint: str) -> None:
    Path("empty").mkdir()
    app = typer.Typer()
    app.command()(verify)
    app.command()(publish)
    result = CliRunner().invoke(app, ["verify", folder, "--specs", "empty"])
    assert result.exit_code == 1
    assert isinstance(result.exception, RecordError)
    assert (
        str(result.exception) == f"{folder}: nothing verified: no records in this folder; {hint}."
    )


def test_publish_results_refuses_a_checkpoint_marked_as_a_test_model(
    project_board: Path, tmp_path: Path
) -> None:
    checkpoint = Path("data/models/gen")
    checkpoint.mkdir(parents=True)
    (checkpoint / "medbench_tiny.json").write_text('{"test_model": true}\n')
    identity = ModelIdentity(payload={}, revision="local:x", checkpoint_dir=checkpoint)
    specs = load_specs(Path("specs"))
    with pytest.raises(RecordError) as raised:
        check_markers(specs, {"baseline-chance": identity})
    assert str(raised.value) == (
        "baseline-chance: the checkpoint's own medbench_tiny.json says it is a test model (random "
        "or demonstration weights), but its spec lacks `test_model: true`. Add `test_model: true` "
        "to the spec (and pass --allow-test-models), or point `path:` at real weights."
    )
    (checkpoint / "medbench_tiny.json").write_text('{"test_model": false}\n')
    check_markers(specs, {"baseline-chance": identity})


def test_verify_records_baseline_answers_its_backend_never_gave_are_caught(
    project_board: Path,
) -> None:
    specs = load_specs(Path("specs"))
    notes: list[str] = []
    assert verify_records(project_board, specs, notes) == []
    assert (
        "leaderboard/t/baseline-majority.json: baseline: 32 answers re-asked, all as recorded"
        in notes
    )
    folder = project_board / "t"
    sidecar = folder / "baseline-majority.answers.csv.gz"
    frame = read_answers_csv(sidecar.read_bytes())
    wrong = (frame["pipeline"] == "direct") & (frame["text"] != frame["truth"])
    first = frame.index[wrong & (frame["family"] == "closed_diagnosis")][0]
    truth, given = str(frame.loc[first, "truth"]), str(frame.loc[first, "text"])
    frame.loc[first, ["text", "parsed", "status", "correct"]] = [truth, truth, "answer", True]
    sidecar.write_bytes(answers_csv(frame))
    digest = hashlib.sha256(sidecar.read_bytes()).hexdigest()
    edit(folder / "baseline-majority.json", lambda d: d["sidecar"].update(sha256=digest))
    row = frame.loc[first]
    problems = verify_records(project_board, specs, [])
    assert (
        f"leaderboard/t/baseline-majority.json: baseline: 1 of 32 re-asked answers differ from the "
        f"sidecar (first: pneumonia_cxr/closed_diagnosis/{row['variant']}/{row['sample']}: "
        f"recorded {truth!r}, the model answers {given!r}); these answers did not come from this "
        "model as the specs ask it"
    ) in problems


def test_publish_results_record_names_the_run_of_its_answers(project_board: Path) -> None:
    record = read_record(project_board / "t" / "baseline-majority.json")
    assert record.schema_version == 4 and record.run is not None
    assert (record.run.suite, record.run.n_answers) == ("t", 32)
    assert record.run.medbench_version == record.medbench.version
    path = project_board / "t" / "baseline-majority.json"
    edit(path, lambda d: d["run"].update(answer_keys="0" * 64))
    problems = verify_records(project_board, load_specs(Path("specs")), [])
    assert problems == [
        "leaderboard/t/baseline-majority.json: run.answer_keys: the answers' cache keys are not "
        "those today's plan gives them (32 planned, 32 recorded): the record was made with other "
        "prompts, images or weights than today's specs ask"
    ]


def test_read_record_of_schema_version_3_reads_without_run(board: Path) -> None:
    path = board / "quickstart" / "gen.json"
    edit(path, lambda d: d.update(schema_version=3))
    assert verify_records(board) == [
        "leaderboard/quickstart/gen.json:1:1: run: a record of schema version 4 names its run, "
        "one of version 3 does not"
    ]
    edit(path, lambda d: d.pop("run"))
    assert verify_records(board) == []
    assert read_record(Path(__file__).parents[2] / "leaderboard/quickstart/baseline-chance.json")
