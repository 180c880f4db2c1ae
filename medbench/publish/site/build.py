"""Build the site: validate every record, render all pages in memory, write them into a new
folder beside the output and swap it in (under a lock: two builds never mix their files)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from medbench import __version__
from medbench.atomic import folder_lock, staging_folder, swap_folder
from medbench.errors import MedbenchError, RecordError
from medbench.publish.files import read_sidecar
from medbench.publish.local import LOCAL_RECORDS
from medbench.publish.reading import load_records, read_maps
from medbench.publish.record import RELIABILITY_SUFFIX, Record, _display
from medbench.publish.site.compare import compare_pages
from medbench.publish.site.context import Site
from medbench.publish.site.flips import flip_pages
from medbench.publish.site.layout import SITE_DIR, MethodsPage
from medbench.publish.site.pages import model_pages
from medbench.publish.site.ranking import index_page
from medbench.publish.site.taskinfo import task_pages
from medbench.run import step
from medbench.spec.loading import SpecSet


def _check_out(out: Path, leaderboard: Path) -> None:
    target = Path(os.path.abspath(out))
    kept = [Path.cwd(), Path.home(), Path(os.path.abspath(leaderboard)), SITE_DIR]
    if any(target == p or target in p.parents for p in kept):
        raise MedbenchError(
            f"{out}: refusing to replace this folder; build into a folder of its own, e.g. _site."
        )
    if target.exists() and not target.is_dir():
        raise MedbenchError(f"{out}: exists and is not a folder.")


def local_folders(results: Path) -> list[Path]:
    """The local record folders `medbench run` writes: `results/<suite>/leaderboard/`."""
    if not results.is_dir():
        return []
    return sorted(p for p in results.glob(f"*/{LOCAL_RECORDS}") if p.is_dir())


def gather_records(
    leaderboard: Path, results: Path | None
) -> tuple[list[tuple[Path, Record]], set[tuple[str, str]]]:
    """The one rule for what the site shows: every published record of `leaderboard`, plus
    every local record under `results/<suite>/leaderboard/`, which replaces a published one
    of the same (suite, model). Returns the records and the (suite, model) keys that are local.
    """
    chosen = {(r.suite, r.model_id): (p, r) for p, r in _load(leaderboard)}
    local: set[tuple[str, str]] = set()
    for folder in local_folders(results) if results is not None else []:
        for path, record in load_records(folder):
            key = (record.suite, record.model_id)
            if key in chosen and same_results(chosen[key][1], record):
                continue  # already published (`medbench publish` copied it): not local
            chosen[key] = (path, record)
            local.add(key)
    return [chosen[key] for key in sorted(chosen)], local


def same_results(published: Record, fresh: Record) -> bool:
    """Whether a local record holds the published one's results (as after `medbench publish`):
    the same answers, tables and provenance but for when, where and with which medbench build
    it was made."""
    made = {"date", "environment", "medbench"}
    return published.model_dump(exclude=made) == fresh.model_dump(exclude=made)


def _answers(path: Path, record: Record) -> pd.DataFrame:
    """A record's per-image answers (its sidecar), for the flip viewer, read as `verify` reads
    them (not a link, bounded, of the recorded hash)."""
    try:
        return read_sidecar(path.parent, record.sidecar.path, record.sidecar.sha256)
    except (OSError, ValueError, EOFError, RecordError) as e:
        raise RecordError(f"{path}: cannot read its sidecar {record.sidecar.path}: {e}") from e


def _check_ladders(
    found: list[tuple[Path, Record]],
    specs: SpecSet | None,
    answers: dict[tuple[str, str], pd.DataFrame],
) -> None:
    """Refuse the ladder values `verify` refuses without the data: a probe that cannot exist or
    that its predictions do not score, a reading its columns do not give (the site renders
    them)."""
    from medbench.publish.rungs import check_probe_columns, check_readings
    from medbench.publish.verify import _same

    problems = []
    for path, record in found:
        display = _display(path)
        mine = answers[(record.suite, record.model_id)]
        problems += check_probe_columns(display, record, specs, mine, _same).problems
        problems += check_readings(display, record)
    if problems:
        raise RecordError("\n".join(problems))


def _load(folder: Path) -> list[tuple[Path, Record]]:
    return load_records(folder) if folder.is_dir() else []


def build_site(
    leaderboard: Path,
    out: Path,
    *,
    specs: SpecSet | None = None,
    results: Path | None = None,
) -> list[Path]:
    """Validate every record, render the site in memory, then replace `out` with it.

    With `results`, the local records of `medbench run` are shown too (see `gather_records`).
    """
    with step(f"building the site in {out}/"):
        return _build(leaderboard, out, specs, results)


def _build(leaderboard: Path, out: Path, specs: SpecSet | None, results: Path | None) -> list[Path]:
    found, local = gather_records(leaderboard, results)
    records = [r for _, r in found]
    maps = {(r.suite, r.model_id): read_maps(path) for path, r in found}
    reliability = {(r.suite, r.model_id): read_maps(path, RELIABILITY_SUFFIX) for path, r in found}
    answers = {(r.suite, r.model_id): _answers(path, r) for path, r in found}
    _check_ladders(found, specs, answers)
    _check_out(out, leaderboard)
    if results is not None:
        _check_out(out, results)
    if not (SITE_DIR / "templates").is_dir():
        raise MedbenchError(f"{SITE_DIR / 'templates'}: the site templates are missing.")
    records.sort(key=lambda r: (r.suite, r.model_id))
    site = Site(records, specs, maps, local, answers, reliability)
    suites: dict[str, list[Record]] = {}
    for record in records:
        suites.setdefault(record.suite, []).append(record)
    compare_pages(site)
    index_page(site, suites)
    flip_pages(site)
    model_pages(site)
    task_pages(site, suites)
    n_boot = sorted({r.layout.n_boot for r in records})
    site.page(
        "methods.html",
        "methods.html",
        MethodsPage("Methods", "", site.build_date, __version__, [], n_boot),
    )
    for path in sorted((SITE_DIR / "static").iterdir()):
        if path.is_file():
            site.files[f"static/{path.name}"] = path.read_bytes()
    for name in sorted(site.files):
        _check_name(out, name)
    with folder_lock(out):  # a second build waits, then swaps in its own whole tree
        staged = staging_folder(out)
        try:
            for name in sorted(site.files):
                (staged / name).parent.mkdir(parents=True, exist_ok=True)
                _check_name(staged, name)  # again, now that the folders exist: none is a link
                (staged / name).write_bytes(site.files[name])
            swap_folder(staged, out)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    return [out / name for name in sorted(site.files)]


def _check_name(out: Path, name: str) -> None:
    """Refuse a page name that would be written outside `out` (`..`, absolute, NUL, a link)."""
    root = os.path.realpath(out)
    target = os.path.realpath(os.path.join(root, name)) if "\0" not in name else ""
    if not target.startswith(root + os.sep) or os.path.isabs(name):
        raise MedbenchError(f"{out}: refusing to write {name!r}, which is not inside the folder.")
