"""Export a sentence-transformers model's transformer to ONNX, once per model and variant.

`sentence-transformers[onnx]` cannot be installed beside sentence-transformers
6 (its optimum-onnx pins an older transformers), so the export is done here
with `torch.onnx.export`, then ONNX Runtime's BERT fusion (fp32, identical
vectors) and, for `onnx-int8`, dynamic per-channel int8 quantisation of the
matrix multiplications only. Quantising every op, or per tensor, costs far
more accuracy (cosine to fp32 about 0.94 against 0.995; figures in
docs/benchmarks.md).

Exports are cached under the models folder, keyed by the model's weights, and
written atomically so that parallel embed tasks can race to make one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from rag_ingest.config import ConfigError

log = logging.getLogger(__name__)

_SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}
# Part of the cache key: an export made by an older way of exporting is made again.
EXPORT_VERSION = 2
_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def pooling_mode(folder: Path) -> str:
    """`mean` or `cls`; refuses models the ONNX path would embed differently."""
    modules = json.loads((folder / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    unsupported = sorted(set(kinds) - _SUPPORTED_MODULES)
    if unsupported:
        raise ConfigError(
            f"embedding.backend: the ONNX backends support Transformer + Pooling (+ Normalize) "
            f"models; {folder} also has {', '.join(unsupported)}. Use backend 'torch'."
        )
    pooling_path = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
    config = json.loads((folder / pooling_path / "config.json").read_text())
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    raise ConfigError(
        f"embedding.backend: pooling of {folder} is neither mean nor CLS; use backend 'torch'"
    )


def _weights_key(folder: Path) -> str:
    """Changes when the weights or the tokenizer change, not when the folder moves."""
    digest = hashlib.sha256(f"export-{EXPORT_VERSION}".encode())
    for name in sorted(os.listdir(folder)):
        if name.endswith((".safetensors", ".bin", ".json", ".txt")):
            stat = (folder / name).stat()
            digest.update(f"{name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def export_folder(folder: Path, models_dir: Path) -> Path:
    """Where a model's exports (and what was measured of them) are kept."""
    return models_dir / f"{folder.name}-{_weights_key(folder)}"


def exported_model(folder: Path, variant: str, models_dir: Path) -> Path:
    """Path of the ONNX file for `variant` (`onnx` or `onnx-int8`), exporting it if absent."""
    if variant not in ("onnx", "onnx-int8"):
        raise ValueError(f"unknown ONNX variant {variant!r}")
    target_dir = export_folder(folder, models_dir)
    fused = target_dir / "model.fused.onnx"
    plain = target_dir / "model.onnx"
    wanted = fused if variant == "onnx" else target_dir / "model.int8.onnx"
    if wanted.exists():
        return wanted
    target_dir.mkdir(parents=True, exist_ok=True)
    if not plain.exists():
        log.info("exporting %s to ONNX under %s (once per model)", folder, target_dir)
        _atomic(plain, lambda tmp: _export(folder, tmp))
    if variant == "onnx":
        _atomic(fused, lambda tmp: _fuse(folder, plain, tmp))
    else:
        _atomic(wanted, lambda tmp: _quantise(plain, tmp))
    return wanted


def _atomic(target: Path, make: Any) -> None:
    handle, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(handle)
    try:
        make(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; other workers read it too
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _export(folder: Path, out: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    transformer: Any = model[0].auto_model
    transformer.eval()
    # ONNX Runtime's BERT fusion (Attention, SkipLayerNormalization, BiasGelu) matches the
    # eager attention graph, not SDPA's (transformers 5's default): exported with SDPA the
    # "fused" graph kept 308 plain nodes and ran slower than PyTorch (measured 2026-12-07).
    transformer.set_attn_implementation("eager")

    class _Keywords(torch.nn.Module):
        # transformers 5 rejects positional inputs; the exporter passes positional ones.
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = model.tokenizer(["an example sentence"], return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in [*_INPUTS, "last_hidden_state"]}
    with torch.no_grad():
        torch.onnx.export(
            _Keywords(transformer),
            tuple(sample[name] for name in _INPUTS),
            str(out),
            input_names=_INPUTS,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _fuse(folder: Path, plain: Path, out: Path) -> None:
    from onnxruntime.transformers import optimizer

    config = json.loads((folder / "config.json").read_text())
    optimised = optimizer.optimize_model(
        str(plain),
        model_type="bert",
        num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]),
    )
    optimised.save_model_to_file(str(out))


def _quantise(plain: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantiser logs a line per tensor on the root logger: hundreds of task-log lines.
    logging.disable(logging.INFO)
    try:
        quantize_dynamic(
            str(plain),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        logging.disable(logging.NOTSET)
