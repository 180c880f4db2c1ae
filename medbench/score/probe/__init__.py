"""Linear probes on vision-encoder embeddings, t-SNE maps, and the knowledge ladder.

Where is a diagnosis lost: absent from what the model's vision encoder sees, or lost between
seeing and answering? Extraction needs torch and imports it only when a vector is missing.
"""

from __future__ import annotations

from medbench.score.probe.classifier import (
    ProbeResult,
    fold_scores,
    pixel_features,
    probe,
    sample_groups,
    summarise,
)
from medbench.score.probe.embeddings import (
    EMBED_FORMAT,
    EMBED_RULE,
    KINDS,
    Embeddings,
    EmbeddingStore,
    can_embed,
    embedding_key,
    get_embeddings,
    store_path,
)
from medbench.score.probe.ladder import (
    LADDER_COLUMNS,
    PREDICTION_COLUMNS,
    PROBE_COLUMNS,
    _answer_columns,
    answer_marks,
    ladder_rows,
    run_probe_stage,
)
from medbench.score.probe.reading import reading
from medbench.score.probe.tsne import MARKS, tsne_svg

__all__ = [
    "_answer_columns",
    "EMBED_FORMAT",
    "EMBED_RULE",
    "KINDS",
    "LADDER_COLUMNS",
    "PREDICTION_COLUMNS",
    "MARKS",
    "PROBE_COLUMNS",
    "EmbeddingStore",
    "Embeddings",
    "ProbeResult",
    "answer_marks",
    "can_embed",
    "embedding_key",
    "get_embeddings",
    "ladder_rows",
    "pixel_features",
    "probe",
    "reading",
    "run_probe_stage",
    "fold_scores",
    "sample_groups",
    "summarise",
    "store_path",
    "tsne_svg",
]
