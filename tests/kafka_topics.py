"""Kafka topics for integration tests: a uniquely named topic per test, created and waited for."""

from __future__ import annotations

import uuid

__all__ = ["new_topic"]


def new_topic(bootstrap: str, partitions: int, *, prefix: str = "t") -> str:
    """Create ``PREFIX-<random>`` with ``partitions`` partitions (one replica) and return its name
    once the broker confirmed it."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)
    return name
