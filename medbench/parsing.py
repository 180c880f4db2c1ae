"""Answer parsing: map a model's free-text reply to one offered option, a refusal or unparseable.

Deterministic rules only; the parser never guesses. `ParsedAnswer.rule` names the rule that
decided, one of `RULES`, tried in this order:

- `empty`: no letter or digit at all (unparseable).
- `final_answer`: a committing phrase ("the answer is", "Answer:", "Final answer:", "my best
  guess is", "Impression:", "most likely", "therefore, <option>") followed by one option; the
  last such phrase that names an option wins over everything said before it.
- `leading_yes_no`: a yes/no prompt answered by a "Yes"/"No" that opens the reply or stands
  alone as a sentence ("Is there pneumonia? No.").
- `letter`: a lettered prompt answered with one letter ("B", "(B)", "B. meningioma", "option B").
- `conflict`: a letter and option text that disagree (unparseable).
- `option_text`: exactly one option asserted by its text or an alias. Negated ("no evidence of
  pneumonia") and hypothetical ("if you suspect glioma") mentions assert nothing; hedged ones
  ("pneumonia cannot be ruled out") count only when nothing is asserted plainly.
- `negated_option`: options are only negated. When an option is spelled as a negation of
  another text ("no tumor", an alias "no pneumonia"), negating that text answers it; otherwise
  the reply is unparseable.
- `repetition`: a degenerate loop ("the the the ...") without an answer (unparseable).
- `refusal`: an explicit decline ("I'm sorry, but I can't ...") without an answer.
- `multiple_options`: several options asserted and no final commitment (unparseable).
- `no_option`: nothing names an offered option (unparseable): off-topic or truncated text.

Yes/no options are read only from those two rules, never from "yes"/"no" elsewhere.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NamedTuple, get_args

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


_Aliases = tuple[tuple[str, tuple[str, ...]], ...]
_Found = tuple[Literal["answer", "conflict", "multiple"], int | None]


def _table(mapping: dict[str, str]) -> str:
    """A str.translate table as a string (faster than a dict); later code points pass as is."""
    return "".join(mapping.get(chr(i), chr(i)) for i in range(0x2020))


_TRANSLATE = _table(
    dict.fromkeys('*_#`~"\u201c\u201d>|\u00a0', " ") | {"\u2019": "'", "\u2018": "'"}
)
_TOKENS = _table(dict.fromkeys("\\{}()[].,:;!?-\u2013=/", " "))
# The first words of every _COMMIT and _CUES alternative: a cheap test on the reply's words
# skips those (slow) regexes for the many replies that hold none of them.
# fmt: off
_COMMIT_HINTS = frozenset({
    "answer", "guess", "i", "i'd", "option", "choice", "boxed", "diagnosis", "impression",
    "conclusion", "classification", "prediction", "verdict", "label", "category", "most",
    "therefore", "thus", "hence", "so", "summary", "short", "overall", "but",
})
_CUE_HINTS = frozenset({
    "no", "not", "non", "without", "absence", "absent", "negative", "free", "rule", "rules",
    "ruled", "exclude", "excludes", "excluded", "excluding", "neither", "nor", "lack", "lacks",
    "lacking", "never", "none", "isn't", "aren't", "wasn't", "weren't", "doesn't", "don't",
    "didn't", "cannot", "can", "can't", "could", "couldn't", "does", "do", "unlikely", "rather",
    "instead", "as", "other", "less", "inconsistent", "denies", "differential", "if", "whether",
    "such", "for", "including", "between", "to", "unable", "impossible", "difficult", "hard",
    "more", "likelier",
})
# fmt: on
_ALNUM = re.compile(r"[^\W_]")
_WORD = re.compile(r"[a-z0-9']+")
_DASHES = re.compile(r"[\s\-\u2013]+")
_YES_NO = {"yes": ("yes", "yeah", "yep"), "no": ("no", "nope")}
_NEGATED_VARIANT = re.compile(r"(?:no|not|non) \S")

# A committing phrase: `ans` also commits a yes/no reply, `dx` only an option, `conn` and `but`
# a yes/no reply only when "yes"/"no" stands alone ("therefore, no."), `conn` an option only
# when it follows directly ("therefore, glioma").
_COMMIT = re.compile(
    r"(?P<ans>\banswer(?:\s+to\s+(?:the|your|this)\s+question)?(?:\s*[:=\-\u2013]|\s+(?:is|would\s+be"
    r"|will\s+be)\b|\s+(?=\([a-z]\)))|\b(?:my\s+)?(?:best\s+)?guess\s*(?:is\b|would\s+be|[:\-])"
    r"|\bi(?:'d|\s+would|\s+will)?\s+(?:say|guess|choose|select|pick|go\s+with|lean\s+towards?)\b"
    r"|\bi\s+(?:think|believe)(?:\s+(?:it'?s|it\s+is|this\s+is|that\s+it'?s|the\s+answer\s+is))?"
    r"|\b(?:correct|right|best)\s+(?:option|choice)\s*(?:is\b|would\s+be|[:\-])|\\boxed\{)"
    r"|(?P<dx>\b(?:diagnosis|impression|conclusion|classification|prediction|verdict|label"
    r"|category)\s*(?:is\b|would\s+be|[:\-])|\bmost\s+(?:likely|consistent\s+with|suggestive\s+of"
    r"|compatible\s+with))|(?P<conn>\b(?:therefore|thus|hence|so|in\s+conclusion|in\s+summary"
    r"|overall|in\s+short)\b,?)|(?P<but>\bbut\b,?)"
)
_SEG_LEAD = re.compile(r"[\s:]*(?:[-\u2022]\s+|\d+[.)]\s+)?")
_SEG_LEAD_YN = re.compile(r"[\s:(\[\-]*")
_CONN_LEAD = re.compile(r"(?:(?:this|it)\s+is\s+|it'?s\s+)?(?:(?:a|an|the)\s+)?")
_SENT_END = re.compile(r"[!?;\n]|\.(?!\w)")
_SENTENCE = re.compile(r"[!?;:\n]|\.(?!\w)")
_BARE_END = re.compile(r"\s*(?:[.,!;\n]|$)")
# Before a leading yes/no: "Based on the image, yes", "Pneumonia: No", "**Answer**: Yes".
_LEAD_PREFIX = re.compile(
    r"[\W_]*(?:(?:based\s+on|looking\s+at|from|according\s+to|after\s+(?:reviewing|examining))"
    r"\s[^,.\n]{0,60},\s*|[a-z][a-z' ]{0,40}:\s*)?"
)
_BOTH = re.compile(r"\s*(?:and|or|/)\s*(?:yes|no)\b")
# A letter: strong when closed by a bracket, punctuation or a line end; weak when a word follows
# (then it counts only before its own option text: "A glioma" is an article otherwise).
_LETTER_AT = re.compile(
    r"[\s\[(]*\(?([a-z])(?:([)\]}])|([.:,!])(?!\w)|(\s*\n|\s+(?=\()|\s+is\s+(?:the\s+)?(?:correct"
    r"|right|best|answer))|$|(?=\s))"
)
_LETTER_ANY = re.compile(
    r"\(([a-z])\)|\b(?:option|choice|letter)\s*[:\-]?\s*\(?([a-z])\b(?!')"
    r"|(?<![\w.'])([a-z])[.)](?=\s)"
)
_PAIR_GAP = re.compile(r"[\s.:()\-\u2013,]*")

# Where a negation's scope ends.
_BREAK = re.compile(
    r"[;!?\n]|\.(?!\w)|\b(?:but|however|although|though|whereas|while|yet|except)\b"
    r"|,\s*(?=(?:this|it|the|there|which|these|they|we|i|that)\b)"
)
# Cues before a mention; at one position the first group that matches wins, so "no doubt" is
# plain and "cannot rule out" a hedge, not a negation.
_CUES = re.compile(
    r"\b(?:(?P<plain>no\s+doubt|without\s+(?:a\s+)?doubt|not\s+only)"
    r"|(?P<hedge>(?:can\s*not|can't|could\s+not|couldn't|does\s+not|doesn't|do\s+not|don't)\s+"
    r"(?:be\s+)?(?:rule[ds]?\s+out|exclude[ds]?)|not\s+(?:be\s+)?(?:ruled\s+out|excluded)"
    r"|differential(?:\s+diagnos[ie]s)?)"
    r"|(?P<hypo>if|whether|such\s+as|for\s+example|including|between|to\s+(?:rule\s+out|exclude"
    r"|evaluate|assess|check|determine|distinguish|differentiate)|(?:unable|impossible|difficult"
    r"|hard)\s+to)"
    r"|(?P<neg>no|not|non|without|absence|absent|negative|free\s+of|rule[sd]?\s+out|exclude[sd]?"
    r"|excluding|neither|nor|lacks?|lacking|never|none|isn't|aren't|wasn't|weren't|doesn't|don't"
    r"|didn't|cannot|can't|unlikely|rather\s+than|instead\s+of|as\s+opposed\s+to|other\s+than"
    r"|more\s+likely\s+than|likelier\s+than|less\s+likely|inconsistent|denies))\b"
)
# Text a negation crosses between two options: a list ("no consolidation, effusion or").
_LIST_GAP = re.compile(
    r"[\s,/]*(?:[\w-]+(?:\s+[\w-]+)?\s*,\s*)*(?:(?:and|or|nor)\s+)?(?:(?:a|an|the|any|other)\s+)*"
)
# Cues right after a mention: "pneumonia cannot be excluded", "glioma is unlikely", "Glioma: no".
_POST = re.compile(
    r"\s*(?:(?P<hedge>(?:can\s*not|can't|could\s+not|may\s+not)\s+be\s+(?:entirely\s+|completely"
    r"\s+)?(?:ruled\s+out|excluded)|(?:is|are)\s+not\s+(?:entirely\s+)?(?:ruled\s+out|excluded)"
    r"|(?:is|are)\s+(?:also\s+)?(?:a\s+)?(?:possible|possibility|in\s+the\s+differential))"
    r"|(?P<neg>(?:(?:is|are|was|were|seems|appears)\s+)?(?:not(?:\s+(?:be\s+)?(?:present|seen"
    r"|identified|evident|visible|detected|noted|likely|favou?red|suggested|supported|apparent"
    r"|demonstrated|appreciated|consistent|shown|the\s+(?:answer|diagnosis|correct))\b|\s*(?=[.,;!?\n]"
    r"|$))|unlikely|less\s+likely|absent|excluded|ruled\s+out)|[:\-\u2013?(]\s*(?:no|not|unlikely"
    r"|absent|negative|excluded|ruled\s+out|less\s+likely)\b))"
)
_VERBS = (
    r"(?:provide|give|offer|make|determine|diagnose|tell|say|identify|interpret|analy[sz]e|assess"
    r"|answer|help|see|view|access|read|evaluate|classify|confirm|conclude|comment|know|be\s+"
    r"(?:certain|sure))"
)
# An explicit decline: a refusal wherever it stands (when the reply gives no answer).
_REFUSAL = re.compile(
    r"\bi'?m\s+sorry|\bi\s+am\s+sorry|\bapologi[sz]e|\bas\s+an\s+ai\b|\blanguage\s+model"
    r"|\bi(?:'m|\s+am)\s+(?:just\s+|only\s+)?an\s+ai\b|\bi(?:'m|\s+am)\s+not\s+(?:sure|certain)"
    r"|\bi(?:'m|\s+am)?\s+(?:can\s*not|can't|unable\s+to|not\s+able\s+to|won't|will\s+not|do\s+not"
    rf"|don't)\s+(?:\w+ly\s+)?{_VERBS}|\bunable\s+to\s+{_VERBS}"
    rf"|\b(?:not\s+possible|impossible|difficult|not\s+feasible)\s+to\s+{_VERBS}"
    r"|\bcannot\s+be\s+(?:determined|diagnosed|assessed|confirmed)|\b(?:do\s+not|don't|cannot)"
    r"\s+have\s+(?:the\s+)?(?:ability|access|capability|capacity)"
    r"|\b(?:insufficient|not\s+enough)\s+(?:information|detail|quality|to)"
)
# A disclaimer: a refusal only when the rest of the reply says (almost) nothing.
_DISCLAIMER = re.compile(
    r"\bconsult\s+(?:with\s+)?(?:a|an|your|the)?\s*(?:qualified\s+|licensed\s+)?(?:medical|health"
    r"|doctor|physician|radiologist|dermatologist|pathologist|neurologist|oncologist|professional"
    r"|specialist|expert|clinician)|\bsee\s+a\s+(?:doctor|dermatologist|specialist|physician)"
    r"|\bseek\s+(?:medical|professional|expert)|\bi(?:'m|\s+am)\s+not\s+(?:a\s+)?(?:medical|doctor"
    r"|radiologist|physician|healthcare|qualified)|\bnot\s+(?:a\s+)?(?:substitute|medical\s+advice"
    r"|diagnosis)|\bnot\s+qualified"
)


class _Mention(NamedTuple):
    start: int
    end: int
    label: int | None  # None for a text that only matters negated ("tumor" of "no tumor")
    derived: int | None  # the option that negating this mention asserts
    kind: str  # plain, hedge, hypo (hypothetical) or neg


@dataclass(frozen=True)
class _Matcher:
    """Compiled patterns for one option set and its aliases."""

    text_re: re.Pattern[str] | None  # one named group per spelling, longest first
    groups: dict[str, tuple[int | None, int | None]]  # group -> (label, derived)
    yes_no_re: re.Pattern[str] | None
    yes_no: dict[str, int]
    n_options: int


def _normalize(text: str) -> str:
    norm = text.lower().translate(_TRANSLATE)
    return norm.replace("tumour", "tumor") if "tumour" in norm else norm


def _skip(pattern: re.Pattern[str], text: str, pos: int) -> int:
    m = pattern.match(text, pos)
    return m.end() if m else pos


def _clean(option: str) -> str:
    return " ".join(_DASHES.split(_normalize(option).strip(" .,:;!?'")))


def _pattern(variant: str) -> str:
    return r"[\s\-\u2013]+".join(re.escape(part) for part in variant.split(" "))


@lru_cache(maxsize=256)
def _matcher(options: tuple[str, ...], aliases: _Aliases) -> _Matcher:
    index = {option: i for i, option in reversed(list(enumerate(options)))}
    extra: dict[int, list[str]] = {}
    for key, words in aliases:
        if key not in index:
            raise ValueError(f"alias key {key!r} is not one of the options {list(options)!r}")
        extra.setdefault(index[key], []).extend(c for c in map(_clean, words) if c)
    yes_no: dict[str, int] = {}
    variants: dict[str, int] = {}
    for i, option in enumerate(options):
        spellings = (_clean(option), *extra.get(i, []))
        if spellings[0] in _YES_NO:
            for word in (*_YES_NO[spellings[0]], *spellings[1:]):
                yes_no.setdefault(word, i)
        else:
            for variant in filter(None, spellings):
                variants.setdefault(variant, i)
    negations = {v.split(" ", 1)[1]: i for v, i in variants.items() if _NEGATED_VARIANT.match(v)}
    derive = {variants[x]: i for x, i in negations.items() if variants.get(x, i) != i}
    targets: dict[str, tuple[int | None, int | None]]
    targets = {v: (i, derive.get(i)) for v, i in variants.items()}
    targets |= {x: (None, i) for x, i in negations.items() if x not in targets}
    ordered = sorted(targets, key=lambda v: (-len(v), v))
    parts = "|".join(f"(?P<g{n}>{_pattern(v)})" for n, v in enumerate(ordered))
    yn_words = sorted(yes_no, key=lambda w: (-len(w), w))
    return _Matcher(
        re.compile(rf"(?<![a-z0-9])(?:{parts})(?:e?s)?(?![a-z0-9])") if parts else None,
        {f"g{n}": targets[v] for n, v in enumerate(ordered)},
        re.compile(rf"(?:{'|'.join(map(_pattern, yn_words))})(?![a-z0-9])") if yn_words else None,
        yes_no,
        len(options),
    )


def _mentions(norm: str, mt: _Matcher, words: list[str]) -> list[_Mention]:
    """Every option text in `norm`, with how it is meant."""
    if mt.text_re is None:
        return []
    found = [(m.start(), m.end(), mt.groups[m.lastgroup or ""]) for m in mt.text_re.finditer(norm)]
    if not found:
        return []
    pieces, last = [], 0
    for start, end, _ in found:  # mask options so that "no tumor" holds no cue
        pieces += [norm[last:start], "x" * (end - start)]
        last = end
    masked = "".join([*pieces, norm[last:]])
    posts = [_POST.match(masked, end) for _, end, _ in found]
    breaks = None
    if not _CUE_HINTS.isdisjoint(words):
        breaks = [b.start() for b in _BREAK.finditer(masked)]
    kinds, after = [], 0
    for (start, end, _), post in zip(found, posts, strict=True):
        if post:
            kinds.append("hedge" if post.lastgroup == "hedge" else "neg")
        else:
            kinds.append("plain" if breaks is None else _kind(masked, breaks, after, start))
        after = end
    for n in range(len(found) - 2, -1, -1):  # "glioma and meningioma are unlikely"
        gap = (found[n][1], found[n + 1][0])
        if posts[n + 1] and not posts[n] and _LIST_GAP.fullmatch(masked, *gap):
            kinds[n], posts[n] = kinds[n + 1], posts[n + 1]
    return [
        _Mention(start, end, label, derived, kind)
        for (start, end, (label, derived)), kind in zip(found, kinds, strict=True)
    ]


def _kind(masked: str, breaks: list[int], after: int, start: int) -> str:
    """How the cue before a mention means it; `after` is where the previous mention ends.

    A cue before the previous mention reaches this one only across a list ("no consolidation,
    effusion or pneumonia"), not across a clause ("not normal, showing pneumonia").
    """
    at = bisect_right(breaks, start) - 1
    cues = list(_CUES.finditer(masked, max(breaks[at] if at >= 0 else 0, start - 120), start))
    if not cues or len(masked[cues[-1].end() : start].split()) > 6:
        return "plain"
    if after > cues[-1].end() and not _LIST_GAP.fullmatch(masked, after, start):
        return "plain"
    return cues[-1].lastgroup or "plain"


def _asserted(mentions: Sequence[_Mention]) -> tuple[set[int], bool]:
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


def _letter_at(
    norm: str, pos: int, mt: _Matcher, starts: dict[int, _Mention]
) -> tuple[int, int | None] | None:
    """(the letter's option, the option text right after it) for a letter at `pos`."""
    m = _LETTER_AT.match(norm, pos)
    if m is None or ord(m.group(1)) - 97 >= mt.n_options:
        return None
    after = starts.get(_skip(_PAIR_GAP, norm, m.end()))
    letter, paired = ord(m.group(1)) - 97, after.label if after is not None else None
    weak = m.lastindex == 1 and _ALNUM.search(norm, m.end()) is not None
    if (weak and paired != letter) or (m.group(3) == "," and paired is None):
        return None  # "A glioma" (an article), "A, B, C or D" (a list)
    return letter, paired


def _commit(
    norm: str, m: re.Match[str], mt: _Matcher, mentions: list[_Mention], lettered: bool
) -> _Found | None:
    """What one committing phrase commits to, if anything."""
    kind = m.lastgroup
    if mt.yes_no_re is not None and kind != "dx":
        yn = mt.yes_no_re.match(norm, _skip(_SEG_LEAD_YN, norm, m.end()))
        if yn and (kind == "ans" or _BARE_END.match(norm, yn.end())):
            return "answer", mt.yes_no[yn.group()]
    if kind == "but" or (kind == "conn" and mt.text_re is None):
        return None
    start = _skip(_SEG_LEAD, norm, m.end())
    starts = {x.start: x for x in mentions}
    letter = _letter_at(norm, start, mt, starts) if lettered else None
    if kind == "conn" and letter is None and _skip(_CONN_LEAD, norm, start) not in starts:
        return None  # "so the left lung is normal" commits to nothing; "therefore, glioma" does
    end = next((e.start() for e in _SENT_END.finditer(norm, start)), len(norm))
    labels, _ = _asserted([x for x in mentions if start <= x.start < end])
    if letter is not None:
        i, paired = letter
        if (paired is not None and paired != i) or (labels and i not in labels):
            return "conflict", None
        return "answer", i
    if len(labels) > 1:
        return "multiple", None
    return ("answer", labels.pop()) if labels else None


def _final_answer(
    norm: str, mt: _Matcher, mentions: list[_Mention], lettered: bool, words: list[str]
) -> _Found | None:
    if _COMMIT_HINTS.isdisjoint(words):
        return None
    for m in reversed(list(_COMMIT.finditer(norm))):
        found = _commit(norm, m, mt, mentions, lettered)
        if found is not None:
            return found
    return None


def _leading_yes_no(norm: str, mt: _Matcher) -> int | None:
    if mt.yes_no_re is None:
        return None
    m = mt.yes_no_re.match(norm, _skip(_LEAD_PREFIX, norm, 0))
    if m is not None and not _BOTH.match(norm, m.end()):
        return mt.yes_no[m.group()]
    alone = {mt.yes_no.get(x.strip(" \t-'()[]")) for x in _SENTENCE.split(norm)} - {None}
    return alone.pop() if len(alone) == 1 else None


def _letters(norm: str, mt: _Matcher, mentions: list[_Mention], labels: set[int]) -> _Found | None:
    """A letter in a committed place: the start, "(B)", "option B", "B. <its option text>"."""
    starts = {m.start: m for m in mentions}
    found = [lead] if (lead := _letter_at(norm, 0, mt, starts)) else []
    for m in _LETTER_ANY.finditer(norm):
        after = starts.get(_skip(_PAIR_GAP, norm, m.end()))
        paired = after.label if after is not None else None
        letter = ord(m.group(m.lastindex or 1)) - 97
        if letter < mt.n_options and (m.lastindex != 3 or paired is not None):
            found.append((letter, paired))
    letters = {i for i, _ in found}
    if any(p is not None and p != i for i, p in found):
        return "conflict", None
    if len(letters) != 1:
        return ("multiple", None) if letters else None
    letter = letters.pop()
    return ("conflict", None) if labels and letter not in labels else ("answer", letter)


def _is_loop(norm: str) -> bool:
    words = _WORD.findall(norm)
    n = len(words)
    return n >= 12 and (len(set(words)) * 4 <= n or len(set(words[-12:])) <= 2)


def _refuses(norm: str) -> bool:
    if _REFUSAL.search(norm):
        return True
    if not _DISCLAIMER.search(norm):
        return False
    rest = (x for x in _SENTENCE.split(norm) if not _DISCLAIMER.search(x))
    return sum(len(_WORD.findall(x)) for x in rest) < 6


def _no_answer(norm: str, several: bool, mentions: list[_Mention]) -> ParsedAnswer:
    rule: Rule = "no_option"
    if _is_loop(norm):
        rule = "repetition"
    elif _refuses(norm):
        return ParsedAnswer("refusal", None, "refusal")
    elif several:
        rule = "multiple_options"
    elif any(m.kind == "neg" and m.label is not None for m in mentions):
        rule = "negated_option"
    return ParsedAnswer("unparseable", None, rule)


def _decide(norm: str, mt: _Matcher, lettered: bool, options: tuple[str, ...]) -> ParsedAnswer:
    if not _ALNUM.search(norm):
        return ParsedAnswer("unparseable", None, "empty")
    words = norm.translate(_TOKENS).split()
    mentions = _mentions(norm, mt, words)
    labels, negated_only = _asserted(mentions)
    rule: Rule = "final_answer"
    found = _final_answer(norm, mt, mentions, lettered, words)
    if found is None and (lead := _leading_yes_no(norm, mt)) is not None:
        return ParsedAnswer("answer", options[lead], "leading_yes_no")
    if found is None and lettered:
        rule, found = "letter", _letters(norm, mt, mentions, labels)
    if found is None and labels:
        rule = "negated_option" if negated_only else "option_text"
        found = ("multiple", None) if len(labels) > 1 else ("answer", labels.pop())
    if found is None or found[0] == "multiple":
        return _no_answer(norm, found is not None, mentions)
    if found[1] is None:
        return ParsedAnswer("unparseable", None, "conflict")
    return ParsedAnswer("answer", options[found[1]], rule)


@lru_cache(maxsize=1 << 14)
def _parse(text: str, options: tuple[str, ...], lettered: bool, aliases: _Aliases) -> ParsedAnswer:
    return _decide(_normalize(text), _matcher(options, aliases), lettered, options)


def parse_answer(
    text: str,
    options: Sequence[str],
    *,
    lettered: bool = False,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> ParsedAnswer:
    """Parse a model's reply to a prompt that offered `options` (shown as "A. ..." if `lettered`).

    `aliases` maps an option to other words that mean it; a match returns the option itself.
    Results are cached. Raises ValueError when an alias key is not one of `options`.
    """
    frozen: _Aliases = ()
    if aliases:
        frozen = tuple(
            sorted((k, (v,) if isinstance(v, str) else tuple(v)) for k, v in aliases.items())
        )
    return _parse(text, tuple(options), lettered, frozen)
