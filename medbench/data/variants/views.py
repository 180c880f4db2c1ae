"""A model's view of an image: the pixels its processor makes of a file, emulated with Pillow.

An image variant's strength must not depend on the file's resolution. JPEG at quality 50,
a blur of one pixel or sigma-5 noise applied to a 2,000-px chest X-ray all but vanish once a
processor shrinks the file to LLaVA's 336 px, yet stay visible at Gemma 3's 896 px; on a
384-px file both see them. So medbench applies each variant to the image **as the model
receives it**: the file is first brought to the model's input (its processor's resize, crop or
padding, `InputView.fit`), then transformed; the processor then finds an image already of its
input size and leaves it as it is. The SSIM between the fitted original and the varied image
is what the model's input lost, comparable across models and between the sample and full data.

The emulation uses Pillow's bicubic resampling, as the processors' Pillow paths do; a
processor's own (torch) fast path may differ from it by a grey level here and there, the same
for the original and its variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from PIL import Image

Fit = Literal["squash", "crop", "pad", "shortest", "anyres"]
"""How a processor makes its input from a file:

- `squash`: resized to `width` x `height`, aspect ignored (Gemma 3, SigLIP);
- `crop`: the shortest side resized to `width`, then the centred `width` x `height` kept
  (CLIP's processor: LLaVA-1.5);
- `pad`: padded to a centred square with `fill`, then resized to `width` x `height`
  (LLaVA-1.5's own evaluation code, LLaVA-Med);
- `shortest`: fitted within `height` x `height`, then the shortest side scaled to `width`
  (an API's documented high-detail rule: OpenAI's 2048 and 768);
- `anyres`: LLaVA-NeXT's tiles: the grid resolution of `pinpoints` that keeps the most of
  the image, the image scaled into it keeping its aspect and centred on black."""


@dataclass(frozen=True)
class InputView:
    """How one model's processor turns an image file into its input pixels."""

    fit: Fit
    width: int
    height: int
    fill: tuple[int, int, int] = (0, 0, 0)
    """The padding colour of `pad` (the processor's mean colour)."""
    grey: int | None = None
    """`pad`'s padding grey for a greyscale image (LLaVA-Med pads the grey file); None: the
    mean of `fill`."""
    pinpoints: tuple[tuple[int, int], ...] = ()
    """`anyres`'s grid resolutions, (height, width) each."""

    @property
    def token(self) -> str:
        """The view as a short stable text: part of a derived image's recipe."""
        text = f"{self.fit}:{self.width}x{self.height}"
        if self.fit == "pad":
            text += ":fill=" + ",".join(map(str, self.fill)) + f":grey={self.pad_grey}"
        if self.fit == "anyres":
            text += ":" + ",".join(f"{h}x{w}" for h, w in self.pinpoints)
        return text

    @property
    def pad_grey(self) -> int:
        """`pad`'s padding of a greyscale image."""
        return sum(self.fill) // 3 if self.grey is None else self.grey

    def size_of(self, width: int, height: int) -> tuple[int, int]:
        """The model input's (width, height) for a file of this size."""
        if self.fit in ("squash", "crop", "pad"):
            return self.width, self.height
        if self.fit == "shortest":
            scale = min(1.0, self.height / max(width, height))
            w, h = width * scale, height * scale
            scale = self.width / min(w, h) if min(w, h) > self.width else 1.0
            return max(1, round(w * scale)), max(1, round(h * scale))
        grid_h, grid_w = best_resolution(width, height, self.pinpoints)
        return grid_w, grid_h

    def apply(self, image: Image.Image) -> Image.Image:
        """`image` (`L` or `RGB`) as the model receives it, in the same mode."""
        bicubic = Image.Resampling.BICUBIC
        width, height = image.size
        if self.fit == "squash":
            return _resized(image, (self.width, self.height))
        if self.fit == "shortest":
            return _resized(image, self.size_of(width, height))
        if self.fit == "crop":
            scale = self.width / min(width, height)
            scaled = (max(self.width, round(width * scale)), max(self.width, round(height * scale)))
            big = _resized(image, scaled)
            left, top = (big.width - self.width) // 2, (big.height - self.height) // 2
            return big.crop((left, top, left + self.width, top + self.height))
        if self.fit == "pad":
            side = max(width, height)
            colour = self.pad_grey if image.mode == "L" else self.fill
            square = Image.new(image.mode, (side, side), colour)
            square.paste(image, ((side - width) // 2, (side - height) // 2))
            return _resized(square, (self.width, self.height))
        grid_w, grid_h = self.size_of(width, height)
        scale = min(grid_w / width, grid_h / height)
        inner_w = max(1, min(grid_w, round(width * scale)))
        inner_h = max(1, min(grid_h, round(height * scale)))
        canvas = Image.new(image.mode, (grid_w, grid_h), 0 if image.mode == "L" else (0, 0, 0))
        corner = ((grid_w - inner_w) // 2, (grid_h - inner_h) // 2)
        canvas.paste(image.resize((inner_w, inner_h), bicubic), corner)
        return canvas


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)


def best_resolution(
    width: int, height: int, pinpoints: tuple[tuple[int, int], ...]
) -> tuple[int, int]:
    """LLaVA-NeXT's choice of grid (height, width) for an image: the one that keeps the most
    of the image's pixels once scaled into it, then the one that wastes the least."""
    best, kept_best, waste_best = pinpoints[0], -1, float("inf")
    for grid_h, grid_w in pinpoints:
        scale = min(grid_w / width, grid_h / height)
        kept = min(int(width * scale) * int(height * scale), width * height)
        waste = grid_w * grid_h - kept
        if kept > kept_best or (kept == kept_best and waste < waste_best):
            best, kept_best, waste_best = (grid_h, grid_w), kept, waste
    return best


__all__ = ["Fit", "InputView", "best_resolution"]
