#!/usr/bin/env bash
# Packs what the GPU embedding benchmark needs into .gpu/ (git-ignored), within
# the device tool's 64 MiB: the model with fp16 weights (the fp32 weights are
# 87 MiB), SciFact's chunks, wheels the GPU image lacks (pydantic), and the
# project's own sentence-transformers (the image has an older 6.0).
# Run here, from the project root:   bash tests/benchmarks/gpu/pack.sh
# Then on a lent GPU machine (one command, carry [".gpu"]):
#   bash tests/benchmarks/gpu/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
rm -rf .gpu && mkdir -p .gpu/wheels
.venv/bin/python -m tests.benchmarks.gpu.pack_assets .gpu
py() { .venv/bin/python -c "import $1 as m; print(m.$2)"; }
.venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels \
  "pydantic==$(py pydantic VERSION)" "pydantic-core==$(py pydantic_core __version__)" \
  annotated-types typing-inspection "sentence-transformers==$(py sentence_transformers __version__)" 2>&1 | grep -v "is ignored" || true
du -sh .gpu
