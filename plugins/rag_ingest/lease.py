"""One active run per source: a lease file in the source's staging folder.

Airflow's `max_active_runs=1` keeps scheduled and manual runs of a source
apart, but a backfill (or a second deployment, or `airflow dags test` beside
a scheduler) can still start a run while another is active. Two runs that
plan against the same store state and then both write would leave chunks of
an old version behind. So the extract task takes the source's lease before
it reads anything, and the report task gives it back (it runs whatever
happened). A run that finds the source busy fails its extract task, which
Airflow retries (the DAG's retries), so it waits its turn behind a short run
and fails naming the holder behind a long one. A lease whose run is no
longer running (its report never ran: a lost worker, a run marked failed by
hand) is broken by the next run.

The lease is created with exclusive-create (`xb`), atomic on a local or
network filesystem; on object stores it is as strong as their conditional
create.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fsspec

log = logging.getLogger(__name__)

LEASE_NAME = "ACTIVE_RUN.json"


class SourceBusy(RuntimeError):
    """Another run of the same source is active; this one stops before reading anything."""


def _lease_url(staging_dir: str, source: str) -> str:
    return f"{staging_dir.rstrip('/')}/{source}/{LEASE_NAME}"


def holder(staging_dir: str, source: str) -> dict[str, Any] | None:
    """The lease's content, or None when the source is free."""
    fs, path = fsspec.core.url_to_fs(_lease_url(staging_dir, source))
    try:
        with fs.open(path, "rb") as lease:
            data: dict[str, Any] = json.loads(lease.read())
            return data
    except FileNotFoundError:
        return None


def _create(staging_dir: str, source: str, run_id: str) -> bool:
    fs, path = fsspec.core.url_to_fs(_lease_url(staging_dir, source))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    body = {"run_id": run_id, "since": datetime.now(UTC).isoformat()}
    try:
        with fs.open(path, "xb") as lease:
            lease.write(json.dumps(body).encode())
    except FileExistsError:
        return False
    return True


def acquire(
    staging_dir: str,
    source: str,
    run_id: str,
    is_running: Callable[[str], bool] | None = None,
) -> None:
    """Take the source's lease for `run_id`, or raise SourceBusy naming the holder.

    `is_running(run_id)` tells whether another holder's run is still active;
    without it every holder counts as active (nothing is broken blindly).
    """
    for _ in range(2):
        if _create(staging_dir, source, run_id):
            return
        current = holder(staging_dir, source)
        if current is None:
            continue  # released between our two looks: try again
        if current["run_id"] == run_id:
            return  # a retry of this run's own task
        if is_running is not None and not is_running(current["run_id"]):
            log.warning(
                "source %s: breaking the lease of run %s (taken %s), which is no longer running",
                source,
                current["run_id"],
                current["since"],
            )
            release(staging_dir, source, current["run_id"])
            continue
        raise SourceBusy(
            f"source {source!r} is being ingested by run {current['run_id']} (since "
            f"{current['since']}); one run per source at a time, so this run stops before "
            f"reading anything. If that run is dead, delete {_lease_url(staging_dir, source)}"
        )
    raise SourceBusy(f"source {source!r}: another run took the lease at the same moment")


def release(staging_dir: str, source: str, run_id: str) -> bool:
    """Give the lease back if `run_id` holds it; True when it did."""
    current = holder(staging_dir, source)
    if current is None or current["run_id"] != run_id:
        return False
    fs, path = fsspec.core.url_to_fs(_lease_url(staging_dir, source))
    try:
        fs.rm(path)
    except FileNotFoundError:
        return False
    return True
