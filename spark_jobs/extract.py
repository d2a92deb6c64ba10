"""spark-submit entry point: list and parse one source into documents/ and quarantine/.

    spark-submit spark_jobs/extract.py --config rag_ingest.yaml --source docs --run-dir DIR

A thin main over `rag_ingest.spark.extract_job`; the DAG's tasks call the same
function in their own local session.
"""

from __future__ import annotations

import argparse
import json
import sys

from rag_ingest.config import load_settings
from rag_ingest.spark import extract_job, get_session, write_job_result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--run-dir", required=True, help="run staging folder")
    parser.add_argument("--ds", help="the run's logical date, for a templated location")
    parser.add_argument("--reparse", action="store_true", help="parse every file afresh")
    args = parser.parse_args(argv)

    settings = load_settings(args.config, check_paths=True)
    source = settings.source(args.source)
    spark = get_session(settings.spark, f"rag-ingest extract {source.name}", set_master=False)
    counts = extract_job(spark, settings, source, args.run_dir, args.ds, args.reparse)
    write_job_result(args.run_dir, "extract", counts)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
