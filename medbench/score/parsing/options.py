"""The offered options as patterns: every spelling that names an option, compiled once per set.

An option is named by its text, an alias, or a distinctive part of a long option ("large cell
carcinoma" for "Large cell carcinoma of the left hilum") that no other option contains. For a
yes/no question the finding and the label names the scorer passes as aliases name "yes" or
"no" ("shows signs of pneumonia", "a normal chest X-ray"); negating the finding answers "no".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from medbench.score.parsing import lexicon
from medbench.score.parsing.patterns import DASHES, HEAD_CUT, NEGATED_VARIANT, normalize

Aliases = tuple[tuple[str, tuple[str, ...]], ...]
Target = tuple[int | None, int | None]
"""(the option a mention asserts, the option that negating it asserts)."""

_YES_NO = {"yes": ("yes", "yeah", "yep"), "no": ("no", "nope")}
_ARTICLE = re.compile(r"^(?:a|an|the|any|some)\s+")
_SENTENCE_OPTION = re.compile(r"^(yes|no),\s+(\S.*)$")
_ROMAN_LETTER = re.compile(r"^(i{1,3}|iv|vi?)([a-c]?)$")
_ARABIC_LETTER = re.compile(r"^([1-6])([a-c]?)$")
_PUNCT = " .,:;!?'"
_EXISTENTIAL = re.compile(lexicon.EXISTENTIAL)
_CLAUSE = re.compile(lexicon.CLAUSE_SPLIT)


@dataclass(frozen=True)
class Matcher:
    """Compiled patterns for one option set, its aliases and finding."""

    text_re: re.Pattern[str] | None
    """One named group per spelling, longest first."""
    groups: dict[str, Target]
    yes_no_re: re.Pattern[str] | None
    yes_no: dict[str, int]
    """A word that answers a yes/no question ("yes", "nope") -> its option."""
    n_options: int


def clean(option: str) -> str:
    """An option or alias as the patterns see it: normalised, one space between words."""
    norm = normalize(option).replace("tumour", "tumor")
    return " ".join(DASHES.split(norm.strip(_PUNCT)))


def _numbered(prev: str, word: str) -> str:
    """A word's pattern; after "stage", "grade", ... a roman numeral also matches its number."""
    if prev in lexicon.NUMBERED:
        roman, arabic = _ROMAN_LETTER.match(word), _ARABIC_LETTER.match(word)
        if roman and roman.group(1) in lexicon.ROMAN:
            number = lexicon.ROMAN[roman.group(1)]
            return f"(?:{re.escape(word)}|{number}{roman.group(2)})"
        if arabic:
            back = {v: k for k, v in lexicon.ROMAN.items()}[arabic.group(1)]
            return f"(?:{re.escape(word)}|{back}{arabic.group(2)})"
    pattern = re.escape(word)
    for american, either in lexicon.SPELLINGS.items():
        pattern = pattern.replace(american, either)
    return pattern


def _pattern(variant: str) -> str:
    parts = [w.strip(",;:") for w in variant.split(" ")]
    parts = [w for w in parts if w]
    return r"[\s,;:\-\u2013]+".join(
        _numbered(parts[i - 1] if i else "", w) for i, w in enumerate(parts)
    )


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def _words(text: str) -> list[str]:
    return [w for w in (p.strip(_PUNCT) for p in text.split(" ")) if w]


def _parts(head: list[str], others: list[list[str]], whole: bool) -> Iterator[list[str]]:
    """The word runs of `head` that no other option contains and that are not all generic;
    `whole`: the entire head may be generic words ("large cell carcinoma")."""
    for n in range(len(head), 0, -1):
        for i in range(len(head) - n + 1):
            part = head[i : i + n]
            if part[0] in lexicon.FUNCTION_WORDS or part[-1] in lexicon.FUNCTION_WORDS:
                continue
            generic = all(w in lexicon.GENERIC_WORDS for w in part)
            if (generic and not (whole and n == len(head) > 1)) or len("".join(part)) < 4:
                continue  # "large cell carcinoma" names its option; "large cell" does not
            if not any(_contains(other, part) for other in others):
                yield part


def _distinctive(option: str, others: list[list[str]]) -> Iterator[str]:
    """The parts of a long option that name it alone among the offered options: of its head
    ("adenocarcinoma" of "Adenocarcinoma of the left lower lobe, ..."), or, when other options
    share the head, of the rest said with the head ("scaphoid fracture") or numbered ("stage
    ii" of "Non-small cell lung cancer, stage II")."""
    head_text, *rest = HEAD_CUT.split(option, maxsplit=1)
    head, words = _words(head_text), _words(option)
    if len(words) < 2 or len(head) > 6:
        return
    if not any(_contains(other, head) for other in others):
        yield from (" ".join(p) for p in _parts(head, others, whole=True))
        return
    tail = _words(rest[0]) if rest else []
    for part in _parts(tail, others, whole=False):
        if len(part) <= 3:
            yield " ".join([*part, *head])
    for i, word in enumerate(words[:-1]):
        if word in lexicon.NUMBERED:  # "stage ii", "grade 3"
            numbered = words[i : i + 2]
            if not any(_contains(other, numbered) for other in others):
                yield " ".join(numbered)


