"""`medbench prompts`: the exact text a model receives for each prompt variant of a task."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medbench.commands.options import CacheOpt, SpecsArg
from medbench.errors import printable


def prompts(
    specs: SpecsArg = Path("specs"),
    model: Annotated[str, typer.Option("--model", "-m", help="Model id.")] = ...,  # type: ignore[assignment]
    task: Annotated[str, typer.Option("--task", "-t", help="Task id.")] = ...,  # type: ignore[assignment]
    suite: Annotated[
        str | None,
        typer.Option("--suite", "-s", help="Only the prompt families of this suite."),
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option("--variant", "-v", help="Only this variant (`family/variant` or its id)."),
    ] = None,
    sample: Annotated[
        str | None,
        typer.Option(
            "--sample",
            help="For a closed-VQA task: the sample whose own question and options are shown "
            "(default: its first, in the suite's data or the `sample` data).",
        ),
    ] = None,
    cache: CacheOpt = None,
) -> None:
    """Print what MODEL receives for each variant, rendered with its own chat template (from
    its checkpoint or the local HF cache; nothing is downloaded).

    Example: medbench prompts specs --model llava-1.5-7b --task pneumonia_cxr
    """
    from medbench.checks import received_prompts
    from medbench.home import models_dir
    from medbench.run import open_cache
    from medbench.spec.loading import load_specs

    spec_set = load_specs(specs)
    with open_cache(cache) as store:
        shown = received_prompts(
            spec_set,
            model,
            task,
            models_dir=models_dir(),
            suite=suite,
            variant=variant,
            sample=sample,
            hasher=store.hash_file,
        )
    for i, prompt in enumerate(shown):
        if i:
            typer.echo("")
        asked = f", sample {prompt.sample}" if prompt.sample is not None else ""
        typer.echo(printable(f"=== {prompt.family}/{prompt.variant} ({prompt.kind}{asked})"))
        typer.echo(printable(prompt.text))
