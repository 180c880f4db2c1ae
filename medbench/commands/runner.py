"""`medbench plan`, `run`, `check batch-invariance` and `tiny-model`: the engine's commands."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.box import SIMPLE
from rich.console import Console
from rich.table import Table

from medbench.commands.options import (
    BaseOpt,
    BatchOpt,
    CacheOpt,
    DeviceOpt,
    ExecutorOpt,
    LimitOpt,
    ModelsOpt,
    SpecsArg,
    SuiteOpt,
    TasksOpt,
)


def parse_batch_size(value: str) -> int | None:
    if value == "auto":
        return None
    if not value.isdigit() or int(value) < 1:
        raise typer.BadParameter(f"expected a positive integer or `auto`, got {value!r}")
    return int(value)


def plan(
    specs: SpecsArg = Path("specs"),
    suite: SuiteOpt = "quickstart",
    model: ModelsOpt = None,
    task: TasksOpt = None,
    limit: LimitOpt = None,
    cache: CacheOpt = None,
    base: BaseOpt = None,
    cost: Annotated[
        bool,
        typer.Option(
            "--cost",
            help="Show what the run would cost per model: distinct generations, prefill "
            "tokens, decode budget, likelihood requests, text-LLM calls (and GPU-hours with "
            "--calibration).",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --cost: print the cost as JSON.")
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(help="With --cost: a GPU calibration file from the GPU check (GPU-hours)."),
    ] = None,
) -> None:
    """Show the jobs a run would do, per model and task, and how many are already cached.

    `--cost` shows what the run would cost instead (models whose revision cannot be resolved
    here are counted under a placeholder revision).

    Example: medbench plan specs --suite quickstart --model baseline-chance
    """
    from medbench.run import open_cache
    from medbench.run import plan_suite as build_plan
    from medbench.score import print_line

    if cost or as_json:
        from medbench.run.cost import report_lines, suite_cost

        with open_cache(cache) as store:
            found = suite_cost(specs, suite, store, model, task, limit, calibration)
        if as_json:
            typer.echo(json.dumps(found.to_json(), indent=2, sort_keys=True))
        else:
            typer.echo("\n".join(report_lines(found)))
        return

    with open_cache(cache) as store:
        spec_set, the_plan = build_plan(specs, suite, store, model, task, limit, base=base)
        done = store.finished_keys()
    total: Counter[tuple[str, str]] = Counter()
    cached: Counter[tuple[str, str]] = Counter()
    for job in the_plan.jobs:
        total[(job.model, job.task)] += 1
        cached[(job.model, job.task)] += job.key in done
    # Fits 80 columns: ids are never cut (the revision, a sha prefix, gives way first).
    table = Table(title=f"suite {suite}: {len(the_plan.jobs)} jobs", box=SIMPLE, pad_edge=False)
    widest = {
        "model": max((len(m) for m, _ in total), default=5),
        "task": max((len(t) for _, t in total), default=4),
    }
    for column in ("model", "revision", "task", "jobs", "cached", "to run"):
        numeric = column in {"jobs", "cached", "to run"}
        table.add_column(
            column,
            justify="right" if numeric else "left",
            min_width=widest.get(column),
            no_wrap=column != "revision",
            overflow="ellipsis" if column == "revision" else "fold",
        )
    for (m, t), n in sorted(total.items()):
        identity = the_plan.identities[m]
        revision = identity.revision[:12]
        if identity.adapter_revision is not None:
            revision += f" + adapter {identity.adapter_revision[:16]}"
        table.add_row(m, revision, t, str(n), str(cached[(m, t)]), str(n - cached[(m, t)]))
    console = Console()
    console.print(table)
    unique = len({job.key for job in the_plan.jobs if job.key not in done})
    typer.echo(f"{sum(cached.values())} cached; {unique} distinct answers to compute.")
    for task_id, subset in sorted(the_plan.suite.subsets.items()):
        if task_id in the_plan.samples:
            print_line(
                console,
                f"{task_id}: a fixed subset of {subset.per_class} images per class "
                f"(seed {the_plan.suite.seed}): {subset.reason}",
            )
    for m, why in sorted(the_plan.unavailable.items()):
        print_line(console, f"unavailable: {m}: {why}")
    if the_plan.unavailable:
        raise typer.Exit(1)


def run(
    specs: SpecsArg = Path("specs"),
    suite: SuiteOpt = "quickstart",
    model: ModelsOpt = None,
    task: TasksOpt = None,
    limit: LimitOpt = None,
    batch_size: BatchOpt = "auto",
    device: DeviceOpt = "auto",
    executor: ExecutorOpt = "local",
    cache: CacheOpt = None,
    score: Annotated[bool, typer.Option(help="Score the suite after the run.")] = True,
    site: Annotated[bool, typer.Option(help="Build the local site after scoring.")] = True,
    probe: Annotated[
        bool, typer.Option(help="Run the suite's probe stage (vision-encoder embeddings).")
    ] = True,
    results: Annotated[Path, typer.Option(help="Folder for score outputs.")] = Path("results"),
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster address for --executor ray (default: $RAY_ADDRESS or a "
            "local Ray on 127.0.0.1)."
        ),
    ] = None,
    ray_actors: Annotated[
        int | None,
        typer.Option(min=1, help="Ray actors (default: one per GPU, else 2 CPU actors)."),
    ] = None,
    base: BaseOpt = None,
    rescore: Annotated[
        bool,
        typer.Option(
            help="Score and build the site even when no input changed since the last "
            "complete run (which otherwise reuses its results and site)."
        ),
    ] = False,
) -> None:
    """Run a suite: compute the answers the cache lacks, then score them and build the site.

    A rerun that finds every answer cached and every other input unchanged since the last
    complete run reuses that run's results and site (`--rescore` redoes them).
    `--model hf:ORG/NAME[@REV]` runs a hub model without a spec (answers cached as for a spec
    with the same fields; scored, never published).

    Example: medbench run specs --suite quickstart
    """
    from medbench.publish import JobOptions, run_job
    from medbench.run.backends import BackendContext, cpu_refusal
    from medbench.spec.loading import load_specs

    refusal = cpu_refusal(load_specs(specs), suite, model, device, base=base, executor=executor)
    if refusal is not None:
        typer.echo(refusal, err=True)
        raise typer.Exit(2)
    extra = {"ray_address": address or "", "ray_actors": str(ray_actors or "")}
    context = BackendContext(
        device=device,
        batch_size=parse_batch_size(batch_size),
        extra={k: v for k, v in extra.items() if v},
    )
    options = JobOptions(
        specs=specs,
        suite=suite,
        models=model,
        tasks=task,
        limit=limit,
        base=base,
        cache=cache,
        executor=executor,
        score=score,
        site=site,
        probe=probe,
        rescore=rescore,
        results=results,
    )
    status = run_job(options, context, Console(stderr=True))
    if status:
        raise typer.Exit(status)


check_app = typer.Typer(
    help="Self-checks of a model's behaviour.\n\n"
    "Example: medbench check batch-invariance --model tiny-gemma3 --n 8",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@check_app.command("batch-invariance")
def batch_invariance(
    specs: SpecsArg = Path("specs"),
    models: ModelsOpt = None,
    suite: Annotated[
        str | None,
        typer.Option("--suite", "-s", help="Suite id (default: the one suite listing the models)."),
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Number of jobs per model.")] = 32,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="The batched size.")] = 8,
    device: DeviceOpt = "auto",
    cache: CacheOpt = None,
) -> None:
    """Answer the same jobs at batch size 1 and N (no cache) and print every flip with its prompt.

    Checks the models given with --model, else every model of the suite but the baselines.

    Example: medbench check batch-invariance --model tiny-gemma3 --n 8
    """
    from medbench.checks import check_batch_invariance, checked_models, suite_of
    from medbench.run import open_cache
    from medbench.run import plan_suite as build_plan
    from medbench.run.backends import BackendContext
    from medbench.spec.loading import load_specs

    spec_set = load_specs(specs)
    suite_id = suite or suite_of(spec_set, models or [])
    with open_cache(cache) as store:
        spec_set, the_plan = build_plan(specs, suite_id, store, models, None, None)
    context = BackendContext(device=device)
    any_flip = False
    for model in checked_models(spec_set, the_plan, models or []):
        report = check_batch_invariance(
            the_plan, spec_set, model, n=n, batch_size=batch_size, context=context
        )
        for flip in report.flips:
            job = flip.job
            typer.echo(
                f"FLIP {model} {job.task}/{job.family}/{job.variant} {job.sample} "
                f"[{job.key[:12]}]: batch 1 {flip.alone!r} != batch {batch_size} {flip.batched!r}"
            )
            typer.echo("  " + flip.prompt.replace("\n", "\n  "))
        typer.echo(
            f"{model}: {report.n_jobs} jobs, {len(report.flips)} differ between batch 1 "
            f"and batch {batch_size}."
        )
        any_flip = any_flip or bool(report.flips)
    if any_flip:
        raise typer.Exit(1)


def tiny_model(
    arch: Annotated[
        Literal["llava", "llava_next", "gemma3", "text"], typer.Argument(help="Architecture.")
    ],
    out: Annotated[Path, typer.Argument(help="Folder to write the checkpoint into.")],
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives the same weights.")
    ] = 0,
) -> None:
    """Build a tiny RANDOM-WEIGHT test model of a real architecture (for tests and demos).

    Example: medbench tiny-model llava models/tiny-llava --seed 0
    """
    from medbench.checkpoints.tiny import build_tiny_model

    path = build_tiny_model(arch, out, seed=seed)
    typer.echo(f"Tiny {arch} test model (random weights) written to {path}")
