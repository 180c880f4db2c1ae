"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medbench.cache import Cache, default_cache_path
from medbench.loading import SpecSet, load_specs
from medbench.plan import Plan, make_plan
from medbench.served import SnapshotSource, recorded

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
    list[str] | None, typer.Option("--model", "-m", help="Only this model (repeatable).")
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


def models_dir(cache: Cache) -> Path:
    """Where tiny local models are built: beside the cache."""
    return cache.path.parent / "models"


def build_plan(
    specs_path: Path,
    suite: str,
    cache: Cache,
    models: list[str] | None,
    tasks: list[str] | None,
    limit: int | None,
    snapshots: SnapshotSource | None = None,
) -> tuple[SpecSet, Plan]:
    """Load the specs and plan a suite against the cache (file hashes remembered); hosted
    models' snapshots come from what runs recorded beside the cache unless `snapshots` says
    otherwise (only `run` asks the endpoint)."""
    specs = load_specs(specs_path)
    plan = make_plan(
        specs,
        suite,
        models_dir=models_dir(cache),
        models=models,
        tasks=tasks,
        limit=limit,
        hasher=cache.hash_file,
        snapshots=snapshots or recorded(cache.path.parent),
    )
    cache.flush_hashes()
    return specs, plan
