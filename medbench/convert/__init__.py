"""Convert checkpoints that transformers cannot load into its own layout.

`import medbench.convert` is cheap: torch, safetensors and transformers load only in a conversion.
"""

from __future__ import annotations

from medbench.convert.errors import ConversionError
from medbench.convert.llava_med import CONVERTER_VERSION, MARKER, Conversion, convert_llava_med

__all__ = ["CONVERTER_VERSION", "MARKER", "ConversionError", "Conversion", "convert_llava_med"]
