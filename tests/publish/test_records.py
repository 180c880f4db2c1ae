"""Tests of medbench.publish's records and `medbench publish` / `verify`: records re-derive from
sidecars."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from medbench.commands.leaderboard import publish, verify
from medbench.errors import RecordError
from medbench.publish.reading import read_record
from medbench.publish.verify import verify_records
from medbench.publish.writing import write_record
from medbench.run.cache import Cache
from medbench.run.loop import run_plan
from medbench.run.plan import make_plan
from medbench.score.parsing import PARSER_VERSION
from medbench.score.report import score_and_report
from medbench.score.scoring import score_answers
from medbench.spec.loading import load_specs
from tests.leaderboard_data import (
    answer_keys,
    make_answers,
    make_layout,
    model_spec,
    provenance,
    publish_synthetic,
)
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
    publish_synthetic(folder, SPECS, TASKS)
    return folder


@pytest.fixture
def board(published_once: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the three published records in `leaderboard/`, the working directory."""
    shutil.copytree(published_once, tmp_path / "leaderboard")
    monkeypatch.chdir(tmp_path)
    return Path("leaderboard")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def save(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def test_verify_records_published_records_pass(board: Path) -> None:
    assert sorted(p.name for p in (board / "quickstart").iterdir()) == [
        "gen.answers.csv.gz", "gen.json", "med.answers.csv.gz", "med.json",
        "tiny.answers.csv.gz", "tiny.json",
    ]  # fmt: skip
    assert verify_records(board) == []


def test_write_record_holds_only_its_model_and_provenance(board: Path) -> None:
    record = read_record(board / "quickstart" / "med.json")
    assert record.model_id == "med" and record.model["base"] == "gen"
    assert {r["model"] for r in record.scores + record.fragility + record.models} == {"med"}
    assert {(r["model"], r["base"]) for r in record.pairs} == {("med", "gen")}
    assert {r["variant"] for r in record.pairs} == {"plain", "guided", "persona", "terse", "*"}
    assert record.sidecar.path == "med.answers.csv.gz"
    assert record.dataset.n_images == {"brain_tumor_mri": 30, "pneumonia_cxr": 30}
    sidecar = pd.read_csv(board / "quickstart" / "med.answers.csv.gz")
    assert set(sidecar["model"]) == {"med"} and len(sidecar) == 2 * 30 * 5
    text = (board / "quickstart" / "med.json").read_text()
    assert text.endswith("}\n") and "NaN" not in text
    assert list(json.loads(text)) == sorted(json.loads(text))


def test_write_record_twice_gives_identical_bytes(board: Path, tmp_path: Path) -> None:
    publish_synthetic(tmp_path / "again", SPECS, TASKS)
    for path in sorted((board / "quickstart").iterdir()):
        assert path.read_bytes() == (tmp_path / "again" / "quickstart" / path.name).read_bytes()


def test_verify_records_edited_number_names_file_and_field(board: Path) -> None:
    path = board / "quickstart" / "med.json"
    data = load(path)
    derived = data["scores"][3]["f1_all"]
    data["scores"][3]["f1_all"] = 0.61
    save(path, data)
    assert verify_records(board) == [
        f"leaderboard/quickstart/med.json: scores[3].f1_all: recorded 0.61, re-derived {derived!r}"
    ]


def test_write_record_stores_the_parser_version_of_its_answers(board: Path) -> None:
    assert load(board / "quickstart" / "med.json")["parser_version"] == PARSER_VERSION


def test_verify_records_parser_version_must_match_the_sidecar(board: Path) -> None:
    path = board / "quickstart" / "med.json"
    data = load(path)
    data["parser_version"] = 1
    save(path, data)
    assert verify_records(board) == [
        f"leaderboard/quickstart/med.json: parser_version: recorded 1, "
        f"the sidecar's rows were parsed by {PARSER_VERSION}"
    ]


def test_verify_records_reports_a_record_scored_by_another_scoring_version(board: Path) -> None:
    from medbench.score.metrics import SCORING_VERSION

    path = board / "quickstart" / "med.json"
    data = load(path)
    assert data["scoring_version"] == SCORING_VERSION
    del data["scoring_version"]  # as records published before scoring versions
    save(path, data)
    assert verify_records(board)[0] == (
        f"leaderboard/quickstart/med.json: scoring_version: recorded 1, this medbench scores "
        f"with {SCORING_VERSION}: re-score and republish the record"
    )


def test_write_record_refuses_answers_of_mixed_parser_versions(tmp_path: Path) -> None:
    answers = make_answers(["gen"], TASKS)
    answers.loc[answers.index[0], "parser_version"] = 1
    layout = make_layout(TASKS, [])
    with pytest.raises(
        RecordError,
        match=rf"^the answers were parsed by parser versions 1, {PARSER_VERSION}: re-score them$",
    ):
        write_record(
            tmp_path,
            suite="quickstart",
            spec=SPECS[0],
            answers=answers,
            answer_keys=answer_keys(answers, SPECS[0].id),
            tables=score_answers(answers, layout),
            layout=layout,
            provenance=provenance(TASKS),
        )


def test_verify_records_tolerates_rounding_below_1e_9(board: Path) -> None:
    path = board / "quickstart" / "gen.json"
    data = load(path)
    data["models"][0]["fragility_index"] += 5e-10
    save(path, data)
    assert verify_records(board) == []


def test_verify_records_edited_sidecar_is_a_hash_mismatch(board: Path) -> None:
    sidecar = board / "quickstart" / "tiny.answers.csv.gz"
    recorded = hashlib.sha256(sidecar.read_bytes()).hexdigest()
    text = gzip.decompress(sidecar.read_bytes()).decode().replace(",refusal,", ",answer,", 1)
    sidecar.write_bytes(gzip.compress(text.encode(), mtime=0))
    actual = hashlib.sha256(sidecar.read_bytes()).hexdigest()
    assert verify_records(board) == [
        f"leaderboard/quickstart/tiny.json: sidecar.sha256: recorded {recorded}, "
        f"the file tiny.answers.csv.gz has {actual}"
    ]


def test_verify_records_pairs_need_the_base_sidecar(board: Path) -> None:
    (board / "quickstart" / "gen.answers.csv.gz").unlink()
    problems = verify_records(board)
    assert problems[0].startswith(
        "leaderboard/quickstart/gen.json: sidecar.path: cannot read gen.answers.csv.gz"
    )
    assert problems[1].startswith(
        "leaderboard/quickstart/med.json: pairs: cannot use the base's sidecar gen.answers.csv.gz"
    )
    assert len(problems) == 2


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d["dataset"].pop("fingerprint"), "dataset.fingerprint: field required"),
        (lambda d: d.pop("sidecar"), "sidecar: field required"),
        (
            lambda d: d.update(test_model="yes"),
            'test_model: input should be a valid boolean, got "yes"',
        ),
        (
            lambda d: d["scores"][2].update(f1_all=[0.5]),
            "scores[2].f1_all: expected a number, a string, true, false or null, got [0.5]",
        ),
        (
            lambda d: d["dataset"]["n_images"].update(pneumonia_cxr="30"),
            'dataset.n_images.pneumonia_cxr: input should be a valid integer, got "30"',
        ),
        (lambda d: d.update(schema_version=2), "schema_version: input should be 3 or 4, got 2"),
        (lambda d: d.pop("parser_version"), "parser_version: field required"),
        (lambda d: d.update(score=1), "score: extra inputs are not permitted, got 1"),
    ],
)
def test_verify_records_malformed_record_names_file_and_field(
    board: Path, edit: Any, problem: str
) -> None:
    path = board / "quickstart" / "tiny.json"
    data = load(path)
    edit(data)
    save(path, data)
    # The line and column depend on the synthetic record's layout: the case folder
    # tests/cases/broken_records pins them for hand-written records.
    whole = rf"^leaderboard/quickstart/tiny\.json:\d+:\d+: {re.escape(problem)}$"
    [found] = verify_records(board)
    assert re.match(whole, found)
    with pytest.raises(RecordError, match=whole):
        read_record(path)


