"""The GPU check's logic on the CPU: a tiny model in a child process, and fakes that hang or
fail in theirs (the GPU itself is not tested here)."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from medbench.checks.gpu import choose_models, main
from medbench.checks.gpu_report import (
    COLUMNS,
    Answered,
    Begun,
    Described,
    Loaded,
    ModelReport,
    Peak,
    Scored,
    summary_table,
)
from medbench.checks.gpu_steps import describe_request, sample_requests
from medbench.checks.template_test import TEST_NAME, run_template_test
from medbench.run.backends.base import Output
from medbench.spec.loading import load_specs
from tests import gpu_fakes

REPO = Path(__file__).resolve().parents[2]
SPECS = load_specs(REPO / "specs")
SCRIPT = REPO / "scripts" / "gpu_check.sh"
HEADER = (
    "model | dtype | load s | batch 1 requests/s | auto batch | auto requests/s | peak GPU MiB "
    "| answers differ | likelihood requests/s | description tokens | template test | status"
)


def rows(lines: list[str]) -> list[list[str]]:
    """The summary table's rows after its header and rule, split into stripped cells."""
    start = next(i for i, line in enumerate(lines) if line.startswith("model "))
    assert [c.strip() for c in lines[start].split("|")] == list(COLUMNS)
    return [[c.strip() for c in line.split("|")] for line in lines[start + 2 :] if "|" in line]


def test_gpu_check_chooses_the_real_models_in_the_hf_cache(tmp_path: Path) -> None:
    snapshot = tmp_path / "models--llava-hf--llava-1.5-7b-hf" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--google--gemma-3-4b-it" / "snapshots").mkdir(parents=True)  # no files
    chosen, skipped = choose_models(SPECS, [], tmp_path)
    assert chosen == ["llava-1.5-7b"]
    assert skipped == [
        f"skip gemma-3-4b-it: google/gemma-3-4b-it is not in the local HF cache ({tmp_path})",
        "skip llava-med-v1.5-mistral-7b: its checkpoint must be converted first",
        "skip llava-v1.6-mistral-7b: llava-hf/llava-v1.6-mistral-7b-hf is not in the local HF "
        f"cache ({tmp_path})",
        f"skip medgemma-4b-it: google/medgemma-4b-it is not in the local HF cache ({tmp_path})",
    ]


def test_gpu_check_asks_each_image_with_two_variants_over_every_task() -> None:
    requests = sample_requests(SPECS, 16)
    assert len(requests) == 32
    tasks = [r.key.split("/")[0] for r in requests]
    assert {t: tasks.count(t) for t in set(tasks)} == {
        "brain_tumor_mri": 8,
        "histopathology": 8,
        "pneumonia_cxr": 8,
        "skin_lesion": 8,
    }
    assert {r.key.rsplit("/", 1)[1] for r in requests} == {"plain", "persona"}
    assert [r.messages.system is not None for r in requests[:2]] == [False, True]


def test_gpu_check_asks_as_a_run_asks_the_model() -> None:
    spec = SPECS.models["llava-1.5-7b"]
    plain, persona = sample_requests(SPECS, 1, spec)
    assert plain.key.startswith("brain_tumor_mri/") and plain.key.endswith("/plain")
    assert plain.messages.system == spec.default_system  # its authors' vicuna_v1 text
    assert persona.messages.system != spec.default_system
    assert {plain.max_new_tokens, persona.max_new_tokens} == {64}  # the closed family's budget
    assert plain.options == ("glioma", "meningioma", "no tumor", "pituitary tumor")


def test_gpu_check_describes_the_first_image_at_the_description_budget() -> None:
    spec = SPECS.models["gemma-3-4b-it"].model_copy(
        update={
            "generation": SPECS.models["gemma-3-4b-it"].generation.model_copy(
                update={"max_new_tokens": 2048}
            )
        }
    )
    first = sample_requests(SPECS, 1, spec)[0]
    request = describe_request(SPECS, spec, first)
    assert request.messages.images == first.messages.images
    assert request.messages.system == "You are an expert in reading brain MRIs."
    assert request.max_new_tokens == 200  # the family's, below the model's 2048
    assert request.key == f"{first.key}/describe_findings"


