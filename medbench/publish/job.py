"""The whole job of `medbench run`: compute what the cache lacks, score, publish locally and
build the site, or reuse the outputs of the last complete run when no input changed."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from medbench.publish.local import publish_locally
from medbench.run import (
    Cache,
    Plan,
    Probing,
    RunSummary,
    clear_stamp,
    open_cache,
    plan_suite,
    reusable,
    run_inputs,
    run_outputs,
    run_suite,
    step,
    write_stamp,
)
from medbench.run.backends import BackendContext
from medbench.score import score_and_report
from medbench.spec import is_adhoc
from medbench.spec.loading import SpecSet


def build_local_site(specs: SpecSet, suite: str, results: Path, console: Console) -> Path:
    """Publish the suite's fresh results locally and build `_site/` by the one rule: every
    published record in `leaderboard/`, plus the local records of every suite run here."""
    from medbench.publish.site import build_site

    out = Path("_site")
    with step("local records"):
        publish_locally(specs, suite, results)
    build_site(Path("leaderboard"), out, specs=specs, results=results)
    index = out / "index.html"
    console.print(f"Site built: open {index} (or run `medbench site serve`).")
    return index


@dataclass(frozen=True)
class JobOptions:
    """What `medbench run` was asked: the suite, its narrowing, and which stages to do."""

    specs: Path
    suite: str
    models: list[str] | None = None
    tasks: list[str] | None = None
    limit: int | None = None
    base: str | None = None
    cache: Path | None = None
    executor: str = "local"
    score: bool = True
    site: bool = True
    probe: bool = True
    rescore: bool = False
    results: Path = Path("results")


INTERRUPTED = 130
"""Exit status of a run stopped by Ctrl-C (its finished answers are kept)."""


def run_job(options: JobOptions, context: BackendContext, console: Console) -> int:
    """Run a suite, then score it and build the site; the exit status: 0, 1 when jobs or
    models failed (the others are scored), INTERRUPTED when stopped."""
    with open_cache(options.cache) as store:
        context = replace(context, state_dir=store.path.parent)
        probing = Probing(store.path.parent)
        spec_set, the_plan = plan_suite(
            options.specs,
            options.suite,
            store,
            options.models,
            options.tasks,
            options.limit,
            probing,
            base=options.base,
        )
        summary = run_suite(
            the_plan,
            spec_set,
            store,
            context=context,
            executor=options.executor,
            console=console,
            snapshot_changes=probing.changes,
        )
        for line in summary.lines():
            console.print(line)
        if summary.interrupted:
            return INTERRUPTED
        if options.score:
            _score_and_publish(options, spec_set, the_plan, store, context, summary, console)
    if summary.failed:
        console.print(
            f"{summary.failed} of {summary.planned} jobs failed (not stored as answers); "
            "rerun to retry them."
        )
    if summary.failed_models:
        failed = ", ".join(sorted(summary.failed_models))
        console.print(f"[red]Failed models: {failed} (see above); the others were scored.")
    return 1 if summary.failed_models or summary.failed else 0


NARROWED = "narrowed"
"""`results/<suite>/narrowed/`: where a narrowed or failed run's scores go, beside the suite's."""


def narrowing(options: JobOptions, summary: RunSummary, folder: Path) -> list[str]:
    """Why a run's scores must not replace the suite's results: its options narrowed it, or
    jobs failed while the suite's folder holds the results of an earlier run (none: they may)."""
    why = [f"--model {m}" for m in options.models or []]
    why += [f"--task {t}" for t in options.tasks or []]
    why += [f"--limit {options.limit}"] if options.limit is not None else []
    if not summary.complete and (folder / "layout.json").is_file():
        why.append(f"{summary.failed} jobs and {len(summary.failed_models)} models failed")
    return why


def score_beside(
    options: JobOptions,
    spec_set: SpecSet,
    the_plan: Plan,
    store: Cache,
    context: BackendContext,
    why: list[str],
    console: Console,
) -> Path:
    """Score a narrowed or failed run into `results/<suite>/narrowed/<suite>/`, leaving the
    suite's own results (and its local records and site) as they were, and say so."""
    beside = options.results / the_plan.suite.id / NARROWED
    report = Console(stderr=True)
    probe_context = context if options.probe else None
    out = score_and_report(
        spec_set, the_plan, store, beside, report, probe_context, context, out=Console()
    )
    console.print(
        f"This run was narrowed ({', '.join(why)}): its scores are in {out}/, beside the "
        f"suite's results in {options.results / the_plan.suite.id}/, which it left as they "
        "were (no local records, no site). Run the whole suite to score it all.",
        highlight=False,
        markup=False,
    )
    return out


def _score_and_publish(
    options: JobOptions,
    spec_set: SpecSet,
    the_plan: Plan,
    store: Cache,
    context: BackendContext,
    summary: RunSummary,
    console: Console,
) -> None:
    """Score and build the site, unless the last complete run's outputs can be reused; a
    narrowed or failed run is scored beside the suite's results (see `score_beside`)."""
    results, suite = options.results, options.suite
    adhoc = [m for m in (options.models or []) if is_adhoc(m)]
    folder = results / the_plan.suite.id
    why = narrowing(options, summary, folder)
    if why:
        score_beside(options, spec_set, the_plan, store, context, why, console)
        return
    recorded_options = {
        "suite": suite,
        "models": options.models,
        "tasks": options.tasks,
        "limit": options.limit,
        "base": options.base,
        "score": options.score,
        "site": options.site,
        "probe": options.probe,
        "results": str(results.resolve()),
        "cache": str(store.path.resolve()),
    }

    def inputs() -> str:
        return run_inputs(
            specs_root=options.specs,
            options=recorded_options,
            job_keys=(job.key for job in the_plan.jobs),
            cache_path=store.path,
            results=results,
            suite=the_plan.suite.id,
        )

    building = options.site and not adhoc
    stamp = None
    if not options.rescore and summary.ran == 0 and summary.complete:
        stamp = reusable(folder, inputs(), run_outputs(results, suite, site=building))
    if stamp is not None:
        sys.stdout.write(stamp.report)
        console.print(
            f"Nothing changed since the complete run of {stamp.created}: its results and "
            "site are reused (--rescore redoes them).",
            highlight=False,
        )
        return
    clear_stamp(folder)
    report = Console(stderr=True)  # progress and notes; the results go to stdout
    printed = Console(record=True)
    probe_context = context if options.probe else None
    score_and_report(
        spec_set, the_plan, store, results, report, probe_context, context, out=printed
    )
    if options.site and adhoc:
        report.print(f"No local site: {', '.join(adhoc)} has no spec, so it is never published.")
    if building:
        build_local_site(spec_set, suite, results, report)
    if summary.complete:
        outputs = run_outputs(results, suite, site=building)
        write_stamp(folder, inputs(), outputs, printed.export_text())
