"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medbench.cache import Cache, default_cache_path

SpecsArg = Annotated[Path, typer.Argument(help="Spec folder (or file) to load.", show_default=True)]
SuiteOpt = Annotated[str, typer.Option("--suite", "-s", help="Suite id to use.")]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        help=(
            "Answer cache: a SQLite file, or a folder to hold answers.sqlite. "
            "Default: $MEDBENCH_CACHE or the user cache folder."
        ),
        show_default=False,
    ),
]
ModelsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="Only this model (repeatable); `hf:ORG/NAME[@REV]` for a hub model without a spec.",
    ),
]
TasksOpt = Annotated[
    list[str] | None, typer.Option("--task", "-t", help="Only this task (repeatable).")
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="At most N images per task (a quick look).")
]


def open_cache(path: Path | None) -> Cache:
    """The answer cache at `path` or the default location."""
    return Cache(path or default_cache_path())
