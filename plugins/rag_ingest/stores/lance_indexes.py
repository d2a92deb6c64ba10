"""A run's new rows into a LanceDB table's indexes, at the cost of the new rows.

lancedb's `optimize()` merges the rows a run wrote into each index whole: on a
1M-chunk table, a re-run that wrote 10,653 rows spent 10.4 s of its 13 s
rewriting the full-text index (docs/benchmarks.md). Lance can index new rows
as a segment of their own, searched with the rest: the same BM25 scores and
search times, measured on that table. So each index keeps its first segment
(the table as last merged) and at most one segment beside it, which every run
merges its new rows into; when that segment would hold more than DELTA_SHARE
of the table's rows, every segment is merged into one again (what lancedb's
`optimize()` does each time), so the segment beside stays small and a run's
cost follows what it wrote.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

# Of the table's rows, at most this share outside each index's first segment.
DELTA_SHARE = 0.1
# What lancedb's optimize() keeps of older versions (its default), kept the same here.
KEEP_VERSIONS = timedelta(days=7)


def rows_beside_first_segment(dataset: Any) -> int:
    """The most rows any index holds outside its first segment, new rows included
    (fragments that no segment of it covers yet)."""
    fragment_rows = {f.fragment_id: f.count_rows() for f in dataset.get_fragments()}
    most = 0
    for index in dataset.describe_indices():
        first = min(index.segments, key=lambda segment: segment.created_at)
        covered = set(first.fragment_ids)
        most = max(most, sum(n for fid, n in fragment_rows.items() if fid not in covered))
    return most


def fold_in(table: Any, pending: int) -> str:
    """Bring every index of `table` (a lancedb table) up to date; `pending` rows are
    unindexed. Compacts small files and drops versions older than KEEP_VERSIONS, as
    lancedb's optimize() does."""
    dataset = table.to_lance()
    beside = rows_beside_first_segment(dataset)
    whole = beside > DELTA_SHARE * dataset.count_rows()
    dataset.optimize.compact_files()
    for index in dataset.describe_indices():
        # The newest segments merge with the unindexed rows: all of them (one segment
        # again), or all but the first (the segment beside it, or a new one).
        dataset.optimize.optimize_indices(
            index_names=[index.name],
            num_indices_to_merge=len(index.segments) - (0 if whole else 1),
        )
    dataset.cleanup_old_versions(older_than=KEEP_VERSIONS)
    if whole:
        return f"the indexes took in {pending} rows, merged whole"
    return f"the indexes took in {pending} rows, in a segment of {beside} rows beside the rest"
