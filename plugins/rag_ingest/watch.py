"""Change-driven runs: what an asset watcher runs in Airflow's triggerer.

A source with a `watch:` section is scheduled on its own change asset as well
as on its schedule (the schedule stays as a safety net). The asset's watcher
is a `DebouncedTrigger` around one change feed:

- `listing`: `ListingChangeTrigger` lists the location every
  `interval_seconds` (paths, sizes, modified times; fsspec, so any location
  the source can read) and compares it with the last listing it saw, which it
  keeps under staging, so a change made while no triggerer ran is still seen.
  No Spark, no model: a listing costs what `ls` costs.
- `queue`: a message on a queue of Airflow's common-messaging provider
  (`MessageQueueTrigger`, picked by its scheme: `redis+pubsub` is the tested
  one; `sqs`, `kafka` and the other schemes of installed providers work the
  same way), for an object store's notifications or any producer that can
  publish.

The debounce makes a burst one event: after a first change it waits until no
change has come for `quiet_seconds` (or `max_wait_seconds` have passed), then
fires once. Events that come while a run is going need nothing here: Airflow
keeps at most one queued asset-triggered run per DAG, and a DAG at its
`max_active_runs` (1) waits, so they start one follow-up run; a duplicate
event only lands in the same queued run.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, AssetWatcher
from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from rag_ingest.config_source import SourceConfig, WatchConfig
from rag_ingest.sources import list_files


def listing_state_path(staging_dir: str | Path, source: str) -> Path:
    """The last listing the watcher of a source saw."""
    return Path(staging_dir) / source / "watch" / "listing.json"


def listing_fingerprint(location: str, pattern: str) -> tuple[str, int]:
    """A digest of every matching file's path, size and modified time, and their count."""
    files = list_files(location, pattern)
    digest = hashlib.sha256()
    for file in files:
        modified = file.modified_at.isoformat() if file.modified_at else ""
        digest.update(f"{file.relative_path}\x1f{file.size}\x1f{modified}\n".encode())
    return digest.hexdigest(), len(files)


class ListingChangeTrigger(BaseEventTrigger):
    """Fires each time the listing of a location differs from the one seen before."""

    def __init__(self, location: str, glob: str, interval_seconds: float, state_path: str) -> None:
        super().__init__()
        self.location = location
        self.glob = glob
        self.interval_seconds = interval_seconds
        self.state_path = state_path

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"location": self.location, "glob": self.glob,
             "interval_seconds": self.interval_seconds, "state_path": self.state_path},
        )  # fmt: skip

    def _seen(self) -> str | None:
        try:
            return str(json.loads(Path(self.state_path).read_text())["fingerprint"])
        except (OSError, ValueError, KeyError):
            return None

    def _remember(self, fingerprint: str, files: int) -> None:
        path = Path(self.state_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({"fingerprint": fingerprint, "files": files}))
        partial.replace(path)  # a reader never sees half a state

    async def run(self) -> AsyncIterator[TriggerEvent]:
        seen = await asyncio.to_thread(self._seen)
        while True:
            try:
                fingerprint, files = await asyncio.to_thread(
                    listing_fingerprint, self.location, self.glob
                )
            except Exception as error:  # a location away for a moment: look again later
                self.log.warning("cannot list %s: %s", self.location, error)
            else:
                if fingerprint != seen:
                    await asyncio.to_thread(self._remember, fingerprint, files)
                    if seen is not None:  # the first listing ever is the baseline
                        yield TriggerEvent({"feed": "listing", "files": files})
                    seen = fingerprint
            await asyncio.sleep(self.interval_seconds)


def _feed(classpath: str, kwargs: dict[str, Any]) -> BaseTrigger:
    """A trigger from its serialized form, as the triggerer makes it."""
    module, _, name = classpath.rpartition(".")
    trigger: BaseTrigger = getattr(importlib.import_module(module), name)(**kwargs)
    return trigger


class DebouncedTrigger(BaseEventTrigger):
    """One event per burst of a change feed's events (the feed: a trigger's serialized form)."""

    def __init__(
        self,
        feed_classpath: str,
        feed_kwargs: dict[str, Any],
        quiet_seconds: float,
        max_wait_seconds: float,
    ) -> None:
        super().__init__()
        self.feed_classpath = feed_classpath
        self.feed_kwargs = feed_kwargs
        self.quiet_seconds = quiet_seconds
        self.max_wait_seconds = max_wait_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"feed_classpath": self.feed_classpath, "feed_kwargs": self.feed_kwargs,
             "quiet_seconds": self.quiet_seconds, "max_wait_seconds": self.max_wait_seconds},
        )  # fmt: skip

    async def _pump(self, events: asyncio.Queue[dict[str, Any]]) -> None:
        """Every event of the feed into `events`; a feed that ends (a queue trigger
        fires once) is started again."""
        while True:
            async for event in _feed(self.feed_classpath, self.feed_kwargs).run():
                payload = event.payload if isinstance(event.payload, dict) else {}
                await events.put(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(events))
        try:
            while True:
                first = await self._next(events, None, pump)
                assert first is not None  # no timeout: only an event ends the wait
                count, started = 1, time.monotonic()
                while (waited := time.monotonic() - started) < self.max_wait_seconds:
                    timeout = min(self.quiet_seconds, self.max_wait_seconds - waited)
                    if await self._next(events, timeout, pump) is None:
                        break  # quiet: the burst is over
                    count += 1
                yield TriggerEvent(
                    {"feed": first.get("feed", "queue"), "events": count,
                     "burst_seconds": round(time.monotonic() - started, 3)}
                )  # fmt: skip
        finally:
            pump.cancel()

    @staticmethod
    async def _next(
        events: asyncio.Queue[dict[str, Any]], timeout: float | None, pump: asyncio.Task[None]
    ) -> dict[str, Any] | None:
        """The next event, or None after `timeout`; a feed that failed fails the trigger."""
        getter = asyncio.ensure_future(events.get())
        done, _ = await asyncio.wait({getter, pump}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if pump in done:
            getter.cancel()
            pump.result()  # raises the feed's error
            raise RuntimeError("the change feed stopped")
        if getter in done:
            return getter.result()
        getter.cancel()
        return None


def _feed_of(
    source: SourceConfig, watch: WatchConfig, location: str, staging_dir: str
) -> tuple[str, dict[str, Any]]:
    if watch.feed == "listing":
        state = str(listing_state_path(staging_dir, source.name))
        return ListingChangeTrigger(location, source.glob, watch.interval_seconds,
                                    state).serialize()  # fmt: skip
    # Imported only here: the provider registers its queues when it is imported.
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    queue = MessageQueueTrigger(scheme=watch.queue_scheme, **watch.queue_options)
    return queue.serialize()  # the scheme's own trigger, which the debounce starts


def change_asset(source: SourceConfig, location: str, staging_dir: str) -> Asset:
    """The asset a watched source's DAG is scheduled on: changes to its files at
    `location` (absolute: the triggerer runs elsewhere).

    Apart from `source_asset` (which each run updates): a DAG scheduled on its own
    output would start itself again."""
    watch = source.watch
    if watch is None:
        raise ValueError(f"source '{source.name}' has no watch section")
    classpath, kwargs = _feed_of(source, watch, location, staging_dir)
    trigger = DebouncedTrigger(classpath, kwargs, watch.quiet_seconds, watch.max_wait_seconds)
    return Asset(
        name=f"rag_ingest__{source.name}__changes",
        uri=f"rag-ingest://sources/{source.name}/changes",
        watchers=[AssetWatcher(name=f"rag_ingest__{source.name}__{watch.feed}", trigger=trigger)],
    )
