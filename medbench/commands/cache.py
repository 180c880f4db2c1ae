"""`medbench cache`: look into the answer store and export it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from medbench.commands.common import CacheOpt, open_cache

app = typer.Typer(help="Inspect and export the answer cache.", no_args_is_help=True)


@app.command()
def stats(cache: CacheOpt = None) -> None:
    """Answers, failures and model time per model in the cache."""
    with open_cache(cache) as store:
        info = store.stats()
    table = Table(title=f"{info['path']} ({info['bytes'] / 1e6:.1f} MB)")
    for column in ("model", "answers", "failed", "seconds"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in info["models"]:
        table.add_row(
            row["model"], str(row["answers"]), str(row["failed"]), f"{row['seconds']:.1f}"
        )
    Console().print(table)


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="File to write.")],
    format: Annotated[
        Literal["jsonl", "parquet"], typer.Option("--format", "-f", help="Output format.")
    ] = "jsonl",
    cache: CacheOpt = None,
) -> None:
    """Export every stored answer, one row per content key, ordered by key."""
    with open_cache(cache) as store:
        rows = [answer.__dict__ for answer in store.iter_answers()]
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "jsonl":
        with out.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        import pandas as pd

        pd.DataFrame(rows).to_parquet(out, index=False)
    typer.echo(f"{len(rows)} answers written to {out}")
