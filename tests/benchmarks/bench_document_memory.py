"""What one large document costs in memory, under the default per-document bounds.

    python -m tests.benchmarks.bench_document_memory

Each measurement runs in a fresh child process and reports its peak resident
memory (VmHWM) beside the same process's memory before the work (the
baseline, measured in the same run):
1. parse: a legal 40 MB Markdown file (under `max_file_mb` 50) through
   extract's `parse_files`; its text is over `max_document_chars` (5M), so it
   must come out quarantined as `text_too_long`.
2. chunk: a document just under the text limit (4.9M characters) through
   the chunker with the default 240/32 tokens: the most text one document may
   bring to the chunk stage.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.common import parser_for, peak_rss_mib, save_json

WORDS = "the pipeline keeps knowledge fresh across sources with gates and tokens".split()


def _write_text(path: Path, chars: int) -> None:
    rng = random.Random(1)
    with path.open("w") as out:
        written = 0
        while written < chars:
            paragraph = " ".join(rng.choice(WORDS) for _ in range(80)) + "\n\n"
            out.write(paragraph)
            written += len(paragraph)


def _current_rss_mib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _parse(path: Path) -> dict[str, object]:
    import pandas as pd

    from rag_ingest.config_source import SourceConfig
    from rag_ingest.extract import ParseLimits, parse_files
    from rag_ingest.parsing import RecordFields

    source = SourceConfig(name="bench", location=str(path.parent))
    limits = ParseLimits(source.max_file_bytes, source.max_document_chars, source.max_parse_seconds)
    listing = pd.DataFrame([{"uri": str(path), "relative_path": path.name,
                             "size": path.stat().st_size, "modified_at": datetime.datetime.now(),
                             "refused": None, "refused_reason": None}])  # fmt: skip
    before = _current_rss_mib()
    (rows,) = parse_files(iter([listing]), "bench", limits, RecordFields())
    return {"baseline_mib": before, "peak_mib": peak_rss_mib(),
            "outcome": rows["error_reason"][0] or "parsed"}  # fmt: skip


def _chunk(path: Path) -> dict[str, object]:
    from rag_ingest.chunking import Chunker, load_tokenizer
    from rag_ingest.config_sections import ChunkingConfig, EmbeddingConfig
    from rag_ingest.embedding import resolve_model_path

    tokenizer = load_tokenizer(resolve_model_path(EmbeddingConfig().model_path))
    chunking = ChunkingConfig()
    before = _current_rss_mib()
    chunks = Chunker(tokenizer, chunking.max_tokens, chunking.overlap_tokens).split(
        path.read_text(), "Edge"
    )
    return {"baseline_mib": before, "peak_mib": peak_rss_mib(), "outcome": f"{len(chunks)} chunks"}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("parse", "chunk"):  # the child
        work = _parse if sys.argv[1] == "parse" else _chunk
        print(json.dumps(work(Path(sys.argv[2]))))
        return
    args = parser_for(__doc__).parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, chars in (("parse", 40_000_000), ("chunk", 4_900_000)):
            path = Path(folder) / f"{name}.md"
            _write_text(path, chars)
            done = subprocess.run(
                [sys.executable, "-m", "tests.benchmarks.bench_document_memory", name, str(path)],
                capture_output=True, text=True, check=True, env={**os.environ},
            )  # fmt: skip
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            figures["file_mb"] = round(path.stat().st_size / 1e6, 1)
            results[name] = figures
            print(f"{name}: {figures['file_mb']} MB file -> {figures['outcome']}; peak "
                  f"{figures['peak_mib']} MiB (process before the work: "
                  f"{figures['baseline_mib']} MiB)")  # fmt: skip
    save_json(args.json, results)


if __name__ == "__main__":
    main()
