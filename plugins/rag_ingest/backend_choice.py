"""Which encoder runs: the configured one, or `backend: auto`'s measured choice.

On a GPU `auto` is PyTorch (fp16 unless configured otherwise). On a CPU it is
the fastest candidate whose vectors are the published model's: the fp32 ONNX
graph, PyTorch with its matrix products in bfloat16 (only where the CPU has
bfloat16 instructions; emulated it is slower than fp32) and PyTorch fp32, the
reference. Each candidate is compared with the reference on PROBE_TEXTS
(faithful: cosine at least FAITHFUL_COSINE on every one) and timed on
TIMING_TEXTS. Measured once per model, CPU kind and library versions, and kept
beside the model's ONNX export, so later tasks and workers sharing the models
folder only read it. The record keeps the measurements; the choice is made
from them on every read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rag_ingest.config import ConfigError, EmbeddingConfig
from rag_ingest.embedding_backends import Backend, OnnxBackend, TorchBackend

log = logging.getLogger(__name__)

# ONNX fp32 and PyTorch bf16 both measure above 0.99995 against PyTorch fp32 on
# MiniLM (docs/benchmarks.md); below this a candidate is not the same model.
FAITHFUL_COSINE = 0.9999
# Texts per forward pass on a CPU, when `batch_size` is auto (measured, docs/benchmarks.md).
CPU_BATCH_SIZE = 16
GPU_BATCH_SIZE = 64

# Texts the candidates are compared on: short and long, code, non-Latin
# scripts, numbers, and one past the model's token limit (truncation).
PROBE_TEXTS = (
    "a",
    "How does a chunk keep its id when the text around it changes?",
    "def embed(texts: list[str]) -> np.ndarray:\n    return model.encode(texts)",
    "Der Bericht nennt 12 Dateien; 3 davon wurden in Quarantäne gestellt.",
    "東京の図書館は午前九時に開館します。",
    "Ηλεκτρονικό ταχυδρομείο, 2026-12-07 10:15 UTC, θέμα: ευρετήριο.",
    "| station | reading |\n|---|---|\n| 4 | 28 units |",
    " ".join(f"sentence {i} of a very long document about vector stores." for i in range(120)),
)

# Texts the candidates are timed on: chunk-sized (about 200 tokens), two batches.
TIMING_TEXTS = tuple(
    " ".join(
        f"Record {n}: the pump at station {(n * 7) % 97} reported {(n * 13) % 1000} units "
        f"during shift {n % 3}."
        for n in range(text * 14, text * 14 + 14)
    )
    for text in range(2 * CPU_BATCH_SIZE)
)


_RECORD_VERSION = 2


@dataclass(frozen=True)
class BackendChoice:
    backend: str  # torch, onnx or onnx-int8
    precision: str  # fp32, fp16, bf16 (torch) or int8 (onnx-int8)

    @property
    def revision_suffix(self) -> str:
        """What the chunks' `model_revision` adds to the model's: the encoder, when not
        PyTorch in its usual precision (fp32 on a CPU, fp16 on a GPU)."""
        if self.backend != "torch":
            return f"+{self.backend}"
        return "+bf16" if self.precision == "bf16" else ""


def choose_backend(
    config: EmbeddingConfig,
    path: Path,
    models_dir: Path,
    dimension: int,
    max_seq_length: int,
    device: str,
) -> BackendChoice:
    """The backend and precision that run on `device` (a torch device name)."""
    if config.backend == "onnx":
        return BackendChoice("onnx", "fp32")
    if config.backend == "onnx-int8":
        return BackendChoice("onnx-int8", "int8")
    if not is_measured(config, device):
        precision = config.precision
        if precision == "auto":
            precision = "fp16" if device.startswith("cuda") else "fp32"
        return BackendChoice("torch", precision)
    candidates = _candidates(path, allow_bf16=config.precision == "auto")
    if len(candidates) == 1:
        return candidates[0]
    record = export_record(path, models_dir)
    if not record.exists():
        measurements, probe_vectors = _measure(
            candidates, path, models_dir, dimension, max_seq_length
        )
        if any("error" in m for m in measurements):
            # Not kept: a failure may pass (a full disk while exporting); measured again next time.
            return fastest_faithful(measurements, candidates)
        _write_once(
            record,
            {"cpu": cpu_kind(), "candidates": measurements, "probe_vectors": probe_vectors},
        )
    # Read back: of workers that measured at once, every one takes the first record written.
    return fastest_faithful(json.loads(record.read_text())["candidates"], candidates)


def is_measured(config: EmbeddingConfig, device: str) -> bool:
    """Whether auto's choice on `device` comes from measuring candidates (a CPU, one
    process, no precision asked for but fp32) rather than from the configuration."""
    return (
        config.backend == "auto"
        and device == "cpu"
        and not config.devices
        and config.precision in ("auto", "fp32")
    )


def fastest_faithful(
    measurements: list[dict[str, Any]], candidates: list[BackendChoice]
) -> BackendChoice:
    """The fastest measured candidate at FAITHFUL_COSINE or above (fp32 PyTorch is)."""
    allowed = {(c.backend, c.precision) for c in candidates}
    faithful = [
        m
        for m in measurements
        if m["min_cosine"] >= FAITHFUL_COSINE and (m["backend"], m["precision"]) in allowed
    ]
    for m in measurements:
        if m["min_cosine"] < FAITHFUL_COSINE:
            log.warning(
                "embedding.backend auto: %s %s gives vectors at cosine %.6f to PyTorch fp32's "
                "(below %s); not used",
                m["backend"],
                m["precision"],
                m["min_cosine"],
                FAITHFUL_COSINE,
            )
    if not faithful:
        return BackendChoice("torch", "fp32")
    best = max(faithful, key=lambda m: float(m["texts_per_second"]))
    return BackendChoice(best["backend"], best["precision"])


def batch_size(config: EmbeddingConfig, device: str) -> int:
    """Texts per forward pass: the configured number, else the device's measured best."""
    if config.batch_size != "auto":
        return config.batch_size
    return CPU_BATCH_SIZE if device == "cpu" else GPU_BATCH_SIZE


