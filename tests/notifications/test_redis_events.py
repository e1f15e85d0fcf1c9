"""RedisStreamPublisher against the real Redis: one entry per key, in publication order."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from refundry.adapters.redis_events import RedisStreamPublisher


@pytest.fixture
def publisher(redis_url: str, redis_prefix: str) -> Iterator[RedisStreamPublisher]:
    with RedisStreamPublisher(redis_url, stream_prefix=redis_prefix) as pub:
        yield pub


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    """A client answering str (redis-py's answer types are too wide for the assertions)."""
    c: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield c
    finally:
        c.close()


def event(n: int, kind: str = "refund.refunded") -> dict[str, Any]:
    return {"type": kind, "refund_id": f"R-{n}", "order_id": "O-1", "note": "退款完成"}


def entries(client: Any, stream: str) -> list[tuple[str, dict[str, str]]]:
    return [(str(i), dict(f)) for i, f in client.xrange(stream)]


def test_stream_layout(publisher: RedisStreamPublisher, client: Any, redis_prefix: str) -> None:
    publisher.publish(event(1), key="event:refund.refunded:R-1:a1")
    [(_, fields)] = entries(client, f"{redis_prefix}.events")
    assert fields["type"] == "refund.refunded"
    assert fields["key"] == "event:refund.refunded:R-1:a1"
    assert json.loads(fields["event"]) == event(1)  # UTF-8 JSON, Chinese intact


def test_duplicates_are_dropped_and_order_kept(
    publisher: RedisStreamPublisher, client: Any, redis_prefix: str
) -> None:
    first = [publisher.publish_entry(event(n), key=f"k{n}") for n in range(1, 4)]
    assert all(p.added for p in first)
    # the relay re-delivers k2 and k1 (a crash after sending, before recording)
    again = [
        publisher.publish_entry(event(2), key="k2"),
        publisher.publish_entry(event(1), key="k1"),
    ]
    assert [p.added for p in again] == [False, False]
    assert [p.entry_id for p in again] == [first[1].entry_id, first[0].entry_id]
    publisher.publish(event(4, "case.refunded"), key="k4")
    got = entries(client, f"{redis_prefix}.events")
    assert [f["key"] for _, f in got] == ["k1", "k2", "k3", "k4"]
    assert [i for i, _ in got][:3] == [p.entry_id for p in first]
    assert [f["type"] for _, f in got] == ["refund.refunded"] * 3 + ["case.refunded"]


def test_a_consumer_group_reads_each_event_once(
    publisher: RedisStreamPublisher, client: Any, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}.events"
    client.xgroup_create(stream, "ledger-sync", id="0", mkstream=True)
    for n in (1, 2):
        publisher.publish(event(n), key=f"k{n}")
    publisher.publish(event(1), key="k1")  # re-delivered
    read = client.xreadgroup("ledger-sync", "w1", {stream: ">"}, count=10)
    [(_, messages)] = read
    assert [f["key"] for _, f in messages] == ["k1", "k2"]
    client.xack(stream, "ledger-sync", *[i for i, _ in messages])
    publisher.publish(event(2), key="k2")  # re-delivered after the consumer read it
    assert client.xreadgroup("ledger-sync", "w1", {stream: ">"}, count=10) == []


def test_the_dedupe_key_expires_after_seven_days(
    publisher: RedisStreamPublisher, client: Any, redis_prefix: str
) -> None:
    entry = publisher.publish_entry(event(1), key="k1")
    dedupe = f"{redis_prefix}.published:k1"
    assert client.get(dedupe) == entry.entry_id
    assert 7 * 86400 - 60 <= client.ttl(dedupe) <= 7 * 86400


def test_racing_workers_add_one_entry(redis_url: str, client: Any, redis_prefix: str) -> None:
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        with RedisStreamPublisher(redis_url, stream_prefix=redis_prefix) as pub:
            start.wait()
            for n in range(20):
                added = pub.publish_entry(event(n), key=f"k{n}").added
                with lock:
                    results.append(added)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 20
    assert sorted(f["key"] for _, f in entries(client, f"{redis_prefix}.events")) == sorted(
        f"k{n}" for n in range(20)
    )


def test_maxlen_trims_the_stream(redis_url: str, client: Any, redis_prefix: str) -> None:
    with RedisStreamPublisher(redis_url, stream_prefix=redis_prefix, maxlen=10) as pub:
        for n in range(500):
            pub.publish(event(n), key=f"k{n}")
    assert client.xlen(f"{redis_prefix}.events") < 500  # approximate (MAXLEN ~) trimming


def test_an_event_needs_a_type(publisher: RedisStreamPublisher) -> None:
    with pytest.raises(ValueError):
        publisher.publish({"refund_id": "R-1"}, key="k1")


def test_unreachable_redis_raises(redis_prefix: str) -> None:
    pub = RedisStreamPublisher("redis://127.0.0.1:1/0", stream_prefix=redis_prefix)
    with pytest.raises(redis.ConnectionError):
        pub.publish(event(1), key="k1")
