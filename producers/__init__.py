"""Producers: batching, aggregating, pacing and retrying writers for Kinesis (and Kafka).

``from producers import KinesisProducer, keys`` is the entry point for Kinesis; the Kafka
producer lives in :mod:`producers.kafka`.  Producers never import consumers.

The Kinesis classes load on first use, so code that only needs :mod:`producers.keys` (the
Kafka producer) does not import aiobotocore.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.config import ProducerConfig

if TYPE_CHECKING:
    from producers.kinesis import KinesisProducer
    from producers.sync import SyncKinesisProducer
    from producers.tickets import BatchAcks, EntryAcks

__all__ = ["BatchAcks", "EntryAcks", "KinesisProducer", "ProducerConfig", "SyncKinesisProducer", "keys"]

_LAZY = {
    "KinesisProducer": "producers.kinesis",
    "SyncKinesisProducer": "producers.sync",
    "BatchAcks": "producers.tickets",
    "EntryAcks": "producers.tickets",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'producers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
