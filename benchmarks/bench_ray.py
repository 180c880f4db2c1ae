"""The Ray executor against the in-process one: its fixed overhead, and scaling over actors.

Run ``python benchmarks/bench_ray.py [--suite quickstart] [--limit N] [--repeat R]`` (needs
``pip install -e '.[ray]'``). Answers the suite (the bundled sample, tiny models and
baselines) from an empty cache three ways, side by side in one process: the local executor,
then Ray with 1 and with 2 CPU actors. Every Ray run starts its own local Ray and stops it, as
``medbench run --executor ray`` does, so its time includes the cluster start. torch uses one
thread everywhere (the local run too), so 1 actor and the local run do the same work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from medbench.run.backends.base import BackendContext  # noqa: E402
from medbench.run.cache import Cache  # noqa: E402
from medbench.run.executors.local import prepare_checkpoint  # noqa: E402
from medbench.run.loop import pending_work, run_plan  # noqa: E402
from medbench.run.plan import Plan, make_plan  # noqa: E402
from medbench.spec.loading import SpecSet, load_specs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=Path, default=REPO / "specs", help="spec folder")
    parser.add_argument("--suite", default="quickstart")
    parser.add_argument("--limit", type=int, default=None, help="images per class")
    parser.add_argument("--repeat", type=int, default=1, help="runs per executor (median)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    specs = load_specs(args.specs)
    with tempfile.TemporaryDirectory() as models:
        plan = plan_suite(specs, args.suite, Path(models), args.limit)
        # Build the tiny checkpoints once, outside every timing.
        with tempfile.TemporaryDirectory() as tmp, Cache(Path(tmp) / "c.sqlite") as cache:
            for item in pending_work(plan, specs, cache)[0]:
                prepare_checkpoint(item)
        times: dict[str, list[float]] = {name: [] for name in RUNS}
        for _ in range(args.repeat):
            for name, (executor, actors) in RUNS.items():
                times[name].append(timed_run(specs, plan, executor, actors))
    seconds = {name: statistics.median(values) for name, values in times.items()}
    jobs = len({job.key for job in plan.jobs})
    print(f"suite {args.suite}: {jobs} jobs, {len(plan.identities)} models, {os.cpu_count()} CPUs")
    # Scaling needs idle cores: a load above the core count means other work shared them.
    print(f"load average at start: {load:.1f}, at end: {os.getloadavg()[0]:.1f}")
    print(f"{'executor':<15}{'seconds':>9}{'jobs/s':>9}")
    for name, value in seconds.items():
        print(f"{name:<15}{value:>9.1f}{jobs / value:>9.0f}")
    overhead = seconds["ray, 1 actor"] - seconds["local"]
    print(f"Ray overhead over local (1 actor, same threads): {overhead:+.1f} s")
    scaling = seconds["ray, 1 actor"] / seconds["ray, 2 actors"]
    print(f"Scaling 1 -> 2 actors: x{scaling:.2f}")


if __name__ == "__main__":
    main()
