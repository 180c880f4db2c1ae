"""The parser's phrase lexicons: what commits, declines, disclaims, negates and hedges, as data.

Each entry is a regular-expression fragment over normalised text (lower case, markdown and
curly quotes turned to spaces or plain quotes). `patterns.py` compiles them; a rule never
holds a phrase of its own. Add a phrase here, then a golden case in `tests/cases/parsing/`.
"""

from __future__ import annotations

VERBS = (
    "provide", "give", "offer", "make", "determine", "diagnose", "tell", "say", "identify",
    "interpret", "analy[sz]e", "assess", "answer", "help", "see", "view", "access", "read",
    "evaluate", "classify", "confirm", "conclude", "comment", "know", "distinguish",
    "differentiate", "specify", "establish", "ascertain", r"be\s+(?:certain|sure)",
)  # fmt: skip
"""What a model says it cannot do when it declines."""

# Commitments, by how much they commit: `ans` also commits a yes/no reply, `dx` only an
# option, `conn` and `but` a yes/no reply only when "yes"/"no" stands alone ("therefore, no."),
# `conn` an option only when it follows directly ("therefore, glioma").
COMMITMENTS: dict[str, tuple[str, ...]] = {
    "ans": (
        r"\banswer(?:\s+to\s+(?:the|your|this)\s+question)?(?:\s*[:=\-\u2013]|\s+(?:is|would\s+be"
        r"|will\s+be)\b|\s+(?=\([a-z]\)))",
        r"\b(?:my\s+)?(?:best\s+)?guess\s*(?:is\b|would\s+be|[:\-])",
        r"\bi(?:'d|\s+would|\s+will)?\s+(?:say|guess|choose|select|pick|go\s+with|lean\s+towards?)\b",
        r"\bi\s+(?:think|believe)(?:\s+(?:it'?s|it\s+is|this\s+is|that\s+it'?s|the\s+answer\s+is))?",
        r"\b(?:correct|right|best)\s+(?:option|choice)\s*(?:is\b|would\s+be|[:\-])",
        r"\\boxed\{",
    ),
    "dx": (
        r"\b(?:diagnosis|impression|conclusion|classification|prediction|verdict|label|category)"
        r"\s*(?:is\b|would\s+be|[:\-])",
        r"\bmost\s+(?:likely|consistent\s+with|suggestive\s+of|compatible\s+with)",
    ),
    "conn": (r"\b(?:therefore|thus|hence|so|in\s+conclusion|in\s+summary|overall|in\s+short)\b,?",),
    "but": (r"\bbut\b,?",),
}
COMMIT_HINTS = frozenset({
    "answer", "guess", "i", "i'd", "option", "choice", "boxed", "diagnosis", "impression",
    "conclusion", "classification", "prediction", "verdict", "label", "category", "most",
    "therefore", "thus", "hence", "so", "summary", "short", "overall", "but",
})  # fmt: skip
"""The first words of every commitment: replies with none of them skip the (slow) search."""

# Cues before a mention. At one position the first group that matches wins, so "no doubt" is
# plain and "cannot rule out" a hedge, not a negation.
CUES_BEFORE: dict[str, tuple[str, ...]] = {
    "plain": (r"no\s+doubt", r"without\s+(?:a\s+)?doubt", r"not\s+only"),
    "hedge": (
        r"(?:can\s*not|can't|could\s+not|couldn't|does\s+not|doesn't|do\s+not|don't)\s+"
        r"(?:be\s+)?(?:rule[ds]?\s+out|exclude[ds]?)",
        r"not\s+(?:be\s+)?(?:ruled\s+out|excluded)",
        r"differential(?:\s+diagnos[ie]s)?",
    ),
    "hypo": (
        r"if", r"whether", r"such\s+as", r"for\s+example", r"including", r"between",
        r"to\s+(?:rule\s+out|exclude|evaluate|assess|check|determine|distinguish|differentiate"
        r"|confirm)",
        r"(?:unable|impossible|difficult|hard)\s+to", r"not\s+(?:possible|able)\s+to",
        r"look(?:s|ing)?\s+for", r"(?:would|might)\s+(?:expect\s+to\s+)?see",
        r"expect(?:ed)?\s+to\s+see", r"to\s+(?:identify|detect|diagnose)",
        r"(?:determining|distinguishing|differentiating|assessing|evaluating)",
    ),
    "neg": (
        r"no", r"not", r"non", r"without", r"absence", r"absent", r"negative", r"free\s+of",
        r"rule[sd]?\s+out", r"exclude[sd]?", r"excluding", r"neither", r"nor", r"lacks?",
        r"lacking", r"never", r"none", r"isn't", r"aren't", r"wasn't", r"weren't", r"doesn't",
        r"don't", r"didn't", r"cannot", r"can't", r"unlikely", r"rather\s+than", r"instead\s+of",
        r"as\s+opposed\s+to", r"other\s+than", r"more\s+likely\s+than", r"likelier\s+than",
        r"less\s+likely", r"inconsistent", r"denies",
    ),
}  # fmt: skip
CUE_HINTS = frozenset({
    "no", "not", "non", "without", "absence", "absent", "negative", "free", "rule", "rules",
    "ruled", "exclude", "excludes", "excluded", "excluding", "neither", "nor", "lack", "lacks",
    "lacking", "never", "none", "isn't", "aren't", "wasn't", "weren't", "doesn't", "don't",
    "didn't", "cannot", "can", "can't", "could", "couldn't", "does", "do", "unlikely", "rather",
    "instead", "as", "other", "less", "inconsistent", "denies", "differential", "if", "whether",
    "such", "for", "including", "between", "to", "unable", "impossible", "difficult", "hard",
    "more", "likelier", "look", "looks", "looking", "would", "might", "expect", "expected",
    "determining", "distinguishing", "differentiating", "assessing", "evaluating",
})  # fmt: skip
"""The first words of every cue before a mention: replies with none skip the scope search."""