@functools.cache
def cpu_kind() -> str:
    """What the measurement depends on: the CPU's model and instructions, the libraries."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            first_cpu = info.read().split("\n\n")[0]
        fields = {}
        for line in first_cpu.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        flags = fields.get("flags") or fields.get("Features", "")  # x86, Arm
        cpu = f"{fields.get('model name', cpu)} [{flags}]"
    except OSError:
        pass  # not Linux: the processor's name is what there is
    versions = [f"{name}={_version(name)}" for name in ("torch", "onnxruntime")]
    return f"{cpu} {os.cpu_count()} cpus; {' '.join(versions)}"


def export_record(path: Path, models_dir: Path) -> Path:
    """Where this CPU kind's measurements of the model are kept."""
    from rag_ingest import onnx_export

    # The record's version too: one written before it kept the probe vectors is not read.
    key = hashlib.sha256(f"{_RECORD_VERSION} {cpu_kind()}".encode()).hexdigest()[:12]
    return onnx_export.export_folder(path, models_dir) / f"backend-choice-{key}.json"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def _candidates(path: Path, *, allow_bf16: bool) -> list[BackendChoice]:
    found = [BackendChoice("torch", "fp32")]
    if allow_bf16 and _cpu_has_bf16():
        found.append(BackendChoice("torch", "bf16"))
    try:
        import onnxruntime  # noqa: F401 - the `onnx` extra may not be installed
    except ImportError:
        log.info("embedding.backend auto: onnxruntime is not installed; no ONNX candidate")
        return found
    from rag_ingest import onnx_export

    try:
        onnx_export.pooling_mode(path)
    except ConfigError as error:
        log.info("embedding.backend auto: no ONNX candidate (%s)", error)
        return found
    return [*found, BackendChoice("onnx", "fp32")]


def _cpu_has_bf16() -> bool:
    """Native bfloat16 products (AVX512-BF16, AMX, Arm BF16), as oneDNN reports them."""
    import torch

    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(torch.backends.mkldnn.is_available() and supported and supported())
    except RuntimeError:
        return False


