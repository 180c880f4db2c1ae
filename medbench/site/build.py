"""Build the site: validate every record, render all pages in memory, then replace the output."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from medbench import __version__
from medbench.errors import MedbenchError
from medbench.loading import SpecSet
from medbench.records import Record, load_records, read_maps
from medbench.site.layout import SITE_DIR, MethodsPage
from medbench.site.pages import Site, index_page, model_pages, task_pages


def _check_out(out: Path, leaderboard: Path) -> None:
    target = Path(os.path.abspath(out))
    kept = [Path.cwd(), Path.home(), Path(os.path.abspath(leaderboard)), SITE_DIR]
    if any(target == p or target in p.parents for p in kept):
        raise MedbenchError(
            f"{out}: refusing to replace this folder; build into a folder of its own, e.g. _site."
        )
    if target.exists() and not target.is_dir():
        raise MedbenchError(f"{out}: exists and is not a folder.")


def build_site(leaderboard: Path, out: Path, *, specs: SpecSet | None = None) -> list[Path]:
    """Validate every record, render the site in memory, then replace `out` with it."""
    found = load_records(leaderboard) if leaderboard.is_dir() else []
    records = [r for _, r in found]
    maps = {(r.suite, r.model_id): read_maps(path) for path, r in found}
    _check_out(out, leaderboard)
    if not (SITE_DIR / "templates").is_dir():
        raise MedbenchError(f"{SITE_DIR / 'templates'}: the site templates are missing.")
    records.sort(key=lambda r: (r.suite, r.model_id))
    site = Site(records, specs, maps)
    suites: dict[str, list[Record]] = {}
    for record in records:
        suites.setdefault(record.suite, []).append(record)
    index_page(site, suites)
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
    if out.exists():
        shutil.rmtree(out)
    for name in sorted(site.files):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(site.files[name])
    return [out / name for name in sorted(site.files)]
