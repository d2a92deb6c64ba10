"""One changed file in the demo corpus: a whole run's wall time with `airflow dags test`.

    make bench-small-change

Ingests a copy of docs/ (the demo corpus) through the real DAG, then edits
one paragraph of one file and runs it again, three times, each after a new
edit; the median re-run is reported with where its time went (the run
report's Time section). With the defaults, a change set this small is
parsed and chunked in the task's own process (spark.in_process_max_files);
with `--spark` every run uses Spark, the baseline of the same machine.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from rag_ingest.dag_runner import DagTestRunner
from tests.benchmarks.common import parser_for, save_json

PROJECT = Path(__file__).resolve().parents[2]
DAG_ID = "rag_ingest__docs"


def run_once(runner: DagTestRunner, reports: Path, log_name: str) -> dict[str, Any]:
    before = set(reports.glob("docs/*.json"))
    run = runner.test(DAG_ID, log_name)
    if not run.succeeded:
        raise SystemExit(f"the ingestion run failed; log {run.log}:\n{run.tail()}")
    (report_path,) = set(reports.glob("docs/*.json")) - before
    report = json.loads(report_path.read_text())
    timing = report.get("timing", {})
    return {
        "seconds": run.seconds,
        "report_wall_seconds": timing.get("wall_seconds"),
        "engines": timing.get("engines", {}),
        "spark_startup_seconds": timing.get("spark_startup_seconds"),
        "model_load_seconds": timing.get("model_load_seconds"),
        "tasks": timing.get("tasks", {}),
        "documents_changed": report["counts"].get("documents_changed", 0),
        "chunks_embedded": report["counts"].get("chunks_embedded", 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(__doc__)
    parser.add_argument("--reruns", type=int, default=3)
    parser.add_argument("--spark", action="store_true", help="every run through Spark")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        corpus = root / "docs"
        shutil.copytree(PROJECT / "docs", corpus, ignore=shutil.ignore_patterns("images"))
        config = root / "rag_ingest.yaml"
        config.write_text(
            f"sources:\n  - name: docs\n    location: {corpus}\n    glob: '**/*.md'\n"
            f"store:\n  path: {root / 'lancedb'}\n"
            f"paths:\n  staging: {root / 'staging'}\n  reports: {root / 'reports'}\n"
            + ("spark:\n  in_process_max_files: 0\n" if args.spark else "")
        )
        runner = DagTestRunner(config, root / "airflow", PROJECT / "dags")
        runner.migrate()
        print("first run ...", file=sys.stderr, flush=True)
        first = run_once(runner, root / "reports", "run-0.log")
        reruns = []
        page = corpus / "how-it-works.md"
        for n in range(1, args.reruns + 1):
            page.write_text(page.read_text() + f"\n\nAn edited closing paragraph, edit {n}.\n")
            print(f"re-run {n} after one edited file ...", file=sys.stderr, flush=True)
            reruns.append(run_once(runner, root / "reports", f"run-{n}.log"))
    rerun = sorted(reruns, key=lambda r: r["seconds"])[len(reruns) // 2]
    results = {"spark_only": args.spark, "first": first, "reruns": reruns, "median_rerun": rerun}
    print(f"first run (whole corpus): {first['seconds']:.1f} s; engines {first['engines']}")
    print("re-runs after one edited file: " + ", ".join(f"{r['seconds']:.1f} s" for r in reruns))
    print(
        f"median re-run {rerun['seconds']:.1f} s (report wall {rerun['report_wall_seconds']} s), "
        f"engines {rerun['engines']}, documents changed {rerun['documents_changed']}, "
        f"chunks embedded {rerun['chunks_embedded']}, model loading "
        f"{rerun['model_load_seconds']} s, Spark start-up {rerun['spark_startup_seconds']} s"
    )
    slowest = sorted(rerun["tasks"].items(), key=lambda item: -item[1])[:6]
    print("slowest tasks: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in slowest))
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
