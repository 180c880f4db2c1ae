"""Parser audit: a stratified sample of parsed answers, read again by a judge model.

Not a scorer: the rule-based parse stays the only input to scores. The audit shows, per
rule, how often a judge model (any backend; its answers cached like every job) reads a reply
as the parser did, and lists the replies where they differ.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medbench.run import Job, content_key
from medbench.score.parsing import parse_answer
from medbench.spec import Messages

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from medbench.run import Cache, Plan
    from medbench.spec.loading import SpecSet

JUDGE_PROMPT = (
    "A model was asked a question about a medical image and offered these options: {options}.\n"
    'Its reply was:\n"""\n{reply}\n"""\n'
    "Which option does the reply commit to? If it declines to answer, say refusal; if it "
    "commits to none or to several, say unparseable. Answer with exactly one of: {choices}."
)
JUDGE_SYSTEM = "You read model replies as a careful annotator: what the reply commits to."
NO_ANSWER = ("refusal", "unparseable")


@dataclass(frozen=True)
class Judged:
    """One sampled answer: what the parser read and what the judge read."""

    rule: str
    text: str
    parsed: str
    """The option, `refusal` or `unparseable` (the parser's)."""
    judged: str
    """The same for the judge, or `judge_unparseable` when its reply names none of them."""

    @property
    def agrees(self) -> bool:
        return self.parsed == self.judged


def sample_by_rule(answers: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """Up to `n` scored answers, taken round-robin over the rules that fired (each rule's
    answers in a seeded, deterministic order), so rare rules are seen too."""
    rows = answers[answers["status"] != "error"].copy()
    keys = ["model", "task", "family", "variant", "pipeline", "sample"]
    rows["_order"] = [
        hashlib.sha256(f"{seed}:{':'.join(map(str, r))}".encode()).hexdigest()
        for r in rows[keys].itertuples(index=False)
    ]
    by_rule: dict[str, list[Any]] = {
        str(rule): group.sort_values("_order").index.tolist()
        for rule, group in rows.groupby("rule", sort=True)
    }
    chosen: list[Any] = []
    while len(chosen) < n and any(by_rule.values()):
        for rule in sorted(by_rule):
            if by_rule[rule] and len(chosen) < n:
                chosen.append(by_rule[rule].pop(0))
    return rows.loc[chosen].drop(columns="_order")


def _options(plan: Plan, specs: SpecSet, row: Any) -> tuple[str, ...]:
    if specs.families[row.family].answer == "yes_no":
        return ("yes", "no")
    return plan.prompt(row.family, row.variant, row.task, row.sample).rendered.options


def _parsed(specs: SpecSet, row: Any) -> str:
    """The parser's reading as an option name (answers store label ids)."""
    if row.status != "answer":
        return str(row.status)
    if specs.families[row.family].answer == "yes_no":
        return str(row.parsed)
    names = {label.id: label.name for label in specs.tasks[row.task].labels}
    return names[row.parsed]


def judge_messages(options: tuple[str, ...], reply: str) -> Messages:
    """The judge's text-only prompt for one reply."""
    choices = ", ".join([*options, *NO_ANSWER])
    text = JUDGE_PROMPT.format(options=", ".join(options), reply=reply, choices=choices)
    return Messages(JUDGE_SYSTEM, text, ())


def judge_jobs(
    plan: Plan, specs: SpecSet, judge: str, sample: pd.DataFrame, models_dir: Path
) -> list[Job]:
    """One judge job per sampled answer, added to the plan's text-only requests."""
    from medbench.run import resolve_identity

    if judge not in plan.identities:
        spec = specs.model(judge)
        plan.identities[judge] = resolve_identity(spec, specs.root, models_dir, specs=specs)
    identity = plan.identities[judge]
    jobs = []
    for row in sample.itertuples(index=False):
        messages = judge_messages(_options(plan, specs, row), str(row.text))
        key = content_key({"model": identity.payload, "messages": messages.key_payload()})
        plan.diagnoses[key] = messages
        pipeline = f"audit/{row.pipeline}"
        task, family, variant = str(row.task), str(row.family), str(row.variant)
        sample_id, label, model = str(row.sample), str(row.label), str(row.model)
        jobs.append(Job(key, judge, task, family, variant, sample_id, label, pipeline, model))
    return jobs


def read_judgements(
    plan: Plan, specs: SpecSet, cache: Cache, sample: pd.DataFrame, jobs: list[Job]
) -> list[Judged]:
    """The parser's and the judge's readings of each sampled answer the judge answered."""
    stored = cache.get_many(job.key for job in jobs)
    judged = []
    for row, job in zip(sample.itertuples(index=False), jobs, strict=True):
        answer = stored.get(job.key)
        if answer is None or answer.error is not None:
            continue
        options = _options(plan, specs, row)
        read = parse_answer(answer.output or "", [*options, *NO_ANSWER])
        verdict = read.label if read.label is not None else "judge_unparseable"
        judged.append(Judged(str(row.rule), str(row.text), _parsed(specs, row), verdict))
    return judged


def agreement(judged: list[Judged]) -> list[tuple[str, int, int]]:
    """(rule, answers judged, answers where the judge agrees), by rule."""
    rules = sorted({j.rule for j in judged})
    return [
        (
            rule,
            sum(j.rule == rule for j in judged),
            sum(j.rule == rule and j.agrees for j in judged),
        )
        for rule in rules
    ]
