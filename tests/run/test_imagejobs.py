"""Derived images at run time: planning names them by recipe, the run derives what it needs and
checks the bytes, and a warm cache's answers carry over from the pre-recipe keys."""

import hashlib
import time
from pathlib import Path

import PIL
import pytest

from medbench.data.images import load_image
from medbench.data.variants import (
    DerivedBytesError,
    ImageStore,
    recipe_key,
    transform_image,
)
from medbench.run.cache import Cache
from medbench.run.imagejobs import carry_over_answers, derive_for, recipes_of
from medbench.run.jobs import key_parts
from medbench.run.loop import run_plan
from medbench.run.plan import Plan, make_plan
from medbench.spec.loading import load_specs
from tests.spec_tree import make_project

VARIANTS = """image_variants:
  - {id: jpeg30, transform: jpeg, quality: 30}
  - {id: rot10, transform: rotate, degrees: 10}
  - {id: none, transform: no_image}
"""


def _plan(tmp_path: Path, models: tuple[str, ...] = ("tiny-llava",), extra: str = "") -> Plan:
    project = make_project(tmp_path, models=models, suite_extra=VARIANTS + extra)
    specs = load_specs(project / "specs")
    return make_plan(specs, "t", models_dir=tmp_path / "m", images_dir=tmp_path / "images")


def test_make_plan_derives_no_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("planning decoded an image")

    monkeypatch.setattr("medbench.data.variants.derive.load_image", never)
    plan = _plan(tmp_path)
    assert not (tmp_path / "images").exists()
    derived = [j for j in plan.jobs if j.image_variant in ("jpeg30", "rot10")]
    assert len(derived) == 2 * 4 * 1  # two transforms x four images, the reference wording
    assert len(plan.recipes) == 8
    for job in derived:
        [recipe] = recipes_of(plan, job)
        [image] = plan.request(job).messages.images
        assert image.sha256 == recipe.key  # keyed by the recipe, before any image exists


def test_recipe_key_changes_with_the_source_transform_and_library_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = recipe_key("a" * 64, {"transform": "jpeg", "quality": 30})
    assert base == recipe_key("a" * 64, {"quality": 30, "transform": "jpeg"})
    assert base != recipe_key("b" * 64, {"transform": "jpeg", "quality": 30})
    assert base != recipe_key("a" * 64, {"transform": "jpeg", "quality": 31})
    monkeypatch.setattr(PIL, "__version__", "0.0.1")
    assert base != recipe_key("a" * 64, {"transform": "jpeg", "quality": 30})
    monkeypatch.undo()
    monkeypatch.setattr("medbench.data.variants.store.DERIVE_VERSION", 99)
    assert base != recipe_key("a" * 64, {"transform": "jpeg", "quality": 30})


def test_derive_for_makes_the_images_once_and_checks_their_bytes(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    jobs = [j for j in plan.jobs if j.image_variant == "rot10"]
    assert derive_for(plan, jobs) == 4
    store = ImageStore(tmp_path / "images")
    for job in jobs:
        [image] = plan.request(job).messages.images
        data = Path(image.path).read_bytes()
        recorded = (tmp_path / "images" / "recipes" / image.sha256).read_text().strip()
        assert hashlib.sha256(data).hexdigest() == recorded
        [recipe] = recipes_of(plan, job)
        # applied at the model's input: tiny LLaVA's processor crops to a centred 32-px square
        assert recipe.view is not None and recipe.view.token == "crop:32x32"
        seen = recipe.view.apply(load_image(recipe.source.path))
        expected = transform_image(
            recipe.spec, seen, seed=recipe.seed, content_sha256=recipe.source.sha256
        )
        assert load_image(image.path).tobytes() == expected.tobytes()
        assert load_image(image.path).size == (32, 32)
        measured = store.ssim(image.sha256)
        assert measured is not None and 0.0 < measured < 1.0
    stamp = {j.key: Path(plan.request(j).messages.images[0].path).stat().st_mtime_ns for j in jobs}
    time.sleep(0.01)
    derive_for(plan, jobs)  # already there: nothing is derived again
    assert stamp == {
        j.key: Path(plan.request(j).messages.images[0].path).stat().st_mtime_ns for j in jobs
    }
    # bytes that differ from those recorded for the recipe are refused
    key = plan.request(jobs[0]).messages.images[0].sha256
    with pytest.raises(DerivedBytesError, match=r"gave other bytes .* than before"):
        store.put_derived(key, b"other bytes", "source.jpg")


def test_carry_over_answers_keeps_a_warm_caches_image_variant_answers(tmp_path: Path) -> None:
    # the store before recipes derived at the file's own resolution only
    plan = _plan(tmp_path, extra="image_variants_at: file\n")
    job = next(j for j in plan.jobs if j.image_variant == "jpeg30")
    [recipe] = recipes_of(plan, job)
    store = ImageStore(tmp_path / "images")
    # the pre-recipe store: the image derived at plan time, indexed by its bytes' hash
    old = store.derive(
        recipe.source,
        recipe.transform,
        lambda image: transform_image(
            recipe.spec, image, seed=recipe.seed, content_sha256=recipe.source.sha256
        ),
    )
    head, tail = key_parts(plan.identities[job.model], plan.prompt_of(job), False)
    then = hashlib.sha256(head + b'"' + old.sha256.encode() + b'"' + tail).hexdigest()
    row = (then, job.model, job.task, job.family, job.variant, job.sample)
    with Cache(tmp_path / "c.sqlite") as cache:
        prompt = '{"images":["' + old.sha256 + '"]}'
        cache.put_many([(*row, prompt, "pneumonia", None, 0.5, 4, "float32")])
        assert carry_over_answers(plan, cache) == 1
        [answer] = cache.get_many([job.key]).values()
        assert (answer.output, answer.prompt) == ("pneumonia", '{"images":["' + recipe.key + '"]}')
        assert carry_over_answers(plan, cache) == 0


def test_run_plan_derives_only_the_images_of_missing_answers(tmp_path: Path) -> None:
    plan = _plan(tmp_path, models=("baseline-chance",))
    with Cache(tmp_path / "c.sqlite") as cache:
        summary = run_plan(plan, load_specs(tmp_path / "project" / "specs"), cache, progress=False)
    assert summary.failed == 0
    assert not (tmp_path / "images").exists()  # a baseline never looks at an image
