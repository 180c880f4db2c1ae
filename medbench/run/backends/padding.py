"""Square padding of images before the processor, as each model's own evaluation code did
(without torch: the hf and vLLM backends pad decoded images, the openai backend the bytes it
sends).

`pad_square`: LLaVA-1.5's `expand2square` on the RGB image, filled with the processor's mean
colour truncated to 8 bits (CLIP's: (122, 116, 104)). `pad_square_grey`: the same for colour
images, but LLaVA-Med's `process_images` pads a greyscale (`L`) file before any RGB conversion,
with one grey level, `int(255 * mean(image_mean))` (114 for CLIP); padding the RGB copy of a
grey image with that grey gives the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from medbench.data import pad_to_square
from medbench.run.views import CLIP_FILL, CLIP_GREY
from medbench.spec import ModelSpec


@dataclass(frozen=True)
class Padding:
    """How a model's images are padded to a square."""

    fill: tuple[int, int, int]
    """The padding colour of a colour image."""
    grey: int | None = None
    """The padding grey of a greyscale (`L`) file; None: greyscale files get `fill` too."""

    def apply(self, path: str | Path, image: Image.Image) -> Image.Image:
        """`image` (decoded from `path`, in RGB) padded to a centred square."""
        if self.grey is not None and source_mode(path) == "L":
            return pad_to_square(image, (self.grey,) * 3)
        return pad_to_square(image, self.fill)


def square_padding(spec: ModelSpec, processor: Any) -> Padding | None:
    """The padding the spec's `image_preprocess` asks for with this processor, or None."""
    if spec.image_preprocess == "processor":
        return None
    fill = pad_colour(processor)
    if spec.image_preprocess == "pad_square":
        return Padding(fill)
    mean = getattr(getattr(processor, "image_processor", None), "image_mean", None)
    grey = int(255 * sum(map(float, mean)) / len(mean)) if mean else sum(fill) // 3
    return Padding(fill, grey)


def client_padding(spec: ModelSpec) -> Padding | None:
    """The padding `image_preprocess` asks for where the processor is a server's (`openai`), out
    of medbench's reach: CLIP's mean colour, as LLaVA's processors have (and LLaVA-Med's grey
    114 for a greyscale file under `pad_square_grey`)."""
    if spec.image_preprocess == "processor":
        return None
    return Padding(CLIP_FILL, CLIP_GREY if spec.image_preprocess == "pad_square_grey" else None)


def pad_colour(processor: Any) -> tuple[int, int, int]:
    """The colour square padding fills with: the image processor's mean, as 8-bit RGB
    (what the original LLaVA code pads with), or black when the processor has no mean."""
    mean = getattr(getattr(processor, "image_processor", None), "image_mean", None)
    if not mean or len(mean) != 3:
        return (0, 0, 0)
    # truncated, not rounded, like the original code: CLIP's mean becomes (122, 116, 104)
    red, green, blue = (int(float(channel) * 255) for channel in mean)
    return (red, green, blue)


def source_mode(path: str | Path) -> str | None:
    """The PIL mode of the image file (its header only), or None when it cannot be opened."""
    try:
        with Image.open(path) as image:
            return str(image.mode)
    except OSError:
        return None


__all__ = ["Padding", "client_padding", "pad_colour", "source_mode", "square_padding"]
