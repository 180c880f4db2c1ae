"""Probe results and t-SNE maps remembered by content, so that a warm rerun refits nothing.

A cross-validated probe is a pure function of its features, the labels and the probe settings;
a t-SNE map of the embeddings, the labels, the marks, the title and the seed. Each is stored
under the sha256 of exactly those (and of the library versions that compute it) in
`probes.sqlite` beside the answer cache. A changed embedding, label or setting is a new key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medbench.run import content_key, open_store, transaction
from medbench.score.probe import classifier
from medbench.score.probe.classifier import ProbeResult

MEMO_FORMAT = 1
"""Part of every key and of the store: bump when a probe or a map changes for the same input."""
PROBE_RESULT = 2
"""Part of a probe's key: what a stored probe result holds (2: each image's out-of-fold
prediction and fold), so results stored before are refitted rather than read short."""
STORE_NAME = "probes.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memo (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created TEXT NOT NULL
);
"""


def memo_path(cache_path: Path) -> Path:
    """The probe memo beside an answer cache."""
    return cache_path.parent / STORE_NAME


def array_digest(x: NDArray[Any]) -> str:
    """The sha256 of an array's dtype, shape and bytes."""
    data = np.ascontiguousarray(x)
    digest = hashlib.sha256(f"{data.dtype.str}{data.shape}".encode())
    digest.update(data.tobytes())
    return digest.hexdigest()


def images_digest(shas: Sequence[str]) -> str:
    """A digest of images by their sha256, in order (what raw-pixel features are made of)."""
    return hashlib.sha256("\n".join(shas).encode()).hexdigest()


def _versions(*packages: str) -> dict[str, str]:
    found = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


class ProbeMemo:
    """The store of probe results (JSON) and t-SNE maps (SVG text), by content key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_store(
            path, _SCHEMA, MEMO_FORMAT, "probe memo", "Delete this file; probes are refitted."
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ProbeMemo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM memo WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _put(self, key: str, kind: str, value: str) -> None:
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with transaction(self._db):
            self._db.execute(
                "INSERT OR IGNORE INTO memo VALUES (?, ?, ?, ?)", (key, kind, value, created)
            )

    def probe(
        self,
        features: str,
        compute: Callable[[], NDArray[Any]],
        labels: Sequence[str],
        *,
        seed: int,
        folds: int | None,
        groups: Sequence[str] | None = None,
    ) -> ProbeResult:
        """`classifier.probe` of the features `compute` returns, whose content `features`
        names (an `array_digest`, or what the features are made from); grouped folds with
        `groups` (part of the key only then, so ungrouped probes keep their keys)."""
        settings = {
            "seed": seed,
            "folds": folds,
            "max_folds": classifier.MAX_FOLDS,
            "permutations": classifier.PERMUTATIONS,
            "max_iter": classifier.MAX_ITER,
            "result": PROBE_RESULT,
            "versions": _versions("scikit-learn", "numpy"),
        }
        key = content_key(
            {"memo": "probe", "format": MEMO_FORMAT, "features": features, "labels": list(labels)}
            | {"settings": settings}
            | ({"groups": list(groups)} if groups is not None else {})
        )
        stored = self._get(key)
        if stored is not None:
            fields = json.loads(stored)
            fields.update(predicted=tuple(fields["predicted"]), fold=tuple(fields["fold"]))
            return ProbeResult(**fields)
        result = classifier.probe(compute(), list(labels), seed=seed, folds=folds, groups=groups)
        self._put(key, "probe", json.dumps(asdict(result), sort_keys=True))
        return result

    def tsne(
        self,
        x: NDArray[Any],
        labels: Sequence[str],
        marks: Sequence[str],
        title: str,
        *,
        seed: int,
    ) -> str:
        """`tsne_svg` of the embeddings `x`, remembered by content."""
        from medbench.score.probe.tsne import DRAWING, tsne_svg

        key = content_key(
            {
                "memo": "tsne",
                "format": MEMO_FORMAT,
                "x": array_digest(x),
                "labels": list(labels),
                "marks": list(marks),
                "title": title,
                "seed": seed,
                "drawing": DRAWING,
                "versions": _versions("scikit-learn", "numpy", "matplotlib"),
            }
        )
        stored = self._get(key)
        if stored is not None:
            return stored
        svg = tsne_svg(x, list(labels), list(marks), title, seed=seed)
        self._put(key, "tsne", svg)
        return svg


__all__ = ["MEMO_FORMAT", "STORE_NAME", "ProbeMemo", "array_digest", "images_digest", "memo_path"]
