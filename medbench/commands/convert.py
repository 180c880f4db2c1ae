"""`medbench convert`: turn checkpoints transformers cannot load into its own layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medbench.checkpoints.convert import convert_llava_med

convert_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)


@convert_app.callback()
def _group() -> None:
    """Convert checkpoints that transformers cannot load into the Hugging Face layout.

    Example: medbench convert llava-med llava-med-7b/ converted/
    """


@convert_app.command("llava-med")
def llava_med(
    src: Annotated[
        Path, typer.Argument(help="Original LLaVA-Med folder (config.json with mm_vision_tower).")
    ],
    dst: Annotated[Path, typer.Argument(help="Folder to write the converted checkpoint to.")],
    vision_tower: Annotated[
        Path | None,
        typer.Option(
            "--vision-tower",
            help="Local copy of the CLIP tower that mm_vision_tower names "
            "(default: that path, or its Hugging Face cache).",
            show_default=False,
        ),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision",
            help="Commit SRC was downloaded at, to record (default: read from SRC if it can be).",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace DST if it already exists.")
    ] = False,
) -> None:
    """Convert an original LLaVA-Med checkpoint (llava_mistral) to a transformers Llava one.

    Streams SRC shard by shard with its CLIP tower, refusing any unknown key.
    DST gets the weights, the config, a processor that pads images to a square
    with the mean colour before CLIP, LLaVA-Med's chat template, and
    medbench_conversion.json (revision and sha256 of every file read).
    Then point a model spec's `path:` at DST, with `checkpoint_format: hf`.

    Example: medbench convert llava-med llava-med-7b/ converted/
    """
    conversion = convert_llava_med(
        src,
        dst,
        vision_tower=vision_tower,
        revision=revision,
        overwrite=overwrite,
        progress=lambda message: typer.echo(message, err=True),
    )
    record = conversion.record
    revision_text = record["source"]["revision"] or "unknown (pass --revision to record it)"
    typer.echo(
        f"converted {src} (revision {revision_text}) to {conversion.dst}: "
        f"{len(record['shards'])} shards, image token {record['image_token']} "
        f"= id {record['image_token_index']}"
    )
