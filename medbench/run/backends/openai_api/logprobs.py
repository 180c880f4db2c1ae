"""Option log-likelihoods from an OpenAI-compatible endpoint's `logprobs`, where it returns them.

An endpoint has no teacher forcing: medbench asks for one answer token (`max_tokens=1`,
`logprobs=True`, `top_logprobs=20`) and reads the first token's alternatives. An option is
scored when it is one of them, its text equal to the token with leading whitespace removed
(`A` and ` A` both reply `A`: their probabilities are added). Any other option has a reason
instead of a score: `multi-token option` when an alternative is a proper prefix of it (its
further tokens' probabilities are never returned), else `option not among top_logprobs` (too
unlikely to be listed, or multi-token with an unlisted first token). Either way its probability
is unknown, so the likelihood stage leaves the family out for that model rather than score
only the images where every option happened to be listed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from medbench.run.backends.base import OptionScores, Output, Request
from medbench.run.backends.openai_api.backend import TOP_LOGPROBS, OpenAIBackend

MULTI_TOKEN = "multi-token option"
NOT_LISTED = f"option not among top_logprobs (the {TOP_LOGPROBS} most likely first tokens)"
NO_LOGPROBS = "the endpoint returned no logprobs"


def option_scores(options: tuple[str, ...], output: Output) -> OptionScores:
    """Each option's log-probability as the whole reply, from one answer's first-token
    `logprobs` (an error when the answer failed or carries none)."""
    if output.error is not None:
        return OptionScores(options, error=output.error, seconds=output.seconds)
    if output.logprobs is None:
        return OptionScores(options, error=NO_LOGPROBS, seconds=output.seconds)
    listed = [(token.lstrip(), value) for token, value in output.logprobs]
    total: list[float] = []
    unscored: list[str | None] = []
    for option in options:
        values = [value for text, value in listed if text == option]
        if values:
            top = max(values)
            total.append(top + math.log(sum(math.exp(v - top) for v in values)))
            unscored.append(None)
        else:
            prefix = any(text and option.startswith(text) for text, _ in listed)
            total.append(0.0)
            unscored.append(MULTI_TOKEN if prefix else NOT_LISTED)
    return OptionScores(
        options,
        tuple(total),
        tuple(1 if why is None else 0 for why in unscored),
        (False,) * len(options),
        seconds=output.seconds,
        unscored=tuple(unscored) if any(unscored) else (),
    )


class LogprobScorer:
    """Scores options with an OpenAIBackend; counts the requests it sent. The first request
    goes alone: an endpoint that returns no logprobs, or refuses to, is asked nothing more
    (`no_logprobs` says why)."""

    def __init__(self, backend: OpenAIBackend) -> None:
        self.backend = backend
        self.forward_passes = 0
        """Requests sent (each is one forward pass on the server)."""
        self.no_logprobs: str | None = None

    def score(self, requests: Sequence[Request]) -> list[OptionScores]:
        """The scores of every request's `options`, in order; once the endpoint is known to
        give no logprobs, the rest fail with that reason unasked."""
        results: list[OptionScores] = []
        if self.forward_passes == 0 and requests:
            results.append(self._first(requests[0]))
            requests = requests[1:]
        if self.no_logprobs is not None:
            return results + [OptionScores(r.options, error=self.no_logprobs) for r in requests]
        outputs = self.backend.first_token_logprobs(requests)
        self.forward_passes += len(requests)
        return results + [
            option_scores(r.options, o) for r, o in zip(requests, outputs, strict=True)
        ]

    def _first(self, request: Request) -> OptionScores:
        [output] = self.backend.first_token_logprobs([request])
        self.forward_passes += 1
        scores = option_scores(request.options, output)
        if scores.error == NO_LOGPROBS:
            self.no_logprobs = NO_LOGPROBS
        elif (scores.error or "").startswith("openai HTTP 400") and "logprobs" in str(scores.error):
            self.no_logprobs = f"the endpoint refused logprobs ({scores.error})"
        return scores


__all__ = ["MULTI_TOKEN", "NOT_LISTED", "NO_LOGPROBS", "LogprobScorer", "option_scores"]
