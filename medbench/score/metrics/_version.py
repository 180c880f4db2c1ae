"""The scoring version: which definitions and intervals produced a record's numbers."""

SCORING_VERSION = 2
"""Bumped by every change to a published number. 1 (records without the field): before
issue 27. 2 (issue 27): the chance-corrected headline `all_variants_kappa` with `mean_kappa`
and `mean_worst_kappa`; model intervals drawn from one image resample per task; the noise
floor's exact (Clopper-Pearson) interval; the cluster permutation test below 30 clusters and
the pairs' Holm-adjusted p; "worse than chance" against the chance distribution at N; new
columns `prompt_sensitivity`, `chance_p`, `kappa`, `test`, `mcnemar_p_holm`; extreme-value
statistics without an interval; expanded percentile intervals; below 30 clusters, the paired
F1 difference's interval from the exact cluster swap test (no published record had such a
row, so none changed)."""