def confirmed(choice: BackendChoice, backend: Backend, path: Path, models_dir: Path) -> bool:
    """Whether `backend`, just loaded in this process for auto's `choice`, gives the
    measured reference's vectors on PROBE_TEXTS (cosine at least FAITHFUL_COSINE).

    The measurement ran once, maybe in another process; this check runs in every
    process that embeds with a candidate other than the reference, so a process
    where that candidate misbehaves falls back rather than storing wrong vectors.
    """
    import numpy as np

    if choice == BackendChoice("torch", "fp32"):
        return True
    try:
        reference = np.asarray(
            json.loads(export_record(path, models_dir).read_text())["probe_vectors"],
            dtype=np.float32,
        )
    except OSError:
        return True  # no record: measured in this very process (one with a failure is not kept)
    vectors = backend.encode_batch(list(PROBE_TEXTS))
    cosines = np.sum(vectors * reference, axis=1)
    cosine = float(np.min(cosines))
    if cosine < FAITHFUL_COSINE:
        import torch

        # What whoever looks into it needs: which texts, and the process's torch state.
        log.warning(
            "embedding.backend auto: %s %s gives vectors at cosine %.6f to the measured "
            "PyTorch fp32 ones in this process (below %s); using torch fp32 here "
            "(per probe text: %s; torch %s, %d threads, grad %s, default dtype %s)",
            choice.backend,
            choice.precision,
            cosine,
            FAITHFUL_COSINE,
            [round(float(c), 6) for c in cosines],
            torch.__version__,
            torch.get_num_threads(),
            torch.is_grad_enabled(),
            torch.get_default_dtype(),
        )
        return False
    return True


def _measure(
    candidates: list[BackendChoice],
    path: Path,
    models_dir: Path,
    dimension: int,
    max_seq_length: int,
) -> tuple[list[dict[str, Any]], list[list[float]]]:
    """Each candidate's lowest cosine to PyTorch fp32 on PROBE_TEXTS and its speed on
    TIMING_TEXTS, and PyTorch fp32's vectors of PROBE_TEXTS (what every process checks
    its candidate against). A candidate that fails to load or encode is measured as
    unusable (and logged): one broken backend never stops the embedding."""
    import numpy as np

    reference_choice = BackendChoice("torch", "fp32")
    reference_backend = TorchBackend(path, "cpu", "fp32")
    probes = list(PROBE_TEXTS)
    reference = reference_backend.encode_batch(probes)
    backends: dict[BackendChoice, Backend] = {reference_choice: reference_backend}
    failed: dict[BackendChoice, str] = {}
    for choice in candidates:
        if choice == reference_choice:
            continue
        try:
            if choice.backend == "onnx":
                backends[choice] = OnnxBackend(path, "onnx", models_dir, dimension, max_seq_length)
            else:
                backends[choice] = TorchBackend(path, "cpu", choice.precision)
        except Exception as error:  # noqa: BLE001 - an export or a load that fails rules it out
            failed[choice] = f"{type(error).__name__}: {error}"
    best_seconds = dict.fromkeys(backends, float("inf"))
    cosines: dict[BackendChoice, float] = {}
    for round_number in range(2):  # rounds in turn, best of each: a busy moment does not decide
        for choice, backend in backends.items():
            if choice in failed:
                continue
            try:
                if round_number == 0:
                    vectors = backend.encode_batch(probes)  # also the warm-up
                    cosines[choice] = float(np.min(np.sum(vectors * reference, axis=1)))
                started = time.perf_counter()
                for start in range(0, len(TIMING_TEXTS), CPU_BATCH_SIZE):
                    backend.encode_batch(list(TIMING_TEXTS[start : start + CPU_BATCH_SIZE]))
                seconds = time.perf_counter() - started
            except Exception as error:  # noqa: BLE001 - as above
                failed[choice] = f"{type(error).__name__}: {error}"
                continue
            best_seconds[choice] = min(best_seconds[choice], seconds)
    for backend in backends.values():
        backend.close()
    measurements: list[dict[str, Any]] = []
    for choice in candidates:
        measured: dict[str, Any] = {"backend": choice.backend, "precision": choice.precision}
        if choice in failed:
            log.warning(
                "embedding.backend auto: %s %s failed on this worker, not used: %s",
                choice.backend,
                choice.precision,
                failed[choice],
            )
            measured |= {"min_cosine": 0.0, "texts_per_second": 0.0, "error": failed[choice]}
        else:
            speed = round(len(TIMING_TEXTS) / best_seconds[choice], 2)
            measured |= {"min_cosine": cosines[choice], "texts_per_second": speed}
        measurements.append(measured)
    log.info("embedding.backend auto measured %s on this CPU: %s", path.name, measurements)
    return measurements, reference.tolist()


def _write_once(record: Path, content: dict[str, Any]) -> None:
    """Whole, and only if no other worker's record is there already."""
    record.parent.mkdir(parents=True, exist_ok=True)
    temporary = record.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(content, indent=1))
    try:
        os.link(temporary, record)  # fails when the record exists
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: last writer wins, still whole
        os.replace(temporary, record)
    finally:
        temporary.unlink(missing_ok=True)
