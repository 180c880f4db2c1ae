"""The rules, one function each: what a reply commits to by a phrase, a yes/no, a letter, or
whether it declines. `decide.py` tries them in order; each returns what it found and the span
(in normalised text) that decided."""

from __future__ import annotations

import bisect
import re
from typing import Literal

from medbench.score.parsing import patterns
from medbench.score.parsing.mentions import Mention, Span, asserted
from medbench.score.parsing.options import Matcher
from medbench.score.parsing.patterns import (
    BARE_END,
    BOTH,
    COMMIT,
    CONN_LEAD,
    LEAD_PREFIX,
    LETTER_ANY,
    LETTER_AT,
    PAIR_GAP,
    SEG_LEAD,
    SEG_LEAD_YN,
    SENT_END,
    SENTENCE,
    WORD,
)

Found = tuple[Literal["answer", "conflict", "multiple"], int | None, Span]


def _skip(pattern: re.Pattern[str], text: str, pos: int) -> int:
    m = pattern.match(text, pos)
    return m.end() if m else pos


def _letter_at(
    norm: str, pos: int, mt: Matcher, starts: dict[int, Mention]
) -> tuple[int, int | None, int] | None:
    """(the letter's option, the option text right after it, where it ends) at `pos`."""
    m = LETTER_AT.match(norm, pos)
    if m is None or ord(m.group(1)) - 97 >= mt.n_options:
        return None
    after = starts.get(_skip(PAIR_GAP, norm, m.end()))
    letter, paired = ord(m.group(1)) - 97, after.label if after is not None else None
    weak = m.lastindex == 1 and patterns.ALNUM.search(norm, m.end()) is not None
    if (weak and paired != letter) or (m.group(3) == "," and paired is None):
        return None  # "A glioma" (an article), "A, B, C or D" (a list)
    return letter, paired, after.end if after is not None else m.end(1)


class _Index:
    """What every committing phrase of one reply looks up, found once (a reply may repeat
    "the answer is" thousands of times: each phrase then costs a search, not a scan)."""

    def __init__(self, norm: str, mentions: list[Mention]) -> None:
        # SENT_END matches one character, decided by it and the next one: the first match at
        # or after a position is the first of these at or after it.
        self.ends = [e.start() for e in SENT_END.finditer(norm)]
        self.starts = {x.start: x for x in mentions}
        self.order = sorted(range(len(mentions)), key=lambda i: mentions[i].start)
        self.keys = [mentions[i].start for i in self.order]
        self.mentions = mentions

    def sentence_end(self, start: int, default: int) -> int:
        i = bisect.bisect_left(self.ends, start)
        return self.ends[i] if i < len(self.ends) else default

    def between(self, start: int, end: int) -> list[Mention]:
        """The mentions starting in [start, end), in their original order."""
        lo, hi = bisect.bisect_left(self.keys, start), bisect.bisect_left(self.keys, end)
        return [self.mentions[i] for i in sorted(self.order[lo:hi])]


def _commit(
    norm: str, m: re.Match[str], mt: Matcher, index: _Index, lettered: bool
) -> Found | None:
    """What one committing phrase commits to, if anything."""
    kind = m.lastgroup
    if mt.yes_no_re is not None and kind != "dx":
        yn = mt.yes_no_re.match(norm, _skip(SEG_LEAD_YN, norm, m.end()))
        if yn and (kind == "ans" or BARE_END.match(norm, yn.end())):
            return "answer", mt.yes_no[yn.group()], (m.start(), yn.end())
    if kind == "but" or (kind == "conn" and mt.text_re is None):
        return None
    start = _skip(SEG_LEAD, norm, m.end())
    starts = index.starts
    letter = _letter_at(norm, start, mt, starts) if lettered else None
    if kind == "conn" and letter is None and _skip(CONN_LEAD, norm, start) not in starts:
        return None  # "so the left lung is normal" commits to nothing; "therefore, glioma" does
    end = index.sentence_end(start, len(norm))
    named = index.between(start, end)
    labels, _ = asserted(named)
    last = max((x.end for x in named), default=m.end())
    if letter is not None:
        i, paired, letter_end = letter
        if (paired is not None and paired != i) or (labels and i not in labels):
            return "conflict", None, (m.start(), max(last, letter_end))
        return "answer", i, (m.start(), max(letter_end, m.end()))
    if len(labels) > 1:
        return "multiple", None, (m.start(), last)
    return ("answer", labels.pop(), (m.start(), last)) if labels else None


