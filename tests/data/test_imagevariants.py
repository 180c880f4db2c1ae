"""Tests of image variants: deterministic transforms, the derived-image store, the
`mismatched` pairing, their jobs and keys, and what the backends receive without an image."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import TypeAdapter

from medbench.data.images import load_image
from medbench.data.samples import Sample
from medbench.data.variants import (
    DERIVED,
    ImageStore,
    encode_png,
    image_transforms,
    image_variant_kinds,
    mismatched_partners,
    transform_image,
)
from medbench.run.cache import Cache
from medbench.run.imagejobs import derive_for
from medbench.run.jobs import Job
from medbench.run.loop import run_plan
from medbench.run.plan import Plan, make_plan
from medbench.score.answers import collect_answers
from medbench.spec.imagevariants import IMAGE_ABLATIONS, IMAGE_TRANSFORMS, ImageVariantSpec
from medbench.spec.loading import load_specs
from medbench.spec.prompts import ImageRef
from tests.spec.test_loading import SUITE, load_error, write_tree
from tests.spec_tree import REPO, make_project

# One spec per transform that computes a new image, at settings that visibly change it.
DERIVED_SPECS: dict[str, dict[str, Any]] = {
    "jpeg": {"quality": 10},
    "resize": {"scale": 0.25},
    "rotate": {"degrees": 10.0},
    "flip": {},
    "crop": {"fraction": 0.5},
    "contrast": {"factor": 0.5},
    "brightness": {"factor": 1.5},
    "gamma": {"gamma": 2.0},
    "gaussian_noise": {"sigma": 8.0, "seed": 3},
    "blur": {"radius": 2.0},
    "bias_field": {"severity": 3, "seed": 3},
    "motion": {"severity": 3, "seed": 3},
    "exposure": {"severity": 3},
    "illumination": {"severity": 3},
    "stain": {"severity": 3, "seed": 3},
    "blank": {},
    "noise": {"seed": 3},
}
IMAGE = REPO / "data/sample/skin_lesion/benign"
SHA = "0" * 64


def variant(transform: str, **fields: Any) -> ImageVariantSpec:
    data = {"id": f"v-{transform}", "transform": transform, **fields}
    spec: ImageVariantSpec = TypeAdapter(ImageVariantSpec).validate_python(data)
    return spec


def first_image() -> Path:
    return sorted(IMAGE.glob("*.jpg"))[0]


def derived_hashes(path: Path) -> dict[str, str]:
    image = load_image(path)
    return {
        name: hashlib.sha256(
            encode_png(transform_image(variant(name, **fields), image, seed=0, content_sha256=SHA))
        ).hexdigest()
        for name, fields in DERIVED_SPECS.items()
    }


def test_image_variant_specs_cover_every_transform() -> None:
    assert set(DERIVED_SPECS) == set(DERIVED)
    assert set(DERIVED) | {"no_image", "mismatched"} == {*IMAGE_TRANSFORMS, *IMAGE_ABLATIONS}
    for name in (*IMAGE_TRANSFORMS, *IMAGE_ABLATIONS):
        assert variant(name, **DERIVED_SPECS.get(name, {})).transform == name


def test_transform_image_gives_the_same_bytes_in_another_process() -> None:
    path = first_image()
    here = derived_hashes(path)
    code = (
        "import json, sys; from pathlib import Path; "
        "from tests.data.test_imagevariants import derived_hashes; "
        "print(json.dumps(derived_hashes(Path(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == here
    assert len(set(here.values())) == len(here)  # and no two transforms make the same image


@pytest.mark.parametrize("name", sorted(DERIVED_SPECS))
def test_transform_image_changes_the_pixels(name: str) -> None:
    image = load_image(first_image())
    out = transform_image(variant(name, **DERIVED_SPECS[name]), image, seed=0, content_sha256=SHA)
    assert out.mode == "RGB"
    same_size = out.size == image.size
    assert same_size == (name != "crop")
    assert not same_size or not np.array_equal(np.asarray(out), np.asarray(image))


def test_transforms_match_an_independent_computation() -> None:
    image = load_image(first_image())
    pixels = np.asarray(image).astype(np.float64)

    def run(name: str, **fields: Any) -> np.ndarray[Any, Any]:
        out = transform_image(variant(name, **fields), image, seed=0, content_sha256=SHA)
        return np.asarray(out)

    assert np.array_equal(run("flip"), pixels[:, ::-1].astype(np.uint8))
    assert np.array_equal(run("flip", axis="vertical"), pixels[::-1].astype(np.uint8))
    height, width = pixels.shape[:2]  # 180 x 180: a centred half is rows and columns 45..134
    assert (height, width) == (180, 180)
    assert np.array_equal(run("crop", fraction=0.5), pixels[45:135, 45:135].astype(np.uint8))
    gamma = np.floor(255 * (pixels / 255) ** 2.0 + 0.5)
    assert np.array_equal(run("gamma", gamma=2.0), gamma.astype(np.uint8))
    blank = run("blank")
    assert np.array_equal(blank, np.broadcast_to(blank[0, 0], blank.shape))
    assert np.array_equal(blank[0, 0], np.rint(pixels.reshape(-1, 3).mean(axis=0)))
    assert not run("brightness", factor=0.0).any()


def test_seeded_transforms_differ_by_seed_and_by_image() -> None:
    image = load_image(first_image())
    for name in ("gaussian_noise", "noise"):
        fields = {"sigma": 8.0} if name == "gaussian_noise" else {}

        def out(seed: int, sha: str, fields: dict[str, Any] = fields, name: str = name) -> bytes:
            return encode_png(
                transform_image(variant(name, **fields), image, seed=seed, content_sha256=sha)
            )

        assert out(1, SHA) == out(1, SHA)
        assert len({out(1, SHA), out(2, SHA), out(1, "1" * 64)}) == 3


def test_store_writes_each_image_once_named_by_its_hash(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    path = first_image()
    original = ImageRef(str(path), hashlib.sha256(path.read_bytes()).hexdigest())
    flip = variant("flip")

    def flip_of(image: Image.Image) -> Image.Image:
        return transform_image(flip, image, seed=0, content_sha256=SHA)

    made = store.derive(original, {"transform": "flip"}, flip_of)
    data = Path(made.path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == made.sha256
    assert Path(made.path) == tmp_path / "images" / made.sha256[:2] / f"{made.sha256}.png"
    with Image.open(made.path) as stored:  # no metadata: the bytes depend on the pixels only
        assert stored.info == {}

    def never(image: Image.Image) -> Image.Image:
        raise AssertionError("derived again")

    assert store.derive(original, {"transform": "flip"}, never) == made
    assert len(list((tmp_path / "images").rglob("*.png"))) == 1
    Path(made.path).write_bytes(data[:100])  # a stored image cut short is derived again
    assert store.derive(original, {"transform": "flip"}, flip_of) == made
    assert Path(made.path).read_bytes() == data


@pytest.mark.parametrize(
    ("entry", "where", "problem"),
    [
        (
            "{id: j, transform: jpeg, quality: 0}",
            "10:39",
            "quality: expected a number >= 1, got 0.",
        ),
        (
            "{id: j, transform: jpeg, quality: '30'}",
            "10:39",
            "quality: expected an integer, got '30'.",
        ),
        (
            "{id: r, transform: rotate, degrees: '10'}",
            "10:41",
            "degrees: expected a number, got '10'.",
        ),
        (
            "{id: r, transform: rotate, degrees: true}",
            "10:41",
            "degrees: expected a number, got true.",
        ),
        (
            "{id: c, transform: crop, fraction: 1.0}",
            "10:40",
            "fraction: expected a number < 1.0, got 1.0.",
        ),
        (
            "{id: j, transform: jpg, quality: 30}",
            "10:24",
            "transform: unknown transform 'jpg'. Did you mean 'jpeg'?",
        ),
        (
            "{id: f, transform: flip, quality: 30}",
            "10:30",
            "quality: unknown field. Allowed fields: id, tasks, transform, axis.",
        ),
        (
            "{id: original, transform: blank}",
            "10:10",
            "id: `original` names the untouched image; choose another id.",
        ),
        ("{id: n, transform: noise, seed: -1}", "10:37", "seed: expected a number >= 0, got -1."),
        (
            "{id: r, transform: rotate}",
            "10:5",
            "degrees: required field is missing. Angle, counter-clockwise.",
        ),
    ],
)
def test_image_variant_parameters_are_checked_at_their_location(
    tmp_path: Path, entry: str, where: str, problem: str
) -> None:
    suite = SUITE + f"image_variants:\n  - {entry}\n"
    message = load_error(write_tree(tmp_path, {"specs/suites/demo.yaml": suite}))
    assert message == f"{tmp_path}/specs/suites/demo.yaml:{where}: image_variants.0.{problem}"


def test_image_variant_ids_are_unique(tmp_path: Path) -> None:
    suite = (
        SUITE + "image_variants:\n  - {id: b, transform: blank}\n  - {id: b, transform: no_image}\n"
    )
    message = load_error(write_tree(tmp_path, {"specs/suites/demo.yaml": suite}))
    assert message == (
        f"{tmp_path}/specs/suites/demo.yaml:11:10: image_variants.1.id: "
        "image_variants lists 'b' twice."
    )


# The `mismatched` pairing


def samples_of(counts: dict[str, int]) -> list[Sample]:
    return [
        Sample(f"{label}/{i}", Path(f"{label}/{i}.jpg"), label, f"{label}-{i}")
        for label, n in counts.items()
        for i in range(n)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_mismatched_partners_never_show_an_image_of_the_own_class(seed: int) -> None:
    rng = random.Random(seed)
    counts = {f"c{k}": rng.randint(1, 9) for k in range(rng.randint(2, 5))}
    samples = samples_of(counts)
    partners = mismatched_partners(samples, seed, "task")
    assert sorted(partners) == sorted(s.id for s in samples)
    by_id = {s.id: s for s in samples}
    assert all(partner.label != by_id[i].label for i, partner in partners.items())
    if 2 * max(counts.values()) <= len(samples):  # then it is a derangement: each image once
        assert sorted(p.id for p in partners.values()) == sorted(by_id)
    assert mismatched_partners(list(reversed(samples)), seed, "task") == partners


def test_mismatched_partners_need_two_classes_and_skip_unreadable_images() -> None:
    assert mismatched_partners(samples_of({"a": 3}), 0, "t") == {}
    broken = Sample("b/0", Path("b/0.jpg"), "b", "marker", error="not an image")
    partners = mismatched_partners([*samples_of({"a": 3}), broken], 0, "t")
    assert partners == {}


# Jobs and keys

IMAGE_VARIANTS = """\
image_variants:
  - {id: jpeg30, transform: jpeg, quality: 30}
  - {id: rot10, transform: rotate, degrees: 10}
  - {id: none, transform: no_image}
  - {id: blank, transform: blank}
  - {id: other, transform: mismatched}
