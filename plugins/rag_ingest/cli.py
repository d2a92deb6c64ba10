"""The `rag-ingest` command: search, status, report, validate, eval."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from rag_ingest import cli_generations
from rag_ingest.config import ConfigError, Settings, load_settings
from rag_ingest.stores.base import SEARCH_MODES

# C0 and C1 control characters: a file name or a record id holding them must
# not move the cursor, recolour the terminal or forge a line of output.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """`text` with every control character written as an escape (`\\x1b`, `\\n`)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def say(line: str) -> None:
    """Print one line of output made of values from reports, the store or the user."""
    print(shown(line))


def _search(settings: Settings, args: argparse.Namespace) -> int:
    from rag_ingest.search import search

    if args.source is not None:
        settings.source(args.source)  # unknown source: clear error, not zero hits
    # The model takes seconds to load: say so, on stderr (stdout stays the answer).
    if args.mode != "lexical":
        print(f"loading the model {settings.embedding.model_id} ...", file=sys.stderr, flush=True)
    labels = _labels(args.labels)
    hits = search(settings, args.query, args.k, [args.source], labels, mode=args.mode)
    if args.json:
        print(json.dumps([dataclasses.asdict(hit) for hit in hits], indent=2))
        return 0 if hits else 1
    if not hits:
        if labels is not None:
            say(f"no results that labels {', '.join(labels) or '(none)'} may see")
        else:
            say("no results: the store is empty for this source (run an ingestion first)")
        return 1
    for rank, hit in enumerate(hits, start=1):
        where = f"{hit.uri}" + (f"  [{hit.section}]" if hit.section else "")
        snippet = " ".join(hit.text.split())[:160]
        say(f"{rank:>2}. {hit.score:.3f}  {where}")
        say(f"      {snippet}")
    return 0


def _labels(text: str | None) -> list[str] | None:
    """--labels a,b -> ["a", "b"]; absent -> None (no access filter)."""
    if text is None:
        return None
    return sorted({part.strip() for part in text.split(",") if part.strip()})


