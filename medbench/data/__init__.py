"""Data: sources -> samples. Image folders, manifests, tables and Hub datasets; safe image
decoding and hashing; image variants and ablations; checks of a spec's data at its fields.

Imports only `medbench.spec` (and the ground floor); later stages use the names below.
"""

from __future__ import annotations

from medbench.data.canonical import canonical_json
from medbench.data.checks import check_data
from medbench.data.hubcache import SHA_RE, hf_cache_dir, hub_offline, local_ref
from medbench.data.images import ImageError, load_image, pad_to_square
from medbench.data.samples import (
    DATA_ENV,
    Hasher,
    Sample,
    confine,
    data_root,
    fingerprint,
    hub_revision,
    load_samples,
    read_samples,
    resolve_data_path,
    sha256_file,
)

__all__ = [
    "DATA_ENV",
    "SHA_RE",
    "Hasher",
    "ImageError",
    "Sample",
    "canonical_json",
    "check_data",
    "confine",
    "data_root",
    "fingerprint",
    "hf_cache_dir",
    "hub_offline",
    "hub_revision",
    "load_image",
    "load_samples",
    "local_ref",
    "pad_to_square",
    "read_samples",
    "resolve_data_path",
    "sha256_file",
]
