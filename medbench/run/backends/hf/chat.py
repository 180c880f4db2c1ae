"""Chat conversations in the transformers format, with the system prompt where the spec says."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from medbench.errors import BackendError
from medbench.spec import ModelSpec

Conversation = list[dict[str, Any]]

SYSTEM_PROBE = "medbench-system-probe"


def conversation(
    system: str | None,
    text: str,
    images: Sequence[Image.Image | None] = (),
    *,
    system_role: bool = True,
    text_only: bool = False,
) -> Conversation:
    """One user turn (images first, then text), after an optional system turn.

    Without `system_role` the system prompt is folded into the start of the user text.
    Text-only models get plain string contents, which every tokenizer template accepts.
    An image given as None is a placeholder: the template renders it, nothing decodes it.
    """
    if system and not system_role:
        text = f"{system}\n\n{text}"
        system = None
    turns: Conversation = []
    if system:
        turns.append({"role": "system", "content": system if text_only else [_text(system)]})
    content: Any = text if text_only else [*map(_image, images), _text(text)]
    turns.append({"role": "user", "content": content})
    return turns


def model_conversation(
    spec: ModelSpec,
    system_role: bool,
    system: str | None,
    text: str,
    images: Sequence[Image.Image | None] = (),
) -> Conversation:
    """The conversation `spec` gets: its `system_prompt` setting applied (dropped for `none`,
    folded into the user text unless `system_role`)."""
    return conversation(
        None if spec.system_prompt == "none" else system,
        text,
        images,
        system_role=system_role,
        text_only=spec.text_only,
    )


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def _image(image: Image.Image | None) -> dict[str, Any]:
    return {"type": "image"} if image is None else {"type": "image", "image": image}


def supports_system_role(render: Callable[[Conversation], str], *, text_only: bool = False) -> bool:
    """Whether a chat template keeps a system turn: it renders one, and the system text shows.

    A template that folds the system turn into the first user turn itself (Gemma 3) counts as
    supporting it; one that raises on a system role (Mistral v0.1) or drops it does not.
    """
    probe = conversation(SYSTEM_PROBE, "hello", text_only=text_only)
    try:
        rendered = render(probe)
    except Exception:  # templates signal an unsupported role with raise_exception or any error
        return False
    return SYSTEM_PROBE in rendered


def system_role(spec: ModelSpec, render: Callable[[Conversation], str]) -> bool:
    """Whether a system prompt goes in a system turn, as the spec's `system_prompt` says.

    `template` needs a chat template that keeps a system turn: one that refuses or drops it would
    silently change what the model is asked, so it is an error that names the other settings.
    """
    if spec.system_prompt != "template":
        return False
    if not supports_system_role(render, text_only=spec.text_only):
        raise BackendError(
            f"model {spec.id}: its chat template refuses or drops a system turn, but the spec "
            "says `system_prompt: template`. Set `system_prompt: fold_into_user` (the system "
            "text goes at the start of the user turn) or `none` (it is dropped)."
        )
    return True


def pad_colour(processor: Any) -> tuple[int, int, int]:
    """The colour square padding fills with: the image processor's mean, as 8-bit RGB
    (what the original LLaVA code pads with), or black when the processor has no mean."""
    mean = getattr(getattr(processor, "image_processor", None), "image_mean", None)
    if not mean or len(mean) != 3:
        return (0, 0, 0)
    # truncated, not rounded, like the original code: CLIP's mean becomes (122, 116, 104)
    red, green, blue = (int(float(channel) * 255) for channel in mean)
    return (red, green, blue)


def image_processor_name(processor: Any) -> str | None:
    """`backend:Class` of a processor's image processor: transformers picks torchvision when it
    is installed, else PIL, and the two resize differently. None for a tokenizer."""
    image = getattr(processor, "image_processor", None)
    if image is None:
        return None
    bases = {cls.__name__ for cls in type(image).__mro__}
    backend = next(
        (name for base, name in _BACKENDS if base in bases), type(image).__module__.split(".")[0]
    )
    return f"{backend}:{type(image).__name__}"


_BACKENDS = (("TorchvisionBackend", "torchvision"), ("PilBackend", "pil"))
