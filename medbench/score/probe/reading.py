"""The knowledge ladder's one-line reading: where between the image and the answer the
knowledge is lost, from the rungs' scores."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    pass


SEPARABLE_MARGIN = 0.2
"""A probe at least this far above chance separates the classes."""
NEAR_CHANCE = 0.1
"""Answers at most this far above chance are near chance; also the gap that counts as a loss."""


def _num(value: Any) -> float:
    return float(value) if value is not None and not pd.isna(value) else math.nan


def _level(answers: float, chance: float) -> str:
    return "below chance" if answers < chance - NEAR_CHANCE else "near chance"


def reading(
    chance: float,
    answers: float,
    probes: dict[str, float],
    pixels: float = math.nan,
    described: float = math.nan,
    likelihood: float = math.nan,
    no_image: float = math.nan,
) -> str:
    """One line on where the knowledge is lost, from fixed thresholds (see the constants).

    `answers` is the direct `f1_all` (mean over variants); `likelihood` and `described` the
    same of the likelihood and describe-then-diagnose answers (mean against mean: the best of
    many pipelines would beat the mean by selection alone); `probes` maps an embedding to its
    probe F1, the best of which speaks for the encoder; `no_image` is the F1 of the answers
    given without the image.
    """
    c, a = _num(chance), _num(answers)
    line = _encoder_reading(c, a, probes)
    blind = _num(no_image)
    if not math.isnan(a) and blind > a - NEAR_CHANCE and blind > c + NEAR_CHANCE:
        line += f"; without the image it scores {blind:.2f}: the answers barely use the image"
    lk, d, x = _num(likelihood), _num(described), _num(pixels)
    if not math.isnan(a) and lk >= a + NEAR_CHANCE and lk > c + NEAR_CHANCE:
        line += (
            f"; the model prefers the right option but does not say it "
            f"(likelihood answers {lk:.2f})"
        )
    elif not math.isnan(a) and lk >= a + NEAR_CHANCE:
        line += f"; its option likelihoods ({lk:.2f}) beat its answers but not chance"
    elif not math.isnan(lk) and not math.isnan(a) and lk <= a - NEAR_CHANCE:
        line += f"; its option likelihoods ({lk:.2f}) know less than it says"
    if not math.isnan(a) and d >= a + NEAR_CHANCE:
        line += (
            f"; describing first recovers some ({d:.2f}, mean over its pipelines and wordings, "
            "as the answers' mean)"
        )
    found = [f for f in (_num(f) for f in probes.values()) if not math.isnan(f)]
    if found and x >= max(found) + NEAR_CHANCE:
        line += f"; raw pixels separate the classes better ({x:.2f})"
    return line


def _encoder_reading(c: float, a: float, probes: dict[str, float]) -> str:
    """The reading's first clause: the generated answers against the encoder probe."""
    found = {kind: f for kind, f in probes.items() if not math.isnan(_num(f))}
    if math.isnan(a) and not found:
        return "nothing measured"
    near = a <= c + NEAR_CHANCE
    if not found:
        level = _level(a, c) if near else "above chance"
        return f"the answers are {level} ({a:.2f}, chance {c:.2f}); no encoder probe"
    kind = max(found, key=lambda k: (found[k], k == "vision"))
    p = found[kind]
    probe_text = f"{kind} probe {p:.2f}"
    separable = p >= c + SEPARABLE_MARGIN
    if math.isnan(a):
        verb = "separates" if separable else "does not separate"
        line = f"the encoder {verb} the classes ({probe_text}, chance {c:.2f}); no answers scored"
    elif separable and near:
        line = (
            f"the encoder separates the classes ({probe_text}) but the answers are "
            f"{_level(a, c)} ({a:.2f}): the knowledge is lost after the encoder"
        )
    elif separable and a < p - NEAR_CHANCE:
        line = (
            f"the encoder separates the classes ({probe_text}) better than the answers do "
            f"({a:.2f}): some knowledge is lost after the encoder"
        )
    elif separable:
        line = (
            f"the encoder separates the classes ({probe_text}) and the answers reach "
            f"{a:.2f}: the answers use what the encoder sees"
        )
    elif near:
        line = (
            f"the answers are {_level(a, c)} ({a:.2f}, chance {c:.2f}) and the encoder does not "
            f"separate the classes either ({probe_text}): the knowledge is absent from what "
            "the model sees"
        )
    else:
        line = (
            f"the answers ({a:.2f}) beat chance ({c:.2f}) although a linear probe on the "
            f"encoder does not ({probe_text}): the model reads more than a linear probe finds"
        )
    return line
