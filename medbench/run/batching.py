"""Automatic batch size: grow from 1 while batches fit, halve on out-of-memory, and remember
the size found per (model, device) in a small JSON file beside the answer cache."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.atomic import write_text_atomic

BATCH_SIZES_FILE = "batch_sizes.json"
SCHEMA_VERSION = 1
"""Of the batch-size file: bump when its layout changes (an older file is then ignored)."""
MAX_AUTO_BATCH = 64
"""Auto batching stops growing here: larger batches gain little and pad more."""


@dataclass
class BatchSizer:
    """The size of the next batch. A fixed size stays as the user asked (an out-of-memory batch
    is still split, but the next one is cut at the full size again); an automatic size starts
    at 1 (or at the size remembered for this model and device), doubles after each batch of
    the current size that fits, and settles at half the size that ran out of memory."""

    size: int
    auto: bool
    settled: bool
    largest_fit: int = 0
    """The largest batch that generated without running out of memory."""
    out_of_memory_at: int | None = None
    """The smallest batch that ran out of memory."""

    @classmethod
    def fixed(cls, size: int) -> BatchSizer:
        return cls(size=size, auto=False, settled=True)

    @classmethod
    def automatic(cls, remembered: int | None = None) -> BatchSizer:
        if remembered is None:
            return cls(size=1, auto=True, settled=False)
        return cls(size=remembered, auto=True, settled=True)

    def fitted(self, rows: int) -> None:
        """A batch of `rows` generated without running out of memory."""
        self.largest_fit = max(self.largest_fit, rows)
        if self.auto and not self.settled and rows >= self.size:
            self.size = min(2 * self.size, MAX_AUTO_BATCH)
            self.settled = self.size == MAX_AUTO_BATCH

    def out_of_memory(self, rows: int) -> None:
        """A batch of `rows` ran out of memory (it is then split in halves)."""
        if self.out_of_memory_at is None or rows < self.out_of_memory_at:
            self.out_of_memory_at = rows
        if self.auto:
            self.size = max(1, min(self.size, rows // 2))
            self.settled = True


class BatchMemory:
    """The auto batch sizes found on this machine: `{schema_version, sizes: [{model, device,
    batch_size}]}`, sorted. A missing, unreadable or older file counts as empty (it is a cache);
    writes replace the file atomically."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / BATCH_SIZES_FILE

    def get(self, model: str, device: str) -> int | None:
        return self._read().get((model, device))

    def put(self, model: str, device: str, batch_size: int) -> None:
        sizes = self._read()
        sizes[(model, device)] = batch_size
        rows = [{"model": m, "device": d, "batch_size": n} for (m, d), n in sorted(sizes.items())]
        text = json.dumps({"schema_version": SCHEMA_VERSION, "sizes": rows}, indent=1)
        write_text_atomic(self.path, text + "\n")

    def _read(self) -> dict[tuple[str, str], int]:
        try:
            data: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            return {}
        sizes: dict[tuple[str, str], int] = {}
        for row in data.get("sizes", []):
            if not isinstance(row, dict):
                continue
            model, device, size = row.get("model"), row.get("device"), row.get("batch_size")
            if not (isinstance(model, str) and isinstance(device, str)):
                continue
            if type(size) is int and 1 <= size <= MAX_AUTO_BATCH:
                sizes[(model, device)] = size
        return sizes
