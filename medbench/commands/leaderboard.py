"""`medbench publish`, `verify`, `site build` and `site serve`: the leaderboard's commands."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from medbench.commands.common import ModelsOpt, SuiteOpt
from medbench.errors import RecordError

if TYPE_CHECKING:
    import pandas as pd

    from medbench.loading import SpecSet
    from medbench.records import DatasetInfo, TaskInfo
    from medbench.specs import SuiteSpec

ResultsOpt = Annotated[Path, typer.Option("--results", help="Folder of `medbench score` outputs.")]
SpecsOpt = Annotated[Path, typer.Option("--specs", help="Spec folder.")]
LeaderboardOpt = Annotated[Path, typer.Option("--leaderboard", help="Folder of published records.")]
SiteOpt = Annotated[
    Path, typer.Option("--out", help="Folder to build the site into (its old content is replaced).")
]
AllowTestOpt = Annotated[
    bool,
    typer.Option(
        "--allow-test-models",
        help="Publish test models too (random or demonstration weights; marked on the site).",
    ),
]

site_app = typer.Typer(
    help="Build or serve the static leaderboard site.", no_args_is_help=True, add_completion=False
)


def _read_results(folder: Path) -> tuple[pd.DataFrame, dict[str, object]]:
    import pandas as pd

    missing = [n for n in ("answers.parquet", "layout.json") if not (folder / n).is_file()]
    if missing:
        raise RecordError(
            f"{folder}: no {' or '.join(missing)}. Score the suite first: `medbench score`."
        )
    answers = pd.read_parquet(folder / "answers.parquet")
    return answers, json.loads((folder / "layout.json").read_text(encoding="utf-8"))


def _copy_maps(source: Path, record: Path) -> None:
    """Publish the probe stage's t-SNE maps of this model beside its record."""
    import shutil

    from medbench.records import MAPS_SUFFIX

    target = record.with_name(record.stem + MAPS_SUFFIX)
    shutil.rmtree(target, ignore_errors=True)
    if source.is_dir() and any(source.glob("*.svg")):
        target.mkdir(parents=True)
        for svg in sorted(source.glob("*.svg")):
            shutil.copyfile(svg, target / svg.name)


def _ladder(folder: Path, model: str) -> list[dict[str, Any]] | None:
    """This model's knowledge-ladder rows, when the suite's probe stage wrote them."""
    import pandas as pd

    path = folder / "ladder.csv"
    if not path.is_file():
        return None
    ladder = pd.read_csv(path, keep_default_na=False, na_values=[""])
    rows = ladder[ladder["model"] == model].drop(columns="model")
    plain = rows.to_dict("records")
    return [{str(k): (None if pd.isna(v) else v) for k, v in row.items()} for row in plain] or None


def _dataset(specs: SpecSet, suite: SuiteSpec, answers: pd.DataFrame) -> DatasetInfo:
    """The fingerprint and image counts of exactly the images the answers are about."""
    from medbench.data import fingerprint, load_samples, sha256_file
    from medbench.records import DatasetInfo

    kept, counts = [], {}
    for task in sorted(set(answers["task"])):
        wanted = set(answers.loc[answers["task"] == task, "sample"])
        listed = load_samples(specs.task(task), suite.data, specs.root, hasher=lambda _: "")
        found = [s for s in listed if s.id in wanted]
        lost = sorted(wanted - {s.id for s in found})
        if lost:
            raise RecordError(
                f"task '{task}': {len(lost)} answered image(s) are no longer in the "
                f"{suite.data} data (first: {lost[0]}). Publish from the data the suite ran on."
            )
        kept += [replace(s, sha256=sha256_file(s.path)) for s in found]
        counts[task] = len(found)
    return DatasetInfo(source=suite.data, fingerprint=fingerprint(kept), n_images=counts)


def _tasks(specs: SpecSet, suite: SuiteSpec, tasks: list[str]) -> dict[str, TaskInfo]:
    from medbench.records import TaskInfo

    info = {}
    for t in tasks:
        spec = specs.task(t)
        data = spec.data.get(suite.data)
        info[t] = TaskInfo(
            title=spec.title,
            modality=spec.modality,
            difficulty=spec.difficulty,
            homepage=data.homepage if data else None,
            license=data.license if data else None,
        )
    return info


def _spec_hashes(specs: SpecSet, suite: SuiteSpec, model: str) -> dict[str, str]:
    """sha256 of every spec file that shaped a model's result on a suite."""
    spec = specs.model(model)
    families = set(suite.prompt_families)
    if suite.describe is not None:
        families |= {suite.describe.family, *suite.describe.diagnose_families}
    wanted = [("suite", suite.id), ("model", model)]
    wanted += [("task", t) for t in suite.tasks] + [("prompt_family", f) for f in families]
    wanted += [("model", spec.base)] if spec.base in specs.models else []
    return {
        f"{k}/{i}": specs.files[(k, i)].sha256 for k, i in sorted(wanted) if (k, i) in specs.files
    }


