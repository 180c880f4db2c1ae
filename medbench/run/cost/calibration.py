"""GPU calibration files: each model's measured prefill and decode speed on one GPU.

Written by the GPU check (`scripts/gpu_check.sh --calibration FILE`) and read by
`medbench plan --cost --calibration FILE` to turn token counts into GPU-hours:

    {"schema_version": 1, "kind": "gpu_calibration", "gpu": "NVIDIA H100 80GB HBM3",
     "models": {"gemma-3-4b-it": {"prefill_tokens_per_s": 21000.0,
                                   "decode_tokens_per_s": 900.0, "batch_size": 16}}}

Speeds are of the whole batch (tokens of all its prompts per second of wall time), at the
batch size the check ran, so that they apply to a run at that batch size.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.atomic import write_text_atomic
from medbench.errors import MedbenchError

CALIBRATION_FORMAT = 1
KIND = "gpu_calibration"


@dataclass(frozen=True)
class Speed:
    """One model's measured speeds on the calibration's GPU."""

    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    batch_size: int = 1


@dataclass(frozen=True)
class Calibration:
    """Measured speeds per model on one GPU."""

    gpu: str
    models: dict[str, Speed]

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "schema_version": CALIBRATION_FORMAT,
            "kind": KIND,
            "gpu": self.gpu,
            "models": {
                m: {
                    "prefill_tokens_per_s": s.prefill_tokens_per_s,
                    "decode_tokens_per_s": s.decode_tokens_per_s,
                    "batch_size": s.batch_size,
                }
                for m, s in sorted(self.models.items())
            },
        }
        return json.dumps(data, sort_keys=True, indent=2) + "\n"


def _rate(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MedbenchError(f"{where}: expected a number of tokens per second, got {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise MedbenchError(f"{where}: expected a positive number, got {value!r}.")
    return float(value)


def read_calibration(path: Path) -> Calibration:
    """The calibration in `path`, or a MedbenchError saying what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MedbenchError(f"{path}: cannot read a calibration file ({e}).") from e
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise MedbenchError(f"{path}: not a GPU calibration file (`kind: {KIND}`).")
    if data.get("schema_version") != CALIBRATION_FORMAT:
        raise MedbenchError(
            f"{path}: calibration schema_version {data.get('schema_version')!r}; this medbench "
            f"reads {CALIBRATION_FORMAT}. Run the GPU check again."
        )
    gpu, models = data.get("gpu"), data.get("models")
    if not isinstance(gpu, str) or not gpu or not isinstance(models, dict):
        raise MedbenchError(f"{path}: a calibration names its `gpu` and its `models`.")
    speeds: dict[str, Speed] = {}
    for model, entry in models.items():
        where = f"{path}: models.{model}"
        if not isinstance(entry, dict):
            raise MedbenchError(f"{where}: expected the model's speeds.")
        batch = entry.get("batch_size", 1)
        speeds[str(model)] = Speed(
            _rate(entry.get("prefill_tokens_per_s"), f"{where}.prefill_tokens_per_s"),
            _rate(entry.get("decode_tokens_per_s"), f"{where}.decode_tokens_per_s"),
            batch if isinstance(batch, int) and not isinstance(batch, bool) else 1,
        )
    return Calibration(gpu, speeds)


def write_calibration(path: Path, calibration: Calibration) -> None:
    """Write `calibration` to `path` (atomically)."""
    write_text_atomic(path, calibration.to_json())
