"""Options are scored as the reply each model's own chat template writes (SentencePiece-style
tokenizer, templates structured as the real LLaVA-1.5, LLaVA-NeXT Mistral and Gemma 3 ones)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from medbench.checkpoints.tiny.tokenizer import CHAT_TEMPLATES, corpus
from medbench.run.backends.hf.chat import conversation
from medbench.run.backends.hf.replies import case_forms, combine_forms, reply_continuation

LLAVA_15 = (  # llava-hf/llava-1.5-7b-hf's chat_template.json
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
LLAVA_NEXT_MISTRAL = (  # llava-hf/llava-v1.6-mistral-7b-hf's, its `<\s> ` typo included
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\\n' + message['content'][0]['text'] + '\\n<</SYS>>\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{{' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '<\\\\s> '}}"
    "{% endif %}{% endfor %}"
)
TEMPLATES = {
    "llava-1.5": LLAVA_15,
    "llava-next-mistral": LLAVA_NEXT_MISTRAL,
    "gemma3": CHAT_TEMPLATES["gemma"],  # `<start_of_turn>model\n`, the reply, `<end_of_turn>\n`
}
REPLY = {"llava-1.5": " {}", "llava-next-mistral": " {}", "gemma3": "{}"}
"""The continuation each template writes for a reply: after `ASSISTANT:` and `[/INST]` a space
(SentencePiece's `▁`), after Gemma's `model\\n` none."""


@pytest.fixture(scope="module")
def sentencepiece() -> Any:
    """A Llama-style SentencePiece tokenizer (BPE over `▁`-marked words, Metaspace)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<start_of_turn>", "<end_of_turn>"]
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False)
    lines = [*corpus(), *(f"{w} {w.capitalize()} yes. No." for w in ("yes", "no", "glioma"))]
    backend.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


def pieces(tokenizer: Any, prompt: str, continuation: str) -> list[str]:
    """The tokens `prompt + continuation` adds after the prompt's own."""
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full = tokenizer(prompt + continuation, add_special_tokens=False)["input_ids"]
    assert full[: len(head)] == head
    return list(tokenizer.convert_ids_to_tokens(full[len(head) :]))


@pytest.mark.parametrize("name", sorted(TEMPLATES))
@pytest.mark.parametrize("option", ["yes", "Yes", "no tumor"])
def test_reply_continuation_is_what_the_template_writes_for_the_reply(
    name: str, option: str, sentencepiece: Any
) -> None:
    sentencepiece.chat_template = TEMPLATES[name]
    render = sentencepiece.apply_chat_template
    turns = conversation(None, "Is there a tumour? Answer yes or no.", [None])
    prompt = render(turns, add_generation_prompt=True, tokenize=False)
    reply = reply_continuation(render, turns, prompt, option, text_only=False)
    assert reply == REPLY[name].format(option)
    scored = pieces(sentencepiece, prompt, reply)
    if name != "gemma3":  # the word-initial piece, never the mid-word one appending gives
        assert scored[0].startswith("▁") and scored != pieces(sentencepiece, prompt, option)
    assert "".join(scored).replace("▁", " ").lstrip() == option.lstrip()


def test_reply_continuation_refuses_a_template_whose_reply_does_not_continue_its_prompt(
    sentencepiece: Any,
) -> None:
    sentencepiece.chat_template = LLAVA_15.replace("'ASSISTANT:'", "'ASSISTANT: '")
    render = sentencepiece.apply_chat_template
    turns = conversation(None, "Is there a tumour?", [None])
    prompt = render(turns, add_generation_prompt=True, tokenize=False)
    sentencepiece.chat_template = LLAVA_15.replace("'ASSISTANT:'", "'ASSISTANT: '").replace(
        "message['role'].upper() + ': '", "message['role'].upper() + ':'"
    )
    with pytest.raises(ValueError, match=r"^the chat template's assistant turn does not"):
        reply_continuation(render, turns, prompt, "yes", text_only=False)


def test_case_forms_are_the_option_as_offered_and_capitalised() -> None:
    assert case_forms("yes") == ("yes", "Yes")
    assert case_forms("no tumor") == ("no tumor", "No tumor")
    assert case_forms("Pneumonia") == ("Pneumonia",)
    assert case_forms("B") == ("B",)


def test_combine_forms_log_sum_exps_each_options_forms() -> None:
    totals = [math.log(0.2), math.log(0.3), math.log(0.1)]
    combined, counts, best = combine_forms([2, 1], totals, [[1], [2, 3], [4]])
    assert combined == pytest.approx([math.log(0.5), math.log(0.1)])
    assert (counts, best) == ([2, 1], [1, 2])


class _TemplateOnly:
    """Just enough of an HFBackend for OptionScorer to encode a text-only request's options."""

    def __init__(self, tokenizer: Any) -> None:
        from types import SimpleNamespace

        self._loaded = SimpleNamespace(tokenizer=tokenizer, processor=tokenizer)
        self.spec = SimpleNamespace(text_only=False)

    def _padded(self, messages: Any, images: list[Any]) -> list[Any]:
        return images

    def _conversation(self, messages: Any, images: list[Any]) -> Any:
        return conversation(messages.system, messages.text, images)

    def _row(self, index: int, messages: Any, images: list[Any]) -> Any:
        return None

    def _encode(self, rows: Any) -> dict[str, Any]:
        return {}

    def _render(self, turns: Any) -> str:
        return str(
            self._loaded.processor.apply_chat_template(
                turns, add_generation_prompt=True, tokenize=False
            )
        )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("llava-1.5", [["▁yes"], ["▁Yes"], ["▁no"], ["▁No"]]),
        ("llava-next-mistral", [["▁yes"], ["▁Yes"], ["▁no"], ["▁No"]]),
    ],
)
def test_option_scorer_encodes_each_case_form_as_the_templates_reply(
    name: str, expected: list[list[str]], sentencepiece: Any
) -> None:
    from medbench.run.backends.base import Request
    from medbench.run.backends.hf.likelihood import OptionScorer
    from medbench.spec.prompts import Messages

    sentencepiece.chat_template = TEMPLATES[name]
    request = Request(
        "k", Messages(None, "Is there a tumour? Answer yes or no.", ()), ("yes", "no")
    )
    encoded = OptionScorer(_TemplateOnly(sentencepiece))._encode(0, request)  # type: ignore[arg-type]
    assert encoded.forms == [2, 2] and encoded.merged == [False] * 4
    assert [sentencepiece.convert_ids_to_tokens(span) for span in encoded.spans] == expected
