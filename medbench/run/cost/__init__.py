"""The cost of a suite before it runs: token counts per model, and GPU-hours from a calibration
measured by the GPU check."""

from __future__ import annotations

from medbench.run.cost.calibration import (
    CALIBRATION_FORMAT,
    Calibration,
    Speed,
    read_calibration,
    write_calibration,
)
from medbench.run.cost.estimate import COUNTS, ModelCost, PlanCost, plan_cost, report_lines
from medbench.run.cost.suite import suite_cost
from medbench.run.cost.tokens import (
    FAMILY_RULES,
    ImageRule,
    TextCounter,
    checkpoint_folder,
    image_rule,
    llava_next_tokens,
)

__all__ = [
    "CALIBRATION_FORMAT",
    "COUNTS",
    "FAMILY_RULES",
    "Calibration",
    "ImageRule",
    "ModelCost",
    "PlanCost",
    "Speed",
    "TextCounter",
    "checkpoint_folder",
    "image_rule",
    "llava_next_tokens",
    "plan_cost",
    "read_calibration",
    "report_lines",
    "suite_cost",
    "write_calibration",
]
