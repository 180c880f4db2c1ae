"""Each model's view of an image: the input geometry its processor makes of a file.

Image variants are applied to the image as the model receives it (see
`medbench.data.variants.views`), so planning needs every model's view without loading it.
It comes from the model spec's `image_input` where given, else from the family's documented
processor settings; a baseline or a text-only model sees no image (None), and so does a model
whose family has no rule (its variants are applied to the file as before).
"""

from __future__ import annotations

from medbench.data.variants import InputView
from medbench.run.cost.tokens import LLAVA_NEXT_PINPOINTS
from medbench.spec import ModelSpec

TINY_SIDE = 32
"""The input side of medbench's tiny test models (`medbench.checkpoints.tiny`)."""
TINY_PINPOINTS = ((32, 64), (64, 32), (64, 64), (96, 32), (32, 96))
"""The tiny LLaVA-NeXT's grid resolutions (height, width)."""
CLIP_FILL = (122, 116, 104)
"""CLIP's mean colour truncated to 8 bits: LLaVA's square padding."""
CLIP_GREY = 114
"""`int(255 * mean(CLIP's mean))`: LLaVA-Med's padding of a greyscale file."""
API_SHORTEST, API_LONGEST = 768, 2048
"""OpenAI's documented high-detail rule: within 2048 x 2048, then the shortest side 768."""


def input_view(spec: ModelSpec) -> InputView | None:
    """The view `spec`'s processor takes of an image, or None where it sees no image or its
    geometry is unknown."""
    if spec.backend == "baseline" or spec.text_only:
        return None
    given = spec.image_input
    if given is not None:
        if given.fit == "file":
            return None
        if given.fit == "pad":
            return InputView("pad", given.width, given.height, fill=CLIP_FILL)
        return InputView(given.fit, given.width, given.height)
    if spec.backend == "openai":
        return InputView("shortest", API_SHORTEST, API_LONGEST)
    tiny = spec.tiny is not None
    if spec.family == "gemma3":
        side = TINY_SIDE if tiny else 896
        return InputView("squash", side, side)
    if spec.family == "llava":
        side = TINY_SIDE if tiny else 336
        if spec.image_preprocess == "pad_square":
            return InputView("pad", side, side, fill=CLIP_FILL)
        if spec.image_preprocess == "pad_square_grey":
            return InputView("pad", side, side, fill=CLIP_FILL, grey=CLIP_GREY)
        return InputView("crop", side, side)
    if spec.family == "llava_next":
        pinpoints = TINY_PINPOINTS if tiny else LLAVA_NEXT_PINPOINTS
        side = TINY_SIDE if tiny else 336
        return InputView("anyres", side, side, pinpoints=pinpoints)
    return None


__all__ = ["input_view"]
