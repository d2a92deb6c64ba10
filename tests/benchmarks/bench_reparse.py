"""One parse per changed file: the extract stage re-run with 1% of 100,000 files changed.

    make bench-reparse                        (FILES=20000 for a shorter run)

Generates FILES small Markdown files, runs the real extract stage (Spark
local mode, the task's own session, as `airflow dags test` runs it) once,
changes 1% of the files (new text, new modified time), and runs it again,
three times (the median is reported); then once more with `full_resync`,
the baseline that parses everything. A change set this small is parsed in
the task's own process (spark.in_process_max_files), the first run and the
full re-parse by Spark.
Spark's start-up is paid by the first run only, so it is shown apart and
the ratios are also given without it.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.common import parser_for, save_json

WORDS = ("knowledge", "ingestion", "pipeline", "chunk", "vector", "search", "fresh", "store")


def generate(folder: Path, files: int) -> None:
    rng = random.Random(20261201)
    for n in range(files):
        sub = folder / f"d{n // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        body = " ".join(rng.choice(WORDS) for _ in range(60))
        (sub / f"page-{n:06d}.md").write_text(f"# Page {n}\n\n{body}.\n")


def change(folder: Path, share: float, seed: int = 1) -> int:
    pages = sorted(folder.rglob("*.md"))
    chosen = random.Random(seed).sample(pages, max(1, int(len(pages) * share)))
    later = time.time() + 60 * seed
    for path in chosen:
        path.write_text(path.read_text() + "\nAn edited closing line.\n")
        os.utime(path, (later, later))
    return len(chosen)


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(__doc__)
    parser.add_argument("--files", type=int, default=int(os.environ.get("FILES", 100_000)))
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--reruns", type=int, default=3, help="re-runs, each after a new change")
    args = parser.parse_args(argv)

    from rag_ingest import pipeline

    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        corpus = root / "corpus"
        started = time.perf_counter()
        generate(corpus, args.files)
        print(f"generated {args.files:,} files in {time.perf_counter() - started:.1f} s")
        config = root / "rag_ingest.yaml"
        config.write_text(
            f"sources:\n  - name: docs\n    location: {corpus}\n    glob: '**/*.md'\n"
            f"store:\n  path: {root / 'lancedb'}\n"
            f"paths:\n  staging: {root / 'staging'}\n  reports: {root / 'reports'}\n"
        )

        def extract(run_id: str, full_resync: bool = False) -> dict[str, float]:
            result = pipeline.extract.run(str(config), "docs", run_id, full_resync=full_resync)
            from rag_ingest import lease

            lease.release(str(root / "staging"), "docs", run_id)
            return {
                "seconds": result.seconds,
                "spark_startup_seconds": result.spark_startup_seconds,
                "files_parsed": result.files_parsed,
                "documents": result.documents,
            }

        first = extract("first")
        reruns = []
        for n in range(1, args.reruns + 1):
            changed = change(corpus, args.changed, seed=n)
            reruns.append(extract(f"rerun-{n}"))
        # The median re-run (a run's time varies by a tenth here with the machine's load).
        rerun = sorted(reruns, key=lambda run: run["seconds"])[len(reruns) // 2]
        baseline = extract("full-resync", full_resync=True)
    startup = first["spark_startup_seconds"]
    results = {
        "files": args.files,
        "changed": changed,
        "first": first,
        "rerun": rerun,
        "reruns_seconds": [run["seconds"] for run in reruns],
        "full_resync": baseline,
        "rerun_share_of_first": rerun["seconds"] / first["seconds"],
        "rerun_share_of_first_without_startup": rerun["seconds"] / (first["seconds"] - startup),
        "rerun_share_of_full_resync": rerun["seconds"] / baseline["seconds"],
    }
    print(f"files {args.files:,}, changed {changed:,} before each of {len(reruns)} re-runs")
    print(
        "  re-runs: " + ", ".join(f"{run['seconds']:.2f} s" for run in reruns) + " (median below)"
    )
    for name in ("first", "rerun", "full_resync"):
        run: dict[str, float] = results[name]  # type: ignore[assignment]
        print(
            f"  {name:12} {run['seconds']:8.1f} s  parsed {run['files_parsed']:>7,}  "
            f"documents {run['documents']:>7,}  Spark start-up {run['spark_startup_seconds']:.1f} s"
        )
    share, without = (
        results["rerun_share_of_first"],
        results["rerun_share_of_first_without_startup"],
    )
    print(
        f"re-run / first run: {share:.1%} ({without:.1%} without Spark's start-up); re-run / "
        f"full re-parse in the same session: {results['rerun_share_of_full_resync']:.1%}"
    )
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
