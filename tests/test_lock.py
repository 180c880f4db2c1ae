"""The locks: the CPU build's, and the CUDA build's that `make venv GPU=cu130` installs."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torch_cuda() -> str:
    match = re.search(r"^TORCH_CUDA := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert match is not None
    return match[1]


def test_check_lock_cuda_torch_is_held_to_the_cuda_lock() -> None:
    check = _script("check_lock")
    cpu, cpu_locks = check.expected_pins("2.13.0+cpu")
    cuda, cuda_locks = check.expected_pins("2.13.0")
    assert [p.name for p in cpu_locks] == ["requirements.lock"]
    assert [p.name for p in cuda_locks] == [
        "requirements.lock",
        f"requirements-{torch_cuda()}.lock",
    ]
    assert (cpu["torch"], cuda["torch"]) == ("2.13.0+cpu", "2.13.0")
    runtime = sorted(set(cuda) - set(cpu))
    assert runtime and all(re.match(r"^(nvidia-|cuda-|triton$)", name) for name in runtime)
    assert {n: v for n, v in cuda.items() if n in cpu and n != "torch"} == {
        n: v for n, v in cpu.items() if n != "torch"
    }


@pytest.mark.parametrize("build", ["cpu", "cuda"])
def test_check_lock_accepts_either_build_installed_from_its_locks(
    build: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    check = _script("check_lock")
    pins, _ = check.expected_pins("2.13.0" if build == "cuda" else "2.13.0+cpu")
    monkeypatch.setattr(check, "installed", lambda: dict(pins))
    assert check.main() == 0
    locks = "requirements.lock" + (
        f" + requirements-{torch_cuda()}.lock" if build == "cuda" else ""
    )
    assert capsys.readouterr().out == f"environment matches {locks}: {len(pins)} pins\n"


def test_check_lock_cpu_torch_beside_the_cuda_runtime_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    check = _script("check_lock")
    cuda, _ = check.expected_pins("2.13.0")
    monkeypatch.setattr(check, "installed", lambda: {**cuda, "torch": "2.13.0+cpu"})
    assert check.main() == 1
    assert "requirements.lock: not in the lock: nvidia-cublas==" in capsys.readouterr().err


def test_split_lock_gives_the_cuda_lock_torch_and_its_runtime() -> None:
    lock = _script("lock")
    resolved = [
        "filelock==4.1.0",
        "nvidia-cublas==13.1.1.3 ; sys_platform == 'linux'",
        "torch==2.13.0",
        "triton==3.7.1 ; sys_platform == 'linux'",
    ]
    assert lock.split_lock(resolved, "2.13.0") == (
        ["filelock==4.1.0", "torch==2.13.0+cpu"],
        ["torch==2.13.0", "nvidia-cublas==13.1.1.3 ; sys_platform == 'linux'"]
        + ["triton==3.7.1 ; sys_platform == 'linux'"],
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_venv_says_what_it_installs_and_how_long_it_takes(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    dry = ["make", "-n", "-B", "-C", str(REPO), "venv", f"VENV={venv}", "GPU="]
    said = [
        line.removeprefix('echo "').removesuffix('"')
        for line in subprocess.run(
            dry, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if line.startswith('echo "make venv: ')
    ]
    assert said == [
        f"make venv: installing the locked environment into {venv}/ (about 2.4 GB; about 4 "
        "minutes on a busy 2-core machine, more on a slow network)",
        "make venv: 1/3 torch 2.13.0 (the largest part)",
        f"make venv: 2/3 the $(grep -c == {venv}/.lock-without-torch.txt) other pins of "
        "requirements.lock",
        "make venv: 3/3 medbench itself, then pip check",
        "make venv: done",
    ]
