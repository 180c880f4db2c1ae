"""Where a run's models would compute: refuse to start a real model on the CPU by accident."""

from __future__ import annotations

from collections.abc import Sequence

from medbench.spec import PREFIX, is_adhoc
from medbench.spec.loading import SpecSet

CUDA_INSTALL = "make venv GPU=cu130"
"""The documented command that installs the lock's versions with a CUDA build of torch."""


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch; asked only when a real model runs)."""
    import torch

    return bool(torch.cuda.is_available())


def real_models(specs: SpecSet, suite: str, models: Sequence[str] | None) -> list[str]:
    """The run's `hf` models that are neither tiny test models nor baselines: the selected
    models (all of the suite's without a selection), ad hoc ones and the describe stage's
    diagnosers. Ids the suite does not know are left to the planner to report."""
    chosen = list(models or ())
    if suite in specs.suites:
        plan_suite = specs.suite(suite)
        chosen = chosen or list(plan_suite.models)
        if plan_suite.describe is not None:
            chosen += plan_suite.describe.diagnosers
    real: list[str] = []
    for ref in dict.fromkeys(chosen):
        spec = specs.models.get(ref)
        if is_adhoc(ref) or (spec is not None and spec.backend == "hf" and not spec.test_model):
            real.append(ref)
    return real


def cpu_refusal(
    specs: SpecSet,
    suite: str,
    models: Sequence[str] | None,
    device: str,
    *,
    base: str | None = None,
    executor: str = "local",
) -> str | None:
    """Why the run must not start, in one line with the fix, or None: a real model would run on
    the CPU (`--device auto` without CUDA) or on a CUDA device this torch cannot see. Only
    `--device cpu` runs a real model on the CPU. Decided before anything is resolved or loaded.
    Under `--executor ray` the models run on the cluster's machines, not here: not decided."""
    if device == "cpu" or executor != "local":
        return None
    pair = [base if is_adhoc(base) else PREFIX + base] if base else []
    real = real_models(specs, suite, [*(models or ()), *pair])
    if not real or cuda_available():
        return None
    named = ", ".join(real[:3]) + (f" and {len(real) - 3} more" if len(real) > 3 else "")
    where = "falls back to the CPU" if device == "auto" else f"asks for {device}"
    return (
        f"{named} would run on the CPU (days to weeks for a 7B model): --device {device} {where} "
        f"and CUDA is not available here; install a CUDA build of torch (`{CUDA_INSTALL}`), "
        "or pass --device cpu to run on the CPU anyway."
    )


__all__ = ["CUDA_INSTALL", "cpu_refusal", "cuda_available", "real_models"]
