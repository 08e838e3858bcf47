"""The oracle of a consumer-group rebalance: what each member read, and what a hand-over may repeat.

A test records, in the order the event loop saw them, every record each member was handed
(:class:`Delivered`), every checkpoint it made and whether the source stored it
(:class:`Checkpointed`), and each member's revocations (:class:`Revoked`, sent by the source's
observer after its commit on revoke).  :func:`judge_handovers` then checks the row's oracle:

* each member's output of a partition is a run of consecutive offsets of that partition's log
  (its *holds*), so per-key order holds within every member's output;
* a hold that starts after another one of its partition (a hand-over) starts at the offset
  committed on the revoke: never before the previous holder's last checkpoint stored before it
  was revoked (the commit on revoke kept everything acknowledged) and never after the last
  offset handed out so far plus one (nothing skipped), so per-key order continues across it;
* every duplicate comes from such an overlap, and an overlap is at most what was in flight
  (handed out but not checkpointed) at the revoke.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

__all__ = ["Checkpointed", "Delivered", "Event", "Revoked", "judge_handovers"]


@dataclass(frozen=True, slots=True)
class Delivered:
    member: str
    partition: int
    offset: int
    key: str
    value: int


@dataclass(frozen=True, slots=True)
class Checkpointed:
    member: str
    partition: int
    offset: int
    stored: bool


@dataclass(frozen=True, slots=True)
class Revoked:
    member: str


Event = Delivered | Checkpointed | Revoked


def judge_handovers(events: list[Event], log: dict[int, list[int]]) -> int:
    """Check the hand-over oracle against each partition's ``log`` (values by offset); return
    the number of duplicates, each one accounted for by a hand-over's overlap."""
    handed_out: dict[int, int] = {}  # partition -> highest offset handed to anyone so far
    last_offset: dict[tuple[str, int], int] = {}  # (member, partition) -> its last offset
    holder: dict[int, str] = {}  # partition -> member that was handed it last
    holds: dict[tuple[str, int], int] = defaultdict(int)  # (member, partition) -> holds so far
    by_key: dict[tuple[str, str, int], list[int]] = defaultdict(list)  # (member, key, hold) -> values
    overlaps = 0
    for index, event in enumerate(events):
        if not isinstance(event, Delivered):
            continue
        member, partition, offset = event.member, event.partition, event.offset
        assert log[partition][offset] == event.value, f"{event} is not at its offset in the log"
        previous = last_offset.get((member, partition))
        if previous is None or offset != previous + 1:  # a hold starts
            if partition in handed_out:
                committed = _committed_on_revoke(events, index, holder[partition], partition)
                assert committed <= offset <= handed_out[partition] + 1, (
                    f"{member} starts {partition} at {offset}: committed {committed}, "
                    f"handed out up to {handed_out[partition]}"
                )
                overlaps += handed_out[partition] + 1 - offset
            else:
                assert offset == 0, f"{member} starts {partition} at {offset}, not at its beginning"
            holds[member, partition] += 1
        by_key[member, event.key, holds[member, partition]].append(event.value)
        last_offset[member, partition] = offset
        handed_out[partition] = max(handed_out.get(partition, -1), offset)
        holder[partition] = member
    delivered = [event for event in events if isinstance(event, Delivered)]
    duplicates = len(delivered) - len({(event.partition, event.offset) for event in delivered})
    assert duplicates == overlaps, f"{duplicates} duplicates, {overlaps} from hand-overs"
    for (member, key, _), values in by_key.items():
        assert values == sorted(set(values)), f"{member} handed out {key} out of order: {values}"
    return duplicates


def _committed_on_revoke(events: list[Event], index: int, previous: str, partition: int) -> int:
    """The next offset the previous holder's checkpoints stored before its last revocation
    preceding ``index`` (before ``index`` itself when it was never revoked)."""
    cutoff = index
    for position in range(index - 1, -1, -1):
        event = events[position]
        if isinstance(event, Revoked) and event.member == previous:
            cutoff = position
            break
    stored = [
        event.offset
        for event in events[:cutoff]
        if isinstance(event, Checkpointed) and event.stored and event.partition == partition
    ]
    return max(stored, default=-1) + 1
