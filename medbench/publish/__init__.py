"""Publish: leaderboard records, their re-derivation and `verify`, records from results, the
whole `medbench run` job and the static site. The last stage of the library.
"""

from __future__ import annotations

from medbench.publish.job import JobOptions, run_job
from medbench.publish.local import publish_results
from medbench.publish.reading import record_paths
from medbench.publish.republish import Republishing, republish_stale
from medbench.publish.stale import StaleRecord, stale_records, stale_warnings
from medbench.publish.verify import nothing_verified, verify_records

__all__ = [
    "JobOptions",
    "Republishing",
    "StaleRecord",
    "nothing_verified",
    "publish_results",
    "record_paths",
    "republish_stale",
    "stale_records",
    "stale_warnings",
    "run_job",
    "verify_records",
]
