"""`medbench cache`: look into the answer store, prune what no spec uses, export it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from medbench.commands.options import CacheOpt

if TYPE_CHECKING:
    from medbench.run import Usage
    from medbench.spec.loading import SpecSet

app = typer.Typer(
    help="Inspect, prune and export the answer cache.\n\nExample: medbench cache stats",
    no_args_is_help=True,
    rich_markup_mode=None,
)

CacheSpecsOpt = Annotated[
    Path,
    typer.Option(
        "--specs", help="Spec folder whose suites say which rows are in use (default: specs)."
    ),
]


def _load(specs: Path) -> SpecSet:
    from medbench.spec.loading import load_specs

    return load_specs(specs)


def _skipped(used: Usage) -> None:
    for suite, why in sorted(used.skipped.items()):
        typer.echo(f"suite {suite} not planned here, its models' rows kept: {why}", err=True)


def _default_specs(specs: Path | None) -> Path | None:
    return specs if specs is not None else (Path("specs") if Path("specs").is_dir() else None)


@app.command()
def stats(
    cache: CacheOpt = None,
    specs: Annotated[
        Path | None,
        typer.Option(
            "--specs",
            help="Spec folder whose suites say which rows are in use (default: specs, if "
            "present; without specs every row counts as in use).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Per model: answers, failures, model time, and rows no current spec produces.

    Example: medbench cache stats --specs specs
    """
    from medbench.home import models_dir
    from medbench.run import Usage, by_model, open_cache, usage

    folder = _default_specs(specs)
    with open_cache(cache) as store:
        used = usage(_load(folder), store, models_dir()) if folder is not None else Usage()
        if folder is None:
            used.kept_models = {a.model for a in store.iter_answers()}
        rows = by_model(store, used)
        info = store.stats()
    _skipped(used)
    table = Table(title=f"{info['path']} ({info['bytes'] / 1e6:.1f} MB)")
    for column in ("model", "answers", "failed", "seconds", "unused"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(
            row["model"],
            str(row["answers"]),
            str(row["failed"]),
            f"{row['seconds']:.1f}",
            str(row["unused"]),
        )
    Console().print(table)
    unused = sum(row["unused"] for row in rows)
    typer.echo(f"{unused} rows no current spec produces (`medbench cache prune` removes them).")


@app.command()
def prune(
    cache: CacheOpt = None,
    specs: CacheSpecsOpt = Path("specs"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")
    ] = False,
) -> None:
    """Remove the rows no suite of the current specs produces (a changed prompt, a removed
    model); suites that cannot be planned here keep all their models' rows. Answers of an
    `audit-parse` judge come from no suite: they are removed too (see --dry-run).

    Example: medbench cache prune --dry-run
    """
    from collections import Counter

    from medbench.home import models_dir
    from medbench.run import open_cache, usage

    spec_set = _load(specs)
    with open_cache(cache) as store:
        used = usage(spec_set, store, models_dir())
        doomed = [a for a in store.iter_answers() if used.unused(a)]
        _skipped(used)
        for model, count in sorted(Counter(a.model for a in doomed).items()):
            typer.echo(f"{model}: {count} rows")
        if dry_run:
            typer.echo(f"{len(doomed)} rows would be removed (dry run: nothing removed).")
            return
        removed = store.delete(a.key for a in doomed)
    typer.echo(f"{removed} rows removed.")


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="File to write.")],
    format: Annotated[
        Literal["jsonl", "parquet"], typer.Option("--format", "-f", help="Output format.")
    ] = "jsonl",
    cache: CacheOpt = None,
    specs: Annotated[
        Path | None,
        typer.Option(
            "--specs",
            help="Spec folder for each row's `options`, `lettered`, `aliases` and `finding` "
            "(default: specs, if present).",
            show_default=False,
        ),
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Export failed rows too.")] = False,
) -> None:
    """Export the finished answers, one row per content key, ordered by key, as records
    `medbench parse` reads (`response`, `options`, `lettered`, `aliases`, `finding`).

    Example: medbench cache export answers.jsonl --format jsonl
    """
    from medbench.run import export_rows, open_cache

    folder = _default_specs(specs)
    spec_set = _load(folder) if folder is not None else None
    with open_cache(cache) as store:
        rows = list(export_rows(store, spec_set, failed=failed))
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "jsonl":
        with out.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        import pandas as pd

        pd.DataFrame(rows).to_parquet(out, index=False)
    typer.echo(f"{len(rows)} answers written to {out}")