# Cues right after a mention: "pneumonia cannot be excluded", "glioma is unlikely", "Glioma: no".
CUES_AFTER: dict[str, tuple[str, ...]] = {
    "hedge": (
        r"(?:can\s*not|can't|could\s+not|may\s+not)\s+be\s+(?:entirely\s+|completely\s+)?"
        r"(?:ruled\s+out|excluded)",
        r"(?:is|are)\s+not\s+(?:entirely\s+)?(?:ruled\s+out|excluded)",
        r"(?:is|are)\s+(?:also\s+)?(?:a\s+)?(?:possible|possibility|in\s+the\s+differential)",
    ),
    "neg": (
        r"(?:(?:is|are|was|were|seems|appears)\s+)?(?:not(?:\s+(?:be\s+)?(?:present|seen"
        r"|identified|evident|visible|detected|noted|likely|favou?red|suggested|supported|apparent"
        r"|demonstrated|appreciated|consistent|shown|the\s+(?:answer|diagnosis|correct))\b"
        r"|\s*(?=[.,;!?\n]|$))|unlikely|less\s+likely|absent|excluded|ruled\s+out)",
        r"[:\-\u2013?(]\s*(?:no|not|unlikely|absent|negative|excluded|ruled\s+out|less\s+likely)\b",
        r"(?:is|are|was|were)n't\s+(?:seen|present|identified|evident|visible|detected|noted|shown"
        r"|demonstrated)\b",
    ),
}
SCOPE_BREAKS = (
    r"[;!?\n]", r"\.(?!\w)",
    r"\b(?:but|however|although|though|whereas|while|yet|except)\b",
    r",\s*(?=(?:this|it|the|there|which|these|they|we|i|that)\b)",
)  # fmt: skip
"""Where a negation's scope ends."""

_V = "(?:" + "|".join(VERBS) + ")"
APOLOGIES = (
    r"\bi'?m\s+sorry", r"\bi\s+am\s+sorry", r"\bapologi[sz]e", r"\bas\s+an\s+ai\b",
    r"\blanguage\s+model", r"\bi(?:'m|\s+am)\s+(?:just\s+|only\s+)?an\s+ai\b",
    r"\bi(?:'m|\s+am)\s+not\s+(?:sure|certain)",
)  # fmt: skip
"""An explicit decline with an apology or an AI disclaimer: a refusal wherever it stands."""
DECLINES = (
    r"\bi(?:'m|\s+am)?\s+(?:can\s*not|can't|unable\s+to|not\s+able\s+to|won't|will\s+not|do\s+not"
    rf"|don't)\s+(?:\w+ly\s+)?{_V}",
    rf"\bunable\s+to\s+(?:\w+ly\s+)?{_V}",
    rf"\b(?:not\s+possible|impossible|difficult|hard|challenging|not\s+feasible)\s+(?:for\s+me\s+)?"
    rf"to\s+(?:\w+ly\s+)?{_V}",
    r"\b(?:cannot|can\s+not|can't|could\s+not)\s+be\s+(?:\w+ly\s+)?(?:determined|diagnosed"
    r"|assessed|confirmed|identified|established|concluded|made|distinguished|answered|classified)",
    r"\b(?:do\s+not|don't|cannot)\s+have\s+(?:the\s+)?(?:ability|access|capability|capacity)",
    r"\b(?:insufficient|not\s+enough)\s+(?:information|detail|quality|to)",
    r"\bnot\s+(?:possible|able)\s+to\s+(?:\w+ly\s+)?" + _V,
)
"""A decline in so many words ("I cannot determine", "impossible to tell"): a refusal when the
reply commits to no option, even when it lists several."""
DEFERRALS = (
    r"\b(?:type|stage|nature|diagnosis|grade|kind|classification|cause|answer|subtype)\b"
    r"[^.;\n]{0,50}?\b(?:is|are)\s+not\s+(?:provided|specified|given|mentioned|indicated|stated"
    r"|available|clear|apparent|evident|determinable|known|visible|discernible|possible"
    r"|feasible)\b",
    r"\b(?:would|will|may|might)\s+be\s+(?:required|needed|necessary)\s+to\s+(?:\w+ly\s+)?"
    r"(?:establish|confirm|determine|make|reach|classify|characteri[sz]e)",
    r"\bindeterminate\b",
    r"\b(?:further|additional|more)\s+(?:[\w-]+\s+){0,3}(?:tests?|testing|evaluation"
    r"|investigations?|imaging|information|examinations?|work-?up|studies|analysis|context"
    r"|details|data|history)\s+(?:(?:would|will|may|might|could)\s+be\s+|(?:is|are)\s+)?"
    r"(?:needed|required|necessary|warranted|essential)",
    r"\b(?:would|will|may|might)\s+(?:need|require)\s+(?:further|additional|more|a\s+biopsy"
    r"|histolog|clinical\s+correlation)",
    r"\b(?:diagnosis|determination|confirmation|classification|staging|grading"
    r"|characteri[sz]ation)\s+(?:would\s+)?requires?\b",
    r"\b(?:it\s+is|it's)\s+(?:not\s+clear|unclear)\b",
    r"\b(?:does\s+not|doesn't|do\s+not|don't)\s+(?:provide|give|contain|offer|allow|have)\s+"
    r"(?:enough|sufficient|adequate)",
    r"\b(?:not\s+|in)sufficient\s+(?:to|for)\b",
)
"""A decline without an apology, deferring to more information ("the stage is not provided",
"further tests would be needed"): a refusal when the reply names no option at all."""
DISCLAIMERS = (
    r"\bconsult\s+(?:with\s+)?(?:a|an|your|the)?\s*(?:qualified\s+|licensed\s+)?(?:medical"
    r"|health|doctor|physician|radiologist|dermatologist|pathologist|neurologist|oncologist"
    r"|professional|specialist|expert|clinician)",
    r"\bsee\s+a\s+(?:doctor|dermatologist|specialist|physician)",
    r"\bseek\s+(?:medical|professional|expert)",
    r"\bi(?:'m|\s+am)\s+not\s+(?:a\s+)?(?:medical|doctor|radiologist|physician|healthcare"
    r"|qualified)",
    r"\bnot\s+(?:a\s+)?(?:substitute|medical\s+advice|diagnosis)",
    r"\bnot\s+qualified",
)
"""A disclaimer: a refusal only when the rest of the reply says (almost) nothing."""

