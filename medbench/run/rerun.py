"""Up-to-date check for a whole `medbench run`: skip scoring and the site when nothing changed.

A run that computed nothing new still scored every answer, fitted the likelihood and probe
read-outs and rebuilt the site. When every input those stages read is the same as at the end
of the last complete run, and their outputs are still as that run left them, the outputs
would come out the same, so the run reuses them and prints what it printed then.

The inputs, each as a digest: medbench's own source and version; every file under the spec
folder; the command's options that reach the outputs; the plan's job keys (model identities,
image hashes, rendered prompts); the row count and last row id of every store the stages read
(answers with likelihood scores, embeddings, probe read-outs: any write moves them); and the
site's other inputs (`leaderboard/` and the other suites' local results), by name, size and
modification time. The outputs (`results/<suite>/`, `_site/`) are fingerprinted the same way
after the run. Any difference, a missing stamp or an unreadable one means a full run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from medbench.atomic import write_text_atomic

STAMP_NAME = ".run-stamp.json"
STAMP_VERSION = 1
STORES = {
    "answers.sqlite": ("answers", "count(error)"),
    "embeddings.sqlite": ("embeddings", "0"),
    "probes.sqlite": ("memo", "0"),
}
"""File in the cache's folder -> the table whose rows the scoring, probe and likelihood read,
and what else moves when a row changes in place (a failed answer replaced by a later try)."""
MAX_REPORT = 1_000_000
"""Characters of printed report a stamp keeps."""


class RunStamp(BaseModel):
    """What the last complete run read and wrote, and what it printed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stamp_version: int = Field(ge=STAMP_VERSION, le=STAMP_VERSION)
    inputs: StrictStr
    outputs: StrictStr
    created: StrictStr
    report: StrictStr = Field(max_length=MAX_REPORT)


def _feed_tree(digest: hashlib._Hash, root: Path, *, skip: Path | None = None) -> None:
    """Add every file under `root` (name, size, modification time) to `digest`."""
    if not root.is_dir():
        digest.update(f"absent {root}\n".encode())
        return
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        here = Path(folder)
        if skip is not None and here == skip:
            dirs.clear()
            continue
        for name in sorted(files):
            if name == STAMP_NAME:
                continue
            path = here / name
            try:
                info = path.lstat()
            except OSError:
                continue
            relative = path.relative_to(root).as_posix()
            digest.update(f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())


def tree_digest(roots: Iterable[Path], *, skip: Path | None = None) -> str:
    """A fingerprint of the files under `roots` by name, size and modification time."""
    digest = hashlib.sha256()
    for root in roots:
        digest.update(f"root {root}\n".encode())
        _feed_tree(digest, root, skip=skip)
    return digest.hexdigest()


def code_digest() -> str:
    """medbench's version and the content of its source files."""
    from medbench import __version__

    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(f"medbench {__version__}\n".encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def specs_digest(root: Path) -> str:
    """The content of every file under the spec folder (or the spec file)."""
    digest = hashlib.sha256()
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in paths:
        digest.update(path.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def store_versions(folder: Path) -> dict[str, list[object]]:
    """Row count, last row id, last write time and failed rows of each store in `folder`.

    Rows are added, deleted, or (answers only) a failed row is updated by a later try, which
    moves its failed count and write time; opening a store without writing moves nothing."""
    versions: dict[str, list[object]] = {}
    for name, (table, changed) in STORES.items():
        path = folder / name
        if not path.is_file():
            versions[name] = ["absent"]
            continue
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            query = f"SELECT count(*), max(rowid), max(created), {changed} FROM {table}"
            versions[name] = list(connection.execute(query).fetchone())
        except sqlite3.Error as error:
            versions[name] = ["unreadable", str(error)]
        finally:
            connection.close()
    return versions


def inputs_digest(
    *,
    specs_root: Path,
    options: Mapping[str, object],
    job_keys: Iterable[str],
    cache_folder: Path,
    site_inputs: Iterable[Path],
    skip: Path | None = None,
) -> str:
    """The digest of everything a run's scoring, probe, likelihood and site stages read."""
    keys = hashlib.sha256()
    for key in sorted(set(job_keys)):
        keys.update(key.encode() + b"\n")
    environment = {
        name: value
        for name, value in sorted(os.environ.items())
        if name.startswith("MEDBENCH_") and not name.endswith("_API_KEY")
    }
    parts = {
        "code": code_digest(),
        "specs": specs_digest(specs_root),
        "options": options,
        "environment": environment,
        "jobs": keys.hexdigest(),
        "stores": store_versions(cache_folder),
        "site_inputs": tree_digest(site_inputs, skip=skip),
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def read_stamp(folder: Path) -> RunStamp | None:
    """The stamp the last complete run left in `folder`, or None (absent or unreadable)."""
    path = folder / STAMP_NAME
    try:
        return RunStamp.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError):
        return None


def write_stamp(folder: Path, inputs: str, outputs: str, report: str) -> None:
    """Record a complete run's inputs, outputs and printed report in `folder`."""
    stamp = RunStamp(
        stamp_version=STAMP_VERSION,
        inputs=inputs,
        outputs=outputs,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        report=report[-MAX_REPORT:],
    )
    write_text_atomic(folder / STAMP_NAME, stamp.model_dump_json(indent=1) + "\n")


def clear_stamp(folder: Path) -> None:
    """Forget the last run's stamp (before outputs are rewritten: a crash leaves none)."""
    (folder / STAMP_NAME).unlink(missing_ok=True)


def reusable(folder: Path, inputs: str, outputs: str) -> RunStamp | None:
    """The stamp in `folder` when it matches these inputs and outputs, else None."""
    stamp = read_stamp(folder)
    if stamp is None or stamp.inputs != inputs or stamp.outputs != outputs:
        return None
    return stamp


SITE = Path("_site")
LEADERBOARD = Path("leaderboard")


def run_inputs(
    *,
    specs_root: Path,
    options: Mapping[str, object],
    job_keys: Iterable[str],
    cache_path: Path,
    results: Path,
    suite: str,
) -> str:
    """The inputs digest of `medbench run` for a suite (site inputs: the published records and
    the other suites' local results)."""
    return inputs_digest(
        specs_root=specs_root,
        options=options,
        job_keys=job_keys,
        cache_folder=cache_path.parent,
        site_inputs=[LEADERBOARD, results],
        skip=results / suite,
    )


def run_outputs(results: Path, suite: str, *, site: bool) -> str:
    """The outputs digest of `medbench run` for a suite: its results folder and the site."""
    return tree_digest([results / suite, *([SITE] if site else [])])
