"""Where the chunk stage chunks: in the task's own process while the documents are few
by count or by text (estimated from the Parquet footers), else with Spark."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rag_ingest.parquet_io import mean_bytes
from rag_ingest.pipeline.chunk import _few
from rag_ingest.run import RunContext
from tests.conftest import write_config


def test_mean_bytes_comes_from_the_footers_of_every_file(tmp_path: Path) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    first = [f"{n:04d}" + "a" * 96 for n in range(30)]  # distinct, as documents' texts are
    second = [f"{n:04d}" + "b" * 296 for n in range(10)]
    pq.write_table(pa.table({"text": first, "n": list(range(30))}), folder / "p0.parquet")
    pq.write_table(pa.table({"text": second, "n": list(range(10))}), folder / "p1.parquet")
    # Uncompressed column bytes hold the values plus 4-byte lengths and page headers.
    assert 150 <= mean_bytes(folder, "text") <= 190  # (30 * 100 + 10 * 300) / 40 = 150
    assert mean_bytes(folder, "n") < 20 and mean_bytes(folder, "absent") == 0.0
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), empty)
    assert mean_bytes(empty, "text") == 0.0


@pytest.mark.parametrize(
    ("documents", "chunked", "text_bytes", "in_process"),
    [
        (500, 500, 10_000, True),  # within in_process_max_files
        (5_000, 2_000, 1_000, True),  # over it by count, 2 MB of text
        (5_000, 2_000, 40_000, False),  # 80 MB of text
    ],
)
def test_documents_are_chunked_in_process_while_few_by_count_or_by_text(
    tmp_path: Path, documents: int, chunked: int, text_bytes: int, in_process: bool
) -> None:
    config = write_config(tmp_path, tmp_path / "corpus")
    ctx = RunContext.load(str(config), "docs", "run")
    ctx.layout.documents.mkdir(parents=True)
    text = pa.array([f"{n:06d}" + "x" * (text_bytes - 6) for n in range(documents)])
    pq.write_table(pa.table({"text": text}), ctx.layout.documents / "part-0.parquet")
    assert ctx.settings.spark.in_process_max_files == 1000
    assert ctx.settings.spark.in_process_max_bytes == 64 * 2**20
    assert _few(ctx, chunked) is in_process


def test_no_in_process_chunking_when_in_process_max_files_is_0(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, tmp_path / "corpus", extra="spark:\n  in_process_max_files: 0\n"
    )
    ctx = RunContext.load(str(config), "docs", "run")
    ctx.layout.documents.mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a few words"]}), ctx.layout.documents / "part-0.parquet")
    assert not _few(ctx, 1)  # documented: 0 means always Spark