def test_gpu_check_report_table_names_each_measurement_and_keeps_a_partial_model() -> None:
    done = ModelReport("m-one", template="pass")
    done.events = [
        Loaded(12.34, "bfloat16"),
        Answered(1, False, 2.0, ("yes", "no", "yes")),
        Peak(1000.0),
        Answered(8, True, 11.5, ("yes", "yes", "yes")),
        Peak(2048.4),
        Scored(8, 1, 30.0),
        Described(300, 1024, 9.0, "stop"),
    ]
    cut = ModelReport("model-two", template="skipped: not in the cache")
    cut.events = [Begun("load"), Loaded(3.0, "float16"), Begun("batch 1")]
    cut.timed_out_s = 120.2
    assert summary_table([done, cut]) == [
        "model     | dtype    | load s | batch 1 requests/s | auto batch | auto requests/s | "
        "peak GPU MiB | answers differ | likelihood requests/s | description tokens | "
        "template test | status",
        "----------+----------+--------+--------------------+------------+-----------------+-"
        "-------------+----------------+-----------------------+--------------------+-"
        "--------------+----------------------",
        "m-one     | bfloat16 | 12.3   | 2.00               | 8          | 11.50           | "
        "2048         | 1 of 3         | 30.00                 | 300/1024           | "
        "pass          | ok",
        "model-two | float16  | 3.0    | -                  | -          | -               | "
        "-            | -              | -                     | -                  | "
        "skipped       | timed out after 120 s",
        "model-two: timed out after 120 s during batch 1; the steps it finished are kept above",
    ]
    assert " | ".join(COLUMNS) == HEADER


