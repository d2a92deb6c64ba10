"""The queue feed of change-driven runs on a real Redis server, through Airflow's
common-messaging `MessageQueueTrigger` (scheme redis+pubsub), debounced as the
triggerer runs it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from rag_ingest.config import SourceConfig
from rag_ingest.watch import DebouncedTrigger, change_asset
from tests.services import redis as redis_server
from tests.trigger_events import FiredEvents

pytestmark = [pytest.mark.services]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        # Airflow reads a connection from AIRFLOW_CONN_<ID> when no database holds it.
        os.environ["AIRFLOW_CONN_RAG_WATCH_REDIS"] = url
        yield url
        os.environ.pop("AIRFLOW_CONN_RAG_WATCH_REDIS")


def _channel(tmp_path: Path) -> str:
    """A channel of the test's own: a cancelled trigger of another test may still be listening
    on its channel until its connection is collected."""
    return f"rag-ingest.{tmp_path.name}.changes"


def _watcher_trigger(tmp_path: Path, quiet_seconds: float) -> DebouncedTrigger:
    """The trigger a watched source's change asset carries, built from configuration."""
    watch = {"feed": "queue", "queue_scheme": "redis+pubsub", "quiet_seconds": quiet_seconds,
             "queue_options": {"channels": [_channel(tmp_path)], "redis_conn_id": "rag_watch_redis",
                               "poll_interval": 0.1}}  # fmt: skip
    source = SourceConfig(name="docs", location=str(tmp_path), watch=watch)  # type: ignore[arg-type]
    (watcher,) = change_asset(source, str(tmp_path), str(tmp_path / "staging")).watchers
    trigger = watcher.trigger
    assert isinstance(trigger, DebouncedTrigger)
    assert trigger.feed_classpath.endswith("redis_await_message.AwaitMessageTrigger")
    return DebouncedTrigger(**trigger.serialize()[1])  # as the triggerer makes it


async def _publish(url: str, channel: str, messages: list[str], per_second: float) -> None:
    client = redis.Redis.from_url(url)
    for number, message in enumerate(messages):
        client.publish(channel, message)
        if number % 10 == 9:
            await asyncio.sleep(10 / per_second)


async def _subscribed(url: str, channel: str, events: FiredEvents) -> None:
    """Until the trigger listens on the channel (pub/sub keeps nothing for a late listener)."""
    client = redis.Redis.from_url(url)
    await events.until(lambda: dict(client.pubsub_numsub(channel)).get(channel.encode(), 0) > 0)


def test_a_thousand_notifications_in_a_burst_fire_once(broker: str, tmp_path: Path) -> None:
    trigger = _watcher_trigger(tmp_path, quiet_seconds=1.0)
    burst = [f"s3://bucket/docs/page-{n % 40}.md" for n in range(1_000)]  # duplicates too

    async def scenario() -> list[dict[str, Any]]:
        events, channel = FiredEvents(trigger), _channel(tmp_path)
        await _subscribed(broker, channel, events)
        await _publish(broker, channel, burst, per_second=500)  # 1,000 events in about 2 s
        return [await events.next(), *await events.stop_after(3.0)]

    fired = asyncio.run(scenario())
    assert len(fired) == 1, fired
    assert fired[0]["feed"] == "queue" and fired[0]["events"] > 1


def test_a_single_notification_fires_after_the_quiet_time(broker: str, tmp_path: Path) -> None:
    trigger = _watcher_trigger(tmp_path, quiet_seconds=0.5)

    async def scenario() -> list[tuple[dict[str, Any], float]]:
        events, channel = FiredEvents(trigger), _channel(tmp_path)
        seen = []
        for page in ("one", "two"):
            await _subscribed(broker, channel, events)
            sent = time.monotonic()
            await _publish(broker, channel, [f"s3://bucket/docs/{page}.md"], per_second=1)
            seen.append((await events.next(), time.monotonic() - sent))
        assert await events.stop_after(1.0) == []
        return seen

    fired = asyncio.run(scenario())
    assert [event["events"] for event, _ in fired] == [1, 1]
    for _, latency in fired:
        # The quiet time and a poll; the upper bound leaves a loaded machine room.
        assert 0.5 <= latency < 5.0
