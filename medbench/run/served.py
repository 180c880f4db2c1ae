"""Served snapshots of hosted models: which model name an endpoint answered with, recorded by
`medbench run` beside the answer cache, so that `plan`, `score` and `check` compute the same
content keys without contacting the endpoint (or needing its key)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medbench.atomic import write_text_atomic
from medbench.run.cache import content_key
from medbench.run.identity import openai_identity, served_snapshot
from medbench.spec import ModelSpec

if TYPE_CHECKING:
    from medbench.run.cache import Cache
    from medbench.run.plan import Plan

SNAPSHOTS_FILE = "served_snapshots.json"
SCHEMA_VERSION = 1
"""Of the snapshots file: bump when its layout changes (an older file is then ignored)."""

SnapshotSource = Callable[[ModelSpec], "str | None"]
"""The served snapshot of an unpinned `openai` model, or None when it is not known."""


class SnapshotLog:
    """`{schema_version, endpoints: [{base_url, model, snapshots: [oldest, ..., newest]}]}`.

    A missing, unreadable or older file counts as empty; writes replace the file atomically.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / SNAPSHOTS_FILE

    def history(self, spec: ModelSpec) -> list[str]:
        """The snapshots recorded for the spec's endpoint and model, oldest first."""
        assert spec.openai is not None
        return self._read().get((spec.openai.base_url, spec.openai.model), [])

    def record(self, spec: ModelSpec, snapshot: str) -> None:
        """Make `snapshot` the newest recorded for the spec's endpoint and model."""
        assert spec.openai is not None
        endpoints = self._read()
        where = (spec.openai.base_url, spec.openai.model)
        seen = [s for s in endpoints.get(where, []) if s != snapshot]
        endpoints[where] = [*seen, snapshot]
        rows = [
            {"base_url": url, "model": model, "snapshots": snapshots}
            for (url, model), snapshots in sorted(endpoints.items())
        ]
        text = json.dumps({"schema_version": SCHEMA_VERSION, "endpoints": rows}, indent=1)
        write_text_atomic(self.path, text + "\n")

    def _read(self) -> dict[tuple[str, str], list[str]]:
        try:
            data: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            return {}
        found: dict[tuple[str, str], list[str]] = {}
        for row in data.get("endpoints", []):
            if not isinstance(row, dict):
                continue
            url, model, snapshots = row.get("base_url"), row.get("model"), row.get("snapshots")
            if isinstance(url, str) and isinstance(model, str) and isinstance(snapshots, list):
                found[(url, model)] = [s for s in snapshots if isinstance(s, str) and s]
        return found


def recorded(folder: Path) -> SnapshotSource:
    """The newest snapshot a run recorded; never contacts the endpoint."""
    log = SnapshotLog(folder)

    def source(spec: ModelSpec) -> str | None:
        history = log.history(spec)
        return history[-1] if history else None

    return source


@dataclass
class Change:
    """The endpoint now serves another snapshot than the one the cache recorded."""

    model: str
    before: str
    now: str


@dataclass
class Probing:
    """Ask the endpoint (one 1-token request per endpoint) and record what it serves; the
    snapshot source of `medbench run`. `changes` lists the models whose snapshot moved."""

    folder: Path
    changes: list[Change] = field(default_factory=list)

    def __call__(self, spec: ModelSpec) -> str | None:
        log = SnapshotLog(self.folder)
        history = log.history(spec)
        snapshot = served_snapshot(spec)
        if snapshot is not None:
            if history and history[-1] != snapshot:
                self.changes.append(Change(spec.id, history[-1], snapshot))
            log.record(spec, snapshot)
        return snapshot


def stale_diagnoses(plan: Plan, cache: Cache, change: Change, spec: ModelSpec) -> list[str]:
    """Diagnose jobs of `change.model` answered in the cache under the snapshot it replaced
    and not yet under the new one, as `task/sample/family/variant (pipeline)`, sorted."""
    old = openai_identity(spec, change.before).payload
    jobs = [j for j in plan.jobs if j.model == change.model and j.key in plan.diagnoses]
    old_keys = {
        j.key: content_key({"model": old, "messages": plan.diagnoses[j.key].key_payload()})
        for j in jobs
    }
    done = cache.finished_keys()
    return sorted(
        f"{j.task}/{j.sample}/{j.family}/{j.variant} ({j.pipeline} of {j.subject})"
        for j in jobs
        if old_keys[j.key] in done and j.key not in done
    )
