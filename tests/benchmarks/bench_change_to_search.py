"""From a file change to search finding it, in a running Airflow (#24's 30 s target).

    make bench-change

A copy of docs/ (the demo corpus) twice: `watched` has a listing watcher
(`watch: {interval_seconds, quiet_seconds}` below) and no schedule; `manual`
has no watcher. `airflow standalone` runs on loopback (scheduler, triggerer,
LocalExecutor, SQLite). Both are ingested once first. Then each edit appends
a paragraph with a word no page holds to one page, and the clock runs from
the write until a lexical search of the source returns that word:

- watched: the triggerer's listing sees the change, the debounce waits
  `quiet_seconds`, the scheduler starts a run on the change asset;
- manual (the baseline): a run triggered over REST at the moment of the
  write, what a person or an outside cron could do at best without a watcher.

Each edit waits for its run to end before the next. Medians are reported
with the parts of the watched path: the write until the run was queued
(detection, debounce, scheduler), then until search finds the word.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rag_ingest import embedding_service
from rag_ingest.config import load_settings
from rag_ingest.watch import listing_state_path
from tests.benchmarks.common import parser_for, save_json
from tests.e2e import pipeline_runs
from tests.e2e.airflow_api import login
from tests.e2e.standalone import (
    PASSWORD,
    USER,
    airflow_home_for,
    dag_runs,
    standalone,
    trigger_run,
    wait_for_dag_runs,
    wait_for_run,
    wait_for_text,
)

PROJECT = Path(__file__).resolve().parents[2]


def edit(page: Path, word: str) -> float:
    """Appends a paragraph holding `word`; the wall-clock time of the write."""
    page.write_text(page.read_text() + f"\n\nThe {word} setting keeps drafts apart.\n")
    return time.time()


def one_change(airflow: dict, source: str, number: int, watched: bool) -> dict[str, Any]:
    base, config = airflow["base"], airflow["config"]
    token = login(base, USER, PASSWORD)
    dag_id = f"rag_ingest__{source}"
    before = len(dag_runs(base, token, dag_id))
    pages = sorted((airflow["folder"] / source).glob("*.md"))
    word = f"quokka{source}{number}harbour"
    written = edit(pages[number % len(pages)], word)
    started = time.monotonic()
    if not watched:
        trigger_run(base, token, None, dag_id)
    seconds = wait_for_text(config, source, word, timeout=300)
    run = wait_for_dag_runs(base, token, dag_id, before + 1)[-1]
    finished = wait_for_run(base, token, run["dag_run_id"], dag_id)
    queued = datetime.fromisoformat(run["queued_at"]).timestamp() - written
    return {
        "source": source,
        "change_to_search_seconds": round(seconds, 2),
        "change_to_queued_seconds": round(queued, 2),
        "run_type": run["run_type"],
        "run_seconds": round(time.monotonic() - started, 2),
        "state": finished["state"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(__doc__)
    parser.add_argument("--edits", type=int, default=5, help="edits of the watched source")
    parser.add_argument("--baseline-edits", type=int, default=3)
    parser.add_argument("--interval", type=float, default=2.0, help="watch.interval_seconds")
    parser.add_argument("--quiet", type=float, default=1.0, help="watch.quiet_seconds")
    parser.add_argument(
        "--worker-service",
        action="store_true",
        help="embedding.worker_service on: the embed tasks reach one loaded model",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        for name in ("watched", "manual"):
            shutil.copytree(PROJECT / "docs", root / name, ignore=shutil.ignore_patterns("images"))
        config = root / "rag_ingest.yaml"
        config.write_text(
            f"sources:\n  - name: watched\n    location: {root / 'watched'}\n    glob: '*.md'\n"
            f"    watch: {{interval_seconds: {args.interval}, quiet_seconds: {args.quiet}}}\n"
            f"  - name: manual\n    location: {root / 'manual'}\n    glob: '*.md'\n"
            f"store:\n  path: {root / 'lancedb'}\n"
            f"paths:\n  staging: {root / 'staging'}\n  reports: {root / 'reports'}\n"
        )
        if args.worker_service:
            config.write_text(
                config.read_text()
                + f"embedding:\n  worker_service: {{enabled: true, folder: {root / 'svc'}}}\n"
            )
        for source in ("watched", "manual"):
            print(f"first ingestion of {source} ...", file=sys.stderr, flush=True)
            pipeline_runs.run(config, "first", source=source)
        airflow = airflow_home_for(
            root, config, {}, unpaused=("rag_ingest__watched", "rag_ingest__manual")
        )
        state = listing_state_path(root / "staging", "watched")
        changes: list[dict[str, Any]] = []
        with standalone(airflow):
            deadline = time.monotonic() + 180
            while not state.exists():  # the watcher's first listing: its baseline
                if time.monotonic() > deadline:
                    raise SystemExit("the watcher never listed the source")
                time.sleep(1)
            for number in range(args.baseline_edits):
                changes.append(one_change(airflow, "manual", number, watched=False))
                print(changes[-1], file=sys.stderr, flush=True)
            for number in range(args.edits):
                changes.append(one_change(airflow, "watched", number, watched=True))
                print(changes[-1], file=sys.stderr, flush=True)
        if args.worker_service:
            settings = load_settings(config)
            embedding_service.stop(settings.embedding, settings.models_dir)

    def median(source: str, key: str) -> float:
        return statistics.median(c[key] for c in changes if c["source"] == source)

    watched, manual = (median(s, "change_to_search_seconds") for s in ("watched", "manual"))
    service = "on" if args.worker_service else "off"
    print(f"watch: interval {args.interval} s, quiet {args.quiet} s; {args.edits} edits")
    print(f"embedding.worker_service: {service}")
    print(
        f"watched: change to search median {watched:.1f} s "
        f"(change to run queued {median('watched', 'change_to_queued_seconds'):.1f} s); "
        f"each: {[c['change_to_search_seconds'] for c in changes if c['source'] == 'watched']}"
    )
    print(f"manual trigger at the change (baseline): median {manual:.1f} s")
    print(f"watched / manual: {watched / manual:.2f}x; target: at most 30 s")
    save_json(args.json, {"interval_seconds": args.interval, "quiet_seconds": args.quiet,
                          "worker_service": args.worker_service,
                          "changes": changes, "watched_median_seconds": watched,
                          "manual_median_seconds": manual})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
