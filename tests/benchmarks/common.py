"""What the benchmark scripts share: where SciFact is, and their common options."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir" / "scifact"


def parser_for(doc: str | None) -> argparse.ArgumentParser:
    """Options every benchmark takes: the chunker's settings and a JSON output path."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=240)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--json", help="also write the results here")
    return parser


def scifact_source(workdir: Path, max_tokens: int, overlap: int) -> Path:
    """A rag-ingest configuration in `workdir` with SciFact's corpus.jsonl as a record source."""
    import shutil

    corpus = workdir / "scifact-corpus"
    corpus.mkdir()
    shutil.copy(SCIFACT / "corpus.jsonl", corpus / "corpus.jsonl")
    config = workdir / "rag_ingest.yaml"
    config.write_text(
        f"sources:\n  - name: scifact\n    location: {corpus}\n    glob: corpus.jsonl\n"
        f"chunking:\n  max_tokens: {max_tokens}\n  overlap_tokens: {overlap}\n"
        f"store:\n  path: {workdir / 'lancedb'}\n"
        f"paths:\n  staging: {workdir / 'staging'}\n  reports: {workdir / 'reports'}\n"
    )
    return config


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


def save_json(path: str | None, results: object) -> None:
    """The benchmark's figures as JSON at `path` (its folder made), when one is given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=2) + "\n")
