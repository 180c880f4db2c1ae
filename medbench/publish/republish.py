"""Rerun and republish a leaderboard's stale records: each suite's stale models that can run
here are run (the cache answers whatever did not change), scored into a temporary folder and
published into a copy of the suite's records, which is swapped in whole."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console

from medbench.atomic import folder_lock, staging_folder, swap_folder
from medbench.publish.local import publish_results
from medbench.publish.stale import StaleRecord, stale_records, why_not_rerun
from medbench.run import Cache, Plan, open_cache, plan_suite, run_suite
from medbench.run.backends import BackendContext
from medbench.score import score_and_report
from medbench.spec.loading import SpecSet, load_specs


@dataclass
class Republishing:
    """What `republish_stale` found and did."""

    stale: list[StaleRecord]
    rerun: list[StaleRecord] = field(default_factory=list)
    """The stale records whose models run here: republished (or, dry, to be)."""
    refused: list[tuple[StaleRecord, str]] = field(default_factory=list)
    """The stale records that cannot be rerun here, with why."""
    written: list[Path] = field(default_factory=list)
    """Every record written (a stale model's base is rerun for its answers, and published
    only if stale itself)."""


@dataclass(frozen=True)
class _Where:
    """Where a republishing reads and writes, and how it runs."""

    specs_path: Path
    specs: SpecSet
    leaderboard: Path
    store: Cache
    context: BackendContext
    console: Console
    dry_run: bool


def republish_stale(
    specs_path: Path,
    leaderboard: Path,
    *,
    context: BackendContext,
    console: Console,
    cache: Path | None = None,
    dry_run: bool = False,
) -> Republishing:
    """Find the records under `leaderboard` that today's specs make stale; rerun each suite's
    stale models that can run here (with a medical model's base, whose answers its record
    needs), and republish them, each suite's folder swapped in whole. `dry_run`: plan only."""
    specs = load_specs(specs_path)
    done = Republishing(stale_records(leaderboard, specs))
    by_suite: dict[str, list[StaleRecord]] = {}
    for record in done.stale:
        why = why_not_rerun(record, specs)
        if why is None:
            by_suite.setdefault(record.suite, []).append(record)
        else:
            done.refused.append((record, why))
    if not by_suite:
        return done
    with open_cache(cache) as store:
        context = replace(context, state_dir=store.path.parent)
        where = _Where(specs_path, specs, leaderboard, store, context, console, dry_run)
        for suite, records in sorted(by_suite.items()):
            _republish_suite(where, suite, records, done)
    return done


def _blocked(where: _Where, plan: Plan, specs: SpecSet) -> dict[str, str]:
    """The planned models that cannot run here (or, unless dry, whose run failed), with why."""
    blocked = dict(plan.unavailable)
    if not where.dry_run:
        summary = run_suite(plan, specs, where.store, context=where.context, console=where.console)
        for line in summary.lines():
            where.console.print(line, highlight=False, markup=False)
        blocked.update({m: f"its run failed: {why}" for m, why in summary.failed_models.items()})
        if summary.failed or summary.interrupted:
            why = f"{summary.failed} jobs of its suite failed; rerun to retry them"
            blocked.update({m: why for m in plan.models if m not in blocked})
    for model in list(plan.models):
        base = specs.models[model].base
        if base in blocked and model not in blocked:
            blocked[model] = f"its base '{base}', whose answers its record needs: {blocked[base]}"
    return blocked


def _republish_suite(
    where: _Where, suite: str, records: list[StaleRecord], done: Republishing
) -> None:
    stale = {r.model for r in records}
    listed = where.specs.suites[suite].models
    # A pair's scores need the base's answers: run it too (it is published only if stale).
    bases = {b for m in stale if (b := where.specs.models[m].base) in listed}
    models = sorted(stale | bases)
    specs, plan = plan_suite(where.specs_path, suite, where.store, models, None, None)
    blocked = _blocked(where, plan, specs)
    for record in records:
        if record.model in blocked:
            done.refused.append((record, f"the model cannot run here: {blocked[record.model]}"))
        else:
            done.rerun.append(record)
    chosen = sorted(stale - blocked.keys())
    if where.dry_run or not chosen:
        return
    with tempfile.TemporaryDirectory(prefix="medbench-republish-") as results:
        report = Console(stderr=True)
        score_and_report(
            specs, plan, where.store, Path(results), report, where.context, where.context
        )
        done.written += publish_in_place(specs, suite, Path(results), where.leaderboard, chosen)


def publish_in_place(
    specs: SpecSet, suite: str, results: Path, leaderboard: Path, models: list[str]
) -> list[Path]:
    """Publish `models` of a scored suite into `leaderboard/<suite>/` atomically: into a copy
    of the folder, swapped in whole (readers see the old records or the new, never half), under
    the leaderboard's lock (`.leaderboard.lock` beside it, git-ignored). Test models publish as
    they were (the caller checked their records)."""
    folder = leaderboard / suite
    with folder_lock(leaderboard):
        staged = staging_folder(leaderboard)
        try:
            if folder.is_dir():
                shutil.copytree(folder, staged / suite, symlinks=True)
            written = publish_results(
                specs, suite, results, staged, models=models, allow_test_models=True
            )
            swap_folder(staged / suite, folder)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    return [folder / path.name for path in written]
