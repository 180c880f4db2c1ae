"""Run: plan the jobs of a suite, key them by content, and compute what the answer cache lacks.

Plans and content keys, model identity, the answer cache, batching, executors (local, Ray),
backends (hf, openai, baseline), the run loop and its up-to-date check, cache upkeep, and the
likelihood requests. Imports only `spec` and `data`; later stages use the names below.
"""

from __future__ import annotations

from medbench.run.cache import Cache, cache_file, content_key, default_cache_path
from medbench.run.diagnose import attach_diagnoses
from medbench.run.identity import (
    TEST_MODEL_MARKER,
    ModelIdentity,
    marked_test_model,
    resolve_identity,
)
from medbench.run.imagejobs import carry_over_answers, derive_for
from medbench.run.jobs import Job
from medbench.run.loop import RunSummary, run_plan, run_suite
from medbench.run.plan import Plan, make_plan
from medbench.run.prepare import open_cache, plan_suite
from medbench.run.progress import Step, step
from medbench.run.rerun import clear_stamp, reusable, run_inputs, run_outputs, write_stamp
from medbench.run.served import Probing, recorded
from medbench.run.store import open_store, transaction
from medbench.run.tinydata import (
    TRAIN_RECIPE_VERSION,
    Example,
    StartPoint,
    TrainingData,
    training_data,
    training_examples,
)
from medbench.run.upkeep import Usage, by_model, export_rows, usage

__all__ = [
    "carry_over_answers",
    "derive_for",
    "TEST_MODEL_MARKER",
    "clear_stamp",
    "reusable",
    "run_inputs",
    "run_outputs",
    "write_stamp",
    "TRAIN_RECIPE_VERSION",
    "Cache",
    "Example",
    "Job",
    "ModelIdentity",
    "Plan",
    "Probing",
    "RunSummary",
    "Step",
    "StartPoint",
    "TrainingData",
    "Usage",
    "attach_diagnoses",
    "by_model",
    "cache_file",
    "content_key",
    "default_cache_path",
    "export_rows",
    "open_cache",
    "open_store",
    "plan_suite",
    "recorded",
    "make_plan",
    "marked_test_model",
    "resolve_identity",
    "run_plan",
    "run_suite",
    "step",
    "training_data",
    "training_examples",
    "transaction",
    "usage",
]
