"""Writes the GPU benchmark's model (fp16 weights) and SciFact chunks into a folder."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from rag_ingest.embedding import resolve_model_path
from tests.benchmarks.bench_embedding import prepare
from tests.benchmarks.common import scifact_present


def main(folder: Path) -> int:
    if not scifact_present():
        return 1
    from safetensors.torch import load_file, save_file

    source = resolve_model_path("packaged:all-MiniLM-L6-v2")
    model = folder / "model"
    shutil.copytree(source, model, ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
    weights = load_file(str(source / "model.safetensors"))
    half = {name: tensor.half().contiguous() for name, tensor in weights.items()}
    save_file(half, str(model / "model.safetensors"))
    subset = prepare(folder, 10**9, 240, 32)  # every SciFact document
    print(f"packed {subset['chunks']} chunks of {subset['documents']} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
