"""The encoders behind `Embedder`, and the device they run on.

Two encoders: sentence-transformers on PyTorch (CPU or GPU; fp32, fp16 or
bf16 products; a process pool over several devices) and, on CPU, the same
transformer exported to ONNX (rag_ingest.onnx_export) run by ONNX Runtime, in
fp32 or int8. Which one runs is rag_ingest.backend_choice's to say.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence
from glob import glob
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag_ingest.config import ConfigError, EmbeddingConfig

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


class Backend(Protocol):
    dimension: int
    max_seq_length: int

    def encode_batch(self, texts: list[str]) -> np.ndarray: ...

    def encode_pooled(self, texts: list[str], batch_size: int) -> np.ndarray | None: ...

    def close(self) -> None: ...


def cuda_present() -> bool:
    """Whether this worker has a usable CUDA GPU.

    On Linux a machine without NVIDIA device files has none, which spares a
    CPU worker importing torch (over a second) just to ask.
    """
    if sys.platform.startswith("linux") and not glob("/dev/nvidia[0-9]*"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def choose_device(requested: str) -> str:
    """The torch device to run on: `auto` is CUDA when present, else CPU."""
    if requested == "auto":
        return "cuda" if cuda_present() else "cpu"
    if requested == "cuda" and not cuda_present():
        raise ConfigError(
            "embedding.device is 'cuda' but this worker has no usable CUDA GPU "
            "(use 'auto' to fall back to the CPU)"
        )
    return requested


def pool_devices(config: EmbeddingConfig, device: str) -> list[str]:
    """Devices for a multi-process pool; empty when one process is enough."""
    if config.devices:
        return list(config.devices)
    if device == "cuda":
        import torch

        count = torch.cuda.device_count()
        if count > 1:
            return [f"cuda:{index}" for index in range(count)]
    return []


class TorchBackend:
    """sentence-transformers on PyTorch; fp16 on CUDA; a process pool over several devices."""

    def __init__(
        self, path: Path, device: str, precision: str, devices: Sequence[str] = ()
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        # Explicit both ways: transformers may load a checkpoint in its stored dtype.
        if precision == "fp16":
            self.model.half()
        else:
            self.model.float()
        # bf16: fp32 weights, products in bfloat16 under autocast (layer norms, softmax and
        # sums stay fp32), so the vectors stay within FAITHFUL_COSINE of fp32's.
        self.autocast_device = device.split(":")[0] if precision == "bf16" else None
        dimension = self.model.get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"model at {path} does not report its embedding dimension")
        self.dimension = int(dimension)
        self.max_seq_length = int(self.model.max_seq_length or 0)
        self.pool = self.model.start_multi_process_pool(list(devices)) if devices else None

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        with self._precision():
            result: np.ndarray = self.model.encode(
                texts,
                batch_size=len(texts),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return result

    def _precision(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_device is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.autocast_device, dtype=torch.bfloat16)

    def encode_pooled(self, texts: list[str], batch_size: int) -> np.ndarray | None:
        if self.pool is None:
            return None
        # Contiguous slices of length-sorted texts go to the workers, so each
        # worker's batches stay evenly padded.
        result: np.ndarray = self.model.encode(
            texts,
            pool=self.pool,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return result

    def close(self) -> None:
        if self.pool is not None:
            self.model.stop_multi_process_pool(self.pool)
            self.pool = None


class OnnxBackend:
    """The model's transformer as ONNX Runtime graph; pooling and normalising in numpy."""

    def __init__(
        self, path: Path, variant: str, models_dir: Path, dimension: int, max_seq_length: int
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        from rag_ingest import onnx_export

        self.pooling = onnx_export.pooling_mode(path)
        self.dimension, self.max_seq_length = dimension, max_seq_length
        onnx_file = onnx_export.exported_model(path, variant, models_dir)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(
            str(onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.tokenizer.enable_padding()

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        feeds = {name: value for name, value in feeds.items() if name in self.input_names}
        hidden = self.session.run(None, feeds)[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: np.ndarray = pooled / np.clip(norms, 1e-12, None)
        return result

    def encode_pooled(self, texts: list[str], batch_size: int) -> np.ndarray | None:
        return None

    def close(self) -> None:
        pass