GENERIC_WORDS = frozenset({
    # category nouns: naming one does not name a diagnosis among several of its kind
    "carcinoma", "cancer", "tumor", "tumour", "neoplasm", "lesion", "mass", "disease", "cell",
    "cells", "tissue", "type", "stage", "grade", "finding", "findings", "pattern", "image",
    # anatomy, sides and sizes
    "lung", "lungs", "lobe", "left", "right", "upper", "lower", "middle", "hilum", "brain",
    "skin", "chest", "bone", "breast", "liver", "kidney", "colon", "large", "small", "big",
    "central", "peripheral", "bilateral", "unilateral", "primary", "secondary", "distal",
    "proximal", "sided", "side", "region", "territory", "acute", "chronic", "subacute", "mild",
    "moderate", "severe", "early", "late", "patient",
    # modalities
    "radiograph", "x-ray", "x", "ray", "ct", "mri", "scan", "view", "slide", "section",
})  # fmt: skip
"""Words that alone never name an option by its distinctive part (rule `option_text`)."""
FUNCTION_WORDS = frozenset({
    "a", "an", "the", "of", "and", "or", "with", "in", "on", "at", "to", "by", "for", "from",
    "no", "not", "non", "is", "are", "be", "it", "this", "there", "has", "have", "does", "shows",
    "appears", "appear", "arising", "should", "needs",
})  # fmt: skip
"""Words a distinctive part of an option neither starts nor ends with."""
HEAD_CUTS = r",|;|:|\(| (?:of|with|in|involving|at|on|from|showing|due to|secondary to) "
"""Where the diagnostic head of a long option ends ("adenocarcinoma | of the left lower lobe")."""
EXISTENTIAL = (
    r"^(?:there\s+(?:is|are)|it\s+is|this\s+is|the\s+image\s+shows)\s+(?:(?:a|an|the)\s+)?"
)
"""A sentence option's opening that a reply may word otherwise ("There is a large effusion")."""
CLAUSE_SPLIT = r",\s+|;\s+|\s+and\s+|\s+but\s+"
"""Where a sentence option splits into clauses that each may name it."""
SPELLINGS = {
    "tumor": "tumou?r", "hem": "ha?em", "edema": "o?edema", "seborrheic": "seborrho?eic",
    "esophag": "o?esophag", "anemi": "ana?emi", "leukemi": "leuka?emi",
}  # fmt: skip
"""American spellings in an option and the pattern that also reads the British one."""
ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6"}
NUMBERED = frozenset({"stage", "grade", "type", "class", "phase", "level", "who"})
"""Words after which a roman numeral and its arabic number are the same ("stage ii" = "stage 2")."""
ECHO_LEADS = r"\b(?:options?|choices?|one\s+of|choose\s+from|possible\s+answers?)\b[^.\n]{0,20}$"
"""Text just before a list of all the offered options that marks it as an echo of the prompt."""
