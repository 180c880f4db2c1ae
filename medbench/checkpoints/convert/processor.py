"""LLaVA-Med's preprocessing as a transformers LlavaProcessor: square padding, CLIP, its prompt.

The original code (`llava/mm_utils.py`, `llava/conversation.py` of microsoft/LLaVA-Med) pads an
image to a square with the CLIP mean colour, preprocesses it with the tower's CLIPImageProcessor,
and wraps the question as `[INST] <image>\\n{question} [/INST]` (`conv_mistral_instruct`: LLaMA-2
separators, an empty system prompt, `</s>` after each answer). transformers' LlavaImageProcessor
with `do_pad=True` pads to a square with `image_mean` before resizing, which is the same operation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medbench.checkpoints.convert.errors import ConversionError
from medbench.checkpoints.convert.source import read_json

IMAGE_TOKEN = "<image>"
ORIGINAL_IMAGE_INDEX = -200
"""The placeholder id the original code splices image features at (`IMAGE_TOKEN_INDEX`)."""
CHECK_QUESTION = "What does this image show?"

# LLaMA-2 separators as `conv_mistral_instruct` renders them: a system prompt (empty in LLaVA-Med)
# goes between <<SYS>> markers at the start of the first user turn, images come first in a turn.
CHAT_TEMPLATE = r"""
{{- bos_token -}}
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
    {%- if message['content'] is string -%}
        {%- set text = message['content'] -%}{%- set images = 0 -%}
    {%- else -%}
        {%- set parts = message['content'] -%}
        {%- set texts = parts | selectattr('type', 'equalto', 'text') | map(attribute='text') -%}
        {%- set text = texts | join(' ') -%}
        {%- set images = parts | selectattr('type', 'equalto', 'image') | list | length -%}
    {%- endif -%}
    {%- set text = text | trim -%}
    {%- if message['role'] == 'system' -%}
        {%- if text -%}{%- set ns.system = '<<SYS>>\n' + text + '\n<</SYS>>\n\n' -%}{%- endif -%}
    {%- elif message['role'] == 'user' -%}
        {{- '[INST] ' + ns.system + '<image>\n' * images + text + ' [/INST]' -}}
        {%- set ns.system = '' -%}
    {%- elif message['role'] == 'assistant' -%}
        {{- ' ' + text + ' ' + eos_token -}}
    {%- endif -%}
{%- endfor -%}
""".strip()

_CLIP_FIELDS = (
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "do_convert_rgb",
)


def load_tokenizers(src: Path) -> tuple[Any, Any]:
    """SRC's tokenizer as it is, and a copy with `<image>` added as a special token."""
    from transformers import AutoTokenizer

    try:
        original = AutoTokenizer.from_pretrained(src, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(
            src, local_files_only=True, extra_special_tokens={"image_token": IMAGE_TOKEN}
        )
    except Exception as e:  # from_pretrained fails in many ways; the user needs the reason
        raise ConversionError(f"{src}: cannot load the tokenizer: {type(e).__name__}: {e}") from e
    if tokenizer.eos_token_id is None or tokenizer.bos_token_id is None:
        raise ConversionError(f"{src}: the tokenizer has no bos or eos token (<s>, </s>)")
    tokenizer.chat_template = CHAT_TEMPLATE
    for how_it_was_loaded in ("local_files_only", "is_local"):  # not settings of the tokenizer
        tokenizer.init_kwargs.pop(how_it_was_loaded, None)
    return original, tokenizer


def match_original_spacing(tokenizer: Any) -> bool:
    """Put the word-start mark `▁` before every stretch of text, as the original code's tokenizer
    did; True if that changed anything.

    transformers 4's Llama/Mistral tokenizer (the original code's) marked the start of each stretch
    of text between special tokens, so `<s>[INST]` read `<s> ▁[INST]`, and the original code
    tokenized the text before and after `<image>` separately, each with its own mark. transformers
    5 marks only the start of the whole input unless the tokenizer is `legacy`.
    """
    from tokenizers import pre_tokenizers

    backend: Any = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if not isinstance(pre, pre_tokenizers.Metaspace) or pre.prepend_scheme != "first":
        return False
    pre.prepend_scheme = "always"
    backend.pre_tokenizer = pre
    # LlamaTokenizer rebuilds its pre-tokenizer from `legacy` when it is loaded again.
    tokenizer.legacy = True
    tokenizer.init_kwargs["legacy"] = True
    return True


def tower_config(folder: Path) -> Any:
    """The CLIPVisionConfig of the tower (the vision part of a full CLIP config)."""
    from transformers import CLIPVisionConfig

    path = folder / "config.json"
    model_type = read_json(path).get("model_type")
    if model_type not in ("clip", "clip_vision_model"):
        raise ConversionError(
            f"{path}: model_type is {model_type!r}, only CLIP vision towers "
            "('clip' or 'clip_vision_model') are supported"
        )
    return CLIPVisionConfig.from_pretrained(folder, local_files_only=True)


def image_processor(folder: Path, image_size: int) -> Any:
    """The tower's CLIP preprocessing, preceded by square padding with the mean colour."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    path = folder / "preprocessor_config.json"
    if not path.is_file():
        raise ConversionError(
            f"{path}: not found; the vision tower folder needs the CLIP image processor "
            "config that the original code preprocesses with"
        )
    clip = CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True)
    fields = {k: v for k, v in clip.to_dict().items() if k in _CLIP_FIELDS}
    # The PIL backend, like the original code's CLIPImageProcessor, resizes with PIL.
    processor = LlavaImageProcessorPil(**fields, do_pad=True)
    out = fields["crop_size"] if fields.get("do_center_crop", True) else fields["size"]
    sides = {out.get("height"), out.get("width")} if "height" in out else {out.get("shortest_edge")}
    if sides != {image_size}:
        raise ConversionError(
            f"{path}: preprocessing makes {sorted(map(str, sides))} px images, but the tower's "
            f"config expects {image_size} px"
        )
    return processor


def build_processor(tokenizer: Any, images: Any, *, patch_size: int, strategy: str) -> Any:
    """A LlavaProcessor that expands `<image>` into one token per patch (CLS dropped by default)."""
    from transformers.models.llava.processing_llava import LlavaProcessor

    return LlavaProcessor(  # type: ignore[no-untyped-call]
        image_processor=images,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy=strategy,
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )


def original_input_ids(prompt: str, tokenizer: Any) -> list[int]:
    """The ids the original code feeds its model: each text chunk tokenized alone, BOS once,
    `ORIGINAL_IMAGE_INDEX` where `<image>` was (`tokenizer_image_token` in `llava/mm_utils.py`)."""
    chunks = [list(tokenizer(chunk).input_ids) for chunk in prompt.split(IMAGE_TOKEN)]
    bos = tokenizer.bos_token_id
    offset = 1 if chunks and chunks[0] and chunks[0][0] == bos else 0
    ids = [bos] if offset else []
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(ORIGINAL_IMAGE_INDEX)
        ids.extend(chunk[offset:])
    return ids


def converted_input_ids(processor: Any, question: str) -> list[int]:
    """The ids the converted processor makes of one image and `question`, before the image
    placeholder is expanded into one token per patch; the placeholder is `ORIGINAL_IMAGE_INDEX`."""
    turn = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
    text = processor.apply_chat_template([turn], add_generation_prompt=True, tokenize=False)
    tokenizer = processor.tokenizer
    starts_with_bos = bool(tokenizer.bos_token) and text.startswith(tokenizer.bos_token)
    ids = tokenizer(text, add_special_tokens=not starts_with_bos).input_ids
    return [ORIGINAL_IMAGE_INDEX if i == processor.image_token_id else int(i) for i in ids]


def check_prompt_tokens(original: Any, processor: Any) -> None:
    """Refuse a conversion whose chat template does not tokenize like the original code."""
    expected = original_input_ids(f"[INST] {IMAGE_TOKEN}\n{CHECK_QUESTION} [/INST]", original)
    got = converted_input_ids(processor, CHECK_QUESTION)
    if got == expected:
        return
    at = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), None)
    at = min(len(got), len(expected)) if at is None else at

    def tokens(ids: list[int]) -> list[str]:
        window = ids[max(0, at - 2) : at + 3]
        return [
            IMAGE_TOKEN if i == ORIGINAL_IMAGE_INDEX else original.convert_ids_to_tokens(i)
            for i in window
        ]

    raise ConversionError(
        "the converted chat template tokenizes the LLaVA-Med prompt differently from the original "
        f"code (first difference at token {at}: converted {tokens(got)}, original "
        f"{tokens(expected)}); converting would change the model's inputs"
    )