def _check_choice(
    specs: SpecSet,
    suite: str,
    chosen: list[str],
    answers: pd.DataFrame,
    pairs: list[tuple[str, str]],
    out: Path,
    allow_test_models: bool,
) -> None:
    """Refuse before writing anything: unknown models, test models, pairs without their base."""
    from medbench.records import SIDECAR_SUFFIX, answers_csv

    present = set(answers["model"])
    unknown = [m for m in chosen if m not in present]
    if unknown:
        known = ", ".join(sorted(present)) or "none"
        raise RecordError(
            f"no answers of {', '.join(unknown)} in results/{suite} (models: {known})."
        )
    tests = [m for m in chosen if specs.model(m).test_model]
    if tests and not allow_test_models:
        raise RecordError(
            f"{', '.join(tests)}: test model(s) (random or demonstration weights): their numbers "
            f"are not a real result. Pass --allow-test-models to publish them anyway."
        )
    for model, base in pairs:
        if model not in chosen or base in chosen:
            continue
        sidecar = out / suite / f"{base}{SIDECAR_SUFFIX}"
        if not sidecar.is_file() or sidecar.read_bytes() != answers_csv(
            answers[answers["model"] == base]
        ):
            raise RecordError(
                f"{model} is paired with its base {base}, whose published answers are missing or "
                f"differ: publish both (--model {model} --model {base})."
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
    """Write leaderboard records (with per-image sidecars) for a scored suite's models."""
    from medbench.cache import cache_file, default_cache_path
    from medbench.home import models_dir
    from medbench.identity import resolve_identity
    from medbench.loading import load_specs
    from medbench.records import (
        Provenance,
        answers_csv,
        count_image_processors,
        read_answers_csv,
        write_record,
    )
    from medbench.scoring import ScoringLayout, score_answers
    from medbench.served import recorded

    spec_set = load_specs(specs)
    suite_spec = spec_set.suite(suite)
    answers, layout_data = _read_results(results / suite)
    layout = ScoringLayout.from_json(layout_data)
    chosen = sorted(set(model or answers["model"]))
    _check_choice(spec_set, suite, chosen, answers, layout.pairs, out, allow_test_models)
    bases = {b for m, b in layout.pairs if m in chosen}
    # Score exactly what the sidecars will hold, so that `verify` re-derives the same numbers.
    rows = read_answers_csv(answers_csv(answers[answers["model"].isin(set(chosen) | bases)]))
    tables = score_answers(rows, layout)
    dataset = _dataset(spec_set, suite_spec, answers)
    tasks = _tasks(spec_set, suite_spec, sorted(set(answers["task"])))
    cache_folder = cache_file(default_cache_path()).parent  # where runs record snapshots
    for model_id in chosen:
        spec = spec_set.model(model_id)
        identity = resolve_identity(
            spec, spec_set.root, models_dir(), specs=spec_set, snapshots=recorded(cache_folder)
        )
        provenance = Provenance(
            revision=identity.revision,
            spec_hashes=_spec_hashes(spec_set, suite_spec, model_id),
            dataset=dataset,
            tasks=tasks,
            image_processors=count_image_processors(answers, model_id),
        )
        path = write_record(
            out,
            suite=suite,
            spec=spec,
            answers=rows,
            tables=tables,
            layout=layout,
            provenance=provenance,
            allow_test_models=allow_test_models,
            ladder=_ladder(results / suite, model_id),
        )
        _copy_maps(results / suite / "tsne" / model_id, path)
        typer.echo(f"wrote {path}")
    typer.echo(f"Commit {out / suite}/ and open a pull request; CI runs `medbench verify`.")


def verify(
    folder: Annotated[Path, typer.Argument(help="Leaderboard folder.")] = Path("leaderboard"),
) -> None:
    """Re-derive every number of every record from its sidecar; exit 1 on any mismatch."""
    from medbench.records import record_paths, verify_records

    if not folder.is_dir():
        raise RecordError(f"{folder}: no such leaderboard folder.")
    problems = verify_records(folder)
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{len(record_paths(folder))} records verified")


def build(
    leaderboard: LeaderboardOpt = Path("leaderboard"),
    out: SiteOpt = Path("_site"),
    specs: Annotated[
        Path | None,
        typer.Option("--specs", help="Spec folder for task details (default: specs/ if present)."),
    ] = None,
) -> None:
    """Build the static leaderboard site from the published records."""
    from medbench.loading import load_specs
    from medbench.site import build_site

    spec_folder = (
        specs if specs is not None else (Path("specs") if Path("specs").is_dir() else None)
    )
    spec_set = load_specs(spec_folder) if spec_folder is not None else None
    written = build_site(leaderboard, out, specs=spec_set)
    typer.echo(f"{len(written)} files written to {out}/ (open {out / 'index.html'})")


def serve(
    out: Annotated[
        Path, typer.Option("--out", help="Folder of the built site to serve (read only).")
    ] = Path("_site"),
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
) -> None:
    """Serve the built site locally (http.server)."""
    from medbench.site import serve as serve_site

    serve_site(out, host, port)


site_app.command("build")(build)
site_app.command("serve")(serve)
