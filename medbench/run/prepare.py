"""From a spec folder to a suite's plan: load the specs, add ad hoc models, plan against the
answer cache; data problems are reported at the spec fields they are about."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from medbench.data import DATA_ENV, check_data
from medbench.errors import DataError, SpecError
from medbench.home import models_dir
from medbench.run.cache import Cache, default_cache_path
from medbench.run.plan import Plan, make_plan
from medbench.run.served import SnapshotSource, recorded
from medbench.spec.loading import SpecSet, load_specs


def open_cache(path: Path | None) -> Cache:
    """The answer cache at `path` or the default location."""
    return Cache(path or default_cache_path())


def plan_suite(
    specs_path: Path,
    suite: str,
    cache: Cache,
    models: list[str] | None,
    tasks: list[str] | None,
    limit: int | None,
    snapshots: SnapshotSource | None = None,
    base: str | None = None,
    placeholders: bool = False,
) -> tuple[SpecSet, Plan]:
    """The suite's plan; hosted models' snapshots come from what runs recorded beside the
    cache unless `snapshots` says otherwise (only `run` asks the endpoint). A `models` entry
    `hf:ORG/NAME[@REV]` (and `base`) is an ad hoc model, added to the suite for this plan.
    `placeholders`: see `make_plan` (for counting a plan's cost, never for running it)."""
    from medbench.spec import with_adhoc_models

    specs, models = with_adhoc_models(load_specs(specs_path), suite, models, base)
    for warning in specs.warnings.get(suite, ()):
        print(f"warning: {warning}", file=sys.stderr)
    try:
        plan = make_plan(
            specs,
            suite,
            models_dir=models_dir(),
            models=models,
            tasks=tasks,
            limit=limit,
            hasher=cache.hash_file,
            snapshots=snapshots or recorded(cache.path.parent),
            placeholders=placeholders,
        )
    except DataError:
        # The same problems, all of them, at the spec fields they are about.
        chosen = list(tasks or specs.suite(suite).tasks)
        issues = check_data(specs, _data_root(), [t for t in chosen if t in specs.tasks])
        if issues:
            raise SpecError(issues) from None
        raise
    cache.flush_hashes()
    return specs, plan


def _data_root() -> Path | None:
    return Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else None
