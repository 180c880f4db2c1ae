"""Helpers for tests: a copy of the shipped specs and sample data in a temporary project."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from medbench.spec.model import ModelSpec

REPO = Path(__file__).resolve().parent.parent


def make_project(
    tmp: Path,
    *,
    tasks: tuple[str, ...] = ("pneumonia_cxr",),
    families: tuple[str, ...] = ("closed_diagnosis",),
    models: tuple[str, ...] = ("baseline-chance",),
    limit_per_class: int | None = 2,
    suite_extra: str = "",
) -> Path:
    """A project folder with the repo's specs, the sample data of `tasks` and a suite `t`."""
    project = tmp / "project"
    shutil.copytree(REPO / "specs", project / "specs")
    for task in tasks:
        shutil.copytree(REPO / "data" / "sample" / task, project / "data" / "sample" / task)
    limit = f"limit_per_class: {limit_per_class}\n" if limit_per_class else ""
    (project / "specs" / "suites" / "t.yaml").write_text(
        "schema_version: 1\nkind: suite\nid: t\ntitle: test suite\ndata: sample\n"
        f"{limit}tasks: [{', '.join(tasks)}]\nprompt_families: [{', '.join(families)}]\n"
        f"models: [{', '.join(models)}]\n{suite_extra}"
    )
    # The other suites name tasks whose data is not copied: drop them.
    for suite in ("paper", "quickstart", "medvqa"):
        (project / "specs" / "suites" / f"{suite}.yaml").unlink()
    return project


def vqa_project(tmp: Path, models: tuple[str, ...] = ("baseline-majority",)) -> Path:
    """A project whose suite `t` asks the closed-VQA sample tables (VQA-RAD yes/no, PMC-VQA
    multiple choice) through the `closed_vqa` family."""
    project = make_project(tmp, tasks=(), families=("closed_vqa",), models=models)
    shutil.copytree(REPO / "data" / "sample" / "vqa", project / "data" / "sample" / "vqa")
    suite = project / "specs" / "suites" / "t.yaml"
    suite.write_text(
        suite.read_text().replace("tasks: []", "tasks: [vqa_rad_yes_no, pmc_vqa_choice]")
    )
    return project


def tiny_model_spec(arch: str, **fields: Any) -> ModelSpec:
    """A tiny random-weight model spec of `arch`; `fields` add to or override its fields."""
    data: dict[str, Any] = {
        "schema_version": 1,
        "kind": "model",
        "id": f"tiny-{arch.replace('_', '-')}",
        "title": f"Tiny {arch}",
        "backend": "hf",
        "family": "gemma3" if arch == "gemma3" else "llava",
        "tiny": {"arch": arch},
        "test_model": True,
    }
    return ModelSpec.model_validate({**data, **fields})


def full_data_tree(root: Path, per_class: int = 2) -> Path:
    """A `$MEDBENCH_DATA` folder laid out as each shipped task's `full` source expects (the
    dataset's own folder names), holding `per_class` sample images per class."""
    from medbench.spec.loading import load_specs

    for task in load_specs(REPO / "specs").tasks.values():
        source = task.data["full"]
        if source.path is None or source.format not in ("imagefolder", "csv"):
            continue  # a Hub dataset: nothing to lay out
        folder = root / source.path.removeprefix("${MEDBENCH_DATA}/")
        raw_names = {label: raw for raw, label in reversed(list(source.label_map.items()))}
        for label_dir in sorted((REPO / "data" / "sample" / task.id).iterdir()):
            target = folder / raw_names.get(label_dir.name, label_dir.name)
            target.mkdir(parents=True)
            for image in sorted(label_dir.iterdir())[:per_class]:
                shutil.copy(image, target / image.name)
    return root


def hub_refs(cache: Path, revision: str = "0" * 40) -> Path:
    """A Hugging Face cache folder whose `refs/main` names `revision` for every shipped hub
    model, as a download leaves it (so that revisions resolve offline)."""
    from medbench.spec.loading import load_specs

    for spec in load_specs(REPO / "specs").models.values():
        if spec.repo is not None:
            refs = cache / f"models--{spec.repo.replace('/', '--')}" / "refs"
            refs.mkdir(parents=True, exist_ok=True)
            (refs / spec.revision).write_text(revision)
    return cache
