"""A folder written from a thread of its own (parquet_io.background_writes): the same
rows in the same order as written directly, and a failed write fails the block."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rag_ingest.parquet_io import SparkFolderWriter, background_writes

SCHEMA = pa.schema([("n", pa.int64()), ("text", pa.string())])


def batches(seed: int) -> list[pa.Table]:
    rng = random.Random(seed)
    start, out = 0, []
    for _ in range(rng.randint(1, 30)):
        size = rng.randint(0, 700)
        out.append(
            pa.table(
                {"n": range(start, start + size), "text": ["x" * rng.randint(0, 50)] * size},
                schema=SCHEMA,
            )
        )
        start += size
    return out


@pytest.mark.parametrize("seed", range(8))
def test_a_folder_written_in_the_background_equals_one_written_directly(
    tmp_path: Path, seed: int
) -> None:
    size = random.Random(seed).randint(50, 2_000)  # part files of random size
    with SparkFolderWriter(tmp_path / "direct", SCHEMA, size=size) as direct:
        for batch in batches(seed):
            direct.write(batch)
    with (
        SparkFolderWriter(tmp_path / "behind", SCHEMA, size=size) as writer,
        background_writes(writer) as behind,
    ):
        for batch in batches(seed):
            behind.write(batch)
    assert sorted(p.name for p in (tmp_path / "behind").iterdir()) == sorted(
        p.name for p in (tmp_path / "direct").iterdir()
    )
    assert pq.read_table(tmp_path / "behind").equals(pq.read_table(tmp_path / "direct"))


class _FailsAt:
    def __init__(self, failing: int) -> None:
        self.failing, self.calls, self.threads = failing, 0, set()

    def write(self, table: pa.Table) -> None:
        self.threads.add(threading.current_thread().name)
        self.calls += 1
        if self.calls == self.failing:
            raise OSError("disk full")


def test_a_failed_write_is_raised_by_the_next_write_or_at_the_end() -> None:
    table = pa.table({"n": [1]}, schema=pa.schema([("n", pa.int64())]))
    writer = _FailsAt(failing=2)
    with pytest.raises(OSError, match="disk full"), background_writes(writer) as behind:
        for _ in range(5):
            behind.write(table)
    assert writer.calls == 2  # nothing written after the failure
    assert writer.threads != {threading.current_thread().name}

    last = _FailsAt(failing=3)
    with pytest.raises(OSError, match="disk full"), background_writes(last) as behind:
        for _ in range(3):
            behind.write(table)
    assert last.calls == 3


def test_a_failed_block_waits_for_the_write_in_flight(tmp_path: Path) -> None:
    written = threading.Event()

    class Slow:
        def write(self, table: pa.Table) -> None:
            threading.Event().wait(0.2)
            written.set()

    with pytest.raises(ValueError), background_writes(Slow()) as behind:
        behind.write(pa.table({"n": [1]}))
        raise ValueError("the stage failed")
    assert written.is_set()  # done before the block's writer could be discarded
