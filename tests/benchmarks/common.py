"""What the benchmark scripts share: where SciFact is, and their common options."""

from __future__ import annotations

import argparse
from pathlib import Path

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir" / "scifact"


def parser_for(doc: str | None) -> argparse.ArgumentParser:
    """Options every benchmark takes: the chunker's settings and a JSON output path."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=240)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--json", help="also write the results here")
    return parser


def scifact_present() -> bool:
    if (SCIFACT / "corpus.jsonl").exists():
        return True
    print(f"SciFact not found at {SCIFACT}: the benchmark needs ../shared/data/beir/scifact")
    return False


def peak_rss_mib() -> int:
    """This process's peak resident memory (VmHWM).

    Not getrusage's ru_maxrss: Linux carries that across fork and exec, so a
    child started by a large parent (pytest with Spark loaded) reports the
    parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
