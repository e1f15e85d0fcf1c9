"""Domain events on a Redis stream, published at most once per outbox key.

Layout (one stream, so consumers see every event in publication order and one consumer group
serves them all):

- stream ``{prefix}.events``; each entry has the fields ``type`` (the event's ``type``),
  ``key`` (the outbox key) and ``event`` (the event as compact JSON, UTF-8);
- dedupe key ``{prefix}.published:{key}`` holding the entry id, expiring after 7 days.

The check and the XADD run in one Lua script, so they are atomic: a re-delivered outbox message
(the relay delivers at least once) and two workers racing on the same key add one entry, and
the repeat gets the first entry's id back. Consumers read with XREADGROUP (or XRANGE) and may
still deduplicate on ``key`` after the dedupe window. On Redis Cluster, give the prefix a hash
tag (``{refundry}``) so the stream and the dedupe keys live in one slot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis

__all__ = ["DEDUPE_TTL", "Published", "RedisStreamPublisher"]

DEDUPE_TTL = timedelta(days=7)

# KEYS[1] dedupe key, KEYS[2] stream; ARGV: key, type, event JSON, ttl seconds, maxlen (0: none)
_SCRIPT = """
local seen = redis.call('GET', KEYS[1])
if seen then
  return {0, seen}
end
local id
if tonumber(ARGV[5]) > 0 then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
                  'type', ARGV[2], 'key', ARGV[1], 'event', ARGV[3])
else
  id = redis.call('XADD', KEYS[2], '*', 'type', ARGV[2], 'key', ARGV[1], 'event', ARGV[3])
end
redis.call('SET', KEYS[1], id, 'EX', ARGV[4])
return {1, id}
"""


@dataclass(frozen=True, slots=True)
class Published:
    added: bool  # False: the key was published before, nothing was added
    entry_id: str  # the stream entry (the first one, for a repeat)


class RedisStreamPublisher:
    """Implements ``EventPublisher`` on a Redis stream (redis-py, synchronous)."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        stream_prefix: str = "refundry",
        dedupe_ttl: timedelta = DEDUPE_TTL,
        maxlen: int | None = None,
        client: redis.Redis | None = None,
    ) -> None:
        self.client: redis.Redis = client or redis.Redis.from_url(url)
        self.stream = f"{stream_prefix}.events"
        self.dedupe_prefix = f"{stream_prefix}.published:"
        self.ttl_seconds = int(dedupe_ttl.total_seconds())
        if self.ttl_seconds <= 0:
            raise ValueError("dedupe_ttl must be at least one second")
        self.maxlen = maxlen or 0  # approximate trimming (MAXLEN ~) when set
        self._script = self.client.register_script(_SCRIPT)

    def publish(self, event: dict[str, Any], *, key: str) -> None:
        self.publish_entry(event, key=key)

    def publish_entry(self, event: dict[str, Any], *, key: str) -> Published:
        """Publish and say whether an entry was added, and which entry holds the key."""
        kind = event.get("type")
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"event {key!r} has no 'type'")
        body = json.dumps(event, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        added, entry_id = self._script(
            keys=[self.dedupe_prefix + key, self.stream],
            args=[key, kind, body, self.ttl_seconds, self.maxlen],
        )
        return Published(bool(added), _text(entry_id))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RedisStreamPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
