"""The batch-invariance check on a suite with image variants: their images are derived first."""

from pathlib import Path

from medbench.checks import check_batch_invariance
from medbench.run.backends import BackendContext
from medbench.run.plan import make_plan
from medbench.spec.loading import load_specs
from tests.spec_tree import make_project

VARIANTS = "image_variants:\n  - {id: rot10, transform: rotate, degrees: 10}\n"


def test_check_batch_invariance_derives_the_image_variants_it_asks(tmp_path: Path) -> None:
    project = make_project(
        tmp_path, models=("tiny-llava",), limit_per_class=1, suite_extra=VARIANTS
    )
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "m", images_dir=tmp_path / "images")
    every = len({j.key for j in plan.jobs})
    assert any(j.image_variant == "rot10" for j in plan.jobs)
    report = check_batch_invariance(
        plan, specs, "tiny-llava", n=every, batch_size=4, context=BackendContext(device="cpu")
    )
    assert report.n_jobs == every
    assert report.flips == []
    assert list((tmp_path / "images" / "derived").rglob("*.pnm"))
