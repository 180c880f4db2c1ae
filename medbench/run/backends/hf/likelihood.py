"""Option log-likelihoods: each offered option teacher-forced as the assistant's reply.

For one request (prompt and image) and its options, the prompt is encoded once through the
model's own chat template with the generation prompt, exactly as for generation; each option is
scored as the reply the template writes for it, in each of its case forms (`yes` and `Yes`; see
`medbench.run.backends.hf.replies`): a form's tokens are those that tokenising `prompt + reply`
adds after the prompt's tokens (checked: the prompt's tokens must be unchanged, else the reply
is tokenised alone), and an option's score is the log-sum-exp over its forms.

Two ways to run the model, equal to 1e-5 (`share_prefix`):
- shared prefix (the default): the prompt and image go through the model once per request,
  keeping the KV cache; the last prompt position's logits score every option's first token,
  and one more pass over the options' remaining tokens continues from that cache, expanded to
  one row per option (`Cache.batch_select_indices`). Single-token options (letters, yes/no)
  need no second pass. Requests whose prompts have the same length share both passes.
- full sequences: rows of prompt + option, right-padded (every real token keeps the position it
  has alone), all options of a request in one pass (several requests where they fit); the
  prompt is recomputed per option row.
A model whose forward pass returns no KV cache cannot share: its batch is scored again as
full sequences, and `unshared` says so. Gemma 3's sliding-window layers need no exception: a
window shorter than the prompt gives the same scores both ways (tested). Logits are kept only
at the positions that predict option tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

# This package is the backend that needs torch; it is imported only when a model is scored.
import torch  # noqa: TID253

from medbench.data import ImageError, load_image
from medbench.run.backends.base import OptionScores, Request
from medbench.run.backends.hf.backend import HFBackend
from medbench.run.backends.hf.prefix import TOKEN_FIELDS
from medbench.run.backends.hf.replies import case_forms, combine_forms, reply_continuation


@dataclass
class _Encoded:
    """One request encoded: the prompt's tensors and the token ids of each option's forms."""

    index: int
    prompt: dict[str, torch.Tensor]
    spans: list[list[int]]
    """One row per form of each option, options in order."""
    merged: list[bool]
    forms: list[int]
    """Per option, how many consecutive rows of `spans` are its forms."""


AUTO_ROWS = 8
"""Option rows per forward pass when the backend's batch size is automatic (it starts at 1
for generation; a pass that runs out of memory is split per request)."""


class OptionScorer:
    """Scores options with a loaded HFBackend; counts its forward passes (and the requests
    that could not share their prefix, with why)."""

    def __init__(
        self, backend: HFBackend, *, share_prefix: bool = True, case_forms: bool = True
    ) -> None:
        self.backend = backend
        self.share_prefix = share_prefix
        self.case_forms = case_forms
        """Score each option's case forms (log-sum-exp); off: the option as offered only."""
        self.forward_passes = 0
        self.unshared: dict[str, int] = {}
        """Why a request was scored as full sequences though sharing was asked -> how often."""

    @property
    def rows(self) -> int:
        """Option rows per forward pass: the backend's batch size, at least AUTO_ROWS when
        that size is automatic."""
        size = self.backend.batch_size
        return max(size, AUTO_ROWS) if self.backend.sizer.auto else size

    def score(self, requests: Sequence[Request]) -> list[OptionScores]:
        """The scores of every request's `options`, in order (a request's options are never
        split between passes; requests batched while their option rows fit the batch size)."""
        results: dict[int, OptionScores] = {}
        encoded: list[_Encoded] = []
        for index, request in enumerate(requests):
            try:
                encoded.append(self._encode(index, request))
            except (ImageError, ValueError) as e:
                results[index] = OptionScores(request.options, error=f"{type(e).__name__}: {e}")
        for batch, shared in self._plan(encoded):
            start = perf_counter()
            failure: str | None = None
            try:
                totals = self._forward_shared(batch) if shared else self._forward(batch)
            except torch.OutOfMemoryError as e:
                failure = str(e)
            if failure is not None:
                # Retried after the `except` block, as generation does: inside it, the
                # exception's traceback still holds the failed pass's frames and tensors.
                self.backend._release_memory()
                if len(batch) == 1:  # its options alone do not fit: record why
                    index = batch[0].index
                    error = f"out of memory scoring {len(batch[0].forms)} options: {failure}"
                    results[index] = OptionScores(requests[index].options, error=error)
                    continue
                for item in batch:  # retry the requests one by one (each still in one pass)
                    results[item.index] = self.score([requests[item.index]])[0]
                continue
            share = (perf_counter() - start) / len(batch)
            for item, total in zip(batch, totals, strict=True):
                options = requests[item.index].options
                combined, counts, best = combine_forms(item.forms, total, item.spans)
                results[item.index] = OptionScores(
                    options,
                    tuple(combined),
                    tuple(counts),
                    tuple(item.merged[row] for row in best),
                    seconds=share,
                )
        return [results[i] for i in range(len(requests))]

    def _plan(self, encoded: list[_Encoded]) -> list[tuple[list[_Encoded], bool]]:
        """The batches to score and whether each shares its prefix."""
        if not self.share_prefix:
            return [(batch, False) for batch in self._batches(encoded)]
        return [(batch, True) for batch in self._shared_batches(encoded)]

    def _shared_batches(self, encoded: list[_Encoded]) -> list[list[_Encoded]]:
        """Requests whose prompts have the same length and stackable images, in order of first
        appearance, cut where their option rows would pass the batch size."""
        groups: dict[tuple[Any, ...], list[list[_Encoded]]] = {}
        rows: dict[tuple[Any, ...], int] = {}
        for item in encoded:
            shapes = tuple((k, tuple(v.shape[1:])) for k, v in sorted(item.prompt.items()))
            key = (item.prompt["input_ids"].shape[1], shapes)
            batches = groups.setdefault(key, [])
            if batches and rows[key] + len(item.spans) <= self.rows:
                batches[-1].append(item)
                rows[key] += len(item.spans)
            else:
                batches.append([item])
                rows[key] = len(item.spans)
        return [batch for batches in groups.values() for batch in batches]

    def _batches(self, encoded: list[_Encoded]) -> list[list[_Encoded]]:
        """Consecutive requests whose option rows fit the batch size (a request never splits)
        and whose images can be stacked."""
        batches: list[list[_Encoded]] = []
        rows = 0
        for item in encoded:
            fits = batches and rows + len(item.spans) <= self.rows
            if fits and _stackable(batches[-1][0].prompt, item.prompt):
                batches[-1].append(item)
                rows += len(item.spans)
            else:
                batches.append([item])
                rows = len(item.spans)
        return batches

    def _encode(self, index: int, request: Request) -> _Encoded:
        backend = self.backend
        messages = request.messages
        if not request.options:
            raise ValueError("the request offers no options")
        if messages.images and backend.spec.text_only:
            raise ValueError(f"model {backend.spec.id} is text-only and cannot read images")
        images = [load_image(image.path) for image in messages.images]
        images = backend._padded(messages, images)  # the model's own handling, as in generation
        # its system-prompt handling and image placement too
        prompt = backend._encode([backend._row(index, messages, images)])
        placeholders = backend._conversation(messages, [None] * len(images))
        text = backend._render(placeholders)
        tokenizer = backend._loaded.tokenizer
        render = backend._loaded.processor.apply_chat_template
        head = _ids(tokenizer, text)
        spans: list[list[int]] = []
        merged: list[bool] = []
        forms: list[int] = []
        for option in request.options:
            written = case_forms(option) if self.case_forms else (option,)
            forms.append(len(written))
            for form in written:
                reply = reply_continuation(render, placeholders, text, form, backend.spec.text_only)
                full = _ids(tokenizer, text + reply)
                if full[: len(head)] == head and len(full) > len(head):
                    spans.append(full[len(head) :])
                    merged.append(False)
                else:  # the reply merged with the prompt's last characters: keep the prompt
                    spans.append(_ids(tokenizer, reply))
                    merged.append(True)
                if not spans[-1]:
                    raise ValueError(f"option {form!r} has no tokens")
        return _Encoded(index, prompt, spans, merged, forms)

    def _forward(self, batch: list[_Encoded]) -> list[list[float]]:
        """One forward pass over every option row of the batch; per request, per option, the
        sum of the option tokens' log-probabilities."""
        loaded = self.backend._loaded
        pad_id = loaded.tokenizer.pad_token_id or 0
        rows: list[tuple[_Encoded, list[int]]] = [
            (item, span) for item in batch for span in item.spans
        ]
        prompt_lengths = [item.prompt["input_ids"].shape[1] for item, _ in rows]
        length = max(n + len(span) for n, (_, span) in zip(prompt_lengths, rows, strict=True))
        ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        types = torch.zeros((len(rows), length), dtype=torch.long)
        has_types = "token_type_ids" in batch[0].prompt
        for r, ((item, span), n) in enumerate(zip(rows, prompt_lengths, strict=True)):
            ids[r, :n] = item.prompt["input_ids"][0]
            ids[r, n : n + len(span)] = torch.tensor(span, dtype=torch.long)
            mask[r, : n + len(span)] = 1
            if has_types:
                types[r, :n] = item.prompt["token_type_ids"][0]
        inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if has_types:
            inputs["token_type_ids"] = types
        for name in batch[0].prompt:
            if name not in inputs and name != "token_type_ids":
                # one copy of the request's image tensors per option row
                inputs[name] = torch.cat(
                    [item.prompt[name] for item in batch for _ in item.spans], dim=0
                )
        # Only positions that predict an option token need logits (a vocabulary wide each).
        wanted = sorted(
            {
                n - 1 + j
                for n, (_, span) in zip(prompt_lengths, rows, strict=True)
                for j in range(len(span))
            }
        )
        keep = torch.tensor(wanted, dtype=torch.long)
        on_device = self.backend.to_device(inputs)
        with torch.inference_mode():
            logits = loaded.model(**on_device, logits_to_keep=keep.to(loaded.device)).logits
        self.forward_passes += 1
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        column = {position: c for c, position in enumerate(wanted)}
        totals: dict[int, list[float]] = {}
        for r, ((item, span), n) in enumerate(zip(rows, prompt_lengths, strict=True)):
            picked = [logprobs[r, column[n - 1 + j], token] for j, token in enumerate(span)]
            totals.setdefault(id(item), []).append(float(torch.stack(picked).double().sum()))
        return [totals[id(item)] for item in batch]

    def _forward_shared(self, batch: list[_Encoded]) -> list[list[float]]:
        """The prompts (one length) in one pass keeping the KV cache, then every option's
        further tokens in one pass from that cache; per request, per option, the sum of the
        option tokens' log-probabilities."""
        loaded = self.backend._loaded
        model = loaded.model
        prompt = {
            name: torch.cat([item.prompt[name] for item in batch]) for name in batch[0].prompt
        }
        rows = [(b, span) for b, item in enumerate(batch) for span in item.spans]
        length = prompt["input_ids"].shape[1]
        rest = max(len(span) for _, span in rows) - 1
        with torch.inference_mode():
            out = model(**self.backend.to_device(prompt), use_cache=True, logits_to_keep=1)
            self.forward_passes += 1
            first = torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()
            picked: list[list[torch.Tensor]] = [[first[b, span[0]]] for b, span in rows]
            cache = out.past_key_values
            if rest > 0 and cache is None:
                why = "the model returned no KV cache"
                self.unshared[why] = self.unshared.get(why, 0) + len(batch)
                return self._forward(batch)
            if rest > 0:
                index = torch.tensor([b for b, _ in rows], dtype=torch.long)
                cache.batch_select_indices(index.to(loaded.device))  # a copy of it per option
                pad_id = loaded.tokenizer.pad_token_id or 0
                ids = torch.full((len(rows), rest), pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), length + rest), dtype=torch.long)
                mask[:, :length] = 1
                for r, (_, span) in enumerate(rows):
                    ids[r, : len(span) - 1] = torch.tensor(span[:-1], dtype=torch.long)
                    mask[r, length : length + len(span) - 1] = 1
                # No token_type_ids: the option tokens are text, as in generation after the
                # first step (Gemma 3's image attention lies wholly in the cached prompt).
                logits = model(
                    input_ids=ids.to(loaded.device),
                    attention_mask=mask.to(loaded.device),
                    past_key_values=cache,
                    use_cache=True,
                ).logits
                self.forward_passes += 1
                logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
                for r, (_, span) in enumerate(rows):
                    picked[r] += [logprobs[r, j - 1, span[j]] for j in range(1, len(span))]
        totals: dict[int, list[float]] = {}
        for (b, _), tokens in zip(rows, picked, strict=True):
            totals.setdefault(b, []).append(float(torch.stack(tokens).double().sum()))
        return [totals[b] for b in range(len(batch))]


def _ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of text that already holds its special tokens (the chat template's)."""
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def _stackable(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two requests' tensors can share a batch (same names, same image shapes)."""
    if a.keys() != b.keys():
        return False
    return all(a[k].shape[1:] == b[k].shape[1:] for k in a if k not in TOKEN_FIELDS)


__all__ = ["AUTO_ROWS", "OptionScorer", "OptionScores"]
