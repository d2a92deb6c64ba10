"""A golden set over the docs corpus, for the generation tests' cutover verdicts.

Paraphrases of the docs pages (few of their words in the pages): the packaged
model finds all twelve in the top 3, the one-layer model 7 of 12 (measured
2026-12-06).
"""

from __future__ import annotations

import json
from pathlib import Path

GOLDEN = [
    ("how fast is OCR on scanned pages on a CPU", "benchmarks.md"),
    ("which YAML keys set the chunk size in tokens", "configuration.md"),
    ("install and run the demo for the first time", "getting-started.md"),
    ("how a chunk id stays stable when nearby text is edited", "how-it-works.md"),
    ("re-run history for past dates from the command line", "operations.md"),
    ("Great Expectations suites that check each stage's output", "quality.md"),
    ("what the pipeline promises when a worker crashes mid-run", "reliability.md"),
    ("keeping passwords and tokens out of logs", "reliability.md"),
    ("send the embedding work to machines with a graphics card", "operations.md"),
    ("how long the approximate nearest neighbour index takes at a million chunks", "benchmarks.md"),
    ("pages that show the validation results in a browser", "quality.md"),
    ("the order of steps from reading files to the vector store", "how-it-works.md"),
]


def write_golden_set(folder: Path) -> Path:
    """GOLDEN as a golden-set file (JSON Lines) in `folder`."""
    golden = folder / "golden.jsonl"
    golden.write_text(
        "".join(json.dumps({"query": q, "expected": [doc]}) + "\n" for q, doc in GOLDEN)
    )
    return golden
