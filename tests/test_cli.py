import filecmp
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import get_args

import pytest
import typer
from typer._click.core import Command
from typer.testing import CliRunner

from medbench.cli import app
from medbench.home import project_folder
from tests.spec_tree import make_project

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


def _commands(command: Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's words after `medbench`, groups included (`()`: medbench itself)."""
    found = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _named(command: tuple[str, ...]) -> str:
    return " ".join(("medbench", *command))


def test_cli_commands_are_found() -> None:
    assert {(), ("run",), ("cache",), ("cache", "prune"), ("site", "build")} <= set(COMMANDS)
    assert len(COMMANDS) == 24


@pytest.mark.parametrize("command", COMMANDS, ids=_named)
def test_cli_every_command_help_has_an_example_and_plain_flags(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    assert f"\n  Example: {_named(command)}" in result.output
    assert "<bool>" not in result.output


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
    # 4 tasks x 8 images per class (2-4 classes) = 88 images; 14 variants; and the noise
    # floor's replicates: 2 reference variants x every image (up to 32 per task: all 88)
    assert "0 cached; 1408 distinct answers to compute." in result.output
    # the plan is the result: all of it on stdout (`medbench plan ... > plan.txt`)
    assert "baseline-chance" in result.stdout and result.stderr == ""


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
    # PathVQA 36, PMC-VQA 24; 6 closed_vqa variants, and the reference variant again without
    # the image and with a blank one: 90 x (6 + 2) jobs per baseline. Baselines answer an
    # image variant with the original's key: 90 x 6 distinct answers each.
    assert "suite medvqa: 2160 jobs" in result.output
    assert "0 cached; 1620 distinct answers to compute." in result.output
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
    # 22 images: 5 VLMs x 16 variants (14 + 2 describe) and 3 baselines x 14 variants = 2684;
    # the image variants, with each family's reference wording: for each VLM 12 derived
    # images x 2 families x 22 images, and one no-image answer per family and task (2 x 4);
    # the mismatched images are other samples' own (their answers are planned already), and
    # baselines keep the original keys: 2684 + 5 x (528 + 8) = 5364; and the medical
    # perturbations on their own task's images (8 brain MRI, 4 chest X-ray, 4 skin, 6 slides):
    # 5 x 2 families x (10 x 8 + 10 x 4 + 5 x 4 + 5 x 6) = 1700, so 7064
    lines = result.output.splitlines()
    assert lines[-2] == "0 cached; 7064 distinct answers to compute."
    assert lines[-1].startswith(
        "histopathology: a fixed subset of 250 images per class (seed 0): LC25000's 15,000 "
        "lung images are augmentations"
    )
    # on an 80-column terminal: ids whole, the note wrapped at word boundaries, indented
    terminal = {"COLUMNS": "80", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"}
    styled = runner.invoke(app, args, env=terminal).output
    shown = re.sub("\x1b\\[[0-9;]*m", "", styled).splitlines()
    assert max(map(len, shown)) <= 80
    assert any(line.split()[:1] == ["llava-med-v1.5-mistral-7b"] for line in shown)
    note = shown[shown.index(lines[-2]) + 1 :]
    assert note[0].startswith("histopathology: ") and len(note) > 1
    assert all(line.startswith("    ") for line in note[1:])
    assert " ".join(line.strip() for line in note) == lines[-1]


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


# One exit-status convention for every command (README "Exit codes"): 2 for a usage, spec or
# data error, 1 for failed work; each printed on one line per problem, `where: what. What to do.`


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The current folder: a project with suite `t` (baseline-chance on the pneumonia sample),
    an answer cache and a medbench home of its own."""
    root = make_project(tmp_path)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "c.sqlite"))
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path / "home"))
    yield root


def _with_specs(specs: str) -> dict[str, list[str]]:
    """Every command that reads a spec folder, given `specs`."""
    return {
        "validate": ["validate", specs],
        "plan": ["plan", specs, "-s", "t"],
        "run": ["run", specs, "-s", "t"],
        "score": ["score", specs, "-s", "t"],
        "prompts": ["prompts", specs, "-m", "baseline-chance", "-t", "pneumonia_cxr"],
        "audit-parse": ["audit-parse", specs, "-s", "t", "--judge", "baseline-chance"],
        "check batch-invariance": ["check", "batch-invariance", specs, "-s", "t"],
        "cache stats": ["cache", "stats", "--specs", specs],
        "cache prune": ["cache", "prune", "--specs", specs],
        "cache export": ["cache", "export", "out.jsonl", "--specs", specs],
        "publish": ["publish", "-s", "t", "--specs", specs],
        "verify": ["verify", str(REPO / "leaderboard"), "--specs", specs],
        "republish": ["republish", str(REPO / "leaderboard"), "--specs", specs, "--dry-run"],
        "site build": ["site", "build", "--specs", specs],
    }


SPEC_COMMANDS = sorted(_with_specs("specs"))


def test_cli_spec_commands_are_every_command_with_a_spec_folder() -> None:
    reads_specs = {
        " ".join(c)
        for c in COMMANDS
        if any(p.name == "specs" or "--specs" in getattr(p, "opts", ()) for p in _command(c).params)
    }
    assert reads_specs | {"validate"} == set(SPEC_COMMANDS)  # validate's argument is PATH


def _command(words: tuple[str, ...]) -> Command:
    command = typer.main.get_command(app)
    for word in words:
        command = command.commands[word]  # type: ignore[attr-defined]
    return command


@pytest.mark.parametrize("command", COMMANDS, ids=_named)
def test_cli_unknown_option_exits_2_on_one_line(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--bogus"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"--bogus: {_named(command)} has no such option.")
    assert result.stderr.endswith(f" See '{_named(command)} --help'.\n")
    assert result.stderr.count("\n") == 1


def test_cli_executor_choices_are_the_executors() -> None:
    from medbench.commands.options import Executor
    from medbench.run.executors import EXECUTORS

    assert get_args(Executor) == tuple(EXECUTORS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "--limit", "0"], "--limit: Input should be greater than or equal to 1."),
        (["audit-parse"], "--judge: medbench audit-parse needs this option."),
        (["prompts", "-t", "x"], "--model: medbench prompts needs this option."),
        (["tiny-model", "vit", "out"], "arch: 'vit' is not one of 'llava', 'llava_next', "
         "'gemma3', 'text'."),
        (["run", "--executor", "dask"], "--executor: 'dask' is not one of 'local', 'ray'."),
        (["nosuch"], "medbench: No such command 'nosuch'."),
    ],
)  # fmt: skip
def test_cli_bad_argument_exits_2_saying_which(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    command = "medbench" if args == ["nosuch"] else f"medbench {args[0]}"
    assert result.stderr == f"{message} See '{command} --help'.\n"


@pytest.mark.parametrize("name", SPEC_COMMANDS)
@pytest.mark.usefixtures("project")
def test_cli_missing_spec_folder_exits_2(name: str) -> None:
    result = runner.invoke(app, _with_specs("nowhere")[name])
    assert (result.exit_code, result.stderr) == (
        2,
        "nowhere: no such file or folder. Give the spec folder (specs/ in the project) or a spec "
        "file.\n",
    )


@pytest.mark.parametrize("name", SPEC_COMMANDS)
def test_cli_invalid_spec_exits_2_as_validate_reports_it(project: Path, name: str) -> None:
    (project / "specs/models/broken.yaml").write_text("schema_version: 1\nkind: model\nid: x\n")
    validate = runner.invoke(app, ["validate", "specs", "--no-data"])
    assert validate.exit_code == 2
    assert validate.stderr.startswith("specs/models/broken.yaml:")
    result = runner.invoke(app, _with_specs("specs")[name])
    assert (result.exit_code, result.stderr) == (2, validate.stderr)


SUITE_COMMANDS = {
    "plan": ["plan", "specs"],
    "run": ["run", "specs"],
    "score": ["score", "specs"],
    "prompts": ["prompts", "specs", "-m", "baseline-chance", "-t", "pneumonia_cxr"],
    "audit-parse": ["audit-parse", "specs", "--judge", "baseline-chance"],
    "check batch-invariance": ["check", "batch-invariance", "specs"],
    "publish": ["publish"],
}


def test_cli_suite_commands_are_every_command_with_a_suite() -> None:
    has_suite = {
        " ".join(c) for c in COMMANDS if any("--suite" in p.opts for p in _command(c).params)
    }
    assert has_suite == set(SUITE_COMMANDS)


@pytest.mark.parametrize("name", sorted(SUITE_COMMANDS))
@pytest.mark.parametrize("given", [["--suite", "nope"], ["-s", "nope"], ["--suite=nope"]])
@pytest.mark.usefixtures("project")
def test_cli_unknown_suite_exits_2_naming_the_option(name: str, given: list[str]) -> None:
    result = runner.invoke(app, [*SUITE_COMMANDS[name], *given])
    assert (result.exit_code, result.stderr) == (
        2,
        "--suite: 'nope' is not a suite in specs/. Choose from: t.\n",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "specs", "-s", "t", "-m", "nope"], "--model: 'nope' is not a model of suite t."),
        (["run", "specs", "-s", "t", "-m", "nope"], "--model: 'nope' is not a model of suite t."),
        (["check", "batch-invariance", "specs", "-s", "t", "-m", "nope"],
         "--model: 'nope' is not a model of suite t."),
        (["prompts", "specs", "-m", "nope", "-t", "pneumonia_cxr"],
         "--model: 'nope' is not a model in specs/."),
        (["prompts", "specs", "-m", "baseline-chance", "-t", "nope"],
         "--task: 'nope' is not a task in specs/."),
        (["plan", "specs", "-s", "t", "-t", "nope"], "--task: 'nope' is not a task of suite t."),
        (["audit-parse", "specs", "-s", "t", "--judge", "nope"],
         "--judge: 'nope' is not a model in specs/."),
    ],
)  # fmt: skip
@pytest.mark.usefixtures("project")
def test_cli_unknown_id_exits_2_naming_the_option(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message + " ")
    assert result.stderr.count("\n") == 1


@pytest.mark.usefixtures("project")
def test_cli_publish_unknown_model_or_unscored_suite_exits_2() -> None:
    result = runner.invoke(app, ["publish", "-s", "t"])
    assert (result.exit_code, result.stderr) == (
        2,
        "results/t: no answers.parquet or layout.json. Score the suite first: `medbench score`.\n",
    )
    assert runner.invoke(app, ["run", "specs", "-s", "t", "--no-site", "--no-probe"]).exit_code == 0
    result = runner.invoke(app, ["publish", "-s", "t", "-m", "nope"])
    assert (result.exit_code, result.stderr) == (
        2,
        "--model: 'nope' is not a model with answers in results/t. Choose from: baseline-chance.\n",
    )


def _bad_record(folder: Path) -> list[str]:
    (folder / "board/t").mkdir(parents=True)
    (folder / "board/t/x.json").write_text("[]")
    return ["verify", "board"]


def _corrupt_cache(folder: Path) -> list[str]:
    (folder / "c.sqlite").write_text("not a database")
    return ["cache", "stats", "--cache", "c.sqlite"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_bad_record, "board/t/x.json:1:1: input should be an object, got []\n"),
        (_corrupt_cache, "error: c.sqlite: cannot open the answer cache (file is not a database)."),
    ],
)
def test_cli_failed_work_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Callable[[Path], list[str]], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, make(tmp_path))
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_cli_site_build_from_a_subfolder_builds_the_projects_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(REPO / "leaderboard", tmp_path / "leaderboard")
    (tmp_path / "docs/notes").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "docs/notes")
    result = runner.invoke(app, ["site", "build"])
    assert result.exit_code == 0, result.output
    using, building = result.stderr.splitlines()
    assert using == f"using the project in {tmp_path}"
    assert building.startswith("✓ building the site in ../../_site/ 0:00:")  # its progress
    assert result.stdout.endswith(" files written to ../../_site/ (open ../../_site/index.html)\n")
    assert (tmp_path / "_site/index.html").is_file()
    assert not Path("_site").exists()


def test_cli_site_build_outside_a_project_exits_2_saying_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if project_folder(tmp_path) is not None:
        pytest.skip("a folder above the test's holds leaderboard/, results/ or specs/")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["site", "build"])
    assert (result.exit_code, result.stderr) == (
        2,
        f"{tmp_path}: not in a medbench project: no leaderboard/, results/ or specs/ here or in "
        "any folder above. Run it in the project, or give the folders: --leaderboard DIR (or "
        "--results DIR) and --out DIR.\n",
    )
    assert list(tmp_path.iterdir()) == []
    result = runner.invoke(app, ["site", "build", "--leaderboard", "board", "--out", "site"])
    assert (result.exit_code, result.stderr) == (
        2,
        "board: no such leaderboard folder, and no local results in results/. Give the folder "
        "of published records with --leaderboard, or the results of `medbench run` with "
        "--results.\n",
    )


def _readme_exit_code_examples() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Exit codes") : text.index("## Contributing")]
    block = section.split("```console\n")[1].split("```")[0]
    examples = []
    for example in block.split("$ medbench ")[1:]:
        command, said = example.split("\n", 1)
        examples.append((command, said))
    return examples


@pytest.mark.parametrize(("command", "said"), _readme_exit_code_examples())
def test_cli_readme_exit_code_examples_say_what_they_show(
    command: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    result = runner.invoke(app, command.split())
    assert (result.exit_code, result.stderr) == (2, said)


def test_cli_validate_notes_what_an_openai_model_cannot_apply_client_side(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project / "specs/models/served-llava.yaml").write_text(
        "schema_version: 1\nkind: model\nid: served-llava\ntitle: LLaVA-1.5 served by vLLM\n"
        "backend: openai\nfamily: llava\nsystem_prompt: fold_into_user\n"
        "image_preprocess: pad_square\ndtype: float16\n"
        "openai: {base_url: 'http://127.0.0.1:8000/v1', model: llava-hf/llava-1.5-7b-hf}\n"
    )
    result = runner.invoke(app, ["validate", str(project / "specs"), "--no-data"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: specs/models/gpt-5.1.yaml: model gpt-5.1: not applied client-side: the chat "
        "template (the server renders the messages with its own, unchecked); `system_prompt: "
        "template` (a system message is sent; whether the server's template keeps it is not "
        "checked, as the hf backend checks it).",
        "note: specs/models/served-llava.yaml: model served-llava: not applied client-side: the "
        "chat template (the server renders the messages with its own, unchecked); the image "
        "processor's resizing (the server's processor makes the model's input); an image after "
        "the text where the server's template writes images first (llava-hf's do): the image "
        "part is sent after the text; the processor's mean colour (the padding uses CLIP's, "
        "(122, 116, 104)); `dtype: float16` (the server's own).",
    ]
