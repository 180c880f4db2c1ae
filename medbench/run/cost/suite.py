"""`medbench plan --cost`: plan a suite (models whose revision cannot be resolved here under a
placeholder identity) and count what it would cost."""

from __future__ import annotations

from pathlib import Path

from medbench.run.cache import Cache
from medbench.run.cost.calibration import read_calibration
from medbench.run.cost.estimate import PlanCost, plan_cost
from medbench.run.prepare import plan_suite


def suite_cost(
    specs_path: Path,
    suite: str,
    cache: Cache,
    models: list[str] | None = None,
    tasks: list[str] | None = None,
    limit: int | None = None,
    calibration: Path | None = None,
) -> PlanCost:
    """The cost of the suite's plan; GPU-hours when `calibration` names a calibration file."""
    measured = read_calibration(calibration) if calibration is not None else None
    specs, plan = plan_suite(specs_path, suite, cache, models, tasks, limit, placeholders=True)
    return plan_cost(plan, specs, measured)