"""
MODELS = ("baseline-chance", "tiny-llava")


def plan_of(tmp_path: Path, extra: str = "", models: tuple[str, ...] = MODELS) -> Plan:
    project = make_project(
        tmp_path, families=("closed_diagnosis", "finding_present"), models=models, suite_extra=extra
    )
    return make_plan(
        load_specs(project / "specs"),
        "t",
        models_dir=tmp_path / "models",
        images_dir=tmp_path / "images",
    )


def fields(job: Job) -> tuple[str, ...]:
    return (job.model, job.task, job.family, job.variant, job.sample, job.image_variant)


def test_plan_image_variants_change_only_their_own_jobs_keys(tmp_path: Path) -> None:
    before = plan_of(tmp_path / "a")
    after = plan_of(tmp_path / "b", IMAGE_VARIANTS)
    original = [(fields(j), j.key) for j in after.jobs if j.image_variant == "original"]
    assert original == [(fields(j), j.key) for j in before.jobs]
    keys = {j.key for j in before.jobs}
    added = [j for j in after.jobs if j.image_variant != "original"]
    # 2 models x 2 families (reference variants) x 4 images x 5 image variants
    assert len(added) == 2 * 2 * 4 * 5
    assert {(j.family, j.variant) for j in added} == {
        ("closed_diagnosis", "plain"),
        ("finding_present", "plain"),
    }
    model = [j for j in added if j.model == "tiny-llava"]
    transformed = [j for j in model if j.image_variant in ("jpeg30", "rot10", "none", "blank")]
    assert not {j.key for j in transformed} & keys
    # a mismatched image is another sample's own: its key is that sample's original key
    by_slot = {(j.model, j.family, j.variant, j.sample): j.key for j in before.jobs}
    for job in (j for j in model if j.image_variant == "other"):
        [image] = after.request(job).messages.images
        partner = next(s for s in after.samples[job.task] if str(s.path) == image.path)
        assert partner.label != job.label
        assert job.key == by_slot[(job.model, job.family, job.variant, partner.id)]
    again = plan_of(tmp_path / "c", IMAGE_VARIANTS)
    assert [(fields(j), j.key) for j in again.jobs] == [(fields(j), j.key) for j in after.jobs]


def test_run_deriving_on_a_full_disk_names_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from medbench.data.variants import store
    from medbench.errors import MedbenchError

    written: list[int] = []

    def full_after_one(path: Path, data: bytes) -> None:
        if written:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(len(data))
        real(path, data)

    real = store.write_bytes_atomic
    monkeypatch.setattr(store, "write_bytes_atomic", full_after_one)
    plan = plan_of(tmp_path, IMAGE_VARIANTS)  # planning derives nothing: it cannot fill a disk
    with pytest.raises(MedbenchError) as raised:
        derive_for(plan, plan.jobs, workers=1)
    message = str(raised.value)
    assert message.startswith(f"the disk holding {tmp_path / 'images'} is full: the run derives")
    assert message.endswith(
        "Free space there, or set MEDBENCH_HOME to a folder on a disk with room; the answers "
        "stored so far are kept."
    )


def test_plan_no_image_job_has_no_image_and_its_own_stable_key(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, IMAGE_VARIANTS, models=("tiny-llava",))
    none = [j for j in plan.jobs if j.image_variant == "none"]
    assert all(plan.request(j).messages.images == () for j in none)
    # the prompt alone: one answer per (family, variant, task), whatever the sample
    assert len({(j.family, j.key) for j in none}) == 2
    others = {j.key for j in plan.jobs if j.image_variant != "none"}
    assert not {j.key for j in none} & others


def test_plan_baselines_answer_every_image_variant_under_the_original_key(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, IMAGE_VARIANTS, models=("baseline-chance",))
    original = {
        (j.family, j.variant, j.sample): j.key for j in plan.jobs if j.image_variant == "original"
    }
    added = [j for j in plan.jobs if j.image_variant != "original"]
    assert len(added) == 2 * 4 * 5
    assert all(j.key == original[(j.family, j.variant, j.sample)] for j in added)


def test_plan_image_variant_prompts_all_asks_every_variant(tmp_path: Path) -> None:
    extra = "image_variant_prompts: all\nimage_variants:\n  - {id: flip, transform: flip}\n"
    plan = plan_of(tmp_path, extra, models=("baseline-chance",))
    original = [(j.family, j.variant, j.sample) for j in plan.jobs if j.image_variant == "original"]
    added = [(j.family, j.variant, j.sample) for j in plan.jobs if j.image_variant == "flip"]
    assert added == original


def test_collect_answers_rows_carry_the_image_variant_and_its_transform(tmp_path: Path) -> None:
    project = make_project(tmp_path, suite_extra=IMAGE_VARIANTS)
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "models", images_dir=tmp_path / "images")
    with Cache(tmp_path / "c.sqlite") as cache:
        run_plan(plan, specs, cache, progress=False)
        answers = collect_answers(specs, plan, cache)
    assert answers["image_variant"].value_counts().to_dict() == {
        "original": 8 * 4,
        **dict.fromkeys(("jpeg30", "rot10", "none", "blank", "other"), 4),
    }
    transforms = dict(zip(answers["image_variant"], answers["image_transform"], strict=True))
    assert transforms == {
        "original": "",
        "jpeg30": '{"quality":30,"transform":"jpeg"}',
        "rot10": '{"degrees":10.0,"transform":"rotate"}',
        "none": '{"transform":"no_image"}',
        "blank": '{"transform":"blank"}',
        "other": '{"seed":0,"transform":"mismatched"}',
    }
    assert image_variant_kinds(plan.suite) == {
        "jpeg30": "jpeg",
        "rot10": "rotate",
        "none": "no_image",
        "blank": "blank",
        "other": "mismatched",
    }
    assert image_transforms(plan.suite)["other"] == transforms["other"]
    # the baseline looks at no image: each variant's answer is the original's
    original = answers[answers["image_variant"] == "original"].set_index(
        ["family", "variant", "sample"]
    )
    for _, row in answers[answers["image_variant"] != "original"].iterrows():
        assert row["text"] == original.loc[(row["family"], row["variant"], row["sample"]), "text"]


def test_plan_unreadable_image_fails_its_variant_jobs_alone(tmp_path: Path) -> None:
    project = make_project(tmp_path, models=("tiny-llava",), suite_extra=IMAGE_VARIANTS)
    specs = load_specs(project / "specs")
    first = make_plan(specs, "t", models_dir=tmp_path / "m", images_dir=tmp_path / "i")
    broken = first.samples["pneumonia_cxr"][0].path
    broken.write_bytes(b"not an image")
    plan = make_plan(specs, "t", models_dir=tmp_path / "m", images_dir=tmp_path / "j")
    sample = plan.samples["pneumonia_cxr"][0]
    jobs = [
        j for j in plan.jobs if j.sample == sample.id and j.image_variant in ("jpeg30", "blank")
    ]
    # planning derives nothing, so it cannot know; the run finds out when it derives
    assert jobs and not any(j.key in plan.unreadable for j in jobs)
    derive_for(plan, plan.jobs)
    assert all(plan.unreadable[j.key].endswith("not an image") for j in jobs)
    others = [j for j in plan.jobs if j.sample != sample.id and j.image_variant == "jpeg30"]
    assert others and not any(j.key in plan.unreadable for j in others)


def test_received_prompts_show_the_no_image_rendering_without_an_image_token(
    tmp_path: Path,
) -> None:
    from medbench.checks.received import received_prompts

    project = make_project(tmp_path, models=("tiny-llava",), suite_extra=IMAGE_VARIANTS)
    specs = load_specs(project / "specs")
    shown = received_prompts(specs, "tiny-llava", "pneumonia_cxr", models_dir=tmp_path, suite="t")
    bare = [p for p in shown if p.kind.endswith("image variant none")]
    assert [(p.family, p.variant, p.kind) for p in bare] == [
        ("closed_diagnosis", "plain", "wording, image variant none")
    ]
    [seen] = [p for p in shown if (p.variant, p.kind) == ("plain", "wording")]
    assert "<image>" in seen.text
    assert bare[0].text == seen.text.replace("<image>\n", "")


def test_plan_image_variants_subset_asks_a_seeded_stratified_subset(tmp_path: Path) -> None:
    from medbench.data.variants import image_variant_samples

    extra = IMAGE_VARIANTS + "image_variants_subset: {per_class: 1}\n"
    plan = plan_of(tmp_path, extra, models=("baseline-chance",))
    samples = plan.samples["pneumonia_cxr"]
    chosen = image_variant_samples(plan.suite, "pneumonia_cxr", samples)
    assert sorted(s.label for s in chosen) == ["normal", "pneumonia"]
    added = [j for j in plan.jobs if j.image_variant != "original"]
    assert {j.sample for j in added} == {s.id for s in chosen}
    assert len(added) == 2 * 2 * 5  # 2 families x 2 images x 5 image variants
    assert len([j for j in plan.jobs if j.image_variant == "original"]) == 14 * 4
    again = plan_of(tmp_path / "again", extra, models=("baseline-chance",))
    assert [j.key for j in again.jobs] == [j.key for j in plan.jobs]


def test_run_and_score_with_an_image_variants_subset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app

    extra = IMAGE_VARIANTS + "image_variants_subset: {per_class: 1}\n"
    project = make_project(tmp_path, models=("baseline-chance",), suite_extra=extra)
    monkeypatch.chdir(project)
    result = CliRunner().invoke(
        app,
        ["run", "specs", "-s", "t", "--cache", str(tmp_path / "c.sqlite"), "--no-site",
         "--no-probe", "--results", str(tmp_path / "results")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results" / "t").is_dir()


def test_plan_image_variant_tasks_limit_it_to_those_tasks(tmp_path: Path) -> None:
    project = make_project(
        tmp_path,
        tasks=("pneumonia_cxr", "skin_lesion"),
        models=("tiny-llava",),
        suite_extra="image_variants:\n"
        "  - {id: j, transform: jpeg, quality: 30, tasks: [skin_lesion]}\n"
        "  - {id: b, transform: blank}\n",
    )
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "m", images_dir=tmp_path / "images")
    tasks = {v: {j.task for j in plan.jobs if j.image_variant == v} for v in ("j", "b")}
    assert tasks == {"j": {"skin_lesion"}, "b": {"pneumonia_cxr", "skin_lesion"}}
    # `tasks` is where the variant applies, not what it does: the recorded transform omits it
    assert image_transforms(plan.suite)["j"] == '{"quality":30,"transform":"jpeg"}'


def test_image_variant_tasks_outside_the_suite_is_a_located_error(tmp_path: Path) -> None:
    suite = SUITE + "image_variants:\n  - {id: j, transform: jpeg, quality: 30, tasks: [brain]}\n"
    message = load_error(write_tree(tmp_path, {"specs/suites/demo.yaml": suite}))
    assert message.startswith(f"{tmp_path}/specs/suites/demo.yaml:")
    assert "image variant 'j' names task 'brain', which is not among the suite's tasks" in message


def test_plan_stain_recipe_follows_the_scikit_image_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = "image_variants:\n  - {id: s, transform: stain, severity: 2}\n"

    def keys(folder: str) -> set[str]:
        plan = plan_of(tmp_path / folder, extra, models=("tiny-llava",))
        return {j.key for j in plan.jobs if j.image_variant == "s"}

    before = keys("a")
    assert before == keys("b")
    monkeypatch.setattr("medbench.data.variants.derive._scikit_image_version", lambda: "0.0")
    assert not keys("c") & before
