"""Runner performance, measured side by side in one run (ratios, not absolute times).

1. batched vs one-by-one generation, tiny LLaVA and tiny Gemma 3, 64 sample images;
2. `run_plan` vs a bare loop calling `generate` on the same batches (decoding included);
3. the whole `medbench run` command: warm rerun vs cold run (fresh cache) vs first run;
4. make_plan + cache lookup on 1,000,000 synthetic jobs (see bench_plan.py);
5. (`--image-variants` only) a cold `medbench run` with and without the suite's image variants.

`--quick` runs the same steps on tiny sizes, in well under a minute: 8 images in [1] and [2]
(best of 1 and 2 runs, not 2 and 3), a cut-down project (one task, one image per class) instead
of the suite in [3] (two baselines, one warm rerun) and [5] (tiny LLaVA and a baseline, with
and without the quickstart's image variants), 1,000 jobs in [4]. It prints the same ratios,
without the targets (set for the full sizes). A failed `medbench run` exits 1.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_runner.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bench_plan  # noqa: E402
from medbench.checkpoints.tiny import build_tiny_model  # noqa: E402
from medbench.data.images import load_image  # noqa: E402
from medbench.run.backends.base import BackendContext  # noqa: E402
from medbench.run.backends.hf import HFBackend  # noqa: E402
from medbench.run.cache import Cache  # noqa: E402
from medbench.run.loop import run_plan  # noqa: E402
from medbench.run.plan import make_plan
from medbench.spec.loading import load_specs  # noqa: E402
from tests.spec_tree import make_project  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
QUICK_RERUN_MODELS = ("baseline-chance", "baseline-majority")
"""The models of --quick's cut-down project in [3]: baselines, so that the whole command's own
steps are timed, not importing torch (the tiny models' runs are timed in [1] and [2])."""
QUICK_VARIANT_MODELS = ("tiny-llava", "baseline-chance")
"""The models of --quick's cut-down project in [5]: a model that sees the image variants."""


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of `repeat` calls (the least disturbed by other work on the machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def target(text: str, quick: bool) -> str:
    """A target's text, or nothing in --quick (the targets are set for the full sizes)."""
    return "" if quick else f" ({text})"


def project_for(tmp: Path, model: str, per_class: int = 16) -> Path:
    # 64 images: 16 per class of brain_tumor_mri; the closed family cut to `plain` and a copy of
    # it, which renders the same messages and so shares its 64 answers.
    project = make_project(
        tmp / model, tasks=("brain_tumor_mri",), models=(model,), limit_per_class=per_class
    )
    for trained in (project / "specs/models").glob("tiny-gemma3-*.yaml"):
        trained.unlink()  # they train on variants this cut-down family no longer has
    family = project / "specs/prompts/closed_diagnosis.yaml"
    text = family.read_text()
    plain = text[text.index("  - id: plain") : text.index("  - id: guided")]
    family.write_text(
        text[: text.index("  - id: guided")] + plain.replace("id: plain", "id: again")
    )
    return project


def quick_project(folder: Path, models: tuple[str, ...], suite_extra: str = "") -> Path:
    """--quick's cut-down project for the whole command: suite `t`, one brain MRI per class."""
    return make_project(
        folder,
        tasks=("brain_tumor_mri",),
        models=models,
        limit_per_class=1,
        suite_extra=suite_extra,
    )


def bench_generation(tmp: Path, model: str, quick: bool = False) -> None:
    project = project_for(tmp, model, 2 if quick else 16)
    repeat = 1 if quick else 2
    specs = load_specs(project / "specs")
    with Cache(tmp / f"{model}-plan.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp / "models", hasher=cache.hash_file)
    requests = [plan.request(job) for job in plan.jobs if job.variant == "plain"]
    identity = plan.identities[model]
    assert identity.checkpoint_dir is not None and specs.models[model].tiny is not None
    build_tiny_model(specs.models[model].tiny.arch, identity.checkpoint_dir, seed=0)
    spec = specs.models[model]

    def generate(size: int) -> Callable[[], object]:
        backend = HFBackend(
            spec,
            BackendContext(device="cpu", batch_size=size, checkpoint_dir=identity.checkpoint_dir),
        )
        return lambda: backend.generate(requests)

    one, batched = timed(generate(1), repeat), timed(generate(8), repeat)
    print(
        f"[1] {model}: {len(requests)} images, one by one {one:.2f} s, batch 8 {batched:.2f} s: "
        f"batched is {one / batched:.1f}x faster{target('target >= 4x', quick)}"
    )

    # 2. run_plan (cold cache each time) vs a bare loop over the same batches of 8; both load
    # the model from disk, decode the JPEGs and generate.
    loaded = HFBackend(
        spec, BackendContext(device="cpu", batch_size=8, checkpoint_dir=identity.checkpoint_dir)
    )
    generation = loaded._generation
    loaded.close()

    def bare() -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(identity.checkpoint_dir)
        net = AutoModelForImageTextToText.from_pretrained(identity.checkpoint_dir).eval()
        for start in range(0, len(requests), 8):
            chunk = requests[start : start + 8]
            conversations = []
            for r in chunk:
                image = load_image(r.messages.images[0].path)
                conversations.append(
                    [
                        {
                            "role": "user",
                            "content": [
                                {"type": "image", "image": image},
                                {"type": "text", "text": r.messages.text},
                            ],
                        }
                    ]
                )
            inputs = processor.apply_chat_template(
                conversations,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                processor_kwargs={"padding": True},
            )
            with torch.inference_mode():
                out = net.generate(**inputs, generation_config=generation)
            processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    counter = iter(range(1000))

    def medbench_run() -> None:
        with Cache(tmp / f"{model}-run-{next(counter)}.sqlite") as cache:
            fresh = make_plan(specs, "t", models_dir=tmp / "models", hasher=cache.hash_file)
            run_plan(
                fresh,
                specs,
                cache,
                context=BackendContext(device="cpu", batch_size=8),
                progress=False,
            )

    bare_s, run_s = timed(bare, repeat + 1), timed(medbench_run, repeat + 1)
    print(
        f"[2] {model}: bare generate loop {bare_s:.2f} s, medbench run {run_s:.2f} s: "
        f"ratio {run_s / bare_s:.2f}{target('target <= 1.15', quick)}"
    )


def bench_warm_rerun(tmp: Path, suite: str, home: Path | None = None, quick: bool = False) -> None:
    """The whole `medbench run` command (plan, run, score, probe, local site), side by side:
    a first run ever (fresh cache and models folder: the demo models are fine-tuned), a cold
    run with a fresh cache (the models folder already built), a warm rerun (nothing changed:
    the last run's results and site are reused) and a warm `--rescore` (everything scored and
    the site built again from the cached answers). --quick: the cut-down project's suite `t`,
    one warm rerun."""
    import subprocess

    if quick:
        work, suite = quick_project(tmp / "rerun", QUICK_RERUN_MODELS), "t"
    else:
        work = tmp / "project"
        shutil.copytree(REPO / "specs", work / "specs")
        shutil.copytree(REPO / "data" / "sample", work / "data" / "sample")

    models_home = home or tmp / "home"
    cpu: dict[str, float] = {}

    def once(cache: str, name: str, *extra: str) -> float:
        env = {**os.environ, "MEDBENCH_HOME": str(models_home), "HF_HUB_OFFLINE": "1"}
        env["PYTHONPATH"] = str(REPO)
        command = [sys.executable, "-m", "medbench", "run", "specs", "--suite", suite]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [*command, "--cache", str(tmp / cache), *extra],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        cpu[name] = min(cpu.get(name, float("inf")), used)
        return time.perf_counter() - start

    first = once("first.sqlite", "first") if home is None else float("nan")
    cold = once("cold.sqlite", "cold")
    warm = min(once("cold.sqlite", "warm") for _ in range(1 if quick else 2))
    rescore = once("cold.sqlite", "rescore", "--rescore")
    built = "nothing to build" if quick else "fine-tunes the demo models"
    print(
        f"[3] medbench run --suite {suite} (wall / CPU seconds): first run {first:.1f} / "
        f"{cpu.get('first', float('nan')):.1f} ({built}), cold run "
        f"{cold:.1f} / {cpu['cold']:.1f} (fresh cache), warm rerun {warm:.1f} / "
        f"{cpu['warm']:.1f}: warm/cold {warm / cold:.3f} wall, "
        f"{cpu['warm'] / cpu['cold']:.3f} CPU{target('target <= 0.05', quick)}; warm/first "
        f"{warm / first:.3f} wall, {cpu['warm'] / cpu.get('first', float('nan')):.3f} CPU; "
        f"warm --rescore {rescore:.1f} / {cpu['rescore']:.1f}: rescore/cold "
        f"{rescore / cold:.3f} wall, {cpu['rescore'] / cpu['cold']:.3f} CPU"
    )


def bench_image_variants(
    tmp: Path, suite: str, home: Path | None = None, quick: bool = False
) -> None:
    """The cost of a suite's image variants: the whole cold `medbench run` (fresh cache, the
    demo models already built) with the suite as shipped and with its `image_variants` cut,
    alternated, best of two each. --quick: the cut-down project's suite `t`, with and without
    the quickstart's image variants."""
    import subprocess

    from ruamel.yaml import YAML

    timings: dict[str, float] = {}
    models_home = home or tmp / "home"
    if quick:
        quickstart = (REPO / "specs" / "suites" / "quickstart.yaml").read_text()
        variants = quickstart[quickstart.index("image_variants:") :]
        for name in ("with", "without"):
            extra = variants if name == "with" else ""
            project = quick_project(tmp / f"quick-{name}", QUICK_VARIANT_MODELS, extra)
            shutil.move(project, tmp / f"variants-{name}")
        suite = "t"
    for name in ("with", "without") if not quick else ():
        work = tmp / f"variants-{name}"
        shutil.copytree(REPO / "specs", work / "specs")
        shutil.copytree(REPO / "data" / "sample", work / "data" / "sample")
        if name == "without":
            path = work / "specs" / "suites" / f"{suite}.yaml"
            yaml = YAML()
            data = yaml.load(path)
            data.pop("image_variants", None)
            yaml.dump(data, path)
    env = {**os.environ, "MEDBENCH_HOME": str(models_home), "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "medbench", "run", "specs", "--suite", suite]
    # alternate, each run on a fresh cache, and keep each side's best of two (a one-off cost,
    # such as building a model or deriving the transformed images once, then counts for neither)
    for attempt, name in enumerate(("with", "without", "with", "without")):
        start = time.perf_counter()
        subprocess.run(
            [*command, "--cache", str(tmp / f"variants-{name}-{attempt}.sqlite")],
            cwd=tmp / f"variants-{name}",
            env=env,
            check=True,
            capture_output=True,
        )
        took = time.perf_counter() - start
        timings[name] = min(timings.get(name, float("inf")), took)
    print(
        f"[5] medbench run --suite {suite}, cold (fresh cache, demo models built): without its "
        f"image variants {timings['without']:.1f} s, with them {timings['with']:.1f} s: "
        f"with/without {timings['with'] / timings['without']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", default="quickstart")
    parser.add_argument(
        "--skip-plan", action="store_true", help="Skip the 1,000,000-job benchmark."
    )
    parser.add_argument(
        "--only-rerun", action="store_true", help="Only the whole-command rerun benchmark [3]."
    )
    parser.add_argument(
        "--image-variants",
        action="store_true",
        help="Only the cost of the suite's image variants on a cold run [5].",
    )
    parser.add_argument(
        "--home",
        type=Path,
        help="An existing MEDBENCH_HOME whose demo models are built (skips the first run).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Every step on tiny sizes, once each (a cut-down project instead of the suite).",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="medbench-bench-"))
    try:
        if args.image_variants:
            bench_image_variants(tmp, args.suite, args.home, args.quick)
            return
        for model in ("tiny-llava", "tiny-gemma3") if not args.only_rerun else ():
            bench_generation(tmp, model, args.quick)
        bench_warm_rerun(tmp, args.suite, args.home, args.quick)
        if not args.skip_plan and not args.only_rerun:
            print("[4] ", end="", flush=True)
            bench_plan.main(["--quick"] if args.quick else [])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
