"""Spec loading: valid trees load; every broken spec is reported at its file, line and column."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import typer
from typer.testing import CliRunner

from medbench.cli import Medbench
from medbench.commands import validate as validate_cmd
from medbench.errors import SpecError, UnknownIdError, UsageError
from medbench.spec.loading import MAX_FILE_BYTES, SpecSet, load_specs

REPO = Path(__file__).resolve().parents[2]
CASES = Path(__file__).resolve().parents[1] / "cases" / "broken_specs"
HEAVY = ("torch", "transformers", "pandas", "sklearn")

TASK = """\
schema_version: 1
kind: task
id: pneumonia_cxr
title: Pneumonia on chest X-ray
modality: chest X-ray
difficulty: 2
question: Does this chest X-ray show pneumonia?
finding: pneumonia
labels:
  - id: pneumonia
    name: pneumonia
    positive: true
    signs: [consolidation, air bronchograms]
  - id: normal
    name: normal
    aliases: [no pneumonia]
data:
  sample: {format: imagefolder, path: data/sample/pneumonia_cxr}
  full: {format: imagefolder, path: "${MEDBENCH_DATA}/chest_xray/test"}
"""
LABEL_FAMILY = """\
schema_version: 1
kind: prompt_family
id: closed
title: Closed diagnosis
answer: label
reference: plain
variants:
  - id: plain
    kind: wording
    template: "{{ question }} Answer with one of: {{ options | join(', ') }}."
  - id: lettered
    kind: lettered
    lettered: true
    template: "{{ question }} {{ lettered_options | join(' ') }}"
"""
YES_NO_FAMILY = """\
schema_version: 1
kind: prompt_family
id: present
title: Finding present
answer: yes_no
reference: plain
variants:
  - id: plain
    kind: wording
    template: "Is there {{ finding }} on this {{ modality }}? Answer yes or no."
  - id: persona
    kind: persona
    system: You are a radiologist.
    template: "Is there {{ finding }}? Answer yes or no."
