"""Publishing: turn a scored suite's results into leaderboard records with provenance.

`publish_results` reads `results/<suite>/` (answers and layout), checks the choice of models,
scores exactly what the sidecars will hold, and writes one record per model with its
dataset fingerprint, task details, spec hashes, knowledge ladder, t-SNE maps, and the
likelihood stage's option scores (a second sidecar), calibration and reliability diagrams.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medbench.errors import RecordError, UnknownIdError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from medbench.publish.record import DatasetInfo, TaskInfo
    from medbench.run import ModelIdentity
    from medbench.spec import SuiteSpec
    from medbench.spec.loading import SpecSet

LOCAL_RECORDS = "leaderboard"
"""`results/<suite>/leaderboard/`: the records `medbench run` publishes locally for the site."""


def read_results(folder: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The answers and scoring layout of a suite's results folder."""
    import pandas as pd

    missing = [n for n in ("answers.parquet", "layout.json") if not (folder / n).is_file()]
    if missing:
        problem = f"no {' or '.join(missing)}. Score the suite first: `medbench score`."
        raise UsageError(problem, str(folder))
    answers = pd.read_parquet(folder / "answers.parquet")
    return answers, json.loads((folder / "layout.json").read_text(encoding="utf-8"))


def copy_maps(source: Path, record: Path, suffix: str | None = None) -> None:
    """Publish a model's figures beside its record, in `<model><suffix>/`: the probe stage's
    t-SNE maps (the default), or the likelihood stage's reliability diagrams."""
    from medbench.publish.record import MAPS_SUFFIX

    target = record.with_name(record.stem + (suffix or MAPS_SUFFIX))
    if target.is_symlink():
        target.unlink()
    shutil.rmtree(target, ignore_errors=True)
    maps = sorted(p for p in source.glob("*.svg") if not p.is_symlink() and p.is_file())
    if source.is_dir() and not source.is_symlink() and maps:
        target.mkdir(parents=True)
        for svg in maps:  # never a link: its target would be published
            shutil.copyfile(svg, target / svg.name, follow_symlinks=False)


def ladder_rows(folder: Path, model: str) -> list[dict[str, Any]] | None:
    """This model's knowledge-ladder rows, when the suite's probe stage wrote them."""
    import pandas as pd

    path = folder / "ladder.csv"
    if not path.is_file():
        return None
    ladder = pd.read_csv(path, keep_default_na=False, na_values=[""])
    rows = ladder[ladder["model"] == model].drop(columns="model")
    plain = rows.astype(object).to_dict("records")
    return [{str(k): None if pd.isna(v) else v for k, v in row.items()} for row in plain] or None


def probe_predictions(folder: Path, model: str) -> list[dict[str, Any]] | None:
    """This model's probes' out-of-fold predictions, when the suite's probe stage wrote them."""
    import pandas as pd

    path = folder / "probe_predictions.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path, dtype={"sample": str, "predicted": str}, keep_default_na=False)
    rows = frame[frame["model"] == model].drop(columns="model")
    return [
        {str(k): v for k, v in r.items()} for r in rows.astype(object).to_dict("records")
    ] or None


def likelihood_items(folder: Path) -> pd.DataFrame | None:
    """The likelihood stage's items (`likelihood/items.csv`, cells as text), when it ran:
    each model's go beside its record, and its calibration is re-derived from them."""
    import pandas as pd

    from medbench.score.likelihood import FOLDER

    path = folder / FOLDER / "items.csv"
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def dataset_info(
    specs: SpecSet, suite: SuiteSpec, answers: pd.DataFrame, revisions: dict[str, str]
) -> DatasetInfo:
    """The fingerprint and image counts of exactly the images the answers are about, and the
    commit sha of each Hub dataset: the one the suite ran on (`revisions`, from its layout),
    else its revision resolved today."""
    from medbench.data import fingerprint, hub_revision, read_samples, sha256_file
    from medbench.publish.record import DatasetInfo

    kept, counts, read_at = [], {}, {}
    for task in sorted(set(answers["task"])):
        spec = specs.task(task)
        sha = hub_revision(spec, suite.data, revisions.get(task))
        wanted = set(answers.loc[answers["task"] == task, "sample"])
        listed = read_samples(spec, suite.data, specs.root, sha)
        found = [s for s in listed if s.id in wanted]
        lost = sorted(wanted - {s.id for s in found})
        if lost:
            raise RecordError(
                f"task '{task}': {len(lost)} answered image(s) are no longer in the "
                f"{suite.data} data (first: {lost[0]}). Publish from the data the suite ran on."
            )
        kept += [replace(s, sha256=sha256_file(s.path)) for s in found]
        counts[task] = len(found)
        if sha is not None:
            read_at[task] = sha
    return DatasetInfo(
        source=suite.data,
        fingerprint=fingerprint(kept),
        n_images=counts,
        revisions=read_at or None,
    )


def task_info(specs: SpecSet, suite: SuiteSpec, tasks: list[str]) -> dict[str, TaskInfo]:
    """What the site shows of each task when no specs are at hand."""
    from medbench.publish.record import TaskInfo

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


def spec_hashes(specs: SpecSet, suite: SuiteSpec, model: str) -> dict[str, str]:
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


