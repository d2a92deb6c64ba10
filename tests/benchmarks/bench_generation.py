"""Cost of a new generation on SciFact: built beside the live one, against a first ingestion.

    python -m tests.benchmarks.bench_generation [--subset N] [--json out.json]

Three runs of the same source, stage by stage as the DAG wires them (the same
library calls), on this machine's CPU:

1. the first ingestion (packaged all-MiniLM-L6-v2): the baseline;
2. only the chunking changed (overlap 32 -> 16 tokens): the new generation is
   built beside the live one, copying the live one's vector for every chunk
   whose text the new chunking keeps;
3. another model (all-MiniLM-L6-v2 cut to its first encoder layer, derived here):
   every chunk embedded again, nothing to copy.

Printed: each build's time against the first ingestion's, and how many chunks
were embedded and how many re-used a stored vector.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tests.benchmarks.common import parser_for, save_json, scifact_present, scifact_source


def _run(config: Path, run_id: str) -> tuple[float, dict[str, Any]]:
    from tests.e2e import pipeline_runs

    started = time.perf_counter()
    summary = pipeline_runs.run(config, run_id, source="scifact")
    seconds = time.perf_counter() - started
    reports = Path(yaml.safe_load(config.read_text())["paths"]["reports"])
    report = json.loads((reports / "scifact" / f"{run_id}.json").read_text())
    assert report["status"] == "success", report["reason"]
    assert summary == report["counts"]
    return seconds, report


def _subset(config: Path, documents: int | None) -> None:
    if not documents:
        return
    corpus = Path(yaml.safe_load(config.read_text())["sources"][0]["location"]) / "corpus.jsonl"
    lines = corpus.read_text().splitlines(keepends=True)[:documents]
    corpus.write_text("".join(lines))


def _change(config: Path, **sections: dict[str, object]) -> None:
    document = yaml.safe_load(config.read_text())
    for name, values in sections.items():
        document[name] = {**document.get(name, {}), **values}
    config.write_text(yaml.safe_dump(document))


def main() -> int:
    parser = parser_for(__doc__)
    parser.add_argument("--subset", type=int, help="only the first N SciFact documents")
    args = parser.parse_args()
    if not scifact_present():
        return 0
    from tests.models import derived_model

    with tempfile.TemporaryDirectory(prefix="bench-generation-") as folder:
        work = Path(folder)
        config = scifact_source(work, args.max_tokens, args.overlap)
        _subset(config, args.subset)
        first_seconds, first = _run(config, "first")
        chunks = first["counts"]["chunks_written"]
        print(f"first ingestion: {first_seconds:.1f} s, {chunks} chunks embedded", flush=True)

        _change(config, chunking={"overlap_tokens": args.overlap // 2})
        _, rechunked = _run(config, "rechunked")
        chunking = rechunked["generations"]["build"]
        print(f"chunking changed: build {chunking['seconds']:.1f} s", flush=True)

        weaker = derived_model(work / "minilm-1-layer", layers=1)
        _change(config, embedding={"model_path": str(weaker), "model_id": "bench/1-layer"})
        _, remodelled = _run(config, "remodelled")
        model = remodelled["generations"]["build"]

    rows = [
        ("first ingestion", first_seconds, chunks, 0, chunks),
        ("chunking changed", chunking["seconds"], chunking["chunks_embedded"],
         chunking["chunks_vector_reused"], chunking["chunks_written"]),
        ("model changed (1 layer)", model["seconds"], model["chunks_embedded"],
         model["chunks_vector_reused"], model["chunks_written"]),
    ]  # fmt: skip
    print(f"\nSciFact, {first['counts']['documents']} documents, this machine's CPU")
    print(f"{'run':<26}{'seconds':>9}{'x first':>9}{'embedded':>10}{'re-used':>9}{'written':>9}")
    for name, seconds, embedded, reused, written in rows:
        print(f"{name:<26}{seconds:>9.1f}{seconds / first_seconds:>9.2f}"
              f"{embedded:>10}{reused:>9}{written:>9}")  # fmt: skip
    save_json(
        args.json,
        {
            "documents": first["counts"]["documents"],
            "runs": [
                dict(zip(("run", "seconds", "embedded", "reused", "written"), row, strict=True))
                for row in rows
            ],
            "reused_share_when_only_chunking_changed": round(
                chunking["chunks_vector_reused"] / max(chunking["chunks_written"], 1), 4
            ),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