def test_verify_records_invalid_json_names_the_file(board: Path) -> None:
    (board / "quickstart" / "gen.json").write_text("{not json")
    problems = verify_records(board)
    assert problems == [
        "leaderboard/quickstart/gen.json:1:2: invalid JSON: key must be a string at line 1 column 2"
    ]


def test_verify_records_moved_record_is_reported(board: Path) -> None:
    (board / "quickstart" / "gen.json").rename(board / "quickstart" / "general.json")
    assert verify_records(board) == [
        "leaderboard/quickstart/general.json: model_id: 'gen' is not its file name"
    ]


def test_write_record_test_model_is_refused_without_the_flag(tmp_path: Path) -> None:
    answers = make_answers(["tiny"], TASKS, n_images=6)
    layout = make_layout(TASKS, [], n_boot=10)
    message = (
        "model 'tiny' is a test model (random or demonstration weights): its numbers are not a "
        "real result. Pass --allow-test-models to publish it anyway."
    )
    with pytest.raises(RecordError, match=f"^{re.escape(message)}$"):
        write_record(
            tmp_path, suite="quickstart", spec=SPECS[2], answers=answers,
            tables=score_answers(answers, layout), layout=layout, provenance=provenance(TASKS),
        )  # fmt: skip
    assert not any(tmp_path.iterdir())


