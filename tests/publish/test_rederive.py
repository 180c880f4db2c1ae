"""`verify` re-derives what a record takes on trust: parses, truths, the ladder, spec hashes."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from medbench.publish.reading import read_record
from medbench.publish.record import TABLE_KEYS
from medbench.publish.verify import verify_records
from medbench.publish.writing import table_rows
from medbench.score.answers import ScoringLayout
from medbench.score.metrics._version import SCORING_VERSION
from medbench.score.scoring import score_answers
from medbench.score.sidecar import answers_csv, read_answers_csv
from medbench.spec.loading import SpecSet, load_specs

REPO = Path(__file__).resolve().parents[2]
RECORD = Path("leaderboard/quickstart/baseline-chance.json")
SIDECAR = "leaderboard/quickstart/baseline-chance.answers.csv.gz"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SpecSet:
    """A copy of the repository's specs, sample data and published records, as the cwd."""
    for name in ("specs", "data", "leaderboard"):
        shutil.copytree(REPO / name, tmp_path / name)
    for other in ("baseline-always-positive", "baseline-majority"):
        for path in (tmp_path / "leaderboard" / "quickstart").glob(f"{other}.*"):
            path.unlink()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEDBENCH_DATA", raising=False)
    if read_record(RECORD).scoring_version != SCORING_VERSION:
        rescore(RECORD)  # published before today's scoring: as the maintainer republishes it
    return load_specs(Path("specs"))


def rescore(record: Path) -> None:
    """Recompute a record's tables from its own sidecar with today's scoring."""
    data = json.loads(record.read_text())
    answers = read_answers_csv(record.with_name(data["sidecar"]["path"]).read_bytes())
    tables = score_answers(answers, ScoringLayout.from_json(data["layout"]))
    for name in TABLE_KEYS:
        data[name] = table_rows(getattr(tables, name), name, data["model_id"])
    data["scoring_version"] = SCORING_VERSION
    record.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def forge(edit: Callable[[pd.DataFrame], None], record: Path = RECORD) -> None:
    """Edit a record's answers as a forger would: the sidecar, its hash and every table."""
    data = json.loads(record.read_text())
    sidecar = record.with_name(data["sidecar"]["path"])
    answers = read_answers_csv(sidecar.read_bytes())
    edit(answers)
    raw = answers_csv(answers)
    sidecar.write_bytes(raw)
    data["sidecar"]["sha256"] = hashlib.sha256(raw).hexdigest()
    tables = score_answers(answers, ScoringLayout.from_json(data["layout"]))
    for name in TABLE_KEYS:
        data[name] = table_rows(getattr(tables, name), name, data["model_id"])
    data.pop("ladder", None)  # what a consistent forger leaves: the ladder is optional
    record.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def test_verify_published_records_re_derive_against_todays_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("specs", "data", "leaderboard"):
        shutil.copytree(REPO / name, tmp_path / name)
    for other in ("baseline-always-positive", "baseline-majority"):
        for path in (tmp_path / "leaderboard" / "quickstart").glob(f"{other}.*"):
            path.unlink()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEDBENCH_DATA", raising=False)
    project = load_specs(Path("specs"))
    notes: list[str] = []
    assert verify_records(Path("leaderboard"), project, notes) == []
    # A task spec edited since publishing (its documentation) makes a record stale: a note;
    # each baseline's answers are all re-derived from its backend.
    rederived = [
        n for n in notes if n.endswith(": baseline: 2464 answers re-asked, all as recorded")
    ]
    assert len(rederived) == 3
    assert all(": spec_hashes: stale: task/" in n for n in notes if n not in rederived), notes


def test_verify_a_consistently_forged_parse_is_caught_from_its_text(project: SpecSet) -> None:
    def edit(answers: pd.DataFrame) -> None:
        wrong = answers.index[~answers["correct"] & (answers["status"] == "answer")][0]
        answers.loc[wrong, ["parsed", "correct"]] = [answers.loc[wrong, "truth"], True]

    forge(edit)
    assert read_record(RECORD).sidecar.path == "baseline-chance.answers.csv.gz"
    assert verify_records(Path("leaderboard"), project) == [
        f"{SIDECAR}:3: status/parsed: recorded answer 'glioma', its text parses as answer 'notumor'"
    ]
    assert verify_records(Path("leaderboard")) == []  # without specs, only the numbers