def _sentence(raw: str, option: str) -> list[str] | None:
    """For an option that is a sentence, the texts that name it: the sentence without its
    yes/no or its "there is", and each clause; None for an option that is no sentence."""
    polar = _SENTENCE_OPTION.match(option)
    if not polar and not (raw.strip().endswith(".") and len(option.split()) >= 3):
        return None
    body = polar.group(2) if polar else option
    texts = [body]
    for clause in [body, *_CLAUSE.split(body)]:
        bare = _EXISTENTIAL.sub("", clause)
        if len(clause.split()) >= 3 and clause not in texts:
            texts.append(clause)
        if bare != clause and len(bare.split()) >= 2 and bare not in texts:
            texts.append(bare)
    return texts


def _extra(options: tuple[str, ...], aliases: Aliases) -> dict[int, list[str]]:
    """Option index -> its cleaned aliases."""
    index = {option: i for i, option in reversed(list(enumerate(options)))}
    extra: dict[int, list[str]] = {}
    for key, names in aliases:
        if key not in index:
            raise ValueError(f"alias key {key!r} is not one of the options {list(options)!r}")
        extra.setdefault(index[key], []).extend(c for c in map(clean, names) if c)
    return extra


def _named(
    options: tuple[str, ...], cleaned: list[str], extra: dict[int, list[str]]
) -> tuple[dict[str, Target], dict[str, int]]:
    """The options' own spellings and aliases, and the words that answer a yes/no option."""
    yes_no: dict[str, int] = {}
    targets: dict[str, Target] = {}
    shared: set[str] = set()
    for i, option in enumerate(cleaned):
        if option in _YES_NO:
            for word in _YES_NO[option]:
                yes_no.setdefault(word, i)
        elif option:
            targets.setdefault(option, (i, None))
        polar = _SENTENCE_OPTION.match(option)
        if polar:  # "No, the image is too low quality ...": "No." names it, unless others too
            word = polar.group(1)
            if yes_no.setdefault(word, i) != i:
                shared.add(word)
        for text in _sentence(options[i], option) or []:
            if targets.setdefault(text, (i, None))[0] != i:
                shared.add(text)
        for name in extra.get(i, []):
            targets.setdefault(name, (i, None))
    for text in shared:
        targets.pop(text, None)
        yes_no.pop(text, None)
    return targets, yes_no


def _polar(targets: dict[str, Target], cleaned: list[str], finding: str | None) -> None:
    """For yes/no options: the finding says yes and negated says no; so does "tumor" of "no
    tumor"."""
    polar = {c: i for i, c in enumerate(cleaned) if c in _YES_NO}
    if "yes" not in polar or "no" not in polar:
        return
    yes, no = polar["yes"], polar["no"]
    if finding:
        targets[_ARTICLE.sub("", clean(finding))] = (yes, no)
    for variant, (label, _) in list(targets.items()):
        if label == no and NEGATED_VARIANT.match(variant):
            targets.setdefault(variant.split(" ", 1)[1], (yes, no))


def _negated(targets: dict[str, Target]) -> tuple[dict[str, Target], dict[int, int]]:
    """Spellings that are negations ("no pneumonia"): negating any spelling of their core
    ("pneumonia") asserts them. Returns the targets and option -> option it derives."""
    negations = {
        v.split(" ", 1)[1]: t[0]
        for v, t in targets.items()
        if NEGATED_VARIANT.match(v) and t[0] is not None
    }
    derive: dict[int, int] = {}
    for core, i in negations.items():
        label = targets[core][0] if core in targets else None
        if label is not None and label != i:
            derive[label] = i
    out: dict[str, Target] = {}
    for v, (label, derived) in targets.items():
        out[v] = (label, derived if derived is not None or label is None else derive.get(label))
    out |= {x: (None, i) for x, i in negations.items() if x not in out}
    return out, derive


def _spellings(
    options: tuple[str, ...], aliases: Aliases, finding: str | None
) -> tuple[dict[str, Target], dict[str, int]]:
    """Every text that names an option (-> its target) and every yes/no word (-> its option)."""
    cleaned = [clean(o) for o in options]
    targets, yes_no = _named(options, cleaned, _extra(options, aliases))
    _polar(targets, cleaned, finding)
    targets, derive = _negated(targets)
    for i, option in enumerate(cleaned):
        if option in _YES_NO:
            continue
        sentence = _sentence(options[i], option)
        rest = [_words(v) for v, t in targets.items() if t[0] not in (i, None)]
        rest += [_words(o) for j, o in enumerate(cleaned) if j != i]
        for part in _distinctive(sentence[0] if sentence else option, rest):
            targets.setdefault(part, (i, derive.get(i)))
    return targets, yes_no


@lru_cache(maxsize=256)
def matcher(options: tuple[str, ...], aliases: Aliases, finding: str | None) -> Matcher:
    """The compiled patterns of an option set (cached: scoring meets few distinct sets)."""
    targets, yes_no = _spellings(options, aliases, finding)
    ordered = sorted(targets, key=lambda v: (-len(v), v))
    parts = "|".join(f"(?P<g{n}>{_pattern(v)})" for n, v in enumerate(ordered))
    yn_words = sorted(yes_no, key=lambda w: (-len(w), w))
    return Matcher(
        re.compile(rf"(?<![a-z0-9])(?:{parts})(?:e?s)?(?![a-z0-9])") if parts else None,
        {f"g{n}": targets[v] for n, v in enumerate(ordered)},
        re.compile(rf"(?:{'|'.join(map(_pattern, yn_words))})(?![a-z0-9])") if yn_words else None,
        yes_no,
        len(options),
    )
