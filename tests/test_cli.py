import filecmp
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medbench.cli import app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_cli_validate_accepts_the_shipped_specs() -> None:
    result = runner.invoke(app, ["validate", str(REPO / "specs")])
    assert result.exit_code == 0, result.output
    assert result.output.endswith(": all valid\n")


def test_cli_committed_schemas_are_up_to_date(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (REPO / "schemas").iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    _, mismatch, errors = filecmp.cmpfiles(REPO / "schemas", tmp_path, names, shallow=False)
    assert (mismatch, errors) == ([], []), "run `medbench schema --out schemas` and commit"


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["validate"],
        ["schema"],
        ["plan"],
        ["run"],
        ["score"],
        ["parse"],
        ["audit-parse"],
        ["cache", "stats"],
        ["cache", "export"],
        ["check", "batch-invariance"],
        ["tiny-model"],
        ["convert", "llava-med"],
        ["publish"],
        ["verify"],
        ["site", "build"],
        ["site", "serve"],
    ],
)
def test_cli_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_cli_plan_shows_jobs_and_cached_counts(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "plan",
            str(REPO / "specs"),
            "--suite",
            "quickstart",
            "--model",
            "baseline-chance",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
    )
    assert result.exit_code == 0, result.output
    # 4 tasks x 8 images per class (2-4 classes) = 88 images; 12 variants; and the noise
    # floor's replicates: 2 reference variants x every image (up to 32 per task: all 88)
    assert "0 cached; 1232 distinct answers to compute." in result.output


def test_cli_plan_shipped_medvqa_suite_plans_offline_with_its_baselines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path / "home"))
    baselines = ["baseline-chance", "baseline-majority", "baseline-always-positive"]
    result = runner.invoke(
        app,
        [
            "plan",
            str(REPO / "specs"),
            "--suite",
            "medvqa",
            *(f"--model={m}" for m in baselines),
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
    )
    assert result.exit_code == 0, result.output
    # the sample tables' closed questions: VQA-RAD 30 (of 36 rows, 6 open ones skipped),
    # PathVQA 36, PMC-VQA 24; 5 closed_vqa variants, and the reference variant again without
    # the image and with a blank one: 90 x (5 + 2) jobs per baseline. Baselines answer an
    # image variant with the original's key: 90 x 5 distinct answers each.
    assert "suite medvqa: 1890 jobs" in result.output
    assert "0 cached; 1350 distinct answers to compute." in result.output
    assert "unavailable" not in result.output


def test_cli_unknown_suite_exits_2_without_traceback(tmp_path: Path) -> None:
    import sys

    from medbench.cli import main

    argv = sys.argv
    sys.argv = [
        "medbench",
        "plan",
        str(REPO / "specs"),
        "--suite",
        "quickstrat",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = argv
    assert exit_info.value.code == 2


def test_cli_plan_paper_needs_neither_the_openai_key_nor_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    from tests.spec_tree import full_data_tree, hub_refs

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    # medbench reads the hub settings from huggingface_hub.constants, as transformers does;
    # they are read once, on import, so an in-process test sets the constants themselves
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_refs(tmp_path / "hub")))
    monkeypatch.setenv("MEDBENCH_DATA", str(full_data_tree(tmp_path / "data")))
    args = ["plan", str(REPO / "specs"), "--suite", "paper", "--cache", str(tmp_path / "c.sqlite")]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "OPENAI_API_KEY" not in result.output
    # 22 images: 5 VLMs x 14 variants (12 + 2 describe) and 3 baselines x 12 variants = 2332;
    # the image variants, with each family's reference wording: for each VLM 12 derived
    # images x 2 families x 22 images, and one no-image answer per family and task (2 x 4);
    # the mismatched images are other samples' own (their answers are planned already), and
    # baselines keep the original keys: 2332 + 5 x (528 + 8) = 5012
    lines = result.output.splitlines()
    assert lines[-2] == "0 cached; 5012 distinct answers to compute."
    assert lines[-1].startswith(
        "histopathology: a fixed subset of 250 images per class (seed 0): LC25000's 15,000 "
        "lung images are augmentations"
    )


def test_cli_plan_locates_a_missing_data_folder_in_the_task_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from medbench.cli import main
    from tests.spec_tree import make_project

    project = make_project(tmp_path)
    monkeypatch.chdir(project)
    sample = project / "data/sample/pneumonia_cxr"
    (sample / "normal").rename(sample / "NORMAL")
    monkeypatch.setattr(
        sys, "argv", ["medbench", "plan", "specs", "--suite", "t", "--cache", "c.sqlite"]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "specs/tasks/pneumonia_cxr.yaml:19:9: labels.1.id: no readable images of this label in "
        "the `sample` data. Add its images, or map a folder to it in `label_map`.\n"
        "specs/tasks/pneumonia_cxr.yaml:26:11: data.sample.path: folder 'NORMAL' is not a label "
        "of this task (pneumonia, normal). Map it in `label_map`, or list it in `exclude`.\n"
    )


def test_cli_site_serve_on_a_busy_port_says_so_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket
    import sys

    from medbench.cli import main

    (tmp_path / "index.html").write_text("<!doctype html>")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["medbench", "site", "serve", "--out", str(tmp_path), "--port", str(port)]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            main()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        f"error: 127.0.0.1:{port} is already in use (another `medbench site serve`?). "
        f"Stop it, or pass another port: --port {port + 1}.\n"
    )


def test_cli_site_serve_does_not_say_it_replaces_its_folder() -> None:
    serve = runner.invoke(app, ["site", "serve", "--help"])
    build = runner.invoke(app, ["site", "build", "--help"])
    assert "replaced" not in serve.output
    assert "replaced" in build.output


def test_cli_site_build_outside_a_project_says_where_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    from medbench.errors import RecordError

    result = runner.invoke(app, ["site", "build"])
    assert isinstance(result.exception, RecordError)  # the entry point prints it, exits 1
    assert str(result.exception) == (
        "leaderboard: no such leaderboard folder, and no local results in results/. Run from "
        "the project root (the folder holding leaderboard/ and specs/), or pass --leaderboard."
    )
    assert not (tmp_path / "_site").exists()


def test_cli_plan_fits_80_columns_without_cutting_ids(tmp_path: Path) -> None:
    models = ["baseline-always-positive", "tiny-gemma3-general"]
    result = runner.invoke(
        app,
        [
            "plan",
            str(REPO / "specs"),
            "--suite",
            "quickstart",
            *(f"--model={m}" for m in models),
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
        env={"COLUMNS": "80", "MEDBENCH_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"},
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines)) <= 80
    rows = [line.split() for line in lines]
    assert {r[0] for r in rows if r and r[0] in models} == set(models)
    tasks = {"brain_tumor_mri", "pneumonia_cxr", "skin_lesion", "histopathology"}
    assert {word for r in rows for word in r if word in tasks} == tasks
    assert "…" not in "".join(w for r in rows if r and r[0] in models for w in r[:1])
