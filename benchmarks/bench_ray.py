"""The Ray executor against the in-process one: its fixed overhead, and scaling over actors.

Run ``python benchmarks/bench_ray.py [--quick] [--suite quickstart] [--limit N] [--repeat R]``
(needs ``pip install -e '.[ray]'``). Answers the suite (the bundled sample, tiny models and
baselines) from an empty cache three ways, side by side in one process: the local executor,
then Ray with 1 and with 2 CPU actors. Every Ray run starts its own local Ray and stops it, as
``medbench run --executor ray`` does, so its time includes the cluster start. torch uses one
thread everywhere (the local run too), so 1 actor and the local run do the same work.
Exits 1 if a run leaves a job unanswered or failed. ``--quick``: the same three runs on a
cut-down project (one task, one image per class, the chance baseline: 28 jobs), with one local
Ray started (and timed) before both Ray runs, which reuse it as the tests' Ray runs do. The
baseline keeps torch out of the actors, so that Ray's own cost is what it times (with tiny
LLaVA each actor's start imports torch: over a minute in all on a busy 2-core machine; the
tests run tiny LLaVA on Ray). Without Ray installed it says so and exits 0, as the tests skip.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from medbench.run.backends.base import BackendContext  # noqa: E402
from medbench.run.cache import Cache  # noqa: E402
from medbench.run.executors.local import prepare_checkpoint  # noqa: E402
from medbench.run.loop import pending_work, run_plan  # noqa: E402
from medbench.run.plan import Plan, make_plan
from medbench.spec.loading import SpecSet, load_specs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
QUICK_MODELS = ("baseline-chance",)
RUNS = {"local": ("local", None), "ray, 1 actor": ("ray", "1"), "ray, 2 actors": ("ray", "2")}


def plan_suite(specs: SpecSet, suite: str, models_dir: Path, limit: int | None) -> Plan:
    return make_plan(specs, suite, models_dir=models_dir, limit=limit)


def timed_run(specs: SpecSet, plan: Plan, executor: str, actors: str | None) -> float:
    """Seconds to answer the whole plan from an empty cache."""
    extra = {"ray_actors": actors} if actors else {}
    with tempfile.TemporaryDirectory() as tmp, Cache(Path(tmp) / "c.sqlite") as cache:
        started = time.perf_counter()
        summary = run_plan(
            plan,
            specs,
            cache,
            executor=executor,
            context=BackendContext(extra=extra),
            progress=False,
        )
        seconds = time.perf_counter() - started
    if summary.ran != len({job.key for job in plan.jobs}) or summary.failed:
        raise SystemExit(f"{executor} ({actors} actors): {summary.lines()}")
    return seconds


def start_ray() -> tuple[Any, float]:
    """A local Ray with a CPU for each of 2 actors, as the executor starts it; its seconds."""
    from medbench.run.executors.ray import connect, import_ray

    ray = import_ray(local=True)
    started = time.perf_counter()
    connect(ray, None, BackendContext(extra={"ray_actors": "2"}))
    return ray, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=Path, default=REPO / "specs", help="spec folder")
    parser.add_argument("--suite", default="quickstart")
    parser.add_argument("--limit", type=int, default=None, help="images per class")
    parser.add_argument("--repeat", type=int, default=1, help="runs per executor (median)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one task, one image per class, the chance baseline (a temporary project)",
    )
    args = parser.parse_args()
    if args.quick and importlib.util.find_spec("ray") is None:
        print("Ray is not installed (pip install -e '.[ray]'): skipped, as the tests skip")
        return

    import torch

    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as models:
        if args.quick:
            from tests.spec_tree import make_project

            project = make_project(
                Path(models) / "quick",
                tasks=("brain_tumor_mri",),
                models=QUICK_MODELS,
                limit_per_class=1,
            )
            args.specs, args.suite, args.limit = project / "specs", "t", None
        specs = load_specs(args.specs)
        plan = plan_suite(specs, args.suite, Path(models), args.limit)
        # Build the tiny checkpoints once, outside every timing.
        with tempfile.TemporaryDirectory() as tmp, Cache(Path(tmp) / "c.sqlite") as cache:
            for item in pending_work(plan, specs, cache)[0]:
                prepare_checkpoint(item)
        times: dict[str, list[float]] = {name: [] for name in RUNS}
        ray, ray_start = start_ray() if args.quick else (None, None)
        try:
            for _ in range(args.repeat):
                for name, (executor, actors) in RUNS.items():
                    times[name].append(timed_run(specs, plan, executor, actors))
        finally:
            if ray is not None:
                ray.shutdown()
    seconds = {name: statistics.median(values) for name, values in times.items()}
    jobs = len({job.key for job in plan.jobs})
    print(f"suite {args.suite}: {jobs} jobs, {len(plan.identities)} models, {os.cpu_count()} CPUs")
    # Scaling needs idle cores: a load above the core count means other work shared them.
    print(f"load average at start: {load:.1f}, at end: {os.getloadavg()[0]:.1f}")
    print(f"{'executor':<15}{'seconds':>9}{'jobs/s':>9}")
    for name, value in seconds.items():
        print(f"{name:<15}{value:>9.1f}{jobs / value:>9.0f}")
    overhead = seconds["ray, 1 actor"] - seconds["local"]
    started = "" if ray_start is None else f", Ray started once before: {ray_start:.1f} s"
    print(f"Ray overhead over local (1 actor, same threads): {overhead:+.1f} s{started}")
    scaling = seconds["ray, 1 actor"] / seconds["ray, 2 actors"]
    print(f"Scaling 1 -> 2 actors: x{scaling:.2f}")


if __name__ == "__main__":
    main()
