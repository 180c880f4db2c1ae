"""The decision order: which rule decides a reply, tried in one fixed order (see the package)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, get_args

from medbench.score.parsing import mentions as found_in
from medbench.score.parsing import rules
from medbench.score.parsing.options import Aliases, matcher
from medbench.score.parsing.patterns import ALNUM, normalize, words

Status = Literal["answer", "refusal", "unparseable"]
Rule = Literal[
    "empty", "final_answer", "leading_yes_no", "letter", "conflict", "option_text",
    "negated_option", "repetition", "refusal", "multiple_options", "no_option",
]  # fmt: skip
RULES: frozenset[str] = frozenset(get_args(Rule))


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    """What a reply says: an option verbatim, a refusal, or unparseable, and the deciding rule."""

    status: Status
    label: str | None
    rule: Rule
    span: tuple[int, int] | None = field(default=None, compare=False)
    """Where in the reply the deciding text stands (start, end), when a text decided."""


def decide(
    text: str, options: tuple[str, ...], lettered: bool, aliases: Aliases, finding: str | None
) -> ParsedAnswer:
    """The rules in order: the first that finds something decides."""
    norm = normalize(text)
    if not ALNUM.search(norm):
        return ParsedAnswer("unparseable", None, "empty")
    mt = matcher(options, aliases, finding)
    tokens = words(norm)
    mentions, echoes = found_in.find(norm, mt, tokens)
    if lettered and mt.n_options >= 2:
        echoes += found_in.letter_lists(norm, mt.n_options)
    labels, negated_only = found_in.asserted(mentions)
    rule: Rule = "final_answer"
    found = rules.final_answer(norm, mt, mentions, lettered, tokens)
    if found is None and (lead := rules.leading_yes_no(norm, mt)) is not None:
        return ParsedAnswer("answer", options[lead[0]], "leading_yes_no", lead[1])
    if found is None and lettered:
        rule, found = "letter", rules.letters(norm, mt, mentions, labels, echoes)
    if found is None and labels:
        rule = "negated_option" if negated_only else "option_text"
        mine = [m for m in mentions if m.label in labels or m.derived in labels]
        span = (min(m.start for m in mine), max(m.end for m in mine)) if mine else (0, 0)
        found = ("multiple", None, span) if len(labels) > 1 else ("answer", labels.pop(), span)
    if found is None or found[0] == "multiple":
        several = found is not None or bool(echoes)
        return _no_answer(norm, several, mentions, found[2] if found else None)
    if found[1] is None:
        return ParsedAnswer("unparseable", None, "conflict", found[2])
    return ParsedAnswer("answer", options[found[1]], rule, found[2])


def _no_answer(
    norm: str, several: bool, mentions: list[found_in.Mention], span: tuple[int, int] | None
) -> ParsedAnswer:
    if rules.is_loop(norm):
        return ParsedAnswer("unparseable", None, "repetition")
    if (declined := rules.refusal(norm)) is not None:
        return ParsedAnswer("refusal", None, "refusal", declined)
    if several:
        return ParsedAnswer("unparseable", None, "multiple_options", span)
    if (deferred := rules.deferral(norm)) is not None:
        return ParsedAnswer("refusal", None, "refusal", deferred)
    negated = [m for m in mentions if m.kind == "neg" and m.label is not None]
    if negated:
        return ParsedAnswer(
            "unparseable", None, "negated_option", (negated[0].start, negated[-1].end)
        )
    return ParsedAnswer("unparseable", None, "no_option")


@lru_cache(maxsize=1 << 14)
def parse_cached(
    text: str, options: tuple[str, ...], lettered: bool, aliases: Aliases, finding: str | None
) -> ParsedAnswer:
    """`decide`, cached: real runs repeat the same replies many times."""
    return decide(text, options, lettered, aliases, finding)
