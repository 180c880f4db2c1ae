"""Token budgets per request, and why each generated answer ended (`stop` or `length`).

A batch generates up to the largest budget among its rows; each row is then cut at its own
budget. Decoding is causal, so a row's first N tokens are those a generation limited to N
tokens gives: cutting changes nothing but where the answer stops.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

STOP = "stop"
"""The model ended its answer (an end-of-sequence token) within its budget."""
LENGTH = "length"
"""The answer was cut at its token budget: it is truncated."""


def batch_config(config: Any, budgets: Sequence[int]) -> Any:
    """The generation config for a batch: `config` with the largest of the rows' budgets."""
    longest = max(budgets)
    if longest == config.max_new_tokens:
        return config
    widened = copy.deepcopy(config)
    widened.max_new_tokens = longest
    return widened


def stop_ids(config: Any) -> set[int]:
    """The token ids that end an answer (the config's end-of-sequence ids)."""
    eos = config.eos_token_id
    if eos is None:
        return set()
    return {int(eos)} if isinstance(eos, int) else {int(i) for i in eos}


def cut_rows(
    new_tokens: Sequence[Sequence[int]], budgets: Sequence[int], stops: set[int]
) -> tuple[list[list[int]], list[str]]:
    """Each row's tokens through its end-of-sequence token or its budget, and why it ended:
    `stop` when it ended itself, `length` when its budget ran out first."""
    rows: list[list[int]] = []
    reasons: list[str] = []
    for tokens, budget in zip(new_tokens, budgets, strict=True):
        kept = [int(t) for t in tokens[:budget]]
        end = next((i for i, t in enumerate(kept) if t in stops), None)
        if end is not None:
            rows.append(kept[: end + 1])
            reasons.append(STOP)
        else:
            rows.append(kept)
            reasons.append(LENGTH if len(kept) >= budget else STOP)
    return rows, reasons


__all__ = ["LENGTH", "STOP", "batch_config", "cut_rows", "stop_ids"]
