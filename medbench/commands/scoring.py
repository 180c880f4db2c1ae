"""`medbench score`: parse and score a suite's cached answers (no GPU, no model import)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from medbench.commands.options import CacheOpt, ResultsOpt, SpecsArg, SuiteOpt


def score(
    specs: SpecsArg = Path("specs"),
    suite: SuiteOpt = "quickstart",
    cache: CacheOpt = None,
    results: ResultsOpt = Path("results"),
) -> None:
    """Parse and score the suite's cached answers into results/<suite>/ (no GPU needed).

    The results (summary, likelihood, knowledge ladder) go to stdout, progress and notes to
    stderr: `medbench score specs --suite quickstart > summary.txt`.

    Example: medbench score specs --suite quickstart
    """
    from medbench.run import open_cache, plan_suite
    from medbench.score import score_and_report

    console = Console(stderr=True)  # progress and notes; the results go to stdout
    with open_cache(cache) as store:
        spec_set, plan = plan_suite(specs, suite, store, None, None, None)
        score_and_report(spec_set, plan, store, results, console, out=Console())
