"""Embedding logic that needs no model: batching order, reuse planning, config rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag_ingest import pipeline
from rag_ingest.backend_choice import (
    FAITHFUL_COSINE,
    BackendChoice,
    batch_size,
    choose_backend,
    fastest_faithful,
)
from rag_ingest.config import ConfigError, EmbeddingConfig, Settings
from rag_ingest.embedding import (
    length_sorted_batches,
    model_dimension,
    model_token_limit,
    resolve_model_path,
)
from rag_ingest.embedding_backends import choose_device, pool_devices
from rag_ingest.sync import StoredChunk, plan_embeddings

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _padding(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(
        max(lengths[i] for i in batch) * len(batch) - sum(lengths[i] for i in batch)
        for batch in batches
    )


def test_length_sorted_batches_cover_every_text_once_longest_first() -> None:
    lengths = [5, 250, 17, 90, 3, 250, 40, 41, 120]
    batches = list(length_sorted_batches(lengths, 4))
    assert [len(b) for b in batches] == [4, 4, 1]
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


def test_length_sorted_batches_pad_less_than_arrival_order() -> None:
    lengths = [(i * 37) % 251 + 5 for i in range(256)]
    arrival = [list(range(i, i + 32)) for i in range(0, 256, 32)]
    sorted_batches = list(length_sorted_batches(lengths, 32))
    assert _padding(lengths, sorted_batches) < _padding(lengths, arrival) / 5


def _stored(chunk: str, text_hash: str, model: str = MODEL) -> StoredChunk:
    return StoredChunk("d-old", chunk, "/old.md", "h", "fp", model, text_hash)


def test_identical_text_is_computed_once_and_stored_text_is_reused() -> None:
    plan = plan_embeddings(
        [("new-1", "t-a"), ("new-2", "t-b"), ("new-3", "t-a"), ("new-4", "t-stored")],
        [_stored("old-1", "t-stored"), _stored("old-2", "t-stored")],
        model_id=MODEL,
    )
    assert plan.compute == ["new-1", "new-2"]
    assert plan.from_run == {"new-3": "new-1"}
    assert plan.from_store == {"new-4": "old-1"}


def test_vectors_of_another_model_or_without_text_hash_are_not_reused() -> None:
    plan = plan_embeddings(
        [("new-1", "t-a"), ("new-2", "t-b")],
        [_stored("old-1", "t-a", model="other/model"), _stored("old-2", "t-b")],
        model_id=MODEL,
    )
    assert plan.from_store == {"new-2": "old-2"}
    legacy = StoredChunk("d", "old-3", "/x.md", "h", "fp", MODEL)  # stored before text_hash
    assert plan_embeddings([("n", "t-c")], [legacy], model_id=MODEL).compute == ["n"]


def test_full_resync_recomputes_stored_text_but_still_once() -> None:
    plan = plan_embeddings(
        [("new-1", "t-a"), ("new-2", "t-a")],
        [_stored("old-1", "t-a")],
        model_id=MODEL,
        reuse_stored=False,
    )
    assert plan.compute == ["new-1"]
    assert plan.from_run == {"new-2": "new-1"}
    assert plan.from_store == {}


def test_device_is_chosen_automatically_and_can_be_overridden() -> None:
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device("auto") == expected
    assert choose_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no usable CUDA GPU"):
            choose_device("cuda")
        assert pool_devices(EmbeddingConfig(), "cpu") == []
    assert pool_devices(EmbeddingConfig(devices=("cpu", "cpu")), "cpu") == ["cpu", "cpu"]


def test_backend_auto_is_torch_on_gpus_and_a_configured_backend_is_kept(tmp_path: Path) -> None:
    """Decided before any model or export is touched (the folder here holds none)."""
    empty = tmp_path / "no-model"
    for config, device in ((EmbeddingConfig(device="cuda"), "cuda"),
                           (EmbeddingConfig(device="mps"), "mps"),
                           (EmbeddingConfig(devices=("cuda:0", "cuda:1")), "cuda")):  # fmt: skip
        expected = "fp16" if device == "cuda" else "fp32"
        assert choose_backend(config, empty, tmp_path, 384, 256, device) == BackendChoice(
            "torch", expected
        )
    for backend, precision in (("torch", "fp32"), ("onnx", "fp32"), ("onnx-int8", "int8")):
        config = EmbeddingConfig(backend=backend)  # type: ignore[arg-type]
        assert choose_backend(config, empty, tmp_path, 384, 256, "cpu") == BackendChoice(
            backend, precision
        )
    # An explicit PyTorch precision on a CPU is taken as asked, not measured.
    for precision in ("bf16", "fp16"):
        config = EmbeddingConfig(precision=precision)  # type: ignore[arg-type]
        assert choose_backend(config, empty, tmp_path, 384, 256, "cpu") == BackendChoice(
            "torch", precision
        )
    assert EmbeddingConfig().backend == "auto"  # the default
    assert not list(tmp_path.rglob("*.json"))  # nothing measured


def _measured(backend: str, precision: str, cosine: float, speed: float) -> dict[str, object]:
    return {"backend": backend, "precision": precision, "min_cosine": cosine,
            "texts_per_second": speed}  # fmt: skip


def test_auto_takes_the_fastest_faithful_candidate_among_those_this_worker_can_run() -> None:
    import random

    names = [("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32")]
    for seed in range(50):
        rng = random.Random(seed)
        measured = [
            _measured(
                b, p, rng.choice([1.0, 0.99999, FAITHFUL_COSINE, 0.99989, 0.9]), rng.uniform(10, 90)
            )  # fmt: skip
            for b, p in names
        ]
        runnable = [
            BackendChoice(b, p) for b, p in names if (b, p) == names[0] or rng.random() < 0.7
        ]
        chosen = fastest_faithful(measured, runnable)
        faithful = [
            m for m in measured
            if m["min_cosine"] >= FAITHFUL_COSINE  # type: ignore[operator]
            and BackendChoice(m["backend"], m["precision"]) in runnable  # type: ignore[arg-type]
        ]  # fmt: skip
        if faithful:
            best = max(faithful, key=lambda m: m["texts_per_second"])  # type: ignore[arg-type,return-value]
            assert chosen == BackendChoice(best["backend"], best["precision"])  # type: ignore[arg-type]
            assert all(m["texts_per_second"] <= best["texts_per_second"] for m in faithful)  # type: ignore[operator]
        else:
            assert chosen == BackendChoice("torch", "fp32")  # the reference itself
        assert chosen in runnable


def test_batch_size_auto_is_small_on_a_cpu_and_larger_on_a_gpu() -> None:
    assert batch_size(EmbeddingConfig(), "cpu") == 16
    assert batch_size(EmbeddingConfig(), "cuda") == 64
    assert batch_size(EmbeddingConfig(batch_size=8), "cuda") == 8
    for bad in (0, -1, "big"):
        with pytest.raises(ValueError, match="batch_size"):
            EmbeddingConfig(batch_size=bad)  # type: ignore[arg-type]


def test_precisions_a_backend_cannot_run_are_refused() -> None:
    with pytest.raises(ValueError, match="PyTorch precision"):
        EmbeddingConfig(backend="onnx", precision="bf16")
    with pytest.raises(ValueError, match="PyTorch precision"):
        EmbeddingConfig(backend="onnx-int8", precision="fp16")
    with pytest.raises(ValueError, match="device pool"):
        EmbeddingConfig(precision="bf16", devices=("cpu", "cpu"))
    assert EmbeddingConfig(backend="torch", precision="bf16").precision == "bf16"


def test_onnx_backends_are_refused_on_gpu_devices() -> None:
    with pytest.raises(ValueError, match="runs on the CPU"):
        EmbeddingConfig(backend="onnx", device="cuda")
    assert EmbeddingConfig(backend="onnx-int8").device == "auto"


def test_model_facts_come_from_the_folder_without_loading_it() -> None:
    assert model_dimension("packaged:all-MiniLM-L6-v2") == 384
    assert model_token_limit("packaged:all-MiniLM-L6-v2") == 254


def test_a_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="embedding.model_path.*does not exist"):
        resolve_model_path(str(tmp_path / "no-such-model"))
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(FileNotFoundError, match="modules.json is missing"):
        model_dimension(str(tmp_path / "not-a-model"))


def test_a_model_whose_dimension_differs_from_the_store_is_refused(tmp_path: Path) -> None:
    # A copy of the packaged model whose pooling says 768 dimensions.
    folder = tmp_path / "wide-model"
    shutil.copytree(resolve_model_path("packaged:all-MiniLM-L6-v2"), folder)
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(
        json.dumps({**json.loads(pooling.read_text()), "word_embedding_dimension": 768})
    )
    settings = Settings.model_validate(
        {"sources": [{"name": "s", "location": "corpus"}], "embedding": {"model_path": str(folder)}}
    )
    with pytest.raises(ConfigError, match="makes 768-dimension vectors but the store holds 384"):
        pipeline.binding.check_dimension(settings, 384)
    pipeline.binding.check_dimension(settings, 768)
    pipeline.binding.check_dimension(settings, None)  # an empty store takes any dimension


def test_progress_logs_done_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    from rag_ingest.embedding import Progress

    caplog.set_level("INFO", logger="rag_ingest.embedding")
    progress = Progress(total=300, what="shard-00000", every_seconds=0.0)
    progress.update(100)
    progress.update(200)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "shard-00000: embedded 100/300 chunks (33%)" in lines[0]
    assert "chunks/s, about" in lines[0] and "s left" in lines[0]
    assert "300/300 chunks (100%)" in lines[1]
    quiet = Progress(total=300, what="s", every_seconds=3600)
    caplog.clear()
    quiet.update(10)  # throttled: no line until the interval passes or the end
    quiet.update(290)
    assert [r.getMessage() for r in caplog.records][-1].startswith("s: embedded 300/300")
    assert len(caplog.records) == 1


def test_a_sentence_transformers_6_folder_gives_its_token_limit_and_dimension(
    tmp_path: Path,
) -> None:
    """sentence-transformers 6 saves no max_seq_length and renames the pooling key."""
    import json

    from rag_ingest.embedding import model_dimension, model_token_limit

    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    files = {
        "sentence_bert_config.json": {"transformer_task": "feature-extraction"},
        "tokenizer_config.json": {"model_max_length": 256},
        "config.json": {"max_position_embeddings": 512, "hidden_size": 384},
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "x.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "x.Pooling"},
        ],
        "1_Pooling/config.json": {"embedding_dimension": 384, "pooling_mode": "mean"},
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content))
    assert model_token_limit(str(folder)) == 254
    assert model_dimension(str(folder)) == 384
