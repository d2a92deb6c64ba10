"""An embed task in a process of its own: its own model vs the worker's service (#24).

    make bench-worker-service

Under the Local and Celery executors every task is a new process. Each
"task" here is one: a new interpreter that imports rag-ingest, gets the model
(`embedding_service.task_embedder`), embeds the dozen chunks of a small
change and exits. Measured from the launch to the vectors in hand:

- own: `worker_service` off, the task loads the model;
- service, first: the task that starts the service (it loads the model);
- service: later tasks, which reach the running service.

Medians of --tasks launches each; the vectors of every task are compared
with the first own task's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rag_ingest import embedding_service
from rag_ingest.backend_choice import TIMING_TEXTS
from rag_ingest.config import EmbeddingConfig
from tests.benchmarks.common import parser_for, save_json

PLUGINS = Path(embedding_service.__file__).resolve().parents[1]
TASK = """
import json, sys, time, numpy as np
from rag_ingest.config import EmbeddingConfig
from rag_ingest.embedding_service import task_embedder
config = EmbeddingConfig.model_validate_json(sys.argv[1])
ready = task_embedder(config, sys.argv[2])
vectors = ready.embedder.encode(json.loads(sys.argv[3]))
done = time.time()
np.save(sys.argv[4], vectors)
print(json.dumps({"done": done, "model_seconds": ready.seconds, "pid": ready.service_pid}))
"""


def one_task(config: EmbeddingConfig, models_dir: str, texts: list[str], out: Path) -> dict:
    launched = time.time()
    result = subprocess.run(
        [sys.executable, "-c", TASK, config.model_dump_json(), models_dir, json.dumps(texts),
         str(out)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(PLUGINS)},
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "to_vectors_seconds": round(seen["done"] - launched, 3),
        "model_seconds": round(seen["model_seconds"], 3),
        "service_pid": seen["pid"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(__doc__)
    parser.add_argument("--tasks", type=int, default=5, help="task launches per arm")
    parser.add_argument("--chunks", type=int, default=12, help="chunks each task embeds")
    args = parser.parse_args(argv)
    models_dir = os.environ.get("RAG_INGEST_MODELS_DIR", str(Path(".rag_ingest/models").resolve()))
    texts = list(TIMING_TEXTS[: args.chunks])
    with tempfile.TemporaryDirectory(prefix="rgs-bench-", dir="/tmp") as work:
        root = Path(work)
        own = EmbeddingConfig()
        served = EmbeddingConfig.model_validate(
            {"worker_service": {"enabled": True, "folder": str(root / "svc")}}
        )
        one_task(own, models_dir, texts, root / "warm.npy")  # export and measure, not timed
        arms: dict[str, list[dict]] = {"own": [], "service, first": [], "service": []}
        try:
            for n in range(args.tasks):
                arms["own"].append(one_task(own, models_dir, texts, root / f"own{n}.npy"))
            arms["service, first"].append(one_task(served, models_dir, texts, root / "first.npy"))
            for n in range(args.tasks):
                arms["service"].append(one_task(served, models_dir, texts, root / f"svc{n}.npy"))
        finally:
            embedding_service.stop(served, models_dir)
        reference = np.load(root / "own0.npy")
        differences = [
            float(np.abs(np.load(path) - reference).max()) for path in sorted(root.glob("*.npy"))
        ]
    summary = {
        arm: {
            "median_to_vectors_seconds": statistics.median(t["to_vectors_seconds"] for t in tasks),
            "median_model_seconds": statistics.median(t["model_seconds"] for t in tasks),
            "service_pids": sorted({t["service_pid"] for t in tasks if t["service_pid"]}),
        }
        for arm, tasks in arms.items()
    }
    for arm, figures in summary.items():
        print(
            f"{arm:15s} launch to vectors {figures['median_to_vectors_seconds']:6.2f} s, "
            f"of which getting the model {figures['median_model_seconds']:6.3f} s "
            f"(median of {len(arms[arm])}; service pids {figures['service_pids']})"
        )
    medians = {arm: figures["median_to_vectors_seconds"] for arm, figures in summary.items()}
    ratio = medians["own"] / medians["service"]
    print(f"own / service: {ratio:.2f}x; {args.chunks} chunks a task")
    print(f"largest difference from the own model's vectors: {max(differences):.2e}")
    save_json(args.json, {"arms": arms, "summary": summary, "ratio": ratio,
                          "max_vector_difference": max(differences)})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