STATUS_COLUMNS = ("source", "documents", "chunks", "last run", "state", "finished", "quarantined")
# Exit codes: 0 all well; 1 nothing found; 2 a usage or configuration error;
# 3 a run failed (status: some source's last run; report: that run).
RUN_FAILED = 3


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from rag_ingest.overview import source_status

    rows = source_status(settings)
    failed = [row for row in rows if row["state"] == "failed"]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return RUN_FAILED if failed else 0
    keys = [title.replace(" ", "_") for title in STATUS_COLUMNS]  # "last run" -> last_run
    cells = [["-" if row[key] is None else str(row[key]) for key in keys] for row in rows]
    widths = [max(len(c) for c in column) for column in zip(STATUS_COLUMNS, *cells, strict=True)]
    for line in (STATUS_COLUMNS, *cells):
        say("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    for row in failed:
        say(f"{row['source']}: last run {row['last_run']} FAILED: {row['reason']}")
    return RUN_FAILED if failed else 0


def _report(settings: Settings, args: argparse.Namespace) -> int:
    from rag_ingest.reports import list_run_reports
    from rag_ingest.run import safe_run_key
    from rag_ingest.stage_results import RunCounts

    if args.source is not None:
        settings.source(args.source)  # unknown source: clear error
    reports_dir = Path(settings.reports_dir)
    every = list_run_reports(reports_dir, args.source)
    reports = every
    if args.run is not None:
        reports = [r for r in every if args.run in (r["run_id"], safe_run_key(str(r["run_id"])))]
    if not reports:
        if not every:
            say(f"no run report under {reports_dir}: run an ingestion first")
        else:
            known = ", ".join(str(r["run_id"]) for r in every[:5])
            more = f" and {len(every) - 5} more" if len(every) > 5 else ""
            say(f"no run {args.run!r} among the {len(every)} reported: {known}{more}")
        return 1
    report = reports[0]
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0 if report.get("status", "success") == "success" else RUN_FAILED
    say(f"{report['source']}  run {report['run_id']}  finished {report['finished_at']}")
    status = report.get("status", "success")
    say(f"status: {status}" + (f" ({report['reason']})" if report.get("reason") else ""))
    # Counters by attribute: a renamed one is a type error here, not a silent 0.
    counts = RunCounts.from_report(report["counts"])
    say(
        f"documents: {counts.documents_seen} seen, {counts.documents_new} new, "
        f"{counts.documents_changed} changed, {counts.documents_unchanged} unchanged, "
        f"{counts.documents_deleted} deleted; {counts.quarantined} quarantined"
    )
    say(
        f"chunks: {counts.chunks} made, {counts.chunks_embedded} embedded, "
        f"{counts.chunks_written} written, {counts.chunks_deleted} deleted"
    )
    timings = ", ".join(
        f"{name} {stage.get('seconds', 0)} s" for name, stage in report["stages"].items()
    )
    say(f"stages: {timings}")
    for name, gate in report.get("gates", {}).items():
        if gate.get("skipped"):
            say(f"gate {name}: skipped ({gate['skipped']})")
            continue
        passed = sum(1 for e in gate["expectations"] if e["success"])
        verdict = "passed" if gate["success"] else "FAILED"
        say(f"gate {name}: {verdict}, {passed}/{len(gate['expectations'])} expectations")
        for expectation in gate["expectations"]:
            if not expectation["success"]:
                seen = expectation.get("unexpected_count")
                observed = expectation.get("observed")
                say(
                    f"  - {expectation['name']}: "
                    + (f"{seen} unexpected" if seen is not None else f"observed {observed}")
                )
                for row in expectation.get("failing", []):
                    say(f"      {row['uri']}: {row['value']}")
        if gate.get("data_docs"):
            say(f"  Data Docs: {gate['data_docs']}")
        if gate.get("failing_csv"):
            say(f"  failing rows by file: {gate['failing_csv']}")
    for row in report.get("quarantine", [])[:10]:
        say(f"quarantined: {row['uri']}: {row.get('reason')} ({row.get('detail')})")
    say(f"report: {reports_dir / report['json']}  (page: {reports_dir / report['html']})")
    return 0 if status == "success" else RUN_FAILED


def _validate(settings: Settings, args: argparse.Namespace) -> int:
    from rag_ingest.quality import STAGES, apply_overrides, load_suite

    settings.check_sources_exist()
    # The suites, and every source's overrides of them, fail here rather than mid-run.
    for stage in STAGES:
        suite = load_suite(settings.suites_dir, stage)
        for source in settings.sources:
            try:
                apply_overrides(suite, settings.quality_overrides(source))
            except ValueError as error:
                raise ConfigError(f"sources[{source.name}].quality_overrides: {error}") from None
    for warning in _empty_sources(settings):
        print(shown(f"warning: {warning}"), file=sys.stderr)
    names = ", ".join(s.name for s in settings.sources)
    say(
        f"configuration OK: {len(settings.sources)} source(s): {names}; store {settings.store.kind}"
        f"; quality suites in {settings.suites_dir}"
    )
    return 0


def _empty_sources(settings: Settings) -> list[str]:
    """Sources whose glob matches no file today (templated locations: a partition per
    run date, so not listed here)."""
    from rag_ingest.sources import list_files

    warnings = []
    for source in settings.sources:
        if source.is_templated:
            continue
        location = settings.source_location(source)
        if not list_files(location, source.glob):
            warnings.append(
                f"source {source.name!r}: glob {source.glob!r} matches no file under {location}"
            )
    return warnings


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"wants a positive number, got {value}")
    return value


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k wants cut-offs like 10,100, got {text!r}") from None
    if not ks or ks[0] <= 0:
        raise argparse.ArgumentTypeError(f"--k wants positive cut-offs like 10,100, got {text!r}")
    return ks


