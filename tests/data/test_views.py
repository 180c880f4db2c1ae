"""A model's view of an image: image variants are applied at the model's input, so that a
variant's strength is the same on a 384-px sample and on a 2,000-px scan, and alike across
models whose processors see 336 or 896 pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medbench.data.images import load_image
from medbench.data.variants import InputView, ssim
from medbench.data.variants.transforms import apply_transform, as_grey_if_grey
from medbench.data.variants.views import best_resolution
from medbench.run.views import LLAVA_NEXT_PINPOINTS, TINY_PINPOINTS, TINY_SIDE, input_view
from medbench.spec import GaussianNoiseVariant, ImageVariantSpec, JpegVariant, ModelSpec

ROOT = Path(__file__).resolve().parents[2]
CXR = sorted((ROOT / "data/sample/pneumonia_cxr/pneumonia").iterdir())[0]
LLAVA, GEMMA = InputView("crop", 336, 336), InputView("squash", 896, 896)
TOLERANCE = 0.05
"""The most two models' SSIMs of one variant may differ at their inputs (336 and 896 px)."""


def _received(spec: ImageVariantSpec, image: Image.Image, view: InputView) -> float:
    seen = view.apply(image)
    return ssim(seen, apply_transform(spec, seen, seed=0, content_sha256="a" * 64))


def _at_file(spec: ImageVariantSpec, image: Image.Image, view: InputView) -> float:
    made = apply_transform(spec, image, seed=0, content_sha256="a" * 64)
    return ssim(view.apply(image), view.apply(made))


@pytest.fixture(scope="module")
def chest() -> dict[str, Image.Image]:
    """A real 384-px chest X-ray of the sample, and the same scan at 2,000 px (a full-size
    file: the same anatomy, five times the pixels)."""
    small = as_grey_if_grey(load_image(CXR))
    assert max(small.size) == 384
    return {"384": small, "2000": small.resize((2000, 1344), Image.Resampling.BICUBIC)}


@pytest.mark.parametrize(
    "spec",
    [
        JpegVariant(id="j", transform="jpeg", quality=50),
        GaussianNoiseVariant(id="n", transform="gaussian_noise", sigma=5.0),
    ],
    ids=["jpeg-50", "noise-5"],
)
def test_variant_ssim_at_model_input_is_alike_across_models_and_file_sizes(
    spec: ImageVariantSpec, chest: dict[str, Image.Image]
) -> None:
    at_input = {(size, v.width): _received(spec, image, v)
                for size, image in chest.items() for v in (LLAVA, GEMMA)}  # fmt: skip
    for size in chest:
        assert abs(at_input[(size, 336)] - at_input[(size, 896)]) < TOLERANCE
    for side in (336, 896):  # the sample and the full-size scan: the same strength
        assert abs(at_input[("384", side)] - at_input[("2000", side)]) < 0.03
    assert all(v < 0.99 for v in at_input.values())  # a visible change at every input
    # applied to the file instead, the 2,000-px scan all but hides the change from LLaVA's
    # 336-px input while the 384-px sample shows it: what applying at the input fixes
    at_file = {size: _at_file(spec, image, LLAVA) for size, image in chest.items()}
    assert (1 - at_file["384"]) > 4 * (1 - at_file["2000"])


def test_view_sizes_follow_each_processor_rule() -> None:
    tall = Image.new("RGB", (300, 600), (200, 10, 10))
    assert LLAVA.apply(tall).size == (336, 336)
    assert GEMMA.apply(tall).size == (896, 896)
    pad = InputView("pad", 336, 336, fill=(122, 116, 104), grey=114)
    padded = np.asarray(pad.apply(tall))
    assert tuple(padded[168, 2]) == (122, 116, 104)  # the side bands are the mean colour
    assert tuple(padded[168, 168]) == (200, 10, 10)
    grey = np.asarray(pad.apply(Image.new("L", (300, 600), 250)))
    assert grey[168, 2] == 114 and grey[168, 168] == 250  # LLaVA-Med pads a grey file with 114
    api = InputView("shortest", 768, 2048)
    assert api.apply(Image.new("L", (4000, 3000))).size == (1024, 768)
    assert api.apply(Image.new("L", (500, 400))).size == (500, 400)  # never enlarged
    anyres = InputView("anyres", 336, 336, pinpoints=LLAVA_NEXT_PINPOINTS)
    assert anyres.apply(Image.new("RGB", (384, 258))).size == (672, 336)


@pytest.mark.parametrize("size", [(384, 258), (258, 384), (1000, 1000), (2000, 500), (90, 700)])
def test_best_resolution_matches_transformers_llava_next_choice(size: tuple[int, int]) -> None:
    from transformers.image_processing_utils import select_best_resolution

    width, height = size
    for pins in (LLAVA_NEXT_PINPOINTS, TINY_PINPOINTS):
        expected = select_best_resolution((height, width), [list(p) for p in pins])
        assert best_resolution(width, height, pins) == tuple(expected)


def test_input_view_follows_family_preprocessing_and_spec(tmp_path: Path) -> None:
    def view(**fields: object) -> InputView | None:
        data = {"schema_version": 1, "kind": "model", "id": "m", "title": "M", "backend": "hf"}
        if "tiny" not in fields:
            data["repo"] = "org/m"
        return input_view(ModelSpec.model_validate({**data, **fields}))

    assert view(family="gemma3") == InputView("squash", 896, 896)
    assert view(family="llava") == InputView("crop", 336, 336)
    padded = view(family="llava", image_preprocess="pad_square_grey")
    assert padded is not None and (padded.fit, padded.grey) == ("pad", 114)
    assert view(family="qwen2_vl") is None  # unknown geometry: variants at the file
    given = view(family="llava", image_input={"fit": "squash", "width": 448, "height": 448})
    assert given == InputView("squash", 448, 448)
    assert view(family="llava", image_input={"fit": "file"}) is None
    tiny = view(family="gemma3", tiny={"arch": "gemma3"}, test_model=True)
    assert tiny == InputView("squash", TINY_SIDE, TINY_SIDE)


def test_tiny_view_matches_the_tiny_models_processors() -> None:
    from medbench.checkpoints.tiny import build

    assert build.IMAGE_SIZE == TINY_SIDE
    assert build.llava_next_pinpoints(build.TINY) == [list(pin) for pin in TINY_PINPOINTS]
