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

    publish_locally(specs, suite, results)
    out = Path("_site")
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


def _score_and_publish(
    options: JobOptions,
    spec_set: SpecSet,
    the_plan: Plan,
    store: Cache,
    context: BackendContext,
    summary: RunSummary,
    console: Console,
) -> None:
    """Score and build the site, unless the last complete run's outputs can be reused."""
    results, suite = options.results, options.suite
    adhoc = [m for m in (options.models or []) if is_adhoc(m)]
    folder = results / the_plan.suite.id
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
        sys.stderr.write(stamp.report)
        console.print(
            f"Nothing changed since the complete run of {stamp.created}: its results and "
            "site are reused (--rescore redoes them).",
            highlight=False,
        )
        return
    clear_stamp(folder)
    report = Console(stderr=True, record=True)
    probe_context = context if options.probe else None
    score_and_report(spec_set, the_plan, store, results, report, probe_context, context)
    if options.site and adhoc:
        report.print(f"No local site: {', '.join(adhoc)} has no spec, so it is never published.")
    if building:
        build_local_site(spec_set, suite, results, report)
    if summary.complete:
        outputs = run_outputs(results, suite, site=building)
        write_stamp(folder, inputs(), outputs, report.export_text())