@pytest.mark.slow  # a child process
def test_gpu_check_runs_a_tiny_model_in_its_spec_dtype_and_writes_its_calibration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from medbench.run.cost import read_calibration

    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "c.sqlite"))
    out = tmp_path / "calibration.json"
    argv = ["--specs", str(REPO / "specs"), "--model", "tiny-llava", "--images", "2"]
    assert main([*argv, "--device", "cpu", "--calibration", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "tiny-llava: real-template prompt test: no case"
    assert re.fullmatch(r"tiny-llava: checking, time limit \d+ s", lines[1])
    assert re.fullmatch(r"tiny-llava: loaded in \d+\.\d s \(float32\)", lines[3]), lines
    assert re.fullmatch(r"tiny-llava: auto batch \d: \d+\.\d\d requests/s", lines[8]), lines
    (row,) = rows(lines)
    assert row[:2] == ["tiny-llava", "float32"]  # the spec's own dtype
    assert row[4] in {"1", "2", "4"} and row[6] == "-" and row[7] == "0 of 4"
    assert re.fullmatch(r"\d+/12", row[9])  # the model's own 12 tokens cap the description
    assert row[10:] == ["no case", "ok"]
    assert all(re.fullmatch(r"\d+\.\d+", row[i]) for i in (2, 3, 5, 8)), row
    assert lines[-1] == "1 models passed, 0 failed, 0 skipped."
    speed = read_calibration(out).models["tiny-llava"]
    assert speed.prefill_tokens_per_s > 0 and speed.decode_tokens_per_s > 0
    assert f"calibration written to {out}" in lines


@pytest.mark.slow  # a child process
def test_gpu_check_kills_a_model_at_its_limit_keeps_its_steps_and_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--specs", str(REPO / "specs"), "--model", "tiny-llava", "--model", "tiny-text"]
    started = time.monotonic()
    code = main([*argv, "--device", "cpu", "--budget-s", "24"], work=gpu_fakes.hangs_for_llava)
    assert time.monotonic() - started < 40  # the fake sleeps 600 s
    assert code == 1
    lines = capsys.readouterr().out.splitlines()
    llava, text = rows(lines)
    assert llava[:5] == ["tiny-llava", "bfloat16", "0.5", "3.00", "-"]
    assert re.fullmatch(r"timed out after \d+ s", llava[-1]), llava
    assert text[:6] == ["tiny-text", "float32", "0.2", "2.00", "2", "4.00"]
    assert text[-1] == "ok"
    assert re.fullmatch(
        r"tiny-llava: timed out after \d+ s during auto batch; the steps it finished are kept "
        r"above",
        lines[-2],
    )
    assert lines[-1] == "1 models passed, 1 failed, 0 skipped."


@pytest.mark.slow  # a child process
def test_gpu_check_a_model_that_fails_is_reported_with_its_step_and_exit_status_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--specs", str(REPO / "specs"), "--model", "tiny-llava", "--device", "cpu"]
    assert main(argv, work=gpu_fakes.fails_while_scoring) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "tiny-llava: likelihood ..." in lines
    (row,) = rows(lines)
    assert row[7:] == ["1 of 2", "-", "-", "no case", "FAILED"]
    assert lines[-2:] == [
        "tiny-llava: FAILED during likelihood: RuntimeError: out of options",
        "0 models passed, 1 failed, 0 skipped.",
    ]


@pytest.mark.slow  # a child process
def test_gpu_check_a_real_model_that_fails_to_load_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "c.sqlite"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    argv = ["--specs", str(REPO / "specs"), "--model", "llava-med-v1.5-mistral-7b"]
    argv += ["--template-test", str(tmp_path / "missing.py")]
    assert main([*argv, "--images", "1", "--device", "cpu"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "llava-med-v1.5-mistral-7b: real-template prompt test: not run: "
        f"{tmp_path / 'missing.py'} not found (run from the repository)"
    )
    assert lines[-2].startswith("llava-med-v1.5-mistral-7b: FAILED: BackendError: "), lines
    assert lines[-1] == "0 models passed, 1 failed, 0 skipped."


def test_gpu_check_without_cuda_says_how_to_make_the_gpu_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--specs", str(REPO / "specs"), "--model", "tiny-llava"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"CUDA is not available to {sys.executable} (torch {torch.__version__}). Make the GPU "
        'environment with `make venv GPU=cu130` (README, "The locked environment") and run '
        "scripts/gpu_check.sh again; `--device cpu` checks a tiny model on the CPU instead.\n"
    )


@pytest.mark.slow  # a child process
def test_gpu_check_template_test_reports_each_model_case(tmp_path: Path) -> None:
    test_file = tmp_path / "test_golden.py"
    test_file.write_text(
        "import pytest\n\n"
        "@pytest.mark.parametrize('model_id', ['a-pass', 'b-fail', 'c-skip'])\n"
        f"def {TEST_NAME}(model_id):\n"
        "    if model_id == 'c-skip':\n"
        "        pytest.skip('c is not in the local Hugging Face cache')\n"
        "    assert model_id != 'b-fail', 'plain: the template differs'\n"
    )
    models = ["a-pass", "b-fail", "c-skip", "d-none"]
    assert run_template_test(test_file, models, 120) == {
        "a-pass": "pass",
        "b-fail": "FAIL: AssertionError: plain: the template differs",
        "c-skip": "skipped: c is not in the local Hugging Face cache",
        "d-none": "no case",
    }


def test_gpu_check_calibration_times_the_prefill_at_one_new_token(tiny_llava_dir: Path) -> None:
    from medbench.checks.calibrate import measure_speed

    budgets: list[list[int | None]] = []

    def generate(requests: list[Any]) -> list[Output]:
        budgets.append([r.max_new_tokens for r in requests])
        return [Output("a b c") for _ in requests]

    backend = SimpleNamespace(
        generate=generate,
        _loaded=SimpleNamespace(tokenizer=SimpleNamespace(encode=lambda t, **_: t.split())),
        sizer=SimpleNamespace(settled=True, size=2),
    )
    spec = SPECS.models["llava-1.5-7b"]
    requests = sample_requests(SPECS, 1, spec)
    speed = measure_speed(backend, spec, tiny_llava_dir, requests)
    assert budgets == [[1, 1], [64, 64]]
    assert speed.batch_size == 2


def test_gpu_check_script_is_valid_bash_that_runs_the_module_in_each_spec_dtype() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert '-m medbench.checks.gpu --device cuda "$@"' in text
    assert "--dtype" not in text


def test_gpu_check_script_without_a_venv_says_how_to_make_it(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    script = shutil.copy(SCRIPT, tmp_path / "scripts" / "gpu_check.sh")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    done = subprocess.run(["bash", script], capture_output=True, text=True, env=env, check=False)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "scripts/gpu_check.sh: no .venv here. Make the GPU environment first: make venv "
        'GPU=cu130 (README, "The locked environment").\n'
    )


@pytest.mark.slow  # a child process
def test_gpu_check_script_cpu_dry_run_prints_its_summary(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "MEDBENCH_CACHE": str(tmp_path / "c.sqlite")}
    argv = ["--device", "cpu", "--model", "tiny-llava", "--images", "1", "--device-map", "auto"]
    done = subprocess.run(
        ["bash", str(SCRIPT), *argv], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(
        r"tiny-llava: loaded in \d+\.\d s \(float32, device_map auto over cpu\)", lines[3]
    ), lines
    assert rows(lines)[0][-1] == "ok"
    assert lines[-1] == "1 models passed, 0 failed, 0 skipped."
