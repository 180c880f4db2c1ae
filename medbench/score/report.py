"""Score a suite into its results folder and print the terminal report: the summary, the
likelihood read-out and the knowledge ladder."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from rich.console import Console

from medbench.run import Cache, Plan
from medbench.run.backends import BackendContext
from medbench.spec.loading import SpecSet

HANGING = 4
"""How much deeper than its first line a wrapped line's continuation starts."""


def print_line(console: Console, line: str) -> None:
    """One line of the report: on a terminal, wrapped at word boundaries with its continuation
    indented under its start (so that two lines never run together, and no word is cut); in a
    file or a pipe, whole, for grep."""
    if not console.is_terminal:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
        return
    body = line.lstrip(" ")
    lead = " " * (len(line) - len(body))
    parts = textwrap.wrap(
        body,
        width=console.width,
        initial_indent=lead,
        subsequent_indent=lead + " " * HANGING,
        break_long_words=False,
        break_on_hyphens=False,
    )
    for part in parts or [""]:
        console.print(part, highlight=False, markup=False, soft_wrap=True)


def print_ladder(ladder: Any, console: Console, truncated: Any = None) -> None:
    """The knowledge ladder of each probed model and task, with its one-line reading (and how
    many of its descriptions were truncated)."""
    from medbench.score.summary import ladder_lines

    console.print(
        "[bold]Knowledge ladder[/] (macro-F1, rung by rung: chance, no image, answers, "
        "likelihood, described, best probe, pixels; a rung not measured is left out)"
    )
    for line in ladder_lines(ladder, truncated):
        print_line(console, line)


def score_and_report(
    specs: SpecSet,
    plan: Plan,
    cache: Cache,
    results: Path,
    console: Console,
    probe_context: BackendContext | None = None,
    likelihood_context: BackendContext | None = None,
    out: Console | None = None,
) -> Path:
    """Score a plan's cached answers into `results/<suite>/` and print the summary; with
    `probe_context`, also run the suite's probe stage (it may load the models); with
    `likelihood_context`, compute the likelihood stage's missing option scores (else only
    the cached ones are scored). The results (summary, likelihood, ladder) go to `out`
    (default: `console`), progress and notes to `console`."""
    from medbench.score.results import score_suite
    from medbench.score.summary import robustness_lines, summary_lines

    report = out or console
    scored = score_suite(specs, plan, cache, results, probe_context, likelihood_context)
    tables = scored.tables
    lines = summary_lines(plan.suite.id, tables.models, tables.scores, scored.test_models)
    lines += robustness_lines(tables.severity_models, tables.quadrant_models)
    for line in [*lines, *scored.likelihood_lines]:
        print_line(report, line)
    if scored.ladder is not None:
        from medbench.score.truncation import truncated_descriptions

        print_ladder(scored.ladder, report, truncated_descriptions(plan.jobs, cache))
    if scored.missing > 0:
        console.print(
            f"[yellow]{scored.missing} planned answers are not in the cache yet: run the suite."
        )
    console.print(f"Scores written to {scored.out}/")
    return scored.out
