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

pytestmark = [pytest.mark.services]
CHANNEL = "rag-ingest.docs.changes"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        # Airflow reads a connection from AIRFLOW_CONN_<ID> when no database holds it.
        os.environ["AIRFLOW_CONN_RAG_WATCH_REDIS"] = url
        yield url
        os.environ.pop("AIRFLOW_CONN_RAG_WATCH_REDIS")


def _watcher_trigger(tmp_path: Path, quiet_seconds: float) -> DebouncedTrigger:
    """The trigger a watched source's change asset carries, built from configuration."""
    watch = {"feed": "queue", "queue_scheme": "redis+pubsub", "quiet_seconds": quiet_seconds,
             "queue_options": {"channels": [CHANNEL], "redis_conn_id": "rag_watch_redis",
                               "poll_interval": 0.1}}  # fmt: skip
    source = SourceConfig(name="docs", location=str(tmp_path), watch=watch)  # type: ignore[arg-type]
    (watcher,) = change_asset(source, str(tmp_path), str(tmp_path / "staging")).watchers
    trigger = watcher.trigger
    assert isinstance(trigger, DebouncedTrigger)
    assert trigger.feed_classpath.endswith("redis_await_message.AwaitMessageTrigger")
    return DebouncedTrigger(**trigger.serialize()[1])  # as the triggerer makes it


async def _publish(url: str, messages: list[str], per_second: float) -> None:
    client = redis.Redis.from_url(url)
    for number, message in enumerate(messages):
        client.publish(CHANNEL, message)
        if number % 10 == 9:
            await asyncio.sleep(10 / per_second)


async def _fired(trigger: DebouncedTrigger, scenario: Any, wait: float) -> list[dict[str, Any]]:
    fired: list[dict[str, Any]] = []

    async def collect() -> None:
        async for event in trigger.run():
            fired.append({**event.payload, "at": time.monotonic()})

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.5)  # subscribed
    await scenario()
    await asyncio.sleep(wait)
    collector.cancel()
    return fired


def test_a_thousand_notifications_in_a_burst_fire_once(broker: str, tmp_path: Path) -> None:
    trigger = _watcher_trigger(tmp_path, quiet_seconds=1.0)
    burst = [f"s3://bucket/docs/page-{n % 40}.md" for n in range(1_000)]  # duplicates too

    async def scenario() -> None:
        await _publish(broker, burst, per_second=500)  # 1,000 events in about 2 s

    fired = asyncio.run(_fired(trigger, scenario, wait=3.0))
    assert len(fired) == 1, fired
    assert fired[0]["feed"] == "queue" and fired[0]["events"] > 1


def test_a_single_notification_fires_after_the_quiet_time(broker: str, tmp_path: Path) -> None:
    trigger = _watcher_trigger(tmp_path, quiet_seconds=0.5)
    sent: list[float] = []

    async def scenario() -> None:
        sent.append(time.monotonic())
        await _publish(broker, ["s3://bucket/docs/one.md"], per_second=1)
        await asyncio.sleep(2.0)
        sent.append(time.monotonic())
        await _publish(broker, ["s3://bucket/docs/two.md"], per_second=1)

    fired = asyncio.run(_fired(trigger, scenario, wait=2.0))
    assert [event["events"] for event in fired] == [1, 1]
    for event, at in zip(fired, sent, strict=True):
        assert 0.5 <= event["at"] - at < 2.0  # the quiet time and a poll, no more
