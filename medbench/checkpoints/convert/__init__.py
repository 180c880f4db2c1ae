"""Convert checkpoints that transformers cannot load into its own layout.

`import medbench.checkpoints.convert` is cheap: torch, safetensors and transformers load only
in a conversion.
"""

from __future__ import annotations

from medbench.checkpoints.convert.errors import ConversionError
from medbench.checkpoints.convert.llava_med import (
    CONVERTER_VERSION,
    MARKER,
    Conversion,
    convert_llava_med,
)

__all__ = ["CONVERTER_VERSION", "MARKER", "ConversionError", "Conversion", "convert_llava_med"]
