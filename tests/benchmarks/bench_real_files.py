"""Files written by other software: the share of each format that parses.

    python -m tests.benchmarks.bench_real_files FOLDER [FOLDER ...]

Every file under the folders whose suffix a parser reads goes through
`parse_file`, as the extract stage runs it (default settings, OCR on auto).
Meant for sample files other projects test with, fetched by whoever runs it
(docs/benchmarks.md names the ones measured): the python-docx, python-pptx
and openpyxl test files, the Ruby mail gem's e-mail fixtures, IDPF's EPUB 3
samples. Prints per format the files, the share parsed, the quarantine
reasons and the median parse time; a file that fails is listed with why.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from tests.benchmarks.common import parser_for, save_json


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(__doc__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--show", type=int, default=5, help="failures listed per format")
    args = parser.parse_args(argv)

    from rag_ingest.parsing import ParseError, format_of, parse_file

    times: dict[str, list[float]] = defaultdict(list)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    failures: dict[str, list[str]] = defaultdict(list)
    for folder in args.folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = format_of(path.name)
            if name is None or name == "record":
                continue
            started = time.perf_counter()
            try:
                parse_file(path.name, path.read_bytes())
                reasons[name]["parsed"] += 1
            except ParseError as error:
                reasons[name][error.reason] += 1
                failures[name].append(f"{path.relative_to(folder)}: {error}"[:160])
            except Exception as error:  # noqa: BLE001 - the pipeline quarantines these too
                reasons[name]["parse_failed"] += 1
                failures[name].append(f"{path.relative_to(folder)}: {error!r}"[:160])
            times[name].append(time.perf_counter() - started)
    results = {}
    for name in sorted(reasons):
        total = sum(reasons[name].values())
        parsed = reasons[name]["parsed"]
        median_ms = statistics.median(times[name]) * 1000
        results[name] = {"files": total, "parsed": parsed, "share": parsed / total,
                         "reasons": dict(reasons[name]), "median_ms": median_ms}  # fmt: skip
        print(f"{name:6} {total:4d} files, {parsed / total:6.1%} parsed, "
              f"median {median_ms:6.1f} ms; {dict(reasons[name])}")  # fmt: skip
        for failure in failures[name][: args.show]:
            print(f"         {failure}")
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
