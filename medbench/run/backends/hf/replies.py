"""What an option is scored as: the reply the model's own chat template writes for it.

Appending an option's text to the generation prompt scores tokens a model never produces where
its template separates the reply (`ASSISTANT:` then ` yes`, `[/INST]` then ` yes`): with a
SentencePiece tokenizer the mid-word piece `yes` instead of `▁yes`. So the conversation is
rendered once more with the option as the assistant's turn, and the option's continuation is
what that rendering adds beyond the generation prompt, from its start through the option's last
character: the template's separator is included, whatever it writes after the reply (an
end-of-turn token, a space) is not, so that an option that starts another (`no`, `no tumor`)
is scored by the same tokens as the start of the longer one.

Case forms: models answer "Yes" or "Pneumonia" where options are offered as "yes" or
"pneumonia". An option's score is the log-sum-exp of the scores of its forms: the option as
offered and, when it differs, the option with its first letter capitalised (sentence-initial).
Its token count (for the per-token mean) is that of its most likely form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Turns = list[dict[str, Any]]


def case_forms(option: str) -> tuple[str, ...]:
    """The forms of an option a model would write: as offered, then capitalised if different."""
    return tuple(dict.fromkeys((option, option[:1].upper() + option[1:])))


def reply_continuation(render: Any, turns: Turns, prompt: str, option: str, text_only: bool) -> str:
    """The text the chat template adds beyond the generation prompt `prompt` (the rendering of
    `turns` with the generation prompt) when the assistant replies `option`, through the
    option's last character. `render` is the processor's (or tokenizer's) `apply_chat_template`.
    Raises ValueError where the template's reply does not continue its generation prompt."""
    reply = {"role": "assistant", "content": option if text_only else [_text(option)]}
    full = str(render([*turns, reply], add_generation_prompt=False, tokenize=False))
    if not full.startswith(prompt):
        raise ValueError(
            "the chat template's assistant turn does not continue its generation prompt "
            f"(it renders {full[len(_common(full, prompt)) :][:40]!r} where the prompt has "
            f"{prompt[len(_common(full, prompt)) :][:40]!r})"
        )
    added = full[len(prompt) :]
    end = added.find(option)
    if end < 0:
        raise ValueError(f"the chat template does not write the reply {option!r} as given")
    return added[: end + len(option)]


def combine_forms(
    forms: Sequence[int], totals: Sequence[float], spans: Sequence[Sequence[int]]
) -> tuple[list[float], list[int], list[int]]:
    """Per option (its `forms` consecutive rows): the log-sum-exp of its forms' totals, the
    token count of its most likely form and that form's row index."""
    combined, counts, best_rows = [], [], []
    row = 0
    for k in forms:
        group = list(totals[row : row + k])
        best = max(range(k), key=lambda j: group[j])
        top = group[best]
        combined.append(top + math.log(sum(math.exp(t - top) for t in group)))
        counts.append(len(spans[row + best]))
        best_rows.append(row + best)
        row += k
    return combined, counts, best_rows


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def _common(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


__all__ = ["case_forms", "combine_forms", "reply_continuation"]
