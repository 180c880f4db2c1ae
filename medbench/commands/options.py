"""The command-line options that several commands share (definitions only, no logic)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

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
ResultsOpt = Annotated[Path, typer.Option("--results", help="Folder for score outputs.")]
BatchOpt = Annotated[
    str,
    typer.Option(
        "--batch-size",
        "-b",
        help="Requests per batch, or `auto`: the HF backend grows batches from 1 and halves "
        "on out-of-memory, and remembers the size per model and device beside the cache.",
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="`auto`, `cpu`, `cuda` or `cuda:N`.")]
BaseOpt = Annotated[
    str | None,
    typer.Option(
        "--base",
        help="With --model hf:ORG/NAME[@REV]: the general model it was fine-tuned from "
        "(hf:ORG/NAME[@REV]), run beside it as its pair.",
        show_default=False,
    ),
]
Executor = Literal["local", "ray"]
"""The names of `medbench.run.executors.EXECUTORS`, checked as the options are parsed."""
ExecutorOpt = Annotated[
    Executor,
    typer.Option("--executor", help="`local` (in-process) or `ray` (needs medbench[ray])."),
]


def parse_batch_size(value: str) -> int | None:
    if value == "auto":
        return None
    if not value.isdigit() or int(value) < 1:
        raise typer.BadParameter(f"expected a positive integer or `auto`, got {value!r}")
    return int(value)
