"""Where a reply names an option, and how: plainly, hedged, hypothetically or negated.

An echoed option list ("A) Hand\\nB) Foot\\nC) Arm\\nD) Chest", "the options are glioma,
meningioma, no tumor and pituitary tumor") repeats the prompt and asserts nothing: its
mentions are dropped and its span is returned, so that letters inside it count neither.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import NamedTuple

from medbench.score.parsing import patterns
from medbench.score.parsing.options import Matcher
from medbench.score.parsing.patterns import (
    BREAK,
    CUES,
    ECHO_GAP,
    ECHO_LEAD,
    LETTER_LINE,
    LIST_GAP,
    POST,
)


class Mention(NamedTuple):
    start: int
    end: int
    label: int | None
    """None for a text that only matters negated ("tumor" of "no tumor")."""
    derived: int | None
    """The option that negating this mention asserts."""
    kind: str
    """plain, hedge, hypo (hypothetical) or neg."""


Span = tuple[int, int]


def find(norm: str, mt: Matcher, words: list[str]) -> tuple[list[Mention], list[Span]]:
    """Every option text in `norm` outside echoed lists, with how it is meant; the echoes."""
    if mt.text_re is None:
        return [], []
    found = [(m.start(), m.end(), mt.groups[m.lastgroup or ""]) for m in mt.text_re.finditer(norm)]
    if not found:
        return [], []
    echoes = _echoes(norm, found, mt.n_options)
    if echoes:
        found = [f for f in found if not any(a <= f[0] < b for a, b in echoes)]
    pieces, last = [], 0
    for start, end, _ in found:  # mask options so that "no tumor" holds no cue
        pieces += [norm[last:start], "x" * (end - start)]
        last = end
    masked = "".join([*pieces, norm[last:]])
    posts = [POST.match(masked, end) for _, end, _ in found]
    breaks = None
    if not patterns.CUE_HINTS.isdisjoint(words):
        breaks = [b.start() for b in BREAK.finditer(masked)]
    kinds, after = [], 0
    for (start, end, _), post in zip(found, posts, strict=True):
        if post:
            kinds.append("hedge" if post.lastgroup == "hedge" else "neg")
        else:
            kinds.append("plain" if breaks is None else _kind(masked, breaks, after, start))
        after = end
    for n in range(len(found) - 2, -1, -1):  # "glioma and meningioma are unlikely"
        gap = (found[n][1], found[n + 1][0])
        if posts[n + 1] and not posts[n] and LIST_GAP.fullmatch(masked, *gap):
            kinds[n], posts[n] = kinds[n + 1], posts[n + 1]
    mentions = [
        Mention(start, end, label, derived, kind)
        for (start, end, (label, derived)), kind in zip(found, kinds, strict=True)
    ]
    return mentions, echoes


Found = tuple[int, int, tuple[int | None, int | None]]


def _echoes(norm: str, found: Sequence[Found], n: int) -> list[Span]:
    """Runs of mentions that list every offered option once, as the prompt did."""
    if n < 2 or len(found) < n:
        return []
    echoes = []
    i = 0
    while i + n <= len(found):
        run = found[i : i + n]
        labels = {label for _, _, (label, _) in run}
        gaps_ok = all(
            ECHO_GAP.fullmatch(norm, a[1], b[0]) for a, b in zip(run, run[1:], strict=False)
        )
        if len(labels) == n and None not in labels and gaps_ok and _listed(norm, run):
            line = norm.rfind("\n", 0, run[0][0]) + 1
            begin = line if ECHO_GAP.fullmatch(norm, line, run[0][0]) else run[0][0]
            echoes.append((begin, run[-1][1]))
            i += n
        else:
            i += 1
    return echoes


def _listed(norm: str, run: Sequence[tuple[int, int, object]]) -> bool:
    """A list laid out as the prompt's: one option a line, three or more, or after "options"."""
    if any("\n" in norm[a[1] : b[0]] for a, b in zip(run, run[1:], strict=False)):
        return True
    return len(run) >= 3 or ECHO_LEAD.search(norm, max(0, run[0][0] - 40), run[0][0]) is not None


def letter_lists(norm: str, n: int) -> list[Span]:
    """Echoed lettered options: n lines "A) ...", "B) ...", ... in order, as the prompt had them."""
    lines = [(m.start(), m.end(), m.group(1)) for m in LETTER_LINE.finditer(norm)]
    echoes = []
    for i in range(len(lines) - n + 1):
        run = lines[i : i + n]
        if "".join(x[2] for x in run) == "abcdefghijklmnopqrstuvwxyz"[:n] and all(
            not norm[a[1] + 1 : b[0]].strip() for a, b in zip(run, run[1:], strict=False)
        ):
            echoes.append((run[0][0], run[-1][1]))
    return echoes


def _kind(masked: str, breaks: list[int], after: int, start: int) -> str:
    """How the cue before a mention means it; `after` is where the previous mention ends.

    A cue before the previous mention reaches this one only across a list ("no consolidation,
    effusion or pneumonia"), not across a clause ("not normal, showing pneumonia").
    """
    at = bisect_right(breaks, start) - 1
    cues = list(CUES.finditer(masked, max(breaks[at] if at >= 0 else 0, start - 120), start))
    if not cues or len(masked[cues[-1].end() : start].split()) > 6:
        return "plain"
    if after > cues[-1].end() and not LIST_GAP.fullmatch(masked, after, start):
        return "plain"
    return cues[-1].lastgroup or "plain"


def asserted(mentions: Sequence[Mention]) -> tuple[set[int], bool]:
    """The options asserted, and whether only negations asserted them."""
    plain: set[int] = set()
    hedged: set[int] = set()
    derived: set[int] = set()
    for m in mentions:
        if m.kind == "neg" and m.derived is not None:
            derived.add(m.derived)
        elif m.label is not None and m.kind in ("plain", "hedge"):
            (plain if m.kind == "plain" else hedged).add(m.label)
    return (plain | derived or hedged), bool(derived) and not plain
