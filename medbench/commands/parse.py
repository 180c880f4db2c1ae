"""`medbench parse`: parse a JSONL file of model responses into labels, refusals or unparseable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from medbench.score.parsing import ParsedAnswer


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _check(record: dict[str, Any]) -> str | None:
    """The first problem with one input record, or None."""
    for field in ("response", "options"):
        if field not in record:
            return f"missing field {field!r}"
    if not isinstance(record["response"], str):
        return f"field 'response': expected a string, got {_type_name(record['response'])}"
    options = record["options"]
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        return f"field 'options': expected a list of strings, got {json.dumps(options)}"
    lettered = record.get("lettered", False)
    if not isinstance(lettered, bool):
        return f"field 'lettered': expected true or false, got {json.dumps(lettered)}"
    finding = record.get("finding")
    if finding is not None and not isinstance(finding, str):
        return f"field 'finding': expected a string, got {json.dumps(finding)}"
    aliases = record.get("aliases")
    if aliases is None:
        return None
    if not isinstance(aliases, dict) or not all(
        isinstance(v, list) and all(isinstance(w, str) for w in v) for v in aliases.values()
    ):
        return f"field 'aliases': expected an object of lists of strings, got {json.dumps(aliases)}"
    unknown = sorted(set(aliases) - set(options))
    if unknown:
        return f"field 'aliases': key {unknown[0]!r} is not one of the options {options}"
    return None


def explain(number: int, record: dict[str, Any], parsed: ParsedAnswer) -> str:
    """One line saying what an answer parsed to, the rule that fired and the text it matched."""
    from medbench.score.parsing import matched

    said = f"{parsed.status} {json.dumps(parsed.label)}" if parsed.label else parsed.status
    span = matched(record["response"], parsed)
    where = f" at {parsed.span[0]}-{parsed.span[1]}: {json.dumps(span)}" if parsed.span else ""
    return f"{number}: {said} by {parsed.rule}{where}"


def _parse_line(line: str) -> tuple[dict[str, Any] | None, str | None]:
    from medbench.score.parsing import parse_answer

    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f"invalid JSON: {e.msg} (column {e.colno})"
    if not isinstance(record, dict):
        return None, f"expected a JSON object, got {_type_name(record)}"
    problem = _check(record)
    if problem is not None:
        return None, problem
    parsed = parse_answer(
        record["response"],
        record["options"],
        lettered=record.get("lettered", False),
        aliases=record.get("aliases"),
        finding=record.get("finding"),
    )
    found = {"status": parsed.status, "label": parsed.label, "rule": parsed.rule}
    return record | found | {"_parsed": parsed}, None


def parse(
    input: Annotated[
        Path,
        typer.Argument(
            help="JSONL file; each line has `response`, `options` and optionally `lettered`, "
            "`aliases` and `finding`.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write JSONL here instead of to stdout."),
    ] = None,
    explain_: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Print, per answer, the rule that fired and the text it matched (instead of "
            "JSONL on stdout; --output still gets the JSONL).",
        ),
    ] = False,
) -> None:
    """Parse free-text model responses into an option label, a refusal or unparseable.

    Keeps every input field and adds `status`, `label` and `rule`; `--explain` says why.

    Reports every malformed line as `file:line: problem` and then writes nothing.

    Example: medbench parse answers.jsonl --explain
    """
    try:
        lines = input.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        typer.echo(f"{input}: cannot read: {e}", err=True)
        raise typer.Exit(2) from e
    records, explained, errors = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record, problem = _parse_line(line)
        if record is None:
            errors.append(f"{input}:{number}: {problem}")
            continue
        parsed = record.pop("_parsed")
        explained.append(explain(number, record, parsed))
        records.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
    if errors:
        typer.echo("\n".join(errors), err=True)
        raise typer.Exit(2)
    text = "".join(f"{r}\n" for r in records)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    if explain_:
        typer.echo("".join(f"{input}:{line}\n" for line in explained), nl=False)
    elif output is None:
        typer.echo(text, nl=False)
