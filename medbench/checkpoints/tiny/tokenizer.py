"""Tiny tokenizers: a byte-level BPE trained on medical sentences, and real chat templates."""

from __future__ import annotations

from typing import Any

VOCAB_SIZE = 800
"""The most tokens a tokenizer may have; the corpus runs out of merges at about 660."""
LLAMA_SPECIALS = ("<unk>", "<s>", "</s>", "<pad>", "<image>")
GEMMA_SPECIALS = (
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
)


# Sets `text` (the text parts joined) and `images` (their number) for `message`; a string works too.
_TEXT_OF_MESSAGE = r"""
{%- if message['content'] is string -%}
    {%- set text = message['content'] -%}{%- set images = 0 -%}
{%- else -%}
    {%- set parts = message['content'] -%}
    {%- set texts = parts | selectattr('type', 'equalto', 'text') | map(attribute='text') -%}
    {%- set text = texts | join(' ') -%}
    {%- set images = parts | selectattr('type', 'equalto', 'image') | list | length -%}
{%- endif -%}
"""
_TEMPLATES = {
    # LLaVA-1.5 (Vicuna) style; a system message is a preamble before the first USER turn.
    "vicuna": r"""
{{- bos_token -}}
{%- for message in messages -%}
    TEXT_OF_MESSAGE
    {%- if message['role'] == 'system' -%}
        {{- text + '\n\n' -}}
    {%- elif message['role'] == 'user' -%}
        {{- 'USER: ' + '<image>\n' * images + text + ' ' -}}
    {%- elif message['role'] == 'assistant' -%}
        {{- 'ASSISTANT: ' + text + eos_token -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}
""",
    # LLaVA-NeXT (Mistral) style: [INST] turns, a system message between <<SYS>> markers.
    "mistral": r"""
{{- bos_token -}}
{%- for message in messages -%}
    TEXT_OF_MESSAGE
    {%- if message['role'] == 'system' -%}
        {{- '<<SYS>>\n' + text + '\n<</SYS>>\n\n' -}}
    {%- elif message['role'] == 'user' -%}
        {{- '[INST] ' + '<image>\n' * images + text + ' [/INST]' -}}
    {%- elif message['role'] == 'assistant' -%}
        {{- ' ' + text + eos_token -}}
    {%- endif -%}
{%- endfor -%}
""",
    # Gemma 3 style: no system turn of its own; the template folds it into the first user turn.
    "gemma": r"""
{{- bos_token -}}
{%- if messages[0]['role'] == 'system' -%}
    {%- set message = messages[0] -%}
    TEXT_OF_MESSAGE
    {%- set first_user_prefix = text + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = '' -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
    {{- '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') -}}
    {%- if message['content'] is string -%}
        {{- message['content'] | trim -}}
    {%- else -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{- '<start_of_image>' -}}
            {%- elif item['type'] == 'text' -%}
                {{- item['text'] | trim -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '<end_of_turn>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}
""",
}
CHAT_TEMPLATES: dict[str, str] = {
    name: template.replace("TEXT_OF_MESSAGE", _TEXT_OF_MESSAGE.strip()).strip()
    for name, template in _TEMPLATES.items()
}

# The label words of the four tasks, and the modalities they are asked about.
_LABELS = """\
glioma
meningioma
no tumor
pituitary tumor
normal
pneumonia
benign
malignant
adenocarcinoma
benign lung tissue
squamous cell carcinoma
yes
no
""".splitlines()
_MODALITIES = """\
brain MRI
chest X-ray
skin lesion photograph
dermoscopy image
histopathology slide
lung tissue sample
""".splitlines()
_PATTERNS = (
    "Does this {modality} show {label}?",
    "This {modality} shows {label}.",
    "The most likely diagnosis for the {modality} is {label}.",
    "Answer: {label}",
)
_ENGLISH = """\
You are an expert radiologist.
You are a helpful medical assistant.
Look at the image carefully and answer with one word.
Answer with one of the options.
I cannot answer that question.
I am not able to give a diagnosis from this image.
The image is not clear enough to decide.
Please consult a doctor.
Describe what you see in the image.
There is a bright mass near the center of the scan.
The lungs are clear and there is no consolidation.
Focal consolidation, air bronchograms and a pleural effusion.
The lesion has irregular borders and uneven colour.
Glands are crowded with atypical nuclei and the cells are arranged in sheets.
USER: What is shown here? ASSISTANT: The image shows tissue.
[INST] Is there a tumour? [/INST] No, there is no tumour.
The patient is a child with fever and cough.
It is likely, but not certain.
A. yes B. no C. maybe
The answer is A.
""".splitlines()


def corpus() -> list[str]:
    """A few hundred sentences of medical and plain English the tiny tokenizers are trained on."""
    sentences = [
        pattern.format(modality=modality, label=label)
        for pattern in _PATTERNS
        for modality in _MODALITIES
        for label in _LABELS
    ]
    return sentences + list(_ENGLISH) + ["Answer with one of: " + ", ".join(_LABELS) + "."]


def train_tokenizer(specials: tuple[str, ...], template: str, **named: str) -> Any:
    """A byte-level BPE tokenizer trained on the corpus, left padding, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token=named.get("unk_token")))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus(), trainer)
    extra = {
        k: v
        for k, v in named.items()
        if k not in {"bos_token", "eos_token", "unk_token", "pad_token"}
    }
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        bos_token=named["bos_token"],
        eos_token=named["eos_token"],
        unk_token=named["unk_token"],
        pad_token=named["pad_token"],
        extra_special_tokens=extra,
        padding_side="left",
        model_max_length=512,
        chat_template=template,
    )


def llama_tokenizer(template: str) -> Any:
    return train_tokenizer(
        LLAMA_SPECIALS,
        template,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        image_token="<image>",
    )
