"""Resampling units: the distinct answer rows, pooled into clusters (patients) when given."""

# The bootstrap resamples units, each unit's features being the column sums of its images'
# features. Without clusters a unit is an image, and images with equal rows are one group
# of that many units. With clusters a unit is a cluster: the sum of its members' features.
# Clusters holding the same multiset of rows have the same features, so they are grouped
# too: a cluster's signature is its sorted row ids, and equal signatures form one group.
# With every cluster a singleton the signatures are the row ids themselves, so the groups,
# their order and their sizes are those of the unclustered case: the same seed then draws
# the same resamples and gives the same intervals.

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medbench.score.metrics._codes import FeatureArray, IntArray

_SIGNATURE_CELLS = 1 << 24
"""Most cells of the (clusters x largest cluster) signature matrix; beyond, no grouping."""


@dataclass(frozen=True)
class Units:
    """The distinct rows of a key matrix and how the bootstrap's units are built from them."""

    rows: IntArray
    """(G, m) distinct key rows, sorted."""
    sizes: IntArray
    """(U,) how many resampling units share each unit group; sums to the number of units."""
    members: tuple[IntArray, IntArray, IntArray] | None = None
    """For clusters: (unit group, row, count) triples sorted by unit group; None: a unit
    group is a row."""

    @property
    def n_units(self) -> int:
        """Images, or clusters when clustered: what one resample draws with replacement."""
        return int(self.sizes.sum())

    def pool(self, features: FeatureArray) -> FeatureArray:
        """Per-unit-group features (U, D) from per-row features (G, D)."""
        if self.members is None:
            return features
        group, row, count = self.members
        weighted = features[row] * count[:, None].astype(features.dtype)
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        return np.add.reduceat(weighted, starts, axis=0).astype(features.dtype, copy=False)


def as_clusters(groups: npt.ArrayLike, n_images: int, name: str = "groups") -> IntArray:
    """A cluster index per image from any vector of cluster labels (strings or numbers)."""
    labels = np.asarray(groups)
    if labels.ndim != 1 or len(labels) != n_images:
        raise ValueError(
            f"{name} must label each of the {n_images} images with its cluster, "
            f"got shape {labels.shape}"
        )
    _, index = np.unique(labels, return_inverse=True)
    clusters: IntArray = index.astype(np.int64, copy=False).reshape(-1)
    return clusters


def group_units(keys: IntArray, clusters: IntArray | None = None) -> Units:
    """The resampling units of an (N, m) key matrix, one per image or one per cluster."""
    rows, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    rows = rows.astype(np.int64, copy=False)
    if clusters is None:
        return Units(rows, counts.astype(np.int64, copy=False))
    row_of = inverse.reshape(-1).astype(np.int64, copy=False)
    n_clusters = int(clusters.max()) + 1
    per_cluster = np.bincount(clusters, minlength=n_clusters)
    width = int(per_cluster.max())
    if n_clusters * width <= _SIGNATURE_CELLS:
        order = np.lexsort((row_of, clusters))
        cluster_sorted = clusters[order]
        starts = np.cumsum(per_cluster) - per_cluster
        signatures = np.full((n_clusters, width), -1, dtype=np.int64)
        signatures[cluster_sorted, np.arange(len(order)) - starts[cluster_sorted]] = row_of[order]
        _, group_of, sizes = np.unique(signatures, axis=0, return_inverse=True, return_counts=True)
        group_of = group_of.reshape(-1)
    else:
        group_of, sizes = np.arange(n_clusters), np.ones(n_clusters, dtype=np.int64)
    n_rows = len(rows)
    pairs, pair_counts = np.unique(group_of[clusters] * n_rows + row_of, return_counts=True)
    group, row = pairs // n_rows, pairs % n_rows
    count = pair_counts // sizes[group]
    members = (group.astype(np.int64), row.astype(np.int64), count.astype(np.int64))
    return Units(rows, sizes.astype(np.int64, copy=False), members)