def cli(*commands: Any) -> typer.Typer:
    app = typer.Typer()
    for command in commands:
        app.command()(command)
    return app


def test_verify_command_counts_records_and_fails_on_problems(board: Path) -> None:
    app = cli(verify, publish)
    result = CliRunner().invoke(app, ["verify", "leaderboard"])
    assert (result.exit_code, result.output) == (
        0,
        "note: no specs: answer texts, truths and spec hashes not checked (see --specs)\n"
        "3 records verified\n",
    )
    assert result.stdout == "3 records verified\n"  # the notes and problems go to stderr
    (board / "quickstart" / "tiny.json").write_text("[]")
    result = CliRunner().invoke(app, ["verify", "leaderboard"])
    assert result.exit_code == 1
    assert result.output == (
        "note: no specs: answer texts, truths and spec hashes not checked (see --specs)\n"
        "leaderboard/quickstart/tiny.json:1:1: input should be an object, got []\n"
    )


@pytest.fixture
def scored_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose suite `t` (two baselines, two tasks) is run and scored into results/t."""
    project = make_project(
        tmp_path,
        tasks=("pneumonia_cxr", "skin_lesion"),
        families=("closed_diagnosis", "finding_present"),
        models=("baseline-chance", "baseline-majority"),
        limit_per_class=3,
    )
    monkeypatch.chdir(project)
    specs = load_specs(Path("specs"))
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models")
        run_plan(plan, specs, cache, progress=False)
        score_and_report(specs, plan, cache, Path("results"), Console(quiet=True))
    return project


def test_publish_writes_records_that_verify(scored_project: Path) -> None:
    app = cli(publish, verify)
    result = CliRunner().invoke(app, ["publish", "--suite", "t"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "wrote leaderboard/t/baseline-chance.json",
        "wrote leaderboard/t/baseline-majority.json",
    ]
    assert verify_records(Path("leaderboard")) == []
    record = read_record(Path("leaderboard/t/baseline-chance.json"))
    specs = load_specs(Path("specs"))
    assert record.revision == "baseline:chance"
    assert record.dataset.n_images == {"pneumonia_cxr": 6, "skin_lesion": 6}
    assert record.spec_hashes == {
        f"{kind}/{spec_id}": specs.files[(kind, spec_id)].sha256
        for kind, spec_id in [
            ("model", "baseline-chance"), ("prompt_family", "closed_diagnosis"),
            ("prompt_family", "finding_present"), ("suite", "t"),
            ("task", "pneumonia_cxr"), ("task", "skin_lesion"),
        ]
    }  # fmt: skip
    assert record.tasks["pneumonia_cxr"].title == specs.tasks["pneumonia_cxr"].title
    results = pd.read_csv("results/t/models.csv")
    chance = results[results["model"] == "baseline-chance"].iloc[0]
    assert record.models[0]["fragility_index"] == pytest.approx(chance["fragility_index"])


def test_publish_test_model_needs_the_flag(scored_project: Path) -> None:
    spec = Path("specs/models/baseline-chance.yaml")
    spec.write_text(spec.read_text() + "test_model: true\n")
    app = cli(publish, verify)
    result = CliRunner().invoke(app, ["publish", "--suite", "t"])
    assert result.exit_code == 1
    assert isinstance(result.exception, RecordError)
    assert str(result.exception) == (
        "baseline-chance: test model(s) (random or demonstration weights): their numbers are not "
        "a real result. Pass --allow-test-models to publish them anyway."
    )
    assert not Path("leaderboard").exists()
    result = CliRunner().invoke(app, ["publish", "--suite", "t", "--allow-test-models"])
    assert result.exit_code == 0, result.output
    assert read_record(Path("leaderboard/t/baseline-chance.json")).test_model is True


def test_collect_environment_names_every_package_that_changes_numbers() -> None:
    from importlib import metadata

    from medbench.publish.environment import collect_environment

    env = collect_environment()
    for name in ("torch", "transformers", "tokenizers", "pillow", "numpy", "accelerate"):
        assert getattr(env, name) == metadata.version(name)
    assert env.packages_sha256 is not None
    assert collect_environment().packages_sha256 == env.packages_sha256


def test_verify_records_mixed_image_processors_are_a_mismatch(board: Path) -> None:
    path = board / "quickstart" / "med.json"
    data = load(path)
    data["image_processors"] = {"pil:CLIPImageProcessorPil": 1}
    save(path, data)
    assert verify_records(board) == []
    data["image_processors"] = {"pil:CLIPImageProcessorPil": 3, "torchvision:CLIPImageProcessor": 2}
    save(path, data)
    assert verify_records(board) == [
        "leaderboard/quickstart/med.json: image_processors: the answers were preprocessed by "
        "different image processors: pil:CLIPImageProcessorPil (3), "
        "torchvision:CLIPImageProcessor (2). Rerun them in one environment (torchvision "
        "installed or not)."
    ]


def test_count_image_processors_counts_a_models_answers() -> None:
    import pandas as pd

    from medbench.publish.verify import count_image_processors

    answers = pd.DataFrame(
        {
            "model": ["a", "a", "a", "b"],
            "image_processor": ["pil:X", "pil:X", None, "torchvision:Y"],
        }
    )
    assert count_image_processors(answers, "a") == {"pil:X": 2}
    assert count_image_processors(answers, "c") is None
    assert count_image_processors(answers.drop(columns="image_processor"), "a") is None


def test_git_dirty_says_whether_tracked_files_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from medbench.publish import environment as records

    repo = tmp_path / "src"
    (repo / "medbench").mkdir(parents=True)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q")
    (repo / "medbench" / "records.py").write_text("x = 1\n")
    (repo / "leaderboard").mkdir()
    (repo / "leaderboard" / "a.json").write_text("{}\n")
    git("add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "one")
    monkeypatch.setattr(records, "__file__", str(repo / "medbench" / "records.py"))
    (repo / "medbench" / "notes.txt").write_text("untracked files do not count\n")
    (repo / "leaderboard" / "a.json").write_text('{"republished": true}\n')
    assert records.git_dirty() is False  # publishing rewrites records: they do not count
    (repo / "medbench" / "records.py").write_text("x = 2\n")
    assert records.git_dirty() is True
    monkeypatch.setattr(records, "__file__", str(tmp_path / "elsewhere" / "records.py"))
    (tmp_path / "elsewhere").mkdir()
    assert records.git_dirty() is None


def test_verify_records_checks_the_groups_against_the_layouts_pattern(tmp_path: Path) -> None:
    from dataclasses import replace

    from tests.leaderboard_data import make_answers, make_layout, model_spec, provenance

    answers = make_answers(["gen"], ["pneumonia_cxr"], n_images=30)
    # sample ids are `<label>/img017`: patients of ten images, named by the file name
    answers["group"] = answers["sample"].str.extract(r"/(img\d)\d\d$", expand=False)
    layout = replace(
        make_layout(["pneumonia_cxr"], [], n_boot=20), groups={"pneumonia_cxr": r"pattern ^(img\d)"}
    )
    for name, frame in [
        ("honest", answers),
        ("singletons", answers.assign(group=answers["sample"])),
    ]:
        write_record(
            tmp_path / name,
            suite="quickstart",
            spec=model_spec("gen"),
            answers=frame,
            answer_keys=answer_keys(frame, "gen"),
            tables=score_answers(frame, layout),
            layout=layout,
            provenance=provenance(["pneumonia_cxr"]),
        )
    assert verify_records(tmp_path / "honest") == []
    problems = verify_records(tmp_path / "singletons")
    assert problems[0].endswith(
        "gen.json: sidecar: sample normal/img001 of task pneumonia_cxr has group "
        '"normal/img001", its file name gives "img0"'
    )


BROKEN = Path(__file__).resolve().parents[1] / "cases" / "broken_records"


@pytest.mark.parametrize("case", sorted(p.name for p in BROKEN.iterdir() if p.is_dir()))
def test_broken_record_case_reports_the_expected_message(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(BROKEN / case)
    expected = (BROKEN / case / "expected.txt").read_text(encoding="utf-8").rstrip("\n")
    assert "\n".join(verify_records(Path("leaderboard"))) == expected


def test_verify_records_sidecar_bomb_is_refused_unexpanded(
    board: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medbench.publish.files
    import medbench.score.sidecar

    monkeypatch.setattr(medbench.publish.files, "MAX_SIDECAR_BYTES", 1024 * 1024)
    monkeypatch.setattr(medbench.score.sidecar, "MAX_SIDECAR_BYTES", 1024 * 1024)
    path = board / "quickstart" / "tiny.json"
    bomb = gzip.compress(b"model,task\n" + b"0" * (8 * 1024 * 1024), mtime=0)
    (board / "quickstart" / "tiny.answers.csv.gz").write_bytes(bomb)
    data = load(path)
    data["sidecar"]["sha256"] = hashlib.sha256(bomb).hexdigest()
    save(path, data)
    assert verify_records(board) == [
        "leaderboard/quickstart/tiny.json: sidecar.path: tiny.answers.csv.gz is not a valid "
        "sidecar: it decompresses to over 1 MiB"
    ]


def test_read_record_over_the_size_limit_is_refused_unparsed(
    board: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medbench.publish.reading

    monkeypatch.setattr(medbench.publish.reading, "MAX_RECORD_BYTES", 1024 * 1024)
    (board / "quickstart" / "tiny.json").write_text("[" + "0," * (600 * 1024) + "0]")
    message = "leaderboard/quickstart/tiny.json:1:1: the record is over the 1 MiB limit"
    with pytest.raises(RecordError, match=f"^{re.escape(message)}$"):
        read_record(board / "quickstart" / "tiny.json")


def test_publish_never_copies_a_map_that_is_a_link(tmp_path: Path) -> None:
    from medbench.publish.local import copy_maps

    source = tmp_path / "results" / "tsne" / "gen"
    source.mkdir(parents=True)
    (source / "pneumonia_cxr.svg").write_text("<svg/>")
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    (source / "skin_lesion.svg").symlink_to(secret)
    record = tmp_path / "leaderboard" / "quickstart" / "gen.json"
    record.parent.mkdir(parents=True)
    copy_maps(source, record)
    published = record.with_name("gen.tsne")
    assert sorted(p.name for p in published.iterdir()) == ["pneumonia_cxr.svg"]


def likelihood_items(model: str = "gen") -> pd.DataFrame:
    """Two images' option scores: softmax (0.75, 0.25) with the truth first, right and 0.75
    sure; (0.35, 0.65) with the truth first, wrong and 0.65 sure."""
    rows = []
    for sample, probs in (("s1", (0.75, 0.25)), ("s2", (0.35, 0.65))):
        logs = [math.log(p) for p in probs]
        rows.append(
            {
                "model": model,
                "task": "pneumonia_cxr",
                "family": "closed_diagnosis",
                "variant": "plain",
                "sample": sample,
                "label": "pneumonia",
                "truth": "pneumonia",
                "truth_option": 0,
                "options": json.dumps(["pneumonia", "normal"]),
                "classes": json.dumps(["pneumonia", "normal"]),
                "total": json.dumps(logs),
                "mean": json.dumps(logs),
                "n_tokens": json.dumps([1, 1]),
                "merged": False,
                "group": None,
            }
        )
    return pd.DataFrame(rows)


def test_write_record_publishes_the_likelihood_sidecar_and_its_calibration(
    board: Path,
) -> None:
    answers = make_answers(["tiny"], TASKS, n_images=4)
    layout = make_layout(TASKS, [], n_boot=10)
    path = write_record(
        board,
        suite="quickstart",
        spec=SPECS[2],
        answers=answers,
        answer_keys=answer_keys(answers, SPECS[2].id),
        tables=score_answers(answers, layout),
        layout=layout,
        provenance=provenance(TASKS),
        allow_test_models=True,
        likelihood=pd.concat([likelihood_items("tiny"), likelihood_items("med")]),
    )
    record = read_record(path)
    assert record.likelihood_sidecar is not None
    assert record.likelihood_sidecar.path == "tiny.likelihood.csv.gz"
    rows = {(r["variant"], r["pipeline"]): r for r in record.calibration or []}
    assert sorted(rows) == [
        (v, f"likelihood/{n}") for v in ("*", "plain") for n in ("mean", "total")
    ]
    # by hand: ECE = 0.5 |1 - 0.75| + 0.5 |0 - 0.65|; Brier (halved for 2 options) =
    # mean(0.25^2, 0.65^2); accuracy 1/2
    row = rows[("*", "likelihood/total")]
    assert row["ece"] == pytest.approx(0.45, abs=1e-12)
    assert row["brier"] == pytest.approx((0.25**2 + 0.65**2) / 2, abs=1e-12)
    assert (row["n"], row["accuracy"]) == (2, 0.5)
    assert verify_records(board) == []


def test_verify_records_re_derives_calibration_from_the_likelihood_sidecar(board: Path) -> None:
    answers = make_answers(["tiny"], TASKS, n_images=4)
    layout = make_layout(TASKS, [], n_boot=10)
    path = write_record(
        board,
        suite="quickstart",
        spec=SPECS[2],
        answers=answers,
        answer_keys=answer_keys(answers, SPECS[2].id),
        tables=score_answers(answers, layout),
        layout=layout,
        provenance=provenance(TASKS),
        allow_test_models=True,
        likelihood=likelihood_items("tiny"),
    )
    data = load(path)
    index = next(
        i
        for i, r in enumerate(data["calibration"])
        if r["pipeline"] == "likelihood/total" and r["variant"] == "*"
    )
    data["calibration"][index]["ece"] = 0.01
    save(path, data)
    [problem] = verify_records(board)  # re-derived 0.45 up to rounding
    where = f"leaderboard/quickstart/tiny.json: calibration[{index}].ece: recorded 0.01, "
    assert re.fullmatch(re.escape(where) + r"re-derived 0\.45(000000000000\d*)?", problem)
    sidecar = board / "quickstart" / "tiny.likelihood.csv.gz"
    text = gzip.decompress(sidecar.read_bytes()).decode()
    forged = gzip.compress(text.replace('"[-0.2876', '"[0.2876').encode(), mtime=0)
    sidecar.write_bytes(forged)
    data["likelihood_sidecar"]["sha256"] = hashlib.sha256(forged).hexdigest()
    save(path, data)
    assert verify_records(board) == [
        "leaderboard/quickstart/tiny.json: likelihood_sidecar.path: tiny.likelihood.csv.gz is not "
        "a valid sidecar: row 1: total: expected finite log-likelihoods of at most 0"
    ]
    del data["likelihood_sidecar"]
    save(path, data)
    assert verify_records(board) == [
        "leaderboard/quickstart/tiny.json: calibration: no likelihood_sidecar to re-derive it from"
    ]


def test_verify_records_refuses_records_and_sidecars_that_are_links(board: Path) -> None:
    quickstart = board / "quickstart"
    (quickstart / "tiny.answers.csv.gz").unlink()
    (quickstart / "tiny.answers.csv.gz").symlink_to(Path("/dev/zero"))
    (quickstart / "gen.json").unlink()
    (quickstart / "gen.json").symlink_to(quickstart.resolve() / "med.json")
    assert verify_records(board) == [
        "leaderboard/quickstart/gen.json:1:1: the record is a link; a record is a file of its own",
        "leaderboard/quickstart/tiny.json: sidecar.path: tiny.answers.csv.gz is a link; a "
        "sidecar is a file of its own",
    ]


def test_answers_csv_keeps_a_row_whose_text_holds_a_carriage_return() -> None:
    from medbench.score.sidecar import answers_csv, read_answers_csv
    from tests.leaderboard_data import make_answers

    answers = make_answers(["gen"], ["pneumonia_cxr"], n_images=4)
    answers.loc[answers.index[0], "text"] = "pneumonia\rno"  # a bare CR, as tiny models write
    back = read_answers_csv(answers_csv(answers))
    assert len(back) == len(answers)
    assert "pneumonia\rno" in set(back["text"])
