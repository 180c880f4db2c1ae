"""`medbench score`: parse and score a suite's cached answers (no GPU, no model import)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from medbench.backends.base import BackendContext
from medbench.commands.common import CacheOpt, SpecsArg, SuiteOpt, open_cache
from medbench.loading import SpecSet
from medbench.plan import Plan

ResultsOpt = Annotated[Path, typer.Option("--results", help="Folder for score outputs.")]


def _fmt(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    lo, hi = row.get(f"{name}_lo"), row.get(f"{name}_hi")
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return f"{value:.2f}"
    return f"{value:.2f} [{lo:.2f}-{hi:.2f}]"


def print_table(specs: SpecSet, plan: Plan, tables: Any, console: Console) -> None:
    """Models x tasks: f1_all of the reference closed-choice variant, fragility, refusals."""
    families = [
        f for f in sorted(plan.suite.prompt_families) if specs.families[f].answer == "label"
    ]
    tasks = sorted(plan.samples)
    scores = tables.scores
    family = families[0] if families else None
    ref = specs.families[family].reference if family else None
    title = f"suite {plan.suite.id}: f1_all with 95% CI ({family}/{ref}); fragility index"
    table = Table(title=title)
    table.add_column("model")
    for t in tasks:
        table.add_column(t.replace("_", " "), justify="right")
    table.add_column("fragility", justify="right")
    table.add_column("refusals", justify="right")
    chance: dict[str, str] = {}

    def cell(model: str, task: str) -> str:
        if family is None or not len(scores):
            return "-"
        hit = scores[
            (scores.model == model)
            & (scores.task == task)
            & (scores.family == family)
            & (scores.variant == ref)
            & (scores.pipeline == "direct")
        ]
        if not len(hit):
            return "-"
        row = hit.iloc[0].to_dict()
        chance[task] = f"{row['chance_f1']:.2f}"
        return _fmt(row, "f1_all")

    for model in sorted(plan.models):
        cells = [model + (" (test)" if specs.models[model].test_model else "")]
        cells.extend(cell(model, t) for t in tasks)
        m = tables.models[(tables.models.model == model) & (tables.models.pipeline == "direct")]
        cells.append(_fmt(m.iloc[0].to_dict(), "fragility_index") if len(m) else "-")
        mine = scores[scores.model == model] if len(scores) else scores
        refusal = mine["refusal_rate"].mean() if len(mine) else float("nan")
        cells.append("-" if math.isnan(refusal) else f"{refusal:.2f}")
        table.add_row(*cells)
    table.add_row("chance", *(chance.get(t, "-") for t in tasks), "", "", style="dim")
    console.print(table)


def print_ladder(ladder: Any, console: Console) -> None:
    """The knowledge ladder of each probed model and task, with its one-line reading."""

    def num(value: Any) -> str:
        return "-" if value is None or value != value else f"{value:.2f}"

    console.print("[bold]Knowledge ladder[/] (macro-F1: chance, answers, best probe, pixels)")
    probed = ladder[ladder["probe_vision_f1"].notna() | ladder["probe_projected_f1"].notna()]
    for row in probed.to_dict("records"):
        probes = [row[k] for k in ("probe_vision_f1", "probe_projected_f1") if row[k] == row[k]]
        console.print(
            f"  {row['model']} / {row['task']}: chance {num(row['chance_f1'])}, "
            f"answers {num(row['direct_f1_mean'])}, probe {num(max(probes))}, "
            f"pixels {num(row['pixel_f1'])}: {row['reading']}",
            highlight=False,
        )


def score_and_report(
    specs: SpecSet,
    plan: Plan,
    cache: Any,
    results: Path,
    console: Console,
    probe_context: BackendContext | None = None,
) -> Path:
    """Score a plan's cached answers, write `results/<suite>/`, print the compact table;
    with `probe_context`, also run the suite's probe stage (it may load the models)."""
    from medbench.results import write_results
    from medbench.scoring import collect_answers, make_layout, score_answers

    answers = collect_answers(specs, plan, cache)
    planned = {
        (j.evaluated, j.task, j.family, j.variant, j.pipeline, j.sample)
        for j in plan.jobs
        if specs.families[j.family].answer != "text"
    }
    missing = len(planned) - len(answers)
    layout = make_layout(specs, plan)
    tables = score_answers(_as_sidecar_rows(answers), layout)
    out = results / plan.suite.id
    test_models = [m for m in plan.models if specs.models[m].test_model]
    write_results(out, plan.suite.id, answers, tables, layout, test_models)
    print_table(specs, plan, tables, console)
    if probe_context is not None and plan.suite.probe is not None:
        from medbench.probe.ladder import run_probe_stage

        ladder = run_probe_stage(
            specs, plan, cache.path, answers, tables.scores, out, probe_context
        )
        print_ladder(ladder, console)
    if missing > 0:
        console.print(f"[yellow]{missing} planned answers are not in the cache yet: run the suite.")
    console.print(f"Scores written to {out}/")
    return out


def _as_sidecar_rows(answers: Any) -> Any:
    """The rows as a record's sidecar holds them (sorted, as text), which is what publishing
    them scores: `medbench run`'s local site then reuses these tables. The rows as they are
    when the sidecar's CSV does not give them back (text holding a carriage return)."""
    from medbench.records import answers_csv, read_answers_csv

    try:
        rows = read_answers_csv(answers_csv(answers))
    except ValueError:
        return answers
    return rows if len(rows) == len(answers) else answers


def build_local_site(specs_path: Path, suite: str, results: Path, console: Console) -> Path:
    """Publish the suite's fresh results into `results/<suite>/leaderboard/` (test models
    allowed: the site marks them) and build `_site/` from them."""
    import contextlib
    import io
    import shutil

    from medbench.commands.leaderboard import publish
    from medbench.loading import load_specs
    from medbench.site import build_site

    records = results / suite / "leaderboard"
    shutil.rmtree(records, ignore_errors=True)
    with contextlib.redirect_stdout(io.StringIO()):  # publish's advice on pull requests
        publish(suite, None, results, specs_path, records, allow_test_models=True)
    out = Path("_site")
    build_site(records, out, specs=load_specs(specs_path))
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
    from medbench.commands.runner import build_plan

    console = Console(stderr=True)
    with open_cache(cache) as store:
        spec_set, plan = build_plan(specs, suite, store, None, None, None)
        score_and_report(spec_set, plan, store, results, console)
