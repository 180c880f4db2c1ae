"""`medbench validate` and `medbench schema`: check spec files, publish their JSON Schemas."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import TypeAdapter

from medbench.errors import SpecError, UnknownIdError, printable
from medbench.spec import SPEC_KINDS

if TYPE_CHECKING:
    from medbench.spec.loading import SpecSet

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def validate(
    path: Annotated[
        Path, typer.Argument(help="Spec folder (searched recursively) or a single spec file.")
    ] = Path("specs"),
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Folder of the downloaded datasets, for ${MEDBENCH_DATA}/... sources "
            "(default: $MEDBENCH_DATA; unset: only the sources inside the project are checked).",
            show_default=False,
        ),
    ] = None,
    no_data: Annotated[
        bool, typer.Option("--no-data", help="Check the spec files only, not the data.")
    ] = False,
) -> None:
    """Check every spec file (schema, references, templates) and the data sources present here
    (folders, label folders, image headers). Exit 2 listing all problems. Warn (exit 0) of the
    project's published records (leaderboard/) the specs make stale. Notes name what an
    `openai` model's endpoint does itself, beyond medbench's reach (its chat template, resizing).

    Example: medbench validate specs --no-data
    """
    from medbench.data import DATA_ENV, check_data
    from medbench.run.backends.openai_api import unapplied_settings
    from medbench.spec.loading import load_specs

    try:
        specs = load_specs(path)
        if not no_data:
            data_root = data or (Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else None)
            issues = check_data(specs, data_root)
            if issues:
                raise SpecError(issues)
    except SpecError as e:
        for issue in e.issues:
            typer.echo(printable(str(issue)), err=True)
        raise typer.Exit(2) from None
    for suite in sorted(specs.warnings):
        for warning in specs.warnings[suite]:
            typer.echo(printable(f"warning: {warning}"), err=True)
    for line in _stale_records(specs.root / "leaderboard", specs):
        typer.echo(printable(f"warning: {line}"), err=True)
    for model_id in sorted(specs.models):
        unapplied = unapplied_settings(specs.models[model_id])
        if unapplied:
            where = specs.files[("model", model_id)].path.as_posix()
            line = (
                f"note: {where}: model {model_id}: not applied client-side: {'; '.join(unapplied)}."
            )
            typer.echo(printable(line), err=True)
    variants = sum(len(family.variants) for family in specs.families.values())
    counts = [
        _count(len(specs.tasks), "task"),
        f"{_count(len(specs.families), 'prompt family', 'prompt families')} "
        f"({_count(variants, 'variant')})",
        _count(len(specs.models), "model"),
        _count(len(specs.suites), "suite"),
    ]
    typer.echo(f"{', '.join(counts)}: all valid")


def _stale_records(leaderboard: Path, specs: SpecSet) -> list[str]:
    """The project's published records these specs make stale (a warning: `verify` fails on
    a changed prompt family, and `medbench republish` reruns them)."""
    if not any(leaderboard.glob("*/*.json")):
        return []
    from medbench.publish import stale_warnings

    return stale_warnings(leaderboard, specs)


def schema(
    kind: Annotated[
        str | None,
        typer.Argument(help=f"One of {', '.join(SPEC_KINDS)}; all kinds at once if left out."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write `<kind>.schema.json` files into this folder."),
    ] = None,
) -> None:
    """Print or write the JSON Schema of spec files, for editors' YAML language servers.

    Example: medbench schema task --out schemas
    """
    if kind is not None and kind not in SPEC_KINDS:
        raise UnknownIdError("spec kind", kind, list(SPEC_KINDS), where="kind")
    kinds = [kind] if kind is not None else list(SPEC_KINDS)
    if out is None:
        document = json_schema(kind) if kind is not None else json_schema(None)
        typer.echo(_dumps(document))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name in kinds:
        target = out / f"{name}.schema.json"
        target.write_text(_dumps(json_schema(name)) + "\n", encoding="utf-8")
        typer.echo(f"wrote {target}")


def json_schema(kind: str | None) -> dict[str, Any]:
    """The JSON Schema of one kind of spec, or of any spec (a union on `kind`) for None."""
    from medbench.spec import Spec

    if kind is None:
        document = TypeAdapter(Spec).json_schema()
        document["title"] = "medbench spec"
    else:
        document = SPEC_KINDS[kind].model_json_schema()
    return {"$schema": SCHEMA_DIALECT, **document}


def _dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)


def _count(n: int, singular: str, plural: str = "") -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"
