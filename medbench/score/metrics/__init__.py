"""Metrics: scores with bootstrap intervals, fragility across prompt variants, paired tests.

Answers are integer codes: a class index ``0..K-1``, ``REFUSAL`` (-1) or ``UNPARSEABLE``
(-2); truth is a class index. Every function is pure: arrays (or lists) in, floats or
frozen dataclasses out. Conventions:

- Macro averages run over all K classes, as scikit-learn's ``labels=range(K)``,
  ``zero_division=0``: a class absent from both truth and prediction scores F1 = 0.
- ``f1_all``: a refusal or unparseable answer matches no class, a false negative for
  the true class and a false positive for none. ``balanced_accuracy`` averages recall
  over the classes present in truth, refusals counting as wrong.
- Across variants codes are compared as-is: refusal and unparseable are answers.
  ``refusal_flip_rate`` counts an unparseable answer as not refused. Fleiss' kappa
  uses the codes as categories (unused ones change nothing).
- Intervals are 95% expanded percentile bootstraps over images (Hesterberg's: wider for
  few images or clusters), from ``np.random.default_rng(seed)`` with ``n_boot`` resamples
  (0: NaN intervals). Extreme-value statistics (spread, worst-variant scores) have none; the
  noise floor's is the exact Clopper-Pearson interval. All
  metrics of one call share the resamples, which keep each image's answers together
  (variants, or the two models of a pair). Resamples where a metric is undefined are
  left out of its interval. Intervals depend only on the set of (truth, answers) rows,
  not on their order.
- Per model, entries (task, prompt family) weigh equally and each task's images are
  resampled within it, one resample shared by every family of the task.
- ``all_variants_kappa`` (the headline): Cohen's kappa of each image's consensus answer
  against truth, chance-corrected so that no constant, refusing or random model wins.
- ``all_variants_f1``: macro-F1 of each image's consensus answer, the
  answer all variants agree on or ``NO_CONSENSUS`` (matching no class) when they differ.
- Clusters: every bootstrap takes ``groups``, a cluster label per image (the patient, the
  source image of augmented copies). The resamples then draw whole clusters (a cluster
  bootstrap; paired functions keep both sides of every image of a cluster together), and
  with every cluster a singleton the intervals equal the unclustered ones for the same
  seed. ``mcnemar_clustered`` is Obuchowski's test, McNemar's for clustered images, with
  fewer than ``MIN_CLUSTERS_ASYMPTOTIC`` clusters (or a zero variance) the exact cluster
  permutation test; ``holm`` adjusts the pair table's p-values across tasks. With as few
  clusters the paired F1 difference's interval is the one ``paired_f1_test`` (the exact
  cluster swap test) does not reject, which excludes 0 exactly when its p is below 0.05.
- Robustness: ``mean_relative_f1`` is the mean over entries of F1 under each severity level
  relative to the clean image's F1, the clean and perturbed answers of an image resampled
  together; ``pooled_shares`` the share of each category among the images of all entries
  pooled. Both resample each task's images within it, as the per-model means do.
"""

from medbench.score.metrics._bootstrap import CONFIDENCE, Estimate
from medbench.score.metrics._calibration import (
    ECE_BINS,
    RiskCoverage,
    brier,
    confidence,
    ece,
    risk_coverage,
    softmax,
)
from medbench.score.metrics._chance import chance_p_value, worse_than_chance
from medbench.score.metrics._circular import (
    NO_CONSENSUS,
    all_variants_f1,
    all_variants_kappa,
    consensus,
)
from medbench.score.metrics._classification import (
    VariantScores,
    accuracy,
    balanced_accuracy,
    chance_f1,
    f1_all,
    f1_answered,
    kappa,
    refusal_rate,
    score_variant,
    score_variants,
    unparseable_rate,
)
from medbench.score.metrics._codes import REFUSAL, UNPARSEABLE
from medbench.score.metrics._family import (
    FamilyScores,
    disagreement,
    fleiss_kappa,
    flip_rate,
    pdr,
    prompt_sensitivity,
    refusal_flip_rate,
    score_family,
    spread,
    worst_f1,
)
from medbench.score.metrics._model import (
    TaskAnswers,
    fragility_index,
    has_skill,
    mean_all_variants_f1,
    mean_all_variants_kappa,
    mean_f1_all,
    mean_kappa,
    mean_worst_f1,
    mean_worst_kappa,
)
from medbench.score.metrics._noise import noise_floor
from medbench.score.metrics._paired import (
    MIN_CLUSTERS_ASYMPTOTIC,
    McNemarResult,
    holm,
    mcnemar_clustered,
    mcnemar_exact,
    paired_disagreement_difference,
    paired_f1_difference,
    paired_f1_test,
)
from medbench.score.metrics._robustness import NOT_ASKED, mean_relative_f1, pooled_shares
from medbench.score.metrics._swap import SwapTest
from medbench.score.metrics._units import Units, as_clusters, group_units
from medbench.score.metrics._version import SCORING_VERSION

__all__ = [
    "MIN_CLUSTERS_ASYMPTOTIC",
    "CONFIDENCE",
    "NO_CONSENSUS",
    "NOT_ASKED",
    "ECE_BINS",
    "MIN_CLUSTERS_ASYMPTOTIC",
    "REFUSAL",
    "SCORING_VERSION",
    "UNPARSEABLE",
    "Estimate",
    "FamilyScores",
    "McNemarResult",
    "RiskCoverage",
    "SwapTest",
    "TaskAnswers",
    "Units",
    "VariantScores",
    "accuracy",
    "all_variants_f1",
    "all_variants_kappa",
    "as_clusters",
    "balanced_accuracy",
    "brier",
    "chance_f1",
    "chance_p_value",
    "consensus",
    "confidence",
    "disagreement",
    "ece",
    "f1_all",
    "f1_answered",
    "fleiss_kappa",
    "flip_rate",
    "fragility_index",
    "group_units",
    "holm",
    "has_skill",
    "kappa",
    "mcnemar_clustered",
    "mcnemar_exact",
    "mean_all_variants_f1",
    "mean_all_variants_kappa",
    "mean_f1_all",
    "mean_kappa",
    "mean_relative_f1",
    "mean_worst_f1",
    "mean_worst_kappa",
    "noise_floor",
    "paired_disagreement_difference",
    "paired_f1_difference",
    "paired_f1_test",
    "pdr",
    "pooled_shares",
    "prompt_sensitivity",
    "refusal_flip_rate",
    "refusal_rate",
    "risk_coverage",
    "score_family",
    "score_variant",
    "score_variants",
    "softmax",
    "spread",
    "unparseable_rate",
    "worse_than_chance",
    "worst_f1",
]
