"""Answer parsing: map a model's free-text reply to one offered option, a refusal or unparseable.

Deterministic rules only; the parser never guesses. `ParsedAnswer.rule` names the rule that
decided, one of `RULES`, tried in this order (`decide.py`); the phrases they look for are data
in `lexicon.py`:

- `empty`: no letter or digit at all (unparseable).
- `final_answer`: a committing phrase ("the answer is", "Answer:", "Final answer:", "my best
  guess is", "Impression:", "most likely", "therefore, <option>") followed by one option; the
  last such phrase that names an option wins over everything said before it.
- `leading_yes_no`: a yes/no prompt answered by a "Yes"/"No" that opens the reply or stands
  alone as a sentence ("Is there pneumonia? No.").
- `letter`: a lettered prompt answered with one letter ("B", "(B)", "B. meningioma", "option B").
- `conflict`: a letter and option text that disagree (unparseable).
- `option_text`: exactly one option asserted by its text, an alias, or a distinctive part of a
  long option that no other option contains. Negated ("no evidence of pneumonia") and
  hypothetical ("if you suspect glioma") mentions assert nothing; hedged ones ("pneumonia cannot
  be ruled out") count only when nothing is asserted plainly. An echoed list of every option
  ("A) Hand B) Foot C) Arm D) Chest") asserts nothing either. For yes/no, the `finding` and the
  label names in `aliases` answer by a sentence ("shows signs of pneumonia": yes).
- `negated_option`: options are only negated. When an option is spelled as a negation of
  another text ("no tumor", an alias "no pneumonia", or "no" negating the finding), negating
  that text answers it; otherwise the reply is unparseable.
- `repetition`: a degenerate loop ("the the the ...") without an answer (unparseable).
- `refusal`: a decline ("I'm sorry, but I can't ...", "it is impossible to determine the
  stage", "further tests would be needed") without an answer; a disclaimer after an answer
  does not withdraw it.
- `multiple_options`: several options asserted and no final commitment (unparseable).
- `no_option`: nothing names an offered option (unparseable): off-topic or truncated text.

Yes/no options are read from "yes"/"no" only by the first three rules, never elsewhere.

A reply is read up to its first `MAX_PARSED_CHARS` characters (far beyond what a model writes
under the specs' `max_new_tokens`): the rest is never scanned, so a stranger's 300,000-character
"answer" in a sidecar costs `verify` no more than that, and every rule is linear in what it reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medbench.score.parsing.decide import RULES, ParsedAnswer, Rule, Status, parse_cached
from medbench.score.parsing.patterns import normalize

__all__ = [
    "MAX_PARSED_CHARS",
    "PARSER_VERSION",
    "RULES",
    "ParsedAnswer",
    "Rule",
    "Status",
    "parse_answer",
    "matched",
]

PARSER_VERSION = 2
MAX_PARSED_CHARS = 32_768
"""The most characters of a reply the parser reads (its start); see the package docstring."""
"""Bumped whenever a change to the rules or lexicons can change a parse (1: the regex module)."""


def parse_answer(
    text: str,
    options: Sequence[str],
    *,
    lettered: bool = False,
    aliases: Mapping[str, Sequence[str]] | None = None,
    finding: str | None = None,
) -> ParsedAnswer:
    """Parse a model's reply to a prompt that offered `options` (shown as "A. ..." if `lettered`).

    `aliases` maps an option to other words that mean it; a match returns the option itself.
    For a yes/no prompt, `finding` ("pneumonia") and aliases of "yes"/"no" (the task's positive
    and negative label names) let a sentence answer it. Results are cached. Raises ValueError
    when an alias key is not one of `options`.
    """
    frozen: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if aliases:
        frozen = tuple(
            sorted((k, (v,) if isinstance(v, str) else tuple(v)) for k, v in aliases.items())
        )
    read = text[:MAX_PARSED_CHARS]
    return parse_cached(read, tuple(options), lettered, frozen, finding or None)


def matched(text: str, parsed: ParsedAnswer) -> str | None:
    """The text of the reply that decided `parsed` (its span), or None when no text decided."""
    if parsed.span is None:
        return None
    start, end = parsed.span
    source = text if len(normalize(text)) == len(text) else normalize(text)
    return source[start:end]
