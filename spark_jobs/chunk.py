"""spark-submit entry point: chunk the planned documents of a run into chunks/.

    spark-submit spark_jobs/chunk.py --config rag_ingest.yaml --run-dir DIR

Reads `DIR/documents` and the doc ids in `DIR/plan/to_chunk.parquet`. A thin
main over `rag_ingest.spark.chunk_job`, the function the DAG's tasks call.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rag_ingest.config import load_settings
from rag_ingest.run import RunLayout, bound_settings
from rag_ingest.spark import chunk_job, get_session, write_job_result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--run-dir", required=True, help="run staging folder")
    args = parser.parse_args(argv)

    # The generation the run is bound to chunks as it was configured (its contract).
    settings = bound_settings(load_settings(args.config), RunLayout(Path(args.run_dir)))
    spark = get_session(settings.spark, "rag-ingest chunk", set_master=False)
    counts = chunk_job(spark, settings, settings.source(args.source), args.run_dir)
    write_job_result(args.run_dir, "chunk", counts)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
