"""The GPU check's logic, run on a tiny model on the CPU (the GPU itself is not tested here)."""

import re
import subprocess
from pathlib import Path

import pytest

from medbench.checks.gpu import choose_models, main, sample_requests
from medbench.spec.loading import load_specs

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_chooses_the_real_models_in_the_hf_cache(tmp_path: Path) -> None:
    snapshot = tmp_path / "models--llava-hf--llava-1.5-7b-hf" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--google--gemma-3-4b-it" / "snapshots").mkdir(parents=True)  # no files
    chosen, skipped = choose_models(load_specs(REPO / "specs"), [], tmp_path)
    assert chosen == ["llava-1.5-7b"]
    assert skipped == [
        f"skip gemma-3-4b-it: google/gemma-3-4b-it is not in the local HF cache ({tmp_path})",
        "skip llava-med-v1.5-mistral-7b: its checkpoint must be converted first",
        "skip llava-v1.6-mistral-7b: llava-hf/llava-v1.6-mistral-7b-hf is not in the local HF "
        f"cache ({tmp_path})",
        f"skip medgemma-4b-it: google/medgemma-4b-it is not in the local HF cache ({tmp_path})",
    ]


def test_gpu_check_asks_each_image_with_two_variants_over_every_task() -> None:
    requests = sample_requests(load_specs(REPO / "specs"), 16)
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


def test_gpu_check_runs_a_tiny_model_on_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "c.sqlite"))
    argv = ["--specs", str(REPO / "specs"), "--model", "tiny-llava", "--images", "4"]
    assert main([*argv, "--device", "cpu", "--dtype", "float32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        r"tiny-llava: load \d+\.\d s; batch 1: \d+\.\d\d images/s; auto batch 2: \d+\.\d\d "
        r"images/s; peak memory n/a \(not CUDA\); 0 of 8 answers differ between batch 1 and "
        r"batch 2",
        lines[0],
    ), lines
    assert lines[1:] == ["1 models checked, 0 failed, 0 skipped."]


def test_gpu_check_device_map_loads_through_accelerate_and_names_the_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "c.sqlite"))
    argv = ["--specs", str(REPO / "specs"), "--model", "tiny-llava", "--images", "2"]
    assert main([*argv, "--device", "cpu", "--dtype", "float32", "--device-map", "auto"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tiny-llava (device_map auto over cpu): load "), lines
    assert re.search(r"; 0 of 4 answers differ between batch 1 and batch \d+$", lines[0]), lines


def test_gpu_check_a_model_that_fails_is_reported_and_the_exit_status_is_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "c.sqlite"))
    argv = ["--specs", str(REPO / "specs"), "--model", "llava-med-v1.5-mistral-7b"]
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main([*argv, "--images", "1", "--device", "cpu"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("llava-med-v1.5-mistral-7b: FAILED: BackendError: ")
    assert lines[1] == "0 models checked, 1 failed, 0 skipped."


def test_gpu_check_script_is_valid_bash_that_runs_the_module() -> None:
    script = REPO / "scripts" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "-m medbench.checks.gpu --device cuda --dtype bfloat16" in script.read_text()


def test_gpu_check_calibration_writes_the_speeds_plan_cost_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from medbench.run.cost import read_calibration

    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "c.sqlite"))
    out = tmp_path / "calibration.json"
    argv = ["--specs", str(REPO / "specs"), "--model", "tiny-llava", "--images", "2"]
    assert main([*argv, "--device", "cpu", "--dtype", "float32", "--calibration", str(out)]) == 0
    calibration = read_calibration(out)
    assert calibration.gpu == "cpu"
    speed = calibration.models["tiny-llava"]
    assert speed.prefill_tokens_per_s > 0 and speed.decode_tokens_per_s > 0
    assert f"calibration written to {out}" in capsys.readouterr().out
