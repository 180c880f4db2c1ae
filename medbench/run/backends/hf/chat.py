"""Chat conversations in the transformers format, with the system prompt where the spec says
and the image where the prompt variant says."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from medbench.errors import BackendError
from medbench.spec import Messages, ModelSpec

Conversation = list[dict[str, Any]]

SYSTEM_PROBE = "medbench-system-probe"
IMAGE_PROBE = "medbench-image-probe"


def conversation(
    system: str | None,
    text: str,
    images: Sequence[Image.Image | None] = (),
    *,
    system_role: bool = True,
    text_only: bool = False,
    image_after: bool = False,
) -> Conversation:
    """One user turn (images first, then text; text first with `image_after`), after an
    optional system turn.

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
    parts = list(map(_image, images))
    content: Any = (
        text if text_only else [_text(text), *parts] if image_after else [*parts, _text(text)]
    )
    turns.append({"role": "user", "content": content})
    return turns


def model_conversation(
    spec: ModelSpec,
    system_role: bool,
    messages: Messages,
    images: Sequence[Image.Image | None] = (),
    image_token: str | None = None,
) -> Conversation:
    """The conversation `spec` gets for `messages`: its `system_prompt` setting applied (dropped
    for `none`, folded into the user text unless `system_role`), the images where the messages
    place them.

    `image_token`: the model's image token where its chat template writes every image before
    the text whatever their order (`hoisted_image_token`). Images after the text then go into the
    user text as that token after a line break, as LLaVA's own code writes its image token, and
    the conversation holds no image parts: the caller gives the images to the processor itself
    (`inlined`).
    """
    text = messages.text
    if inlined(messages, images, image_token):
        text = "\n".join([text, *[str(image_token)] * len(images)])
        images = ()
    return conversation(
        None if spec.system_prompt == "none" else messages.system,
        text,
        images,
        system_role=system_role,
        text_only=spec.text_only,
        image_after=messages.image_after,
    )


def inlined(
    messages: Messages, images: Sequence[Image.Image | None], image_token: str | None
) -> bool:
    """Whether `model_conversation` writes the images into the user text as `image_token`."""
    return image_token is not None and messages.image_after and bool(images)


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


def hoisted_image_token(render: Callable[[Conversation], str], processor: Any) -> str | None:
    """The processor's image token when the chat template writes images before the text
    whatever their order in the content (llava-hf's LLaVA-1.5 and LLaVA-NeXT templates "render
    all images first"), else None (Gemma 3's follows the order).

    The probe renders one text with and without an image after it: where the two renderings
    part is where the template put the image.
    """
    token = getattr(processor, "image_token", None)
    if not isinstance(token, str) or not token:
        return None
    try:
        with_image = render(conversation(None, IMAGE_PROBE, [None], image_after=True))
        without = render(conversation(None, IMAGE_PROBE))
    except Exception:  # a template that cannot render an image has no order to follow
        return None
    parted = len(os.path.commonprefix([with_image, without]))
    return token if parted <= without.find(IMAGE_PROBE) else None


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
