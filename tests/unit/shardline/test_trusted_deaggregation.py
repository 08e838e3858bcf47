"""Which event ids a consumer trusts, and how far one record may expand (docs/security.md)."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from typing import Any

import pytest

from shardline._kpl_pb import AggregatedRecord
from shardline.aggregation import MAGIC, AggregateBuilder, DeaggregationPolicy, deaggregate_consumed
from shardline.errors import AggregateRefusedError, ConfigurationError, ServiceError
from shardline.eventid import KEY_ENV, PREVIOUS_KEYS_ENV, SECRET_ARN_ENV, EventIdKey
from shardline.records import ConsumedRecord, KinesisPosition, RefusedRecord

KEY = "a-event-id-key-of-at-least-32-characters"
OLD = "an-older-event-id-key-still-accepted-0001"


def _outer(data: bytes) -> ConsumedRecord:
    return ConsumedRecord(data, "outer", KinesisPosition("s", "shardId-000000000000", "42"))


def _signed(event_id: str, data: bytes, key: EventIdKey | None) -> bytes:
    builder = AggregateBuilder(event_id_key=key)
    assert builder.try_add("k", data, None, event_id)
    return builder.encode()


def test_a_signed_event_id_is_the_identity_only_with_the_key() -> None:
    key = EventIdKey(KEY)
    blob = _signed("evt-1", b"payload", key)
    [trusted] = deaggregate_consumed(_outer(blob), DeaggregationPolicy(event_id_key=key))
    assert trusted.identity == "evt-1" and trusted.event_id_verified
    [informational] = deaggregate_consumed(_outer(blob))
    assert informational.event_id == "evt-1" and informational.identity == "s/shardId-000000000000/42/0"


@pytest.mark.parametrize("signer", [None, EventIdKey("another-key-that-is-long-enough-000000")])
def test_unsigned_or_foreign_event_ids_are_not_trusted(signer: EventIdKey | None) -> None:
    [record] = deaggregate_consumed(
        _outer(_signed("evt-1", b"x", signer)), DeaggregationPolicy(event_id_key=EventIdKey(KEY))
    )
    assert record.event_id == "evt-1" and not record.event_id_verified
    assert record.identity == "s/shardId-000000000000/42/0"


def test_the_mac_binds_the_data_so_a_valid_pair_cannot_be_reused() -> None:
    key = EventIdKey(KEY)
    mac = key.mac("evt-1", b"original")
    assert key.accepts("evt-1", b"original", mac)
    assert not key.accepts("evt-1", b"tampered", mac)
    assert not key.accepts("evt-2", b"original", mac)
    assert not key.accepts("evt-1", b"original", None)


def test_rotation_previous_keys_verify_but_never_sign() -> None:
    old = EventIdKey(OLD)
    rotated = EventIdKey(KEY, [OLD])
    assert rotated.accepts("e", b"d", old.mac("e", b"d"))
    assert rotated.mac("e", b"d") == EventIdKey(KEY).mac("e", b"d")
    assert not EventIdKey(KEY).accepts("e", b"d", old.mac("e", b"d"))


def test_keys_never_show_and_short_keys_are_refused() -> None:
    assert KEY not in repr(EventIdKey(KEY, [OLD])) and OLD not in repr(EventIdKey(KEY, [OLD]))
    assert KEY not in repr(DeaggregationPolicy(event_id_key=EventIdKey(KEY)))
    with pytest.raises(ConfigurationError, match="32"):
        EventIdKey("short")


def test_key_from_the_environment() -> None:
    assert EventIdKey.from_environment({}) is None
    key = EventIdKey.from_environment({KEY_ENV: KEY, PREVIOUS_KEYS_ENV: OLD})
    assert key is not None and key.accepts("e", b"d", EventIdKey(OLD).mac("e", b"d"))
    with pytest.raises(ConfigurationError, match=KEY_ENV):
        EventIdKey.from_environment({PREVIOUS_KEYS_ENV: OLD})


class _Secrets:
    def __init__(self, value: Any) -> None:
        self.value = value
        self.calls: list[str] = []

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:
        self.calls.append(SecretId)
        if isinstance(self.value, Exception):
            raise self.value
        return {"SecretString": self.value}


def test_key_from_a_secrets_manager_secret_read_once() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:event-id"
    secrets = _Secrets(json.dumps({"current": KEY, "previous": [OLD]}))
    environ = {SECRET_ARN_ENV: arn, KEY_ENV: "ignored"}
    key = EventIdKey.from_environment(environ, secrets_client=lambda: secrets)
    assert secrets.calls == [arn]
    assert key is not None and key.mac("e", b"d") == EventIdKey(KEY).mac("e", b"d")
    plain = EventIdKey.from_environment({SECRET_ARN_ENV: arn}, secrets_client=lambda: _Secrets(KEY))
    assert plain is not None and plain.accepts("e", b"d", EventIdKey(KEY).mac("e", b"d"))
    with pytest.raises(ConfigurationError, match="current"):
        EventIdKey.from_environment({SECRET_ARN_ENV: arn}, secrets_client=lambda: _Secrets('{"x": 1}'))
    with pytest.raises(ServiceError):
        EventIdKey.from_environment({SECRET_ARN_ENV: arn}, secrets_client=lambda: _Secrets(OSError("down")))


def _raw_aggregate(keys: list[str], records: list[tuple[int, bytes]]) -> bytes:
    import hashlib

    message = AggregatedRecord()
    message.partition_key_table.extend(keys)
    for index, data in records:
        message.records.add(partition_key_index=index, data=data)
    body = message.SerializeToString()
    return MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()


def _refusal(record: ConsumedRecord, policy: DeaggregationPolicy | None = None) -> str:
    [refused] = deaggregate_consumed(record, policy)
    assert isinstance(refused, RefusedRecord)
    assert refused.data == record.data and refused.position == record.position  # whole
    assert isinstance(refused.refusal, AggregateRefusedError)
    return str(refused.refusal)


def test_an_inner_partition_key_over_256_characters_refuses_the_aggregate() -> None:
    blob = _raw_aggregate(["k" * 257], [(0, b"x")] * 3)
    assert "257 characters" in _refusal(_outer(blob))
    assert len(deaggregate_consumed(_outer(_raw_aggregate(["k" * 256], [(0, b"x")] * 3)))) == 3


def test_more_user_records_than_the_cap_refuses_the_aggregate() -> None:
    blob = _raw_aggregate(["k"], [(0, b"")] * 11)
    assert "11 user records" in _refusal(_outer(blob), DeaggregationPolicy(max_user_records=10))
    assert len(deaggregate_consumed(_outer(blob), DeaggregationPolicy(max_user_records=11))) == 11


def test_an_aggregate_over_the_cap_is_refused_before_its_records_are_read() -> None:
    """Refusing must not cost what expanding would: each record read out of the parsed message
    (a tuple and a bytes object) made a 1 MiB aggregate of 174,000 empty records cost ~30 MB
    and ~0.3 s, only to be refused."""
    body = b"\x0a\x01k" + b"\x1a\x04\x08\x00\x1a\x00" * 40_000  # 40,000 empty records of key 0
    blob = MAGIC + body + hashlib.md5(body).digest()
    record = _outer(blob)
    tracemalloc.start()
    try:
        [refused] = deaggregate_consumed(record)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(refused, RefusedRecord) and "40000 user records" in str(refused.refusal)
    assert peak < 256 * 1024  # walked, the 40,000 records took ~7 MB


def test_an_inner_record_over_the_stream_maximum_refuses_the_aggregate() -> None:
    blob = _raw_aggregate(["key"], [(0, b"x" * 2000)])
    reason = _refusal(_outer(blob), DeaggregationPolicy(max_record_bytes=2000))
    assert "2003 bytes" in reason and "x" * 10 not in reason
    assert len(deaggregate_consumed(_outer(blob), DeaggregationPolicy(max_record_bytes=2003))) == 1


def test_never_deaggregate_mode_keeps_every_record_whole() -> None:
    blob = _signed("evt-1", b"payload", None)
    [record] = deaggregate_consumed(_outer(blob), DeaggregationPolicy(deaggregate=False))
    assert record.data == blob and record.identity == "s/shardId-000000000000/42/0"


def test_refused_record_repr_names_the_refusal_not_the_payload() -> None:
    refused = RefusedRecord(_outer(b"secret-payload"), AggregateRefusedError("why"))
    assert "secret-payload" not in repr(refused) and "AggregateRefusedError" in repr(refused)
    assert refused.identity == "s/shardId-000000000000/42/0"


@pytest.mark.parametrize("mac", ["é" + "A" * 21, "\ufffd" * 22, b"A" * 22, 12345])
def test_a_mac_that_is_not_ascii_text_is_simply_not_ours(mac: Any) -> None:
    """The MAC travels with the record; hmac.compare_digest raises TypeError for non-ASCII
    text, so one crafted record stopped a consumer holding the key."""
    assert not EventIdKey(KEY).accepts("evt-1", b"payload", mac)


def test_an_aggregate_whose_mac_tag_is_not_ascii_is_delivered_unverified() -> None:
    message = AggregatedRecord()
    message.partition_key_table.append("k")
    record = message.records.add(partition_key_index=0, data=b"payload")
    record.tags.add(key="event_id", value="evt-1")
    record.tags.add(key="event_id_mac", value="é" * 11)
    body = message.SerializeToString()
    blob = MAGIC + body + hashlib.md5(body).digest()
    [read] = deaggregate_consumed(_outer(blob), DeaggregationPolicy(event_id_key=EventIdKey(KEY)))
    assert read.data == b"payload" and read.event_id == "evt-1" and not read.event_id_verified
