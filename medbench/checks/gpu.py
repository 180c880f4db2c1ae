"""The GPU check a maintainer runs on a GPU machine (`scripts/gpu_check.sh`): each shipped real
model found in the local Hugging Face cache is loaded in its spec's own dtype and measured; a
summary table always ends the check, within its time budget.

Per model: load time, requests/s at batch 1 and at the batch size `auto` settles on, peak GPU
memory, answers that differ between the two, one likelihood batch, one description at the
description family's budget, and the real-template prompt test (`tests/test_golden_prompts.py`,
run by pytest in a subprocess first). Each model runs in a child process under its own time
limit, its share of what is left of the budget: at the limit the child is killed, the model is
reported "timed out after N s" with the steps it finished, and the check goes on.

Run as `python -m medbench.checks.gpu [--model M ...] [--device cpu]`; `--device cpu` exists so
that the tests can run the same code on a tiny model. `--device-map auto` loads each model
spread over every visible GPU by accelerate (the models' `device_map`); peak memory is then
summed over the GPUs. Where vLLM is installed (on a GPU), each model also answers the same
requests through the `vllm` backend: its load time, requests/s and how many answers differ.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from medbench.checks.calibrate import gpu_name
from medbench.checks.deadline import Send, Work, run_with_deadline
from medbench.checks.gpu_report import Calibrated, Event, ModelReport, summary_table
from medbench.checks.gpu_steps import ModelCheck, check_model
from medbench.checks.template_test import NO_CASE, TEST_FILE, run_template_test
from medbench.data import hf_cache_dir
from medbench.run import default_cache_path
from medbench.run.cost import Calibration, Speed, write_calibration
from medbench.spec import ModelSpec
from medbench.spec.loading import SpecSet, load_specs

DEFAULT_BUDGET_S = 540.0
"""The whole check, template test and every model, ends within this (the script's `timeout
600` is a backstop that never cuts the summary)."""
TEMPLATE_LIMIT_S = 120.0
GPU_ENVIRONMENT = "make venv GPU=cu130"


def in_hf_cache(spec: ModelSpec, cache: Path) -> bool:
    """Whether a hub model's files are in the local Hugging Face cache (a snapshot with a
    config), so that the check loads it without downloading."""
    if spec.repo is None:
        return False
    snapshots = cache / f"models--{spec.repo.replace('/', '--')}" / "snapshots"
    return any(snapshots.glob("*/config.json"))


def choose_models(specs: SpecSet, asked: Sequence[str], cache: Path) -> tuple[list[str], list[str]]:
    """The models to check and a line per shipped real model skipped (with why)."""
    if asked:
        return list(asked), []
    chosen: list[str] = []
    skipped: list[str] = []
    for model_id, spec in sorted(specs.models.items()):
        if spec.backend != "hf" or spec.test_model or spec.text_only:
            continue
        if spec.checkpoint_format != "hf":
            skipped.append(f"skip {model_id}: its checkpoint must be converted first")
        elif spec.repo is not None and not in_hf_cache(spec, cache):
            skipped.append(f"skip {model_id}: {spec.repo} is not in the local HF cache ({cache})")
        elif spec.path is not None:
            skipped.append(
                f"skip {model_id}: a local checkpoint (`path:`); pass --model to check it"
            )
        else:
            chosen.append(model_id)
    return chosen, skipped


def cuda_missing(device: str) -> str | None:
    """Why the GPU check cannot run on `device` here (None: it can)."""
    if device == "cpu":
        return None
    import torch

    if torch.cuda.is_available():
        return None
    return (
        f"CUDA is not available to {sys.executable} (torch {torch.__version__}). Make the GPU "
        f'environment with `{GPU_ENVIRONMENT}` (README, "The locked environment") and run '
        "scripts/gpu_check.sh again; `--device cpu` checks a tiny model on the CPU instead."
    )


def template_outcomes(
    specs: SpecSet, models: Sequence[str], test_file: Path, limit_s: float
) -> dict[str, str]:
    """The real-template prompt test's outcome per model (run only where a real model is)."""
    real = [m for m in models if m in specs.models and not specs.models[m].test_model]
    if not real:
        return dict.fromkeys(models, NO_CASE)
    return run_template_test(test_file, models, limit_s)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m medbench.checks.gpu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--specs", type=Path, default=Path("specs"))
    parser.add_argument("--model", action="append", default=[], help="Check only this model.")
    parser.add_argument("--images", type=int, default=16, help="Sample images (x 2 variants).")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (tiny models).")
    parser.add_argument(
        "--device-map",
        choices=["auto", "balanced", "balanced_low_0", "sequential"],
        help="Spread each model over every visible GPU (accelerate), as a spec's `device_map`.",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=DEFAULT_BUDGET_S,
        help="The whole check's time; each model gets its share of what is left.",
    )
    parser.add_argument(
        "--template-test",
        type=Path,
        default=TEST_FILE,
        help="The real-template prompt test run by pytest first (default: %(default)s).",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        help="Also measure prefill and decode tokens/s and write them to this file "
        "(for `medbench plan --cost --calibration FILE`).",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, work: Work = check_model) -> int:
    """Check each model; 0 if every checked model passed, 1 otherwise, 2 without CUDA.
    `work` is what runs in each model's child process (the tests give a fake)."""
    args = parse_args(argv)
    missing = cuda_missing(args.device)
    if missing is not None:
        print(missing, file=sys.stderr)
        return 2
    started = time.monotonic()
    specs = load_specs(args.specs)
    chosen, skipped = choose_models(specs, args.model, hf_cache_dir())
    for line in skipped:
        print(line, flush=True)
    limit = min(TEMPLATE_LIMIT_S, args.budget_s / 4)
    templates = template_outcomes(specs, chosen, args.template_test, limit)
    for model, outcome in templates.items():
        print(f"{model}: real-template prompt test: {outcome}", flush=True)
    reports: list[ModelReport] = []
    state = default_cache_path().parent
    for index, model in enumerate(chosen):
        left = args.budget_s - (time.monotonic() - started)
        share = left / (len(chosen) - index)
        if share < 1:
            print(f"skip {model}: the time budget of {args.budget_s:g} s is spent", flush=True)
            skipped.append(model)
            continue
        report = ModelReport(model, template=templates[model])
        reports.append(report)
        print(f"{model}: checking, time limit {share:.0f} s", flush=True)
        check = ModelCheck(
            args.specs,
            model,
            args.images,
            args.device,
            state,
            args.device_map,
            calibrate=args.calibration is not None,
            vllm=args.device != "cpu",
        )
        ended = run_with_deadline(work, check, share, on_event=_printer(model))
        report.events = list(ended.events)
        report.error = ended.error
        report.timed_out_s = ended.seconds if ended.timed_out else None
    write_speeds(args.calibration, args.device, reports)
    for line in summary_table(reports):
        print(line)
    failed = sum(r.failed for r in reports)
    print(f"{len(reports) - failed} models passed, {failed} failed, {len(skipped)} skipped.")
    return 1 if failed else 0


def _printer(model: str) -> Send:
    def show(event: Event) -> None:
        print(f"{model}: {event.line()}", flush=True)

    return show


def write_speeds(path: Path | None, device: str, reports: Sequence[ModelReport]) -> None:
    """With `--calibration`: the speeds measured, written where `plan --cost` reads them."""
    if path is None:
        return
    speeds: dict[str, Speed] = {
        r.model: e.speed for r in reports for e in r.events if isinstance(e, Calibrated)
    }
    if speeds:
        write_calibration(path, Calibration(gpu_name(device), speeds))
        print(f"calibration written to {path}", flush=True)


def _stop(signum: int, frame: object) -> None:
    # `timeout`'s SIGTERM: unwind, so that the model's child process is killed on the way out.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    sys.exit(main())
