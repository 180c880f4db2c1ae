"""`medbench audit-parse`: how often a judge model reads a suite's answers as the parser did."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from medbench.commands.options import CacheOpt, SpecsArg, SuiteOpt


def audit_parse(
    specs: SpecsArg = Path("specs"),
    suite: SuiteOpt = "quickstart",
    judge: Annotated[
        str, typer.Option("--judge", help="Model id of the judge (any backend).")
    ] = ...,  # type: ignore[assignment]
    n: Annotated[int, typer.Option("--n", min=1, help="Answers to sample, by rule.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample.")] = 0,
    cache: CacheOpt = None,
) -> None:
    """Send a sample of the suite's parsed answers (stratified by rule) to a judge model and
    report agreement per rule and the answers where they differ. Scores never use it.

    Example: medbench audit-parse specs -s quickstart --judge gpt-5.1 --n 200
    """
    from medbench.checks import agreement, judge_jobs, read_judgements, sample_by_rule
    from medbench.home import models_dir
    from medbench.run import open_cache, run_plan
    from medbench.run import plan_suite as build_plan
    from medbench.score import collect_answers

    console = Console(stderr=True)
    with open_cache(cache) as store:
        spec_set, plan = build_plan(specs, suite, store, None, None, None)
        sample = sample_by_rule(collect_answers(spec_set, plan, store), n, seed)
        jobs = judge_jobs(plan, spec_set, judge, sample, models_dir())
        run_plan(plan, spec_set, store, console=console, progress=False, jobs=jobs)
        judged = read_judgements(plan, spec_set, store, sample, jobs)
    typer.echo(f"parser vs judge {judge}: {len(judged)} answers of suite {suite}")
    for rule, total, agree in agreement(judged):
        typer.echo(f"{rule}: {agree} of {total} agree ({agree / total:.2f})")
    for j in (j for j in judged if not j.agrees):
        typer.echo(f"[{j.rule}] parser: {j.parsed} | judge: {j.judged} | {j.text[:200]!r}")
