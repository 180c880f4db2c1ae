"""Reading records: bounded JSON with `file:line:col` problems, their maps, a folder of them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medbench.errors import RecordError
from medbench.publish.jsonpos import line_col, position, repeated_key
from medbench.publish.record import (
    ID_RE,
    MAPS_SUFFIX,
    MAX_RECORD_BYTES,
    OPTIONAL_TABLES,
    SIDECAR_SUFFIX,
    SPEC_REF_PATTERN,
    Record,
    _display,
    _show,
)
from medbench.spec import ID_PATTERN

_PATTERN_NAMES = {
    ID_PATTERN: "a valid id (a-z, 0-9, '.', '_', '-')",
    SPEC_REF_PATTERN: "a spec reference (`task/<id>`, `prompt_family/<id>`, ...)",
}


def _placement(path: Path, record: Record) -> list[str]:
    display, problems = _display(path), []
    if record.suite != path.parent.name:
        problems.append(
            f"{display}: suite: '{record.suite}' is not its folder '{path.parent.name}'"
        )
    if record.model_id != path.stem:
        problems.append(f"{display}: model_id: '{record.model_id}' is not its file name")
    if record.model.get("id") != record.model_id:
        problems.append(f"{display}: model.id: {_show(record.model.get('id'))} is not the model_id")
    if record.sidecar.path != f"{record.model_id}{SIDECAR_SUFFIX}":
        expected = f"{record.model_id}{SIDECAR_SUFFIX}"
        problems.append(
            f"{display}: sidecar.path: expected '{expected}', got '{record.sidecar.path}'"
        )
    return problems


def _field(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int) or not re.fullmatch(r"[A-Za-z0-9_.-]+", part) or ".." in part:
            text += f"[{json.dumps(part)}]"
        else:
            text += f".{part}" if text else part
    return text


def record_json(record: Record) -> str:
    """A record as published: sorted keys, indent 2, a trailing newline."""
    data = record.model_dump(mode="json", exclude_none=False)
    optional_fields = (
        "ladder",
        "probe_predictions",
        "image_processors",
        "adapter_revision",
        "scoring_version",
        *OPTIONAL_TABLES,
    )
    for optional in (*optional_fields, "calibration", "likelihood_sidecar", "run"):
        if data[optional] is None:
            del data[optional]
    if data["layout"]["image_variants"] is None:
        del data["layout"]["image_variants"]
    if data["dataset"]["revisions"] is None:
        del data["dataset"]["revisions"]
    return json.dumps(data, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def read_record(path: Path) -> Record:
    """Parse and validate one record; a RecordError names the file and every bad field."""
    display = _display(path)
    if path.is_symlink():
        raise RecordError(f"{display}:1:1: the record is a link; a record is a file of its own")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_RECORD_BYTES + 1)
    except OSError as e:
        raise RecordError(f"{display}: cannot read the record: {e.strerror}.") from e
    if len(raw) > MAX_RECORD_BYTES:
        limit = MAX_RECORD_BYTES // (1024 * 1024)
        raise RecordError(f"{display}:1:1: the record is over the {limit} MiB limit")
    text = raw.decode("utf-8", errors="replace")
    repeated = repeated_key(text)
    if repeated is not None:
        loc, pos = repeated
        line, col = line_col(text, pos)
        raise RecordError(
            f"{display}:{line}:{col}: {_field(tuple(loc))}: the key is repeated in its object; "
            "write each key once (a JSON reader keeps only the last)"
        )
    try:
        return Record.model_validate_json(raw)
    except ValidationError as e:
        raise RecordError("\n".join(_issue(display, text, err) for err in e.errors())) from e


def _issue(display: str, text: str, error: Any) -> str:
    """One validation error as `file:line:col: field: problem`."""
    loc = tuple(error["loc"])
    at_key = loc[-1:] == ("[key]",) or error["type"] == "extra_forbidden"
    loc = loc[:-1] if loc[-1:] == ("[key]",) else loc
    pattern = (error.get("ctx") or {}).get("pattern")
    if error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    elif pattern in _PATTERN_NAMES:
        message = f"not {_PATTERN_NAMES[pattern]}"
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
    if error["type"] not in ("missing", "json_invalid", "value_error"):
        message += f", got {_show(error['input'])}"
    line, col = position(text, loc, at_key=at_key)
    found = re.search(r"at line (\d+) column (\d+)$", message)
    if error["type"] == "json_invalid" and found:
        line, col = int(found.group(1)), int(found.group(2))
    where = f"{_field(loc)}: " if loc else ""
    return f"{display}:{line}:{col}: {where}{message}"


def read_maps(record_path: Path, suffix: str = MAPS_SUFFIX) -> dict[str, bytes]:
    """The figures published beside a record in `<model><suffix>/` (task -> SVG bytes: the
    t-SNE maps, or with RELIABILITY_SUFFIX the reliability diagrams), each rebuilt from an
    allow-list of SVG parts; a figure that is a link, or holds anything else, is refused."""
    from medbench.publish.svgsafe import clean_svg

    what = "map" if suffix == MAPS_SUFFIX else "diagram"
    folder = record_path.with_name(record_path.stem + suffix)
    if folder.is_symlink():
        raise RecordError(f"{_display(folder)}: refusing a {what} folder that is a link")
    maps: dict[str, bytes] = {}
    for path in sorted(folder.glob("*.svg")) if folder.is_dir() else []:
        if path.is_symlink() or not path.is_file():
            raise RecordError(f"{_display(path)}: refusing a {what} that is a link or not a file")
        if not ID_RE.fullmatch(path.stem):
            raise RecordError(f"{_display(path)}: a {what} is named by its task id")
        try:
            maps[path.stem] = clean_svg(path.read_bytes())
        except ValueError as e:
            raise RecordError(f"{_display(path)}: refusing the SVG: {e}") from e
    return maps


def record_paths(folder: Path) -> list[Path]:
    """Every record file under a leaderboard folder (`<suite>/<model>.json`), sorted."""
    return sorted(p for p in folder.glob("*/*.json") if p.is_file())


def load_records(folder: Path) -> list[tuple[Path, Record]]:
    """Every record of a leaderboard folder, validated; one RecordError lists all problems."""
    loaded, problems = [], []
    for path in record_paths(folder):
        try:
            record = read_record(path)
        except RecordError as e:
            problems.append(str(e))
            continue
        problems.extend(_placement(path, record))
        loaded.append((path, record))
    if problems:
        raise RecordError("\n".join(problems))
    return loaded
