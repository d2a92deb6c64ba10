"""The `rag-ingest` command: search, status, validate."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rag_ingest.config import ConfigError, Settings, load_settings


def _search(settings: Settings, args: argparse.Namespace) -> int:
    from rag_ingest.embedding import Embedder
    from rag_ingest.stores import open_store

    if args.source is not None:
        settings.source(args.source)  # unknown source: clear error, not zero hits
    embedder = Embedder(settings.embedding, settings.models_dir, allow_pool=False)
    vector = embedder.encode([args.query])[0]
    hits = open_store(settings).search(vector.tolist(), k=args.k, source=args.source)
    if not hits:
        print("no results: the store is empty for this source (run an ingestion first)")
        return 1
    for rank, hit in enumerate(hits, start=1):
        where = f"{hit.uri}" + (f"  [{hit.section}]" if hit.section else "")
        snippet = " ".join(hit.text.split())[:160]
        print(f"{rank:>2}. {hit.score:.3f}  {where}\n      {snippet}")
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from rag_ingest.reports import latest_run_report
    from rag_ingest.stores import open_store

    store = open_store(settings)
    for source in settings.sources:
        stats = store.stats(source.name)
        print(f"{source.name}: {stats.documents} documents, {stats.chunks} chunks in the store")
        last = latest_run_report(Path(settings.reports_dir), source.name)
        if last is None:
            print("  last run: none")
            continue
        counts = ", ".join(f"{k}={v}" for k, v in sorted(last["counts"].items()))
        print(f"  last run: {last['run_id']} finished {last['finished_at']}")
        print(f"  counts: {counts}")
        if last.get("quarantine"):
            print(f"  quarantined: {len(last['quarantine'])} (see the run report)")
    return 0


def _validate(settings: Settings, args: argparse.Namespace) -> int:
    settings.check_sources_exist()
    names = ", ".join(s.name for s in settings.sources)
    print(
        f"configuration OK: {len(settings.sources)} source(s): {names}; store {settings.store.kind}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag-ingest", description=__doc__)
    parser.add_argument(
        "--config", help="configuration file (default: $RAG_INGEST_CONFIG or ./rag_ingest.yaml)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    search = commands.add_parser("search", help="search the store")
    search.add_argument("query")
    search.add_argument("--source", help="only this source")
    search.add_argument("-k", type=int, default=5, help="number of hits (default 5)")
    search.set_defaults(handler=_search)

    status = commands.add_parser("status", help="per source: store contents and the last run")
    status.set_defaults(handler=_status)

    validate = commands.add_parser("validate", help="check the configuration")
    validate.set_defaults(handler=_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        return int(args.handler(settings, args))
    except (ConfigError, FileNotFoundError) as exc:
        print(f"rag-ingest: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
