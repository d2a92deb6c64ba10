"""The sensitive-data gate's credential detectors: detection and false-positive rates.

    make bench-secrets

1. Detection: the default detectors (`payment_card`, `api_key`, `private_key`)
   over the secret corpus (tests/secret_corpus.py: 45 formats, each made up
   from a seed in its issuer's shape, in four kinds of surroundings). A case is
   detected when something is found and none of its secret parts survive
   redaction. Target: at least 95%.
2. False positives: the share of SciFact's 5,183 abstracts (plain scientific
   prose) in which the same detectors find anything. Target: at most 0.1%.
3. Speed: the gate's scan of SciFact against detect-secrets' own line-by-line
   scan with the same detectors (the baseline, measured in this run).
"""

from __future__ import annotations

import json
import time
from collections import Counter

from detect_secrets.plugins.keyword import CONFIG_DENYLIST_REGEX_TO_GROUP, KeywordDetector

from rag_ingest import credentials
from rag_ingest.config_source import SensitiveDataConfig
from rag_ingest.sensitive import Scanner
from tests.benchmarks.common import SCIFACT, parser_for, save_json, scifact_present
from tests.secret_corpus import FORMATS, corpus


def detection(scanner: Scanner, seeds: int, per_format: int) -> dict[str, object]:
    missed: Counter[str] = Counter()
    cases = [case for seed in range(seeds) for case in corpus(seed, per_format)]
    for _, case in cases:
        redacted, counts = scanner.redact(case.text)
        if not counts or any(part in redacted for part in case.secrets):
            missed[case.name] += 1
    found = len(cases) - sum(missed.values())
    return {
        "formats": len(FORMATS),
        "cases": len(cases),
        "detected": found,
        "detection_rate": found / len(cases),
        "missed_by_format": dict(missed),
    }


def detect_secrets_line_scan(text: str, keyword: KeywordDetector) -> int:
    """The baseline: detect-secrets' detectors run as it runs them, line by line."""
    found = 0
    for line in text.splitlines():
        for plugin in credentials._regex_detectors():
            found += sum(1 for _ in plugin.analyze_string(line))
        found += sum(1 for _ in keyword.analyze_string(line))
        found += sum(1 for _ in keyword.analyze_string(line, CONFIG_DENYLIST_REGEX_TO_GROUP))
    return found


def false_positives(scanner: Scanner) -> dict[str, object]:
    texts = [
        doc["title"] + "\n" + doc["text"]
        for doc in map(json.loads, (SCIFACT / "corpus.jsonl").read_text().splitlines())
    ]
    started = time.perf_counter()
    kinds: Counter[str] = Counter()
    flagged = 0
    for text in texts:
        counts = scanner.count(text)
        flagged += bool(counts)
        kinds.update(counts.keys())
    gate_seconds = time.perf_counter() - started
    keyword = KeywordDetector()
    started = time.perf_counter()
    baseline_flagged = sum(1 for text in texts if detect_secrets_line_scan(text, keyword))
    baseline_seconds = time.perf_counter() - started
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    return {
        "documents": len(texts),
        "flagged": flagged,
        "flagged_share": flagged / len(texts),
        "flagged_by_kind": dict(kinds),
        "baseline_flagged": baseline_flagged,
        "gate_mb_per_s": megabytes / gate_seconds,
        "detect_secrets_line_scan_mb_per_s": megabytes / baseline_seconds,
        "speed_ratio": baseline_seconds / gate_seconds,
    }


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--per-format", type=int, default=4)
    args = parser.parse_args()
    if not scifact_present():
        raise SystemExit(1)
    scanner = Scanner(SensitiveDataConfig().detect)
    results = {
        "detectors": list(scanner.detect),
        "detection": detection(scanner, args.seeds, args.per_format),
        "scifact": false_positives(scanner),
    }
    found, fp = results["detection"], results["scifact"]
    print(
        f"detection: {found['detected']}/{found['cases']} cases of {found['formats']} formats "
        f"({found['detection_rate']:.2%}; target >= 95%); missed: {found['missed_by_format']}"
    )
    print(
        f"SciFact: {fp['flagged']}/{fp['documents']} documents flagged "
        f"({fp['flagged_share']:.3%}; target <= 0.1%) {fp['flagged_by_kind']}"
    )
    print(
        f"speed: gate {fp['gate_mb_per_s']:.2f} MB/s, detect-secrets line scan "
        f"{fp['detect_secrets_line_scan_mb_per_s']:.2f} MB/s ({fp['speed_ratio']:.1f}x)"
    )
    save_json(args.json, results)


if __name__ == "__main__":
    main()
