"""Fault injection for the gateway: the failures emulators never produce.

A :class:`FaultPlan` says how often each kind of fault happens; a :class:`FaultInjector`
draws from a seeded RNG so a failing test replays the same faults.  Plans are values: the
gateway swaps in a new plan at run time (``set_faults``) rather than mutating one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from shardline.errors import ConfigurationError

__all__ = ["WRITE_OPERATIONS", "FaultInjector", "FaultPlan"]

WRITE_OPERATIONS = frozenset({"PutRecord", "PutRecords"})

_SERVER_ERROR_CODES = {500: "InternalFailure", 503: "ServiceUnavailable"}
_STATUS_OF_SERVER_ERROR = {code: status for status, code in _SERVER_ERROR_CODES.items()}


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """How often each fault is injected; every rate is a fraction in 0..1.

    - ``entry_failure_rate``: PutRecords entries failed individually with ``entry_error_code``
      (a PutRecord call fails whole with that code, under the HTTP status Kinesis answers it
      with: 500 for ``InternalFailure``, 503 for ``ServiceUnavailable``, 400 for every other
      code, throttles and KMS errors included).
    - ``server_error_rate``: calls answered ``server_error_status`` (500 InternalFailure or
      503 ServiceUnavailable) without reaching the backend.
    - ``foreign_answer_rate``: calls answered 200 with an HTML page, as a wrong endpoint, a
      captive portal or a misbehaving proxy answers, without reaching the backend (nothing
      written): botocore parses such a body into a response with none of the operation's
      members.
    - ``drop_request_rate``: connections reset before the request is forwarded (nothing written).
    - ``drop_response_rate``: connections reset AFTER the backend accepted the call, so the
      client sees an error while the stream holds the write (the duplicate-on-retry case).
    - ``latency_seconds``: added before forwarding every affected call.
    - ``operations``: the Kinesis operations affected; ``None`` means all of them.
    """

    entry_failure_rate: float = 0.0
    entry_error_code: str = "ProvisionedThroughputExceededException"
    server_error_rate: float = 0.0
    server_error_status: int = 500
    foreign_answer_rate: float = 0.0
    drop_request_rate: float = 0.0
    drop_response_rate: float = 0.0
    latency_seconds: float = 0.0
    operations: frozenset[str] | None = field(default=WRITE_OPERATIONS)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "entry_failure_rate",
            "server_error_rate",
            "foreign_answer_rate",
            "drop_request_rate",
            "drop_response_rate",
        ):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ConfigurationError(f"FaultPlan.{name} must be within 0..1, got {rate!r}")
        if self.server_error_status not in _SERVER_ERROR_CODES:
            raise ConfigurationError("FaultPlan.server_error_status must be 500 or 503")
        if self.latency_seconds < 0:
            raise ConfigurationError("FaultPlan.latency_seconds must not be negative")
        if not self.entry_error_code:
            raise ConfigurationError("FaultPlan.entry_error_code must not be empty")

    @property
    def server_error_code(self) -> str:
        return _SERVER_ERROR_CODES[self.server_error_status]

    @property
    def entry_error_status(self) -> int:
        """The HTTP status of a PutRecord call failed whole with ``entry_error_code``.

        Clients tell a server fault from a client error by it (botocore's retry rules read the
        status first), so an injected ``KMSThrottlingException`` must come back as Kinesis
        sends it, 400, not as a server error.
        """
        return _STATUS_OF_SERVER_ERROR.get(self.entry_error_code, 400)

    def applies_to(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations


class FaultInjector:
    """Draws the faults of one plan from its own seeded RNG."""

    __slots__ = ("_rng", "plan")

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._rng = random.Random(plan.seed)

    def _draw(self, rate: float) -> bool:
        return rate > 0.0 and self._rng.random() < rate

    def fail_entry(self) -> bool:
        return self._draw(self.plan.entry_failure_rate)

    def server_error(self) -> bool:
        return self._draw(self.plan.server_error_rate)

    def foreign_answer(self) -> bool:
        return self._draw(self.plan.foreign_answer_rate)

    def drop_request(self) -> bool:
        return self._draw(self.plan.drop_request_rate)

    def drop_response(self) -> bool:
        return self._draw(self.plan.drop_response_rate)
