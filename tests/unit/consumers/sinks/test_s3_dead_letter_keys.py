"""A dead-letter object's key is the bucket's, never the record's: no record chooses it or
reaches another put's object.

The key is ``PREFIX/DAY/<digest of the entries' identities>.jsonl``: the same entries put again
(a retry, a replay) overwrite their own object, and different entries never share one.  A signed
event id is a record's identity and is the producer's text, newlines included, so the digest
must tell ``["a\\nb"]`` from ``["a", "b"]``: it hashed the identities joined by newlines, and the
dead letter of the one record overwrote the dead letters of the two.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from consumers.sinks.base import DeadLetterEntry
from consumers.sinks.deadletter import S3DeadLetter
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition

_KEY = re.compile(r"dlq/(undated|[0-9]{4}/[0-9]{2}/[0-9]{2})/[0-9a-f]{64}\.jsonl")


def _signed(offset: int, event_id: str) -> DeadLetterEntry:
    record = ConsumedRecord(
        b"x", "k", KafkaPosition("t", 0, offset), event_id=event_id, event_id_verified=True
    )
    return DeadLetterEntry(record=record, reason="poison")


def _dead() -> S3DeadLetter:
    return S3DeadLetter("dead-letters", "dlq", client=object())


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (["a\nb"], ["a", "b"]),
        (["a\n", "b"], ["a", "\nb"]),
        (["a\x00b"], ["a\x00b\n"]),
        (["\n"], ["", ""]),
    ],
)
def test_entries_with_other_identities_never_share_an_object(one: list[str], other: list[str]) -> None:
    dead = _dead()
    first = dead.key_for([_signed(i, event_id) for i, event_id in enumerate(one)])
    second = dead.key_for([_signed(i, event_id) for i, event_id in enumerate(other)])
    assert first != second


def test_keys_of_plain_identities_are_the_ones_written_before() -> None:
    """A put retried across an upgrade writes its first object again, not a second one."""
    plain = [
        DeadLetterEntry(
            record=ConsumedRecord(
                b"x",
                "k",
                KinesisPosition("telemetry", "shardId-000000000000", "7"),
                arrival_time=datetime(2024, 5, 1, tzinfo=UTC),
            ),
            reason="poison",
        ),
        DeadLetterEntry(record=ConsumedRecord(b"x", "k", KafkaPosition("t", 0, 9)), reason="poison"),
    ]
    assert _dead().key_for(plain) == (
        "dlq/2024/05/01/49112cbe67e3fb83dae66e58cc7a5773444cfdeb714bae8cc7a2f6abe83a988f.jsonl"
    )


@pytest.mark.parametrize(
    "event_id",
    ["../../other/object", "/" * 2000, "a" * 5000, "\x00\r\n\u2028", "\ud800", "..", "%2e%2e/x"],
)
def test_crafted_identities_never_reach_the_key(event_id: str) -> None:
    key = _dead().key_for([_signed(0, event_id), _signed(1, "plain")])
    assert _KEY.fullmatch(key), key
