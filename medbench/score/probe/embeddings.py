"""Image embeddings of the evaluated models, content-addressed in their own SQLite store.

A vector is keyed by what changes it: the embedding kind, the rule that pools it
(`EMBED_RULE`), the model's identity (less its decoding parameters, which the vision tower never
sees; with its `image_preprocess`, which pads the image first) and the image's sha256. It is stored
as float16 bytes and always read back through float16, so that a first run and a cached rerun
return the same numbers. Extraction needs torch; this module imports it only when a vector is
missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medbench.data import Sample
from medbench.run import ModelIdentity, content_key, open_store, step, transaction
from medbench.run.backends import BackendContext
from medbench.spec import ModelSpec

EMBED_FORMAT = 1
"""Part of every embedding key and of the store: bump when either changes meaning."""
EMBED_RULE = 2
"""The version of the rule that makes an image's vector (in `medbench.run.backends.hf.embed`'s
docstring), part of every key: bump when it changes. 1: CLIP's CLS or SigLIP's mean patch, and the
mean of all projected tokens, images never padded; 2: the projector's input and output, padded as
for generation, averaged over the tokens the language model reads, without image newlines."""
STORE_NAME = "embeddings.sqlite"
KINDS = ("vision", "projected")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    dim INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    data BLOB NOT NULL,
    created TEXT NOT NULL
);
"""


def store_path(cache_path: Path) -> Path:
    """The embedding store beside an answer cache."""
    return cache_path.parent / STORE_NAME


def embedding_key(
    kind: str, identity: ModelIdentity, image_sha256: str, *, rule: int = EMBED_RULE
) -> str:
    """The content key of one image's embedding of one kind by one model, made by `rule`."""
    model = {k: v for k, v in identity.payload.items() if k != "generation"}
    payload = {"embedding": kind, "model": model, "image": image_sha256}
    return content_key({**payload, "embed_format": EMBED_FORMAT, "embed_rule": rule})


class EmbeddingStore:
    """Embedding vectors as float16 blobs; safe for several processes (WAL, busy timeout)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_store(
            path,
            _SCHEMA,
            EMBED_FORMAT,
            "embedding store",
            "Delete this file; embeddings are extracted again.",
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_many(self, keys: Iterable[str]) -> dict[str, NDArray[Any]]:
        """The stored vectors (float32, read through float16) of these keys; missing are absent."""
        found: dict[str, NDArray[Any]] = {}
        unique = sorted(set(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, dim, data FROM embeddings WHERE key IN ({marks})"
            for key, dim, data in self._db.execute(query, chunk):
                vector: NDArray[Any] = np.frombuffer(data, dtype="<f2", count=dim)
                found[key] = vector.astype(np.float32)
        return found

    def put_many(self, rows: Iterable[tuple[str, str, str, str, NDArray[Any]]]) -> int:
        """Store (key, model, kind, image sha256, vector) rows in one transaction; a key
        already stored is kept. Returns how many rows were given."""
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        values = [
            (key, model, kind, sha, int(v.size), "float16", as_float16(v).tobytes(), created)
            for key, model, kind, sha, v in rows
        ]
        with transaction(self._db):
            self._db.executemany(
                "INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values
            )
        return len(values)

    def count(self) -> int:
        """How many vectors are stored."""
        return int(self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])


def as_float16(vector: NDArray[Any]) -> NDArray[Any]:
    """A vector as little-endian float16, the stored form (values beyond its range saturate)."""
    finfo = np.finfo(np.float16)
    clipped: NDArray[Any] = np.clip(vector, finfo.min, finfo.max)
    return clipped.astype("<f2")


@dataclass(frozen=True)
class Embeddings:
    """One model's embeddings of a list of samples."""

    arrays: dict[str, NDArray[Any]]
    """kind -> (samples, dim) float32, in sample order; NaN rows for undecodable images."""
    extracted: int
    """Images this call ran through the model (0 when every vector was stored)."""


def can_embed(spec: ModelSpec) -> bool:
    """Whether medbench can extract image embeddings from this model (a local hf VLM)."""
    return spec.backend == "hf" and not spec.text_only and spec.checkpoint_format == "hf"


def get_embeddings(
    store: EmbeddingStore,
    spec: ModelSpec,
    identity: ModelIdentity,
    samples: Sequence[Sample],
    kinds: Sequence[str] = KINDS,
    *,
    context: BackendContext,
) -> Embeddings:
    """Every sample's embeddings of each kind: stored ones read, missing ones extracted
    (the model loaded once, images batched) and stored."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(
            f"unknown embedding kind {unknown[0]!r}; expected one of vision, projected"
        )
    if not can_embed(spec):
        raise ValueError(f"model {spec.id}: only local hf vision-language models have embeddings")
    keys = {(k, s.sha256): embedding_key(k, identity, s.sha256) for k in kinds for s in samples}
    stored = store.get_many(keys.values())
    path_of = {s.sha256: s.path for s in samples}
    missing = {sha: path_of[sha] for (_, sha), key in sorted(keys.items()) if key not in stored}
    if missing:
        needed = [k for k in kinds if any(keys[(k, s.sha256)] not in stored for s in samples)]
        stored.update(_extract(store, spec, identity, missing, needed, context, keys))
    arrays = {kind: _stack([stored.get(keys[(kind, s.sha256)]) for s in samples]) for kind in kinds}
    return Embeddings(arrays, len(missing))


def _extract(
    store: EmbeddingStore,
    spec: ModelSpec,
    identity: ModelIdentity,
    missing: dict[str, Path],
    kinds: Sequence[str],
    context: BackendContext,
    keys: dict[tuple[str, str], str],
) -> dict[str, NDArray[Any]]:
    from medbench.run.backends.hf import extract
    from medbench.run.executors import ModelWork, prepare_checkpoint

    prepare_checkpoint(ModelWork(spec, identity, []))
    context = identity.context(context)
    shas = sorted(missing)
    with step(f"{spec.id}: embedding {len(shas)} images"):
        vectors = extract(spec, context, [missing[sha] for sha in shas], kinds)
    rows: list[tuple[str, str, str, str, NDArray[Any]]] = []
    for kind in kinds:
        for sha, vector in zip(shas, vectors[kind], strict=True):
            if np.isfinite(vector).all() and vector.size:
                rows.append((keys[(kind, sha)], spec.id, kind, sha, vector))
    store.put_many(rows)
    return {key: as_float16(vector).astype(np.float32) for key, _, _, _, vector in rows}


def _stack(vectors: list[Any]) -> NDArray[Any]:
    """Rows in order; a missing vector (an undecodable image) is a row of NaN."""
    dim = next((v.size for v in vectors if v is not None), 0)
    out = np.full((len(vectors), dim), np.nan, dtype=np.float32)
    for i, vector in enumerate(vectors):
        if vector is not None:
            out[i] = vector
    return out


__all__ = [
    "EMBED_FORMAT",
    "EMBED_RULE",
    "KINDS",
    "STORE_NAME",
    "EmbeddingStore",
    "Embeddings",
    "as_float16",
    "can_embed",
    "embedding_key",
    "get_embeddings",
    "store_path",
]