def final_answer(
    norm: str, mt: Matcher, mentions: list[Mention], lettered: bool, words: list[str]
) -> Found | None:
    """The last committing phrase that names an option ("the answer is", "Impression:")."""
    if patterns.COMMIT_HINTS.isdisjoint(words):
        return None
    index = _Index(norm, mentions)
    for m in reversed(list(COMMIT.finditer(norm))):
        found = _commit(norm, m, mt, index, lettered)
        if found is not None:
            return found
    return None


def leading_yes_no(norm: str, mt: Matcher) -> tuple[int, Span] | None:
    """A yes/no that opens the reply or stands alone as a sentence."""
    if mt.yes_no_re is None:
        return None
    m = mt.yes_no_re.match(norm, _skip(LEAD_PREFIX, norm, 0))
    if m is not None and not BOTH.match(norm, m.end()):
        return mt.yes_no[m.group()], (m.start(), m.end())
    alone: dict[int, Span] = {}
    at = 0
    for end in [e.start() for e in SENTENCE.finditer(norm)] + [len(norm)]:
        piece = norm[at:end]
        word = piece.strip(" \t-'()[]")
        if word in mt.yes_no:
            begin = at + piece.index(word)
            alone.setdefault(mt.yes_no[word], (begin, begin + len(word)))
        at = end + 1
    return next(iter(alone.items())) if len(alone) == 1 else None


def letters(
    norm: str, mt: Matcher, mentions: list[Mention], labels: set[int], echoes: list[Span]
) -> Found | None:
    """A letter in a committed place: the start, "(B)", "option B", "B. <its option text>"."""
    starts = {m.start: m for m in mentions}
    found: list[tuple[int, int | None, Span]] = []
    lead_at = _skip(patterns.WHITE, norm, 0)
    if not any(a <= lead_at < b for a, b in echoes) and (lead := _letter_at(norm, 0, mt, starts)):
        found.append((lead[0], lead[1], (lead_at, lead[2])))
    for m in LETTER_ANY.finditer(norm):
        if any(a <= m.start() < b for a, b in echoes):
            continue
        at = _skip(PAIR_GAP, norm, m.end())
        after = starts.get(at)
        paired, end = (after.label, after.end) if after is not None else (None, m.end())
        yn = mt.yes_no_re.match(norm, at) if mt.yes_no_re is not None else None
        if after is None and yn is not None and BARE_END.match(norm, yn.end()):
            paired, end = mt.yes_no[yn.group()], yn.end()  # "B) No"
        letter = ord(m.group(m.lastindex or 1)) - 97
        if letter < mt.n_options and (m.lastindex != 3 or paired is not None):
            found.append((letter, paired, (m.start(), end)))
    for m in patterns.LONE_LETTER.finditer(norm):
        letter = ord(m.group(m.lastindex or 1)) - 97
        if letter < mt.n_options and not any(a <= m.start() < b for a, b in echoes):
            found.append((letter, None, (m.start(m.lastindex or 1), m.end(m.lastindex or 1))))
    chosen = {i for i, _, _ in found}
    spans = [s for _, _, s in found]
    whole = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (0, 0)
    if any(p is not None and p != i for i, p, _ in found):
        return "conflict", None, whole
    if len(chosen) != 1:
        return ("multiple", None, whole) if chosen else None
    letter = chosen.pop()
    if labels and letter not in labels:
        return "conflict", None, whole
    return "answer", letter, spans[-1]


def is_loop(norm: str) -> bool:
    """A degenerate loop ("the the the ..."): few distinct words, or a stuck tail."""
    words = WORD.findall(norm)
    n = len(words)
    return n >= 12 and (len(set(words)) * 4 <= n or len(set(words[-12:])) <= 2)


def deferral(norm: str) -> Span | None:
    """Where the reply defers to more information ("further tests would be needed")."""
    m = patterns.DEFERRAL.search(norm)
    return (m.start(), m.end()) if m else None


def refusal(norm: str) -> Span | None:
    """Where the reply declines: an apology, a decline, or a disclaimer with little else."""
    m = patterns.APOLOGY.search(norm) or patterns.DECLINE.search(norm)
    if m is not None:
        return m.start(), m.end()
    m = patterns.DISCLAIMER.search(norm)
    if m is None:
        return None
    rest = (x for x in SENTENCE.split(norm) if not patterns.DISCLAIMER.search(x))
    return (m.start(), m.end()) if sum(len(WORD.findall(x)) for x in rest) < 6 else None
