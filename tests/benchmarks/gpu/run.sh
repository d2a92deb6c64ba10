#!/usr/bin/env bash
# The GPU embedding benchmark, as one command on the device machine (its
# python3 has CUDA torch and sentence-transformers). Writes $OUT/gpu-bench.json.
set -euo pipefail
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD/plugins:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -m tests.benchmarks.bench_embedding_gpu --model .gpu/model --chunks .gpu/chunks.parquet \
  --json "${OUT:-.gpu}/gpu-bench.json"