def _eval(settings: Settings, args: argparse.Namespace) -> int:
    from rag_ingest.dag_runner import default_dags_folder
    from rag_ingest.evaluation import BeirDataset
    from rag_ingest.retrieval_eval import EvalPlan, markdown_summary, run_evaluation

    dataset = BeirDataset.load(args.dataset, args.split)
    work_dir = Path(args.work_dir or Path(".rag_ingest") / "eval" / dataset.name).resolve()
    dags_folder = Path(args.dags_folder) if args.dags_folder else default_dags_folder()
    plan = EvalPlan(dataset, work_dir, args.k, args.subset, args.mode)
    # With --json, stdout is the result alone: progress goes to stderr.
    progress = (lambda line: print(line, file=sys.stderr)) if args.json else print
    try:
        result = run_evaluation(settings, plan, dags_folder, say=progress)
    except RuntimeError as error:  # the ingestion run failed: its reason and log tail
        print(shown(f"rag-ingest eval: {error}"), file=sys.stderr)
        return 1
    output = Path(args.output) if args.output else work_dir / "eval.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    summary = markdown_summary(result)
    output.with_suffix(".md").write_text(summary)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(summary)
    print(f"written: {output} and {output.with_suffix('.md')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag-ingest",
        description=__doc__,
        epilog="Exit codes: 0 success; 1 nothing found (no hits, no report); 2 a usage or "
        "configuration error; 3 a run failed (status: a source's last run; report: that run).",
    )
    parser.add_argument("--version", action="version", version=f"rag-ingest {_version()}")
    parser.add_argument(
        "--config", help="configuration file (default: $RAG_INGEST_CONFIG or ./rag_ingest.yaml)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    search = commands.add_parser("search", help="search the store")
    search.add_argument("query")
    search.add_argument("--source", help="only this source")
    search.add_argument("-k", type=_positive, default=5, help="number of hits (default 5)")
    search.add_argument(
        "--labels",
        help="the caller's access labels, comma-separated: only chunks carrying one of them",
    )
    search.add_argument(
        "--mode",
        choices=SEARCH_MODES,
        default="vector",
        help="vector (default), lexical (the full-text index) or hybrid (both, rank-fused)",
    )
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.set_defaults(handler=_search)

    status = commands.add_parser("status", help="per source: store contents and the last run")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)

    report = commands.add_parser("report", help="a run's summary (default: the newest run)")
    report.add_argument("--source", help="only this source's runs")
    report.add_argument("--run", help="this run id (or its folder name)")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.set_defaults(handler=_report)

    validate = commands.add_parser("validate", help="check the configuration")
    validate.set_defaults(handler=_validate)

    evaluate = commands.add_parser(
        "eval",
        help="retrieval quality on a BEIR-layout dataset, ingested through the DAG",
        description="Ingest the dataset's corpus through the real ingestion DAG (airflow "
        "dags test) with this configuration's chunking and embedding settings, into a fresh "
        "store under --work-dir; search every judged query; report nDCG, Recall and MRR.",
    )
    evaluate.add_argument(
        "--dataset", required=True, help="folder with corpus.jsonl, queries.jsonl, qrels/"
    )
    evaluate.add_argument("--k", type=_ks, default=(10, 100), help="cut-offs (default 10,100)")
    evaluate.add_argument(
        "--subset", type=int, help="only this many documents and the queries they answer"
    )
    evaluate.add_argument("--split", default="test", help="qrels split (default test)")
    evaluate.add_argument("--work-dir", help="default .rag_ingest/eval/<dataset>")
    evaluate.add_argument("--output", help="result JSON (default <work-dir>/eval.json; .md beside)")
    evaluate.add_argument(
        "--dags-folder",
        help="folder of rag_ingest_sources.py (default: Airflow's, else one over the package)",
    )
    evaluate.add_argument(
        "--mode",
        type=_modes,
        default=("vector",),
        help="search modes, comma-separated, each over the same ingestion: vector (default), "
        "lexical, hybrid",
    )
    evaluate.add_argument("--json", action="store_true", help="machine-readable output")
    evaluate.set_defaults(handler=_eval)

    cli_generations.add_commands(commands)

    assets = commands.add_parser(
        "assets",
        help="fetch the scripts and styles Data Docs pages load (served by the UI, offline)",
        description="Download the pinned npm packages Great Expectations' Data Docs load from "
        "CDNs, check each against its sha512, and keep their files for the UI to serve.",
    )
    assets.add_argument(
        "action", choices=("fetch", "check"), help="fetch, or check what is missing"
    )
    return parser


def _assets(args: argparse.Namespace) -> int:
    from rag_ingest import data_docs_assets

    target = data_docs_assets.assets_dir()
    if args.action == "fetch":
        for name in data_docs_assets.fetch(target):
            say(f"fetched {name}")
    missing = data_docs_assets.missing(target)
    if missing:
        say(f"Data Docs assets missing in {target}: {', '.join(missing)} (rag-ingest assets fetch)")
        return 1
    say(f"Data Docs assets: all {len(data_docs_assets.PACKAGES)} packages in {target}")
    return 0


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [mode for mode in modes if mode not in SEARCH_MODES]
    if not modes or unknown:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(SEARCH_MODES)} (got {text!r})")
    return modes


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rag-ingest")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "assets":  # needs no configuration
        return _assets(args)
    try:
        settings = load_settings(args.config)
        return int(args.handler(settings, args))
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(shown(f"rag-ingest: error: {exc}"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
