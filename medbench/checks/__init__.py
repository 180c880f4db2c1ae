"""Maintainer self-checks: batch invariance, what a model receives, the GPU check and the
parser audit.
"""

from __future__ import annotations

from medbench.checks.audit import agreement, judge_jobs, read_judgements, sample_by_rule
from medbench.checks.invariance import check_batch_invariance, checked_models, suite_of
from medbench.checks.received import received_prompts

__all__ = [
    "agreement",
    "check_batch_invariance",
    "checked_models",
    "judge_jobs",
    "read_judgements",
    "received_prompts",
    "sample_by_rule",
    "suite_of",
]
