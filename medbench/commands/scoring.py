"""`medbench score`: parse and score a suite's cached answers (no GPU, no model import)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from medbench.commands.common import CacheOpt, SpecsArg, SuiteOpt, build_plan, open_cache
from medbench.run.backends.base import BackendContext
from medbench.run.cache import Cache
from medbench.run.plan import Plan
from medbench.spec.loading import SpecSet

ResultsOpt = Annotated[Path, typer.Option("--results", help="Folder for score outputs.")]


def print_ladder(ladder: Any, console: Console) -> None:
    """The knowledge ladder of each probed model and task, with its one-line reading."""
    from medbench.score.summary import ladder_lines

    console.print(
        "[bold]Knowledge ladder[/] (macro-F1, rung by rung: chance, no image, answers, "
        "likelihood, described, best probe, pixels; a rung not measured is left out)"
    )
    for line in ladder_lines(ladder):
        console.print(line, highlight=False, markup=False)


def score_and_report(
    specs: SpecSet,
    plan: Plan,
    cache: Cache,
    results: Path,
    console: Console,
    probe_context: BackendContext | None = None,
    likelihood_context: BackendContext | None = None,
) -> Path:
    """Score a plan's cached answers into `results/<suite>/` and print the summary; with
    `probe_context`, also run the suite's probe stage (it may load the models); with
    `likelihood_context`, compute the likelihood stage's missing option scores (else only
    the cached ones are scored)."""
    from medbench.score.results import score_suite
    from medbench.score.summary import summary_lines

    scored = score_suite(specs, plan, cache, results, probe_context, likelihood_context)
    tables = scored.tables
    for line in summary_lines(plan.suite.id, tables.models, tables.scores, scored.test_models):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    for line in scored.likelihood_lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if scored.ladder is not None:
        print_ladder(scored.ladder, console)
    if scored.missing > 0:
        console.print(
            f"[yellow]{scored.missing} planned answers are not in the cache yet: run the suite."
        )
    console.print(f"Scores written to {scored.out}/")
    return scored.out


def build_local_site(specs: SpecSet, suite: str, results: Path, console: Console) -> Path:
    """Publish the suite's fresh results locally and build `_site/` by the one rule: every
    published record in `leaderboard/`, plus the local records of every suite run here."""
    from medbench.publish.local import publish_locally
    from medbench.publish.site import build_site

    publish_locally(specs, suite, results)
    out = Path("_site")
    build_site(Path("leaderboard"), out, specs=specs, results=results)
    index = out / "index.html"
    console.print(f"Site built: open {index} (or run `medbench site serve`).")
    return index


def score(
    specs: SpecsArg = Path("specs"),
    suite: SuiteOpt = "quickstart",
    cache: CacheOpt = None,
    results: ResultsOpt = Path("results"),
) -> None:
    """Parse and score the suite's cached answers into results/<suite>/ (no GPU needed)."""
    console = Console(stderr=True)
    with open_cache(cache) as store:
        spec_set, plan = build_plan(specs, suite, store, None, None, None)
        score_and_report(spec_set, plan, store, results, console)