"""
GENERAL_MODEL = """\
schema_version: 1
kind: model
id: gen-a
title: General A
backend: hf
family: llava
repo: example/gen-a
"""
MEDICAL_MODEL = """\
schema_version: 1
kind: model
id: med-a
title: Medical A
backend: hf
family: llava
repo: example/med-a
base: gen-a
medical: true
"""
SUITE = """\
schema_version: 1
kind: suite
id: demo
title: Demo
data: sample
tasks: [pneumonia_cxr]
prompt_families: [closed, present]
models: [gen-a, med-a]
"""
VALID_TREE = {
    "specs/tasks/pneumonia_cxr.yaml": TASK,
    "specs/prompts/closed.yaml": LABEL_FAMILY,
    "specs/prompts/present.yaml": YES_NO_FAMILY,
    "specs/models/gen-a.yaml": GENERAL_MODEL,
    "specs/models/med-a.yaml": MEDICAL_MODEL,
    "specs/suites/demo.yaml": SUITE,
}


def write_tree(root: Path, files: dict[str, str | None] | None = None) -> Path:
    """Write the valid tree (with `files` replacing or, for None, removing some) under `root`."""
    tree: dict[str, str | None] = {**VALID_TREE, **(files or {})}
    for name, text in tree.items():
        if text is not None:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text, encoding="utf-8")
    return root / "specs"


def load_error(path: Path) -> str:
    with pytest.raises(SpecError) as caught:
        load_specs(path)
    return str(caught.value)


def _case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if p.is_dir())


def test_load_specs_valid_tree_loads_every_kind(tmp_path: Path) -> None:
    specs = load_specs(write_tree(tmp_path))
    assert isinstance(specs, SpecSet)
    assert sorted(specs.tasks) == ["pneumonia_cxr"]
    assert sorted(specs.families) == ["closed", "present"]
    assert specs.models["med-a"].base == "gen-a"
    assert specs.suite("demo").models == ("gen-a", "med-a")
    assert specs.root == tmp_path
    assert specs.data_root == tmp_path / "data"


def test_load_specs_files_hold_relative_path_and_sha256(tmp_path: Path) -> None:
    specs = load_specs(write_tree(tmp_path))
    assert len(specs.files) == len(VALID_TREE)
    spec_file = specs.files[("model", "med-a")]
    assert spec_file.path == Path("specs/models/med-a.yaml")
    assert spec_file.sha256 == hashlib.sha256(MEDICAL_MODEL.encode()).hexdigest()


def test_load_specs_single_file_uses_the_project_root(tmp_path: Path) -> None:
    write_tree(tmp_path)
    specs = load_specs(tmp_path / "specs" / "tasks" / "pneumonia_cxr.yaml")
    assert list(specs.tasks) == ["pneumonia_cxr"]
    assert not specs.models
    assert specs.root == tmp_path


def test_load_specs_outside_a_specs_folder_roots_at_the_parent(tmp_path: Path) -> None:
    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    (folder / "task.yml").write_text(TASK, encoding="utf-8")
    assert load_specs(folder).root == tmp_path / "project"


def test_unknown_suite_id_suggests_a_close_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    specs = load_specs(write_tree(Path(".")))
    with pytest.raises(
        UnknownIdError, match=r"^'dem' is not a suite in specs/\. Did you mean 'demo'\?$"
    ):
        specs.suite("dem")


def test_missing_folder_is_one_issue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as caught:
        load_specs(Path("nowhere"))
    assert str(caught.value) == (
        "nowhere: no such file or folder. Give the spec folder (specs/ in the project) or a spec "
        "file."
    )


def test_folder_without_yaml_is_one_issue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("specs").mkdir()
    with pytest.raises(UsageError) as caught:
        load_specs(Path("specs"))
    assert str(caught.value) == (
        "specs: no spec files (*.yaml, *.yml) in this folder. Give the spec folder (specs/ in the "
        "project) or a spec file."
    )


def test_absolute_paths_outside_the_cwd_are_shown_as_given(tmp_path: Path) -> None:
    specs = write_tree(tmp_path, {"specs/models/gen-a.yaml": GENERAL_MODEL + "dtype: half\n"})
    assert load_error(specs) == (
        f"{tmp_path}/specs/models/gen-a.yaml:8:8: dtype: "
        "expected 'auto', 'float32', 'bfloat16' or 'float16', got 'half'."
    )


def test_a_rejected_file_does_not_affect_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    deep = "a: " + "[" * 40 + "]" * 40 + "\n"
    write_tree(Path("."), {"specs/models/a_deep.yaml": deep, "specs/models/b_bad.yaml": "a: [\n"})
    assert load_error(Path("specs")).splitlines() == [
        "specs/models/a_deep.yaml:1:36: nested deeper than 32 levels.",
        "specs/models/b_bad.yaml:2:1: invalid YAML: expected the node content, but found "
        "'<stream end>'.",
    ]


def test_aliases_and_yml_files_load_and_hidden_files_are_skipped(tmp_path: Path) -> None:
    task = TASK.replace("finding: pneumonia", "finding: &finding pneumonia").replace(
        "    name: pneumonia", "    name: *finding"
    )
    specs = write_tree(tmp_path, {"specs/tasks/pneumonia_cxr.yaml": None})
    (specs / "tasks").mkdir()
    (specs / "tasks" / "pneumonia_cxr.yml").write_text(task, encoding="utf-8")
    (specs / "tasks" / ".#pneumonia_cxr.yaml").write_text("not: [yaml", encoding="utf-8")
    assert load_specs(specs).tasks["pneumonia_cxr"].labels[0].name == "pneumonia"


@pytest.mark.parametrize("case", _case_names())
def test_broken_spec_case_reports_the_expected_message(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CASES / case)
    expected = (CASES / case / "expected.txt").read_text(encoding="utf-8").rstrip("\n")
    assert load_error(Path("specs")) == expected


def test_broken_spec_corpus_has_at_least_30_cases() -> None:
    assert len(_case_names()) >= 30


def test_alias_bomb_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASES / "14_alias_bomb")
    start = time.perf_counter()
    message = load_error(Path("specs"))
    assert time.perf_counter() - start < 0.5
    assert "too many nodes after alias expansion" in message


def test_oversized_case_is_over_the_limit() -> None:
    (big,) = (CASES / "15_oversized_file").rglob("*.yaml")
    assert big.stat().st_size > MAX_FILE_BYTES


def test_trust_remote_code_is_allowed_when_listed(tmp_path: Path) -> None:
    model = GENERAL_MODEL + "trust_remote_code: true\n"
    specs = write_tree(tmp_path, {"specs/models/gen-a.yaml": model})
    (specs / "allow_remote_code.txt").write_text(
        "# reviewed\ngen-a  # see PR 12\n", encoding="utf-8"
    )
    assert load_specs(specs).models["gen-a"].trust_remote_code


def test_templates_render_only_for_the_tasks_a_suite_pairs(tmp_path: Path) -> None:
    no_signs = TASK.replace("pneumonia_cxr", "other").replace(
        "    signs: [consolidation, air bronchograms]\n", ""
    )
    first_sign = LABEL_FAMILY.replace(
        "{{ question }} Answer", "{{ question }} {{ signs[0] }}. Answer"
    )
    specs = write_tree(
        tmp_path,
        {"specs/tasks/other.yaml": no_signs, "specs/prompts/closed.yaml": first_sign},
    )
    assert load_specs(specs).families["closed"]
    (specs / "suites" / "demo.yaml").unlink()
    message = load_error(specs)
    assert message.endswith(
        "closed.yaml:10:15: variants.0.template: undefined value: list object has no element 0 "
        "(rendering for task 'other')."
    )


def test_load_specs_imports_no_heavy_module(tmp_path: Path) -> None:
    specs = write_tree(tmp_path)
    code = (
        "import sys; from pathlib import Path; from medbench.spec.loading import load_specs; "
        "import medbench.commands.validate; "
        f"load_specs(Path({str(specs)!r})); "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_validate", REPO / "benchmarks" / "bench_validate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_validate_of_200_files_imports_no_torch(tmp_path: Path) -> None:
    specs = _bench().write_tree(tmp_path, n_files=200)
    assert len(list(specs.rglob("*.yaml"))) == 200
    code = (
        "import sys; from pathlib import Path; from medbench.commands.validate import validate; "
        f"validate(Path({str(specs)!r}), no_data=True); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "False"
    assert "all valid" in out.stdout


def _app() -> typer.Typer:
    app = typer.Typer(cls=Medbench, add_completion=False, pretty_exceptions_enable=False)
    app.command()(validate_cmd.validate)
    app.command()(validate_cmd.schema)
    return app


def test_validate_command_prints_a_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["validate", str(write_tree(tmp_path)), "--no-data"])
    assert result.exit_code == 0
    expected = "1 task, 2 prompt families (4 variants), 2 models, 1 suite: all valid\n"
    assert result.stdout == expected


def test_validate_command_exits_2_listing_issues_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_tree(
        Path("."),
        {"specs/tasks/pneumonia_cxr.yaml": TASK.replace("difficulty: 2", "difficulty: hard")},
    )
    result = CliRunner().invoke(_app(), ["validate", "specs"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "specs/tasks/pneumonia_cxr.yaml:6:13: difficulty: expected an integer, got 'hard'.\n"
    )
    assert "Traceback" not in result.output


def test_schema_command_prints_one_kind() -> None:
    result = CliRunner().invoke(_app(), ["schema", "task"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["title"] == "TaskSpec"
    assert document["additionalProperties"] is False
    assert result.stdout.strip() == json.dumps(document, indent=2, sort_keys=True)


def test_schema_command_writes_one_file_per_kind(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["schema", "--out", str(tmp_path)])
    assert result.exit_code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{k}.schema.json" for k in ("model", "prompt_family", "suite", "task")]
    suite = json.loads((tmp_path / "suite.schema.json").read_text(encoding="utf-8"))
    assert "prompt_families" in suite["properties"]


def test_schema_command_rejects_an_unknown_kind() -> None:
    result = CliRunner().invoke(_app(), ["schema", "taks"])
    assert result.exit_code == 2
    assert result.stderr == "kind: 'taks' is not a spec kind. Did you mean 'task'?\n"


def test_repo_specs_are_valid() -> None:
    if not (REPO / "specs").is_dir():
        pytest.skip("the repository ships no specs/ yet")
    specs = load_specs(REPO / "specs")
    assert specs.root == REPO


def test_load_specs_folded_scalars_read_as_yaml_defines_them() -> None:
    from ruamel.yaml import YAML

    from medbench.spec.loading._document import _scalar

    source = "a: >-\n  one\n  two\n\n  three\nb: |-\n  x\n  y\n"
    expected = YAML(typ="safe").load(source)
    node = YAML().compose(source)
    values = {k.value: _scalar(v) for k, v in node.value}
    assert values == expected


def test_suite_subset_of_a_task_it_does_not_run_is_a_located_error(tmp_path: Path) -> None:
    suite = SUITE + "subsets:\n  histopathology: {per_class: 5, reason: augmented copies}\n"
    message = load_error(write_tree(tmp_path, {"specs/suites/demo.yaml": suite}))
    assert message == (
        f"{tmp_path}/specs/suites/demo.yaml:1:1: subsets names 'histopathology', which is not "
        "among the suite's tasks (pneumonia_cxr)."
    )


@pytest.mark.parametrize(
    ("subset", "where", "problem"),
    [
        ("{per_class: 0, reason: r}", "10:30", "per_class: expected a number >= 1, got 0."),
        ("{per_class: '5', reason: r}", "10:30", "per_class: expected an integer, got '5'."),
        (
            "{per_class: 5}",
            "10:18",
            "reason: required field is missing. Why this task is evaluated on a subset (shown "
            "by `medbench plan`).",
        ),
    ],
)
def test_suite_subset_fields_are_checked(
    tmp_path: Path, subset: str, where: str, problem: str
) -> None:
    suite = SUITE + f"subsets:\n  pneumonia_cxr: {subset}\n"
    message = load_error(write_tree(tmp_path, {"specs/suites/demo.yaml": suite}))
    assert message == f"{tmp_path}/specs/suites/demo.yaml:{where}: subsets.pneumonia_cxr.{problem}"


# `validate` checks the data sources present here, at the spec field each problem is about.


def tree_with_sample(root: Path, files: dict[str, str | None] | None = None) -> Path:
    """The valid tree plus a copy of the bundled pneumonia sample (its two label folders)."""
    import shutil

    shutil.copytree(REPO / "data/sample/pneumonia_cxr", root / "data/sample/pneumonia_cxr")
    return write_tree(root, files)


def validate_in(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), ["validate", "specs", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.stderr


def test_validate_checks_the_sample_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEDBENCH_DATA", raising=False)
    tree_with_sample(Path("."))
    assert validate_in(tmp_path) == (0, "")
    sample = Path("data/sample/pneumonia_cxr")
    (sample / "normal").rename(sample / "NORMAL")
    (sample / "pneumonia" / "scan.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (sample / "pneumonia" / "empty.png").write_bytes(b"")
    code, err = validate_in(tmp_path)
    assert code == 2
    task = "specs/tasks/pneumonia_cxr.yaml"
    assert err == (
        f"{task}:14:9: labels.1.id: no readable images of this label in the `sample` data. "
        "Add its images, or map a folder to it in `label_map`.\n"
        f"{task}:18:39: data.sample.path: 2 image(s) cannot be read: pneumonia/empty.png "
        "(not an image), pneumonia/scan.jpg (not an image). Replace or remove them.\n"
        f"{task}:18:39: data.sample.path: folder 'NORMAL' is not a label of this task "
        "(pneumonia, normal). Map it in `label_map`, or list it in `exclude`.\n"
    )
    assert validate_in(tmp_path, "--no-data") == (0, "")


def test_validate_checks_the_full_data_only_when_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEDBENCH_DATA", raising=False)
    tree_with_sample(Path("."))
    assert validate_in(tmp_path) == (0, "")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    code, err = validate_in(tmp_path, "--data", str(downloads))
    assert code == 2
    assert err == (
        f"specs/tasks/pneumonia_cxr.yaml:19:37: data.full.path: folder not found: "
        f"{downloads}/chest_xray/test. Fix the path, or add the data.\n"
    )
    monkeypatch.setenv("MEDBENCH_DATA", str(downloads))
    assert validate_in(tmp_path)[0] == 2


def test_validate_checks_a_missing_sample_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_tree(Path("."))
    code, err = validate_in(tmp_path)
    assert (code, err) == (
        2,
        f"specs/tasks/pneumonia_cxr.yaml:18:39: data.sample.path: folder not found: "
        f"{tmp_path}/data/sample/pneumonia_cxr. Fix the path, or add the data.\n",
    )


def test_validate_warns_about_a_paired_model_without_its_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tree_with_sample(
        Path("."), {"specs/suites/demo.yaml": SUITE.replace("[gen-a, med-a]", "[med-a]")}
    )
    code, err = validate_in(tmp_path)
    assert (code, err) == (
        0,
        "warning: specs/suites/demo.yaml:8:10: models.0: model 'med-a' is paired with its base "
        "'gen-a', which this suite does not list: the pair is not compared. "
        "Add 'gen-a' to `models`.\n",
    )
