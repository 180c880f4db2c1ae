"""Content groups: rotated, flipped and re-encoded copies of one image share a group."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medbench.data.contentgroups import (
    MAX_DISTANCE,
    HashStore,
    dihedral_hashes,
    distance,
    group_by_content,
    group_copies,
)
from medbench.data.samples import load_samples, sha256_file
from medbench.spec.loading import load_specs
from medbench.spec.task import GroupSpec

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
HISTOPATHOLOGY = sorted((SAMPLE / "histopathology").rglob("*.jpg"))
COPIES = (*Image.Transpose, None)
"""The 7 rotations and flips PIL names, and the image itself (re-encoded)."""


def _copy(source: Path, to: Path, transform: Image.Transpose | None, quality: int) -> Path:
    image = Image.open(source).convert("RGB")
    if transform is not None:
        image = image.transpose(transform)
    to.parent.mkdir(parents=True, exist_ok=True)
    image.save(to, "JPEG", quality=quality)
    return to


def _grouped(paths: list[Path], base: Path, store: Path) -> dict[str, str]:
    images = [(p.relative_to(base).with_suffix("").as_posix(), p, sha256_file(p)) for p in paths]
    groups = group_by_content(images, store)
    return {image_id: group for (image_id, _, _), group in zip(images, groups, strict=True)}


@pytest.mark.parametrize("quality", [60, 90])
def test_group_by_content_puts_rotated_flipped_and_reencoded_copies_together(
    tmp_path: Path, quality: int
) -> None:
    originals = [HISTOPATHOLOGY[0], HISTOPATHOLOGY[20], HISTOPATHOLOGY[40]]
    paths = [
        _copy(original, tmp_path / original.stem / f"{n}.jpg", transform, quality)
        for original in originals
        for n, transform in enumerate(COPIES)
    ]
    groups = _grouped(paths, tmp_path, tmp_path / "hashes.sqlite")
    assert groups == {
        f"{original.stem}/{n}": f"{original.stem}/0"
        for original in originals
        for n in range(len(COPIES))
    }


def test_group_by_content_merges_no_two_different_sample_images(tmp_path: Path) -> None:
    paths = sorted(SAMPLE.rglob("*.jpg"))
    assert len(paths) == 176
    members: dict[str, list[str]] = {}
    for image_id, group in _grouped(paths, SAMPLE, tmp_path / "hashes.sqlite").items():
        members.setdefault(group, []).append(image_id)
    shared = [ids for ids in members.values() if len(ids) > 1]
    # one slice flipped and a near-copy of it, in the Kaggle brain MRI test split itself
    assert shared == [
        [
            "brain_tumor_mri/notumor/Te-no_0164",
            "brain_tumor_mri/notumor/Te-no_0253",
            "brain_tumor_mri/notumor/Te-no_0259",
        ]
    ]


def test_different_sample_images_are_far_beyond_the_copy_distance() -> None:
    hashes = [dihedral_hashes(Image.open(p)) for p in HISTOPATHOLOGY]
    nearest = min(
        distance(hashes[i], hashes[j])
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
    )
    assert nearest > 3 * MAX_DISTANCE


def test_group_by_content_reads_stored_hashes_without_the_images(tmp_path: Path) -> None:
    paths = [
        _copy(HISTOPATHOLOGY[5], tmp_path / "a.jpg", None, 90),
        _copy(HISTOPATHOLOGY[5], tmp_path / "b.jpg", Image.Transpose.ROTATE_90, 90),
        _copy(HISTOPATHOLOGY[6], tmp_path / "c.jpg", None, 90),
    ]
    images = [(p.stem, p, sha256_file(p)) for p in paths]
    first = group_by_content(images, tmp_path / "hashes.sqlite")
    for path in paths:
        path.unlink()
    assert group_by_content(images, tmp_path / "hashes.sqlite") == first == ["a", "a", "c"]


def test_hash_store_ignores_hashes_of_another_version(tmp_path: Path) -> None:
    store = HashStore(tmp_path / "hashes.sqlite")
    hashes = dihedral_hashes(Image.open(HISTOPATHOLOGY[0]))
    store.put_many({"f" * 64: hashes})
    assert np.array_equal(store.get_many(["f" * 64])["f" * 64], hashes)
    with store._db:
        store._db.execute("UPDATE hashes SET version = version + 1")
    assert store.get_many(["f" * 64]) == {}
    store.close()


def test_group_copies_joins_chains_and_leaves_unhashed_images_alone() -> None:
    base = np.zeros((8, 4), dtype=np.uint64)
    step = np.zeros((8, 4), dtype=np.uint64)
    step[:, 0] = (1 << MAX_DISTANCE) - 1  # MAX_DISTANCE bits from `base`
    far = step.copy()
    far[:, 1] = (1 << MAX_DISTANCE) - 1  # 2 * MAX_DISTANCE from `base`, MAX_DISTANCE from `step`
    lone = np.full((8, 4), np.iinfo(np.uint64).max, dtype=np.uint64)
    groups = group_copies(["d", "c", "b", "a", "e"], [far, base, step, None, lone])
    assert groups == ["b", "b", "b", "a", "e"]


def test_load_samples_groups_the_shipped_histopathology_sample_one_image_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path))
    task = load_specs(REPO / "specs").tasks["histopathology"]
    samples = load_samples(task, "sample", REPO, hasher=lambda _: "0")
    # the sample README: at most one image was taken from each cluster of copies
    assert [s.group for s in samples] == [s.id for s in samples]
    assert (tmp_path / "content_hashes.sqlite").is_file()


def test_group_spec_takes_exactly_one_way_to_group() -> None:
    assert GroupSpec.model_validate({"by": "content"}).describe() == (
        "content: rotations and flips of one image"
    )
    message = "a group needs exactly one of `pattern`, `column` or `by`"
    with pytest.raises(ValueError, match=re.escape(message)):
        GroupSpec.model_validate({"by": "content", "pattern": "^a"})