def check_choice(
    specs: SpecSet,
    suite: str,
    chosen: list[str],
    answers: pd.DataFrame,
    pairs: list[tuple[str, str]],
    out: Path,
    allow_test_models: bool,
) -> None:
    """Refuse before writing anything: unknown models, test models, pairs without their base."""
    from medbench.publish.record import SIDECAR_SUFFIX
    from medbench.score import answers_csv

    present = set(answers["model"])
    unknown = [m for m in chosen if m not in present]
    if unknown:
        scope = f"with answers in results/{suite}"
        raise UnknownIdError("model", unknown[0], sorted(present), scope)
    specless = [m for m in chosen if m not in specs.models]
    if specless:
        raise RecordError(
            f"{', '.join(specless)}: no model spec (an ad hoc `--model hf:REPO` run?): only a "
            f"model with a spec in specs/models/, listed in suite {suite}, is published. Write "
            "its spec and run the suite again (the cached answers are reused), or name the other "
            "models with --model."
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


def check_markers(specs: SpecSet, identities: dict[str, ModelIdentity]) -> None:
    """Refuse a model whose checkpoint says it is a test model (its own marker file) while its
    spec does not: random weights must never publish as a real result."""
    from medbench.run import TEST_MODEL_MARKER, marked_test_model

    unmarked = sorted(
        m
        for m, identity in identities.items()
        if marked_test_model(identity.checkpoint_dir) and not specs.model(m).test_model
    )
    if unmarked:
        raise RecordError(
            f"{', '.join(unmarked)}: the checkpoint's own {TEST_MODEL_MARKER} says it is a test "
            "model (random or demonstration weights), but its spec lacks `test_model: true`. Add "
            "`test_model: true` to the spec (and pass --allow-test-models), or point `path:` at "
            "real weights."
        )


def publish_results(
    specs: SpecSet,
    suite: str,
    results: Path,
    out: Path,
    *,
    models: list[str] | None = None,
    allow_test_models: bool = False,
    models_dir: Path | None = None,
) -> list[Path]:
    """Write `out/<suite>/<model>.json` (and sidecars, maps) for a scored suite's models."""
    from medbench.home import models_dir as shared_models_dir
    from medbench.publish.reask import planned_keys
    from medbench.publish.record import RELIABILITY_SUFFIX, Provenance
    from medbench.publish.verify import count_image_processors
    from medbench.publish.writing import write_record
    from medbench.run import cache_file, default_cache_path, make_plan, recorded, resolve_identity
    from medbench.score import ScoringLayout, answers_csv, read_answers_csv, score_answers
    from medbench.score.likelihood import FOLDER as LIKELIHOOD
    from medbench.score.likelihood import RELIABILITY

    suite_spec = specs.suite(suite)
    folder = results / suite
    answers, layout_data = read_results(folder)
    layout = ScoringLayout.from_json(layout_data)
    chosen = sorted(set(models or answers["model"]))
    check_choice(specs, suite, chosen, answers, layout.pairs, out, allow_test_models)
    bases = {b for m, b in layout.pairs if m in chosen}
    # Score exactly what the sidecars will hold, so that `verify` re-derives the same numbers.
    rows = read_answers_csv(answers_csv(answers[answers["model"].isin(set(chosen) | bases)]))
    tables = score_answers(rows, layout)
    dataset = dataset_info(specs, suite_spec, answers, layout.dataset_revisions)
    tasks = task_info(specs, suite_spec, sorted(set(answers["task"])))
    built = models_dir or shared_models_dir()
    items = likelihood_items(folder)
    snapshots_at = cache_file(default_cache_path()).parent  # where runs record snapshots
    identities = {
        m: resolve_identity(
            specs.model(m), specs.root, built, specs=specs, snapshots=recorded(snapshots_at)
        )
        for m in chosen
    }
    check_markers(specs, identities)
    plan = make_plan(
        specs, suite, models_dir=built, models=chosen, snapshots=recorded(snapshots_at)
    )
    written = []
    for model_id in chosen:
        spec = specs.model(model_id)
        identity = identities[model_id]
        provenance = Provenance(
            revision=identity.revision,
            adapter_revision=identity.adapter_revision,
            spec_hashes=spec_hashes(specs, suite_spec, model_id),
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
            ladder=ladder_rows(folder, model_id),
            probe_predictions=probe_predictions(folder, model_id),
            likelihood=items,
            answer_keys=planned_keys(plan.jobs, model_id, rows),
        )
        copy_maps(folder / "tsne" / model_id, path)
        copy_maps(folder / LIKELIHOOD / RELIABILITY / model_id, path, RELIABILITY_SUFFIX)
        written.append(path)
    return written


def publish_locally(
    specs: SpecSet, suite: str, results: Path, *, models_dir: Path | None = None
) -> Path:
    """Publish a suite's fresh results into `results/<suite>/leaderboard/` (test models
    allowed: the site marks them, and marks these records local and unpublished)."""
    records = results / suite / LOCAL_RECORDS
    shutil.rmtree(records, ignore_errors=True)
    publish_results(specs, suite, results, records, allow_test_models=True, models_dir=models_dir)
    return records
