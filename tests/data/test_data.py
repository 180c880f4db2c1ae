"""Dataset sources: every image path is confined to its data root with symbolic links resolved."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medbench.data.samples import load_samples
from medbench.errors import BackendError, DataError
from medbench.run.identity import resolve_hub_revision
from medbench.spec.task import TaskSpec


def task(path: str, fmt: str = "imagefolder") -> TaskSpec:
    return TaskSpec.model_validate(
        {
            "schema_version": 1,
            "kind": "task",
            "id": "pneumonia_cxr",
            "title": "Pneumonia",
            "modality": "chest X-ray",
            "difficulty": 2,
            "question": "Pneumonia?",
            "finding": "pneumonia",
            "labels": [
                {"id": "pneumonia", "name": "pneumonia", "positive": True},
                {"id": "normal", "name": "normal"},
            ],
            "data": {"sample": {"format": fmt, "path": path}},
        }
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for label in ("pneumonia", "normal"):
        folder = tmp_path / "project" / "data" / "cxr" / label
        folder.mkdir(parents=True)
        (folder / "a.png").write_bytes(b"png")
    (tmp_path / "secret.png").write_bytes(b"the user's private file")
    return tmp_path / "project"


def test_load_samples_reads_images_inside_the_data_root(project: Path) -> None:
    samples = load_samples(task("data/cxr"), "sample", project, hasher=lambda p: p.name)
    assert [(s.id, s.label) for s in samples] == [
        ("normal/a", "normal"),
        ("pneumonia/a", "pneumonia"),
    ]


def test_load_samples_refuses_an_image_linked_from_outside(project: Path) -> None:
    link = project / "data" / "cxr" / "normal" / "b.png"
    link.symlink_to(project.parent / "secret.png")
    message = (
        f"{link}: an image resolves to {project.parent / 'secret.png'}, outside the data root "
        f"{project / 'data'} (a symbolic link?). Keep data files inside the data root."
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        load_samples(task("data/cxr"), "sample", project, hasher=lambda p: p.name)


def test_load_samples_refuses_a_data_folder_linked_from_outside(project: Path) -> None:
    (project / "data" / "linked").symlink_to(project.parent)
    path = project / "data" / "linked"
    message = (
        f"{path}: the data path resolves to {project.parent}, outside the data root "
        f"{project / 'data'} (a symbolic link?). Keep data files inside the data root."
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        load_samples(task("data/linked"), "sample", project)


def test_load_samples_refuses_a_manifest_row_through_a_link(project: Path) -> None:
    (project / "data" / "up").symlink_to(project.parent)
    manifest = project / "data" / "manifest.csv"
    manifest.write_text("path,label\ncxr/normal/a.png,normal\nup/secret.png,pneumonia\n")
    message = (
        f"{project / 'data' / 'up' / 'secret.png'}: the image on line 3 of manifest.csv "
        f"resolves to {project.parent / 'secret.png'}, outside the data root "
        f"{project / 'data'} (a symbolic link?). Keep data files inside the data root."
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        load_samples(task("data/manifest.csv", "csv"), "sample", project)


def test_resolve_hub_revision_never_reads_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    refs = tmp_path / "hub" / "models--org--m" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("0123456789abcdef0123456789abcdef01234567\n")
    (refs / "bad").write_text("root:x:0:0\n")
    assert resolve_hub_revision("org/m", "main") == "0123456789abcdef0123456789abcdef01234567"
    message = (
        "org/m@../../../../etc/hostname: not a branch, tag or 40-character commit sha, got "
        "'../../../../etc/hostname'; a revision is never a path."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        resolve_hub_revision("org/m", "../../../../etc/hostname")
    message = f"org/m@bad: the Hugging Face cache's ref {refs / 'bad'} does not hold a commit sha."
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        resolve_hub_revision("org/m", "bad")


def test_checkpoint_hash_refuses_a_checkpoint_file_linked_from_outside(project: Path) -> None:
    from medbench.run.identity import checkpoint_hash

    folder = project / "data" / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "modeling_evil.py").symlink_to(project.parent / "secret.png")
    message = (
        f"{folder / 'modeling_evil.py'}: a checkpoint file resolves to "
        f"{project.parent / 'secret.png'}, outside the data root {project / 'data'} "
        "(a symbolic link?). Keep data files inside the data root."
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        checkpoint_hash(folder, inside=project / "data")
