"""One active run per source: a lease file in the source's staging folder.

Airflow's `max_active_runs=1` keeps scheduled and manual runs of a source
apart, but a backfill (or a second deployment, or `airflow dags test` beside
a scheduler) can still start a run while another is active. Two runs that
plan against the same store state and then both write would leave chunks of
an old version behind. So the extract task takes the source's lease before
it reads anything, and the report task gives it back (it runs whatever
happened). A run that finds the source busy fails its extract task, which
Airflow retries (the DAG's retries), so it waits its turn behind a short run
and fails naming the holder behind a long one.

A lease whose run is dead is broken by the next run, without a person:
- Airflow says the holder's run is no longer queued or running (a lost
  worker the scheduler failed, a run marked failed by hand); or
- the lease was taken by a process that runs the whole DAG run itself
  (`airflow dags test`), that process was on this host, and it no longer
  exists (killed with `kill -9`, whose run Airflow still calls running).
  The lease records the host, the pid and the process's start time, so a
  recycled pid is not taken for the holder. Under an executor each task is
  its own process and the extract task's exit says nothing of the run, so
  there only Airflow's word counts.

The lease is created with exclusive-create (`xb`), atomic on a local or
network filesystem; on object stores it is as strong as their conditional
create.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fsspec
import psutil

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


def _create(staging_dir: str, source: str, run_id: str, whole_run_here: bool) -> bool:
    fs, path = fsspec.core.url_to_fs(_lease_url(staging_dir, source))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    this = psutil.Process()
    body = {
        "run_id": run_id,
        "since": datetime.now(UTC).isoformat(),
        "host": socket.gethostname(),
        "pid": this.pid,
        "pid_started": this.create_time(),
        "whole_run_here": whole_run_here,
    }
    try:
        with fs.open(path, "xb") as lease:
            lease.write(json.dumps(body).encode())
    except FileExistsError:
        return False
    return True


def _holder_process_gone(current: dict[str, Any]) -> bool:
    """Whether the lease's process ran the whole run, on this host, and has exited."""
    if not current.get("whole_run_here") or current.get("host") != socket.gethostname():
        return False
    try:
        started = psutil.Process(int(current["pid"])).create_time()
    except psutil.NoSuchProcess:
        return True
    except (KeyError, TypeError, ValueError, psutil.Error):
        return False  # a lease we cannot read this way: never break it blindly
    # Another process with the recycled pid started later than the holder did.
    return abs(started - float(current.get("pid_started", started))) > 1.0


def acquire(
    staging_dir: str,
    source: str,
    run_id: str,
    is_running: Callable[[str], bool] | None = None,
    whole_run_here: bool = False,
) -> None:
    """Take the source's lease for `run_id`, or raise SourceBusy naming the holder.

    `is_running(run_id)` tells whether another holder's run is still active;
    without it every holder counts as active (nothing is broken blindly).
    `whole_run_here`: this process runs every task of the run (`airflow dags
    test`), so its exit is the run's end.
    """
    for _ in range(2):
        if _create(staging_dir, source, run_id, whole_run_here):
            return
        current = holder(staging_dir, source)
        if current is None:
            continue  # released between our two looks: try again
        if current["run_id"] == run_id:
            return  # a retry of this run's own task
        if _holder_process_gone(current):
            log.warning(
                "source %s: breaking the lease of run %s (taken %s): its process %s on %s, "
                "which ran the whole run, no longer exists",
                source,
                current["run_id"],
                current["since"],
                current["pid"],
                current["host"],
            )
            release(staging_dir, source, current["run_id"])
            continue
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
