"""A real model never starts on the CPU unless `--device cpu` says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medbench.cli import app
from medbench.run.backends import device as device_module
from medbench.run.backends.device import cpu_refusal
from medbench.spec.loading import load_specs
from tests.spec_tree import make_project

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "cuda_available", lambda: False)


@pytest.fixture
def nothing_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    def make_plan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the run planned (resolving revisions) before refusing")

    monkeypatch.setattr("medbench.run.prepare.make_plan", make_plan)


def run(project: Path, tmp_path: Path, *args: str) -> Any:
    command = ["run", str(project / "specs"), "-s", "t", "--cache", str(tmp_path / "c.sqlite")]
    return CliRunner().invoke(app, [*command, *args])


@pytest.mark.usefixtures("no_cuda", "nothing_resolved")
def test_run_real_model_on_cpu_by_default_is_refused_before_planning(tmp_path: Path) -> None:
    project = make_project(tmp_path, models=("baseline-chance", "tiny-llava", "llava-1.5-7b"))
    result = run(project, tmp_path)
    assert result.exit_code == 2, result.output
    assert result.output == (
        "llava-1.5-7b would run on the CPU (days to weeks for a 7B model): --device auto falls "
        "back to the CPU and CUDA is not available here; install a CUDA build of torch "
        "(`make venv GPU=cu130`), or pass --device cpu to run on the CPU anyway.\n"
    )


@pytest.mark.usefixtures("no_cuda", "nothing_resolved")
def test_run_adhoc_model_on_missing_cuda_is_refused_before_planning(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    result = run(project, tmp_path, "--model", f"hf:org/med@{SHA}", "--device", "cuda")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(
        f"hf:org/med@{SHA} would run on the CPU (days to weeks for a 7B model): --device cuda "
        "asks for cuda and CUDA is not available here;"
    )


@pytest.mark.usefixtures("no_cuda")
def test_cpu_refusal_spares_test_models_baselines_and_device_cpu(tmp_path: Path) -> None:
    project = make_project(tmp_path, models=("baseline-chance", "tiny-llava", "llava-1.5-7b"))
    specs = load_specs(project / "specs")
    assert cpu_refusal(specs, "t", ["baseline-chance", "tiny-llava"], "auto") is None
    assert cpu_refusal(specs, "t", None, "cpu") is None
    # on Ray the models run on the cluster's machines, whose GPUs the driver cannot see
    assert cpu_refusal(specs, "t", None, "auto", executor="ray") is None
    assert cpu_refusal(specs, "t", [f"hf:org/med@{SHA}"], "cpu", base="org/general") is None
    refusal = cpu_refusal(specs, "t", [f"hf:org/med@{SHA}"], "auto", base="org/general")
    assert refusal is not None and refusal.startswith(
        f"hf:org/med@{SHA}, hf:org/general would run on the CPU"
    )


def test_cpu_refusal_lets_a_visible_gpu_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device_module, "cuda_available", lambda: True)
    specs = load_specs(make_project(tmp_path, models=("llava-1.5-7b",)) / "specs")
    assert cpu_refusal(specs, "t", None, "auto") is None
