"""make_plan + cache lookup on 1,000,000 synthetic jobs: jobs per second.

10 models x 4 tasks x 25 variants x 1,000 images = 1,000,000 jobs, planned from real spec
files and real (tiny) image files, then looked up in a cache that holds half of them.
Exits 1 if the plan has another number of jobs or the lookup other misses than expected.
--quick: 2 models x 2 tasks x 5 variants x 50 images = 1,000 jobs (a second or two).
Run: .venv/bin/python benchmarks/bench_plan.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from medbench.run.cache import Cache
from medbench.run.plan import make_plan
from medbench.spec.loading import load_specs

N_MODELS, N_TASKS, N_VARIANTS, N_IMAGES = 10, 4, 25, 1000
QUICK = (2, 2, 5, 50)
"""Models, tasks, variants and images per task of --quick."""


def write_tree(
    root: Path,
    n_models: int = N_MODELS,
    n_tasks: int = N_TASKS,
    n_variants: int = N_VARIANTS,
    n_images: int = N_IMAGES,
) -> None:
    specs = root / "specs"
    for sub in ("tasks", "prompts", "models", "suites"):
        (specs / sub).mkdir(parents=True)
    for t in range(n_tasks):
        (specs / "tasks" / f"t{t}.yaml").write_text(
            f"schema_version: 1\nkind: task\nid: t{t}\ntitle: Task {t}\nmodality: x-ray\n"
            "difficulty: 1\nquestion: What is shown?\nfinding: disease\nlabels:\n"
            "  - {id: sick, name: sick, positive: true}\n  - {id: well, name: well}\n"
            f"data:\n  sample: {{format: imagefolder, path: data/t{t}}}\n"
        )
        for i in range(n_images):
            folder = root / "data" / f"t{t}" / ("sick" if i % 2 else "well")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"img{i:05d}.jpg").write_bytes(f"image {t} {i}".encode())
    variants = "".join(
        f"  - {{id: v{v}, kind: wording, template: 'Variant {v}: {{{{ question }}}} "
        f'{{{{ options | join(", ") }}}}\'}}\n'
        for v in range(n_variants)
    )
    (specs / "prompts" / "f.yaml").write_text(
        "schema_version: 1\nkind: prompt_family\nid: f\ntitle: F\nanswer: label\n"
        f"reference: v0\nvariants:\n{variants}"
    )
    for m in range(n_models):
        (specs / "models" / f"m{m}.yaml").write_text(
            f"schema_version: 1\nkind: model\nid: m{m}\ntitle: M{m}\nbackend: hf\nfamily: x\n"
            f"repo: org/model-{m}\nrevision: {'a' * 40}\n"
        )
    (specs / "suites" / "s.yaml").write_text(
        "schema_version: 1\nkind: suite\nid: s\ntitle: S\ndata: sample\n"
        f"tasks: [{', '.join(f't{t}' for t in range(n_tasks))}]\nprompt_families: [f]\n"
        f"models: [{', '.join(f'm{m}' for m in range(n_models))}]\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="2 models x 2 tasks x 5 variants x 50 images"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else (N_MODELS, N_TASKS, N_VARIANTS, N_IMAGES)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tree(root, *sizes)
        specs = load_specs(root / "specs")
        with Cache(root / "cache.sqlite") as cache:
            # warm the file-hash memo so the figure measures planning, not first-time hashing
            make_plan(specs, "s", models_dir=root / "models", hasher=cache.hash_file, models=["m0"])
            cache.flush_hashes()
            started = time.perf_counter()
            plan = make_plan(specs, "s", models_dir=root / "models", hasher=cache.hash_file)
            planned = time.perf_counter() - started
            half = [
                (j.key, j.model, j.task, j.family, j.variant, j.sample, "{}", "x", None, 0.0)
                for j in plan.jobs[::2]
            ]
            cache.put_many(half)
            started = time.perf_counter()
            done = cache.finished_keys()
            misses = sum(job.key not in done for job in plan.jobs)
            looked_up = time.perf_counter() - started
    n = len(plan.jobs)
    total = planned + looked_up
    print(f"jobs: {n:,} ({misses:,} misses)")
    print(f"make_plan: {planned:.2f} s, cache lookup: {looked_up:.2f} s")
    target = "" if args.quick else " (target >= 100,000)"
    print(f"plan + lookup: {n / total:,.0f} jobs/s{target}")
    models, tasks, variants, images = sizes
    expected = models * tasks * variants * images
    if n != expected or misses != n - len(half):
        print(
            f"FAILED: {n:,} jobs and {misses:,} misses, expected {expected:,} and {n - len(half):,}"
        )
        raise SystemExit(1)


if __name__ == "__main__":
    main()
