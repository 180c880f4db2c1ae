"""`medbench publish`, `verify`, `republish`, `site build` and `site serve`: the leaderboard's
commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from medbench.commands.options import CacheOpt, DeviceOpt, ModelsOpt, SuiteOpt
from medbench.errors import RecordError, UsageError

ResultsOpt = Annotated[Path, typer.Option("--results", help="Folder of `medbench score` outputs.")]
SpecsOpt = Annotated[Path, typer.Option("--specs", help="Spec folder.")]
IN_PROJECT = (
    "in the project: the nearest folder, from here up, holding leaderboard/, results/ or specs/"
)
LeaderboardOpt = Annotated[
    Path | None,
    typer.Option(
        "--leaderboard",
        help=f"Folder of published records (default: leaderboard/ {IN_PROJECT}).",
        show_default=False,
    ),
]
SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Folder to build the site into (its old content is replaced; default: _site/ in "
        "the project).",
        show_default=False,
    ),
]
AllowTestOpt = Annotated[
    bool,
    typer.Option(
        "--allow-test-models",
        help="Publish test models too (random or demonstration weights; marked on the site).",
    ),
]

site_app = typer.Typer(
    help="Build or serve the static leaderboard site.\n\nExample: medbench site build",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def publish(
    suite: SuiteOpt,
    model: ModelsOpt = None,
    results: ResultsOpt = Path("results"),
    specs: SpecsOpt = Path("specs"),
    out: Annotated[
        Path, typer.Option("--out", help="Leaderboard folder to write the records into.")
    ] = Path("leaderboard"),
    allow_test_models: AllowTestOpt = False,
) -> None:
    """Write leaderboard records (with per-image sidecars) for a scored suite's models.

    Example: medbench publish --suite quickstart --model baseline-chance
    """
    from medbench.publish import publish_results
    from medbench.spec.loading import load_specs

    written = publish_results(
        load_specs(specs), suite, results, out, models=model, allow_test_models=allow_test_models
    )
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"Commit {out / suite}/ and open a pull request; CI runs `medbench verify`.")


def verify(
    folder: Annotated[Path, typer.Argument(help="Leaderboard folder.")] = Path("leaderboard"),
    specs: Annotated[
        Path | None,
        typer.Option(
            "--specs",
            help="Today's specs, to re-parse texts, check truths and spec hashes "
            "(default: specs/ if present).",
        ),
    ] = None,
    rerun: Annotated[
        int,
        typer.Option(
            "--rerun",
            help="Ask each record's model again for N random answers, where the model is "
            "available here at the record's revision, and compare the texts (needs specs; a "
            "baseline's answers are always all re-derived).",
            min=0,
        ),
    ] = 0,
) -> None:
    """Re-derive every number of every record from its sidecar and today's specs; exit 1 on
    any mismatch.

    Example: medbench verify leaderboard --specs specs
    """
    from medbench.publish import nothing_verified, record_paths, verify_records
    from medbench.spec.loading import load_specs

    if not folder.is_dir():
        raise UsageError(
            "no such leaderboard folder. Give the folder of published records.", str(folder)
        )
    if not record_paths(folder):
        raise RecordError(nothing_verified(folder))
    if specs is None and Path("specs").is_dir():
        specs = Path("specs")
    notes: list[str] = []
    if specs is None:
        notes.append("no specs: answer texts, truths and spec hashes not checked (see --specs)")
    problems = verify_records(folder, load_specs(specs) if specs else None, notes, rerun)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{len(record_paths(folder))} records verified")


def republish(
    folder: Annotated[Path, typer.Argument(help="Leaderboard folder.")] = Path("leaderboard"),
    specs: Annotated[Path, typer.Option("--specs", help="Today's spec folder.")] = Path("specs"),
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List what would be rerun and republished; run nothing."),
    ] = False,
    device: DeviceOpt = "auto",
    cache: CacheOpt = None,
) -> None:
    """Rerun and republish the published records that today's specs make stale (a prompt
    variant added, a task edited: `medbench validate` names them). Each stale record's model
    is run on its suite where it can run here (a baseline always; a real model needs its
    weights), and the suite's records are swapped in whole. Exit 1 if some stale record
    could not be rerun (each is named, with why).

    Example: medbench republish leaderboard --dry-run
    """
    from medbench.publish import republish_stale
    from medbench.run.backends import BackendContext

    if not folder.is_dir():
        raise UsageError(
            "no such leaderboard folder. Give the folder of published records.", str(folder)
        )
    done = republish_stale(
        specs,
        folder,
        context=BackendContext(device=device),
        console=Console(stderr=True),
        cache=cache,
        dry_run=dry_run,
    )
    if not done.stale:
        typer.echo(f"No record under {folder}/ is stale: nothing to republish.")
        return
    for record in done.rerun:
        verb = "would rerun and republish" if dry_run else "reran and republished"
        typer.echo(f"{record.display}: {verb} (stale: {', '.join(record.changed)})")
    for record, why in done.refused:
        typer.echo(f"{record.display}: cannot rerun: {why}", err=True)
    if done.refused:
        typer.echo(
            f"{len(done.refused)} of {len(done.stale)} stale records were not rerun: run their "
            "models where they are available, or publish them by hand (`medbench publish`).",
            err=True,
        )
        raise typer.Exit(1)


def build(
    leaderboard: LeaderboardOpt = None,
    out: SiteOpt = None,
    specs: Annotated[
        Path | None,
        typer.Option(
            "--specs",
            help="Spec folder for task details (default: specs/ in the project, if present).",
        ),
    ] = None,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            help="Folder whose `<suite>/leaderboard/` local records are shown too "
            "(default: results/ in the project).",
            show_default=False,
        ),
    ] = None,
    published_only: Annotated[
        bool,
        typer.Option("--published-only", help="Leave out the local records of `medbench run`."),
    ] = False,
) -> None:
    """Build the static leaderboard site: the published records, plus the local results of
    `medbench run` (marked "local, unpublished") unless --published-only.

    Run anywhere in the project: the folders not given are those of the nearest folder, from
    here up, holding leaderboard/, results/ or specs/.

    Example: medbench site build --out _site
    """
    from medbench.publish.site import build_site
    from medbench.spec.loading import load_specs

    given = leaderboard is not None or results is not None
    project = _project(given, "--leaderboard DIR (or --results DIR) and --out DIR")
    leaderboard = leaderboard or project / "leaderboard"
    out = out or project / "_site"
    spec_folder = specs or (project / "specs" if (project / "specs").is_dir() else None)
    spec_set = load_specs(spec_folder) if spec_folder is not None else None
    local = None if published_only else results or project / "results"
    if not leaderboard.is_dir() and (local is None or not local.is_dir()):
        # An empty site would replace the published one without a word.
        raise UsageError(
            "no such leaderboard folder"
            + ("" if local is None else f", and no local results in {local}/")
            + ". Give the folder of published records with --leaderboard"
            + ("" if local is None else ", or the results of `medbench run` with --results")
            + ".",
            str(leaderboard),
        )
    written = build_site(leaderboard, out, specs=spec_set, results=local)
    typer.echo(f"{len(written)} files written to {out}/ (open {out / 'index.html'})")


def serve(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder of the built site to serve, read only (default: _site/ in the project).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
) -> None:
    """Serve the built site locally (http.server).

    Example: medbench site serve --port 8000
    """
    from medbench.publish.site import serve as serve_site

    serve_site(out or _project(False, "--out DIR") / "_site", host, port)


def _project(given: bool, options: str) -> Path:
    """The project folder the defaults are in (`.` if there is none and the folders that must
    exist are `given`); else an error naming where it looked and the `options` to give."""
    from medbench.home import PROJECT_FOLDERS, project_folder

    found = project_folder(Path.cwd())
    if found is None and not given:
        *first, last = (f"{name}/" for name in PROJECT_FOLDERS)
        folders = f"{', '.join(first)} or {last}"
        raise UsageError(
            f"not in a medbench project: no {folders} here or in any folder above. Run it in "
            f"the project, or give the folders: {options}.",
            str(Path.cwd()),
        )
    if found is not None and found != Path("."):
        typer.echo(f"using the project in {found.resolve()}", err=True)
    return found or Path(".")


site_app.command("build")(build)
site_app.command("serve")(serve)
