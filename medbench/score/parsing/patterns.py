"""Normalised text and the compiled lexicons: the regular expressions every rule shares."""

from __future__ import annotations

import re

from medbench.score.parsing import lexicon


def _table(mapping: dict[str, str]) -> str:
    """A str.translate table as a string (faster than a dict); later code points pass as is."""
    return "".join(mapping.get(chr(i), chr(i)) for i in range(0x2020))


def _either(fragments: tuple[str, ...]) -> str:
    return "|".join(fragments)


def _groups(table: dict[str, tuple[str, ...]]) -> str:
    return "|".join(f"(?P<{name}>{_either(fragments)})" for name, fragments in table.items())


_TRANSLATE = _table(
    dict.fromkeys('*_#`~"\u201c\u201d>|\u00a0', " ") | {"\u2019": "'", "\u2018": "'"}
)
_TOKENS = _table(dict.fromkeys("\\{}()[].,:;!?-\u2013=/", " "))


def normalize(text: str) -> str:
    """Lower case, markdown and quotes as spaces; one character per character where it can."""
    return text.lower().translate(_TRANSLATE)


def words(norm: str) -> list[str]:
    """The words of normalised text, for the cheap prefilters."""
    return norm.translate(_TOKENS).split()


ALNUM = re.compile(r"[^\W_]")
WORD = re.compile(r"[a-z0-9']+")
DASHES = re.compile(r"[\s\-\u2013]+")
NEGATED_VARIANT = re.compile(r"(?:no|not|non) \S")

COMMIT = re.compile(_groups(lexicon.COMMITMENTS))
SEG_LEAD = re.compile(r"[\s:]*(?:[-\u2022]\s+|\d+[.)]\s+)?")
SEG_LEAD_YN = re.compile(r"[\s:(\[\-]*")
CONN_LEAD = re.compile(r"(?:(?:this|it)\s+is\s+|it'?s\s+)?(?:(?:a|an|the)\s+)?")
SENT_END = re.compile(r"[!?;\n]|\.(?!\w)")
SENTENCE = re.compile(r"[!?;:\n]|\.(?!\w)")
BARE_END = re.compile(r"\s*(?:[.,!;\n]|$)")
# Before a leading yes/no: "Based on the image, yes", "Pneumonia: No", "**Answer**: Yes".
LEAD_PREFIX = re.compile(
    r"[\W_]*(?:(?:based\s+on|looking\s+at|from|according\s+to|after\s+(?:reviewing|examining))"
    r"\s[^,.\n]{0,60},\s*|[a-z][a-z' ]{0,40}:\s*)?"
)
BOTH = re.compile(r"\s*(?:and|or|/)\s*(?:yes|no)\b")
# A letter: strong when closed by a bracket, punctuation or a line end; weak when a word follows
# (then it counts only before its own option text: "A glioma" is an article otherwise).
LETTER_AT = re.compile(
    r"[\s\[(]*\(?([a-z])(?:([)\]}])|([.:,!])(?!\w)|(\s*\n|\s+(?=\()|\s+is\s+(?:the\s+)?(?:correct"
    r"|right|best|answer))|$|(?=\s))"
)
LETTER_ANY = re.compile(
    r"\(([a-z])\)|\b(?:option|choice|letter)\s*[:\-]?\s*\(?([a-z])\b(?!')"
    r"|(?<![\w.'])([a-z])[.)](?=\s)"
)
PAIR_GAP = re.compile(r"[\s.:()\-\u2013,]*")

BREAK = re.compile(_either(lexicon.SCOPE_BREAKS))
CUES = re.compile(rf"\b(?:{_groups(lexicon.CUES_BEFORE)})\b")
# Text a negation crosses between two options: a list ("no consolidation, effusion or").
LIST_GAP = re.compile(
    r"[\s,/]*(?:[\w-]+(?:\s+[\w-]+)?\s*,\s*)*(?:(?:and|or|nor|from)\s+)?(?:(?:a|an|the|any|other)\s+)*"
)
POST = re.compile(rf"\s*(?:{_groups(lexicon.CUES_AFTER)})")
# The text between two items of an echoed option list: separators, bullets, letters.
ECHO_GAP = re.compile(
    r"(?:[\s,;/.:\-\u2022]|\band\b|\bor\b|\(?\b[a-z]\b[.):]|\b(?:option|choice)\b|\d+[.)])*"
)
ECHO_LEAD = re.compile(lexicon.ECHO_LEADS)
APOLOGY = re.compile(_either(lexicon.APOLOGIES))
DECLINE = re.compile(_either(lexicon.DECLINES))
DEFERRAL = re.compile(_either(lexicon.DEFERRALS))
DISCLAIMER = re.compile(_either(lexicon.DISCLAIMERS))
HEAD_CUT = re.compile(lexicon.HEAD_CUTS)
COMMIT_HINTS = lexicon.COMMIT_HINTS
CUE_HINTS = lexicon.CUE_HINTS
"""Prefilters (tests replace them to check that skipping a search changes no result)."""
WHITE = re.compile(r"\s*")
LETTER_LINE = re.compile(r"(?m)^[ \t]*\(?([a-z])[.):]\s*[^\s][^\n]*$")
# A letter alone on its line, or closing the reply ("... so the answer is clear. B.").
LONE_LETTER = re.compile(r"(?m)^[ \t]*\(?([a-z])\)?[.:]?[ \t]*$|[.:!?]\s+\(?([a-z])[.)]?\s*\Z")
