"""Change feeds for change-driven runs (rag_ingest.watch), run as the triggerer runs them."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rag_ingest.config import SourceConfig
from rag_ingest.watch import (
    DebouncedTrigger,
    ListingChangeTrigger,
    _feed,
    listing_fingerprint,
    listing_state_path,
)
from tests.trigger_events import FiredEvents, fired_within


def test_a_queue_feed_needs_its_scheme_and_a_listing_needs_one_location() -> None:
    with pytest.raises(ValidationError, match="queue_scheme"):
        SourceConfig(name="s", location="/data", watch={"feed": "queue"})
    with pytest.raises(ValidationError, match="templated"):
        SourceConfig(name="s", location="/drops/{{ ds }}", watch={"feed": "listing"})
    with pytest.raises(ValidationError, match="interval_seconds"):
        SourceConfig(name="s", location="/data", watch={"interval_seconds": 0})
    queue = {"feed": "queue", "queue_scheme": "redis+pubsub", "queue_options": {"channels": ["c"]}}
    assert SourceConfig(name="s", location="/drops/{{ ds }}", watch=queue).watch is not None


def test_the_fingerprint_moves_with_every_kind_of_change_and_only_then(tmp_path: Path) -> None:
    rng = random.Random(24)
    for number in range(20):
        (tmp_path / f"page-{number}.md").write_text("x" * rng.randint(1, 500))
    (tmp_path / "ignored.bin").write_bytes(b"\0")
    before, count = listing_fingerprint(str(tmp_path), "*.md")
    assert count == 20 and listing_fingerprint(str(tmp_path), "*.md")[0] == before
    (tmp_path / "ignored.bin").write_bytes(b"\0\0")  # outside the glob: no change
    assert listing_fingerprint(str(tmp_path), "*.md")[0] == before

    page = tmp_path / "page-3.md"
    seen = {before}
    changes = [
        lambda: page.write_text(page.read_text() + "more"),  # size
        lambda: os.utime(page, (1_700_000_000, 1_700_000_000)),  # modified time only
        lambda: (tmp_path / "page-new.md").write_text("new"),  # a file added
        lambda: page.unlink(),  # a file deleted
        lambda: (tmp_path / "page-4.md").rename(tmp_path / "page-4b.md"),  # renamed
    ]
    for change in changes:
        change()
        fingerprint, _ = listing_fingerprint(str(tmp_path), "*.md")
        assert fingerprint not in seen
        seen.add(fingerprint)


def _listing(folder: Path, state: Path, interval: float = 0.05) -> ListingChangeTrigger:
    return ListingChangeTrigger(str(folder), "*.md", interval, str(state))


def test_the_listing_trigger_keeps_its_baseline_across_restarts(tmp_path: Path) -> None:
    folder, state = tmp_path / "docs", listing_state_path(tmp_path / "staging", "docs")
    folder.mkdir()
    (folder / "a.md").write_text("a")

    async def first_start() -> list[dict[str, Any]]:
        fired = FiredEvents(_listing(folder, state))
        await fired.baseline(state)  # the first look is the baseline, stored
        return await fired.stop_after(0.3)

    assert asyncio.run(first_start()) == []

    # Changed while no triggerer ran: the next start sees it, once.
    (folder / "b.md").write_text("b")

    async def restarted() -> list[dict[str, Any]]:
        fired = FiredEvents(_listing(folder, state))
        return [await fired.next(), *await fired.stop_after(0.3)]

    assert asyncio.run(restarted()) == [{"feed": "listing", "files": 2}]
    assert asyncio.run(fired_within(_listing(folder, state), 0.3)) == []


def test_files_appearing_in_a_location_that_was_not_there_are_a_change(tmp_path: Path) -> None:
    folder, state = tmp_path / "docs", tmp_path / "state.json"

    async def scenario() -> list[dict[str, Any]]:
        fired = FiredEvents(_listing(folder, state))
        await fired.baseline(state)  # no folder yet: an empty listing, the baseline
        folder.mkdir()
        (folder / "a.md").write_text("a")
        return [await fired.next(), *await fired.stop_after(0.3)]

    assert asyncio.run(scenario()) == [{"feed": "listing", "files": 1}]


def test_a_location_that_cannot_be_listed_is_looked_at_again_not_fatal(tmp_path: Path) -> None:
    trigger = ListingChangeTrigger("nosuchprotocol://bucket/docs", "*.md", 0.05,
                                   str(tmp_path / "state.json"))  # fmt: skip
    assert asyncio.run(fired_within(trigger, 0.4)) == []  # each look warns; the trigger lives on
    assert not (tmp_path / "state.json").exists()


def _debounced(folder: Path, state: Path, quiet: float, max_wait: float) -> DebouncedTrigger:
    classpath, kwargs = _listing(folder, state, interval=0.02).serialize()
    return DebouncedTrigger(classpath, kwargs, quiet, max_wait)


def test_a_burst_of_changes_fires_once_and_a_later_change_once_more(tmp_path: Path) -> None:
    folder, state = tmp_path / "docs", tmp_path / "state.json"
    folder.mkdir()
    (folder / "a.md").write_text("a")
    rng = random.Random(7)

    async def scenario() -> list[dict[str, Any]]:
        # Quiet for 1 s ends a burst: far above a loaded machine's pauses between writes.
        fired = FiredEvents(_debounced(folder, state, 1.0, 30))
        await fired.baseline(state)
        for number in range(1_000):  # 1,000 file events in about a second
            (folder / f"burst-{number % 50}.md").write_text(str(rng.random()))
            if number % 50 == 0:
                await asyncio.sleep(0.05)
        burst = await fired.next()
        (folder / "a.md").write_text("a, edited")
        later = await fired.next()
        return [burst, later, *await fired.stop_after(2.5)]

    fired = asyncio.run(scenario())
    assert len(fired) == 2, fired
    assert fired[0]["events"] > 1 and fired[1]["events"] == 1
    assert all(event["feed"] == "listing" for event in fired)


def test_a_change_that_never_settles_still_fires_after_max_wait(tmp_path: Path) -> None:
    folder, state = tmp_path / "docs", tmp_path / "state.json"
    folder.mkdir()

    async def scenario() -> int | None:
        """The number of writes made when the first event had arrived (None: not before the end)."""
        fired = FiredEvents(_debounced(folder, state, 0.5, 1.0))
        await fired.baseline(state)
        for number in range(80):  # a change every 25 ms for 2 s: never quiet for 0.5 s
            (folder / "busy.md").write_text(str(number))
            await asyncio.sleep(0.025)
            if fired.events.qsize():
                return number + 1
        return None

    writes = asyncio.run(scenario())
    # Without max_wait the first event would come 0.5 s after the last write.
    assert writes is not None, "a source that keeps changing must still be ingested"
    assert writes < 80


def test_a_feed_that_fails_fails_the_trigger_with_its_error(tmp_path: Path) -> None:
    trigger = DebouncedTrigger(
        "rag_ingest.watch.ListingChangeTrigger", {"not_an_argument": 1}, 0.1, 1.0
    )
    with pytest.raises(TypeError, match="not_an_argument"):
        asyncio.run(_events_or_raise(trigger))


async def _events_or_raise(trigger: DebouncedTrigger) -> None:
    async for _ in trigger.run():
        pass


def test_the_serialized_feed_is_the_one_the_trigger_starts(tmp_path: Path) -> None:
    trigger = _debounced(tmp_path, tmp_path / "state.json", 2.0, 60)
    classpath, kwargs = trigger.serialize()
    assert classpath == "rag_ingest.watch.DebouncedTrigger"
    again = DebouncedTrigger(**kwargs)
    feed = _feed(again.feed_classpath, again.feed_kwargs)
    assert isinstance(feed, ListingChangeTrigger)
    assert feed.serialize() == (again.feed_classpath, again.feed_kwargs)
    assert DebouncedTrigger.hash(classpath, kwargs) == DebouncedTrigger.hash(*again.serialize())
