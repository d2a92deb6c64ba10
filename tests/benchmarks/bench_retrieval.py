"""Retrieval quality on SciFact: the pipeline against whole-document encoding.

    make bench-retrieval

Three measurements in one run, same model (all-MiniLM-L6-v2, torch, CPU):
1. the bare model on whole documents ("title text", truncated at the model's
   256 tokens), exact search: what the published MTEB figures measure;
2. `rag-ingest eval` with the default chunking (240 tokens, 32 overlap,
   context lines on): the corpus ingested through the real DAG into LanceDB,
   documents ranked by their best chunk;
3. the same with `chunking.context_lines: false`, to show what the context
   lines are worth.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from rag_ingest.config import load_settings
from rag_ingest.dag_runner import default_dags_folder
from rag_ingest.evaluation import BeirDataset
from rag_ingest.retrieval_eval import EvalPlan, run_evaluation, whole_document_baseline
from tests.benchmarks.common import SCIFACT, parser_for, save_json, scifact_present

PROJECT = Path(__file__).resolve().parents[2]
KS = (10, 100)


def pipeline_run(workdir: Path, dataset: BeirDataset, context_lines: bool) -> dict[str, Any]:
    document = yaml.safe_load((PROJECT / "rag_ingest.yaml").read_text())
    document["chunking"]["context_lines"] = context_lines
    config = workdir / f"context-{context_lines}.yaml"
    config.write_text(yaml.safe_dump(document))
    settings = load_settings(config)
    plan = EvalPlan(dataset, workdir / f"eval-context-{context_lines}", KS)
    return run_evaluation(settings, plan, default_dags_folder())


def main() -> None:
    args = parser_for(__doc__).parse_args()
    if not scifact_present():
        return
    dataset = BeirDataset.load(SCIFACT)
    rows: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    rows["whole documents, bare model, exact search"] = {
        "metrics": whole_document_baseline(dataset, None, KS),
        "seconds": round(time.perf_counter() - started, 1),
    }
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        for context_lines in (True, False):
            result = pipeline_run(Path(tmp), dataset, context_lines)
            label = f"rag-ingest eval, context lines {'on' if context_lines else 'off'}"
            rows[label] = {
                "metrics": result["metrics"],
                "seconds": result["ingestion"]["wall_seconds"],
                "chunks": result["ingestion"]["chunks"],
            }
    print(f"\nSciFact: {len(dataset.queries)} queries; documents ranked by best chunk\n")
    print("| run | chunks | nDCG@10 | Recall@10 | Recall@100 | MRR@10 | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, row in rows.items():
        m = row["metrics"]
        print(
            f"| {label} | {row.get('chunks', '-')} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} "
            f"| {m['recall@100']:.4f} | {m['mrr@10']:.4f} | {row['seconds']} |"
        )
    save_json(args.json, rows)


if __name__ == "__main__":
    main()
