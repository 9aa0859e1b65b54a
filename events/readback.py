"""Read a topic back from the beginning (tests, tools): no consumer group, no commits.

The broker's 'latest' offsets are not trusted (see DESIGN.md), so a reader says how many
messages it expects, or reads until the topic has been quiet for `idle_s`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from piaoxi.settings import Settings


@dataclass(frozen=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def read_messages(
    settings: Settings,
    topic: str,
    *,
    count: int | None = None,
    timeout_s: float = 30.0,
    idle_s: float = 3.0,
) -> list[RawMessage]:
    """Messages of every partition of `topic` from the earliest offset.

    Stops once `count` messages were read, or (count None) when no message arrived for
    `idle_s`, or at `timeout_s`. Ordered by (partition, offset).
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"piaoxi-readback-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "log_level": 3,
        }
    )
    found: list[RawMessage] = []
    try:
        deadline = time.monotonic() + timeout_s
        partitions: list[int] = []
        while not partitions and time.monotonic() < deadline:
            metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if metadata is not None and metadata.error is None:
                partitions = sorted(metadata.partitions)
            if not partitions:
                time.sleep(0.2)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        last = time.monotonic()
        while time.monotonic() < deadline:
            if count is not None and len(found) >= count:
                break
            msg = consumer.poll(0.2)
            if msg is None:
                if count is None and found and time.monotonic() - last > idle_s:
                    break
                continue
            if msg.error():
                continue
            last = time.monotonic()
            found.append(
                RawMessage(
                    topic=msg.topic() or topic,
                    partition=msg.partition() or 0,
                    offset=msg.offset() or 0,
                    key=msg.key(),
                    value=msg.value(),
                )
            )
    finally:
        consumer.close()
    return sorted(found, key=lambda m: (m.partition, m.offset))
