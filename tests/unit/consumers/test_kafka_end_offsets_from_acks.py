"""end_offsets_from_acks with acks that carry no offset (``acks=0``, a retry answered as a
duplicate sequence): each partition ends after its highest known offset."""

from __future__ import annotations

from consumers.kafka import consumer_lag, end_offsets_from_acks
from shardline.records import KafkaAck


def test_acks_without_an_offset_set_no_end_and_move_none_back() -> None:
    acks = [
        KafkaAck("t", 0, 4),
        KafkaAck("t", 0, None),  # after the highest known offset: the end stays at 5
        KafkaAck("t", 1, None),
        KafkaAck("t", 1, 7),
        KafkaAck("t", 2, None),  # no offset known in partition 2: no end for it
    ]
    ends = end_offsets_from_acks(acks)
    assert ends == {"t/0": 5, "t/1": 8}
    assert consumer_lag({"t/0": 5, "t/2": 3}, ends) == {"t/0": 0, "t/1": 8}
