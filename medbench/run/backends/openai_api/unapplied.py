"""What of a model spec an OpenAI-compatible endpoint applies itself, out of medbench's reach.

The openai backend applies the hf backend's settings that live in the request (the system text
folded or dropped, the image's place among the content parts, the square padding of its bytes);
the rest happens on the server, and `medbench validate` names it for each `openai` model.
"""

from __future__ import annotations

from medbench.run.views import CLIP_FILL
from medbench.spec import ModelSpec


def unapplied_settings(spec: ModelSpec) -> tuple[str, ...]:
    """What of `spec` cannot be applied client-side, one phrase each; empty for other backends."""
    if spec.backend != "openai":
        return ()
    found = ["the chat template (the server renders the messages with its own, unchecked)"]
    if spec.system_prompt == "template":
        found.append(
            "`system_prompt: template` (a system message is sent; whether the server's template "
            "keeps it is not checked, as the hf backend checks it)"
        )
    if not spec.text_only:
        found.append(
            "the image processor's resizing (the server's processor makes the model's input)"
        )
        found.append(
            "an image after the text where the server's template writes images first "
            "(llava-hf's do): the image part is sent after the text"
        )
        if spec.image_preprocess != "processor":
            fill = ", ".join(map(str, CLIP_FILL))
            found.append(f"the processor's mean colour (the padding uses CLIP's, ({fill}))")
    if spec.dtype != "auto":
        found.append(f"`dtype: {spec.dtype}` (the server's own)")
    return tuple(found)


__all__ = ["unapplied_settings"]