def test_verify_a_forged_truth_is_caught_from_the_data(project: SpecSet) -> None:
    def edit(answers: pd.DataFrame) -> None:
        wrong = answers.index[~answers["correct"] & (answers["status"] == "answer")][0]
        parsed = answers.loc[wrong, "parsed"]
        answers.loc[wrong, ["label", "truth", "correct"]] = [parsed, parsed, True]

    forge(edit)
    assert verify_records(Path("leaderboard"), project) == [
        f"{SIDECAR}:3: label/truth: recorded 'notumor'/'notumor', the data says 'glioma'/'glioma'"
    ]


def test_verify_full_data_that_is_absent_is_a_note_not_a_pass(project: SpecSet) -> None:
    data = json.loads(RECORD.read_text())
    data["dataset"]["source"] = "full"
    RECORD.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    notes: list[str] = []
    assert verify_records(Path("leaderboard"), project, notes) == []
    first = (
        f"{SIDECAR}: truth of task 'brain_tumor_mri' not checked against its full data: "
        "${MEDBENCH_DATA}/brain_tumor_mri/Testing: the environment variable MEDBENCH_DATA is "
        "not set. Set it to the folder holding the downloaded datasets."
    )
    truth = [note for note in notes if "truth of task" in note]
    assert truth[0] == first and len(truth) == 4


def test_verify_an_edited_ladder_row_is_reported(project: SpecSet) -> None:
    data = json.loads(RECORD.read_text())
    recorded = data["ladder"][1]["direct_f1_mean"]
    data["ladder"][1]["direct_f1_mean"] = 0.9
    RECORD.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    problems = verify_records(Path("leaderboard"), project)
    # (the reading the edited column gives is named too)
    [problem] = [p for p in problems if ".direct_f1_mean:" in p]
    assert problem == (
        f"leaderboard/quickstart/baseline-chance.json: ladder[1].direct_f1_mean: recorded 0.9, "
        f"re-derived {problem.rsplit(' ', 1)[1]}"
    )
    assert abs(float(problem.rsplit(" ", 1)[1]) - recorded) < 1e-9


def test_verify_a_changed_prompt_is_stale_and_fails(project: SpecSet) -> None:
    for name in ("prompts/closed_diagnosis.yaml", "tasks/pneumonia_cxr.yaml"):
        path = Path("specs") / name
        path.write_text(path.read_text() + "# edited\n")
    specs = load_specs(Path("specs"))
    family = specs.files[("prompt_family", "closed_diagnosis")].sha256[:12]
    task = specs.files[("task", "pneumonia_cxr")].sha256[:12]
    old = json.loads(RECORD.read_text())["spec_hashes"]
    notes: list[str] = []
    problems = verify_records(Path("leaderboard"), specs, notes)
    record = "leaderboard/quickstart/baseline-chance.json"
    assert (
        f"{record}: spec_hashes: stale: prompt_family/closed_diagnosis changed since the record "
        f"was made (recorded {old['prompt_family/closed_diagnosis'][:12]}, today {family}); "
        "rerun and republish the model"
    ) in problems
    # every record asked with the changed family is stale, and nothing else is a problem
    assert all("prompt_family/closed_diagnosis changed since" in p for p in problems)
    assert (
        f"{record}: spec_hashes: stale: task/pneumonia_cxr changed since the record was made "
        f"(recorded {old['task/pneumonia_cxr'][:12]}, today {task})"
    ) in notes


def test_verify_answers_read_by_another_parser_version_are_stale(project: SpecSet) -> None:
    from medbench.score.parsing import PARSER_VERSION

    def edit(answers: pd.DataFrame) -> None:
        answers["parser_version"] = PARSER_VERSION - 1

    forge(edit)
    data = json.loads(RECORD.read_text())
    data["parser_version"] = PARSER_VERSION - 1
    RECORD.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert verify_records(Path("leaderboard"), project) == [
        f"{SIDECAR}: parser_version: stale: the answers were parsed by parser version "
        f"{PARSER_VERSION - 1}, today's is {PARSER_VERSION}; rescore and republish"
    ]
