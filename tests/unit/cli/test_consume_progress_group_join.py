"""A Kafka consumer waiting for its group's first assignment says so on its progress lines.

A new member reads nothing until the group assigns it partitions, and a first join can take a
while (on the local stack's Tansu about half the session timeout: 23 s with the default 45 s).
The progress lines meanwhile read ``records_in=0 partitions=0``, the same as a consumer that is
stuck, and a first user stopped it.  Until the first assignment the line names the group it
waits for; once one came, it does not (a member whose partitions were all revoked owns none,
but it is no longer joining).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from consumers.progress import ConsumeProgress
from shardline import metrics_events as events


def _last_progress(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    line = caplog.records[-1]
    assert line.message == "progress"
    return vars(line)


def test_a_kafka_member_names_the_group_it_waits_for_until_the_first_assignment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="t.join")
    progress = ConsumeProgress(logger=logging.getLogger("t.join"), kafka_group="archiver")
    progress.log()
    waiting = _last_progress(caplog)
    assert waiting["partitions"] == 0
    assert waiting["waiting_for"] == "group 'archiver' to assign partitions"

    progress.on_event(events.KAFKA_PARTITIONS_ASSIGNED, 3)
    progress.log()
    assert _last_progress(caplog)["partitions"] == 3
    assert "waiting_for" not in _last_progress(caplog)

    progress.on_event(events.KAFKA_PARTITIONS_REVOKED, 3)
    progress.log()
    assert "waiting_for" not in _last_progress(caplog)


def test_a_kinesis_consumer_never_says_it_waits_for_a_group(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="t.kinesis")
    progress = ConsumeProgress(logger=logging.getLogger("t.kinesis"))
    progress.log()
    assert "waiting_for" not in _last_progress(caplog)
