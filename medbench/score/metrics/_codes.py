"""Answer codes: the integer encoding of predictions and its validation."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
FeatureArray = npt.NDArray[np.float32]
"""Per-image features: small non-negative integers, exact in float32 at half the memory."""

REFUSAL = -1
"""Prediction code for an answer in which the model declines to diagnose."""

UNPARSEABLE = -2
"""Prediction code for an answer that maps to no label and is not a refusal."""


def check_n_classes(n_classes: int) -> None:
    """Reject a class count below 1."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")


def check_n_boot(n_boot: int) -> None:
    """Reject a negative number of bootstrap resamples."""
    if n_boot < 0:
        raise ValueError(f"n_boot must be 0 (no interval) or more, got {n_boot}")


def _as_int_array(values: npt.ArrayLike, name: str, ndim: int) -> IntArray:
    array = np.asarray(values)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got none")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer codes, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _check_range(array: IntArray, name: str, low: int, high: int) -> None:
    bad = (array < low) | (array > high)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        where = position[0] if len(position) == 1 else position
        raise ValueError(
            f"{name} must hold codes in {low}..{high}, got {int(array[bad][0])} at {where}"
        )


def as_truth(truth: npt.ArrayLike, n_classes: int, name: str = "truth") -> IntArray:
    """Validate a truth vector of class indices in ``0..n_classes-1``."""
    check_n_classes(n_classes)
    array = _as_int_array(truth, name, 1)
    _check_range(array, name, 0, n_classes - 1)
    return array


def as_predictions(pred: npt.ArrayLike, n_classes: int, name: str = "pred") -> IntArray:
    """Validate a prediction vector: class indices, ``REFUSAL`` or ``UNPARSEABLE``."""
    check_n_classes(n_classes)
    array = _as_int_array(pred, name, 1)
    _check_range(array, name, UNPARSEABLE, n_classes - 1)
    return array


def as_answers(answers: npt.ArrayLike, name: str = "answers") -> IntArray:
    """Validate an (images, variants) matrix of answer codes with at least two variants.

    Codes are compared as-is, so any integer is accepted.
    """
    array = _as_int_array(answers, name, 2)
    if array.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 variant columns, got {array.shape[1]}")
    return array


def as_answers_for(answers: npt.ArrayLike, n_classes: int, name: str = "answers") -> IntArray:
    """Validate an (images, variants) answer matrix against ``n_classes`` (one column allowed)."""
    check_n_classes(n_classes)
    array = _as_int_array(answers, name, 2)
    if array.shape[1] < 1:
        raise ValueError(f"{name} must have at least 1 variant column, got none")
    _check_range(array, name, UNPARSEABLE, n_classes - 1)
    return array


def check_same_images(n_truth: int, n_other: int, name: str, truth: str = "truth") -> None:
    """Reject a prediction vector or answer matrix whose image count differs from truth."""
    if n_truth != n_other:
        raise ValueError(f"{name} must cover the {n_truth} images of {truth}, got {n_other}")
